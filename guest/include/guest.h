/*
 * guest.h - the interface between argovisor guest programs and the firmware.
 *
 * Every guest program is one domain kernel: it defines guest_main() and is
 * linked with the firmware objects (everything under build/firmware). The firmware brings
 * up every vCPU, installs an IDT, enables the local APICs, parses the boot
 * info block the VMM wrote at GPA 0x1000 and then calls guest_main() on
 * vCPU 0. The other vCPUs idle until guest_run_on_cpus() hands them work.
 *
 * Privilege: the firmware does its setup at CPL 0 and then runs all program
 * code (guest_main, functions passed to guest_run_on_cpus, the VIRQ handler
 * and the SDK functions below) at CPL 3, with IOPL 0 and interrupts
 * enabled. This is for speed, not protection (every page stays writable
 * from CPL 3): on the nested KVM argovisor targets (PVM), CPL-0 code is
 * emulated an instruction at a time while CPL-3 code runs natively.
 * RDTSC, PAUSE and the local APIC's MMIO page work at CPL 3. IN, OUT, CLI,
 * STI, HLT, LIDT, MOV to CRn, RDMSR/WRMSR and INT n (except INT3 and the
 * firmware gate) fault: use guest_outb / guest_inb / guest_outl /
 * guest_inl, guest_hypercall and guest_wait_for_interrupt instead.
 * A raw CPUID at CPL 3 is host-dependent: it reaches the VMM's table only
 * on hosts with CPUID faulting (Intel); elsewhere (AMD hosts) the outer
 * hypervisor answers it. Use guest_cpuid(), which runs it at CPL 0.
 * Interrupts never run guest code asynchronously (see
 * guest_set_virq_handler), so there is no need to disable them.
 *
 * The names in this file are a contract used by tests outside the tree;
 * do not rename them.
 *
 * Environment: freestanding, no SSE (-mgeneral-regs-only), no heap other
 * than guest_alloc_pages(), single address space identity mapped below 4 GiB.
 *
 * Atomics: use the GCC __atomic builtins directly (for example
 * __atomic_fetch_or(&mask, bit, __ATOMIC_SEQ_CST)); the guest_atomic_*
 * helpers below are thin wrappers for the common cases.
 */
#ifndef ARGOVISOR_GUEST_H
#define ARGOVISOR_GUEST_H

/* The #defines before the `#ifndef __ASSEMBLER__` below are also usable
 * from assembly files (the firmware's); the rest is C only. */

/* ---- ports and fixed numbers (see docs/memory-layout.md) ---------------- */

#define GUEST_SERIAL_PORT     0x3F8 /* console transmit (byte / rep outsb) */
#define GUEST_EXIT_PORT       0xF4  /* 32-bit OUT: exit status */
#define GUEST_CRASH_PORT      0xF5  /* 32-bit OUT: crash report (vector, RDI=frame) */
#define GUEST_HYPERCALL_PORT  0xF6  /* 32-bit OUT: hypercall, nr in EAX */

/* CPUID leaf 0x40000002 (read by the firmware at boot): the doorbell page,
 * GPA in EAX (low) / EBX (high), flags in ECX. A 32-bit store of the
 * hypercall number to it is a hypercall without the firmware gate. */
#define GUEST_CPUID_DOORBELL      0x40000002
#define GUEST_DOORBELL_PRESENT    0x1   /* the page rings */
#define GUEST_DOORBELL_PREFERRED  0x2   /* and the VMM says it is cheaper here */

#define GUEST_BOOTINFO_ADDR   0x1000UL
#define GUEST_BOOTINFO_MAGIC  0x544F4F424F475241ULL /* "ARGOBOOT" */
#define GUEST_KERNEL_BASE     0x100000UL
#define GUEST_PAGE_SIZE       4096UL
#define GUEST_LAPIC_BASE      0xFEE00000UL

