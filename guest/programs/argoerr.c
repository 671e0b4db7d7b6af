/*
 * argoerr: Argo's error paths, one line per check:
 *
 *     argoerr: <check>: got <result> (<name>), want <result> (<name>): ok|FAIL
 *
 * and finally "argoerr: all <n> checks ok" (return 0) or
 * "argoerr: <k> of <n> checks FAILED" (return 1).
 *
 * Params (domain ids as numbers):
 *   mode=tester|peer|disabled
 *                    tester (default) runs the checks below.
 *                    peer is for the `other` and `denied` domains: it
 *                    registers a ring for the tester on port 1, then sends
 *                    the tester a heartbeat on port 9 every few ms until
 *                    that is refused (the tester has exited) and returns 0;
 *                    param tester=<domid> names the tester.
 *                    disabled is for a domain whose Argo is off: every op
 *                    must return -EOPNOTSUPP.
 *   other=<domid>    an Argo domain (running mode=peer) the tester may send
 *                    to; used as the spoofed source and as a ring partner
 *                    (required)
 *   denied=<domid>   a domain (running mode=peer) missing from the tester's
 *                    send_to (checks skipped if absent)
 *   disabled=<domid> an existing domain with Argo disabled, present in the
 *                    tester's send_to (checks skipped if absent)
 *   missing=<domid>  a domain id that does not exist (default 999)
 *   self=0           skip the checks that send to the tester's own ring
 *                    (they need the tester in its own send_to list, or no
 *                    send_to at all)
 *   expect_<check>=<n>|skip   override a check's expected result (a
 *                    negative errno or a non-negative value) or skip it
 *
 * The tester must not have wildcard permission (the wildcard check expects
 * -EPERM). It waits for a heartbeat from `other` and `denied` before the
 * checks, so that both are up with their rings registered, and they stay
 * up until it exits (a domain that has exited has no Argo state, which
 * changes some results).
 */
#include <argo.h>
#include <guest.h>

static unsigned nchecks, nfailed;

/* Is the check to be run, and with what expectation? */
static int expectation(const char *name, long *want)
{
    char key[64];
    guest_snprintf(key, sizeof(key), "expect_%s", name);
    const char *v = guest_param(key);
    if (!v)
        return 1;
    if (guest_strcmp(v, "skip") == 0)
        return 0;
    *want = guest_strtol(v, NULL);
    return 1;
}

static void report(const char *name, long got, long want)
{
    int ok = got == want;
    nchecks++;
    if (!ok)
        nfailed++;
    guest_printf("argoerr: %s: got %ld (%s), want %ld (%s): %s\n", name, got, guest_errno_name(got), want,
                 guest_errno_name(want), ok ? "ok" : "FAIL");
}

#define CHECK(name, want_, expr)                  \
    do {                                          \
        long want__ = (want_);                    \
        if (expectation(name, &want__))           \
            report(name, (expr), want__);         \
    } while (0)

static long sendv_to(uint16_t src_dom, uint16_t dst_dom, uint32_t port, const void *buf, uint32_t len)
{
    struct argo_send_addr a = {
        .src = { .aport = 1, .domain_id = src_dom },
        .dst = { .aport = port, .domain_id = dst_dom },
    };
    struct argo_iov iov = { .iov_hnd = (uint64_t)(uintptr_t)buf, .iov_len = len };
    return argo_sendv(&a, &iov, 1, 0x45525221u);
}

static long send_with_addr(uint64_t addr_ptr, const void *buf)
{
    struct argo_iov iov = { .iov_hnd = (uint64_t)(uintptr_t)buf, .iov_len = 8 };
    return guest_hypercall(ARGO_HYPERCALL, ARGO_OP_SENDV, addr_ptr, (unsigned long)&iov, 1, 0);
}

static long register_raw(uint32_t port, uint16_t partner, uint16_t pad, uint32_t len,
                         const uint64_t *gfns, uint32_t npages, uint32_t flags)
{
    struct argo_register_ring reg = { .aport = port, .partner_id = partner, .pad = pad, .len = len };
    return argo_register_ring(&reg, gfns, npages, flags);
}

static long unregister(uint32_t port, uint16_t partner)
{
    struct argo_unregister_ring u = { .aport = port, .partner_id = partner };
    return argo_unregister_ring(&u);
}

