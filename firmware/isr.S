/*
 * isr.S - interrupt and exception entry stubs, and the firmware gate.
 *
 * All gates are 64-bit interrupt gates (IF cleared on entry) without IST.
 * Guest code runs at CPL 3, so a gate taken from there switches to this
 * vCPU's interrupt stack (TSS.RSP0); one taken at CPL 0 (early boot, or an
 * interrupt while halted in the gate's WAIT) stays on the current stack. In
 * both cases the CPU aligns RSP down to 16 bytes and pushes SS, RSP, RFLAGS,
 * CS, RIP and, for some exceptions, an error code.
 *
 * Exceptions: each stub makes the error-code slot uniform (pushing 0 where
 * the CPU does not), pushes its vector and then the common code pushes the
 * general registers so that, from the final RSP upward, memory reads
 *
 *   r15 r14 r13 r12 r11 r10 r9 r8 rbp rdi rsi rdx rcx rbx rax
 *   vector error_code rip cs rflags rsp ss
 *
 * which is struct fw_frame and the crash frame of docs/memory-layout.md.
 * The 5 CPU words + error code + vector + 15 registers are 22 * 8 = 176
 * bytes = 11 * 16 below a 16-byte aligned address, so RSP is 16-byte
 * aligned when fw_exception is called.
 *
 * Interrupts: every instruction at CPL 0 may be emulated (about 1 us each
 * on PVM), so the interrupt stubs are a few instructions, call no C and
 * save no registers: they only use flags, which IRETQ restores.
 */

#include "fw.h"

        .text

/* Vector without a CPU error code: push a dummy 0 first. */
.macro  exc_noerr vec
        .globl  fw_exc_\vec
        .type   fw_exc_\vec, @function
fw_exc_\vec:
        pushq   $0
        pushq   $\vec
        jmp     fw_exc_common
        .size   fw_exc_\vec, . - fw_exc_\vec
.endm

/* Vector for which the CPU pushes an error code itself. */
.macro  exc_err vec
        .globl  fw_exc_\vec
        .type   fw_exc_\vec, @function
fw_exc_\vec:
        pushq   $\vec
        jmp     fw_exc_common
        .size   fw_exc_\vec, . - fw_exc_\vec
.endm

.macro  save_regs
        pushq   %rax
        pushq   %rbx
        pushq   %rcx
        pushq   %rdx
        pushq   %rsi
        pushq   %rdi
        pushq   %rbp
        pushq   %r8
        pushq   %r9
        pushq   %r10
        pushq   %r11
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
.endm


        /* Error codes: #DF(8) #TS(10) #NP(11) #SS(12) #GP(13) #PF(14)
         * #AC(17) #CP(21) #VC(29) #SX(30). */
        exc_noerr 0
        exc_noerr 1
        exc_noerr 2
        exc_noerr 3
        exc_noerr 4
        exc_noerr 5
        exc_noerr 6
        exc_noerr 7
        exc_err   8
        exc_noerr 9
        exc_err   10
        exc_err   11
        exc_err   12
        exc_err   13
        exc_err   14
        exc_noerr 15
        exc_noerr 16
        exc_err   17
        exc_noerr 18
        exc_noerr 19
        exc_noerr 20
        exc_err   21
        exc_noerr 22
        exc_noerr 23
        exc_noerr 24
        exc_noerr 25
        exc_noerr 26
        exc_noerr 27
        exc_noerr 28
        exc_err   29
        exc_err   30
        exc_noerr 31

/* Exceptions are fatal: fw_exception prints, sends the crash report and
 * never returns. */
        .type   fw_exc_common, @function
fw_exc_common:
        save_regs
        cld                             /* the C ABI wants DF = 0 */
        movq    %rsp, %rdi              /* struct fw_frame * */
        call    fw_exception
1:      cli
        hlt
        jmp     1b
        .size   fw_exc_common, . - fw_exc_common

/*
 * EOI: a 32-bit store of 0 to 0xFEE000B0. With a 32-bit address-size
 * prefix the absolute address is zero-extended, so no register is needed
 * to hold it (a plain 64-bit displacement would be sign-extended).
 */
.macro  lapic_eoi
        addr32 movl $0, FW_LAPIC_EOI_ADDR
.endm

/*
 * VIRQ (0x30 by default): acknowledge it and count it for this vCPU, both as
 * a VIRQ for the handler (run later at CPL 3 by guest_wait_for_interrupt /
 * guest_poll_virq, trap.c) and as a wake-up for the gate's WAIT.
 */
        .globl  fw_irq_virq
        .type   fw_irq_virq, @function
fw_irq_virq:
        lapic_eoi
        incl    %gs:FW_PCPU_VIRQS
        incl    %gs:FW_PCPU_WAKES
        cmpq    $.Lgate_hlt, (%rsp)     /* early wake-up? (below) */
        je      fw_irq_early
        iretq
        .size   fw_irq_virq, . - fw_irq_virq

/* guest_run_on_cpus wake-up IPI (0x31): only a wake-up; the AP's idle loop
 * then looks at the mailbox. */
        .globl  fw_irq_ipi
        .type   fw_irq_ipi, @function
fw_irq_ipi:
        lapic_eoi
        incl    %gs:FW_PCPU_WAKES
        cmpq    $.Lgate_hlt, (%rsp)
        je      fw_irq_early
        iretq
        .size   fw_irq_ipi, . - fw_irq_ipi

