/*
 * gnterr: the grant-table error paths, one line per check:
 *
 *     gnterr: <check>: got <result>, want <result>: ok|FAIL
 *
 * then "gnterr: all <n> checks ok" (returns 0) or
 * "gnterr: <k> of <n> checks FAILED" (returns 1). Results are GNTST_*
 * statuses ("-3 bad_gntref") or, when the call itself fails, its errno
 * ("call -22 EINVAL"). The expected values are those of
 * docs/grant-tables.md.
 *
 * Most checks use grants this domain makes to itself (mapped with
 * DOMID_SELF or its own id), so one domain covers them. Its config must
 * give it [domain.gnttab] max_frames = 4 and max_maptrack_frames = 1 (256
 * handles), which the table-size and no_space checks rely on.
 *
 * Params:
 *   mode=tester|peer  tester (default) runs the checks; peer is a live
 *                     second domain for the "another domain" checks: it
 *                     waits for a message from the tester and returns 0.
 *   peer=<domid>      the peer (tester), or the tester (peer); required
 *   missing=<domid>   a domain id that does not exist (default 999)
 *   touch=unmapped|never|write|ro_read|ro_write   after the checks,
 *                     touch a window page that holds no mapping: read one
 *                     that was mapped and unmapped again (unmapped), read
 *                     (never) or write (write) one of the read-write half
 *                     that never was, or read (ro_read) or write
 *                     (ro_write) one of the read-only half that never was.
 *                     Each must stop the domain, so nothing is printed
 *                     after "gnterr: touching ...".
 */
#include <argo.h>
#include <gnttab.h>
#include <guest.h>

#define MAX_FRAMES      4u  /* the config's max_frames */
#define MAPTRACK        256 /* handles of max_maptrack_frames = 1 */
#define PIN_LIMIT       128 /* pins per counter */
#define PORT            1
#define RINGLEN         (4096u - 64u)
#define CALL_FAILED     (-1000) /* result = CALL_FAILED + errno of a failed call */

static unsigned nchecks, nfailed;
static uint16_t me, peer, missing;
static struct grant_entry_v1 *t;

static const char *st_name(long v)
{
    static const char *names[] = { "okay", "general_error", "bad_domain", "bad_gntref", "bad_handle",
                                   "bad_virt_addr", "bad_dev_addr", "no_device_space", "permission_denied",
                                   "bad_page", "bad_copy_arg", "address_too_big", "eagain", "no_space" };
    if (v <= 0 && v >= -13)
        return names[-v];
    return "?";
}

/* Formats a result: a status, a failed call, or (for calls that return a
 * value) a plain number. */
static void fmt_result(char *buf, size_t n, long v, int is_status)
{
    if (v <= CALL_FAILED)
        guest_snprintf(buf, n, "call -%ld %s", CALL_FAILED - v, guest_errno_name(v - CALL_FAILED));
    else if (is_status)
        guest_snprintf(buf, n, "%ld %s", v, st_name(v));
    else
        guest_snprintf(buf, n, "%ld %s", v, guest_errno_name(v));
}

static void report(const char *name, long got, long want, int is_status)
{
    char g[48], w[48];
    fmt_result(g, sizeof(g), got, is_status);
    fmt_result(w, sizeof(w), want, is_status);
    nchecks++;
    if (got != want)
        nfailed++;
    guest_printf("gnterr: %s: got %s, want %s: %s\n", name, g, w, got == want ? "ok" : "FAIL");
}

/* A check of a GNTST_* status, and one of a call's return value. */
#define ST(name, want, expr) report(name, (expr), (want), 1)
#define RC(name, want, expr) report(name, (expr), (want), 0)

/* ---- calls returning a status (or CALL_FAILED + errno) ------------------- */

static uint64_t rw(uint32_t i) { return GNTTAB_WINDOW_RW + (uint64_t)i * GUEST_PAGE_SIZE; }
static uint64_t ro(uint32_t i) { return GNTTAB_WINDOW_RO + (uint64_t)i * GUEST_PAGE_SIZE; }

static uint32_t last_handle;

static long map(uint64_t gpa, uint32_t flags, uint32_t ref, uint16_t dom)
{
    struct gnttab_map_grant_ref m = { .host_addr = gpa, .flags = flags, .ref = ref, .dom = dom, .status = 99 };
    long r = gnttab_map_grant_ref(&m, 1);
    if (r != 0)
        return CALL_FAILED + r;
    last_handle = m.handle;
    return m.status;
}

