/*
 * pingpong: sequenced, checksummed round trips over Argo.
 *
 * One domain runs role=ping, the other role=pong. Each registers a unicast
 * ring for the other on `port`. Ping sends message i, waits for its echo
 * and checks it before sending i+1; pong checks every message and sends it
 * back unchanged. Ping prints
 *
 *     pingpong: <count> round trips ok, lost 0 corrupt 0 reordered 0, <c> cycles/round trip
 *
 * and both return 0; on any error the reason is printed and 1 returned.
 *
 * Params:
 *   role=ping|pong     required
 *   peer=<domid>       the other domain, required
 *   count=<n>          round trips (default 100000)
 *   size=<bytes>       payload bytes, 16 .. ringlen-32 (default 64)
 *   ringlen=<bytes>    ring data length, a multiple of 16 (default: whole
 *                      pages holding at least four messages, 4032 for the
 *                      default size)
 *   port=<n>           Argo port of both rings (default 1)
 *   poll=1             poll the ring instead of halting when idle
 *   canary=1           put the ring between two canary pages, fill them and
 *                      the unused tail of the last ring page with a pattern,
 *                      and check it every `canary_every` messages (default
 *                      1000) and at the end; prints
 *                      "canary: intact after <n> round trips"
 *   retries=<n>        how often a ring registration refused with -ESRCH
 *                      (the peer does not exist yet) and sends refused with
 *                      -ECONNREFUSED (its ring does not exist yet) are
 *                      retried at startup, with a short spin in between
 *                      (default 200000 in all)
 *   proto=xen|fast|wait  the Argo protocol (default xen: Xen's four ops
 *                      only, notify after every message). fast: an
 *                      extended-header ring (argovisor), the VIRQ armed
 *                      with an event index and re-checked before halting
 *                      (or no VIRQ with poll=1), notify only when the VMM
 *                      says a sender waits for space. wait: polling rings,
 *                      every message sent with argo_send_wait, which waits
 *                      in the VMM for the reply: one hypercall per message
 *                      and no VIRQ.
 */
#include <argo.h>
#include <guest.h>

#define TYPE_PING 0x50494E47u /* "PING" */
#define TYPE_PONG 0x504F4E47u /* "PONG" */
#define MSG_MAGIC 0xA6C0FFEEu

struct msg_head {
    uint32_t seq;
    uint32_t size;  /* payload length the sender meant */
    uint32_t csum;  /* over everything but this field */
    uint32_t magic;
};

static uint16_t peer;
static uint32_t port = 1;
static uint32_t ringlen;
static int polling;
static struct argo_ring *ring;
static volatile uint64_t virqs;
static long refused_left;
static int connected; /* the peer's ring has accepted a message */

enum { PROTO_XEN, PROTO_FAST, PROTO_WAIT };
static int proto = PROTO_XEN;
static const char *const proto_names[] = { "xen", "fast", "wait" };

/* canary state */
static int canary;
static uint8_t *canary_base;   /* first canary page */
static uint32_t ring_npages;

static void on_virq(void)
{
    virqs++;
}

static uint8_t filler(uint32_t seq, uint32_t i)
{
    uint32_t x = seq * 0x9E3779B1u + i * 0x85EBCA6Bu;
    return (uint8_t)(x ^ (x >> 13) ^ (x >> 24));
}

