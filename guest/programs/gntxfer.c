/*
 * gntxfer: grant-table transfers (GNTTABOP_transfer) and the memory
 * reservation calls that go with them, between real domains.
 *
 * Output: one line per check, either
 *
 *     gntxfer: <check>: got <result>, want <result>: ok|FAIL
 *
 * (results are GNTST_* statuses "-9 bad_page", errnos "-22 EINVAL" or
 * counts) or "gntxfer: check <name>: ok|FAIL (<detail>)"; then
 * "gntxfer: all <n> checks ok" (returns 0) or
 * "gntxfer: <k> of <n> checks FAILED" (returns 1).
 *
 * Modes (param mode):
 *   pingpong  role=a|b peer=<domid> frames=<n> (default 1000) batch=<k>
 *             (default 1, at most 64): the two domains pass frames back
 *             and forth, k per transfer call, n in all. Each round the
 *             receiver posts accept-transfer entries for its empty
 *             frames and says so over Argo; the sender fills its frames
 *             with the round's pattern, transfers them and sends their
 *             checksum; the receiver ends the entries, checks the frame
 *             numbers, the pattern and the checksum. a starts with the
 *             pages, b with the holes. Prints
 *             "gntxfer: <role>: <s> frames sent, <r> received".
 *   tester    peer=<domid> dead=<domid> [missing=<domid>, default 999]
 *             [touch=transferred]: every transfer and memory_op error
 *             with its status, against the peer (mode=peer) and a domain
 *             that has died (mode=dier). With touch=transferred it then
 *             reads a frame it transferred away, which must stop it:
 *             nothing is printed after "gntxfer: touching ...".
 *   peer      peer=<tester>: posts the entries the tester needs, maps a
 *             page the tester grants it, fills its reservation on
 *             request and checks what arrived.
 *   dier      exits at once.
 *   bench     count=<n>: times n transfers of a page to itself (one
 *             hypercall each) with the TSC; prints
 *             "gntbench: op transfer count <n> cycles <c>".
 */
#include <argo.h>
#include <gnttab.h>
#include <guest.h>
#include <memory.h>

#define PORT      1
#define RINGLEN   (4096u - 64u)
#define XMSG_TYPE 0x58464552u /* "XFER" */
#define MAX_BATCH 64u
#define BEYOND    ((void *)0x80000000ul) /* identity mapped, but no RAM there */

enum { X_ACCEPT = 1, X_SENT, X_GRANT, X_OFFER, X_FILL, X_FULL, X_DONE };

/* The peer's entries (refs in its table). */
enum { P_OK = 8, P_PERMIT = 9, P_OTHER = 10, P_POPULATED = 11, P_FULL = 12 };

struct xmsg {
    uint32_t type;
    uint32_t round;
    uint32_t count;
    uint32_t ref;
    uint64_t sum;
};

static uint16_t me, peer;
static struct grant_entry_v1 *t;
static struct argo_ring *ring;

/* ---- checks ------------------------------------------------------------------ */

static unsigned nchecks, nfailed;

static const char *st_name(long v)
{
    static const char *names[] = { "okay", "general_error", "bad_domain", "bad_gntref", "bad_handle",
                                   "bad_virt_addr", "bad_dev_addr", "no_device_space", "permission_denied",
                                   "bad_page", "bad_copy_arg", "address_too_big", "eagain", "no_space" };
    if (v <= 0 && v >= -13)
        return names[-v];
    return "?";
}

/* Formats a result: a status, or a call's value (errno name if negative). */
static void fmt_result(char *buf, size_t n, long v, int is_status)
{
    if (is_status)
        guest_snprintf(buf, n, "%ld %s", v, st_name(v));
    else if (v < 0)
        guest_snprintf(buf, n, "%ld %s", v, guest_errno_name(v));
    else
        guest_snprintf(buf, n, "%ld", v);
}

static void report(const char *name, long got, long want, int is_status)
{
    char g[48], w[48];
    fmt_result(g, sizeof(g), got, is_status);
    fmt_result(w, sizeof(w), want, is_status);
    nchecks++;
    if (got != want)
        nfailed++;
    guest_printf("gntxfer: %s: got %s, want %s: %s\n", name, g, w, got == want ? "ok" : "FAIL");
}