static long unmap(uint64_t gpa, uint32_t handle, uint64_t dev_bus_addr)
{
    struct gnttab_unmap_grant_ref u = { .host_addr = gpa, .dev_bus_addr = dev_bus_addr, .handle = handle, .status = 99 };
    long r = gnttab_unmap_grant_ref(&u, 1);
    return r != 0 ? CALL_FAILED + r : u.status;
}

static long copy(struct gnttab_copy c)
{
    c.status = 99;
    long r = gnttab_copy(&c, 1);
    return r != 0 ? CALL_FAILED + r : c.status;
}

static long swap(uint32_t a, uint32_t b)
{
    struct gnttab_swap_grant_ref s = { .ref_a = a, .ref_b = b, .status = 99 };
    long r = gnttab_swap_grant_ref(&s, 1);
    return r != 0 ? CALL_FAILED + r : s.status;
}

static long setup(uint16_t dom, uint32_t nr, uint64_t *list)
{
    struct gnttab_setup_table s = { .dom = dom, .nr_frames = nr, .status = 99, .frame_list = (uint64_t)(uintptr_t)list };
    long r = gnttab_setup_table(&s);
    return r != 0 ? CALL_FAILED + r : s.status;
}

static uint32_t qs_nr, qs_max;

static long query_size(uint16_t dom)
{
    struct gnttab_query_size q = { .dom = dom, .status = 99 };
    long r = gnttab_query_size(&q);
    qs_nr = q.nr_frames;
    qs_max = q.max_nr_frames;
    return r != 0 ? CALL_FAILED + r : q.status;
}

static long set_version(uint32_t v)
{
    struct gnttab_set_version s = { .version = v };
    return gnttab_set_version(&s);
}

static uint16_t flags_of(uint32_t ref)
{
    return __atomic_load_n(&t[ref].flags, __ATOMIC_ACQUIRE);
}

/* Writes a raw entry (domid and frame, then flags, as a granter must). */
static void entry(uint32_t ref, uint16_t flags, uint16_t domid, uint32_t frame)
{
    t[ref].domid = domid;
    t[ref].frame = frame;
    __atomic_store_n(&t[ref].flags, flags, __ATOMIC_RELEASE);
}

static uint64_t gmfn(const void *p) { return guest_virt_to_phys(p) >> 12; }

/* ---- the peer side and the link to it ---------------------------------------- */

static struct argo_ring *make_ring(uint16_t partner)
{
    struct argo_ring *r = guest_alloc_pages(1);
    uint64_t *gfn = guest_alloc_pages(1);
    if (!r || !gfn)
        return NULL;
    gfn[0] = gmfn(r);
    struct argo_register_ring reg = { .aport = PORT, .partner_id = partner, .len = RINGLEN };
    for (long tries = 0; tries < 200000; tries++) {
        long e = argo_register_ring(&reg, gfn, 1, 0);
        if (e == 0)
            return r;
        if (e != -ESRCH && e != -ECONNREFUSED)
            break;
        for (int i = 0; i < 2000; i++)
            guest_cpu_relax();
    }
    return NULL;
}

static void on_virq(void)
{
}

static int run_peer(void)
{
    struct argo_ring *r = make_ring(peer);
    uint8_t buf[64];
    if (!r) {
        guest_puts("gnterr: peer: ring registration failed");
        return 1;
    }
    guest_printf("gnterr: peer %u waiting for tester %u\n", me, peer);
    while (argo_ring_recv(r, RINGLEN, buf, sizeof(buf), NULL, NULL) < 0)
        guest_wait_for_interrupt();
    guest_puts("gnterr: peer released");
    return 0;
}

static void release_peer(void)
{
    static const char bye[] = "bye";
    for (long tries = 0; tries < 200000; tries++) {
        long r = argo_send(peer, PORT, PORT, bye, sizeof(bye), 0);
        if (r >= 0 || (r != -ECONNREFUSED && r != -EAGAIN))
            return;
        for (int i = 0; i < 2000; i++)
            guest_cpu_relax();
    }
}

/* ---- the checks ----------------------------------------------------------------- */

