/* params: prints the value of a few boot-info params. */
#include <guest.h>

int guest_main(void)
{
    static const char *const keys[] = { "a", "b", "missing" };

    for (unsigned i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = guest_param(keys[i]);
        guest_printf("%s=%s\n", keys[i], v ? v : "(null)");
    }
    return 0;
}