#define GUEST_VIRQ_VECTOR     0x30  /* default; the boot info carries the real one */
#define GUEST_IPI_VECTOR      0x31  /* used by guest_run_on_cpus */
#define GUEST_GATE_VECTOR     4     /* INT 4 from CPL 3: the firmware gate (below) */
#define GUEST_SPURIOUS_VECTOR 0xFF

#define GUEST_MAX_CPUS        64    /* the firmware drives at most this many vCPUs */

/*
 * Firmware gate: `int $4` with the operation number in R11. Guest code runs
 * at CPL 3 and, on the nested KVM this targets (PVM), IOPL is forced to 0,
 * so port I/O and HLT are done by this CPL-0 gate. INT 3 and INT 4 are the
 * only INT n that PVM passes through from CPL 3; vector 4 (#OF) is never
 * raised by the CPU itself in 64-bit mode. The guest_in* / guest_out* /
 * guest_hypercall helpers below use it. Operands are in the registers the
 * performed instruction uses, and only that instruction's outputs change
 * (RAX for IN and hypercalls, RSI/RCX for OUTSB).
 */
#define GUEST_GATE_OUTB       0     /* outb %al, %dx */
#define GUEST_GATE_OUTW       1     /* outw %ax, %dx */
#define GUEST_GATE_OUTL       2     /* outl %eax, %dx */
#define GUEST_GATE_INB        3     /* inb %dx, %al */
#define GUEST_GATE_INW        4     /* inw %dx, %ax */
#define GUEST_GATE_INL        5     /* inl %dx, %eax */
#define GUEST_GATE_OUTSB      6     /* rep outsb: RSI = bytes, RCX = count, DX = port */
#define GUEST_GATE_HYPERCALL  7     /* outl %eax, $GUEST_HYPERCALL_PORT (see guest_hypercall) */
#define GUEST_GATE_WAIT       8     /* halt unless this vCPU's wake count != EAX (firmware use) */
#define GUEST_GATE_CPUID      9     /* cpuid: EAX = leaf, ECX = subleaf (see guest_cpuid) */
#define GUEST_GATE_READ_CR3   10    /* mov %cr3, %rax */
#define GUEST_GATE_LOAD_CR3   11    /* mov %rax, %cr3 */
#define GUEST_GATE_NOPS       12

#ifndef __ASSEMBLER__

#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>

/* ---- program entry / exit ----------------------------------------------- */

/* Defined by each guest program; runs on vCPU 0. Its return value is the
 * domain's exit status. */
int guest_main(void);

/* Report `status` to the VMM (32-bit OUT to the exit port) and stop. */
__attribute__((noreturn)) void guest_exit(int status);

/* ---- console ------------------------------------------------------------- */

/* Write s followed by a newline. One call never interleaves with output of
 * another vCPU. */
void guest_puts(const char *s);

/* printf subset: %d %i %u %x %X %o %c %s %p %% with the length modifiers
 * hh h l ll z t j, flags '-' '0' '+' ' ', a field width and a precision
 * (also as '*'). Returns the number of characters written. */
int guest_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int guest_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Same formatting into a buffer; always NUL-terminates when size > 0 and
 * returns the length the full output would have had. */
int guest_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int guest_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* ---- domain / vCPU information -------------------------------------------- */

uint16_t guest_domid(void);
unsigned guest_cpu_id(void);      /* index of the calling vCPU (= APIC ID) */
unsigned guest_cpu_count(void);   /* number of vCPUs (capped at GUEST_MAX_CPUS) */
uint64_t guest_ram_size(void);
/* How many times the VMM has restarted this domain (on_exit/on_crash =
 * "restart"): 0 on its first boot. The only state that survives a restart. */
unsigned guest_restart_count(void);

/* Value of `key` in the boot-info params block, or NULL if absent. */
const char *guest_param(const char *key);

/* guest_param_u64 parses a numeric param (decimal, or hex with 0x), or
 * returns def when the key is absent. */
uint64_t guest_param_u64(const char *key, uint64_t def);

