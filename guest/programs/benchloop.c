/* benchloop: issues hypercall 0x7F as fast as possible, forever. */
#include <guest.h>

int guest_main(void)
{
    guest_puts("bench ready");
    for (unsigned long i = 0;; i++)
        guest_hypercall(0x7F, i, 0, 0, 0, 0);
    return 0;
}