static uint32_t checksum(const uint8_t *p, uint32_t n)
{
    uint32_t h = 2166136261u;  /* FNV-1a, skipping the csum field */
    for (uint32_t i = 0; i < n; i++) {
        if (i >= 8 && i < 12)
            continue;
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static void build(uint8_t *buf, uint32_t seq, uint32_t size)
{
    struct msg_head *h = (struct msg_head *)buf;
    h->seq = seq;
    h->size = size;
    h->magic = MSG_MAGIC;
    for (uint32_t i = sizeof(*h); i < size; i++)
        buf[i] = filler(seq, i);
    h->csum = checksum(buf, size);
}

/* Checks a received payload. Returns NULL if good, else what is wrong. */
static const char *verify(const uint8_t *buf, long len, uint32_t size)
{
    const struct msg_head *h = (const struct msg_head *)buf;
    if (len != (long)size)
        return "wrong length";
    if (h->magic != MSG_MAGIC || h->size != size)
        return "bad header";
    if (h->csum != checksum(buf, size))
        return "bad checksum";
    for (uint32_t i = sizeof(*h); i < size; i++)
        if (buf[i] != filler(h->seq, i))
            return "bad filler";
    return NULL;
}

/* Wait for something to happen: a VIRQ (halting) or, when polling, just a
 * short pause. */
static void idle(void)
{
    if (polling) {
        guest_poll_virq();
        guest_cpu_relax();
    } else {
        guest_wait_for_interrupt();
    }
}

static void spin(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        guest_cpu_relax();
}

/* Sends one message to the peer, waiting for space on -EAGAIN and
 * retrying -ECONNREFUSED until the peer's ring first exists. */
static long send_to_peer(const void *buf, uint32_t len, uint32_t type)
{
    for (;;) {
        uint64_t seen = virqs;
        long r = argo_send(peer, port, port, buf, len, type);
        if (r >= 0) {
            connected = 1;
            return r;
        }
        if (r == -EAGAIN) {
            /* A space request is queued: the VIRQ comes when the peer
             * has drained and notified. */
            if (polling) {
                while (virqs == seen) {
                    guest_poll_virq();
                    guest_cpu_relax();
                }
            } else {
                guest_wait_for_interrupt();
            }
            continue;
        }
        if (r == -ECONNREFUSED && !connected && refused_left > 0) {
            refused_left--;
            spin(2000);
            continue;
        }
        return r;
    }
}

/* ---- canaries ---------------------------------------------------------------- */

static uint8_t canary_byte(uint64_t off)
{
    return (uint8_t)(0xC3u ^ (off * 7u) ^ (off >> 9));
}

/* Offsets (from canary_base) that must keep the pattern: the page before
 * the ring, the tail of the last ring page after the data area, and the
 * page after the ring. */
static void canary_fill(void)
{
    uint64_t ring_end = ARGO_PAGE_SIZE + ARGO_RING_HEADER_SIZE + ringlen;
    uint64_t total = (uint64_t)(ring_npages + 2) * ARGO_PAGE_SIZE;
    for (uint64_t o = 0; o < ARGO_PAGE_SIZE; o++)
        canary_base[o] = canary_byte(o);
    for (uint64_t o = ring_end; o < total; o++)
        canary_base[o] = canary_byte(o);
}

/* Returns -1 if intact, else the offset of the first changed byte. */
static long canary_check(void)
{
    uint64_t ring_end = ARGO_PAGE_SIZE + ARGO_RING_HEADER_SIZE + ringlen;
    uint64_t total = (uint64_t)(ring_npages + 2) * ARGO_PAGE_SIZE;
    for (uint64_t o = 0; o < ARGO_PAGE_SIZE; o++)
        if (canary_base[o] != canary_byte(o))
            return (long)o;
    for (uint64_t o = ring_end; o < total; o++)
        if (canary_base[o] != canary_byte(o))
            return (long)o;
    return -1;
}

static int canary_report(uint64_t done)
{
    long off = canary_check();
    if (off < 0)
        return 0;
    uint64_t ring_start = ARGO_PAGE_SIZE;
    uint64_t ring_end = ARGO_PAGE_SIZE + ARGO_RING_HEADER_SIZE + ringlen;
    const char *where = (uint64_t)off < ring_start ? "page before the ring"
                        : (uint64_t)off < (uint64_t)(ring_npages + 1) * ARGO_PAGE_SIZE
                            ? "unused tail of the last ring page"
                            : "page after the ring";
    guest_printf("canary: byte %ld (%s, ring data ends at %lu) changed from 0x%x to 0x%x after %lu messages\n",
                 off, where, (unsigned long)ring_end, canary_byte((uint64_t)off),
                 canary_base[off], (unsigned long)done);
    return 1;
}

/* Allocates and registers the ring for the peer, with canaries if asked.
 * The peer may not exist yet when this runs (a host that creates and
 * starts domains one by one): -ESRCH is retried like -ECONNREFUSED. */
static long make_ring(void)
{
    ring_npages = argo_ring_pages(ringlen);
    uint32_t gfn_pages = (ring_npages * 8 + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE;
    uint8_t *mem = guest_alloc_pages(ring_npages + (canary ? 2 : 0));
    uint64_t *gfns = guest_alloc_pages(gfn_pages);
    if (!mem || !gfns)
        return -ENOMEM;
    if (canary) {
        canary_base = mem;
        canary_fill();
        ring = (struct argo_ring *)(mem + ARGO_PAGE_SIZE);
    } else {
        ring = (struct argo_ring *)mem;
    }
    for (uint32_t i = 0; i < ring_npages; i++)
        gfns[i] = guest_virt_to_phys((uint8_t *)ring + (uint64_t)i * ARGO_PAGE_SIZE) >> 12;
    struct argo_register_ring reg = { .aport = port, .partner_id = peer, .len = ringlen };
    uint32_t flags = proto == PROTO_XEN ? 0 : ARGO_REGISTER_FLAG_EXT_HEADER;
    if (proto == PROTO_WAIT || (proto == PROTO_FAST && polling))
        argo_ring_set_polling(ring); /* before registering: no VIRQ ever */
    for (;;) {
        long r = argo_register_ring(&reg, gfns, ring_npages, flags);
        if ((r != -ESRCH && r != -ECONNREFUSED) || refused_left <= 0)
            return r;
        refused_left--;
        spin(2000);
    }
}

/* proto=wait: blocks in the VMM until our ring has a message. An
 * interrupt (-EINTR) is taken and the wait resumed. -ENOENT means our
 * ring is gone: the peer has ended, and its death removed the ring we
 * registered for it (as in Xen). */
static long wait_data(void)
{
    struct argo_addr mine = { .aport = port, .domain_id = peer };
    for (;;) {
        long r = argo_wait(&mine, 1, ARGO_WAIT_FOREVER);
        if (r >= 0)
            return 0;
        if (r != -EINTR)
            return r;
        guest_poll_virq();
    }
}

/* Takes the next message out of the ring, waiting for one. Calls notify
 * after each message taken so a sender waiting for space gets its VIRQ
 * (proto=fast: only when the VMM says one waits; proto=wait: never, the
 * next wait does it). */
static long recv_one(uint8_t *buf, uint32_t buflen, struct argo_addr *src, uint32_t *type)
{
    int gone = 0; /* proto=wait: the VMM said our ring was removed */
    for (;;) {
        long r = argo_ring_recv(ring, ringlen, buf, buflen, src, type);
        if (r >= 0) {
            long n = 0;
            if (proto == PROTO_XEN)
                n = argo_notify(NULL);
            else if (proto == PROTO_FAST)
                n = argo_notify_if_needed(ring, ringlen);
            if (n < 0) {
                guest_printf("pingpong: notify failed: %ld\n", n);
                return n;
            }
            return r;
        }
        if (r != -EAGAIN)
            return r;
        if (proto == PROTO_WAIT) {
            if (gone)
                return -ENOENT; /* ring gone and drained: no reply comes */
            long w = wait_data();
            /* A removed ring keeps what was delivered into it before:
             * the peer may send its last message and exit between our
             * look at the ring and the wait. Look once more. */
            if (w == -ENOENT)
                gone = 1;
            else if (w < 0)
                return w;
            continue;
        }
        /* Arm the event index and look again before halting; a message
         * that arrived meanwhile is taken without sleeping. */
        if (proto == PROTO_FAST && !polling && argo_ring_arm(ring, ringlen, 0))
            continue;
        idle();
    }
}

/* proto=wait: sends one message to the peer and waits in the VMM until
 * our ring has a message (the reply), with one hypercall. Send failures
 * are handled as send_to_peer does. Returns the payload length sent once
 * the message is sent; the caller then takes the reply with recv_one,
 * which waits again if the wait part ended without one. */
static long send_wait_peer(const void *buf, uint32_t len, uint32_t type)
{
    struct argo_iov iov = { .iov_hnd = (uint64_t)(uintptr_t)buf, .iov_len = len };
    struct argo_send_ent ent = {
        .addr = { .src = { .aport = port, .domain_id = ARGO_DOMID_ANY },
                  .dst = { .aport = port, .domain_id = peer } },
        .iov_hnd = (uint64_t)(uintptr_t)&iov,
        .niov = 1,
        .message_type = type,
    };
    struct argo_addr mine = { .aport = port, .domain_id = peer };
    for (;;) {
        long r = argo_send_wait(&ent, &mine, 1, ARGO_WAIT_FOREVER);
        if (ent.result == -ECANCELED)
            return r; /* the call failed its checks before sending */
        if (ent.result == -EAGAIN) {
            guest_wait_for_interrupt(); /* the space VIRQ */
            continue;
        }
        if (ent.result == -ECONNREFUSED && !connected && refused_left > 0) {
            refused_left--;
            spin(2000);
            continue;
        }
        if (ent.result < 0)
            return ent.result;
        connected = 1;
        /* The message is sent. -EINTR: an interrupt or kick ended the
         * wait; -ENOENT: our ring was removed (the peer ended) with no
         * reply in it when the VMM looked. Either way recv_one decides:
         * it reads the ring first and waits again only if it is empty. */
        if (r == -EINTR)
            guest_poll_virq();
        else if (r < 0 && r != -ENOENT)
            return r;
        return ent.result;
    }
}

static int check_source(const struct argo_addr *src, uint32_t type, uint32_t want_type, uint64_t i)
{
    if (src->domain_id != peer || src->aport != port || type != want_type) {
        guest_printf("pingpong: message %lu from domain %u port %u type 0x%x, want domain %u port %u type 0x%x\n",
                     (unsigned long)i, src->domain_id, src->aport, type, peer, port, want_type);
        return 1;
    }
    return 0;
}

static int run_ping(uint64_t count, uint32_t size, uint8_t *out, uint8_t *in, uint64_t every)
{
    uint64_t lost = 0, corrupt = 0, reordered = 0;
    uint64_t t0 = guest_rdtsc();

    for (uint64_t i = 0; i < count; i++) {
        uint32_t seq = (uint32_t)i;
        build(out, seq, size);
        long r = proto == PROTO_WAIT ? send_wait_peer(out, size, TYPE_PING)
                                     : send_to_peer(out, size, TYPE_PING);
        if (r != (long)size) {
            guest_printf("pingpong: send %lu failed: %ld\n", (unsigned long)i, r);
            return 1;
        }
        struct argo_addr src;
        uint32_t type;
        r = recv_one(in, size + 64, &src, &type);
        if (r < 0) {
            guest_printf("pingpong: receive %lu failed: %ld\n", (unsigned long)i, r);
            return 1;
        }
        if (check_source(&src, type, TYPE_PONG, i))
            return 1;
        const char *bad = verify(in, r, size);
        uint32_t got = ((struct msg_head *)in)->seq;
        if (bad)
            corrupt++;
        else if (got > seq)
            lost += got - seq;
        else if (got < seq)
            reordered++;
        if (bad || got != seq) {
            guest_printf("pingpong: round trip %lu: %s (got seq %u len %ld)\n", (unsigned long)i,
                         bad ? bad : "wrong sequence number", got, r);
            guest_printf("pingpong: FAILED after %lu round trips, lost %lu corrupt %lu reordered %lu\n",
                         (unsigned long)i, (unsigned long)lost, (unsigned long)corrupt,
                         (unsigned long)reordered);
            return 1;
        }
        if (canary && (i + 1) % every == 0 && canary_report(i + 1))
            return 1;
    }
    uint64_t cycles = guest_rdtsc() - t0;
    if (canary) {
        if (canary_report(count))
            return 1;
        guest_printf("canary: intact after %lu round trips\n", (unsigned long)count);
    }
    guest_printf("pingpong: %lu round trips ok, lost %lu corrupt %lu reordered %lu, %lu cycles/round trip\n",
                 (unsigned long)count, (unsigned long)lost, (unsigned long)corrupt,
                 (unsigned long)reordered, (unsigned long)(count ? cycles / count : 0));
    return 0;
}

static int run_pong(uint64_t count, uint32_t size, uint8_t *in, uint64_t every)
{
    for (uint64_t i = 0; i < count; i++) {
        struct argo_addr src;
        uint32_t type;
        long r = recv_one(in, size + 64, &src, &type);
        if (r < 0) {
            guest_printf("pingpong: receive %lu failed: %ld\n", (unsigned long)i, r);
            return 1;
        }
        if (check_source(&src, type, TYPE_PING, i))
            return 1;
        const char *bad = verify(in, r, size);
        uint32_t got = ((struct msg_head *)in)->seq;
        if (bad || got != (uint32_t)i) {
            guest_printf("pingpong: message %lu: %s (got seq %u len %ld)\n", (unsigned long)i,
                         bad ? bad : "wrong sequence number", got, r);
            return 1;
        }
        /* proto=wait: the echo and the wait for the next message are one
         * hypercall, except after the last message. */
        if (proto == PROTO_WAIT && i + 1 < count)
            r = send_wait_peer(in, size, TYPE_PONG);
        else
            r = send_to_peer(in, size, TYPE_PONG);
        if (r != (long)size) {
            guest_printf("pingpong: echo %lu failed: %ld\n", (unsigned long)i, r);
            return 1;
        }
        if (canary && (i + 1) % every == 0 && canary_report(i + 1))
            return 1;
    }
    if (canary) {
        if (canary_report(count))
            return 1;
        guest_printf("canary: intact after %lu round trips\n", (unsigned long)count);
    }
    guest_printf("pingpong: echoed %lu messages\n", (unsigned long)count);
    return 0;
}

int guest_main(void)
{
    const char *role = guest_param("role");
    uint64_t count = guest_param_u64("count", 100000);
    uint32_t size = (uint32_t)guest_param_u64("size", 64);
    uint64_t every = guest_param_u64("canary_every", 1000);

    peer = (uint16_t)guest_param_u64("peer", 0);
    port = (uint32_t)guest_param_u64("port", 1);
    uint32_t extra = (uint32_t)guest_param_u64("extra_port", 0);
    if (extra) {
        long err;
        if (!argo_ring_create(extra, ARGO_DOMID_ANY, 4096 - 64, &err))
            guest_printf("pingpong: extra ring on port %u: %s\n", extra, guest_errno_name(err));
    }
    polling = guest_param_u64("poll", 0) != 0;
    const char *pr = guest_param("proto");
    if (pr && guest_strcmp(pr, "fast") == 0)
        proto = PROTO_FAST;
    else if (pr && guest_strcmp(pr, "wait") == 0)
        proto = PROTO_WAIT;
    else if (pr && guest_strcmp(pr, "xen") != 0) {
        guest_printf("pingpong: param proto must be xen, fast or wait, not %s\n", pr);
        return 1;
    }
    canary = guest_param_u64("canary", 0) != 0;
    refused_left = (long)guest_param_u64("retries", 200000);

    uint32_t slot = ((size + 15u) & ~15u) + ARGO_MSG_HEADER_SIZE;
    uint32_t pages = (4 * slot + ARGO_RING_HEADER_SIZE + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE;
    ringlen = (uint32_t)guest_param_u64("ringlen", pages * ARGO_PAGE_SIZE - ARGO_RING_HEADER_SIZE);

    if (!role || (guest_strcmp(role, "ping") != 0 && guest_strcmp(role, "pong") != 0)) {
        guest_puts("pingpong: param role must be ping or pong");
        return 1;
    }
    if (peer == 0 || peer == guest_domid()) {
        guest_puts("pingpong: param peer must name the other domain");
        return 1;
    }
    if (size < sizeof(struct msg_head) || size > ringlen - 2 * ARGO_MSG_SLOT_SIZE || every == 0) {
        guest_printf("pingpong: bad size %u for ring length %u\n", size, ringlen);
        return 1;
    }

    uint32_t bufpages = (size + 64 + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE;
    uint8_t *out = guest_alloc_pages(bufpages);
    uint8_t *in = guest_alloc_pages(bufpages);
    if (!out || !in) {
        guest_puts("pingpong: out of memory");
        return 1;
    }
    guest_set_virq_handler(on_virq);
    long r = make_ring();
    if (r != 0) {
        guest_printf("pingpong: ring registration failed: %ld\n", r);
        return 1;
    }
    guest_printf("pingpong: %s, domain %u <-> %u, %lu x %u bytes, ring %u%s%s%s%s\n", role,
                 guest_domid(), peer, (unsigned long)count, size, ringlen,
                 polling ? ", polling" : "", canary ? ", canaries" : "",
                 proto == PROTO_XEN ? "" : ", proto ", proto == PROTO_XEN ? "" : proto_names[proto]);
    if (role[1] == 'i')
        return run_ping(count, size, out, in, every);
    return run_pong(count, size, in, every);
}
