/*
 * grantor: the granting side of the grant-table tests (pair: grantee.c).
 *
 * Sets up its grant table, fills `pages` pages with a pattern derived from
 * `seed`, grants them to `peer` as refs ref, ref+1, ... (read-only when
 * readonly=1), optionally grants one more zeroed page for copies back
 * (back=1, ref right after the others), and offers them over Argo in one
 * message {OFFER, ref, count, seed, readonly, back ref}. It first offers
 * them to every domain in `observers` (each must answer DONE; used for the
 * wrong-grantee checks, which must fail), then to `peer`, and then
 * answers the peer's messages:
 *
 *   WROTE {seed2, mapped-ro}  the peer has mapped every page and written
 *                             pattern seed2 through its mappings (or
 *                             tried to, through read-only ones). Checks
 *                             that its own pages show the new pattern
 *                             (RW) or are unchanged (RO), that the entries
 *                             carry GTF_reading (and GTF_writing iff
 *                             mapped RW), that gnttab_end_access is -EBUSY
 *                             for every ref and that gnttab_make_readonly
 *                             of the first ref is -EBUSY while mapped RW
 *                             and succeeds while mapped RO. Answers ACK.
 *   COPIED {seed3}            the peer copied pattern seed3 into the back
 *                             page with gnttab_copy: checks it, that the
 *                             offered pages are unchanged and that no
 *                             entry is still marked in use. Answers ACK.
 *   UNMAPPED                  the peer holds nothing any more: checks that
 *                             every entry is clear of GTF_reading and
 *                             GTF_writing and that gnttab_end_access now
 *                             succeeds, then answers ENDED.
 *   MAPPED                    (revocation tests) the peer maps the pages
 *                             and waits: on_mapped=exit returns at once
 *                             (the granter dies with its pages mapped),
 *                             on_mapped=hold waits until the host stops
 *                             the domain, on_mapped=release polls
 *                             gnttab_end_access until every ref is
 *                             released (the grantee died, or the VMM
 *                             revoked its mappings) and returns, and
 *                             on_mapped=release_done then also waits for
 *                             the peer's DONE and checks that nothing the
 *                             peer wrote after the revocation reached its
 *                             pages.
 *   DONE                      the peer is finished.
 *
 * Prints one line per check,
 *     grantor: check <name>: ok|FAIL (<detail>)
 * then "grantor: all <n> checks ok" and returns 0, or
 * "grantor: <k> of <n> checks FAILED" and returns 1.
 *
 * Params:
 *   peer=<domid>         the grantee (required)
 *   pages=<n>            pages to grant, 1..64 (default 1)
 *   ref=<n>              first ref (default 8, after Xen's reserved refs)
 *   seed=<n>             pattern seed (default 1)
 *   readonly=1           grant read-only (GTF_readonly)
 *   back=1               also grant a zeroed page for copies back
 *   observers=<a,b,..>   domains to offer the grants to first (at most 3)
 *   on_mapped=exit|hold|release|release_done   what MAPPED means (default:
 *                        exit)
 */
#define CHECK_PREFIX "grantor"
#include "gntproto.h"

#define MAX_LINKS 4


/* ---- Argo links: one unicast ring per partner on PORT ------------------- */

static struct {
    uint16_t dom;
    struct argo_ring *ring;
} links[MAX_LINKS];
static int nlinks;

static long link_add(uint16_t dom)
{
    struct argo_ring *ring = guest_alloc_pages(1);
    uint64_t *gfn = guest_alloc_pages(1);
    if (!ring || !gfn || nlinks == MAX_LINKS)
        return -ENOMEM;
    gfn[0] = guest_virt_to_phys(ring) >> 12;
    struct argo_register_ring reg = { .aport = PORT, .partner_id = dom, .len = RINGLEN };
    for (;;) {
        long r = argo_register_ring(&reg, gfn, 1, 0);
        if (r == 0) {
            links[nlinks].dom = dom;
            links[nlinks++].ring = ring;
            return 0;
        }
        if ((r != -ESRCH && r != -ECONNREFUSED) || retries_left-- <= 0)
            return r;
        spin(2000);
    }
}

