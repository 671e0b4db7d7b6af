/*
 * fw.c - boot sequence, boot info, params, page allocator, SMP mailbox,
 * exit.
 */
#include "fw.h"

struct fw_percpu fw_percpu[GUEST_MAX_CPUS];
struct fw_state fw;

/* Explicitly in .data: used before (and while) .bss is cleared, and their
 * defaults must survive that. */
__attribute__((section(".data"))) uint16_t fw_serial_port = GUEST_SERIAL_PORT;
__attribute__((section(".data"))) uint16_t fw_exit_port = GUEST_EXIT_PORT;
__attribute__((section(".data"))) uint16_t fw_crash_port = GUEST_CRASH_PORT;

/* Set by fw_bsp_init from CPUID (see guest.h). */
volatile uint32_t *guest_doorbell;
volatile uint32_t *guest_doorbell_page;

/* APs that have loaded the IDT and enabled their LAPIC (so they can take
 * the wake-up IPI). */
static volatile uint32_t cpus_online;

/* ---- boot info ------------------------------------------------------------------ */

static void parse_bootinfo(const struct fw_bootinfo *bi)
{
    fw.bi = bi;
    fw.ncpus = 1;
    fw.virq_vector = GUEST_VIRQ_VECTOR;

    if (bi->magic != GUEST_BOOTINFO_MAGIC || bi->version < 1)
        return;

    fw.bootinfo_ok = 1;
    fw.domid = bi->domid;
    fw.ncpus = bi->ncpus;
    if (fw.ncpus == 0)
        fw.ncpus = 1;
    if (fw.ncpus > GUEST_MAX_CPUS)
        fw.ncpus = GUEST_MAX_CPUS;
    /* The VIRQ vector must not collide with exceptions (which include the
     * firmware gate), the IPI or the spurious vector. */
    if (bi->virq_vector >= 0x20 && bi->virq_vector < 0xFF &&
        bi->virq_vector != GUEST_IPI_VECTOR)
        fw.virq_vector = bi->virq_vector;
    fw.ram_size = bi->ram_size;
    fw.restarts = bi->restarts;
    if (bi->serial_port)
        fw_serial_port = bi->serial_port;
    if (bi->exit_port)
        fw_exit_port = bi->exit_port;
    if (bi->crash_port)
        fw_crash_port = bi->crash_port;
    fw.params = bi->params;
    fw.params_len = bi->params_len > FW_PARAMS_MAX ? FW_PARAMS_MAX : bi->params_len;

    /* Heap: never below the end of the kernel image, never into the vCPU
     * stacks at the top of RAM. */
    uint64_t start = bi->heap_start;
    uint64_t end = bi->heap_end;
    uint64_t kend = ((uint64_t)(uintptr_t)_end + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1);
    if (start < kend)
        start = kend;
    if (bi->ram_size > (uint64_t)bi->ncpus * 32768) {
        uint64_t stacks = bi->ram_size - (uint64_t)bi->ncpus * 32768;
        if (end > stacks)
            end = stacks;
    }
    fw_alloc_init(start, end);
}

uint16_t guest_domid(void)
{
    return fw.domid;
}

unsigned guest_cpu_id(void)
{
    unsigned id;
    __asm__("movl %%gs:0, %0" : "=r"(id));
    return id;
}

unsigned guest_cpu_count(void)
{
    return fw.ncpus;
}

uint64_t guest_ram_size(void)
{
    return fw.ram_size;
}

unsigned guest_restart_count(void)
{
    return fw.restarts;
}

/* params: "key\0value\0" pairs, ended by an empty key. Every read stays
 * inside params_len bytes. */
const char *guest_param(const char *key)
{
    if (!key || !fw.params)
        return NULL;

    const char *p = fw.params;
    const char *end = fw.params + fw.params_len;

    while (p < end && *p) {
        const char *k = p;
        while (p < end && *p)
            p++;
        if (p >= end)
            return NULL;        /* unterminated key */
        p++;
        const char *v = p;
        while (p < end && *p)
            p++;
        if (p >= end)
            return NULL;        /* unterminated value */
        p++;
        if (guest_strcmp(k, key) == 0)
            return v;
    }
    return NULL;
}

