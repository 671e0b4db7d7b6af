/* ud2: executes an undefined instruction; the firmware must report #UD
 * (vector 6) to the VMM. The global label ud2_here marks the faulting
 * instruction so that tests can compare it with the reported RIP. */
#include <guest.h>

int guest_main(void)
{
    guest_puts("about to execute ud2");
    __asm__ volatile(".globl ud2_here\n\t"
                     ".type ud2_here, @function\n"
                     "ud2_here:\n\t"
                     "ud2\n\t"
                     ".size ud2_here, 2"
                     : : : "memory");
    guest_puts("ud2 returned?!");
    return 1;
}