/* Waits for the next message from any partner. */
static long link_recv(uint16_t *from, struct gmsg *m)
{
    for (;;) {
        for (int i = 0; i < nlinks; i++) {
            struct argo_addr src;
            uint32_t type;
            long r = argo_ring_recv(links[i].ring, RINGLEN, m, sizeof(*m), &src, &type);
            if (r == -EAGAIN)
                continue;
            if (r < 0)
                return r;
            argo_notify(NULL);
            if (r != (long)sizeof(*m) || type != GMSG_TYPE || src.domain_id != links[i].dom)
                return -EINVAL;
            *from = src.domain_id;
            return 0;
        }
        guest_wait_for_interrupt();
    }
}


/* ---- state ------------------------------------------------------------------- */

static struct grant_entry_v1 *table;
static uint8_t *mem;        /* the granted pages, then the back page */
static uint32_t npages, ref0, seed, back_ref;
static int readonly;
static uint16_t peer;

static volatile uint64_t *page(uint32_t i)
{
    return (volatile uint64_t *)(mem + (uint64_t)i * GUEST_PAGE_SIZE);
}

static uint16_t flags_of(uint32_t ref)
{
    return __atomic_load_n(&table[ref].flags, __ATOMIC_ACQUIRE);
}

static void on_wrote(const struct gmsg *m)
{
    int mapped_ro = (m->flags & GM_READONLY) != 0;
    int unchanged = readonly || mapped_ro;
    uint32_t want_seed = unchanged ? seed : m->seed;
    uint32_t bad = 0;
    int first_bad = -1;
    for (uint32_t i = 0; i < npages; i++) {
        if (mismatch(page(i), want_seed, i) >= 0) {
            bad++;
            if (first_bad < 0)
                first_bad = (int)i;
        }
    }
    if (unchanged)
        check("ro_page_unchanged", bad == 0, "%u of %u pages still hold seed %u after the peer's writes; first changed page %d",
              npages - bad, npages, seed, first_bad);
    else
        check("peer_write_visible", bad == 0, "%u of %u pages show the peer's pattern (seed %u); first other page %d",
              npages - bad, npages, m->seed, first_bad);

    uint16_t want = GTF_permit_access | GTF_reading | (readonly ? GTF_readonly : 0) | (mapped_ro ? 0 : GTF_writing);
    uint32_t right = 0;
    uint16_t seen = 0;
    for (uint32_t i = 0; i < npages; i++) {
        uint16_t f = flags_of(ref0 + i);
        if (f == want)
            right++;
        else
            seen = f;
    }
    check("in_use_flags", right == npages, "%u of %u entries have flags %#x%s", right, npages, want,
          right == npages ? "" : " (one has another value)");
    if (right != npages)
        guest_printf("grantor: an entry has flags %#x\n", seen);

    uint32_t busy = 0;
    for (uint32_t i = 0; i < npages; i++)
        if (gnttab_end_access(table, ref0 + i) == -EBUSY)
            busy++;
    check("end_access_while_mapped", busy == npages, "%u of %u refs: gnttab_end_access = -16 (EBUSY), still in use",
          busy, npages);
    if (!readonly) {
        int r = gnttab_make_readonly(table, ref0);
        int want_r = mapped_ro ? 0 : -EBUSY;
        check("make_readonly_while_mapped", r == want_r, "ref %u mapped %s: got %d, want %d", ref0,
              mapped_ro ? "read-only" : "writable", r, want_r);
        if (r == 0)
            readonly = 1; /* the entry is now a read-only grant */
    }
    gmsg_send(peer, M_ACK, m);
}

