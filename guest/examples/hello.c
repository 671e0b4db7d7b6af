/* hello: the smallest guest; prints who and where it is. */
#include <guest.h>

int guest_main(void)
{
    guest_printf("hello from domain %u on vcpu %u of %u\n",
                 (unsigned)guest_domid(), guest_cpu_id(), guest_cpu_count());
    return 0;
}
