/*
 * sharedpage: two domains exchange data through one shared page, with
 * Argo messages as the doorbell (examples/sharedpage.toml).
 *
 * The owner (role=owner) grants one page of its RAM to the user and tells
 * it the grant reference in a HELLO message. The user (role=user) maps the
 * page into its grant window. Then, `rounds` times, the owner writes a
 * request into the page (a sequence number and up to 500 numbers) and
 * rings the doorbell (REQ); the user reads the numbers straight from the
 * page, writes their sum back into it and rings back (REP); the owner
 * checks the sum. Only sequence numbers travel over Argo; the data stays
 * in the page. At the end the owner says BYE, the user unmaps and says
 * UNMAPPED, and the owner ends access to the grant.
 *
 * Each side prints a one-line summary and returns 0, or prints what went
 * wrong and returns 1:
 *     sharedpage: owner: <n> requests answered through the shared page (ref 8), 0 wrong, access ended
 *     sharedpage: user: answered <n> requests through domain <d>'s page, unmapped
 *
 * Params: role=owner|user, peer=<domid> (both required), rounds=<n>
 * (default 1000).
 */
#include <argo.h>
#include <gnttab.h>
#include <guest.h>

#define PORT     1
#define RINGLEN  (4096u - 64u)
#define REF      8
#define MAXVALS  500

enum { HELLO = 1, REQ, REP, BYE, UNMAPPED };

struct bell {
    uint32_t kind;
    uint32_t arg; /* HELLO: the grant ref; REQ/REP: the sequence number */
};

/* The shared page. */
struct shared {
    uint32_t seq;       /* owner: request number */
    uint32_t n;         /* owner: how many values */
    uint32_t reply_seq; /* user: request answered */
    uint32_t pad;
    uint64_t sum;       /* user: the answer */
    uint64_t values[MAXVALS];
};
_Static_assert(sizeof(struct shared) <= 4096, "one page");

static uint16_t peer;
static struct argo_ring *ring;

static void on_virq(void)
{
}

static int setup_ring(void)
{
    uint64_t *gfn = guest_alloc_pages(1);
    ring = guest_alloc_pages(1);
    if (!ring || !gfn)
        return -ENOMEM;
    gfn[0] = guest_virt_to_phys(ring) >> 12;
    struct argo_register_ring reg = { .aport = PORT, .partner_id = peer, .len = RINGLEN };
    for (int tries = 0;; tries++) {
        long r = argo_register_ring(&reg, gfn, 1, 0);
        if (r == 0 || (r != -ESRCH && r != -ECONNREFUSED) || tries == 200000)
            return (int)r;
        for (int i = 0; i < 2000; i++)
            guest_cpu_relax();
    }
}

static long ring_bell(uint32_t kind, uint32_t arg)
{
    struct bell b = { kind, arg };
    for (int tries = 0;; tries++) {
        long r = argo_send(peer, PORT, PORT, &b, sizeof(b), 0);
        if (r >= 0)
            return 0;
        if (r == -EAGAIN)
            guest_wait_for_interrupt();
        else if (r != -ECONNREFUSED || tries == 200000) /* the peer's ring may not exist yet */
            return r;
        else
            for (int i = 0; i < 2000; i++)
                guest_cpu_relax();
    }
}

static long wait_bell(struct bell *b)
{
    for (;;) {
        struct argo_addr src;
        long r = argo_ring_recv(ring, RINGLEN, b, sizeof(*b), &src, NULL);
        if (r == -EAGAIN) {
            guest_wait_for_interrupt();
            continue;
        }
        if (r < 0)
            return r;
        argo_notify(NULL);
        return r == sizeof(*b) && src.domain_id == peer ? 0 : -EINVAL;
    }
}

static uint64_t value(uint32_t seq, uint32_t k)
{
    return (uint64_t)seq * 1000003u + (uint64_t)k * k;
}

