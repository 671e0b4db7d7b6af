/* spin: prints once, then burns CPU forever without a single VM exit. */
#include <guest.h>

int guest_main(void)
{
    volatile uint64_t n = 0;

    guest_puts("spinning");
    for (;;)
        n++;
    return 0;
}