static void check_calls(void)
{
    static struct gnttab_map_grant_ref dummy;
    RC("count_4097", -EINVAL, gnttab_op(GNTTABOP_map_grant_ref, &dummy, 4097));
    RC("cmd_continuation_bits", -EINVAL, gnttab_op(GNTTABOP_map_grant_ref | 4096, &dummy, 1));
    RC("cmd_cache_flush", -ENOSYS, gnttab_op(GNTTABOP_cache_flush, &dummy, 1));
    RC("cmd_cache_flush_continuation", -ENOSYS, gnttab_op(GNTTABOP_cache_flush | 4096, &dummy, 1));
    RC("cmd_unknown_13", -ENOSYS, gnttab_op(13, &dummy, 1));
    RC("dump_table", -ENOSYS, gnttab_op(GNTTABOP_dump_table, &dummy, 1));
    RC("transfer_count_4097", -EINVAL, gnttab_op(GNTTABOP_transfer, &dummy, 4097)); /* gntxfer.c has the rest */
    RC("set_version_1", 0, set_version(1));
    RC("set_version_2", -ENOSYS, set_version(2));
    RC("set_version_3", -EINVAL, set_version(3));
    struct gnttab_get_version gv = { .dom = DOMID_SELF };
    long r = gnttab_get_version(&gv);
    RC("get_version", 1, r == 0 ? (long)gv.version : r);
    gv = (struct gnttab_get_version){ .dom = missing };
    RC("get_version_missing_domain", -ESRCH, gnttab_get_version(&gv));
    gv = (struct gnttab_get_version){ .dom = peer };
    RC("get_version_other_domain", -EPERM, gnttab_get_version(&gv));
    /* A pointer past the end of RAM (identity mapped, but no memory). */
    RC("map_uop_beyond_ram", -EFAULT, gnttab_op(GNTTABOP_map_grant_ref, (void *)0x80000000ul, 1));
}

static void check_table(void)
{
    static uint64_t frames[8];
    ST("setup_table_too_many_frames", GNTST_general_error, setup(DOMID_SELF, MAX_FRAMES + 1, frames));
    ST("setup_table_missing_domain", GNTST_bad_domain, setup(missing, 1, frames));
    ST("setup_table_other_domain", GNTST_permission_denied, setup(peer, 1, frames));
    struct gnttab_setup_table two[2] = { { .dom = DOMID_SELF, .nr_frames = 1, .frame_list = (uint64_t)(uintptr_t)frames } };
    RC("setup_table_count_2", -EINVAL, gnttab_op(GNTTABOP_setup_table, two, 2));
    ST("setup_table_bad_frame_list", GNTST_bad_virt_addr, setup(DOMID_SELF, 1, (uint64_t *)0x80000000ul));
    ST("query_size", GNTST_okay, query_size(DOMID_SELF));
    RC("query_size_nr_frames", 1, qs_nr);
    RC("query_size_max_frames", MAX_FRAMES, qs_max);
    ST("query_size_missing_domain", GNTST_bad_domain, query_size(missing));
    ST("query_size_other_domain", GNTST_permission_denied, query_size(peer));
}

/* Refs used below (all this domain's own): */
enum {
    R_SELF = 10,     /* granted to self, writable */
    R_INVALID = 11,  /* never granted */
    R_OTHER = 12,    /* granted to the peer */
    R_RO = 13,       /* granted to self, read-only */
    R_PWT = 14,      /* with a cache attribute */
    R_SUBPAGE = 15,  /* with GTF_sub_page */
    R_BADFRAME = 16, /* frame outside RAM */
    R_TRANSFER = 17, /* GTF_accept_transfer */
    R_SECOND = 18,   /* a second self grant */
    R_SWAP_A = 20,
    R_SWAP_B = 21,
    R_MOVE = 22,     /* overlap copy */
    R_MANY = 100,    /* R_MANY .. R_MANY+MAPTRACK: the no_space checks */
};

static uint8_t *pg, *pg2, *movepg, *own;

