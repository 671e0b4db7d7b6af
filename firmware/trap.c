/*
 * trap.c - GDT and per-vCPU TSS, IDT, exception reporting, VIRQ delivery to
 * the CPL-3 handler, local APIC.
 */
#include "fw.h"

/* ---- GDT and TSS ------------------------------------------------------------ */

/* 64-bit TSS. Only RSP0 is used: the stack the CPU switches to when an
 * interrupt, exception or gate call arrives at CPL 3. No IST, no I/O bitmap
 * (the map base points past the limit, so IN/OUT at CPL 3 fault; guest
 * code does port I/O through the firmware gate). */
struct fw_tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed, aligned(8)));

_Static_assert(sizeof(struct fw_tss) == 104, "64-bit TSS is 104 bytes");

#define GDT_FIXED       5                       /* null, kcode, kdata, udata, ucode */
#define GDT_ENTRIES     (GDT_FIXED + 2 * GUEST_MAX_CPUS)

_Static_assert(FW_SEL_TSS0 == GDT_FIXED * 8, "TSS descriptors follow the fixed ones");
_Static_assert((FW_SEL_UDATA & ~3) == 3 * 8 && (FW_SEL_UCODE & ~3) == 4 * 8, "user selectors");

/* Flat descriptors (base 0, limit 4 GiB, G), accessed bit preset so that
 * the CPU never needs to write them. */
#define DESC_KCODE      0x00AF9B000000FFFFULL   /* P, DPL 0, code, L */
#define DESC_KDATA      0x00CF93000000FFFFULL   /* P, DPL 0, data, writable, D/B */
#define DESC_UDATA      0x00CFF3000000FFFFULL   /* P, DPL 3, data, writable, D/B */
#define DESC_UCODE      0x00AFFB000000FFFFULL   /* P, DPL 3, code, L */

static uint64_t gdt[GDT_ENTRIES] __attribute__((aligned(16)));
static struct fw_tss tss[GUEST_MAX_CPUS];

