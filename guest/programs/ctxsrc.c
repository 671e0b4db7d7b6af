/*
 * ctxsrc: assured source context beyond the domain id (docs/argo.md,
 * "Sending context and labels").
 *
 * role=sender (2 vCPUs) sends `count` messages from vCPU 1, then `count`
 * from vCPU 0, then `count` from vCPU 0 after switching it to a copy of its
 * page tables (a second address space: another CR3), then `count` forged
 * ones from vCPU 0 whose payload claims vCPU 7 and CR3 0xdead000, then BYE.
 * Every payload says, besides the claim, what the sender knows of itself
 * (guest_cpu_id, guest_read_cr3).
 *
 * role=receiver registers its ring with ARGO_REGISTER_FLAG_SENDER_CONTEXT
 * and checks every message's stamped context: it is the sender's own
 * report, never the forged claim, and the three honest phases show three
 * different (vCPU, CR3) pairs. Before and after it checks argo_domain_info
 * for itself, the sender (running, then ended once it has exited), an
 * unknown domain (-ESRCH) and a bad pointer (-EFAULT).
 *
 * Prints "ctxsrc: check <name>: ok|FAIL (...)" per check, then
 * "ctxsrc: all <n> checks ok" (exit 0) or "ctxsrc: <k> of <n> checks
 * FAILED" (exit 1).
 *
 * Params: role (required), peer=<domid> (required), count (default 16),
 * self_name, self_label, peer_name, peer_label (receiver: what
 * argo_domain_info must report).
 */
#include <argo.h>
#include <guest.h>

#define PORT 7
#define RINGLEN (16384 - ARGO_RING_HEADER_SIZE)
#define TYPE_DATA 1u
#define TYPE_BYE 2u

struct claim {
    uint32_t seq;
    uint32_t lie;           /* 1: claimed_* are false, true_* are real */
    uint32_t claimed_vcpu;
    uint32_t true_vcpu;
    uint64_t claimed_cr3;
    uint64_t true_cr3;
};

static unsigned checks, failed;