static void check_map(void)
{
    const uint32_t H = GNTMAP_host_map;
    ST("flags_none", GNTST_bad_gntref, map(rw(0), 0, R_SELF, DOMID_SELF));
    ST("flags_device_map", GNTST_general_error, map(rw(0), GNTMAP_device_map, R_SELF, DOMID_SELF));
    ST("flags_host_and_device_map", GNTST_general_error, map(rw(0), H | GNTMAP_device_map, R_SELF, DOMID_SELF));
    ST("flags_application_map", GNTST_general_error, map(rw(0), H | GNTMAP_application_map, R_SELF, DOMID_SELF));
    ST("flags_contains_pte", GNTST_general_error, map(rw(0), H | GNTMAP_contains_pte, R_SELF, DOMID_SELF));
    ST("map_missing_domain", GNTST_bad_domain, map(rw(0), H, R_SELF, missing));
    ST("map_ref_beyond_table", GNTST_bad_gntref, map(rw(0), H, GNTTAB_ENTRIES_PER_FRAME, DOMID_SELF));
    ST("map_ref_huge", GNTST_bad_gntref, map(rw(0), H, 0xFFFFFFFFu, DOMID_SELF));
    ST("map_invalid_entry", GNTST_general_error, map(rw(0), H, R_INVALID, DOMID_SELF));
    ST("map_entry_for_other_domain", GNTST_general_error, map(rw(0), H, R_OTHER, DOMID_SELF));
    ST("map_peer_ref_not_granted", GNTST_general_error, map(rw(0), H, R_SELF, peer));
    ST("map_ro_grant_writable", GNTST_general_error, map(rw(0), H, R_RO, DOMID_SELF));
    ST("map_cache_attribute", GNTST_general_error, map(rw(0), H, R_PWT, DOMID_SELF));
    RC("map_cache_attribute_flags_restored", GTF_permit_access | GTF_PWT, flags_of(R_PWT));
    ST("map_sub_page", GNTST_general_error, map(rw(0), H, R_SUBPAGE, DOMID_SELF));
    ST("map_frame_outside_ram", GNTST_bad_page, map(rw(0), H, R_BADFRAME, DOMID_SELF));
    RC("map_bad_page_flags_restored", GTF_permit_access, flags_of(R_BADFRAME));
    ST("map_accept_transfer", GNTST_general_error, map(rw(0), H, R_TRANSFER, DOMID_SELF));

    ST("host_addr_in_ram", GNTST_general_error, map(0x100000, H, R_SELF, DOMID_SELF));
    ST("host_addr_grant_table", GNTST_general_error, map(GNTTAB_TABLE_GPA, H, R_SELF, DOMID_SELF));
    ST("host_addr_unaligned", GNTST_general_error, map(rw(0) + 8, H, R_SELF, DOMID_SELF));
    ST("host_addr_ro_half_for_rw_map", GNTST_general_error, map(ro(0), H, R_SELF, DOMID_SELF));
    ST("host_addr_rw_half_for_ro_map", GNTST_general_error, map(rw(0), H | GNTMAP_readonly, R_SELF, DOMID_SELF));
    ST("host_addr_past_window", GNTST_general_error, map(GNTTAB_WINDOW_RO + GNTTAB_WINDOW_HALF, H | GNTMAP_readonly, R_SELF, DOMID_SELF));
    RC("failed_maps_left_no_pin", GTF_permit_access, flags_of(R_SELF));

    /* Successful maps, by DOMID_SELF and by the own id. */
    ST("map_self_grant", GNTST_okay, map(rw(0), H, R_SELF, DOMID_SELF));
    uint32_t h = last_handle;
    volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)rw(0);
    RC("self_map_shows_page", 1, *w == *(volatile uint64_t *)pg);
    ST("map_ro_grant_read_only", GNTST_okay, map(ro(0), H | GNTMAP_readonly, R_RO, me));
    uint32_t h_ro = last_handle;
    ST("host_addr_taken", GNTST_general_error, map(rw(0), H, R_SECOND, DOMID_SELF));
    RC("host_addr_taken_left_no_pin", GTF_permit_access, flags_of(R_SECOND));

    /* Unmap errors, then the real unmaps. */
    ST("unmap_bad_handle", GNTST_bad_handle, unmap(rw(0), 0xFFFF, 0));
    ST("unmap_handle_beyond_maptrack", GNTST_bad_handle, unmap(rw(0), 0xFFFFFFFFu, 0));
    ST("unmap_free_handle", GNTST_bad_handle, unmap(rw(0), h + 100, 0));
    ST("unmap_wrong_host_addr", GNTST_general_error, unmap(rw(1), h, 0));
    ST("unmap_dev_bus_addr", GNTST_bad_dev_addr, unmap(rw(0), h, 0x1000));
    RC("mapping_survives_failed_unmaps", 1, *w == *(volatile uint64_t *)pg);
    ST("unmap", GNTST_okay, unmap(rw(0), h, 0));
    ST("unmap_twice", GNTST_bad_handle, unmap(rw(0), h, 0));
    ST("unmap_host_addr_0", GNTST_okay, unmap(0, h_ro, 0));
    RC("unmapped_flags_clear", GTF_permit_access, flags_of(R_SELF));
    RC("unmapped_ro_flags_clear", GTF_permit_access | GTF_readonly, flags_of(R_RO));

    /* The same handle twice in one call. */
    ST("map_again", GNTST_okay, map(rw(0), H, R_SELF, DOMID_SELF));
    struct gnttab_unmap_grant_ref two[2] = { { .host_addr = rw(0), .handle = last_handle, .status = 99 },
                                             { .host_addr = rw(0), .handle = last_handle, .status = 99 } };
    long r = gnttab_unmap_grant_ref(two, 2);
    ST("unmap_same_handle_twice_first", GNTST_okay, r ? CALL_FAILED + r : two[0].status);
    ST("unmap_same_handle_twice_second", GNTST_bad_handle, r ? CALL_FAILED + r : two[1].status);

    /* unmap_and_replace: only new_addr 0. */
    ST("map_for_replace", GNTST_okay, map(rw(0), H, R_SELF, DOMID_SELF));
    struct gnttab_unmap_and_replace ur = { .host_addr = rw(0), .new_addr = rw(5), .handle = last_handle, .status = 99 };
    r = gnttab_unmap_and_replace(&ur, 1);
    ST("unmap_and_replace_new_addr", GNTST_general_error, r ? CALL_FAILED + r : ur.status);
    ur.new_addr = 0;
    ur.status = 99;
    r = gnttab_unmap_and_replace(&ur, 1);
    ST("unmap_and_replace", GNTST_okay, r ? CALL_FAILED + r : ur.status);
}

