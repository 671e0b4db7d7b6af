/*
 * fw.h - firmware-internal declarations (not part of the guest API).
 */
#ifndef ARGOVISOR_FW_H
#define ARGOVISOR_FW_H

#include "guest.h"     /* its constants are visible to assembly too */

/*
 * Constants shared with the assembly files (which include this header with
 * __ASSEMBLER__ defined and see only this first part).
 *
 * Firmware GDT (docs/memory-layout.md, "Guest privilege"). Kernel code and
 * data keep the selectors of the VMM's boot GDT. User data sits right below
 * user code, the order SYSRET would want, although the firmware only ever
 * uses IRETQ. Then one 16-byte TSS descriptor per vCPU.
 */
#define FW_SEL_KCODE        0x08
#define FW_SEL_KDATA        0x10
#define FW_SEL_UDATA        0x1B    /* GDT slot 0x18, RPL 3 */
#define FW_SEL_UCODE        0x23    /* GDT slot 0x20, RPL 3 */
#define FW_SEL_TSS0         0x28    /* vCPU i: FW_SEL_TSS0 + 16 * i */

/* RFLAGS of CPL-3 code when the firmware enters it: IF = 1, IOPL 0. PVM
 * forces IOPL 0 at CPL 3 anyway (so IN/OUT/CLI/STI fault there on every
 * host alike). With IF = 1 interrupts are taken, and only counted, while
 * guest code runs, so polling for VIRQs needs no STI. */
#define FW_USER_RFLAGS      0x202

/* Interrupt stack (TSS.RSP0) of each vCPU, from the page allocator. */
#define FW_IRQ_STACK_PAGES  4       /* 16 KiB */

/* Byte offsets in struct fw_percpu (checked below). */
#define FW_PCPU_CPU         0
#define FW_PCPU_SELF        8
#define FW_PCPU_VIRQS       16      /* VIRQ arrivals not yet handed to the handler */
#define FW_PCPU_WAKES       20      /* interrupts taken (VIRQ + IPI), wraps */
#define FW_PCPU_EARLY       24      /* of those, taken between the wait's STI and HLT */
#define FW_PCPU_SHIFT       6       /* sizeof(struct fw_percpu) == 64 */

#define FW_MSR_GS_BASE          0xC0000101
#define FW_MSR_KERNEL_GS_BASE   0xC0000102
#define FW_LAPIC_EOI_ADDR       0xFEE000B0

#ifndef __ASSEMBLER__

#include <stdint.h>
#include <stddef.h>

/* Boot info block written by the VMM at GPA 0x1000 (docs/memory-layout.md). */
struct fw_bootinfo {
    uint64_t magic;
    uint32_t version;
    uint16_t domid;
    uint16_t reserved0;
    uint32_t ncpus;
    uint32_t virq_vector;
    uint64_t ram_size;
    uint64_t heap_start;
    uint64_t heap_end;
    uint16_t serial_port;
    uint16_t exit_port;
    uint16_t crash_port;
    uint16_t hypercall_port;
    uint32_t params_len;
    uint32_t restarts;      /* times the VMM has restarted this domain */
    char params[];
};

_Static_assert(offsetof(struct fw_bootinfo, ncpus) == 16, "bootinfo layout");
_Static_assert(offsetof(struct fw_bootinfo, heap_end) == 40, "bootinfo layout");
_Static_assert(offsetof(struct fw_bootinfo, serial_port) == 48, "bootinfo layout");
_Static_assert(offsetof(struct fw_bootinfo, params_len) == 56, "bootinfo layout");
_Static_assert(offsetof(struct fw_bootinfo, restarts) == 60, "bootinfo layout");
_Static_assert(offsetof(struct fw_bootinfo, params) == 64, "bootinfo layout");

#define FW_PARAMS_MAX 8128u

/* Register image built by the stubs in isr.S; it is also the crash frame
 * handed to the VMM. Lowest address first. */
struct fw_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};

_Static_assert(sizeof(struct fw_frame) == 22 * 8, "crash frame is 22 u64");

/* Per-CPU block; IA32_GS_BASE points at it. The cpu index must stay at
 * offset 0 (entry.S stores it there, guest_cpu_id reads %gs:0). */
struct fw_percpu {
    uint32_t cpu;
    uint32_t reserved;
    uint64_t self;
    /* Bumped by the CPL-0 VIRQ stub (isr.S), taken (exchanged with 0) by
     * the CPL-3 code that runs the handler (trap.c). Only this vCPU
     * touches it, and each side is a single instruction, so interrupts
     * cannot tear it. */
    volatile uint32_t virqs_pending;
    /* Bumped by the VIRQ and IPI stubs; the wait gate halts only while it
     * still has the value the caller read before checking for work. */
    volatile uint32_t wakes;
    /* Interrupts the stubs found taken inside the wait gate's STI shadow,
     * which hardware never does (isr.S, "early wake-ups"): a count for
     * diagnosis, read by the VMM's tests. */
    volatile uint32_t early_wakes;
    uint32_t reserved2;
    uint64_t pad[4];
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct fw_percpu) == 1 << FW_PCPU_SHIFT, "entry.S assumes 64-byte blocks");
_Static_assert(offsetof(struct fw_percpu, cpu) == FW_PCPU_CPU, "percpu layout");
_Static_assert(offsetof(struct fw_percpu, self) == FW_PCPU_SELF, "percpu layout");
_Static_assert(offsetof(struct fw_percpu, virqs_pending) == FW_PCPU_VIRQS, "percpu layout");
_Static_assert(offsetof(struct fw_percpu, wakes) == FW_PCPU_WAKES, "percpu layout");
_Static_assert(offsetof(struct fw_percpu, early_wakes) == FW_PCPU_EARLY, "percpu layout");

