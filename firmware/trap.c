/*
 * trap.c - IDT, exception reporting, interrupt dispatch, local APIC.
 */
#include "fw.h"

struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct idt_gate) == 16, "64-bit IDT gate is 16 bytes");

struct idt_ptr {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

#define KERNEL_CS       0x08
#define GATE_INTR64     0x8E    /* present, DPL 0, 64-bit interrupt gate */

static struct idt_gate idt[256] __attribute__((aligned(16)));

extern void (*const fw_exc_stubs[32])(void);
extern void fw_irq_virq(void);
extern void fw_irq_ipi(void);
extern void fw_irq_spurious(void);

static void (*volatile virq_handler)(void);

static void set_gate(unsigned vec, void (*fn)(void))
{
    uint64_t a = (uint64_t)(uintptr_t)fn;

    idt[vec].offset_lo = (uint16_t)a;
    idt[vec].selector = KERNEL_CS;
    idt[vec].ist = 0;
    idt[vec].type_attr = GATE_INTR64;
    idt[vec].offset_mid = (uint16_t)(a >> 16);
    idt[vec].offset_hi = (uint32_t)(a >> 32);
    idt[vec].reserved = 0;
}

/*
 * Vectors without a gate stay not-present: delivering one raises #NP with
 * an error code naming the vector, which fw_exception decodes.
 */
void fw_idt_init(unsigned virq_vector)
{
    for (unsigned v = 0; v < 32; v++)
        set_gate(v, fw_exc_stubs[v]);
    set_gate(virq_vector, fw_irq_virq);
    set_gate(GUEST_IPI_VECTOR, fw_irq_ipi);
    set_gate(GUEST_SPURIOUS_VECTOR, fw_irq_spurious);
}

void fw_idt_load(void)
{
    struct idt_ptr p = {
        .limit = sizeof(idt) - 1,
        .base = (uint64_t)(uintptr_t)idt,
    };
    __asm__ volatile("lidt %0" : : "m"(p) : "memory");
}

/* ---- local APIC ------------------------------------------------------------ */

#define SVR_ENABLE      0x100
#define LVT_MASKED      0x10000
#define ICR_PENDING     0x1000
#define ICR_ASSERT      0x4000  /* level = assert; fixed delivery, physical dest, edge */

void fw_lapic_enable(void)
{
    fw_lapic_write(LAPIC_TPR, 0);
    /* LINT0/LINT1 are not used: VIRQs and IPIs arrive as fixed interrupts
     * (MSI / ICR). Masking LINT0 keeps a stray legacy PIC interrupt (KVM
     * resets the BSP's LINT0 to ExtINT) from landing on an exception
     * vector. */
    fw_lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
    fw_lapic_write(LAPIC_SVR, SVR_ENABLE | GUEST_SPURIOUS_VECTOR);
}

void fw_lapic_send_ipi(unsigned apic_id, unsigned vector)
{
    unsigned long flags = fw_irq_save();

    while (fw_lapic_read(LAPIC_ICR_LOW) & ICR_PENDING)
        __asm__ volatile("pause");
    fw_lapic_write(LAPIC_ICR_HIGH, (uint32_t)apic_id << 24);
    fw_lapic_write(LAPIC_ICR_LOW, ICR_ASSERT | (vector & 0xFF)); /* this write sends it */
    fw_irq_restore(flags);
}

/* ---- interrupts ------------------------------------------------------------- */

void guest_set_virq_handler(void (*handler)(void))
{
    virq_handler = handler;
}

void guest_wait_for_interrupt(void)
{
    /* STI only takes effect after the next instruction, so an interrupt
     * that became pending before this point wakes the HLT instead of being
     * taken in between. */
    __asm__ volatile("sti\n\thlt\n\tcli" : : : "memory");
}

/* Called by fw_irq_common with interrupts disabled; the stub sends the EOI. */
void fw_irq_dispatch(struct fw_frame *f)
{
    if (f->vector == GUEST_IPI_VECTOR) {
        /* Wake-up only: the AP idle loop looks at the mailbox after HLT. */
        return;
    }
    void (*h)(void) = virq_handler;
    if (h)
        h();
}

/* ---- exceptions --------------------------------------------------------------- */

static const char *const exc_names[32] = {
    [0] = "#DE divide error",
    [1] = "#DB debug",
    [2] = "NMI",
    [3] = "#BP breakpoint",
    [4] = "#OF overflow",
    [5] = "#BR bound range exceeded",
    [6] = "#UD invalid opcode",
    [7] = "#NM device not available",
    [8] = "#DF double fault",
    [9] = "coprocessor segment overrun",
    [10] = "#TS invalid TSS",
    [11] = "#NP segment not present",
    [12] = "#SS stack-segment fault",
    [13] = "#GP general protection",
    [14] = "#PF page fault",
    [15] = "reserved",
    [16] = "#MF x87 floating-point error",
    [17] = "#AC alignment check",
    [18] = "#MC machine check",
    [19] = "#XM SIMD floating-point",
    [20] = "#VE virtualization exception",
    [21] = "#CP control protection",
    [22] = "reserved",
    [23] = "reserved",
    [24] = "reserved",
    [25] = "reserved",
    [26] = "reserved",
    [27] = "reserved",
    [28] = "#HV hypervisor injection",
    [29] = "#VC VMM communication",
    [30] = "#SX security exception",
    [31] = "reserved",
};

static inline uint64_t read_cr2(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

void fw_exception(struct fw_frame *f)
{
    uint64_t vec = f->vector;
    const char *name = vec < 32 ? exc_names[vec] : "unknown";

    if (vec == 14) {
        fw_console_printf_emergency(
            "exception %lu (%s) at rip=0x%lx err=0x%lx cr2=0x%lx\n",
            vec, name, f->rip, f->error_code, read_cr2());
    } else {
        fw_console_printf_emergency(
            "exception %lu (%s) at rip=0x%lx err=0x%lx\n",
            vec, name, f->rip, f->error_code);
    }
    if ((vec == 11 || vec == 13) && (f->error_code & 2)) {
        /* Error code refers to an IDT entry: an interrupt arrived on a
         * vector without a gate (#NP), or the gate was unusable (#GP). */
        fw_console_printf_emergency("  no handler for interrupt vector 0x%lx\n",
                                    (f->error_code >> 3) & 0xFF);
    }
    fw_console_printf_emergency(
        "  vcpu %u rsp=0x%lx rbp=0x%lx rflags=0x%lx rax=0x%lx rdi=0x%lx rsi=0x%lx\n",
        guest_cpu_id(), f->rsp, f->rbp, f->rflags, f->rax, f->rdi, f->rsi);

    /* Crash report: EAX = vector, RDI = frame. The VMM stops the domain. */
    __asm__ volatile("outl %%eax, %%dx"
                     : : "a"((uint32_t)vec), "D"(f), "d"(fw_crash_port)
                     : "memory");
    for (;;)
        __asm__ volatile("cli\n\thlt" : : : "memory");
}
