/*
 * grantee: the mapping side of the grant-table tests (pair: grantor.c).
 *
 * Waits for the granter's offer over Argo ({OFFER, ref, count, seed,
 * readonly, back ref}; see grantor.c), then works through `mode`:
 *
 *   rw      maps every page writable (one map call) into the read-write
 *           half of the grant window, checks the granter's pattern, writes
 *           its own pattern through the mappings and tells the granter
 *           (WROTE), waits for ACK, unmaps (one call), tells the granter
 *           (UNMAPPED), waits for ENDED and checks that the ended grant no
 *           longer maps (GNTST_general_error).
 *   ro      the same with GNTMAP_readonly into the read-only half; the
 *           writes through those mappings must not land and the guest goes
 *           on. For a read-only grant it first checks that a writable map
 *           is refused (GNTST_general_error).
 *   copy    gnttab_copy from every granted page into its own pages (gref
 *           source, own gmfn destination, one call), a partial copy with
 *           offsets, then a page of its own into the granter's back page
 *           (gmfn source, gref destination), with content checks; then
 *           COPIED, ACK, UNMAPPED, ENDED as above.
 *   cycles  `cycles` map+unmap cycles of the first page (1000 by default)
 *           over 64 window slots, checking every status and the first word
 *           each time. With hold_port=<p> it registers a ring for the
 *           host (domain 0) on port p, and after one warm-up cycle prints
 *           "grantee: cycles: warm, holding" and waits for a host message,
 *           and after the cycles prints "grantee: cycles: done, holding"
 *           and waits for another, so the host can measure in between.
 *   batch   `rounds` rounds of all pages mapped in one call and unmapped
 *           in one call (32 pages in the tests).
 *   revoke  maps every page (with mixed=1 the odd ones read-only into the
 *           read-only half), tells the granter (MAPPED), prints
 *           "grantee: revoke: waiting" and sleeps until a VIRQ comes and
 *           query_revoked reports handles. Then checks the report is
 *           exactly its handles, that the window pages read zeros, that
 *           the dead granter is GNTST_bad_domain now, that the revoked
 *           handles unmap (GNTST_okay) once and then are bad handles, and
 *           prints "revoked: handle <h> reported" for each.
 *           With granter_alive=1 (the VMM revoked the mappings by
 *           policy while the granter lives on) the bad_domain check is
 *           skipped and DONE is sent to the granter at the end.
 *   hold    maps every page, tells the granter (MAPPED), prints
 *           "grantee: holding" and waits until the host stops it.
 *   wrong   a domain the grant was not made to: maps (RW and RO) and
 *           copies from the first ref must all give status `want`
 *           (default -1, GNTST_general_error; -8 with a map_from policy
 *           that excludes the granter); then DONE to the granter.
 *   bench   times `count` iterations of op=mapunmap (map+unmap of the
 *           first page), op=batch (all pages mapped in one call, unmapped
 *           in one call) or op=copy (4 KiB gnttab_copy from the first
 *           grant) with the TSC; prints "grantee: bench ready" before and
 *           "gntbench: op <op> count <n> cycles <c>" after.
 *
 * Prints one line per check, "grantee: check <name>: ok|FAIL (<detail>)",
 * then "grantee: all <n> checks ok" (returns 0) or
 * "grantee: <k> of <n> checks FAILED" (returns 1).
 *
 * Params: peer=<granter domid> (required), mode (default rw), want,
 * cycles, rounds (default 10), hold_port, mixed, granter_alive, op, count
 * (default 1000).
 */
#define CHECK_PREFIX "grantee"
#include "gntproto.h"


/* ---- Argo: a unicast ring for the granter, and one for the host ---------- */

static struct argo_ring *ring, *host_ring;
static uint16_t peer;

static struct argo_ring *make_ring(uint32_t port, uint16_t partner, long *err)
{
    struct argo_ring *r = guest_alloc_pages(1);
    uint64_t *gfn = guest_alloc_pages(1);
    if (!r || !gfn) {
        *err = -ENOMEM;
        return NULL;
    }
    gfn[0] = guest_virt_to_phys(r) >> 12;
    struct argo_register_ring reg = { .aport = port, .partner_id = partner, .len = RINGLEN };
    for (;;) {
        *err = argo_register_ring(&reg, gfn, 1, 0);
        if (*err == 0)
            return r;
        if ((*err != -ESRCH && *err != -ECONNREFUSED) || retries_left-- <= 0)
            return NULL;
        spin(2000);
    }
}