#define ST(name, want, expr) report(name, (expr), (want), 1)
#define RC(name, want, expr) report(name, (expr), (want), 0)

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
    guest_printf("gntxfer: check %s: %s (%s)\n", name, ok ? "ok" : "FAIL", detail);
    return ok;
}

static int finish(void)
{
    if (nfailed == 0) {
        guest_printf("gntxfer: all %u checks ok\n", nchecks);
        return 0;
    }
    guest_printf("gntxfer: %u of %u checks FAILED\n", nfailed, nchecks);
    return 1;
}

/* ---- pages --------------------------------------------------------------------- */

static uint64_t gfn_of(const void *p) { return guest_virt_to_phys(p) >> 12; }

static volatile uint64_t *at(uint64_t gfn) { return (volatile uint64_t *)(uintptr_t)(gfn << 12); }

static const void *page(uint64_t gfn) { return (const void *)(uintptr_t)(gfn << 12); }

static uint64_t pat(uint64_t seed, uint32_t w)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)w << 17);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x | 1;
}

static void fill(uint64_t gfn, uint64_t seed)
{
    volatile uint64_t *p = at(gfn);
    for (uint32_t w = 0; w < 512; w++)
        p[w] = pat(seed, w);
}

static int matches(uint64_t gfn, uint64_t seed)
{
    volatile uint64_t *p = at(gfn);
    for (uint32_t w = 0; w < 512; w++)
        if (p[w] != pat(seed, w))
            return 0;
    return 1;
}

static int all_zero(uint64_t gfn)
{
    volatile uint64_t *p = at(gfn);
    for (uint32_t w = 0; w < 512; w++)
        if (p[w] != 0)
            return 0;
    return 1;
}

static uint64_t checksum(uint64_t gfn)
{
    volatile uint64_t *p = at(gfn);
    uint64_t s = 0;
    for (uint32_t w = 0; w < 512; w++)
        s = s * 31 + p[w] * (w + 1);
    return s;
}

/* ---- calls ---------------------------------------------------------------------- */

/* One transfer; returns its status, or -1000 + errno if the call failed. */
static long xfer(uint64_t gfn, uint16_t dom, uint32_t ref)
{
    struct gnttab_transfer op = { .mfn = gfn, .domid = dom, .ref = ref, .status = 99 };
    long r = gnttab_transfer(&op, 1);
    return r != 0 ? -1000 + r : op.status;
}

/* One reservation call with every field given. */
static long resv(unsigned op, const uint64_t *list, uint64_t nr, uint32_t order, uint32_t flags, uint16_t domid,
                 unsigned long start)
{
    struct xen_memory_reservation r = {
        .extent_start = (uint64_t)(uintptr_t)list,
        .nr_extents = nr,
        .extent_order = order,
        .mem_flags = flags,
        .domid = domid,
    };
    return memory_op(op | start << MEMOP_EXTENT_SHIFT, &r);
}

static long dec1(uint64_t gfn) { return memory_decrease_reservation(&gfn, 1); }

static long query(unsigned op, uint16_t dom) { return memory_op(op, &dom); }

static uint16_t flags_of(uint32_t ref) { return __atomic_load_n(&t[ref].flags, __ATOMIC_ACQUIRE); }

/* ---- Argo link to the peer -------------------------------------------------------- */

static void on_virq(void)
{
}

static void spin(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        guest_cpu_relax();
}

static struct argo_ring *make_ring(uint16_t partner)
{
    struct argo_ring *r = guest_alloc_pages(1);
    uint64_t *gfn = guest_alloc_pages(1);
    if (!r || !gfn)
        return NULL;
    gfn[0] = gfn_of(r);
    struct argo_register_ring reg = { .aport = PORT, .partner_id = partner, .len = RINGLEN };
    for (long tries = 0; tries < 200000; tries++) {
        long e = argo_register_ring(&reg, gfn, 1, 0);
        if (e == 0)
            return r;
        if (e != -ESRCH && e != -ECONNREFUSED)
            break;
        spin(2000);
    }
    return NULL;
}

