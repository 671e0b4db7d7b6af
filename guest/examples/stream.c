/*
 * stream: one-way bulk transfer into a small ring, exercising the
 * "ring full" path: -EAGAIN, the queued space request, and the VIRQ the
 * sender gets once the receiver has drained and called notify.
 *
 * role=sender pushes `count` messages as fast as it can; on -EAGAIN it
 * halts until a VIRQ and retries. It prints
 *     stream: <n> msgs ok, eagain <k>
 * role=receiver drains its ring (optionally slowly), checks the sequence
 * number and content of every message, calls notify after each drain and
 * prints
 *     stream: received <n> msgs ok
 * Both return 0 on success and 1 (after printing why) on any error.
 *
 * Params:
 *   role=sender|receiver   required
 *   peer=<domid>           the other domain, required
 *   count=<n>              messages (default 10000)
 *   size=<bytes>           payload bytes, >= 8 (default 200)
 *   ringlen=<bytes>        the receiver's ring data length (default 4032,
 *                          one page); the sender uses it to check size
 *   slow=1                 receiver: spin `spin` pauses (default 20000)
 *                          after each message
 *   niov=<n>               sender: split each message into n iovs of
 *                          uneven lengths, 1..8 (default 1)
 *   min_eagain=<n>         sender: fail unless at least n sends got
 *                          -EAGAIN (default 0)
 *   port=<n>               the receiver's ring port (default 1)
 *   verify=0               write and check only each message's sequence
 *                          header, not every payload byte (benchmarks)
 *   retries=<n>            sender: -ECONNREFUSED retries while the
 *                          receiver has no ring yet; receiver: -ESRCH
 *                          retries while the sender does not exist yet
 *                          (default 200000 each)
 */
#include <argo.h>
#include <guest.h>

#define TYPE_DATA 0x44415441u /* "DATA" */

static volatile uint64_t virqs;

static void on_virq(void)
{
    virqs++;
}

static uint8_t content(uint32_t seq, uint32_t i)
{
    uint32_t x = (seq + 1) * 0x2545F491u ^ i * 0x9E3779B9u;
    return (uint8_t)(x >> 11);
}

/* verify = 0 (param) skips generating and checking every payload byte:
 * only the 8-byte sequence header is written and checked, so throughput
 * benchmarks measure the transport rather than this program's loops. */
static int verify = 1;

static void fill(uint8_t *buf, uint32_t seq, uint32_t size)
{
    *(uint32_t *)buf = seq;
    *(uint32_t *)(buf + 4) = ~seq;
    if (!verify)
        return;
    for (uint32_t i = 8; i < size; i++)
        buf[i] = content(seq, i);
}