/* Waits for the granter's next message, which must be of type want. */
static long expect_msg(uint32_t want, struct gmsg *m)
{
    for (;;) {
        struct argo_addr src;
        uint32_t type;
        long r = argo_ring_recv(ring, RINGLEN, m, sizeof(*m), &src, &type);
        if (r == -EAGAIN) {
            guest_wait_for_interrupt();
            continue;
        }
        if (r < 0)
            return r;
        argo_notify(NULL);
        if (r != (long)sizeof(*m) || type != GMSG_TYPE || src.domain_id != peer || m->type != want) {
            guest_printf("grantee: want message %u from %u, got type %u from %u\n", want, peer, m->type,
                         src.domain_id);
            return -EINVAL;
        }
        return 0;
    }
}

/* Waits for any message from the host on the hold ring. */
static void wait_host(void)
{
    uint8_t buf[64];
    for (;;) {
        long r = argo_ring_recv(host_ring, RINGLEN, buf, sizeof(buf), NULL, NULL);
        if (r >= 0) {
            argo_notify(NULL);
            return;
        }
        guest_wait_for_interrupt();
    }
}


/* ---- grant operations ------------------------------------------------------- */

static struct gmsg offer;
static struct gnttab_map_grant_ref mops[MAX_PAGES];
static struct gnttab_unmap_grant_ref uops[MAX_PAGES];

static uint64_t slot(int ro, uint32_t i)
{
    return (ro ? GNTTAB_WINDOW_RO : GNTTAB_WINDOW_RW) + (uint64_t)i * GUEST_PAGE_SIZE;
}

static volatile uint64_t *at(uint64_t gpa)
{
    return (volatile uint64_t *)(uintptr_t)gpa;
}

/* Maps refs ref0..ref0+n-1 of the granter in one call, page i read-only
 * when ro_mask says so. Returns the call's result; *ok counts GNTST_okay. */
static long map_all(uint32_t n, uint64_t ro_mask, uint32_t *ok)
{
    for (uint32_t i = 0; i < n; i++) {
        int ro = (ro_mask >> i) & 1;
        mops[i] = (struct gnttab_map_grant_ref){
            .host_addr = slot(ro, i),
            .flags = GNTMAP_host_map | (ro ? GNTMAP_readonly : 0),
            .ref = offer.ref + i,
            .dom = peer,
            .status = 99,
        };
    }
    long r = gnttab_map_grant_ref(mops, n);
    *ok = 0;
    for (uint32_t i = 0; i < n; i++)
        *ok += mops[i].status == GNTST_okay;
    return r;
}

/* Unmaps the handles in mops[0..n) in one call. */
static long unmap_all(uint32_t n, uint32_t *ok)
{
    for (uint32_t i = 0; i < n; i++)
        uops[i] = (struct gnttab_unmap_grant_ref){ .host_addr = mops[i].host_addr, .handle = mops[i].handle,
                                                   .status = 99 };
    long r = gnttab_unmap_grant_ref(uops, n);
    *ok = 0;
    for (uint32_t i = 0; i < n; i++)
        *ok += uops[i].status == GNTST_okay;
    return r;
}

/* One map of ref at gpa; returns the status (or the call's error). */
static int map_one(uint32_t ref, uint64_t gpa, uint32_t flags, uint32_t *handle)
{
    struct gnttab_map_grant_ref m = { .host_addr = gpa, .flags = flags, .ref = ref, .dom = peer, .status = 99 };
    long r = gnttab_map_grant_ref(&m, 1);
    if (r != 0)
        return (int)r;
    if (handle)
        *handle = m.handle;
    return m.status;
}

static int unmap_one(uint64_t gpa, uint32_t handle)
{
    struct gnttab_unmap_grant_ref u = { .host_addr = gpa, .handle = handle, .status = 99 };
    long r = gnttab_unmap_grant_ref(&u, 1);
    return r != 0 ? (int)r : u.status;
}

static int copy_one(struct gnttab_copy *c)
{
    c->status = 99;
    long r = gnttab_copy(c, 1);
    return r != 0 ? (int)r : c->status;
}

