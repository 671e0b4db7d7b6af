/*
 * fw.h - firmware-internal declarations (not part of the guest API).
 */
#ifndef ARGOVISOR_FW_H
#define ARGOVISOR_FW_H

#include <stdint.h>
#include <stddef.h>
#include "guest.h"

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
    uint32_t reserved1;
    char params[];
};

_Static_assert(offsetof(struct fw_bootinfo, ncpus) == 16, "bootinfo layout");
_Static_assert(offsetof(struct fw_bootinfo, heap_end) == 40, "bootinfo layout");
_Static_assert(offsetof(struct fw_bootinfo, serial_port) == 48, "bootinfo layout");
_Static_assert(offsetof(struct fw_bootinfo, params_len) == 56, "bootinfo layout");
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
    uint64_t pad[6];
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct fw_percpu) == 64, "entry.S assumes 64-byte blocks");

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

/* entry.S -> C */
void fw_bsp_init(unsigned cpu, const struct fw_bootinfo *bi);
__attribute__((noreturn)) void fw_ap_main(unsigned cpu);

/* trap.c */
void fw_idt_init(unsigned virq_vector);
void fw_idt_load(void);
__attribute__((noreturn)) void fw_exception(struct fw_frame *f);
void fw_irq_dispatch(struct fw_frame *f);

/* console.c */
void fw_console_write(const char *s, size_t n);   /* locked, one exit per chunk */
/* Used by the exception path: takes the console lock unless this vCPU holds
 * it already, and gives up waiting after a while. */
int fw_console_printf_emergency(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* alloc.c */
void fw_alloc_init(uint64_t start, uint64_t end);

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

/* Interrupt-flag save/restore used around the firmware's spinlocks so that
 * an interrupt handler on the same vCPU can never spin on a lock its own
 * vCPU holds. */
static inline unsigned long fw_irq_save(void)
{
    unsigned long flags;
    __asm__ volatile("pushfq\n\tpopq %0\n\tcli" : "=r"(flags) : : "memory");
    return flags;
}

static inline void fw_irq_restore(unsigned long flags)
{
    if (flags & 0x200)
        __asm__ volatile("sti" : : : "memory");
}

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

#endif /* ARGOVISOR_FW_H */