/*
 * The doorbell (CPUID leaf GUEST_CPUID_DOORBELL). Read at CPL 0, where
 * CPUID always reaches the VMM's table. A VMM without the leaf (older
 * argovisor: highest leaf 0x40000001) leaves both pointers NULL and
 * guest_hypercall uses the port. The page must lie in the identity map
 * below 4 GiB, which is all the firmware's pointers can reach.
 */
static void probe_doorbell(void)
{
    uint32_t a, b, c, d;

    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000), "c"(0));
    /* "argovisorKVM" */
    if (a < GUEST_CPUID_DOORBELL || b != 0x6f677261 || c != 0x6f736976 || d != 0x4d564b72)
        return;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(GUEST_CPUID_DOORBELL), "c"(0));
    if (!(c & GUEST_DOORBELL_PRESENT) || b != 0 || a == 0 || (a & (GUEST_PAGE_SIZE - 1)))
        return;
    guest_doorbell_page = (volatile uint32_t *)(uintptr_t)a;
    if (c & GUEST_DOORBELL_PREFERRED)
        guest_doorbell = guest_doorbell_page;
}

/* ---- page allocator ------------------------------------------------------------------ */

static fw_lock_t alloc_lock;
static uint64_t heap_next, heap_limit;

void fw_alloc_init(uint64_t start, uint64_t end)
{
    start = (start + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1);
    end &= ~(GUEST_PAGE_SIZE - 1);
    if (end < start)
        end = start;
    heap_next = start;
    heap_limit = end;
}

void *fw_alloc_raw(size_t npages)
{
    if (npages == 0 || npages > (heap_limit >> 12))
        return NULL;

    uint64_t bytes = (uint64_t)npages * GUEST_PAGE_SIZE;
    uint64_t addr = 0;

    fw_lock(&alloc_lock);
    if (heap_limit - heap_next >= bytes) {
        addr = heap_next;
        heap_next += bytes;
    }
    fw_unlock(&alloc_lock);
    return (void *)(uintptr_t)addr;
}

void *guest_alloc_pages(size_t npages)
{
    void *p = fw_alloc_raw(npages);

    /* Zero outside the lock: the range is ours alone now. */
    return p ? memset(p, 0, npages * GUEST_PAGE_SIZE) : NULL;
}

uint64_t guest_virt_to_phys(const void *p)
{
    return (uint64_t)(uintptr_t)p;
}

uint64_t guest_rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* ---- port output and exit ------------------------------------------------------------- */

void fw_out32(uint16_t port, uint32_t v)
{
    if (fw_cpl() == 0)
        __asm__ volatile("outl %0, %1" : : "a"(v), "d"(port) : "memory");
    else
        guest_outl(port, v);
}

void fw_outsb(uint16_t port, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (fw_cpl() == 0) {
        __asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"(port) : "memory");
    } else {
        register unsigned long op __asm__("r11") = GUEST_GATE_OUTSB;
        __asm__ volatile("int %[vec]"
                         : "+S"(s), "+c"(n), "+r"(op)
                         : [vec] "i"(GUEST_GATE_VECTOR), "d"(port)
                         : "memory");
    }
}

void guest_exit(int status)
{
    fw_out32(fw_exit_port, (uint32_t)status);
    /* The VMM stops the domain; if it ever returns here, stay put. */
    for (;;) {
        if (fw_cpl() == 0)
            __asm__ volatile("cli\n\thlt" : : : "memory");
        else
            fw_gate_wait(fw_wakes());
    }
}

/* ---- SMP ---------------------------------------------------------------------------------- */

/* Work posted by guest_run_on_cpus: an AP runs fn once for every new
 * generation it sees and then bumps acks. */
static struct {
    void (*volatile fn)(unsigned cpu);
    volatile uint64_t generation;
    volatile uint32_t acks;
} mailbox __attribute__((aligned(64)));

