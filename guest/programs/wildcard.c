/*
 * wildcard: a server with one wildcard ring (partner ARGO_DOMID_ANY) and
 * clients that each send it one message naming, in text, the domain id
 * they claim to be. The server compares the claim with the source the VMM
 * stamped into the message header, which a guest cannot forge.
 *
 * role=server (needs `wildcard = true` in [domain.argo]) waits for
 * `senders` messages from as many different domains and prints, sorted,
 *     wildcard: got <n> messages from domains 2,3,4
 * It returns 1 if a claim does not match the header's source, a domain
 * sends twice, or anything else fails.
 *
 * role=client sends "wildcard client <domid>" (its own id, or param claim
 * to lie) to the server and returns 0 once the send succeeded.
 *
 * Params:
 *   role=server|client   required
 *   senders=<n>          server: messages to wait for (default 3, at most 64)
 *   server=<domid>       client: the server's domain id (required)
 *   claim=<domid>        client: the id to claim (default: its own)
 *   port=<n>             the server's port (default 1)
 *   retries=<n>          client: -ECONNREFUSED retries while the server has
 *                        no ring yet (default 200000)
 */
#include <argo.h>
#include <guest.h>

#define TYPE_HELLO 0x48454C4Fu /* "HELO" */
#define MAX_SENDERS 64

static void on_virq(void)
{
}

static int server(uint32_t port)
{
    uint64_t want = guest_param_u64("senders", 3);
    uint16_t ids[MAX_SENDERS];
    char text[128];
    long err;
    uint64_t got = 0;

    if (want == 0 || want > MAX_SENDERS) {
        guest_printf("wildcard: senders must be 1..%d\n", MAX_SENDERS);
        return 1;
    }
    struct argo_ring *ring = argo_ring_create(port, ARGO_DOMID_ANY, 4096 - 64, &err);
    if (!ring) {
        guest_printf("wildcard: wildcard ring registration failed: %ld\n", err);
        return 1;
    }
    guest_printf("wildcard: server ring on port %u, waiting for %lu senders\n", port, (unsigned long)want);
    while (got < want) {
        struct argo_addr src;
        uint32_t type;
        long r = argo_ring_recv(ring, 4096 - 64, text, sizeof(text) - 1, &src, &type);
        if (r == -EAGAIN) {
            argo_notify(NULL);
            guest_wait_for_interrupt();
            continue;
        }
        if (r < 0) {
            guest_printf("wildcard: receive failed: %ld\n", r);
            return 1;
        }
        text[r] = '\0';
        const char *prefix = "wildcard client ";
        size_t plen = guest_strlen(prefix);
        if (type != TYPE_HELLO || guest_strncmp(text, prefix, plen) != 0) {
            guest_printf("wildcard: unexpected message type 0x%x \"%s\" from domain %u\n", type, text,
                         src.domain_id);
            return 1;
        }
        long claimed = guest_strtol(text + plen, NULL);
        guest_printf("wildcard: message from domain %u port %u claims domain %ld\n", src.domain_id,
                     src.aport, claimed);
        if (claimed != (long)src.domain_id) {
            guest_printf("wildcard: domain %u claims to be %ld: source mismatch\n", src.domain_id,
                         claimed);
            return 1;
        }
        for (uint64_t i = 0; i < got; i++) {
            if (ids[i] == src.domain_id) {
                guest_printf("wildcard: second message from domain %u\n", src.domain_id);
                return 1;
            }
        }
        ids[got++] = src.domain_id;
    }
    argo_notify(NULL);

    /* insertion sort, then print */
    for (uint64_t i = 1; i < got; i++) {
        uint16_t v = ids[i];
        uint64_t j = i;
        for (; j > 0 && ids[j - 1] > v; j--)
            ids[j] = ids[j - 1];
        ids[j] = v;
    }
    char list[MAX_SENDERS * 6 + 1];
    size_t n = 0;
    for (uint64_t i = 0; i < got; i++)
        n += (size_t)guest_snprintf(list + n, sizeof(list) - n, i ? ",%u" : "%u", ids[i]);
    guest_printf("wildcard: got %lu messages from domains %s\n", (unsigned long)got, list);
    return 0;
}

static int client(uint32_t port)
{
    uint16_t srv = (uint16_t)guest_param_u64("server", 0);
    uint64_t claim = guest_param_u64("claim", guest_domid());
    long retries = (long)guest_param_u64("retries", 200000);
    char text[64];

    if (srv == 0) {
        guest_puts("wildcard: client needs param server");
        return 1;
    }
    int len = guest_snprintf(text, sizeof(text), "wildcard client %lu", (unsigned long)claim);
    for (;;) {
        long r = argo_send(srv, port, port, text, (uint32_t)len, TYPE_HELLO);
        if (r == len) {
            guest_printf("wildcard: client %u sent \"%s\"\n", guest_domid(), text);
            return 0;
        }
        if (r == -EAGAIN) {
            guest_wait_for_interrupt();
            continue;
        }
        if (r == -ECONNREFUSED && retries-- > 0) {
            for (int k = 0; k < 2000; k++)
                guest_cpu_relax();
            continue;
        }
        guest_printf("wildcard: send to domain %u failed: %ld\n", srv, r);
        return 1;
    }
}

int guest_main(void)
{
    const char *role = guest_param("role");
    uint32_t port = (uint32_t)guest_param_u64("port", 1);

    guest_set_virq_handler(on_virq);
    if (role && guest_strcmp(role, "server") == 0)
        return server(port);
    if (role && guest_strcmp(role, "client") == 0)
        return client(port);
    guest_puts("wildcard: param role must be server or client");
    return 1;
}