static int disabled_mode(void)
{
    static uint64_t gfns[1];
    uint8_t *page = guest_alloc_pages(1);
    char msg[8] = "nope";

    gfns[0] = guest_virt_to_phys(page) >> 12;
    CHECK("disabled_register", -EOPNOTSUPP, register_raw(1, 1, 0, 4032, gfns, 1, 0));
    CHECK("disabled_unregister", -EOPNOTSUPP, unregister(1, 1));
    CHECK("disabled_sendv", -EOPNOTSUPP, sendv_to(ARGO_DOMID_ANY, 1, 1, msg, sizeof(msg)));
    CHECK("disabled_notify", -EOPNOTSUPP, argo_notify(NULL));
    return 0;
}

static void spin(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        guest_cpu_relax();
}

static void on_virq(void)
{
}

#define HEARTBEAT_PORT 9

/* mode=peer: keep a ring for the tester and stay alive while it runs. */
static int peer_mode(void)
{
    uint16_t tester = (uint16_t)guest_param_u64("tester", 0);
    long retries = (long)guest_param_u64("retries", 100000);
    int connected = 0;
    long err;
    uint8_t buf[64];
    uint32_t len = 4096 - 64;
    struct argo_ring *ring = argo_ring_create(1, tester, len, &err);

    if (!tester || !ring) {
        guest_printf("argoerr: peer needs param tester; ring registration: %ld\n", err);
        return 1;
    }
    for (;;) {
        long r = argo_send(tester, HEARTBEAT_PORT, 1, "hb", 2, 0x4842u);
        if (r >= 0 || r == -EAGAIN) {
            connected = 1;
        } else if (r == -ECONNREFUSED) {
            if (connected) {
                guest_puts("argoerr: peer: tester gone");
                return 0;
            }
            if (retries-- <= 0) {
                guest_puts("argoerr: peer: tester never registered its heartbeat ring");
                return 1;
            }
        } else {
            guest_printf("argoerr: peer: heartbeat failed: %ld\n", r);
            return 1;
        }
        while (argo_ring_recv(ring, len, buf, sizeof(buf), NULL, NULL) >= 0)
            ;
        spin(connected ? 50000 : 2000);
    }
}

/* The tester's heartbeat ring for one peer; waits for its first beat. */
static struct argo_ring *heartbeat_ring(uint16_t peer)
{
    long err;
    struct argo_ring *ring = argo_ring_create(HEARTBEAT_PORT, peer, 4096 - 64, &err);
    if (!ring)
        guest_printf("argoerr: heartbeat ring for domain %u: %ld\n", peer, err);
    return ring;
}

static int wait_heartbeat(struct argo_ring *ring, uint16_t peer)
{
    uint8_t buf[16];
    struct argo_addr src;
    for (;;) {
        long r = argo_ring_recv(ring, 4096 - 64, buf, sizeof(buf), &src, NULL);
        if (r == 2 && src.domain_id == peer)
            return 0;
        if (r == -EAGAIN) {
            guest_wait_for_interrupt();
            continue;
        }
        guest_printf("argoerr: heartbeat from domain %u: %ld\n", src.domain_id, r);
        return 1;
    }
}

