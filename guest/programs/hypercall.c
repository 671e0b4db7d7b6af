/* hypercall: the null hypercall returns 0, unknown numbers -ENOSYS (38),
 * and arguments reach the VMM in Xen's register order (see
 * --trace-hypercalls). */
#include <guest.h>

int guest_main(void)
{
    long null = guest_hypercall(0x7F, 1, 2, 3, 4, 5);
    long unknown = guest_hypercall(99, 0, 0, 0, 0, 0);
    long huge = guest_hypercall(0xFFFFFFFFul, 0, 0, 0, 0, 0);

    guest_printf("null=%ld unknown=%ld huge=%ld\n", null, unknown, huge);
    return null == 0 && unknown == -38 && huge == -38 ? 0 : 1;
}