static void check_limits(void)
{
    const uint32_t H = GNTMAP_host_map;
    static struct gnttab_map_grant_ref m[MAPTRACK + 1];
    static struct gnttab_unmap_grant_ref u[MAPTRACK + 1];

    /* Pin limit: 128 writable pins of one entry, the 129th refused. */
    for (uint32_t i = 0; i <= PIN_LIMIT; i++)
        m[i] = (struct gnttab_map_grant_ref){ .host_addr = rw(i), .flags = H, .ref = R_SELF, .dom = DOMID_SELF, .status = 99 };
    long r = gnttab_map_grant_ref(m, PIN_LIMIT + 1);
    uint32_t ok = 0;
    for (uint32_t i = 0; i < PIN_LIMIT; i++)
        ok += m[i].status == GNTST_okay;
    RC("pin_limit_first_128_ok", PIN_LIMIT, r ? CALL_FAILED + r : (long)ok);
    ST("pin_limit_129th", GNTST_general_error, m[PIN_LIMIT].status);
    for (uint32_t i = 0; i < PIN_LIMIT; i++)
        u[i] = (struct gnttab_unmap_grant_ref){ .host_addr = m[i].host_addr, .handle = m[i].handle, .status = 99 };
    r = gnttab_unmap_grant_ref(u, PIN_LIMIT);
    ok = 0;
    for (uint32_t i = 0; i < PIN_LIMIT; i++)
        ok += u[i].status == GNTST_okay;
    RC("pin_limit_unmap_all", PIN_LIMIT, r ? CALL_FAILED + r : (long)ok);
    RC("pin_limit_flags_clear", GTF_permit_access, flags_of(R_SELF));

    /* Maptrack: 256 handles with max_maptrack_frames = 1; the 257th map
     * is no_space. */
    for (uint32_t i = 0; i <= MAPTRACK; i++) {
        entry(R_MANY + i, GTF_permit_access, me, (uint32_t)gmfn(pg));
        m[i] = (struct gnttab_map_grant_ref){ .host_addr = rw(i), .flags = H, .ref = R_MANY + i, .dom = DOMID_SELF, .status = 99 };
    }
    r = gnttab_map_grant_ref(m, MAPTRACK + 1);
    ok = 0;
    for (uint32_t i = 0; i < MAPTRACK; i++)
        ok += m[i].status == GNTST_okay;
    RC("maptrack_256_maps_ok", MAPTRACK, r ? CALL_FAILED + r : (long)ok);
    ST("maptrack_full", GNTST_no_space, m[MAPTRACK].status);
    RC("maptrack_full_left_no_pin", GTF_permit_access, flags_of(R_MANY + MAPTRACK));
    for (uint32_t i = 0; i < MAPTRACK; i++)
        u[i] = (struct gnttab_unmap_grant_ref){ .host_addr = m[i].host_addr, .handle = m[i].handle, .status = 99 };
    r = gnttab_unmap_grant_ref(u, MAPTRACK);
    ok = 0;
    for (uint32_t i = 0; i < MAPTRACK; i++)
        ok += u[i].status == GNTST_okay;
    RC("maptrack_unmap_all", MAPTRACK, r ? CALL_FAILED + r : (long)ok);
    ST("maptrack_usable_again", GNTST_okay, map(rw(0), H, R_MANY + MAPTRACK, DOMID_SELF));
    ST("maptrack_usable_again_unmap", GNTST_okay, unmap(rw(0), last_handle, 0));
}