static void on_copied(const struct gmsg *m)
{
    int w = back_ref ? mismatch(page(npages), m->seed, BACK_INDEX) : 0;
    check("copy_back_visible", back_ref && w < 0, "back page (ref %u) holds the peer's pattern seed %u: first bad word %d",
          back_ref, m->seed, w);
    uint32_t same = 0;
    for (uint32_t i = 0; i < npages; i++)
        if (mismatch(page(i), seed, i) < 0)
            same++;
    check("copy_source_unchanged", same == npages, "%u of %u offered pages unchanged", same, npages);
    uint32_t idle = 0, n = npages + (back_ref ? 1 : 0);
    for (uint32_t i = 0; i < npages; i++)
        idle += (flags_of(ref0 + i) & (GTF_reading | GTF_writing)) == 0;
    if (back_ref)
        idle += (flags_of(back_ref) & (GTF_reading | GTF_writing)) == 0;
    check("copy_released_pins", idle == n, "%u of %u entries not in use after the copies", idle, n);
    gmsg_send(peer, M_ACK, m);
}

static void on_unmapped(const struct gmsg *m)
{
    uint32_t n = npages + (back_ref ? 1 : 0);
    uint32_t idle = 0, ended = 0, zero = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t ref = i < npages ? ref0 + i : back_ref;
        idle += (flags_of(ref) & (GTF_reading | GTF_writing)) == 0;
        ended += gnttab_end_access(table, ref) == 0;
        zero += flags_of(ref) == 0;
    }
    check("status_bits_clear", idle == n, "%u of %u entries clear of GTF_reading/GTF_writing", idle, n);
    check("end_access_after_unmap", ended == n && zero == n, "%u of %u refs: gnttab_end_access = 0, %u entries now invalid",
          ended, n, zero);
    gmsg_send(peer, M_ENDED, m);
}

/* Polls until every offered ref can be ended: nobody pins them any more.
 * Returns 0 when all were ended, else how many were still in use when the
 * polling gave up (after some seconds). */
static uint32_t await_release(void)
{
    static uint8_t ended[MAX_PAGES];
    uint32_t left = npages;
    for (uint64_t tries = 0; left > 0 && tries < 400000000ull; tries++) {
        for (uint32_t i = 0; i < npages; i++)
            if (!ended[i] && gnttab_end_access(table, ref0 + i) == 0) {
                ended[i] = 1;
                left--;
            }
        guest_cpu_relax();
    }
    return left;
}

static int on_mapped_release(int wait_done)
{
    uint32_t left = await_release();
    check("access_released", left == 0, "%u of %u refs ended once the peer's mappings were gone", npages - left, npages);
    if (!wait_done)
        return finish();
    struct gmsg m;
    uint16_t from = 0;
    long r = link_recv(&from, &m);
    if (!check("peer_done", r == 0 && from == peer && m.type == M_DONE, "message type %u from %u (%ld)", m.type, from, r))
        return finish();
    uint32_t same = 0;
    for (uint32_t i = 0; i < npages; i++)
        same += mismatch(page(i), seed, i) < 0;
    check("pages_unchanged_after_revocation", same == npages,
          "%u of %u pages still hold seed %u after the peer wrote to its revoked mappings", same, npages, seed);
    return finish();
}