/*
 * Early wake-up: the interrupt was taken with RIP at the wait gate's HLT,
 * i.e. after its STI but before the HLT ran. The STI shadow forbids that on
 * hardware and under kvm_pvm, but KVM nested on QEMU's TCG (the VM path of
 * the tests, docs/testing.md) delivers an injected interrupt there now and
 * then; returning to the HLT would then sleep through the very interrupt
 * the wait was for, forever. So step over the one-byte HLT: the wait ends
 * as if the interrupt had ended the HLT, and the count says it happened.
 * The common path pays one compare and branch.
 */
        .type   fw_irq_early, @function
fw_irq_early:
        incl    %gs:FW_PCPU_EARLY
        incq    (%rsp)                  /* RIP: past the HLT, to its CLI */
        iretq
        .size   fw_irq_early, . - fw_irq_early

/* APIC spurious interrupt: no EOI, nothing to do. */
        .globl  fw_irq_spurious
        .type   fw_irq_spurious, @function
fw_irq_spurious:
        iretq
        .size   fw_irq_spurious, . - fw_irq_spurious

/*
 * Firmware gate (GUEST_GATE_VECTOR = 4, DPL 3): `int $4` from CPL 3 with the
 * operation in R11 (GUEST_GATE_* in guest.h). Each operation is the one
 * privileged instruction CPL-3 code may not execute itself, followed by
 * IRETQ; no register other than the instruction's own output changes.
 * An unknown operation is reported like an exception, with vector 4.
 */
        .globl  fw_gate
        .type   fw_gate, @function
fw_gate:
        cmpq    $GUEST_GATE_NOPS, %r11
        jae     1f
        jmp     *fw_gate_ops(, %r11, 8)
1:      pushq   $0                      /* error code */
        pushq   $GUEST_GATE_VECTOR
        jmp     fw_exc_common
        .size   fw_gate, . - fw_gate

.Lgate_outb:
        outb    %al, %dx
        iretq
.Lgate_outw:
        outw    %ax, %dx
        iretq
.Lgate_outl:
        outl    %eax, %dx
        iretq
.Lgate_inb:
        inb     %dx, %al
        iretq
.Lgate_inw:
        inw     %dx, %ax
        iretq
.Lgate_inl:
        inl     %dx, %eax
        iretq
.Lgate_outsb:
        rep outsb
        iretq
.Lgate_hypercall:
        outl    %eax, $GUEST_HYPERCALL_PORT
        iretq
/* CPUID at CPL 0 always traps to KVM, so the VMM's table answers. At
 * CPL 3 it does only where the host has CPUID faulting (not on the AMD
 * hosts), so guest_cpuid() comes here. */
.Lgate_cpuid:
        cpuid
        iretq
/* The address-space root, for guests that keep several (and for tests of
 * Argo's sending context, which stamps CR3). */
.Lgate_read_cr3:
        movq    %cr3, %rax
        iretq
.Lgate_load_cr3:
        movq    %rax, %cr3
        iretq

/*
 * WAIT: halt until an interrupt arrives, unless one (VIRQ or IPI) has
 * already been taken since the caller read its wake count (passed in EAX)
 * before checking for work. The gate cleared IF, so nothing can slip in
 * between the comparison and the HLT: an interrupt that arrives after the
 * comparison stays pending, and STI's one-instruction shadow makes it end
 * the HLT rather than be taken before it (where the shadow is not honoured,
 * the stubs step over the HLT: "early wake-up" above). It is taken here at
 * CPL 0 and returns to the CLI; IRETQ then restores the caller's RFLAGS.
 */
.Lgate_wait:
        cmpl    %eax, %gs:FW_PCPU_WAKES
        jne     1f
        sti
.Lgate_hlt:                             /* the interrupt stubs know this address */
        hlt
        cli
1:      iretq

        .section .rodata
        .balign 8
fw_gate_ops:
        .quad   .Lgate_outb             /* GUEST_GATE_OUTB */
        .quad   .Lgate_outw             /* GUEST_GATE_OUTW */
        .quad   .Lgate_outl             /* GUEST_GATE_OUTL */
        .quad   .Lgate_inb              /* GUEST_GATE_INB */
        .quad   .Lgate_inw              /* GUEST_GATE_INW */
        .quad   .Lgate_inl              /* GUEST_GATE_INL */
        .quad   .Lgate_outsb            /* GUEST_GATE_OUTSB */
        .quad   .Lgate_hypercall        /* GUEST_GATE_HYPERCALL */
        .quad   .Lgate_wait             /* GUEST_GATE_WAIT */
        .quad   .Lgate_cpuid            /* GUEST_GATE_CPUID */
        .quad   .Lgate_read_cr3         /* GUEST_GATE_READ_CR3 */
        .quad   .Lgate_load_cr3         /* GUEST_GATE_LOAD_CR3 */
        .if     (. - fw_gate_ops) != GUEST_GATE_NOPS * 8
        .error  "fw_gate_ops does not match GUEST_GATE_NOPS"
        .endif
        .text

/* Table of the 32 exception stubs, indexed by vector, for fw_idt_init. */
        .section .rodata
        .balign 8
        .globl  fw_exc_stubs
        .type   fw_exc_stubs, @object
fw_exc_stubs:
        .irp    v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad   fw_exc_\v
        .endr
        .size   fw_exc_stubs, . - fw_exc_stubs

        .section .note.GNU-stack, "", @progbits
