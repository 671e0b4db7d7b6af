/*
 * balloon: gives half of its RAM back to the host and takes it back
 * (memory_op, hypercall 12), checking the reservation and the pages at
 * every step. One line per check:
 *
 *     balloon: check <name>: ok|FAIL (<detail>)
 *
 * then "balloon: all <n> checks ok" (returns 0) or
 * "balloon: <k> of <n> checks FAILED" (returns 1).
 *
 * Steps: fill `pages` pages with a pattern; "filled"; decrease them;
 * "released"; populate them again (they must read zero) and fill them
 * again; if the maximum reservation is above the RAM size, populate the
 * frames above RAM up to the maximum (one more must fail) and give them
 * back; "refilled". With hold_port=<p> it registers a ring for the host
 * (domain 0) on port p and, at each of the three points, prints
 * "balloon: <point>, holding" and waits for a host message (the tests
 * measure the VMM between the steps).
 *
 * Params:
 *   pages=<n>       pages to balloon (default: half the RAM)
 *   hold_port=<p>   see above (default 0: no holds)
 *   touch=ballooned after the decrease, read a ballooned frame: that must
 *                   stop the domain, so nothing is printed after
 *                   "balloon: touching ballooned frame ...".
 */
#include <argo.h>
#include <guest.h>
#include <memory.h>

#define RINGLEN (4096u - 64u)

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
    guest_printf("balloon: check %s: %s (%s)\n", name, ok ? "ok" : "FAIL", detail);
    return ok;
}

static int finish(void)
{
    if (nfailed == 0) {
        guest_printf("balloon: all %u checks ok\n", nchecks);
        return 0;
    }
    guest_printf("balloon: %u of %u checks FAILED\n", nfailed, nchecks);
    return 1;
}

static void on_virq(void)
{
}

static struct argo_ring *host_ring;

/* Prints "balloon: <what>, holding" and waits for a host message, if a
 * hold port was given; otherwise just prints <what>. */
static void hold(const char *what)
{
    if (!host_ring) {
        guest_printf("balloon: %s\n", what);
        return;
    }
    guest_printf("balloon: %s, holding\n", what);
    uint8_t buf[64];
    while (argo_ring_recv(host_ring, RINGLEN, buf, sizeof(buf), NULL, NULL) < 0)
        guest_wait_for_interrupt();
    argo_notify(NULL);
}

static uint64_t word(uint64_t gfn, uint32_t w)
{
    return (gfn << 12 | w) * 0x9E3779B97F4A7C15ull | 1;
}

static void fill(uint64_t gfn)
{
    volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)(gfn << 12);
    for (uint32_t w = 0; w < 512; w++)
        p[w] = word(gfn, w);
}

/* 0: the pattern, 1: all zero, -1: anything else. */
static int state(uint64_t gfn)
{
    const volatile uint64_t *p = (const volatile uint64_t *)(uintptr_t)(gfn << 12);
    int pattern = 1, zero = 1;
    for (uint32_t w = 0; w < 512; w++) {
        pattern &= p[w] == word(gfn, w);
        zero &= p[w] == 0;
    }
    return pattern ? 0 : zero ? 1 : -1;
}

/* Checks that frames gfns[0..n) all read as want (0 pattern, 1 zero). */
static void check_pages(const char *name, const uint64_t *gfns, unsigned long n, int want)
{
    unsigned long bad = 0, first = 0;
    for (unsigned long i = 0; i < n; i++) {
        if (state(gfns[i]) != want && bad++ == 0)
            first = gfns[i];
    }
    check(name, bad == 0, "%lu of %lu frames read %s (first bad %#lx)", n - bad, n, want ? "zero" : "the pattern", first);
}

