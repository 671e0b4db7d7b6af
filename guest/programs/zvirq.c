#include <guest.h>
static volatile unsigned virqs;
static volatile unsigned where[64];
static void on_virq(void) { virqs++; where[guest_cpu_id()]++; }
static volatile uint64_t ran;
static void job(unsigned cpu) { (void)cpu; __atomic_add_fetch(&ran, 1, __ATOMIC_SEQ_CST); }
int guest_main(void)
{
    const char *m = guest_param("mode");
    unsigned want = (unsigned)guest_atoi(guest_param("count"));
    guest_set_virq_handler(on_virq);
    guest_puts("ready");
    if (m[0] == 's') {          /* spin polling at CPL 3 */
        uint64_t polls = 0;
        while (virqs < want) { guest_poll_virq(); polls++; }
        guest_printf("spin got %u virqs (%lu polls)\n", virqs, (unsigned long)polls);
    } else if (m[0] == 'a') {   /* AP handles VIRQs in its idle loop */
        while (virqs < want) guest_cpu_relax();
        guest_printf("ap got %u virqs, on cpu1 %u\n", virqs, where[1]);
    } else if (m[0] == 'r') {   /* many run_on_cpus rounds */
        for (unsigned i = 0; i < want; i++)
            guest_run_on_cpus(job);
        guest_printf("rounds %u ran %lu\n", want, (unsigned long)ran);
    } else if (m[0] == 'w') {   /* wait, measure latency */
        uint64_t t0 = guest_rdtsc();
        while (virqs < want) guest_wait_for_interrupt();
        guest_printf("wait got %u in %lu Mcycles\n", virqs, (unsigned long)((guest_rdtsc() - t0) >> 20));
    }
    return 0;
}
