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
 *                          one page; at most 16777152, Xen's largest:
 *                          4096 pages less the header); the sender uses it
 *                          to check size. The domain needs the ring's
 *                          memory (and the sender its bufmem) on top of
 *                          its program: 64 MiB domains hold both
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
 *   proto=xen|fast         the Argo protocol (default xen: Xen's four ops
 *                          only). fast (argovisor): the sender sends up to
 *                          `batch` messages per hypercall with
 *                          argo_sendv_batch; the receiver's ring has the
 *                          extended header, it asks for the VIRQ with an
 *                          event index (argo_ring_arm, re-checked before
 *                          halting) and notifies only when the VMM says a
 *                          sender waits for space
 *   batch=<n>              fast sender: messages per call, 1..64 (default
 *                          32, 64 with waitspace=1; fewer for large
 *                          messages: see bufmem)
 *   bufmem=<bytes>         fast sender: at most this much memory for the
 *                          batch's message buffers, one per message
 *                          (default 16 MiB: 16 messages of 1 MiB, enough
 *                          to fill the largest ring, 16 MiB, in one call).
 *                          With waitspace=1 and verify=0 (and niov=1) a
 *                          batch may hold more messages than buffers:
 *                          each message's 8-byte sequence header is then
 *                          an iov of its own and the rest comes from the
 *                          buffers in turn
 *   waitspace=0|1          fast sender: batches that wait in the VMM for
 *                          space (argo_sendv_batch_wait) instead of
 *                          returning at a full ring and halting for the
 *                          space VIRQ (default 1 for messages of 64 KiB
 *                          and more, else 0)
 *   window=<n>             fast receiver: ask for the VIRQ only when n+1
 *                          messages wait (default 0), clamped to what the
 *                          ring holds and what is still to come
 *   random=1               fast: the lost-wake-up hunt. The sender picks a
 *                          random batch size per call (sometimes a plain
 *                          sendv); before every sleep the receiver picks a
 *                          random window, or polls for a while, or asks
 *                          for a VIRQ per message as Xen does
 *   seed=<n>               random's seed (default: the domain id)
 *   inplace=1              fast receiver, with verify=0: read each message
 *                          where it lies in the ring (header and sequence
 *                          number) instead of copying its payload out, as a
 *                          consumer that processes messages in place does:
 *                          one copy per message (the VMM's) instead of two
 *   hostile=1              fast receiver: scribble random values over its
 *                          own header's rx_flags, rx_event, tx_wanted and
 *                          reserved bytes before every receive; it then
 *                          never sleeps and notifies after every drain
 *
 * Before its loop the sender prints "stream: sending ..." and the receiver
 * "stream: receiving ..." (the benchmarks count exits between these lines
 * and the results). The receiver also prints "stream: ring ready ..." once
 * its ring memory is allocated, just before it registers it: the benchmarks
 * time the stream from there (or from the sender's line, if later), so the
 * guests' boot and allocations are not counted as transfer time.
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

enum { PROTO_XEN, PROTO_FAST };
static int proto = PROTO_XEN;
static int randomize;
static uint64_t rng_state;

/* xorshift64: the random choices of random=1 and hostile=1. */
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void spin(unsigned n)
{
    for (unsigned k = 0; k < n; k++)
        guest_cpu_relax();
}

/* The uneven iov split of a message of size bytes into niov pieces: each
 * but the last gets 1..(what the later ones can spare) bytes. */
static void split(uint32_t *lens, uint32_t niov, uint32_t size)
{
    uint32_t off = 0;
    for (uint32_t k = 0; k < niov; k++) {
        uint32_t left = size - off, spare = left - (niov - k - 1);
        lens[k] = k + 1 == niov ? left : 1 + (k * 37 + size / 3) % spare;
        off += lens[k];
    }
}

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
    guest_printf("stream: sending %lu msgs of %u bytes\n", (unsigned long)count, size);
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
    guest_printf("stream: ring ready, %u bytes\n", ringlen);
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
    guest_printf("stream: receiving %lu msgs of %u bytes\n", (unsigned long)count, size);
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

/* ---- proto=fast ----------------------------------------------------------- */

/* Checks one received message (the Xen receiver does the same inline).
 * Returns 0 if it is message `got`, else prints why and returns 1. */
static int check_msg(const uint8_t *buf, long r, uint16_t peer, uint32_t type, const struct argo_addr *src,
                     uint64_t got, uint32_t size)
{
    if (src->domain_id != peer || type != TYPE_DATA || r != (long)size) {
        guest_printf("stream: message %lu: from %u type 0x%x len %ld\n", (unsigned long)got,
                     src->domain_id, type, r);
        return 1;
    }
    uint32_t seq = *(const uint32_t *)buf;
    if (seq != (uint32_t)got || *(const uint32_t *)(buf + 4) != ~seq) {
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
    return 0;
}

/* The batched sender: up to `batch` messages per argo_sendv_batch, each
 * from its own buffer. A batch stops at its first failed entry; -EAGAIN
 * there means the VMM queued a space request, and its VIRQ cannot be
 * missed by the halt that follows (guest_wait_for_interrupt). */
static int sender_fast(uint16_t peer, uint32_t port, uint64_t count, uint32_t size)
{
    long refused_left = (long)guest_param_u64("retries", 200000);
    uint64_t min_eagain = guest_param_u64("min_eagain", 0);
    uint32_t niov = (uint32_t)guest_param_u64("niov", 1);
    int waitspace = guest_param_u64("waitspace", size >= (64u << 10)) != 0;
    uint32_t kmax = (uint32_t)guest_param_u64("batch", waitspace ? ARGO_MAX_BATCH : 32);
    uint64_t eagain = 0, refused = 0, calls = 0, eintr = 0;
    int connected = 0;

    if (niov < 1 || niov > ARGO_MAXIOV || niov > size) {
        guest_printf("stream: niov %u must be 1..%u and at most size\n", niov, ARGO_MAXIOV);
        return 1;
    }
    if (kmax < 1 || kmax > ARGO_MAX_BATCH) {
        guest_printf("stream: batch %u must be 1..%u\n", kmax, ARGO_MAX_BATCH);
        return 1;
    }
    uint64_t bufmem = guest_param_u64("bufmem", 16u << 20);
    uint64_t cap = bufmem / size; /* at most bufmem of buffers */
    uint32_t nbuf = kmax;          /* message buffers */
    if (kmax > cap) {
        nbuf = cap ? (uint32_t)cap : 1;
        /* A batch that waits for space can hold more messages than the
         * ring (and the buffers): the VMM copies each before it needs the
         * next. Without verify the payload past the sequence header is
         * not checked, so messages may share buffers, each with its own
         * header iov. Otherwise one buffer per message. */
        if (!waitspace || verify || niov != 1)
            kmax = nbuf;
    }
    int shared = nbuf < kmax;
    uint32_t eniov = shared ? 2 : niov; /* iovs per entry */
    uint32_t lens[ARGO_MAXIOV];
    split(lens, niov, size);
    uint32_t bufpages = (size + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE;
    uint8_t *bufs = guest_alloc_pages((size_t)bufpages * nbuf);
    struct argo_send_ent *ents = guest_alloc_pages(1);
    uint32_t *hdrs = guest_alloc_pages(1); /* shared: 8 bytes per entry */
    struct argo_iov *iovs = guest_alloc_pages((kmax * eniov * sizeof(struct argo_iov) + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE);
    if (!bufs || !ents || !hdrs || !iovs) {
        guest_puts("stream: out of memory");
        return 1;
    }
    struct argo_send_addr addr = {
        .src = { .aport = port, .domain_id = ARGO_DOMID_ANY },
        .dst = { .aport = port, .domain_id = peer },
    };
    guest_printf("stream: sending %lu msgs of %u bytes, proto fast, batch %u%s%s\n", (unsigned long)count, size, kmax,
                 waitspace ? ", waiting for space" : "", shared ? ", shared buffers" : "");
    uint64_t t0 = guest_rdtsc();
    for (uint64_t i = 0; i < count;) {
        uint32_t k = randomize ? 1 + (uint32_t)(rnd() % kmax) : kmax;
        if (k > count - i)
            k = (uint32_t)(count - i);
        for (uint32_t j = 0; j < k; j++) {
            uint8_t *b = bufs + (uint64_t)(j % nbuf) * bufpages * ARGO_PAGE_SIZE;
            struct argo_iov *v = &iovs[j * eniov];
            if (shared) {
                uint32_t *h = &hdrs[2 * j];
                fill((uint8_t *)h, (uint32_t)(i + j), 8);
                v[0] = (struct argo_iov){ .iov_hnd = (uint64_t)(uintptr_t)h, .iov_len = 8 };
                v[1] = (struct argo_iov){ .iov_hnd = (uint64_t)(uintptr_t)(b + 8), .iov_len = size - 8 };
            } else {
                fill(b, (uint32_t)(i + j), size);
                uint64_t p = (uint64_t)(uintptr_t)b;
                for (uint32_t q = 0; q < niov; q++) {
                    v[q] = (struct argo_iov){ .iov_hnd = p, .iov_len = lens[q] };
                    p += lens[q];
                }
            }
            ents[j] = (struct argo_send_ent){ .addr = addr, .iov_hnd = (uint64_t)(uintptr_t)v, .niov = eniov,
                                              .message_type = TYPE_DATA };
        }
        long r;
        if (randomize && k == 1 && rnd() % 2) {
            /* A plain sendv now and then: both paths in one stream. */
            r = argo_sendv(&addr, &iovs[0], eniov, TYPE_DATA);
            ents[0].result = r;
            r = r == (long)size ? 1 : 0;
        } else if (waitspace) {
            r = argo_sendv_batch_wait(ents, k, 0, ARGO_WAIT_FOREVER);
        } else {
            r = argo_sendv_batch(ents, k, 0);
        }
        calls++;
        if (r < 0) {
            guest_printf("stream: batch of %u at %lu failed: %ld\n", k, (unsigned long)i, r);
            return 1;
        }
        i += (uint64_t)r;
        if (r > 0)
            connected = 1;
        if ((uint32_t)r == k)
            continue;
        long e = ents[r].result;
        if (e == -EAGAIN) {
            eagain++;
            guest_wait_for_interrupt();
            continue;
        }
        if (e == -EINTR && waitspace) {
            /* The interrupt has been handled on the way back: go on
             * from the entry that waited. */
            eintr++;
            continue;
        }
        if (e == -ECONNREFUSED && !connected && refused < (uint64_t)refused_left) {
            refused++;
            spin(2000);
            continue;
        }
        guest_printf("stream: send %lu failed: %ld\n", (unsigned long)i, e);
        return 1;
    }
    uint64_t cycles = guest_rdtsc() - t0;
    guest_printf("stream: %lu msgs ok, eagain %lu\n", (unsigned long)count, (unsigned long)eagain);
    guest_printf("stream: %lu virqs, %lu cycles/msg, %lu calls, %lu interrupted\n", (unsigned long)virqs,
                 (unsigned long)(count ? cycles / count : 0), (unsigned long)calls, (unsigned long)eintr);
    if (eagain < min_eagain) {
        guest_printf("stream: expected at least %lu EAGAINs\n", (unsigned long)min_eagain);
        return 1;
    }
    return 0;
}

/* inplace=1: the reader side of the ring protocol (as argo_ring_recv)
 * without copying the payload out: the header and the payload's first 8
 * bytes (the sequence number, which check_msg reads) go to hdr and buf. */
static long recv_inplace(struct argo_ring *ring, uint32_t ring_len, uint8_t *buf, struct argo_addr *src,
                         uint32_t *type)
{
    uint32_t rx = __atomic_load_n(&ring->rx_ptr, __ATOMIC_RELAXED);
    uint32_t tx = __atomic_load_n(&ring->tx_ptr, __ATOMIC_ACQUIRE);
    rx = (rx + 15u) & ~15u;
    if (rx >= ring_len)
        rx = 0;
    if (tx >= ring_len || (tx & 15u))
        return -EINVAL;
    uint32_t avail = (tx + ring_len - rx) % ring_len;
    if (avail < ARGO_MSG_HEADER_SIZE)
        return -EAGAIN;
    const struct argo_ring_message_header *h = (const void *)&ring->ring[rx]; /* never wraps */
    uint32_t mlen = h->len;
    if (mlen < ARGO_MSG_HEADER_SIZE + 8 || mlen > avail) {
        __atomic_store_n(&ring->rx_ptr, tx, __ATOMIC_RELEASE);
        return -EINVAL;
    }
    *src = h->source;
    *type = h->message_type;
    for (uint32_t i = 0, off = rx + ARGO_MSG_HEADER_SIZE; i < 8; i++, off++)
        buf[i] = ring->ring[off >= ring_len ? off - ring_len : off];
    uint32_t next = rx + ((mlen + 15u) & ~15u);
    if (next >= ring_len)
        next -= ring_len;
    __atomic_store_n(&ring->rx_ptr, next, __ATOMIC_RELEASE);
    return (long)(mlen - ARGO_MSG_HEADER_SIZE);
}

/* hostile=1: garbage over every receiver-writable header word and the
 * VMM's tx_wanted (rx_ptr and tx_ptr are left alone: the reader needs
 * them to make progress). */
static void scribble(struct argo_ring *ring)
{
    __atomic_store_n(&ring->rx_flags, (uint32_t)rnd(), __ATOMIC_SEQ_CST);
    __atomic_store_n(&ring->rx_event, (uint32_t)rnd(), __ATOMIC_SEQ_CST);
    __atomic_store_n(&ring->tx_wanted, (uint32_t)rnd(), __ATOMIC_SEQ_CST);
    for (uint32_t i = 0; i < sizeof(ring->reserved); i++)
        ring->reserved[i] = (uint8_t)rnd();
}

/* The event-index receiver. After draining it notifies only if a sender
 * waits and now fits (tx_wanted), picks a window, publishes it and looks
 * at the ring again before halting (argo_ring_arm). */
static int receiver_fast(uint16_t peer, uint32_t port, uint64_t count, uint32_t size, uint32_t ringlen)
{
    int hostile = guest_param_u64("hostile", 0) != 0;
    int inplace = guest_param_u64("inplace", 0) != 0;
    int slow = guest_param_u64("slow", 0) != 0;
    uint64_t spins = guest_param_u64("spin", 20000);
    uint64_t window = guest_param_u64("window", 0);
    uint8_t *buf = guest_alloc_pages((size + 64 + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE);
    long retries = (long)guest_param_u64("retries", 200000);
    uint64_t got = 0, waits = 0;
    uint32_t slot = ((size + 15u) & ~15u) + ARGO_MSG_HEADER_SIZE;
    uint64_t cap = (ringlen - 1) / slot; /* messages the ring holds at once */
    uint32_t npages = argo_ring_pages(ringlen);
    struct argo_ring *ring = guest_alloc_pages(npages);
    uint64_t *gfns = guest_alloc_pages((npages * 8 + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE);
    long err;

    if (!buf || !ring || !gfns) {
        guest_puts("stream: out of memory");
        return 1;
    }
    if (inplace && verify) {
        guest_puts("stream: inplace=1 needs verify=0 (the payload is not copied out to check)");
        return 1;
    }
    for (uint32_t i = 0; i < npages; i++)
        gfns[i] = guest_virt_to_phys((uint8_t *)ring + (uint64_t)i * ARGO_PAGE_SIZE) >> 12;
    guest_printf("stream: ring ready, %u bytes\n", ringlen);
    /* As argo_ring_create_ext, with the memory already there. */
    struct argo_register_ring reg = { .aport = port, .partner_id = peer, .len = ringlen };
    while ((err = argo_register_ring(&reg, gfns, npages, ARGO_REGISTER_FLAG_EXT_HEADER)) == -ESRCH &&
           retries-- > 0)
        spin(2000);
    if (err != 0) {
        guest_printf("stream: ring registration failed: %ld\n", err);
        return 1;
    }
    guest_printf("stream: receiving %lu msgs of %u bytes, proto fast%s%s\n", (unsigned long)count, size,
                 randomize ? ", random windows" : "", hostile ? ", hostile header" : "");
    while (got < count) {
        uint64_t taken = 0;
        for (;;) {
            struct argo_addr src;
            uint32_t type;
            if (hostile)
                scribble(ring);
            long r = inplace ? recv_inplace(ring, ringlen, buf, &src, &type)
                             : argo_ring_recv(ring, ringlen, buf, size + 64, &src, &type);
            if (r == -EAGAIN)
                break;
            if (r < 0) {
                guest_printf("stream: receive %lu failed: %ld\n", (unsigned long)got, r);
                return 1;
            }
            if (check_msg(buf, r, peer, type, &src, got, size))
                return 1;
            got++;
            taken++;
            if (slow)
                spin((unsigned)spins);
        }
        if (hostile) {
            /* tx_wanted is garbage here: always notify, never sleep. */
            long r = argo_notify(NULL);
            if (r < 0) {
                guest_printf("stream: notify failed: %ld\n", r);
                return 1;
            }
            guest_poll_virq();
            guest_cpu_relax();
            continue;
        }
        if (taken) {
            long r = argo_notify_if_needed(ring, ringlen);
            if (r < 0) {
                guest_printf("stream: notify failed: %ld\n", r);
                return 1;
            }
        }
        if (got == count)
            break;
        uint64_t left = count - got, w = window;
        if (randomize) {
            uint64_t mode = rnd() % 8;
            if (mode == 0) { /* poll for a while, no VIRQ */
                uint32_t rx = __atomic_load_n(&ring->rx_ptr, __ATOMIC_RELAXED);
                argo_ring_set_polling(ring);
                for (int k = 0; k < 2000 && __atomic_load_n(&ring->tx_ptr, __ATOMIC_ACQUIRE) == rx; k++)
                    guest_cpu_relax();
                continue;
            }
            if (mode == 1) { /* Xen's behaviour: a VIRQ per message */
                uint32_t rx = __atomic_load_n(&ring->rx_ptr, __ATOMIC_RELAXED);
                __atomic_store_n(&ring->rx_flags, 0, __ATOMIC_SEQ_CST);
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                if (__atomic_load_n(&ring->tx_ptr, __ATOMIC_SEQ_CST) != rx)
                    continue;
                waits++;
                guest_wait_for_interrupt();
                continue;
            }
            w = rnd() % (cap < left ? cap : left);
        }
        if (w > cap - 1)
            w = cap - 1;
        if (w > left - 1)
            w = left - 1;
        if (argo_ring_arm(ring, ringlen, (uint32_t)(w * slot)))
            continue;
        waits++;
        guest_wait_for_interrupt();
    }
    guest_printf("stream: received %lu msgs ok\n", (unsigned long)got);
    guest_printf("stream: %lu waits, %lu virqs%s\n", (unsigned long)waits, (unsigned long)virqs,
                 hostile ? ", notified after every drain" : "");
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
    const char *pr = guest_param("proto");
    if (pr && guest_strcmp(pr, "fast") == 0)
        proto = PROTO_FAST;
    else if (pr && guest_strcmp(pr, "xen") != 0) {
        guest_printf("stream: param proto must be xen or fast, not %s\n", pr);
        return 1;
    }
    randomize = guest_param_u64("random", 0) != 0;
    rng_state = guest_param_u64("seed", guest_domid()) * 0x9E3779B97F4A7C15ull | 1;
    if (role && guest_strcmp(role, "sender") == 0)
        return proto == PROTO_FAST ? sender_fast(peer, port, count, size) : sender(peer, port, count, size);
    if (role && guest_strcmp(role, "receiver") == 0)
        return proto == PROTO_FAST ? receiver_fast(peer, port, count, size, ringlen)
                                   : receiver(peer, port, count, size, ringlen);
    guest_puts("stream: param role must be sender or receiver");
    return 1;
}