static long xsend(uint32_t type, uint32_t round, uint32_t count, uint32_t ref, uint64_t sum)
{
    struct xmsg m = { .type = type, .round = round, .count = count, .ref = ref, .sum = sum };
    for (long tries = 0;;) {
        long r = argo_send(peer, PORT, PORT, &m, sizeof(m), XMSG_TYPE);
        if (r >= 0)
            return 0;
        if (r == -EAGAIN) {
            guest_wait_for_interrupt();
            continue;
        }
        if (r == -ECONNREFUSED && tries++ < 200000) {
            spin(2000);
            continue;
        }
        guest_printf("gntxfer: send of message %u failed: %ld\n", type, r);
        return r;
    }
}

/* Waits for the peer's next message, which must be of type want. */
static long xrecv(uint32_t want, struct xmsg *m)
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
        if (r != (long)sizeof(*m) || type != XMSG_TYPE || src.domain_id != peer || m->type != want) {
            guest_printf("gntxfer: want message %u from %u, got %u from %u\n", want, peer, m->type, src.domain_id);
            return -EINVAL;
        }
        return 0;
    }
}

static int setup(void)
{
    long err;
    t = gnttab_init(1, &err);
    if (!t) {
        guest_printf("gntxfer: gnttab_init: %ld\n", err);
        return -1;
    }
    ring = make_ring(peer);
    if (!ring) {
        guest_puts("gntxfer: ring registration failed");
        return -1;
    }
    return 0;
}

/* ---- ping-pong ----------------------------------------------------------------------- */

static uint64_t seed_of(uint32_t round, uint32_t i) { return (uint64_t)round * 1000003u + i + 1; }

static int run_pingpong(int is_a, uint32_t frames, uint32_t batch)
{
    const char *role = is_a ? "a" : "b";
    if (batch == 0 || batch > MAX_BATCH || frames % batch != 0 || frames == 0) {
        guest_printf("gntxfer: bad frames %u / batch %u\n", frames, batch);
        return 1;
    }
    if (setup() != 0)
        return 1;
    uint32_t rounds = frames / batch;
    long ram = (long)(guest_ram_size() / GUEST_PAGE_SIZE);
    uint8_t *pages = guest_alloc_pages(batch);
    if (!pages)
        return 1;
    uint64_t slot[MAX_BATCH];
    for (uint32_t i = 0; i < batch; i++)
        slot[i] = gfn_of(pages) + i;
    int have = is_a; /* do my slots hold pages? */
    if (!is_a) {
        long d = memory_decrease_reservation(slot, batch);
        if (!check("initial_holes", d == (long)batch, "%ld of %u frames given back", d, batch))
            return finish();
        for (uint32_t i = 0; i < batch; i++)
            gnttab_grant_foreign_transfer(t, 8 + i, peer, slot[i]);
        if (xsend(X_ACCEPT, 0, batch, 8, 0) != 0)
            return finish();
    }
    uint32_t sent = 0, received = 0, xfail = 0, badframe = 0, badpage = 0, badsum = 0, resvbad = 0, proto = 0;
    long first_st = 0;
    for (uint32_t r = 0; r < rounds; r++) {
        int sender = (r % 2 == 0) == is_a;
        struct xmsg m;
        if (sender) {
            if (xrecv(X_ACCEPT, &m) != 0 || m.round != r || m.count != batch) {
                proto++;
                break;
            }
            uint64_t sum = 0;
            struct gnttab_transfer ops[MAX_BATCH];
            for (uint32_t i = 0; i < batch; i++) {
                fill(slot[i], seed_of(r, i));
                sum += checksum(slot[i]);
                ops[i] = (struct gnttab_transfer){ .mfn = slot[i], .domid = peer, .ref = m.ref + i, .status = 99 };
            }
            long ret = gnttab_transfer(ops, batch);
            for (uint32_t i = 0; i < batch; i++) {
                if (ret != 0 || ops[i].status != GNTST_okay) {
                    if (xfail++ == 0)
                        first_st = ret ? ret : ops[i].status;
                }
            }
            sent += batch;
            have = 0;
            if (xsend(X_SENT, r, batch, 0, sum) != 0) {
                proto++;
                break;
            }
            if (r + 1 < rounds) {
                for (uint32_t i = 0; i < batch; i++)
                    gnttab_grant_foreign_transfer(t, 8 + i, peer, slot[i]);
                if (xsend(X_ACCEPT, r + 1, batch, 8, 0) != 0) {
                    proto++;
                    break;
                }
            }
        } else {
            if (xrecv(X_SENT, &m) != 0 || m.round != r || m.count != batch) {
                proto++;
                break;
            }
            uint64_t sum = 0;
            for (uint32_t i = 0; i < batch; i++) {
                uint64_t f = gnttab_end_foreign_transfer(t, 8 + i);
                badframe += f != slot[i];
                badpage += !matches(slot[i], seed_of(r, i));
                sum += checksum(slot[i]);
            }
            badsum += sum != m.sum;
            received += batch;
            have = 1;
        }
        if (r % 100 == 99 || r + 1 == rounds)
            resvbad += memory_current_reservation() != ram - (have ? 0 : (long)batch);
    }
    check("protocol", proto == 0, "%u rounds of %u frames", rounds, batch);
    check("transfers", xfail == 0, "%u of %u transfers failed (first: %ld)", xfail, sent, first_st);
    check("frames_arrived", badframe == 0, "%u of %u frames arrived elsewhere", badframe, received);
    check("pages_intact", badpage == 0, "%u of %u pages did not hold the sender's pattern", badpage, received);
    check("checksums", badsum == 0, "%u of %u rounds' checksums differ", badsum, rounds / 2);
    check("reservations", resvbad == 0, "%u of the reservation checks were off", resvbad);
    if (!have)
        check("sent_frames_empty", dec1(slot[0]) == 0, "decrease of a frame sent away does nothing");
    guest_printf("gntxfer: %s: %u frames sent, %u received\n", role, sent, received);
    return finish();
}

