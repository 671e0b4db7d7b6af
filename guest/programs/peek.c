/* peek: reads (and optionally writes) one 64-bit word at a guest-physical
 * address, for grant-window tests.
 * params: addr (hex, required), write (hex value to store after reading),
 * reread=1 (read again after the write). Prints "peek <addr> = <value>",
 * "poke <addr> <- <value>" and "reread <addr> = <value>". */
#include <guest.h>

static uint64_t hex(const char *s)
{
    uint64_t v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    for (; *s; s++) {
        int c = *s;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
                c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            break;
        v = v * 16 + (uint64_t)d;
    }
    return v;
}

int guest_main(void)
{
    const char *a = guest_param("addr");
    if (!a) {
        guest_puts("peek: no addr");
        return 2;
    }
    volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)hex(a);
    guest_printf("peek %p = %lx\n", (void *)p, (unsigned long)*p);
    const char *w = guest_param("write");
    if (w) {
        uint64_t v = hex(w);
        *p = v;
        guest_printf("poke %p <- %lx\n", (void *)p, (unsigned long)v);
    }
    if (guest_param("reread"))
        guest_printf("reread %p = %lx\n", (void *)p, (unsigned long)*p);
    return 0;
}