/* The tail shared by every mode that keeps the granter alive: tell it we
 * hold nothing, wait until it has ended access, and check the ended grant
 * no longer maps. */
static int wind_up(void)
{
    struct gmsg m;
    if (gmsg_send(peer, M_UNMAPPED, &offer) != 0 || expect_msg(M_ENDED, &m) != 0) {
        check("protocol", 0, "UNMAPPED/ENDED exchange failed");
        return finish();
    }
    int st = map_one(offer.ref, slot(0, 0), GNTMAP_host_map, NULL);
    check("map_after_end_access", st == GNTST_general_error, "map of ended ref %u: status %d, want -1 (general_error)",
          offer.ref, st);
    gmsg_send(peer, M_DONE, &offer);
    return finish();
}

/* ---- modes --------------------------------------------------------------------- */

static int mode_map(int ro)
{
    uint32_t n = offer.count, ok;
    int grant_ro = (offer.flags & GM_READONLY) != 0;
    if (ro && grant_ro) {
        int st = map_one(offer.ref, slot(0, 0), GNTMAP_host_map, NULL);
        check("rw_map_of_ro_grant", st == GNTST_general_error,
              "writable map of read-only ref %u: status %d, want -1 (general_error)", offer.ref, st);
    }
    long r = map_all(n, ro ? ~0ull : 0, &ok);
    if (!check("map", r == 0 && ok == n, "%u refs from %u in one call (%s half): returned %ld, %u ok, first status %d",
               n, offer.ref, ro ? "read-only" : "read-write", r, ok, mops[0].status))
        return finish();
    guest_printf("grantee: mapped %u page(s), handles %u..%u\n", n, mops[0].handle, mops[n - 1].handle);
    uint32_t good = 0;
    for (uint32_t i = 0; i < n; i++)
        good += mismatch(at(mops[i].host_addr), offer.seed, i) < 0;
    check("granter_pattern_visible", good == n, "%u of %u mapped pages hold the granter's pattern (seed %u)", good, n,
          offer.seed);

    struct gmsg w = offer;
    w.seed = offer.seed ^ 0x5A5A0000u;
    if (!ro) {
        for (uint32_t i = 0; i < n; i++)
            fill(at(mops[i].host_addr), w.seed, i);
        good = 0;
        for (uint32_t i = 0; i < n; i++)
            good += mismatch(at(mops[i].host_addr), w.seed, i) < 0;
        check("own_write_readback", good == n, "%u of %u pages read back the written pattern (seed %u)", good, n, w.seed);
        w.flags = 0;
    } else {
        /* Writes into the read-only half: each is dropped by the VMM and
         * the guest goes on. */
        for (uint32_t i = 0; i < n; i++) {
            volatile uint64_t *p = at(mops[i].host_addr);
            p[0] = 0xBADBADBADull;
            p[200] = 0xBADBADBADull;
            p[511] = 0xBADBADBADull;
        }
        good = 0;
        for (uint32_t i = 0; i < n; i++)
            good += mismatch(at(mops[i].host_addr), offer.seed, i) < 0;
        check("ro_write_dropped", good == n, "after writes through %u read-only mappings, %u still read the granter's pattern",
              n, good);
        w.flags = GM_READONLY;
    }
    struct gmsg m;
    if (gmsg_send(peer, M_WROTE, &w) != 0 || expect_msg(M_ACK, &m) != 0) {
        check("protocol", 0, "WROTE/ACK exchange failed");
        return finish();
    }
    r = unmap_all(n, &ok);
    check("unmap", r == 0 && ok == n, "%u handles in one call: returned %ld, %u ok, first status %d", n, r, ok,
          uops[0].status);
    return wind_up();
}