/* ---- errors: the tester ---------------------------------------------------------------- */

#define NF 32 /* frames the tester uses */

static uint64_t f[NF];
static long expect_resv;

static void check_memory_op(long ram, uint16_t missing, uint64_t empty)
{
    uint16_t self = DOMID_SELF;
    RC("current_reservation", expect_resv, memory_current_reservation());
    RC("maximum_reservation", ram, memory_maximum_reservation());
    RC("current_own_id", expect_resv, query(XENMEM_current_reservation, me));
    RC("current_other_domain", -EPERM, query(XENMEM_current_reservation, peer));
    RC("maximum_missing_domain", -ESRCH, query(XENMEM_maximum_reservation, missing));
    RC("current_bad_pointer", -EFAULT, memory_op(XENMEM_current_reservation, BEYOND));
    RC("current_start_bits", -EINVAL, memory_op(XENMEM_current_reservation | 1u << MEMOP_EXTENT_SHIFT, &self));
    RC("op_maximum_ram_page", -ENOSYS, memory_op(2, &self));
    RC("op_exchange", -ENOSYS, memory_op(11, &self));

    const unsigned D = XENMEM_decrease_reservation, P = XENMEM_populate_physmap, I = XENMEM_increase_reservation;
    uint64_t outside = (uint64_t)ram + 5, huge = 0xFFFFFFFFFFull;
    RC("decrease_outside_region", 0, resv(D, &outside, 1, 0, 0, DOMID_SELF, 0));
    RC("decrease_huge_frame", 0, resv(D, &huge, 1, 0, 0, DOMID_SELF, 0));
    RC("decrease_empty_frame", 0, resv(D, &empty, 1, 0, 0, DOMID_SELF, 0));
    uint64_t two[2] = { f[19], empty };
    RC("decrease_stops_at_empty_frame", 1, resv(D, two, 2, 0, 0, DOMID_SELF, 0));
    expect_resv--;
    RC("decrease_other_domain", 0, resv(D, &f[20], 1, 0, 0, peer, 0));
    RC("decrease_missing_domain", 0, resv(D, &f[20], 1, 0, 0, missing, 0));
    RC("decrease_order_10", 0, resv(D, &f[20], 1, 10, 0, DOMID_SELF, 0));
    RC("decrease_struct_bad_pointer", 0, memory_op(D, BEYOND));
    RC("decrease_struct_bad_pointer_start_3", 3, memory_op(D | 3u << MEMOP_EXTENT_SHIFT, BEYOND));
    RC("decrease_list_bad_pointer", 0, resv(D, BEYOND, 1, 0, 0, DOMID_SELF, 0));
    RC("decrease_start_at_nr", 1, resv(D, &f[20], 1, 0, 0, DOMID_SELF, 1));
    RC("decrease_more_than_4096", 0, resv(D, f, 4097, 0, 0, DOMID_SELF, 0));
    RC("populate_populated_frame", 0, resv(P, &f[20], 1, 0, 0, DOMID_SELF, 0));
    uint64_t beyond = (uint64_t)ram;
    RC("populate_beyond_region", 0, resv(P, &beyond, 1, 0, 0, DOMID_SELF, 0));
    RC("populate_on_demand", 0, resv(P, &f[19], 1, 0, XENMEMF_populate_on_demand, DOMID_SELF, 0));
    RC("populate_address_bits_12", 0, resv(P, &f[19], 1, 0, XENMEMF_address_bits(12), DOMID_SELF, 0));
    RC("populate_address_bits_32", 1, resv(P, &f[19], 1, 0, XENMEMF_address_bits(32), DOMID_SELF, 0));
    expect_resv++;
    RC("populated_frame_zero", 1, all_zero(f[19]));
    RC("increase_reservation", 2, resv(I, NULL, 2, 0, 0, DOMID_SELF, 0));
    expect_resv += 2;
    RC("increase_beyond_maximum", 0, resv(I, NULL, 1, 9, 0, DOMID_SELF, 0));
}