static int check(const char *name, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int check(const char *name, int ok, const char *fmt, ...)
{
    char detail[200];
    va_list ap;
    va_start(ap, fmt);
    guest_vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    checks++;
    failed += !ok;
    guest_printf("ctxsrc: check %s: %s (%s)\n", name, ok ? "ok" : "FAIL", detail);
    return ok;
}

static uint16_t peer;
static uint32_t count;

/* ---- sender ------------------------------------------------------------- */

static long send_claim(uint32_t seq, int lie, uint32_t type)
{
    struct claim c = {
        .seq = seq,
        .lie = (uint32_t)lie,
        .true_vcpu = guest_cpu_id(),
        .true_cr3 = guest_read_cr3(),
    };
    c.claimed_vcpu = lie ? 7 : c.true_vcpu;
    c.claimed_cr3 = lie ? 0xdead000 : c.true_cr3;
    for (unsigned tries = 0;; tries++) {
        long r = argo_send(peer, PORT, PORT, &c, sizeof(c), type);
        if (r >= 0)
            return r;
        /* The receiver's ring may not exist yet, or be full for a
         * moment: it drains it all the time, so try again. */
        if ((r != -ECONNREFUSED && r != -EAGAIN) || tries > 2000000)
            return r;
        for (int k = 0; k < 200; k++)
            guest_cpu_relax();
    }
}

static volatile long vcpu1_err;

static void send_from_other_vcpu(unsigned cpu)
{
    for (uint32_t i = 0; i < count; i++) {
        long r = send_claim(1000 * cpu + i, 0, TYPE_DATA);
        if (r < 0) {
            vcpu1_err = r;
            return;
        }
    }
}

static int sender(void)
{
    if (guest_cpu_count() < 2) {
        guest_puts("ctxsrc: the sender needs 2 vCPUs");
        return 1;
    }
    int others = guest_run_on_cpus(send_from_other_vcpu);
    if (!check("send_vcpu1", others == 1 && vcpu1_err == 0, "%d other vCPU(s) ran, error %ld", others, vcpu1_err))
        return 1;

    long r = 0;
    for (uint32_t i = 0; i < count && r >= 0; i++)
        r = send_claim(i, 0, TYPE_DATA);
    if (!check("send_vcpu0", r >= 0, "last send %ld", r))
        return 1;

    /* A second address space: a copy of the top-level table maps the
     * same memory, but CR3 differs. */
    uint64_t cr3 = guest_read_cr3();
    uint64_t *copy = guest_alloc_pages(1);
    if (!copy)
        return check("alloc", 0, "no page for the table copy"), 1;
    guest_memcpy(copy, (const void *)(uintptr_t)(cr3 & ~0xFFFull), 4096);
    guest_load_cr3(guest_virt_to_phys(copy));
    uint64_t other = guest_read_cr3();
    for (uint32_t i = 0; i < count && r >= 0; i++)
        r = send_claim(2000 + i, 0, TYPE_DATA);
    guest_load_cr3(cr3);
    if (!check("send_second_address_space", r >= 0 && other != cr3, "last send %ld, cr3 %#lx then %#lx", r,
               (unsigned long)cr3, (unsigned long)other))
        return 1;

    for (uint32_t i = 0; i < count && r >= 0; i++)
        r = send_claim(3000 + i, 1, TYPE_DATA);
    if (!check("send_forged", r >= 0, "last send %ld", r))
        return 1;
    r = send_claim(9999, 0, TYPE_BYE);
    check("send_bye", r >= 0, "%ld", r);
    return failed ? 1 : 0;
}

/* ---- receiver ----------------------------------------------------------- */

static void on_virq(void)
{
}

static int same(const char *got, uint16_t len, const char *want)
{
    if (!want)
        want = "";
    return len == guest_strlen(want) && guest_memcmp(got, want, len) == 0;
}

static void check_info(const char *name, uint16_t domid, uint16_t want_id, uint16_t want_state,
                       const char *want_name, const char *want_label)
{
    static struct argo_domain_info info;
    guest_memset(&info, 0xAA, sizeof(info));
    long r = argo_domain_info(domid, &info);
    int pad = 1;
    for (unsigned i = info.label_len; i < sizeof(info.label) && r == 0; i++)
        pad &= info.label[i] == 0;
    check(name,
          r == 0 && info.domain_id == want_id && info.state == want_state && same(info.name, info.name_len, want_name) &&
              same(info.label, info.label_len, want_label) && pad,
          "ret %ld id %u state %u name %.*s label %.*s", r, info.domain_id, info.state, (int)info.name_len,
          info.name, (int)info.label_len, info.label);
}

static int receiver(void)
{
    guest_set_virq_handler(on_virq);
    check_info("info_self", ARGO_DOMID_SELF, guest_domid(), ARGO_DOMAIN_RUNNING, guest_param("self_name"),
               guest_param("self_label"));
    check_info("info_peer_running", peer, peer, ARGO_DOMAIN_RUNNING, guest_param("peer_name"),
               guest_param("peer_label"));
    struct argo_domain_info info;
    long r = argo_domain_info(0x7FE0, &info);
    check("info_unknown", r == -ESRCH, "domain 0x7fe0: %ld", r);
    r = argo_domain_info(peer, NULL);
    check("info_bad_pointer", r == -EFAULT, "NULL buffer: %ld", r);

    long err;
    struct argo_ring *ring = argo_ring_create_flags(PORT, peer, RINGLEN, ARGO_REGISTER_FLAG_SENDER_CONTEXT, &err);
    if (!check("register", ring != NULL, "%ld", err))
        return 1;

    uint32_t honest = 0, forged_caught = 0, bad = 0, got_bye = 0;
    uint32_t seen_v1 = 0, seen_v0 = 0, seen_v0_other = 0;
    uint64_t cr3_first = 0;
    while (!got_bye) {
        struct argo_ring_message_header_ctx h;
        struct claim c;
        r = argo_ring_recv_ctx(ring, RINGLEN, &c, sizeof(c), &h);
        if (r == -EAGAIN) {
            argo_notify(NULL);
            guest_wait_for_interrupt();
            continue;
        }
        if (r != (long)sizeof(c) || h.source.domain_id != peer || !(h.ctx_flags & ARGO_CTX_F_CR3)) {
            guest_printf("ctxsrc: bad message: ret %ld from %u flags %#x\n", r, h.source.domain_id, h.ctx_flags);
            bad++;
            if (r < 0)
                break;
            continue;
        }
        if (h.message_type == TYPE_BYE) {
            got_bye = 1;
            continue;
        }
        /* The stamp must be the truth the sender knows of itself. */
        if (h.vcpu != c.true_vcpu || h.cr3 != c.true_cr3) {
            guest_printf("ctxsrc: message %u: stamped vcpu %u cr3 %#lx, sender says vcpu %u cr3 %#lx\n", c.seq, h.vcpu,
                         (unsigned long)h.cr3, c.true_vcpu, (unsigned long)c.true_cr3);
            bad++;
            continue;
        }
        if (c.lie) {
            forged_caught += h.vcpu != c.claimed_vcpu && h.cr3 != c.claimed_cr3;
            continue;
        }
        honest++;
        if (c.seq >= 2000)
            seen_v0_other += h.vcpu == 0;
        else if (c.seq >= 1000)
            seen_v1 += h.vcpu == 1;
        else {
            seen_v0 += h.vcpu == 0;
            cr3_first = h.cr3;
        }
    }
    argo_notify(NULL);
    check("stamps_match_senders", bad == 0, "%u bad messages", bad);
    check("honest", honest == 3 * count, "%u of %u", honest, 3 * count);
    check("two_vcpus", seen_v1 == count && seen_v0 == count, "vcpu1 %u vcpu0 %u of %u each", seen_v1, seen_v0, count);
    check("two_address_spaces", seen_v0_other == count && cr3_first != 0, "%u from the second address space", seen_v0_other);
    check("forgery_caught", forged_caught == count, "%u of %u forged claims contradicted by the stamp", forged_caught,
          count);

    /* The sender exits after BYE: wait for the VMM to call it ended. */
    for (;;) {
        r = argo_domain_info(peer, &info);
        if (r != 0 || info.state == ARGO_DOMAIN_ENDED)
            break;
        for (int k = 0; k < 1000; k++)
            guest_cpu_relax();
    }
    check_info("info_peer_ended", peer, peer, ARGO_DOMAIN_ENDED, guest_param("peer_name"), guest_param("peer_label"));

    if (failed) {
        guest_printf("ctxsrc: %u of %u checks FAILED\n", failed, checks);
        return 1;
    }
    guest_printf("ctxsrc: all %u checks ok\n", checks);
    return 0;
}

int guest_main(void)
{
    const char *role = guest_param("role");
    peer = (uint16_t)guest_param_u64("peer", 0);
    count = (uint32_t)guest_param_u64("count", 16);
    if (!role || peer == 0 || count == 0 || count > 200) {
        guest_puts("ctxsrc: params role=sender|receiver and peer=<domid> are required, count 1..200");
        return 1;
    }
    if (guest_strcmp(role, "sender") == 0)
        return sender();
    if (guest_strcmp(role, "receiver") == 0)
        return receiver();
    guest_printf("ctxsrc: unknown role %s\n", role);
    return 1;
}