static int mode_copy(void)
{
    uint32_t n = offer.count;
    uint8_t *own = guest_alloc_pages(n);
    uint8_t *mine = guest_alloc_pages(1);
    struct gnttab_copy *ops = guest_alloc_pages(1);
    if (!own || !mine || !ops || n > GUEST_PAGE_SIZE / sizeof(*ops))
        return check("alloc", 0, "out of memory"), finish();

    /* granter -> me: gref source, my gmfn destination, one call. */
    for (uint32_t i = 0; i < n; i++)
        ops[i] = (struct gnttab_copy){
            .source = { .u.ref = offer.ref + i, .domid = peer },
            .dest = { .u.gmfn = guest_virt_to_phys(own + (uint64_t)i * GUEST_PAGE_SIZE) >> 12, .domid = DOMID_SELF },
            .len = GUEST_PAGE_SIZE,
            .flags = GNTCOPY_source_gref,
            .status = 99,
        };
    long r = gnttab_copy(ops, n);
    uint32_t ok = 0, good = 0;
    for (uint32_t i = 0; i < n; i++) {
        ok += ops[i].status == GNTST_okay;
        good += mismatch((volatile uint64_t *)(own + (uint64_t)i * GUEST_PAGE_SIZE), offer.seed, i) < 0;
    }
    check("copy_in", r == 0 && ok == n && good == n, "%u pages granter->me in one call: returned %ld, %u ok, %u match", n,
          r, ok, good);

    /* A partial copy with offsets on both sides; the destination names
     * this domain by its id rather than DOMID_SELF. */
    struct gnttab_copy c = {
        .source = { .u.ref = offer.ref, .domid = peer, .offset = 123 },
        .dest = { .u.gmfn = guest_virt_to_phys(mine) >> 12, .domid = guest_domid(), .offset = 2000 },
        .len = 1500,
        .flags = GNTCOPY_source_gref,
    };
    int st = copy_one(&c);
    const uint8_t *src = own; /* a copy of granted page 0 */
    uint32_t wrong = 0;
    for (uint32_t i = 0; i < GUEST_PAGE_SIZE; i++) {
        uint8_t want = i >= 2000 && i < 3500 ? src[i - 2000 + 123] : 0;
        wrong += mine[i] != want;
    }
    check("copy_partial", st == GNTST_okay && wrong == 0, "1500 bytes from offset 123 to offset 2000: status %d, %u bytes wrong",
          st, wrong);

    /* me -> granter: my gmfn source, gref destination (the back page). */
    struct gmsg w = offer;
    w.seed = offer.seed + 0x1000;
    if (offer.back) {
        fill((volatile uint64_t *)mine, w.seed, BACK_INDEX);
        c = (struct gnttab_copy){
            .source = { .u.gmfn = guest_virt_to_phys(mine) >> 12, .domid = DOMID_SELF },
            .dest = { .u.ref = offer.back, .domid = peer },
            .len = GUEST_PAGE_SIZE,
            .flags = GNTCOPY_dest_gref,
        };
        st = copy_one(&c);
        check("copy_out", st == GNTST_okay, "one page me->granter into ref %u: status %d", offer.back, st);
        struct gmsg m;
        if (gmsg_send(peer, M_COPIED, &w) != 0 || expect_msg(M_ACK, &m) != 0) {
            check("protocol", 0, "COPIED/ACK exchange failed");
            return finish();
        }
    }
    return wind_up();
}

static int mode_cycles(uint32_t cycles, uint32_t hold_port)
{
    if (hold_port) {
        long err;
        host_ring = make_ring(hold_port, 0, &err);
        if (!check("host_ring", host_ring != NULL, "ring for the host on port %u: %ld", hold_port, err))
            return finish();
    }
    uint32_t h = 0;
    int st = map_one(offer.ref, slot(0, 0), GNTMAP_host_map, &h);
    int st2 = st == GNTST_okay ? unmap_one(slot(0, 0), h) : st;
    check("warm_up", st == GNTST_okay && st2 == GNTST_okay, "map %d, unmap %d", st, st2);
    if (hold_port) {
        guest_puts("grantee: cycles: warm, holding");
        wait_host();
    }
    uint64_t want = pat(offer.seed, 0, 0);
    uint32_t fails = 0, bad_data = 0;
    long first_fail = -1, last_fail = -1;
    for (uint32_t i = 0; i < cycles; i++) {
        uint64_t gpa = slot(0, i % 64);
        st = map_one(offer.ref, gpa, GNTMAP_host_map, &h);
        if (st == GNTST_okay) {
            bad_data += *at(gpa) != want;
            st = unmap_one(gpa, h);
        }
        if (st != GNTST_okay) {
            fails++;
            if (first_fail < 0)
                first_fail = i;
            last_fail = i;
        }
    }
    check("cycles", fails == 0 && bad_data == 0, "%u map/unmap cycles: %u failed (first %ld, last %ld), %u saw wrong data",
          cycles, fails, first_fail, last_fail, bad_data);
    check("last_cycles_ok", cycles > 10 && (last_fail < 0 || last_fail < (long)cycles - 10),
          "the last 10 cycles succeeded (last failure %ld)", last_fail);
    if (hold_port) {
        guest_puts("grantee: cycles: done, holding");
        wait_host();
    }
    return wind_up();
}