int guest_main(void)
{
    guest_set_virq_handler(on_virq);
    uint64_t ram_pages = guest_ram_size() / GUEST_PAGE_SIZE;
    unsigned long n = guest_param_u64("pages", ram_pages / 2);
    uint32_t hold_port = (uint32_t)guest_param_u64("hold_port", 0);
    const char *touch = guest_param("touch");
    if (hold_port) {
        long err;
        host_ring = argo_ring_create(hold_port, 0, RINGLEN, &err);
        if (!check("host_ring", host_ring != NULL, "ring for the host on port %u: %ld", hold_port, err))
            return finish();
    }

    long cur0 = memory_current_reservation(), max = memory_maximum_reservation();
    guest_printf("balloon: reservation %ld pages (%ld KiB), maximum %ld pages\n", cur0, cur0 * 4, max);
    check("reservation_at_boot", cur0 == (long)ram_pages, "current %ld, RAM %lu pages", cur0, (unsigned long)ram_pages);
    check("maximum_at_least_ram", max >= cur0, "maximum %ld", max);

    uint8_t *buf = guest_alloc_pages(n);
    uint64_t *gfns = guest_alloc_pages((n * 8 + GUEST_PAGE_SIZE - 1) / GUEST_PAGE_SIZE);
    if (!check("alloc", buf && gfns, "%lu pages", n))
        return finish();
    for (unsigned long i = 0; i < n; i++) {
        gfns[i] = (guest_virt_to_phys(buf) >> 12) + i;
        fill(gfns[i]);
    }
    char what[80];
    guest_snprintf(what, sizeof(what), "filled %lu pages at %#lx", n, (unsigned long)(gfns[0] << 12));
    hold(what);

    long done = memory_decrease_reservation(gfns, n);
    long cur1 = memory_current_reservation();
    check("decrease", done == (long)n, "%ld of %lu frames given back", done, n);
    check("reservation_after_decrease", cur1 == cur0 - (long)n, "%ld pages, want %ld", cur1, cur0 - (long)n);
    guest_printf("balloon: reservation %ld pages (%ld KiB) after giving %lu back\n", cur1, cur1 * 4, n);
    done = memory_decrease_reservation(gfns, 1);
    check("decrease_empty_frame", done == 0, "decrease of a frame already given back: %ld", done);
    if (touch && guest_strcmp(touch, "ballooned") == 0) {
        uint64_t gfn = gfns[n / 2];
        guest_printf("balloon: touching ballooned frame %#lx\n", (unsigned long)gfn);
        (void)*(volatile uint64_t *)(uintptr_t)(gfn << 12);
        guest_puts("balloon: the domain should have stopped");
        return 1;
    }
    guest_snprintf(what, sizeof(what), "released %lu pages", n);
    hold(what);

    done = memory_populate_physmap(gfns, n);
    check("populate", done == (long)n, "%ld of %lu frames populated", done, n);
    check("reservation_after_populate", memory_current_reservation() == cur0, "%ld pages, want %ld",
          memory_current_reservation(), cur0);
    check_pages("populated_pages_zero", gfns, n, 1);
    for (unsigned long i = 0; i < n; i++)
        fill(gfns[i]);
    check_pages("populated_pages_usable", gfns, n, 0);
    done = memory_populate_physmap(gfns, 1);
    check("populate_populated_frame", done == 0, "populate of a populated frame: %ld", done);

    if (max > cur0) {
        /* The frames above RAM, up to the maximum. */
        unsigned long k = (unsigned long)(max - cur0);
        uint64_t *tail = guest_alloc_pages((k * 8 + GUEST_PAGE_SIZE - 1) / GUEST_PAGE_SIZE);
        if (check("alloc_tail_list", tail != NULL, "%lu entries", k)) {
            for (unsigned long i = 0; i < k; i++)
                tail[i] = ram_pages + i;
            done = memory_populate_physmap(tail, k);
            check("populate_above_ram", done == (long)k, "%ld of %lu frames above RAM populated", done, k);
            check_pages("above_ram_zero", tail, k, 1);
            for (unsigned long i = 0; i < k; i++)
                fill(tail[i]);
            check_pages("above_ram_usable", tail, k, 0);
            check("reservation_at_maximum", memory_current_reservation() == max, "%ld pages",
                  memory_current_reservation());
            uint64_t beyond = (uint64_t)max;
            check("populate_beyond_region", memory_populate_physmap(&beyond, 1) == 0, "frame %#lx", (unsigned long)beyond);
            /* Full: give one frame back, take the room with
             * increase_reservation, then populating it must fail. */
            done = memory_decrease_reservation(gfns, 1);
            long inc = memory_increase_reservation(1);
            long again = memory_populate_physmap(gfns, 1);
            check("populate_at_maximum", done == 1 && inc == 1 && again == 0,
                  "decrease %ld, increase %ld, populate %ld", done, inc, again);
            check("increase_beyond_maximum", memory_increase_reservation(1) == 0, "at %ld of %ld",
                  memory_current_reservation(), max);
            done = memory_decrease_reservation(tail, k);
            check("decrease_above_ram", done == (long)k, "%ld of %lu", done, k);
        }
    }
    guest_printf("balloon: reservation %ld pages (%ld KiB) at the end\n", memory_current_reservation(),
                 memory_current_reservation() * 4);
    guest_snprintf(what, sizeof(what), "refilled %lu pages", n);
    hold(what);
    return finish();
}