static int run_tester(uint16_t dead, uint16_t missing)
{
    if (setup() != 0)
        return 1;
    long ram = (long)(guest_ram_size() / GUEST_PAGE_SIZE);
    expect_resv = ram;
    uint8_t *pg = guest_alloc_pages(NF);
    if (!pg)
        return 1;
    for (uint32_t i = 0; i < NF; i++) {
        f[i] = gfn_of(pg) + i;
        fill(f[i], 5000 + i);
    }
    uint64_t table_gfn = GNTTAB_TABLE_GPA >> 12, ring_gfn = gfn_of(ring);

    /* f[0]: granted to the peer, which maps it. */
    gnttab_grant_access(t, 20, peer, page(f[0]), 0);
    struct xmsg m;
    if (xsend(X_GRANT, 0, 1, 20, 0) != 0 || xrecv(X_OFFER, &m) != 0)
        return finish();

    /* Frames that are not ours to give: bad_page, and they stay. */
    ST("transfer_outside_region", GNTST_bad_page, xfer((uint64_t)ram + 16, peer, P_OK));
    ST("transfer_huge_frame", GNTST_bad_page, xfer(0xFFFFFFFFFFFFull, peer, P_OK));
    ST("transfer_grant_table_frame", GNTST_bad_page, xfer(table_gfn, peer, P_OK));
    RC("decrease_for_empty_frame", 1, dec1(f[1]));
    expect_resv--;
    ST("transfer_empty_frame", GNTST_bad_page, xfer(f[1], peer, P_OK));
    ST("transfer_mapped_by_peer", GNTST_bad_page, xfer(f[0], peer, P_OK));
    gnttab_grant_access(t, 21, me, page(f[2]), 1);
    struct gnttab_map_grant_ref mp = { .host_addr = GNTTAB_WINDOW_RO, .flags = GNTMAP_host_map | GNTMAP_readonly,
                                       .ref = 21, .dom = DOMID_SELF, .status = 99 };
    long r = gnttab_map_grant_ref(&mp, 1);
    ST("self_map", GNTST_okay, r ? -1000 + r : mp.status);
    ST("transfer_mapped_by_self", GNTST_bad_page, xfer(f[2], peer, P_OK));
    RC("decrease_mapped_by_self", 0, dec1(f[2]));
    struct gnttab_unmap_grant_ref um = { .host_addr = GNTTAB_WINDOW_RO, .handle = mp.handle, .status = 99 };
    r = gnttab_unmap_grant_ref(&um, 1);
    ST("self_unmap", GNTST_okay, r ? -1000 + r : um.status);
    ST("transfer_argo_ring_page", GNTST_bad_page, xfer(ring_gfn, peer, P_OK));
    RC("decrease_mapped_by_peer", 0, dec1(f[0]));
    RC("decrease_argo_ring_page", 0, dec1(ring_gfn));
    RC("decrease_grant_table_frame", 0, dec1(table_gfn));
    RC("reservation_after_bad_page", expect_resv, memory_current_reservation());
    RC("bad_page_frames_intact", 1, matches(f[0], 5000) && matches(f[2], 5002));

    /* Once taken, the frame is lost whatever fails next (as in Xen). */
    ST("transfer_missing_domain", GNTST_bad_domain, xfer(f[3], missing, P_OK));
    expect_resv--;
    RC("lost_frame_is_empty", 0, dec1(f[3]));
    ST("transfer_domid_invalid", GNTST_bad_domain, xfer(f[4], 0x7FF4, P_OK));
    expect_resv--;
    ST("transfer_not_accept_transfer", GNTST_general_error, xfer(f[5], peer, P_PERMIT));
    expect_resv--;
    ST("transfer_entry_names_other_domain", GNTST_general_error, xfer(f[6], peer, P_OTHER));
    expect_resv--;
    ST("transfer_ref_beyond_table", GNTST_general_error, xfer(f[7], peer, GNTTAB_ENTRIES_PER_FRAME + 88));
    expect_resv--;
    ST("transfer_receiver_frame_populated", GNTST_general_error, xfer(f[8], peer, P_POPULATED));
    expect_resv--;
    ST("transfer_own_invalid_entry", GNTST_general_error, xfer(f[9], DOMID_SELF, 30));
    expect_resv--;
    /* A domain that has died: gnttab forgets it at once (get_version
     * then says -ESRCH), but it is still known: general_error. */
    long gv = 0;
    for (long tries = 0; tries < 200000; tries++) {
        struct gnttab_get_version v = { .dom = dead };
        if ((gv = gnttab_get_version(&v)) == -ESRCH)
            break;
        spin(2000);
    }
    RC("dead_domain_gone", -ESRCH, gv);
    ST("transfer_dead_domain", GNTST_general_error, xfer(f[10], dead, P_OK));
    expect_resv--;
    RC("reservation_after_lost_frames", expect_resv, memory_current_reservation());

    /* The good one, then the same entry again. */
    fill(f[11], 77);
    uint64_t sum = checksum(f[11]);
    ST("transfer_ok", GNTST_okay, xfer(f[11], peer, P_OK));
    expect_resv--;
    ST("transfer_entry_used", GNTST_general_error, xfer(f[12], peer, P_OK));
    expect_resv--;
    RC("sent_frame_is_empty", 0, dec1(f[11]));

    /* To oneself, through one's own entry. */
    RC("decrease_for_self_transfer", 1, dec1(f[13]));
    expect_resv--;
    gnttab_grant_foreign_transfer(t, 22, me, f[13]);
    fill(f[14], 1414);
    ST("transfer_to_self", GNTST_okay, xfer(f[14], DOMID_SELF, 22));
    RC("entry_committed_and_completed", GTF_accept_transfer | GTF_transfer_committed | GTF_transfer_completed,
       flags_of(22));
    RC("end_foreign_transfer_frame", (long)f[13], (long)gnttab_end_foreign_transfer(t, 22));
    RC("end_foreign_transfer_clears", 0, flags_of(22));
    RC("self_transfer_contents", 1, matches(f[13], 1414));
    gnttab_grant_foreign_transfer(t, 23, peer, f[14]);
    RC("end_unused_transfer_entry", 0, (long)gnttab_end_foreign_transfer(t, 23));
    RC("end_unused_clears", 0, flags_of(23));

    /* A batch: each element has its own status. */
    RC("decrease_for_batch", 1, dec1(f[15]));
    expect_resv--;
    gnttab_grant_foreign_transfer(t, 24, me, f[15]);
    struct gnttab_transfer ops[3] = {
        { .mfn = 0xFFFFFFFFFFull, .domid = DOMID_SELF, .ref = 24, .status = 99 },
        { .mfn = f[16], .domid = me, .ref = 24, .status = 99 },
        { .mfn = f[17], .domid = missing, .ref = 24, .status = 99 },
    };
    RC("batch_call", 0, gnttab_transfer(ops, 3));
    ST("batch_first_bad_page", GNTST_bad_page, ops[0].status);
    ST("batch_second_okay", GNTST_okay, ops[1].status);
    ST("batch_third_bad_domain", GNTST_bad_domain, ops[2].status);
    expect_resv--;
    RC("batch_end_foreign_transfer", (long)f[15], (long)gnttab_end_foreign_transfer(t, 24));
    RC("transfer_count_4097", -EINVAL, gnttab_op(GNTTABOP_transfer, ops, 4097));
    RC("transfer_uop_beyond_ram", -EFAULT, gnttab_op(GNTTABOP_transfer, BEYOND, 1));

    /* A receiver at its maximum reservation. */
    if (xsend(X_FILL, 0, 0, 0, 0) != 0 || xrecv(X_FULL, &m) != 0)
        return finish();
    ST("transfer_receiver_full", GNTST_general_error, xfer(f[18], peer, P_FULL));
    expect_resv--;

    check_memory_op(ram, missing, f[3]);
    RC("reservation_at_end", expect_resv, memory_current_reservation());
    xsend(X_DONE, 0, 1, P_OK, sum);
    int ret = finish();
    const char *touch = guest_param("touch");
    if (ret == 0 && touch && guest_strcmp(touch, "transferred") == 0) {
        guest_printf("gntxfer: touching transferred frame %#lx\n", (unsigned long)f[11]);
        (void)*at(f[11]);
        guest_puts("gntxfer: the domain should have stopped");
        return 1;
    }
    return ret;
}