static int mode_batch(uint32_t rounds)
{
    uint32_t n = offer.count, bad_map = 0, bad_unmap = 0, bad_data = 0;
    for (uint32_t k = 0; k < rounds; k++) {
        uint32_t ok;
        long r = map_all(n, 0, &ok);
        if (r != 0 || ok != n)
            bad_map++;
        for (uint32_t i = 0; i < n; i++)
            if (mops[i].status == GNTST_okay)
                bad_data += *at(mops[i].host_addr) != pat(offer.seed, i, 0) ||
                            at(mops[i].host_addr)[511] != pat(offer.seed, i, 511);
        /* Unmap every element; failed maps have handles that are not ours,
         * so only a fully successful round is expected to unmap cleanly. */
        r = unmap_all(n, &ok);
        if (r != 0 || ok != n)
            bad_unmap++;
    }
    check("batch", bad_map == 0 && bad_unmap == 0 && bad_data == 0,
          "%u rounds of %u maps in one call then %u unmaps in one call: %u bad map calls, %u bad unmap calls, %u pages with wrong data",
          rounds, n, n, bad_map, bad_unmap, bad_data);
    return wind_up();
}

static int mode_revoke(int mixed, int granter_alive)
{
    uint32_t n = offer.count, ok;
    uint64_t ro_mask = mixed ? 0xAAAAAAAAAAAAAAAAull : 0;
    long r = map_all(n, ro_mask, &ok);
    if (!check("map", r == 0 && ok == n, "%u refs in one call: returned %ld, %u ok", n, r, ok))
        return finish();
    uint32_t good = 0;
    for (uint32_t i = 0; i < n; i++)
        good += mismatch(at(mops[i].host_addr), offer.seed, i) < 0;
    check("granter_pattern_visible", good == n, "%u of %u mapped pages hold the granter's pattern", good, n);

    uint32_t got[MAX_PAGES];
    struct gnttab_query_revoked q = { .nr = MAX_PAGES, .handles = (uint64_t)(uintptr_t)got };
    r = gnttab_query_revoked(&q);
    check("nothing_revoked_yet", r == 0 && q.nr == 0, "query_revoked = %ld, %u handles", r, q.nr);

    uint64_t virqs_before = virqs;
    if (gmsg_send(peer, M_MAPPED, &offer) != 0)
        return check("protocol", 0, "MAPPED failed"), finish();
    guest_printf("grantee: revoke: mapped %u page(s) of domain %u, waiting\n", n, peer);
    /* The VMM revokes first and signals after, so query_revoked may
     * report the handles before the VIRQ arrives, and an arrived VIRQ
     * reaches on_virq only inside guest_wait_for_interrupt. Wait for both
     * events: the VIRQ must come, and the handles must be reported. */
    for (;;) {
        q = (struct gnttab_query_revoked){ .nr = MAX_PAGES, .handles = (uint64_t)(uintptr_t)got };
        r = gnttab_query_revoked(&q);
        if (r != 0 || (q.nr > 0 && virqs > virqs_before))
            break;
        guest_wait_for_interrupt();
    }
    check("virq", virqs > virqs_before, "%lu VIRQ(s) since MAPPED", (unsigned long)(virqs - virqs_before));
    /* query_revoked reports in ascending order: compare with ours sorted. */
    uint32_t mine[MAX_PAGES], match = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t h = mops[i].handle, j = i;
        for (; j > 0 && mine[j - 1] > h; j--)
            mine[j] = mine[j - 1];
        mine[j] = h;
    }
    for (uint32_t i = 0; i < q.nr && i < n; i++)
        match += got[i] == mine[i];
    check("query_revoked", r == 0 && q.nr == n && match == n, "returned %ld, %u handles reported, %u match ours", r, q.nr,
          match);
    for (uint32_t i = 0; i < q.nr; i++)
        guest_printf("revoked: handle %u reported\n", got[i]);

    uint32_t zero = 0;
    for (uint32_t i = 0; i < n; i++) {
        volatile uint64_t *p = at(mops[i].host_addr);
        uint64_t any = 0;
        for (uint32_t w = 0; w < 512; w++)
            any |= p[w];
        zero += any == 0;
    }
    check("dead_page_reads_zero", zero == n, "%u of %u revoked window pages read as zeros", zero, n);
    /* A write to a revoked page must not stop the domain (the granter is
     * gone, so it can reach nobody); report what a read gives after it. */
    for (uint32_t i = 0; i < n; i++) {
        volatile uint64_t *p = at(mops[i].host_addr);
        p[7] = 0x5EED5EEDull;
        guest_printf("grantee: revoked page %u (%s half) reads %#lx after a write of 0x5eed5eed\n", i,
                     (ro_mask >> i) & 1 ? "read-only" : "read-write", (unsigned long)p[7]);
    }
    if (!granter_alive) {
        int st = map_one(offer.ref, slot(0, 63), GNTMAP_host_map, NULL);
        check("map_from_dead_granter", st == GNTST_bad_domain,
              "map of ref %u of dead domain %u: status %d, want -2 (bad_domain)", offer.ref, peer, st);
    }
    r = unmap_all(n, &ok);
    check("unmap_revoked", r == 0 && ok == n, "%u revoked handles in one call: returned %ld, %u ok", n, r, ok);
    r = unmap_all(n, &ok);
    uint32_t bad_handle = 0;
    for (uint32_t i = 0; i < n; i++)
        bad_handle += uops[i].status == GNTST_bad_handle;
    check("unmap_revoked_twice", r == 0 && bad_handle == n, "again: %u of %u are bad_handle (-4)", bad_handle, n);
    q = (struct gnttab_query_revoked){ .nr = MAX_PAGES, .handles = (uint64_t)(uintptr_t)got };
    r = gnttab_query_revoked(&q);
    check("nothing_left", r == 0 && q.nr == 0, "query_revoked = %ld, %u handles", r, q.nr);
    if (granter_alive)
        gmsg_send(peer, M_DONE, &offer);
    return finish();
}

