/*
 * printf: exercises every conversion of guest_printf with fixed values.
 * Tests compare these lines verbatim; keep them stable.
 */
#include <guest.h>

int guest_main(void)
{
    guest_printf("d=%d u=%u x=%x lx=%lx lu=%lu llx=%llx llu=%llu s=%s c=%c p=%p pct=%%\n",
                 -42, 42u, 42u, 0xdeadbeefcafeUL, 18446744073709551615UL,
                 0x123456789abcdefULL, 1ULL, "str", 'Z', (void *)0x1000);
    guest_printf("i=%i ld=%ld lld=%lld X=%X o=%o hhd=%hhd hu=%hu zu=%zu\n",
                 7, -9000000000L, -1LL, 0xBEEFu, 8u, (signed char)-5,
                 (unsigned short)65535, (size_t)123);
    guest_printf("pad=[%08x] [%5d] [%-5d] [%-10s] [%5s] [%05d] [%+d] [%3c]\n",
                 0x2au, 42, 42, "ab", "ab", -42, 7, 'q');
    guest_printf("min=%lld max=%llu zero=%d zx=%x prec=[%.3s] [%.5d] [%*d] [%-*d]\n",
                 (-9223372036854775807LL - 1), 18446744073709551615ULL, 0, 0u,
                 "abcdef", 42, 4, 7, 4, 7);
    const char *volatile nullstr = 0;   /* volatile: keep gcc from flagging it */
    guest_printf("null=%s pnull=%p alt=%#x lx0=%016lx\n",
                 nullstr, (void *)0, 255u, 0xabcUL);

    char buf[16];
    int n = guest_snprintf(buf, sizeof(buf), "%s-%d", "snprintf", 123456789);
    guest_printf("snprintf=[%s] n=%d\n", buf, n);

    /* A line longer than the formatting buffer must come out whole. */
    char longs[601];
    for (int i = 0; i < 600; i++)
        longs[i] = (char)('a' + i % 26);
    longs[600] = '\0';
    int r = guest_printf("long=%s end\n", longs);
    guest_printf("long ret=%d\n", r);

    guest_puts("puts line");
    guest_puts("printf done");
    return 0;
}