/* guest_errno_name names a hypercall result: "ok" for r >= 0, else the
 * Linux errno name of -r ("EPERM", "EAGAIN", …) or "?". */
const char *guest_errno_name(long r);

/* ---- memory --------------------------------------------------------------- */

/* npages contiguous 4 KiB pages, 4 KiB aligned and zero-filled; NULL when the
 * heap is exhausted (or npages == 0). Safe to call from any vCPU. There is no
 * free. */
void *guest_alloc_pages(size_t npages);

/* Guest-physical address of a guest pointer (identity map below 4 GiB). */
uint64_t guest_virt_to_phys(const void *p);

/* ---- interrupts / SMP ------------------------------------------------------- */

/* Set the handler for VIRQs delivered to this domain; NULL removes it.
 *
 * The handler is never called asynchronously in the middle of other code.
 * The firmware's CPL-0 interrupt stub only acknowledges the VIRQ and counts
 * it for the vCPU it arrived on; the handler then runs in normal CPL-3
 * context, on that vCPU's own stack, called from guest_wait_for_interrupt()
 * or guest_poll_virq() on that vCPU (or from the idle loop of a vCPU other
 * than 0), once per counted arrival. VIRQs that arrive while an earlier one
 * is still pending in the local APIC coalesce into one, but no wake-up is
 * lost. Do not call guest_wait_for_interrupt or guest_poll_virq while
 * holding a lock that the handler takes. */
void guest_set_virq_handler(void (*handler)(void));

/* If VIRQs have reached this vCPU since the handler last ran for them, run
 * it for them and return without halting. Otherwise halt until an
 * interrupt arrives, then run the handler for any VIRQs it brought; the
 * wake-up may also be the guest_run_on_cpus IPI, after which nothing is
 * run. So "while (!condition) guest_wait_for_interrupt();" is free of lost
 * wake-ups when the condition is changed by the VIRQ handler: a VIRQ that
 * arrives at any point after the check either is handled before the halt
 * or stops it from sleeping. */
void guest_wait_for_interrupt(void);

/* Never halts: run the VIRQ handler for every VIRQ that has reached this
 * vCPU since the handler last ran for them (interrupts are taken at CPL 3
 * as they arrive and only counted). For guests that poll rather than wait;
 * costs one memory access when nothing is pending. */
void guest_poll_virq(void);

/* Run fn(cpu) once on every vCPU except the caller and wait until all of
 * them have finished. Must be called from vCPU 0. Returns the number of vCPUs
 * that ran fn (0 when the domain has a single vCPU), or -1 when called from
 * another vCPU. fn runs at CPL 3, like all guest code. */
int guest_run_on_cpus(void (*fn)(unsigned cpu));

uint64_t guest_rdtsc(void);

/* ---- small string / memory helpers (also available as plain memcpy,
 *      memset, memmove, memcmp) ---------------------------------------------- */

void *guest_memcpy(void *dst, const void *src, size_t n);
void *guest_memmove(void *dst, const void *src, size_t n);
void *guest_memset(void *dst, int c, size_t n);
int guest_memcmp(const void *a, const void *b, size_t n);
size_t guest_strlen(const char *s);
int guest_strcmp(const char *a, const char *b);
int guest_strncmp(const char *a, const char *b, size_t n);

/* Decimal string to integer: optional leading blanks and sign, stops at the
 * first non-digit; "0x" prefixed values are read as hexadecimal. */
long guest_strtol(const char *s, const char **end);
int guest_atoi(const char *s);

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* ---- port I/O and CPU helpers -------------------------------------------------- */

/* Port I/O through the firmware gate (GUEST_GATE_VECTOR): IN and OUT
 * themselves raise #GP at CPL 3. Each call is one trip through CPL 0. */
static inline void guest_outb(uint16_t port, uint8_t v)
{
    register unsigned long op __asm__("r11") = GUEST_GATE_OUTB;
    __asm__ volatile("int %[vec]"
                     : "+r"(op)
                     : [vec] "i"(GUEST_GATE_VECTOR), "a"(v), "d"(port)
                     : "memory");
}