/* ---- errors: the peer --------------------------------------------------------------------- */

static int run_peer(void)
{
    if (setup() != 0)
        return 1;
    struct xmsg m;
    if (xrecv(X_GRANT, &m) != 0)
        return finish();
    struct gnttab_map_grant_ref mp = { .host_addr = GNTTAB_WINDOW_RW, .flags = GNTMAP_host_map, .ref = m.ref,
                                       .dom = peer, .status = 99 };
    long r = gnttab_map_grant_ref(&mp, 1);
    ST("peer_maps_testers_page", GNTST_okay, r ? -1000 + r : mp.status);
    uint8_t *h = guest_alloc_pages(4);
    if (!h)
        return finish();
    uint64_t hole[3] = { gfn_of(h), gfn_of(h) + 1, gfn_of(h) + 2 }, populated = gfn_of(h) + 3;
    RC("peer_holes", 3, memory_decrease_reservation(hole, 3));
    gnttab_grant_foreign_transfer(t, P_OK, peer, hole[0]);
    gnttab_grant_access(t, P_PERMIT, peer, page(populated), 0);
    gnttab_grant_foreign_transfer(t, P_OTHER, me, hole[1]);
    gnttab_grant_foreign_transfer(t, P_POPULATED, peer, populated);
    gnttab_grant_foreign_transfer(t, P_FULL, peer, hole[2]);
    if (xsend(X_OFFER, 0, 0, P_OK, 0) != 0)
        return finish();

    if (xrecv(X_FILL, &m) != 0)
        return finish();
    long max = memory_maximum_reservation(), cur = memory_current_reservation();
    RC("peer_fill_up", max - cur, memory_increase_reservation((unsigned long)(max - cur)));
    RC("peer_full", max, memory_current_reservation());
    if (xsend(X_FULL, 0, 0, 0, 0) != 0 || xrecv(X_DONE, &m) != 0)
        return finish();

    RC("received_entry_flags", GTF_accept_transfer | GTF_transfer_committed | GTF_transfer_completed, flags_of(P_OK));
    RC("received_frame", (long)hole[0], (long)gnttab_end_foreign_transfer(t, P_OK));
    RC("received_page", 1, matches(hole[0], 77) && checksum(hole[0]) == m.sum);
    RC("permit_entry_unchanged", GTF_permit_access, flags_of(P_PERMIT));
    RC("other_domain_entry_unchanged", GTF_accept_transfer, flags_of(P_OTHER));
    RC("populated_entry_unchanged", GTF_accept_transfer, flags_of(P_POPULATED));
    RC("full_entry_unchanged", GTF_accept_transfer, flags_of(P_FULL));
    RC("full_frame_still_empty", 0, dec1(hole[2]));
    struct gnttab_unmap_grant_ref um = { .host_addr = GNTTAB_WINDOW_RW, .handle = mp.handle, .status = 99 };
    r = gnttab_unmap_grant_ref(&um, 1);
    ST("peer_unmaps", GNTST_okay, r ? -1000 + r : um.status);
    return finish();
}