static void check_swap_and_growth(void)
{
    entry(R_SWAP_A, GTF_permit_access, me, (uint32_t)gmfn(pg));
    entry(R_SWAP_B, GTF_permit_access | GTF_readonly, me, (uint32_t)gmfn(pg2));
    ST("map_for_swap", GNTST_okay, map(rw(0), GNTMAP_host_map, R_SELF, DOMID_SELF));
    uint32_t h = last_handle;
    ST("swap_pinned", GNTST_eagain, swap(R_SELF, R_SWAP_A));
    ST("swap_pinned_second", GNTST_eagain, swap(R_SWAP_A, R_SELF));
    ST("swap_unmap", GNTST_okay, unmap(rw(0), h, 0));
    ST("swap", GNTST_okay, swap(R_SWAP_A, R_SWAP_B));
    RC("swap_moved_entries", 1, t[R_SWAP_A].frame == gmfn(pg2) && t[R_SWAP_A].flags == (GTF_permit_access | GTF_readonly) &&
                                    t[R_SWAP_B].frame == gmfn(pg) && t[R_SWAP_B].flags == GTF_permit_access);
    ST("swap_same_ref", GNTST_okay, swap(R_SWAP_A, R_SWAP_A));
    ST("swap_ref_beyond_table", GNTST_bad_gntref, swap(R_SWAP_A, GNTTAB_ENTRIES_PER_FRAME));

    /* Growing the table makes the next frame's refs usable. */
    static uint64_t frames[MAX_FRAMES];
    ST("setup_table_grow_to_2", GNTST_okay, setup(DOMID_SELF, 2, frames));
    RC("setup_table_grow_frames", 1, frames[0] == GNTTAB_TABLE_GPA >> 12 && frames[1] == (GNTTAB_TABLE_GPA >> 12) + 1);
    ST("query_size_after_grow", GNTST_okay, query_size(DOMID_SELF));
    RC("query_size_after_grow_nr", 2, qs_nr);
    ST("map_ref_in_new_frame_invalid", GNTST_general_error, map(rw(0), GNTMAP_host_map, GNTTAB_ENTRIES_PER_FRAME, DOMID_SELF));
    entry(GNTTAB_ENTRIES_PER_FRAME, GTF_permit_access, me, (uint32_t)gmfn(pg));
    ST("map_ref_in_new_frame", GNTST_okay, map(rw(0), GNTMAP_host_map, GNTTAB_ENTRIES_PER_FRAME, DOMID_SELF));
    ST("map_ref_in_new_frame_unmap", GNTST_okay, unmap(rw(0), last_handle, 0));
    ST("setup_table_never_shrinks", GNTST_okay, setup(DOMID_SELF, 1, frames));
    query_size(DOMID_SELF);
    RC("query_size_after_shrink_attempt", 2, qs_nr);
}