extern struct fw_percpu fw_percpu[GUEST_MAX_CPUS];

/* Set to 1 by the BSP once .bss is clear and the IDT exists; lives in .data
 * (defined in entry.S) so that zeroing .bss cannot race with the APs. */
extern volatile uint32_t fw_boot_ready;

/* Firmware state filled from the boot info by the BSP. */
struct fw_state {
    const struct fw_bootinfo *bi;
    int bootinfo_ok;
    uint16_t domid;
    unsigned ncpus;
    unsigned virq_vector;
    uint64_t ram_size;
    uint32_t restarts;
    const char *params;
    uint32_t params_len;
};

extern struct fw_state fw;

/* Ports: initialised in .data with the documented defaults, overridden from
 * the boot info when it is valid. */
extern uint16_t fw_serial_port;
extern uint16_t fw_exit_port;
extern uint16_t fw_crash_port;

/* Linker script symbols. */
extern char __bss_start[], __bss_end[], _end[];

/* entry.S -> C, at CPL 0 */
void fw_bsp_init(unsigned cpu, const struct fw_bootinfo *bi);
void fw_ap_init(unsigned cpu);
/* entry.S -> C, at CPL 3 */
__attribute__((noreturn)) void fw_ap_main(unsigned cpu);

/* entry.S: load user data selectors into DS/ES/FS/GS, point IA32_GS_BASE
 * at fw_percpu[cpu] again (loading GS cleared it) and IRETQ to rip at CPL 3
 * on stack rsp with RFLAGS = FW_USER_RFLAGS. Called at CPL 0 after
 * fw_cpu_load_tables. */
__attribute__((noreturn)) void fw_enter_user(unsigned cpu, uint64_t rsp, void (*rip)(void));

/* trap.c */
void fw_idt_init(unsigned virq_vector);
void fw_idt_load(void);
/* Builds the firmware GDT and one TSS per vCPU (RSP0 = irq_stack_top[i]). */
void fw_gdt_init(unsigned ncpus, const uint64_t *irq_stack_top);
/* LGDT, LTR (this vCPU's TSS) and LIDT; CPL 0. */
void fw_cpu_load_tables(unsigned cpu);
__attribute__((noreturn)) void fw_exception(struct fw_frame *f);
/* Runs the VIRQ handler once per VIRQ that reached this vCPU since the last
 * call; returns how many there were. CPL 3. */
unsigned fw_run_pending_virqs(void);

/* console.c */
void fw_console_write(const char *s, size_t n);   /* locked, one exit per chunk */
/* Used by the exception path: takes the console lock unless this vCPU holds
 * it already, and gives up waiting after a while. */
int fw_console_printf_emergency(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Page allocator (fw.c). fw_alloc_raw: like guest_alloc_pages but does not
 * zero the pages (used at CPL 0, where every instruction is expensive). */
void fw_alloc_init(uint64_t start, uint64_t end);
void *fw_alloc_raw(size_t npages);

/* Local APIC (xAPIC MMIO; every access is a volatile 32-bit load/store). */
#define LAPIC_ID       0x020
#define LAPIC_TPR      0x080
#define LAPIC_EOI      0x0B0
#define LAPIC_SVR      0x0F0
#define LAPIC_ICR_LOW  0x300
#define LAPIC_ICR_HIGH 0x310
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360

static inline uint32_t fw_lapic_read(uint32_t reg)
{
    return *(volatile uint32_t *)(GUEST_LAPIC_BASE + reg);
}

static inline void fw_lapic_write(uint32_t reg, uint32_t val)
{
    *(volatile uint32_t *)(GUEST_LAPIC_BASE + reg) = val;
}

void fw_lapic_enable(void);
void fw_lapic_send_ipi(unsigned apic_id, unsigned vector);

/* Current privilege level (the RPL bits of CS equal the CPL). */
static inline unsigned fw_cpl(void)
{
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    return cs & 3;
}

/* This vCPU's wake count (struct fw_percpu.wakes). */
static inline uint32_t fw_wakes(void)
{
    uint32_t w;
    __asm__ volatile("movl %%gs:%c1, %0" : "=r"(w) : "i"(FW_PCPU_WAKES) : "memory");
    return w;
}

/* CPL 3 only: halt in the firmware gate until an interrupt arrives, unless
 * one has arrived since `wakes` was read with fw_wakes(). */
static inline void fw_gate_wait(uint32_t wakes)
{
    register unsigned long op __asm__("r11") = GUEST_GATE_WAIT;
    __asm__ volatile("int %[vec]"
                     : "+r"(op)
                     : [vec] "i"(GUEST_GATE_VECTOR), "a"(wakes)
                     : "memory");
}

/* Port output that works at either privilege level: direct at CPL 0 (boot,
 * exception reports), through the firmware gate at CPL 3. */
void fw_out32(uint16_t port, uint32_t v);
void fw_outsb(uint16_t port, const char *s, size_t n);

/*
 * Firmware spinlock. Interrupts are not disabled around it: the interrupt
 * stubs never take a lock (they only count), so an interrupt cannot spin on
 * a lock its own vCPU holds. (CLI/STI are not available at CPL 3 anyway.)
 */
typedef struct {
    volatile uint32_t locked;
} fw_lock_t;

static inline void fw_lock(fw_lock_t *l)
{
    while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE) != 0) {
        while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0)
            __asm__ volatile("pause" : : : "memory");
    }
}

static inline void fw_unlock(fw_lock_t *l)
{
    __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

#endif /* !__ASSEMBLER__ */

#endif /* ARGOVISOR_FW_H */