/* ---- bench ------------------------------------------------------------------------------------ */

static int run_bench(uint32_t count)
{
    long err;
    t = gnttab_init(1, &err);
    uint8_t *p = guest_alloc_pages(2);
    if (!t || !p)
        return 1;
    uint64_t cur = gfn_of(p), hole = cur + 1;
    if (!check("bench_hole", dec1(hole) == 1, "one frame given back"))
        return finish();
    *at(cur) = 1;
    uint32_t bad = 0;
    uint64_t t0 = 0;
    for (uint32_t i = 0; i <= count; i++) {
        if (i == 1)
            t0 = guest_rdtsc(); /* after one warm-up transfer */
        gnttab_grant_foreign_transfer(t, 8, me, hole);
        struct gnttab_transfer op = { .mfn = cur, .domid = DOMID_SELF, .ref = 8, .status = 99 };
        if (gnttab_transfer(&op, 1) != 0 || op.status != GNTST_okay)
            bad++;
        if (gnttab_end_foreign_transfer(t, 8) != hole)
            bad++;
        uint64_t x = cur;
        cur = hole;
        hole = x;
    }
    uint64_t cycles = guest_rdtsc() - t0;
    guest_printf("gntbench: op transfer count %u cycles %lu\n", count, (unsigned long)cycles);
    check("bench", bad == 0 && *at(cur) == 1, "%u of %u transfers failed; the page came through: %d", bad, count,
          *at(cur) == 1);
    return finish();
}