static void check_copy(void)
{
    const uint16_t SG = GNTCOPY_source_gref, DG = GNTCOPY_dest_gref;
    struct gnttab_copy base = {
        .source = { .u.ref = R_SELF, .domid = DOMID_SELF },
        .dest = { .u.gmfn = gmfn(own), .domid = DOMID_SELF },
        .len = 64,
        .flags = SG,
    };
    struct gnttab_copy c = base;
    ST("copy", GNTST_okay, copy(c));
    RC("copy_arrived", 0, memcmp(own, pg, 64));
    c = base;
    c.source.domid = missing;
    ST("copy_missing_domain", GNTST_bad_domain, copy(c));
    c = base;
    c.flags = 0;
    c.source.u.gmfn = gmfn(pg);
    c.source.domid = peer;
    ST("copy_src_gmfn_other_domain", GNTST_permission_denied, copy(c));
    c = base;
    c.dest.domid = peer;
    ST("copy_dst_gmfn_other_domain", GNTST_permission_denied, copy(c));
    c = base;
    c.dest.domid = missing;
    ST("copy_dst_gmfn_missing_domain", GNTST_permission_denied, copy(c));
    c = base;
    c.source.u.ref = GNTTAB_ENTRIES_PER_FRAME * MAX_FRAMES;
    ST("copy_ref_beyond_table", GNTST_bad_gntref, copy(c));
    c = base;
    c.source.u.ref = R_OTHER;
    ST("copy_entry_for_other_domain", GNTST_general_error, copy(c));
    c = base;
    c.flags = 0;
    c.source.u.gmfn = 0xFFFFF;
    ST("copy_gmfn_outside_ram", GNTST_bad_page, copy(c));
    c = base;
    c.source.u.ref = R_BADFRAME;
    ST("copy_grant_frame_outside_ram", GNTST_bad_page, copy(c));
    c = base;
    c.flags = DG;
    c.source.u.gmfn = gmfn(own);
    c.dest.u.ref = R_RO;
    ST("copy_into_ro_grant", GNTST_general_error, copy(c));
    RC("copy_into_ro_grant_flags_clear", GTF_permit_access | GTF_readonly, flags_of(R_RO));
    c = base;
    c.source.offset = 4000;
    c.len = 200;
    ST("copy_src_past_page", GNTST_bad_copy_arg, copy(c));
    c = base;
    c.dest.offset = 4095;
    c.len = 2;
    ST("copy_dst_past_page", GNTST_bad_copy_arg, copy(c));
    c = base;
    c.len = 4097;
    ST("copy_len_4097", GNTST_bad_copy_arg, copy(c));
    RC("copy_bounds_flags_clear", GTF_permit_access, flags_of(R_SELF));
    c = base;
    c.len = 0;
    ST("copy_len_0", GNTST_okay, copy(c));
    c = base;
    c.source.u.ref = R_SUBPAGE;
    ST("copy_sub_page_entry", GNTST_okay, copy(c));
    c = base;
    c.source.u.ref = R_PWT;
    ST("copy_cache_attribute_entry", GNTST_okay, copy(c));

    /* An overlapping copy within one granted page is a memmove. */
    for (uint32_t i = 0; i < 256; i++)
        movepg[i] = (uint8_t)i;
    c = (struct gnttab_copy){
        .source = { .u.ref = R_MOVE, .domid = DOMID_SELF, .offset = 0 },
        .dest = { .u.ref = R_MOVE, .domid = me, .offset = 16 },
        .len = 200,
        .flags = SG | DG,
    };
    ST("copy_overlap", GNTST_okay, copy(c));
    uint32_t wrong = 0;
    for (uint32_t i = 0; i < 256; i++)
        wrong += movepg[i] != (i < 16 ? i : i < 216 ? i - 16 : i);
    RC("copy_overlap_is_memmove", 0, wrong);

    /* Errors do not stop a batch. */
    struct gnttab_copy batch[3] = { base, base, base };
    batch[1].source.u.ref = R_INVALID;
    long r = gnttab_copy(batch, 3);
    RC("copy_batch_call", 0, r);
    ST("copy_batch_first", GNTST_okay, batch[0].status);
    ST("copy_batch_bad_middle", GNTST_general_error, batch[1].status);
    ST("copy_batch_third", GNTST_okay, batch[2].status);
}