int guest_run_on_cpus(void (*fn)(unsigned cpu))
{
    unsigned n = fw.ncpus;

    if (guest_cpu_id() != 0)
        return -1;
    if (n <= 1 || !fn)
        return 0;

    /* An AP whose LAPIC is still software-disabled would drop the IPI. */
    while (__atomic_load_n(&cpus_online, __ATOMIC_ACQUIRE) < n - 1)
        guest_cpu_relax();

    __atomic_store_n(&mailbox.acks, 0, __ATOMIC_RELAXED);
    mailbox.fn = fn;
    /* Publishing the new generation releases fn and the cleared acks. */
    __atomic_store_n(&mailbox.generation, mailbox.generation + 1, __ATOMIC_RELEASE);

    for (unsigned cpu = 1; cpu < n; cpu++)
        fw_lapic_send_ipi(cpu, GUEST_IPI_VECTOR);

    while (__atomic_load_n(&mailbox.acks, __ATOMIC_ACQUIRE) < n - 1)
        guest_cpu_relax();
    return (int)(n - 1);
}

/* ---- boot ------------------------------------------------------------------------------------ */

/*
 * Runs on the BSP at CPL 0, before any AP has left its spin on
 * fw_boot_ready. Kept short: CPL-0 code may be emulated.
 */
void fw_bsp_init(unsigned cpu, const struct fw_bootinfo *bi)
{
    uint64_t irq_stack_top[GUEST_MAX_CPUS];

    parse_bootinfo(bi);
    probe_doorbell();
    fw_idt_init(fw.virq_vector);
    fw_idt_load();

    if (!fw.bootinfo_ok) {
        guest_printf("argovisor firmware: bad boot info at %p (magic 0x%lx)\n",
                     (const void *)bi, (unsigned long)bi->magic);
        guest_exit(255);
    }

    /* One interrupt stack (TSS.RSP0) per vCPU, from the heap. They need
     * not be zeroed. */
    for (unsigned i = 0; i < fw.ncpus; i++) {
        uint8_t *stack = fw_alloc_raw(FW_IRQ_STACK_PAGES);
        if (!stack) {
            guest_printf("argovisor firmware: no memory for %u interrupt stacks of %lu KiB\n",
                         fw.ncpus, FW_IRQ_STACK_PAGES * GUEST_PAGE_SIZE / 1024);
            guest_exit(255);
        }
        irq_stack_top[i] = (uint64_t)(uintptr_t)stack + FW_IRQ_STACK_PAGES * GUEST_PAGE_SIZE;
    }
    fw_gdt_init(fw.ncpus, irq_stack_top);
    fw_cpu_load_tables(cpu);
    fw_lapic_enable();

    /* Let the APs go: .bss is clear, the tables and the boot state are
     * ready. */
    __atomic_store_n(&fw_boot_ready, 1, __ATOMIC_RELEASE);
}

/* Runs on an AP at CPL 0 once fw_boot_ready is set. */
void fw_ap_init(unsigned cpu)
{
    fw_cpu_load_tables(cpu);
    fw_lapic_enable();
}

/* An AP's life at CPL 3: run each posted job once, otherwise wait. */
void fw_ap_main(unsigned cpu)
{
    uint64_t seen = 0;

    /* The BSP sends wake-up IPIs only after this. One that arrives before
     * the first mailbox check is harmless: it is just counted. */
    __atomic_add_fetch(&cpus_online, 1, __ATOMIC_RELEASE);

    /* The wake count is read before the mailbox is checked, and the gate
     * only halts while the count is unchanged. An IPI that arrives after
     * the read is either taken at CPL 3 at once (the count moves, so the
     * gate does not halt) or held until the gate's STI (it ends the HLT):
     * no lost wake-ups. */
    for (;;) {
        uint32_t wakes = fw_wakes();
        uint64_t gen = __atomic_load_n(&mailbox.generation, __ATOMIC_ACQUIRE);
        if (gen != seen) {
            seen = gen;
            void (*fn)(unsigned) = mailbox.fn;
            if (fn)
                fn(cpu);
            __atomic_add_fetch(&mailbox.acks, 1, __ATOMIC_RELEASE);
            continue;
        }
        if (fw_run_pending_virqs())
            continue;
        fw_gate_wait(wakes);
    }
}
