/* sendbench: measures the sendv hypercall.
 *
 * params: size (payload bytes, default 64), count (iterations, default
 * 10000), ringlen (default large enough for two messages of size), dst
 * (destination domain; default: this domain).
 * With dst = this domain, each iteration sends one message into the
 * domain's own ring and drains it again, so the ring never fills (the VIRQ
 * the send raises here is part of the timed cost). With another dst (the
 * host, 0, in the benchmarks) the message goes to that domain's ring on
 * port 1, whose owner drains it; -EAGAIN is retried and counted.
 * Only the sendv hypercalls are timed (guest TSC). Prints "ready" before
 * the loop and "sendv: size <s> count <n> cycles <total>" after. */
#include <guest.h>
#include <argo.h>

static uint8_t *payload;
static uint8_t *sink;

int guest_main(void)
{
    const char *p;
    uint32_t size = (p = guest_param("size")) ? (uint32_t)guest_atoi(p) : 64;
    uint32_t count = (p = guest_param("count")) ? (uint32_t)guest_atoi(p) : 10000;
    uint32_t ringlen = ((size + 32 + 15) & ~15u) * 2;
    if (ringlen < 4096 - 64)
        ringlen = 4096 - 64;
    if ((p = guest_param("ringlen")))
        ringlen = (uint32_t)guest_atoi(p);

    uint16_t dst = (p = guest_param("dst")) ? (uint16_t)guest_atoi(p) : guest_domid();
    int self = dst == guest_domid();
    long err = 0;
    struct argo_ring *ring = self ? argo_ring_create(1, guest_domid(), ringlen, &err) : 0;
    payload = guest_alloc_pages((size + 4095) / 4096 + 1);
    sink = guest_alloc_pages((size + 4095) / 4096 + 1);
    if ((self && !ring) || !payload || !sink) {
        guest_printf("sendbench: setup failed (%ld)\n", err);
        return 1;
    }
    for (uint32_t i = 0; i < size; i++)
        payload[i] = (uint8_t)i;
    struct argo_send_addr addr = {
        .src = { .aport = 2, .domain_id = ARGO_DOMID_ANY },
        .dst = { .aport = 1, .domain_id = dst },
    };
    struct argo_iov iov = { .iov_hnd = (uint64_t)(uintptr_t)payload, .iov_len = size };

    guest_puts("ready");
    uint64_t cycles = 0, eagain = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t t0 = guest_rdtsc();
        long n = argo_sendv(&addr, &iov, 1, 0);
        cycles += guest_rdtsc() - t0;
        if (n == -EAGAIN || (n == -ECONNREFUSED && i == 0)) {
            eagain++;
            i--;
            continue;
        }
        if (n != (long)size) {
            guest_printf("sendbench: sendv %u returned %ld\n", i, n);
            return 1;
        }
        if (!self)
            continue;
        long got = argo_ring_recv(ring, ringlen, sink, size, 0, 0);
        if (got != (long)size) {
            guest_printf("sendbench: recv %u returned %ld\n", i, got);
            return 1;
        }
    }
    guest_printf("sendv: size %u count %u cycles %lu eagain %lu\n", size, count,
                 (unsigned long)cycles, (unsigned long)eagain);
    return 0;
}