static void check_revoked(void)
{
    uint32_t handles[4];
    struct gnttab_query_revoked q = { .nr = 4, .handles = (uint64_t)(uintptr_t)handles };
    long r = gnttab_query_revoked(&q);
    RC("query_revoked_none", 0, r == 0 ? (long)q.nr : CALL_FAILED + r);
    q = (struct gnttab_query_revoked){ .nr = 4, .pad = 1, .handles = (uint64_t)(uintptr_t)handles };
    RC("query_revoked_pad", -EINVAL, gnttab_query_revoked(&q));
    struct gnttab_query_revoked q2[2] = { { .nr = 4, .handles = (uint64_t)(uintptr_t)handles } };
    RC("query_revoked_count_2", -EINVAL, gnttab_op(GNTTABOP_query_revoked, q2, 2));
}

static void touch(const char *how)
{
    int unmapped = guest_strcmp(how, "unmapped") == 0;
    int in_ro = guest_strncmp(how, "ro_", 3) == 0;
    int write = guest_strcmp(how, "write") == 0 || guest_strcmp(how, "ro_write") == 0;
    /* The checks used slots 0..256 of the read-write half and 0 of the
     * read-only half. */
    uint64_t gpa = unmapped ? rw(77) : in_ro ? ro(4000) : rw(4000);
    if (unmapped) {
        long st = map(gpa, GNTMAP_host_map, R_SELF, DOMID_SELF);
        long st2 = unmap(gpa, last_handle, 0);
        guest_printf("gnterr: mapped and unmapped %#lx: %ld %ld\n", (unsigned long)gpa, st, st2);
    }
    guest_printf("gnterr: touching (%s) window page %#lx\n", how, (unsigned long)gpa);
    volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)gpa;
    if (write) {
        *p = 0x1234;
        guest_printf("gnterr: wrote to it: the domain should have stopped\n");
    } else {
        uint64_t v = *p;
        guest_printf("gnterr: read %#lx from it: the domain should have stopped\n", (unsigned long)v);
    }
}

int guest_main(void)
{
    const char *mode = guest_param("mode");
    me = guest_domid();
    peer = (uint16_t)guest_param_u64("peer", 0);
    missing = (uint16_t)guest_param_u64("missing", 999);
    if (peer == 0 || peer == me) {
        guest_puts("gnterr: param peer must name another domain");
        return 1;
    }
    guest_set_virq_handler(on_virq);
    if (mode && guest_strcmp(mode, "peer") == 0)
        return run_peer();

    long err;
    t = gnttab_init(1, &err);
    pg = guest_alloc_pages(1);
    pg2 = guest_alloc_pages(1);
    movepg = guest_alloc_pages(1);
    own = guest_alloc_pages(1);
    if (!t || !pg || !pg2 || !movepg || !own) {
        guest_printf("gnterr: setup failed (%ld)\n", err);
        return 1;
    }
    for (uint32_t i = 0; i < GUEST_PAGE_SIZE; i++) {
        pg[i] = (uint8_t)(i * 7 + 1);
        pg2[i] = (uint8_t)(i * 13 + 5);
    }
    gnttab_grant_access(t, R_SELF, me, pg, 0);
    gnttab_grant_access(t, R_OTHER, peer, pg, 0);
    gnttab_grant_access(t, R_RO, me, pg, 1);
    entry(R_PWT, GTF_permit_access | GTF_PWT, me, (uint32_t)gmfn(pg));
    entry(R_SUBPAGE, GTF_permit_access | GTF_sub_page, me, (uint32_t)gmfn(pg));
    entry(R_BADFRAME, GTF_permit_access, me, 0xFFFFF);
    entry(R_TRANSFER, GTF_accept_transfer, me, (uint32_t)gmfn(pg));
    gnttab_grant_access(t, R_SECOND, me, pg2, 0);
    gnttab_grant_access(t, R_MOVE, me, movepg, 0);

    check_calls();
    check_table();
    check_map();
    check_limits();
    check_swap_and_growth();
    check_copy();
    check_revoked();

    release_peer();
    const char *how = guest_param("touch");
    if (nfailed == 0) {
        guest_printf("gnterr: all %u checks ok\n", nchecks);
        if (how)
            touch(how);
        return 0;
    }
    guest_printf("gnterr: %u of %u checks FAILED\n", nfailed, nchecks);
    return 1;
}