static int owner(uint32_t rounds)
{
    long err;
    struct grant_entry_v1 *table = gnttab_init(1, &err);
    struct shared *sh = guest_alloc_pages(1);
    if (!table || !sh) {
        guest_printf("sharedpage: owner: setup failed (%ld)\n", err);
        return 1;
    }
    gnttab_grant_access(table, REF, peer, sh, 0);
    if ((err = ring_bell(HELLO, REF)) != 0) {
        guest_printf("sharedpage: owner: HELLO failed: %ld\n", err);
        return 1;
    }
    uint32_t wrong = 0;
    for (uint32_t i = 1; i <= rounds; i++) {
        uint32_t n = 1 + i % MAXVALS;
        uint64_t want = 0;
        for (uint32_t k = 0; k < n; k++) {
            sh->values[k] = value(i, k);
            want += sh->values[k];
        }
        sh->n = n;
        __atomic_store_n(&sh->seq, i, __ATOMIC_RELEASE);
        struct bell b;
        if ((err = ring_bell(REQ, i)) != 0 || (err = wait_bell(&b)) != 0 || b.kind != REP || b.arg != i) {
            guest_printf("sharedpage: owner: request %u: doorbell failed (%ld, got kind %u arg %u)\n", i, err, b.kind, b.arg);
            return 1;
        }
        if (__atomic_load_n(&sh->reply_seq, __ATOMIC_ACQUIRE) != i || sh->sum != want) {
            if (wrong++ < 5)
                guest_printf("sharedpage: owner: request %u: page says reply %u sum %lu, want %lu\n", i, sh->reply_seq,
                             (unsigned long)sh->sum, (unsigned long)want);
        }
    }
    struct bell b;
    if ((err = ring_bell(BYE, 0)) != 0 || (err = wait_bell(&b)) != 0 || b.kind != UNMAPPED) {
        guest_printf("sharedpage: owner: BYE failed (%ld)\n", err);
        return 1;
    }
    int ended = gnttab_end_access(table, REF);
    guest_printf("sharedpage: owner: %u requests answered through the shared page (ref %u), %u wrong, %s\n", rounds, REF,
                 wrong, ended == 0 ? "access ended" : "end_access FAILED");
    return wrong == 0 && ended == 0 ? 0 : 1;
}

static int user(void)
{
    struct bell b;
    long err = wait_bell(&b);
    if (err != 0 || b.kind != HELLO) {
        guest_printf("sharedpage: user: no HELLO (%ld)\n", err);
        return 1;
    }
    struct gnttab_map_grant_ref m = { .host_addr = GNTTAB_WINDOW_RW, .flags = GNTMAP_host_map, .ref = b.arg, .dom = peer };
    err = gnttab_map_grant_ref(&m, 1);
    if (err != 0 || m.status != GNTST_okay) {
        guest_printf("sharedpage: user: map of ref %u failed: %ld, status %d\n", b.arg, err, m.status);
        return 1;
    }
    volatile struct shared *sh = (volatile struct shared *)(uintptr_t)m.host_addr;
    uint32_t answered = 0;
    for (;;) {
        if ((err = wait_bell(&b)) != 0) {
            guest_printf("sharedpage: user: doorbell failed: %ld\n", err);
            return 1;
        }
        if (b.kind == BYE)
            break;
        if (b.kind != REQ || sh->seq != b.arg || sh->n == 0 || sh->n > MAXVALS) {
            guest_printf("sharedpage: user: bad request: kind %u arg %u, page seq %u n %u\n", b.kind, b.arg, sh->seq, sh->n);
            return 1;
        }
        uint64_t sum = 0;
        for (uint32_t k = 0; k < sh->n; k++)
            sum += sh->values[k];
        sh->sum = sum;
        sh->reply_seq = b.arg;
        if ((err = ring_bell(REP, b.arg)) != 0) {
            guest_printf("sharedpage: user: REP failed: %ld\n", err);
            return 1;
        }
        answered++;
    }
    struct gnttab_unmap_grant_ref u = { .host_addr = m.host_addr, .handle = m.handle };
    err = gnttab_unmap_grant_ref(&u, 1);
    if (err != 0 || u.status != GNTST_okay || ring_bell(UNMAPPED, 0) != 0) {
        guest_printf("sharedpage: user: unmap failed: %ld, status %d\n", err, u.status);
        return 1;
    }
    guest_printf("sharedpage: user: answered %u requests through domain %u's page, unmapped\n", answered, peer);
    return 0;
}

int guest_main(void)
{
    const char *role = guest_param("role");
    peer = (uint16_t)guest_param_u64("peer", 0);
    uint32_t rounds = (uint32_t)guest_param_u64("rounds", 1000);
    if (!role || peer == 0 || peer == guest_domid()) {
        guest_puts("sharedpage: params role=owner|user and peer=<other domid> are required");
        return 1;
    }
    guest_set_virq_handler(on_virq);
    if (setup_ring() != 0) {
        guest_puts("sharedpage: ring registration failed");
        return 1;
    }
    if (guest_strcmp(role, "owner") == 0)
        return owner(rounds);
    if (guest_strcmp(role, "user") == 0)
        return user();
    guest_printf("sharedpage: unknown role %s\n", role);
    return 1;
}
