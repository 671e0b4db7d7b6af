/* speed: times a loop of volatile adds with the TSC and prints the cost of
 * one iteration in TSC cycles, rounded up ("speed: N"). Natively that is a
 * few cycles (the TSC may tick slower than the core, so it can be 1);
 * code that is emulated instruction by instruction takes thousands. */
#include <guest.h>

#define ITERATIONS 10000000UL

int guest_main(void)
{
    volatile uint64_t sum = 0;

    uint64_t start = guest_rdtsc();
    for (uint64_t i = 0; i < ITERATIONS; i++)
        sum += 1;
    uint64_t cycles = guest_rdtsc() - start;

    if (sum != ITERATIONS) {
        guest_printf("speed FAILED: sum %lu\n", (unsigned long)sum);
        return 1;
    }
    guest_printf("speed: %lu\n", (unsigned long)((cycles + ITERATIONS - 1) / ITERATIONS));
    return 0;
}