/* Parses "3,4" into ids; returns how many. */
static int parse_ids(const char *s, uint16_t *ids, int max)
{
    int n = 0;
    while (s && *s && n < max) {
        const char *end;
        long v = guest_strtol(s, &end);
        if (end == s)
            break;
        ids[n++] = (uint16_t)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

int guest_main(void)
{
    peer = (uint16_t)guest_param_u64("peer", 0);
    npages = (uint32_t)guest_param_u64("pages", 1);
    ref0 = (uint32_t)guest_param_u64("ref", 8);
    seed = (uint32_t)guest_param_u64("seed", 1);
    readonly = guest_param_u64("readonly", 0) != 0;
    int back = guest_param_u64("back", 0) != 0;
    const char *on_mapped = guest_param("on_mapped");
    uint16_t observers[MAX_LINKS - 1];
    int nobs = parse_ids(guest_param("observers"), observers, MAX_LINKS - 1);

    if (peer == 0 || peer == guest_domid() || npages == 0 || npages > MAX_PAGES ||
        ref0 + npages + 1 > GNTTAB_ENTRIES_PER_FRAME) {
        guest_puts("grantor: bad params (need peer=<other domid>, pages=1..64, refs within one frame)");
        return 1;
    }
    guest_set_virq_handler(on_virq);

    long err = 0;
    table = gnttab_init(1, &err);
    if (!check("setup_table", table == (struct grant_entry_v1 *)GNTTAB_TABLE_GPA,
               "gnttab_init(1) = %p, err %ld; want the table at %#lx", (void *)table, err, GNTTAB_TABLE_GPA))
        return finish();
    mem = guest_alloc_pages(npages + 1);
    if (!mem) {
        guest_puts("grantor: out of memory");
        return 1;
    }
    for (uint32_t i = 0; i < npages; i++) {
        fill(page(i), seed, i);
        gnttab_grant_access(table, ref0 + i, peer, mem + (uint64_t)i * GUEST_PAGE_SIZE, readonly);
    }
    if (back) {
        back_ref = ref0 + npages;
        gnttab_grant_access(table, back_ref, peer, mem + (uint64_t)npages * GUEST_PAGE_SIZE, 0);
    }
    guest_printf("grantor: domain %u granted %u page(s) as refs %u..%u to domain %u%s%s\n", guest_domid(), npages,
                 ref0, ref0 + npages - 1, peer, readonly ? ", read-only" : "", back ? ", plus a back page" : "");

    long r = link_add(peer);
    for (int i = 0; r == 0 && i < nobs; i++)
        r = link_add(observers[i]);
    if (r != 0) {
        guest_printf("grantor: ring registration failed: %ld\n", r);
        return 1;
    }
    struct gmsg offer = { .ref = ref0, .count = npages, .seed = seed, .flags = readonly ? GM_READONLY : 0,
                          .back = back_ref };
    /* Observers first, one at a time, while nobody has mapped anything. */
    for (int i = 0; i < nobs; i++) {
        struct gmsg m = { 0 };
        uint16_t from = 0;
        if ((r = gmsg_send(observers[i], M_OFFER, &offer)) != 0) {
            guest_printf("grantor: offer to observer %u failed: %ld\n", observers[i], r);
            return 1;
        }
        if ((r = link_recv(&from, &m)) != 0 || from != observers[i] || m.type != M_DONE) {
            guest_printf("grantor: observer %u: want DONE, got type %u from %u (%ld)\n", observers[i], m.type, from, r);
            return 1;
        }
        guest_printf("grantor: observer %u done\n", from);
    }
    if ((r = gmsg_send(peer, M_OFFER, &offer)) != 0) {
        guest_printf("grantor: offer to domain %u failed: %ld\n", peer, r);
        return 1;
    }

    for (;;) {
        struct gmsg m;
        uint16_t from;
        if ((r = link_recv(&from, &m)) != 0) {
            guest_printf("grantor: receive failed: %ld\n", r);
            return 1;
        }
        if (from != peer) {
            guest_printf("grantor: unexpected message type %u from domain %u\n", m.type, from);
            return 1;
        }
        switch (m.type) {
        case M_WROTE:
            on_wrote(&m);
            break;
        case M_COPIED:
            on_copied(&m);
            break;
        case M_UNMAPPED:
            on_unmapped(&m);
            break;
        case M_MAPPED:
            if (on_mapped && guest_strcmp(on_mapped, "hold") == 0) {
                guest_puts("grantor: peer has mapped the pages; holding until stopped");
                for (;;)
                    guest_wait_for_interrupt();
            }
            if (on_mapped && guest_strncmp(on_mapped, "release", 7) == 0) {
                guest_puts("grantor: peer has mapped the pages; waiting for them to be released");
                return on_mapped_release(guest_strcmp(on_mapped, "release_done") == 0);
            }
            guest_puts("grantor: peer has mapped the pages; exiting with them mapped");
            return finish();
        case M_DONE:
            guest_printf("grantor: peer %u done\n", from);
            return finish();
        default:
            guest_printf("grantor: unexpected message type %u\n", m.type);
            return 1;
        }
    }
}