static int sender(uint16_t peer, uint32_t port, uint64_t count, uint32_t size)
{
    uint8_t *buf = guest_alloc_pages((size + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE);
    long refused_left = (long)guest_param_u64("retries", 200000);
    uint64_t min_eagain = guest_param_u64("min_eagain", 0);
    uint64_t eagain = 0, refused = 0;
    int connected = 0;
    uint32_t niov = (uint32_t)guest_param_u64("niov", 1);
    struct argo_iov iov[ARGO_MAXIOV];
    struct argo_send_addr addr = {
        .src = { .aport = port, .domain_id = ARGO_DOMID_ANY },
        .dst = { .aport = port, .domain_id = peer },
    };

    if (niov < 1 || niov > ARGO_MAXIOV || niov > size) {
        guest_printf("stream: niov %u must be 1..%u and at most size\n", niov, ARGO_MAXIOV);
        return 1;
    }
    /* Uneven pieces: each but the last gets 1..(what the later ones can
     * spare) bytes, the last the rest. */
    {
        uint32_t off = 0;
        for (uint32_t k = 0; k < niov; k++) {
            uint32_t left = size - off, spare = left - (niov - k - 1);
            uint32_t n = k + 1 == niov ? left : 1 + (k * 37 + size / 3) % spare;
            iov[k] = (struct argo_iov){ .iov_hnd = 0, .iov_len = n };
            off += n;
        }
    }

    if (!buf) {
        guest_puts("stream: out of memory");
        return 1;
    }
    uint64_t t0 = guest_rdtsc();
    for (uint64_t i = 0; i < count;) {
        fill(buf, (uint32_t)i, size);
        uint64_t p = (uint64_t)(uintptr_t)buf;
        for (uint32_t k = 0; k < niov; k++) {
            iov[k].iov_hnd = p;
            p += iov[k].iov_len;
        }
        long r = argo_sendv(&addr, iov, niov, TYPE_DATA);
        if (r == (long)size) {
            connected = 1;
            i++;
            continue;
        }
        if (r == -EAGAIN) {
            /* The space request is queued in the VMM before sendv
             * returns, so the VIRQ for it cannot be missed. */
            eagain++;
            guest_wait_for_interrupt();
            continue;
        }
        if (r == -ECONNREFUSED && !connected && refused < (uint64_t)refused_left) {
            refused++;
            for (int k = 0; k < 2000; k++)
                guest_cpu_relax();
            continue;
        }
        guest_printf("stream: send %lu failed: %ld\n", (unsigned long)i, r);
        return 1;
    }
    uint64_t cycles = guest_rdtsc() - t0;
    guest_printf("stream: %lu msgs ok, eagain %lu\n", (unsigned long)count, (unsigned long)eagain);
    guest_printf("stream: %lu virqs, %lu cycles/msg\n", (unsigned long)virqs,
                 (unsigned long)(count ? cycles / count : 0));
    if (eagain < min_eagain) {
        guest_printf("stream: expected at least %lu EAGAINs\n", (unsigned long)min_eagain);
        return 1;
    }
    return 0;
}

static int receiver(uint16_t peer, uint32_t port, uint64_t count, uint32_t size, uint32_t ringlen)
{
    int slow = guest_param_u64("slow", 0) != 0;
    uint64_t spins = guest_param_u64("spin", 20000);
    uint8_t *buf = guest_alloc_pages((size + 64 + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE);
    uint32_t npages = argo_ring_pages(ringlen);
    struct argo_ring *ring = guest_alloc_pages(npages);
    uint64_t *gfns = guest_alloc_pages((npages * 8 + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE);
    long retries = (long)guest_param_u64("retries", 200000);
    uint64_t got = 0, waits = 0;

    if (!buf || !ring || !gfns) {
        guest_puts("stream: out of memory");
        return 1;
    }
    for (uint32_t i = 0; i < npages; i++)
        gfns[i] = guest_virt_to_phys((uint8_t *)ring + (uint64_t)i * ARGO_PAGE_SIZE) >> 12;
    /* The sender may not exist yet if the host creates and starts domains
     * one by one: retry -ESRCH for a while. */
    struct argo_register_ring reg = { .aport = port, .partner_id = peer, .len = ringlen };
    long err;
    while ((err = argo_register_ring(&reg, gfns, npages, 0)) == -ESRCH && retries-- > 0)
        for (int k = 0; k < 2000; k++)
            guest_cpu_relax();
    if (err != 0) {
        guest_printf("stream: ring registration failed: %ld\n", err);
        return 1;
    }
    while (got < count) {
        uint64_t taken = 0;
        for (;;) {
            struct argo_addr src;
            uint32_t type;
            long r = argo_ring_recv(ring, ringlen, buf, size + 64, &src, &type);
            if (r == -EAGAIN)
                break;
            if (r < 0) {
                guest_printf("stream: receive %lu failed: %ld\n", (unsigned long)got, r);
                return 1;
            }
            if (src.domain_id != peer || type != TYPE_DATA || r != (long)size) {
                guest_printf("stream: message %lu: from %u type 0x%x len %ld\n", (unsigned long)got,
                             src.domain_id, type, r);
                return 1;
            }
            uint32_t seq = *(uint32_t *)buf;
            if (seq != (uint32_t)got || *(uint32_t *)(buf + 4) != ~seq) {
                guest_printf("stream: message %lu has sequence number %u: out of order or lost\n",
                             (unsigned long)got, seq);
                return 1;
            }
            for (uint32_t i = 8; verify && i < size; i++) {
                if (buf[i] != content(seq, i)) {
                    guest_printf("stream: message %u byte %u is 0x%x, want 0x%x\n", seq, i, buf[i],
                                 content(seq, i));
                    return 1;
                }
            }
            got++;
            taken++;
            if (slow)
                for (uint64_t k = 0; k < spins; k++)
                    guest_cpu_relax();
        }
        if (taken) {
            /* Space was freed: wake a sender whose request now fits. */
            long r = argo_notify(NULL);
            if (r < 0) {
                guest_printf("stream: notify failed: %ld\n", r);
                return 1;
            }
        } else {
            waits++;
            guest_wait_for_interrupt();
        }
    }
    guest_printf("stream: received %lu msgs ok\n", (unsigned long)got);
    guest_printf("stream: %lu waits, %lu virqs\n", (unsigned long)waits, (unsigned long)virqs);
    return 0;
}

int guest_main(void)
{
    const char *role = guest_param("role");
    uint16_t peer = (uint16_t)guest_param_u64("peer", 0);
    uint32_t port = (uint32_t)guest_param_u64("port", 1);
    uint64_t count = guest_param_u64("count", 10000);
    uint32_t size = (uint32_t)guest_param_u64("size", 200);
    uint32_t ringlen = (uint32_t)guest_param_u64("ringlen", ARGO_PAGE_SIZE - ARGO_RING_HEADER_SIZE);
    verify = guest_param_u64("verify", 1) != 0;

    guest_set_virq_handler(on_virq);
    if (peer == 0 || peer == guest_domid()) {
        guest_puts("stream: param peer must name the other domain");
        return 1;
    }
    if (size < 8 || ringlen < ARGO_MIN_RING_SIZE || size > argo_max_payload(ringlen)) {
        guest_printf("stream: bad size %u for ring length %u\n", size, ringlen);
        return 1;
    }
    if (role && guest_strcmp(role, "sender") == 0)
        return sender(peer, port, count, size);
    if (role && guest_strcmp(role, "receiver") == 0)
        return receiver(peer, port, count, size, ringlen);
    guest_puts("stream: param role must be sender or receiver");
    return 1;
}
