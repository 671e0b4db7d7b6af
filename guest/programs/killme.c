/*
 * killme: traffic to a peer that the host destroys mid-stream.
 *
 * role=sender registers a ring partnered with the peer (port 1), then sends
 * to the peer's ring in a loop, printing "killme: sent <n> messages" every
 * `report` messages. Once the peer is gone, sendv returns -ECONNREFUSED; it
 * prints
 *     peer gone: ECONNREFUSED after <n> messages
 * then unregisters its own ring partnered with the dead peer, which the VMM
 * must already have removed (as Xen does):
 *     unregister of ring for dead peer: ENOENT
 * and returns 0. Any other outcome prints the reason and returns 1.
 *
 * On -EAGAIN the sender does not halt: space requests on a ring whose owner
 * is destroyed are dropped without a VIRQ (Xen's semantics), so a halted
 * sender would never wake. It spins, watching for the space VIRQ, and
 * retries.
 *
 * role=receiver registers a ring partnered with the sender on port 1 and
 * drains it forever (checking sequence numbers), notifying after each
 * drain; it only ends when destroyed, or with 1 on an error.
 *
 * Params:
 *   role=sender|receiver   required
 *   peer=<domid>           the other domain, required
 *   size=<bytes>           payload (default 128, at least 8)
 *   report=<n>             progress line every n messages (default 1000)
 *   max=<n>                sender: give up (return 1) after n messages
 *                          without the peer going away (default 0: never)
 *   retries=<n>            -ECONNREFUSED retries before the first message
 *                          got through (default 200000)
 */
#include <argo.h>
#include <guest.h>

#define RING_LEN (2 * 4096 - 64)
#define TYPE_DATA 0x4B494C4Cu /* "KILL" */

static volatile uint64_t virqs;

static void on_virq(void)
{
    virqs++;
}

static int sender(uint16_t peer, uint32_t size, uint8_t *buf)
{
    uint64_t report = guest_param_u64("report", 1000);
    uint64_t max = guest_param_u64("max", 0);
    long refused_left = (long)guest_param_u64("retries", 200000);
    uint64_t sent = 0, eagain = 0;
    long err;

    if (!argo_ring_create(1, peer, RING_LEN, &err)) {
        guest_printf("killme: ring registration failed: %ld\n", err);
        return 1;
    }
    for (;;) {
        *(uint64_t *)buf = sent;
        long r = argo_send(peer, 1, 1, buf, size, TYPE_DATA);
        if (r == (long)size) {
            sent++;
            if (report && sent % report == 0)
                guest_printf("killme: sent %lu messages\n", (unsigned long)sent);
            if (max && sent >= max) {
                guest_printf("killme: peer still there after %lu messages\n", (unsigned long)sent);
                return 1;
            }
            continue;
        }
        if (r == -EAGAIN) {
            uint64_t seen = virqs;
            eagain++;
            for (int k = 0; k < 20000 && virqs == seen; k++) {
                guest_poll_virq();
                guest_cpu_relax();
            }
            continue;
        }
        if (r == -ECONNREFUSED && sent == 0 && refused_left-- > 0) {
            for (int k = 0; k < 2000; k++)
                guest_cpu_relax();
            continue;
        }
        if (r != -ECONNREFUSED) {
            guest_printf("killme: send %lu failed: %ld\n", (unsigned long)sent, r);
            return 1;
        }
        break;
    }
    guest_printf("peer gone: ECONNREFUSED after %lu messages (%lu eagain)\n", (unsigned long)sent,
                 (unsigned long)eagain);

    struct argo_unregister_ring u = { .aport = 1, .partner_id = peer };
    long r = argo_unregister_ring(&u);
    if (r != -ENOENT) {
        guest_printf("killme: unregister of ring for dead peer returned %ld, want -ENOENT (%d)\n", r, -ENOENT);
        return 1;
    }
    guest_puts("unregister of ring for dead peer: ENOENT");
    /* Sending again must still be refused. */
    r = argo_send(peer, 1, 1, buf, size, TYPE_DATA);
    if (r != -ECONNREFUSED) {
        guest_printf("killme: send after the peer died returned %ld\n", r);
        return 1;
    }
    return 0;
}

static int receiver(uint16_t peer, uint32_t size, uint8_t *buf)
{
    long err;
    uint64_t got = 0;
    struct argo_ring *ring = argo_ring_create(1, peer, RING_LEN, &err);

    if (!ring) {
        guest_printf("killme: ring registration failed: %ld\n", err);
        return 1;
    }
    guest_puts("killme: receiving");
    for (;;) {
        uint64_t taken = 0;
        for (;;) {
            struct argo_addr src;
            long r = argo_ring_recv(ring, RING_LEN, buf, size, &src, NULL);
            if (r == -EAGAIN)
                break;
            if (r != (long)size || src.domain_id != peer || *(uint64_t *)buf != got) {
                guest_printf("killme: message %lu: len %ld from %u seq %lu\n", (unsigned long)got, r,
                             src.domain_id, (unsigned long)*(uint64_t *)buf);
                return 1;
            }
            got++;
            taken++;
        }
        if (taken)
            argo_notify(NULL);
        else
            guest_wait_for_interrupt();
    }
}

int guest_main(void)
{
    const char *role = guest_param("role");
    uint16_t peer = (uint16_t)guest_param_u64("peer", 0);
    uint32_t size = (uint32_t)guest_param_u64("size", 128);
    uint8_t *buf = guest_alloc_pages(1);

    guest_set_virq_handler(on_virq);
    if (peer == 0 || peer == guest_domid() || size < 8 || size > 4000 || !buf) {
        guest_puts("killme: bad params (peer, size)");
        return 1;
    }
    guest_memset(buf, 0x6B, size);
    if (role && guest_strcmp(role, "sender") == 0)
        return sender(peer, size, buf);
    if (role && guest_strcmp(role, "receiver") == 0)
        return receiver(peer, size, buf);
    guest_puts("killme: param role must be sender or receiver");
    return 1;
}