int guest_main(void)
{
    const char *mode = guest_param("mode");
    me = guest_domid();
    peer = (uint16_t)guest_param_u64("peer", 0);
    guest_set_virq_handler(on_virq);
    if (!mode) {
        guest_puts("gntxfer: param mode is required");
        return 1;
    }
    if (guest_strcmp(mode, "dier") == 0) {
        guest_puts("gntxfer: dier exiting");
        return 0;
    }
    if (guest_strcmp(mode, "bench") == 0)
        return run_bench((uint32_t)guest_param_u64("count", 1000));
    if (peer == 0 || peer == me) {
        guest_puts("gntxfer: param peer must name another domain");
        return 1;
    }
    if (guest_strcmp(mode, "pingpong") == 0) {
        const char *role = guest_param("role");
        return run_pingpong(role && guest_strcmp(role, "a") == 0, (uint32_t)guest_param_u64("frames", 1000),
                            (uint32_t)guest_param_u64("batch", 1));
    }
    if (guest_strcmp(mode, "tester") == 0)
        return run_tester((uint16_t)guest_param_u64("dead", 0), (uint16_t)guest_param_u64("missing", 999));
    if (guest_strcmp(mode, "peer") == 0)
        return run_peer();
    guest_printf("gntxfer: unknown mode %s\n", mode);
    return 1;
}
