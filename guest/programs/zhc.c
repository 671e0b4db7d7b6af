#include <guest.h>
int guest_main(void)
{
    uint64_t t0 = guest_rdtsc();
    for (int i = 0; i < 2000; i++)
        guest_hypercall(0x7F, i, 0, 0, 0, 0);
    uint64_t t1 = guest_rdtsc();
    for (int i = 0; i < 200; i++)
        guest_printf("line %d\n", i);
    uint64_t t2 = guest_rdtsc();
    guest_printf("hypercall: %lu cycles each; printf line: %lu cycles each\n", (unsigned long)((t1 - t0) / 2000), (unsigned long)((t2 - t1) / 200));
    return 0;
}