struct desc_ptr {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

void fw_gdt_init(unsigned ncpus, const uint64_t *irq_stack_top)
{
    gdt[0] = 0;
    gdt[FW_SEL_KCODE / 8] = DESC_KCODE;
    gdt[FW_SEL_KDATA / 8] = DESC_KDATA;
    gdt[FW_SEL_UDATA / 8] = DESC_UDATA;
    gdt[FW_SEL_UCODE / 8] = DESC_UCODE;

    for (unsigned i = 0; i < ncpus && i < GUEST_MAX_CPUS; i++) {
        uint64_t base = (uint64_t)(uintptr_t)&tss[i];
        uint64_t limit = sizeof(struct fw_tss) - 1;
        unsigned slot = FW_SEL_TSS0 / 8 + 2 * i;

        tss[i].rsp[0] = irq_stack_top[i];
        tss[i].iomap_base = sizeof(struct fw_tss);
        /* Available 64-bit TSS (type 9), present, DPL 0. */
        gdt[slot] = (limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | 0x89ULL << 40 |
                    ((limit >> 16) & 0xF) << 48 | ((base >> 24) & 0xFF) << 56;
        gdt[slot + 1] = base >> 32;
    }
}

/* ---- IDT ---------------------------------------------------------------------- */

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

#define GATE_INTR64     0x8E    /* present, DPL 0, 64-bit interrupt gate */
#define GATE_INTR64_U   0xEE    /* the same with DPL 3: INT n allowed from CPL 3 */

/* Not static: guest/fixtures/triplefault.c clears it from CPL 3. */
struct idt_gate fw_idt[256] __attribute__((aligned(16)));

extern void (*const fw_exc_stubs[32])(void);
extern void fw_irq_virq(void);
extern void fw_irq_ipi(void);
extern void fw_irq_spurious(void);
extern void fw_gate(void);

static void (*volatile virq_handler)(void);

static void set_gate(unsigned vec, void (*fn)(void), uint8_t type_attr)
{
    uint64_t a = (uint64_t)(uintptr_t)fn;

    fw_idt[vec].offset_lo = (uint16_t)a;
    fw_idt[vec].selector = FW_SEL_KCODE;
    fw_idt[vec].ist = 0;
    fw_idt[vec].type_attr = type_attr;
    fw_idt[vec].offset_mid = (uint16_t)(a >> 16);
    fw_idt[vec].offset_hi = (uint32_t)(a >> 32);
    fw_idt[vec].reserved = 0;
}

/*
 * Vectors without a gate stay not-present: delivering one raises #NP with
 * an error code naming the vector, which fw_exception decodes. INT n from
 * CPL 3 is only allowed on vector 3 (INT3 keeps reporting #BP) and on the
 * firmware gate, vector 4; anything else is a #GP (or, on PVM, a #UD).
 */
void fw_idt_init(unsigned virq_vector)
{
    for (unsigned v = 0; v < 32; v++)
        set_gate(v, fw_exc_stubs[v], v == 3 ? GATE_INTR64_U : GATE_INTR64);
    set_gate(GUEST_GATE_VECTOR, fw_gate, GATE_INTR64_U);
    set_gate(virq_vector, fw_irq_virq, GATE_INTR64);
    set_gate(GUEST_IPI_VECTOR, fw_irq_ipi, GATE_INTR64);
    set_gate(GUEST_SPURIOUS_VECTOR, fw_irq_spurious, GATE_INTR64);
}

void fw_idt_load(void)
{
    struct desc_ptr p = {
        .limit = sizeof(fw_idt) - 1,
        .base = (uint64_t)(uintptr_t)fw_idt,
    };
    __asm__ volatile("lidt %0" : : "m"(p) : "memory");
}

void fw_cpu_load_tables(unsigned cpu)
{
    struct desc_ptr g = {
        .limit = sizeof(gdt) - 1,
        .base = (uint64_t)(uintptr_t)gdt,
    };
    uint16_t tr = (uint16_t)(FW_SEL_TSS0 + 16 * cpu);

    /* CS (0x08) and SS (0x10) keep their cached descriptors, which are the
     * same as the new GDT's; DS/ES/FS/GS are reloaded by fw_enter_user. */
    __asm__ volatile("lgdt %0\n\tltr %1" : : "m"(g), "r"(tr) : "memory");
    fw_idt_load();
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

/* Called at CPL 3 (the APIC page is user-accessible). Only vCPU 0 sends
 * IPIs, and the interrupt stubs never touch the ICR, so the two writes
 * cannot be interleaved with another sender's. */
void fw_lapic_send_ipi(unsigned apic_id, unsigned vector)
{
    while (fw_lapic_read(LAPIC_ICR_LOW) & ICR_PENDING)
        __asm__ volatile("pause");
    fw_lapic_write(LAPIC_ICR_HIGH, (uint32_t)apic_id << 24);
    fw_lapic_write(LAPIC_ICR_LOW, ICR_ASSERT | (vector & 0xFF)); /* this write sends it */
}

/* ---- interrupts ------------------------------------------------------------- */

void guest_set_virq_handler(void (*handler)(void))
{
    virq_handler = handler;
}

unsigned fw_run_pending_virqs(void)
{
    uint32_t n = 0;

    /* XCHG is one instruction, so the VIRQ stub on this vCPU (the only
     * other writer) runs either before or after it, never in between. */
    __asm__ volatile("xchgl %0, %%gs:%c1" : "+r"(n) : "i"(FW_PCPU_VIRQS) : "memory");
    for (uint32_t i = 0; i < n; i++) {
        void (*h)(void) = virq_handler;
        if (h)
            h();
    }
    return n;
}

void guest_wait_for_interrupt(void)
{
    /* Read before looking for work: a VIRQ or IPI taken after this point
     * makes the gate return at once instead of halting. */
    uint32_t wakes = fw_wakes();

    /* VIRQs counted earlier (taken while CPL-3 code ran) are handled
     * without halting. */
    if (fw_run_pending_virqs())
        return;
    fw_gate_wait(wakes);
    fw_run_pending_virqs();
}

void guest_poll_virq(void)
{
    fw_run_pending_virqs();
}

/* ---- exceptions --------------------------------------------------------------- */

static const char *const exc_names[32] = {
    [0] = "#DE divide error",
    [1] = "#DB debug",
    [2] = "NMI",
    [3] = "#BP breakpoint",
    [4] = "bad firmware gate call (INT 4, unknown R11)",
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
    if (vec == GUEST_GATE_VECTOR)
        fw_console_printf_emergency("  r11=0x%lx\n", f->r11);
    if ((vec == 11 || vec == 13) && (f->error_code & 2)) {
        /* Error code refers to an IDT entry: an interrupt arrived on a
         * vector without a gate (#NP), or the gate was unusable (#GP). */
        fw_console_printf_emergency("  no handler for interrupt vector 0x%lx\n",
                                    (f->error_code >> 3) & 0xFF);
    }
    fw_console_printf_emergency(
        "  vcpu %u cs=0x%lx rsp=0x%lx rbp=0x%lx rflags=0x%lx rax=0x%lx rdi=0x%lx rsi=0x%lx\n",
        guest_cpu_id(), f->cs, f->rsp, f->rbp, f->rflags, f->rax, f->rdi, f->rsi);

    /* Crash report: EAX = vector, RDI = frame. The VMM stops the domain. */
    __asm__ volatile("outl %%eax, %%dx"
                     : : "a"((uint32_t)vec), "D"(f), "d"(fw_crash_port)
                     : "memory");
    for (;;)
        __asm__ volatile("cli\n\thlt" : : : "memory");
}