static inline uint8_t guest_inb(uint16_t port)
{
    register unsigned long op __asm__("r11") = GUEST_GATE_INB;
    uint8_t v;
    __asm__ volatile("int %[vec]"
                     : "=a"(v), "+r"(op)
                     : [vec] "i"(GUEST_GATE_VECTOR), "d"(port)
                     : "memory");
    return v;
}

static inline void guest_outl(uint16_t port, uint32_t v)
{
    register unsigned long op __asm__("r11") = GUEST_GATE_OUTL;
    __asm__ volatile("int %[vec]"
                     : "+r"(op)
                     : [vec] "i"(GUEST_GATE_VECTOR), "a"(v), "d"(port)
                     : "memory");
}

static inline uint32_t guest_inl(uint16_t port)
{
    register unsigned long op __asm__("r11") = GUEST_GATE_INL;
    uint32_t v;
    __asm__ volatile("int %[vec]"
                     : "=a"(v), "+r"(op)
                     : [vec] "i"(GUEST_GATE_VECTOR), "d"(port)
                     : "memory");
    return v;
}

/*
 * CPUID as the VMM configured it: the instruction runs in the firmware gate
 * at CPL 0, where it always traps to KVM. r[] receives EAX, EBX, ECX, EDX.
 * One trip through CPL 0 (a few emulated instructions), no VMM exit.
 */
static inline void guest_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t r[4])
{
    register unsigned long op __asm__("r11") = GUEST_GATE_CPUID;
    uint32_t a = leaf, b, c = subleaf, d;
    __asm__ volatile("int %[vec]"
                     : "+a"(a), "=b"(b), "+c"(c), "=d"(d), "+r"(op)
                     : [vec] "i"(GUEST_GATE_VECTOR)
                     : "memory");
    r[0] = a;
    r[1] = b;
    r[2] = c;
    r[3] = d;
}

/* The calling vCPU's CR3 (its address-space root). */
static inline uint64_t guest_read_cr3(void)
{
    register unsigned long op __asm__("r11") = GUEST_GATE_READ_CR3;
    uint64_t v;
    __asm__ volatile("int %[vec]" : "=a"(v), "+r"(op) : [vec] "i"(GUEST_GATE_VECTOR) : "memory");
    return v;
}

/* Switch the calling vCPU to the page tables at cr3. They must map
 * everything the firmware and the program use (the VMM's identity map of
 * 0-4 GiB, as the tables at 0x4000 do). */
static inline void guest_load_cr3(uint64_t cr3)
{
    register unsigned long op __asm__("r11") = GUEST_GATE_LOAD_CR3;
    __asm__ volatile("int %[vec]" : "+r"(op) : [vec] "i"(GUEST_GATE_VECTOR), "a"(cr3) : "memory");
}

static inline void guest_cpu_relax(void)
{
    __asm__ volatile("pause" : : : "memory");
}

static inline void guest_barrier(void)
{
    __asm__ volatile("" : : : "memory");
}

/*
 * Hypercalls. Number in EAX, arguments in RDI, RSI, RDX, R10, R8, result
 * in RAX (docs/hypercall-abi.md). Two ways reach the VMM's dispatcher:
 *
 * - the port: a 32-bit OUT to GUEST_HYPERCALL_PORT, which CPL-3 code
 *   cannot execute, so the firmware gate does it (int $4, operation in
 *   R11): guest_hypercall_port;
 * - the doorbell: a 32-bit store of the number to the doorbell page, legal
 *   at CPL 3, so no CPL-0 instruction runs (on kvm_pvm each of those is
 *   emulated): guest_hypercall_doorbell.
 *
 * guest_hypercall takes the doorbell when the VMM advertised it as
 * preferred (the firmware sets guest_doorbell at boot from CPUID leaf
 * GUEST_CPUID_DOORBELL), the port otherwise. The argument registers are
 * declared read/write so that the compiler never relies on the VMM
 * preserving them.
 */

