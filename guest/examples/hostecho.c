/*
 * hostecho: echoes messages from the host (domain 0) back to it.
 *
 * Registers a ring for partner 0 on `port`, then sends every message it
 * receives back to (domain 0, reply_port) with the same message type and
 * payload, until a message of type 0xDEAD arrives; then prints
 *     hostecho: echoed <n> messages
 * and returns 0. Any failure prints the reason and returns 1.
 *
 * The host must exist in Argo before this registers its ring (partner 0
 * unknown gives -ESRCH).
 *
 * Params:
 *   port=<n>         the ring's port (default 1); also the source port of
 *                    the echoes
 *   size=<bytes>     ring data length (default 4032)
 *   reply_port=<n>   the host's port to echo to (default 2)
 *   retries=<n>      -ECONNREFUSED retries while the host has no ring on
 *                    reply_port (default 200000)
 */
#include <argo.h>
#include <guest.h>

#define TYPE_QUIT 0xDEADu

static void on_virq(void)
{
}

int guest_main(void)
{
    uint32_t port = (uint32_t)guest_param_u64("port", 1);
    uint32_t len = (uint32_t)guest_param_u64("size", 4096 - 64);
    uint32_t reply = (uint32_t)guest_param_u64("reply_port", 2);
    long retries = (long)guest_param_u64("retries", 200000);
    uint32_t buflen = argo_max_payload(len);
    uint8_t *buf = guest_alloc_pages((buflen + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE);
    uint64_t echoed = 0;
    long err;

    guest_set_virq_handler(on_virq);
    struct argo_ring *ring = argo_ring_create(port, 0, len, &err);
    if (!ring || !buf) {
        guest_printf("hostecho: ring registration failed: %ld\n", err);
        return 1;
    }
    guest_printf("hostecho: domain %u ring on port %u for the host\n", guest_domid(), port);
    for (;;) {
        struct argo_addr src;
        uint32_t type;
        long n = argo_ring_recv(ring, len, buf, buflen, &src, &type);
        if (n == -EAGAIN) {
            guest_wait_for_interrupt();
            continue;
        }
        if (n < 0) {
            guest_printf("hostecho: receive failed: %ld\n", n);
            return 1;
        }
        if (src.domain_id != 0) {
            guest_printf("hostecho: message from domain %u in the host's ring\n", src.domain_id);
            return 1;
        }
        if (type == TYPE_QUIT) {
            argo_notify(NULL);
            guest_printf("hostecho: echoed %lu messages\n", (unsigned long)echoed);
            return 0;
        }
        for (;;) {
            long r = argo_send(0, reply, port, buf, (uint32_t)n, type);
            if (r == n)
                break;
            if (r == -EAGAIN) {
                guest_wait_for_interrupt();
                continue;
            }
            if (r == -ECONNREFUSED && retries-- > 0) {
                for (int k = 0; k < 2000; k++)
                    guest_cpu_relax();
                continue;
            }
            guest_printf("hostecho: echo %lu failed: %ld\n", (unsigned long)echoed, r);
            return 1;
        }
        echoed++;
        /* Space in our ring is free again: the host may wait for it. */
        long r = argo_notify(NULL);
        if (r < 0) {
            guest_printf("hostecho: notify failed: %ld\n", r);
            return 1;
        }
    }
}
