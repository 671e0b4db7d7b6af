/* exitcode: exits with the integer in param "status" (default 0). */
#include <guest.h>

int guest_main(void)
{
    const char *s = guest_param("status");
    int status = s ? guest_atoi(s) : 0;

    guest_printf("exiting with status %d\n", status);
    return status;
}