/* The checks that use a ring of the tester's own, partnered with itself. */
static void self_checks(uint16_t me, uint64_t ram, unsigned existing)
{
    uint32_t len = 4096 - 64;
    uint8_t *page = guest_alloc_pages(1);
    uint64_t *gfns = guest_alloc_pages(1);
    uint8_t *big = guest_alloc_pages(2);
    char msg[32] = "hello myself";
    uint8_t back[64];

    gfns[0] = guest_virt_to_phys(page) >> 12;
    CHECK("register_self", 0, register_raw(7, me, 0, len, gfns, 1, 0));
    CHECK("reregister_fail_exist", -EEXIST, register_raw(7, me, 0, len, gfns, 1, ARGO_REGISTER_FLAG_FAIL_EXIST));
    CHECK("reregister_other_len", -EEXIST, register_raw(7, me, 0, len - 16, gfns, 1, 0));
    CHECK("reregister_same", 0, register_raw(7, me, 0, len, gfns, 1, 0));
    CHECK("send_self", (long)sizeof(msg), sendv_to(ARGO_DOMID_ANY, me, 7, msg, sizeof(msg)));

    struct argo_addr src = { 0 };
    uint32_t type = 0;
    long r = argo_ring_recv((struct argo_ring *)page, len, back, sizeof(back), &src, &type);
    CHECK("recv_self_len", (long)sizeof(msg), r);
    CHECK("recv_self_source", me, (long)src.domain_id);
    CHECK("recv_self_content", 0, (long)guest_memcmp(back, msg, sizeof(msg)));
    CHECK("recv_empty", -EAGAIN, argo_ring_recv((struct argo_ring *)page, len, back, sizeof(back), NULL, NULL));

    /* payload + header must be smaller than the ring */
    CHECK("send_too_big", -EMSGSIZE, sendv_to(ARGO_DOMID_ANY, me, 7, big, len - 16));
    CHECK("send_max_payload", (long)argo_max_payload(len), sendv_to(ARGO_DOMID_ANY, me, 7, big, argo_max_payload(len)));
    CHECK("send_ring_full", -EAGAIN, sendv_to(ARGO_DOMID_ANY, me, 7, msg, sizeof(msg)));
    CHECK("notify_self", 0, argo_notify(NULL));

    /* Data from bad pointers: nothing may appear in the ring. */
    CHECK("unregister_self", 0, unregister(7, me));
    guest_memset(page, 0, ARGO_PAGE_SIZE);
    CHECK("register_self_again", 0, register_raw(8, me, 0, len, gfns, 1, 0));
    uint32_t tx_before = __atomic_load_n(&((struct argo_ring *)page)->tx_ptr, __ATOMIC_ACQUIRE);
    CHECK("send_data_noncanonical", -EFAULT, sendv_to(ARGO_DOMID_ANY, me, 8, (void *)0xdead000000000000UL, 16));
    CHECK("send_data_beyond_ram", -EFAULT, sendv_to(ARGO_DOMID_ANY, me, 8, (void *)(uintptr_t)(ram - 8), 16));
    CHECK("tx_unchanged_after_efault", (long)tx_before,
          (long)__atomic_load_n(&((struct argo_ring *)page)->tx_ptr, __ATOMIC_ACQUIRE));
    {
        struct argo_send_addr a = { .src = { .aport = 1, .domain_id = ARGO_DOMID_ANY },
                                    .dst = { .aport = 8, .domain_id = me } };
        struct argo_iov iov = { .iov_hnd = (uint64_t)(uintptr_t)msg, .iov_len = 4, .pad = 1 };
        CHECK("send_iov_pad", -EINVAL, argo_sendv(&a, &iov, 1, 0));
        struct argo_iov iovs[2] = { { .iov_hnd = (uint64_t)(uintptr_t)big, .iov_len = 0x800000 },
                                    { .iov_hnd = (uint64_t)(uintptr_t)big, .iov_len = 0x800000 } };
        CHECK("send_total_too_big", -EMSGSIZE, argo_sendv(&a, iovs, 2, 0));
        iovs[0].iov_len = 0x1000000;
        CHECK("send_iov_too_big", -EINVAL, argo_sendv(&a, iovs, 1, 0));
        a.src.pad = 1;
        CHECK("send_addr_pad", -EINVAL, argo_sendv(&a, &iov, 1, 0));
        a.src.pad = 0;
        a.src.domain_id = me;
        iov.pad = 0;
        CHECK("send_src_is_me", 4, argo_sendv(&a, &iov, 1, 0));
        CHECK("send_zero_iovs", 0, argo_sendv(&a, NULL, 0, 0));
    }
    CHECK("unregister_self_again", 0, unregister(8, me));
    CHECK("unregister_twice", -ENOENT, unregister(8, me));

    /* At most ARGO_MAX_RINGS rings per domain (`existing` are registered). */
    uint8_t *pages = guest_alloc_pages(ARGO_MAX_RINGS + 1);
    uint64_t *many = guest_alloc_pages(1);
    if (pages && many) {
        long first_err = 0;
        unsigned n = 0;
        for (; n < ARGO_MAX_RINGS - existing; n++) {
            many[n] = guest_virt_to_phys(pages + (uint64_t)n * ARGO_PAGE_SIZE) >> 12;
            long rr = register_raw(1000 + n, me, 0, 48, &many[n], 1, 0);
            if (rr != 0) {
                first_err = rr;
                break;
            }
        }
        CHECK("register_max_rings", 0, first_err);
        many[n] = guest_virt_to_phys(pages + (uint64_t)n * ARGO_PAGE_SIZE) >> 12;
        CHECK("register_too_many", -ENOSPC, register_raw(5000, me, 0, 48, &many[n], 1, 0));
        long bad = 0;
        for (unsigned i = 0; i < n; i++) {
            long rr = unregister(1000 + i, me);
            if (rr != 0 && bad == 0)
                bad = rr;
        }
        CHECK("unregister_all", 0, bad);
    }
}