static int mode_hold(void)
{
    uint32_t n = offer.count, ok;
    long r = map_all(n, 0, &ok);
    if (!check("map", r == 0 && ok == n, "%u refs in one call: returned %ld, %u ok", n, r, ok))
        return finish();
    if (gmsg_send(peer, M_MAPPED, &offer) != 0)
        return check("protocol", 0, "MAPPED failed"), finish();
    guest_puts("grantee: holding");
    for (;;)
        guest_wait_for_interrupt();
}

static int mode_wrong(int want)
{
    int st = map_one(offer.ref, slot(0, 0), GNTMAP_host_map, NULL);
    check("wrong_grantee_map", st == want, "map of ref %u granted by %u to another domain: status %d, want %d", offer.ref,
          peer, st, want);
    st = map_one(offer.ref, slot(1, 0), GNTMAP_host_map | GNTMAP_readonly, NULL);
    check("wrong_grantee_map_ro", st == want, "read-only map of it: status %d, want %d", st, want);
    uint8_t *mine = guest_alloc_pages(1);
    struct gnttab_copy c = {
        .source = { .u.ref = offer.ref, .domid = peer },
        .dest = { .u.gmfn = guest_virt_to_phys(mine) >> 12, .domid = DOMID_SELF },
        .len = 64,
        .flags = GNTCOPY_source_gref,
    };
    st = copy_one(&c);
    uint32_t nonzero = 0;
    for (uint32_t i = 0; i < 64; i++)
        nonzero += mine[i] != 0;
    check("wrong_grantee_copy", st == want && nonzero == 0, "copy from it: status %d, want %d; %u bytes arrived", st, want,
          nonzero);
    gmsg_send(peer, M_DONE, &offer);
    return finish();
}

