/*
 * isr.S - interrupt and exception entry stubs.
 *
 * All gates are 64-bit interrupt gates on the current stack (no IST, no
 * privilege change). On entry the CPU has aligned RSP down to 16 bytes and
 * pushed SS, RSP, RFLAGS, CS, RIP and, for some exceptions, an error code.
 * Each stub makes the error-code slot uniform (pushing 0 where the CPU does
 * not), pushes its vector and then the common code pushes the general
 * registers so that, from the final RSP upward, memory reads
 *
 *   r15 r14 r13 r12 r11 r10 r9 r8 rbp rdi rsi rdx rcx rbx rax
 *   vector error_code rip cs rflags rsp ss
 *
 * which is struct fw_frame and the crash frame of docs/memory-layout.md.
 *
 * Stack alignment: the 5 CPU words + error code + vector + 15 registers are
 * 22 * 8 = 176 bytes = 11 * 16 below a 16-byte aligned address, so RSP is
 * 16-byte aligned when the C handlers are called.
 */

#define LAPIC_EOI_ADDR  0xFEE000B0

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

.macro  restore_regs
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %r11
        popq    %r10
        popq    %r9
        popq    %r8
        popq    %rbp
        popq    %rdi
        popq    %rsi
        popq    %rdx
        popq    %rcx
        popq    %rbx
        popq    %rax
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

/* Hardware interrupts: VIRQ (0x30 by default) and the wake-up IPI (0x31). */
        .globl  fw_irq_virq
        .type   fw_irq_virq, @function
fw_irq_virq:
        pushq   $0
        pushq   $0x30
        jmp     fw_irq_common
        .size   fw_irq_virq, . - fw_irq_virq

        .globl  fw_irq_ipi
        .type   fw_irq_ipi, @function
fw_irq_ipi:
        pushq   $0
        pushq   $0x31
        jmp     fw_irq_common
        .size   fw_irq_ipi, . - fw_irq_ipi

        .type   fw_irq_common, @function
fw_irq_common:
        save_regs
        cld
        movq    %rsp, %rdi
        call    fw_irq_dispatch
        /* EOI: a 32-bit store of 0. The address does not fit a sign-extended
         * 32-bit displacement, so go through a register. */
        movl    $LAPIC_EOI_ADDR, %eax
        movl    $0, (%rax)
        restore_regs
        addq    $16, %rsp               /* vector + error code */
        iretq                           /* pops RIP, CS, RFLAGS, RSP, SS */
        .size   fw_irq_common, . - fw_irq_common

/* APIC spurious interrupt: no EOI, nothing to do. */
        .globl  fw_irq_spurious
        .type   fw_irq_spurious, @function
fw_irq_spurious:
        iretq
        .size   fw_irq_spurious, . - fw_irq_spurious

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