int guest_main(void)
{
    const char *mode = guest_param("mode");
    guest_set_virq_handler(on_virq);
    if (mode && guest_strcmp(mode, "peer") == 0)
        return peer_mode();
    if (mode && guest_strcmp(mode, "disabled") == 0) {
        disabled_mode();
    } else {
        uint16_t me = guest_domid();
        uint16_t other = (uint16_t)guest_param_u64("other", 0);
        uint16_t denied = (uint16_t)guest_param_u64("denied", 0);
        uint16_t disabled = (uint16_t)guest_param_u64("disabled", 0);
        uint16_t missing = (uint16_t)guest_param_u64("missing", 999);
        uint64_t ram = guest_ram_size();
        uint8_t *page = guest_alloc_pages(1);
        uint64_t *gfns = guest_alloc_pages(1);
        char msg[16] = "argoerr";

        if (other == 0 || !page || !gfns) {
            guest_puts("argoerr: param other is required");
            return 1;
        }
        gfns[0] = guest_virt_to_phys(page) >> 12;

        struct argo_ring *hb_other = heartbeat_ring(other);
        struct argo_ring *hb_denied = denied ? heartbeat_ring(denied) : NULL;
        if (!hb_other || (denied && !hb_denied))
            return 1;
        if (wait_heartbeat(hb_other, other) || (denied && wait_heartbeat(hb_denied, denied)))
            return 1;
        guest_puts("argoerr: peers are up");

        /* sendv */
        CHECK("send_allowed", (long)sizeof(msg), sendv_to(ARGO_DOMID_ANY, other, 1, msg, sizeof(msg)));
        CHECK("spoof", -EPERM, sendv_to(other, other, 1, msg, sizeof(msg)));
        if (denied)
            CHECK("send_not_allowed", -EACCES, sendv_to(ARGO_DOMID_ANY, denied, 1, msg, sizeof(msg)));
        CHECK("send_no_such_domain", -ESRCH, sendv_to(ARGO_DOMID_ANY, missing, 1, msg, sizeof(msg)));
        if (disabled)
            CHECK("send_argo_disabled", -ECONNREFUSED, sendv_to(ARGO_DOMID_ANY, disabled, 1, msg, sizeof(msg)));
        CHECK("send_no_ring", -ECONNREFUSED, sendv_to(ARGO_DOMID_ANY, other, 4242, msg, sizeof(msg)));
        CHECK("send_addr_noncanonical", -EFAULT, send_with_addr(0xdead000000000000UL, msg));
        CHECK("send_addr_unmapped", -EFAULT, send_with_addr(0x400000000UL, msg));
        CHECK("send_addr_dead0000000", -EFAULT, send_with_addr(0xdead0000000UL, msg));
        CHECK("send_addr_beyond_ram", -EFAULT, send_with_addr(ram + 0x1000, msg));
        CHECK("send_addr_null", -EFAULT, send_with_addr(0, msg));
        {
            struct argo_send_addr a = { .src = { .aport = 1, .domain_id = ARGO_DOMID_ANY },
                                        .dst = { .aport = 1, .domain_id = other } };
            struct argo_iov iovs[9];
            for (int i = 0; i < 9; i++)
                iovs[i] = (struct argo_iov){ .iov_hnd = (uint64_t)(uintptr_t)msg, .iov_len = 1 };
            CHECK("send_niov_9", -EINVAL, argo_sendv(&a, iovs, 9, 0));
            CHECK("send_iovs_unmapped", -EFAULT, argo_sendv(&a, (struct argo_iov *)0x400000000UL, 1, 0));
            CHECK("send_niov_over_32_bits", -EINVAL,
                  guest_hypercall(ARGO_HYPERCALL, ARGO_OP_SENDV, (unsigned long)&a, (unsigned long)iovs,
                                  1UL << 32, 0));
            CHECK("send_type_over_32_bits", -EINVAL,
                  guest_hypercall(ARGO_HYPERCALL, ARGO_OP_SENDV, (unsigned long)&a, (unsigned long)iovs, 1,
                                  1UL << 32));
        }

        /* register / unregister */
        CHECK("register_wildcard_no_permission", -EPERM, register_raw(1, ARGO_DOMID_ANY, 0, 4032, gfns, 1, 0));
        CHECK("register_len_40", -EINVAL, register_raw(1, other, 0, 40, gfns, 1, 0));
        CHECK("register_len_unaligned", -EINVAL, register_raw(1, other, 0, 4040, gfns, 1, 0));
        CHECK("register_len_too_big", -EINVAL, register_raw(1, other, 0, ARGO_MAX_RING_SIZE + 16, gfns, 1, 0));
        CHECK("register_npages_mismatch", -EINVAL, register_raw(1, other, 0, 4032, gfns, 2, 0));
        CHECK("register_bad_flags", -EINVAL, register_raw(1, other, 0, 4032, gfns, 1, 2));
        CHECK("register_pad", -EINVAL, register_raw(1, other, 1, 4032, gfns, 1, 0));
        CHECK("register_partner_missing", -ESRCH, register_raw(1, missing, 0, 4032, gfns, 1, 0));
        if (disabled)
            CHECK("register_partner_disabled", -ECONNREFUSED, register_raw(1, disabled, 0, 4032, gfns, 1, 0));
        {
            uint64_t bad_gfn = (ram >> 12) + 5;
            CHECK("register_gfn_outside_ram", -EFAULT, register_raw(1, other, 0, 4032, &bad_gfn, 1, 0));
            bad_gfn = ~0UL;
            CHECK("register_gfn_huge", -EFAULT, register_raw(1, other, 0, 4032, &bad_gfn, 1, 0));
        }
        CHECK("register_gfns_unmapped", -EFAULT, register_raw(1, other, 0, 4032, (uint64_t *)0x400000000UL, 1, 0));
        CHECK("register_args_unmapped", -EFAULT,
              argo_register_ring((struct argo_register_ring *)0xdead000000000000UL, gfns, 1, 0));
        CHECK("unregister_missing", -ENOENT, unregister(4242, other));
        CHECK("unregister_bad_pointer", -EFAULT, argo_unregister_ring((struct argo_unregister_ring *)0x400000000UL));
        CHECK("unregister_extra_arg", -EINVAL,
              guest_hypercall(ARGO_HYPERCALL, ARGO_OP_UNREGISTER_RING, (unsigned long)gfns, 1, 0, 0));

        /* notify */
        {
            struct argo_ring_data *d = (struct argo_ring_data *)page;
            d->nent = 257;
            CHECK("notify_nent_257", -EACCES, argo_notify(d));
            d->nent = ARGO_MAX_NOTIFY_COUNT;
            CHECK("notify_bad_pointer", -EFAULT, argo_notify((struct argo_ring_data *)0x400000000UL));
            d->nent = 1;
            d->data[0] = (struct argo_ring_data_ent){ .ring = { .aport = 1, .domain_id = other },
                                                      .space_required = 16 };
            CHECK("notify_query_other", 0, argo_notify(d));
            CHECK("notify_query_other_flags", ARGO_RING_DATA_F_EXISTS | ARGO_RING_DATA_F_SUFFICIENT,
                  (long)(d->data[0].flags & ~ARGO_RING_DATA_F_EMPTY)); /* EMPTY: racy */
            CHECK("notify_query_other_max_message_size", 4000, (long)d->data[0].max_message_size);
            if (denied) {
                d->data[0].ring.domain_id = denied;
                CHECK("notify_query_not_allowed", -EACCES, argo_notify(d));
            }
            d->data[0].ring.domain_id = missing;
            d->data[0].flags = 0xFFFF;
            CHECK("notify_query_missing", 0, argo_notify(d));
            CHECK("notify_query_missing_flags", 0, (long)d->data[0].flags);
            CHECK("notify_extra_arg", -EINVAL, guest_hypercall(ARGO_HYPERCALL, ARGO_OP_NOTIFY, 0, 1, 0, 0));
        }

        /* op numbers and hypercall numbers */
        CHECK("op_0", -EOPNOTSUPP, guest_hypercall(ARGO_HYPERCALL, 0, 0, 0, 0, 0));
        CHECK("op_5", -EOPNOTSUPP, guest_hypercall(ARGO_HYPERCALL, 5, 0, 0, 0, 0));
        CHECK("hypercall_99", -ENOSYS, guest_hypercall(99, 0, 0, 0, 0, 0));

        if (guest_param_u64("self", 1))
            self_checks(me, ram, denied ? 2 : 1);
    }
    if (nfailed) {
        guest_printf("argoerr: %u of %u checks FAILED\n", nfailed, nchecks);
        return 1;
    }
    guest_printf("argoerr: all %u checks ok\n", nchecks);
    return 0;
}