/* The doorbell page guest_hypercall rings, or NULL to use the port. Set
 * once by the firmware before guest code runs; a program may clear it (or
 * set it to guest_doorbell_page) to choose, e.g. to compare the two. */
extern volatile uint32_t *guest_doorbell;
/* The doorbell page the VMM advertised (preferred or not), or NULL. */
extern volatile uint32_t *guest_doorbell_page;

static inline long guest_hypercall_port(unsigned long nr, unsigned long a1,
                                        unsigned long a2, unsigned long a3,
                                        unsigned long a4, unsigned long a5)
{
    register unsigned long r10 __asm__("r10") = a4;
    register unsigned long r8 __asm__("r8") = a5;
    unsigned long rax = nr;

    register unsigned long op __asm__("r11") = GUEST_GATE_HYPERCALL;

    __asm__ volatile("int %[vec]"
                     : "+a"(rax), "+D"(a1), "+S"(a2), "+d"(a3),
                       "+r"(r10), "+r"(r8), "+r"(op)
                     : [vec] "i"(GUEST_GATE_VECTOR)
                     : "memory");
    return (long)rax;
}

/* The store must be exactly one 32-bit write to offset 0 of the page:
 * anything else there (a read, another width or offset) is ignored by the
 * VMM and leaves RAX as it was. */
static inline long guest_hypercall_doorbell(volatile uint32_t *db,
                                            unsigned long nr, unsigned long a1,
                                            unsigned long a2, unsigned long a3,
                                            unsigned long a4, unsigned long a5)
{
    register unsigned long r10 __asm__("r10") = a4;
    register unsigned long r8 __asm__("r8") = a5;
    unsigned long rax = nr;

    __asm__ volatile("movl %%eax, (%[db])"
                     : "+a"(rax), "+D"(a1), "+S"(a2), "+d"(a3),
                       "+r"(r10), "+r"(r8)
                     : [db] "r"(db)
                     : "memory");
    return (long)rax;
}

static inline long guest_hypercall(unsigned long nr, unsigned long a1,
                                   unsigned long a2, unsigned long a3,
                                   unsigned long a4, unsigned long a5)
{
    volatile uint32_t *db = guest_doorbell;

    if (db)
        return guest_hypercall_doorbell(db, nr, a1, a2, a3, a4, a5);
    return guest_hypercall_port(nr, a1, a2, a3, a4, a5);
}

/* ---- atomics (wrappers around the __atomic builtins) ---------------------------- */

static inline uint64_t guest_atomic_load64(const volatile uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void guest_atomic_store64(volatile uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline uint64_t guest_atomic_add64(volatile uint64_t *p, uint64_t v)
{
    return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST); /* returns the new value */
}

static inline uint64_t guest_atomic_or64(volatile uint64_t *p, uint64_t v)
{
    return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); /* returns the old value */
}

static inline int guest_atomic_cas64(volatile uint64_t *p, uint64_t expected,
                                     uint64_t desired)
{
    return __atomic_compare_exchange_n(p, &expected, desired, 0,
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static inline uint32_t guest_atomic_add32(volatile uint32_t *p, uint32_t v)
{
    return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}

/* A plain test-and-set spinlock for guest programs. The VIRQ handler runs
 * from guest_wait_for_interrupt / guest_poll_virq on the calling vCPU, so
 * do not call those while holding a lock the handler also takes. */
typedef struct {
    volatile uint32_t locked;
} guest_spinlock_t;

#define GUEST_SPINLOCK_INIT { 0 }

static inline void guest_spin_lock(guest_spinlock_t *l)
{
    while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE) != 0) {
        while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0)
            guest_cpu_relax();
    }
}

static inline void guest_spin_unlock(guest_spinlock_t *l)
{
    __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

#endif /* !__ASSEMBLER__ */

#endif /* ARGOVISOR_GUEST_H */
