/*
 * entry.S - ELF entry point of every argovisor guest kernel, and the drop
 * from CPL 0 to CPL 3.
 *
 * The VMM starts all vCPUs at the same time, here, already in 64-bit long
 * mode with paging on, at CPL 0:
 *   RDI = vCPU index, RSI = boot info (0x1000), RSP = this vCPU's stack top
 *   (16-byte aligned), RFLAGS.IF = 0.
 *
 * Everything before the drop to CPL 3 is kept short: on nested KVM (PVM)
 * CPL-0 code is emulated, about a microsecond per instruction.
 *
 * vCPU 0 (the BSP) clears .bss, points IA32_GS_BASE at its per-CPU block and
 * lets fw_bsp_init() parse the boot info, allocate the interrupt stacks,
 * build and load the GDT/TSS/IDT, enable the LAPIC and publish
 * fw_boot_ready. It then drops to CPL 3 on its boot stack and runs
 * guest_main() and guest_exit() there.
 *
 * Every other vCPU (AP) must not touch .bss before the BSP has cleared it:
 * it spins on fw_boot_ready, which lives in .data (so clearing .bss never
 * writes it), then sets up its per-CPU block, loads the tables and enables
 * its LAPIC (fw_ap_init), and drops to CPL 3 into fw_ap_main(), the idle
 * loop.
 *
 * Registers kept across the C calls (callee-saved): r12 = vCPU index,
 * r13 = boot info, r14 = the stack top the VMM gave us.
 */

#include "fw.h"

        .section .text.entry, "ax", @progbits
        .globl  _start
        .type   _start, @function
_start:
        cli
        cld
        movl    %edi, %r12d             /* vCPU index */
        movq    %rsi, %r13              /* boot info */
        movq    %rsp, %r14              /* boot stack top, reused at CPL 3 */
        xorl    %ebp, %ebp              /* terminate frame-pointer chains */

        testl   %r12d, %r12d
        jnz     .Lap

        /* ---- BSP ---------------------------------------------------- */
        /* Clear .bss. Nothing lives there yet that anybody is using:
         * the APs only read fw_boot_ready (.data) until we publish it. */
        movl    $__bss_start, %edi
        movl    $__bss_end, %ecx
        subq    %rdi, %rcx
        shrq    $3, %rcx                /* guest.ld aligns both ends to 16 */
        xorl    %eax, %eax
        rep stosq

        call    .Lset_gs                /* uses %r12d */

        movl    %r12d, %edi
        movq    %r13, %rsi
        call    fw_bsp_init             /* RSP is 16-byte aligned here */

        movl    %r12d, %edi
        movq    %r14, %rsi
        leaq    .Lbsp_user(%rip), %rdx
        call    fw_enter_user           /* does not return */

        /* ---- AP ----------------------------------------------------- */
.Lap:
1:      movl    fw_boot_ready(%rip), %eax
        testl   %eax, %eax
        jnz     2f
        pause
        jmp     1b
2:
        /* x86 keeps loads ordered: everything the BSP wrote before it set
         * the flag (cleared .bss, tables, boot state) is visible now. */
        cmpl    $GUEST_MAX_CPUS, %r12d
        jae     .Lpark                  /* no per-CPU block for this one */

        call    .Lset_gs

        movl    %r12d, %edi
        call    fw_ap_init

        movl    %r12d, %edi
        movq    %r14, %rsi
        leaq    .Lap_user(%rip), %rdx
        call    fw_enter_user           /* does not return */

.Lpark:
        cli
        hlt
        jmp     .Lpark

/*
 * .Lset_gs: fill fw_percpu[%r12d] and load IA32_GS_BASE with its address.
 * Clobbers rax, rcx, rdx. Entered with a return address on the stack, which
 * is fine: it calls nothing.
 */
.Lset_gs:
        movl    %r12d, %eax
        shlq    $FW_PCPU_SHIFT, %rax
        addq    $fw_percpu, %rax        /* kernel is below 2 GiB: 32-bit sign-extended immediate */
        movl    %r12d, FW_PCPU_CPU(%rax) /* cpu index at %gs:0 */
        movq    %rax, FW_PCPU_SELF(%rax) /* self pointer */
        movq    %rax, %rdx
        shrq    $32, %rdx
        movl    $FW_MSR_GS_BASE, %ecx
        wrmsr
        ret
        .size   _start, . - _start

/*
 * void fw_enter_user(unsigned cpu, uint64_t rsp, void (*rip)(void))
 *
 * Last CPL-0 code a vCPU runs outside interrupt, exception and gate
 * handlers. The firmware GDT and this vCPU's TSS are loaded already.
 *
 * DS/ES/FS/GS get the user data selector: IRETQ to CPL 3 would otherwise
 * null any of them whose descriptor has DPL 0, which may also wipe the GS
 * base. Loading GS from a descriptor sets its base to 0, so IA32_GS_BASE is
 * written again afterwards; nothing reloads GS later, so %gs-relative
 * per-CPU data works at CPL 3 and in the handlers. IA32_KERNEL_GS_BASE
 * gets the same value: a host that swaps the two on privilege changes (as
 * PVM does for its own guests) then still leaves the right base in place.
 */
        .text
        .globl  fw_enter_user
        .type   fw_enter_user, @function
fw_enter_user:
        movq    %rdx, %r8               /* rip: wrmsr needs rdx */
        movl    $FW_SEL_UDATA, %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %fs
        movl    %eax, %gs

        movl    %edi, %eax
        shlq    $FW_PCPU_SHIFT, %rax
        addq    $fw_percpu, %rax
        movq    %rax, %rdx
        shrq    $32, %rdx
        movl    $FW_MSR_GS_BASE, %ecx
        wrmsr
        movl    $FW_MSR_KERNEL_GS_BASE, %ecx
        wrmsr

        pushq   $FW_SEL_UDATA           /* SS */
        pushq   %rsi                    /* RSP */
        pushq   $FW_USER_RFLAGS         /* RFLAGS: IF = 1, IOPL 0 */
        pushq   $FW_SEL_UCODE           /* CS */
        pushq   %r8                     /* RIP */
        iretq
        .size   fw_enter_user, . - fw_enter_user

/*
 * CPL-3 starting points. RSP is the 16-byte aligned stack top, so the CALLs
 * below leave the callee the alignment the ABI expects. r12 still holds the
 * vCPU index (IRETQ does not touch general registers).
 */
        .type   .Lbsp_user, @function
.Lbsp_user:
        call    guest_main
        movl    %eax, %edi
        call    guest_exit              /* does not return */
        ud2
        .size   .Lbsp_user, . - .Lbsp_user

        .type   .Lap_user, @function
.Lap_user:
        movl    %r12d, %edi
        call    fw_ap_main              /* does not return */
        ud2
        .size   .Lap_user, . - .Lap_user

        /* Published by the BSP; must not be in .bss (see above). */
        .section .data
        .balign 64
        .globl  fw_boot_ready
        .type   fw_boot_ready, @object
fw_boot_ready:
        .long   0
        .size   fw_boot_ready, 4

        .section .note.GNU-stack, "", @progbits
