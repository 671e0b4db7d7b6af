/* pagefault: reads through a NULL pointer; page 0 is not mapped, so the
 * firmware must report #PF (vector 14) with cr2=0. */
#include <guest.h>

int guest_main(void)
{
    uintptr_t addr = 0;

    /* Hide the constant from the optimiser: a visible NULL dereference may
     * be compiled into ud2 instead of a load. */
    __asm__ volatile("" : "+r"(addr));
    guest_puts("dereferencing NULL");
    volatile int *p = (volatile int *)addr;
    int v = *p;
    guest_printf("read %d from NULL?!\n", v);
    return 1;
}
