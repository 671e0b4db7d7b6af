/*
 * entry.S - ELF entry point of every argovisor guest kernel.
 *
 * The VMM starts all vCPUs at the same time, here, already in 64-bit long
 * mode with paging on:
 *   RDI = vCPU index, RSI = boot info (0x1000), RSP = this vCPU's stack top
 *   (16-byte aligned), RFLAGS.IF = 0.
 *
 * vCPU 0 (the BSP) clears .bss, points IA32_GS_BASE at its per-CPU block,
 * lets fw_bsp_init() parse the boot info / build the IDT / enable the LAPIC
 * and publish fw_boot_ready, then runs guest_main() and exits with its
 * return value.
 *
 * Every other vCPU (AP) must not touch .bss before the BSP has cleared it:
 * it spins on fw_boot_ready, which lives in .data (so clearing .bss never
 * writes it), and only then sets up its own per-CPU block and enters
 * fw_ap_main().
 */

#define MSR_GS_BASE     0xC0000101
#define MAX_CPUS        64      /* GUEST_MAX_CPUS */
#define PERCPU_SHIFT    6       /* sizeof(struct fw_percpu) == 64 */

        .section .text.entry, "ax", @progbits
        .globl  _start
        .type   _start, @function
_start:
        cli
        cld
        movl    %edi, %r12d             /* vCPU index, kept in callee-saved regs */
        movq    %rsi, %r13              /* boot info */
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

        call    guest_main
        movl    %eax, %edi
        call    guest_exit
        jmp     .Lpark

        /* ---- AP ----------------------------------------------------- */
.Lap:
1:      movl    fw_boot_ready(%rip), %eax
        testl   %eax, %eax
        jnz     2f
        pause
        jmp     1b
2:
        /* x86 keeps loads ordered: everything the BSP wrote before it set
         * the flag (cleared .bss, IDT, boot state) is visible now. */
        cmpl    $MAX_CPUS, %r12d
        jae     .Lpark                  /* no per-CPU block for this one */

        call    .Lset_gs

        movl    %r12d, %edi
        call    fw_ap_main              /* does not return */

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
        shlq    $PERCPU_SHIFT, %rax
        addq    $fw_percpu, %rax        /* kernel is below 2 GiB: 32-bit sign-extended immediate */
        movl    %r12d, 0(%rax)          /* cpu index at %gs:0 */
        movq    %rax, 8(%rax)           /* self pointer */
        movq    %rax, %rdx
        shrq    $32, %rdx
        movl    $MSR_GS_BASE, %ecx
        wrmsr
        ret
        .size   _start, . - _start

        /* Published by the BSP; must not be in .bss (see above). */
        .section .data
        .balign 64
        .globl  fw_boot_ready
        .type   fw_boot_ready, @object
fw_boot_ready:
        .long   0
        .size   fw_boot_ready, 4

        .section .note.GNU-stack, "", @progbits
