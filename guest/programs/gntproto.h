/*
 * gntproto.h - what grantor.c and grantee.c share: the Argo message they
 * exchange, the page pattern, the VIRQ counter and the check reporter.
 * Each program defines CHECK_PREFIX ("grantor" or "grantee") before
 * including it.
 */
#ifndef GNTPROTO_H
#define GNTPROTO_H

#include <argo.h>
#include <gnttab.h>
#include <guest.h>

#ifndef CHECK_PREFIX
#error define CHECK_PREFIX before including gntproto.h
#endif

#define GMSG_TYPE  0x474E5431u /* "GNT1": the Argo message type */
#define PORT       1
#define RINGLEN    (4096u - 64u)
#define MAX_PAGES  64u
#define BACK_INDEX 0xBAC       /* pattern page index of the back page */

enum {
    M_OFFER = 1, M_WROTE, M_ACK, M_COPIED, M_UNMAPPED, M_ENDED, M_MAPPED, M_DONE,
};

#define GM_READONLY 1u /* OFFER: read-only grant; WROTE: mapped read-only */

struct gmsg {
    uint32_t type;
    uint32_t ref;   /* first ref */
    uint32_t count; /* pages */
    uint32_t seed;
    uint32_t flags; /* GM_* */
    uint32_t back;  /* OFFER: ref of the back page, 0 if none */
};

/* pat is word w of page p of the pattern for seed; never 0, so a zero
 * page never passes for a pattern. */
static uint64_t pat(uint32_t seed, uint32_t p, uint32_t w)
{
    uint64_t x = ((uint64_t)seed << 32) ^ ((uint64_t)p << 12) ^ w ^ 0x9E3779B97F4A7C15ull;
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    return x | 1;
}

static void fill(volatile uint64_t *page, uint32_t seed, uint32_t p)
{
    for (uint32_t w = 0; w < 512; w++)
        page[w] = pat(seed, p, w);
}

/* Returns the first word that differs from the pattern, or -1. */
static int mismatch(const volatile uint64_t *page, uint32_t seed, uint32_t p)
{
    for (uint32_t w = 0; w < 512; w++)
        if (page[w] != pat(seed, p, w))
            return (int)w;
    return -1;
}

static long retries_left = 200000;
static volatile uint64_t virqs;

static void on_virq(void)
{
    virqs++;
}

static void spin(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        guest_cpu_relax();
}

/* gmsg_send sends one message of type to dom's ring on PORT (body may be
 * NULL), halting until the space VIRQ on -EAGAIN and retrying
 * -ECONNREFUSED while the peer has not registered its ring yet. */
static long gmsg_send(uint16_t dom, uint32_t type, const struct gmsg *body)
{
    struct gmsg m = body ? *body : (struct gmsg){ 0 };
    m.type = type;
    for (;;) {
        long r = argo_send(dom, PORT, PORT, &m, sizeof(m), GMSG_TYPE);
        if (r >= 0)
            return 0;
        if (r == -EAGAIN) {
            guest_wait_for_interrupt();
            continue;
        }
        if (r == -ECONNREFUSED && retries_left-- > 0) {
            spin(2000);
            continue;
        }
        return r;
    }
}

/* ---- checks ---------------------------------------------------------------- */

static unsigned nchecks, nfailed;

__attribute__((format(printf, 3, 4))) static int check(const char *name, int ok, const char *fmt, ...)
{
    char detail[200];
    va_list ap;
    va_start(ap, fmt);
    guest_vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    nchecks++;
    if (!ok)
        nfailed++;
    guest_printf(CHECK_PREFIX ": check %s: %s (%s)\n", name, ok ? "ok" : "FAIL", detail);
    return ok;
}

static int finish(void)
{
    if (nfailed == 0) {
        guest_printf(CHECK_PREFIX ": all %u checks ok\n", nchecks);
        return 0;
    }
    guest_printf(CHECK_PREFIX ": %u of %u checks FAILED\n", nfailed, nchecks);
    return 1;
}

#endif
