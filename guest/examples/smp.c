/* smp: every vCPU sets its bit in a shared mask through guest_run_on_cpus. */
#include <guest.h>

static volatile uint64_t mask;

static void mark(unsigned cpu)
{
    guest_atomic_or64(&mask, 1ULL << cpu);
    guest_printf("cpu %u ran\n", cpu);
}

int guest_main(void)
{
    unsigned n = guest_cpu_count();
    uint64_t want = n >= 64 ? ~0ULL : (1ULL << n) - 1;

    mark(guest_cpu_id());
    int others = guest_run_on_cpus(mark);
    uint64_t got = guest_atomic_load64(&mask);

    guest_printf("smp: %u vcpus, %d others ran, mask=0x%llx want=0x%llx\n",
                 n, others, (unsigned long long)got, (unsigned long long)want);
    if (n >= 2 && got == want && others == (int)n - 1) {
        guest_puts("smp ok");
        return 0;
    }
    guest_puts("smp FAILED");
    return 1;
}