static int mode_bench(const char *op, uint32_t count)
{
    uint32_t n = offer.count, ok = 0, bad = 0;
    uint8_t *mine = guest_alloc_pages(1);
    struct gnttab_map_grant_ref m = { .host_addr = slot(0, 0), .flags = GNTMAP_host_map, .ref = offer.ref, .dom = peer };
    struct gnttab_unmap_grant_ref u = { .host_addr = slot(0, 0) };
    struct gnttab_copy c = {
        .source = { .u.ref = offer.ref, .domid = peer },
        .dest = { .u.gmfn = guest_virt_to_phys(mine) >> 12, .domid = DOMID_SELF },
        .len = GUEST_PAGE_SIZE,
        .flags = GNTCOPY_source_gref,
    };
    int which = guest_strcmp(op, "mapunmap") == 0 ? 1 : guest_strcmp(op, "batch") == 0 ? 2 : guest_strcmp(op, "copy") == 0 ? 3 : 0;
    if (!which)
        return check("bench_op", 0, "unknown op %s", op), finish();
    guest_puts("grantee: bench ready");
    uint64_t t0 = guest_rdtsc();
    for (uint32_t i = 0; i < count; i++) {
        switch (which) {
        case 1:
            gnttab_map_grant_ref(&m, 1);
            u.handle = m.handle;
            gnttab_unmap_grant_ref(&u, 1);
            bad += m.status != GNTST_okay || u.status != GNTST_okay;
            break;
        case 2: {
            long r1 = map_all(n, 0, &ok);
            bad += r1 != 0 || ok != n;
            long r2 = unmap_all(n, &ok);
            bad += r2 != 0 || ok != n;
            break;
        }
        case 3:
            gnttab_copy(&c, 1);
            bad += c.status != GNTST_okay;
            break;
        }
    }
    uint64_t cycles = guest_rdtsc() - t0;
    guest_printf("gntbench: op %s count %u cycles %lu\n", op, count, (unsigned long)cycles);
    check("bench", bad == 0, "%u of %u iterations failed", bad, count);
    return wind_up();
}

int guest_main(void)
{
    const char *mode = guest_param("mode");
    peer = (uint16_t)guest_param_u64("peer", 0);
    if (!mode)
        mode = "rw";
    if (peer == 0 || peer == guest_domid()) {
        guest_puts("grantee: param peer must name the granting domain");
        return 1;
    }
    guest_set_virq_handler(on_virq);
    long err;
    ring = make_ring(PORT, peer, &err);
    if (!ring) {
        guest_printf("grantee: ring registration failed: %ld\n", err);
        return 1;
    }
    if (expect_msg(M_OFFER, &offer) != 0)
        return 1;
    if (offer.count == 0 || offer.count > MAX_PAGES) {
        guest_printf("grantee: bad offer of %u pages\n", offer.count);
        return 1;
    }
    guest_printf("grantee: domain %u, mode %s: offered refs %u..%u by domain %u%s\n", guest_domid(), mode, offer.ref,
                 offer.ref + offer.count - 1, peer, offer.flags & GM_READONLY ? " (read-only)" : "");

    if (guest_strcmp(mode, "rw") == 0)
        return mode_map(0);
    if (guest_strcmp(mode, "ro") == 0)
        return mode_map(1);
    if (guest_strcmp(mode, "copy") == 0)
        return mode_copy();
    if (guest_strcmp(mode, "cycles") == 0)
        return mode_cycles((uint32_t)guest_param_u64("cycles", 1000), (uint32_t)guest_param_u64("hold_port", 0));
    if (guest_strcmp(mode, "batch") == 0)
        return mode_batch((uint32_t)guest_param_u64("rounds", 10));
    if (guest_strcmp(mode, "revoke") == 0)
        return mode_revoke(guest_param_u64("mixed", 0) != 0, guest_param_u64("granter_alive", 0) != 0);
    if (guest_strcmp(mode, "hold") == 0)
        return mode_hold();
    if (guest_strcmp(mode, "wrong") == 0) {
        const char *w = guest_param("want");
        return mode_wrong(w ? (int)guest_strtol(w, NULL) : GNTST_general_error);
    }
    if (guest_strcmp(mode, "bench") == 0) {
        const char *op = guest_param("op");
        return mode_bench(op ? op : "mapunmap", (uint32_t)guest_param_u64("count", 1000));
    }
    guest_printf("grantee: unknown mode %s\n", mode);
    return 1;
}
