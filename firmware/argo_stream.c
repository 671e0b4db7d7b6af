/*
 * argo_stream.c - reliable byte streams over Argo (guest/include/argo_stream.h).
 *
 * The wire protocol is docs/streams.md. What this file adds to it:
 *
 * - Rings. One control ring (wildcard, at ARGO_STREAM_CTRL_PORT) and one
 *   extended-header ring per connection, unicast to the peer domain, at an
 *   ephemeral port above the control port. Every ring is polling
 *   (no VIRQ for its data) except while argo_stream_poll halts with more
 *   rings than argo_wait takes; then they are armed for one VIRQ.
 * - Reading. Messages are read in place: a DATA message may be consumed
 *   over several recv calls (rd_off), and rx_ptr moves past a message only
 *   once all of it has been used. Messages are applied in ring order, so a
 *   FIN takes effect after the data sent before it; a RESET takes effect
 *   as soon as it is in the ring, dropping unread data (each message's
 *   header is looked at once, ahead of the reader: conn_scan).
 * - Sending. DATA goes out in chunks of at most a quarter of the peer's
 *   ring (and ARGO_STREAM_MAX_CHUNK), up to ARGO_MAX_BATCH chunks per
 *   hypercall; a blocking send sleeps in the VMM for ring space.
 * - Waiting. argo_wait on the rings involved; the control ring is always
 *   among them, so a domain blocked in any call still answers CONNECTs
 *   (queues or refuses them) instead of leaving connectors hanging.
 * - Memory. guest_alloc_pages has no free, so the memory of a closed
 *   connection's ring goes on a small free list and is registered again
 *   for a later connection that fits in it.
 *
 * Hostile peers: every message is checked (type, length, source domain and
 * port, connection state) before it is used; anything else is dropped and
 * counted. Each pass over a ring handles at most as many messages as the
 * ring can hold, and every loop either consumes a message, sleeps in the
 * VMM or ends, so input never makes a call spin on its own.
 *
 * The VIRQ handler is left alone: the firmware wakes
 * guest_wait_for_interrupt for every VIRQ whether a handler is set or not,
 * so nothing here needs one, and an application's handler keeps working
 * (it runs when the SDK takes pending VIRQs, see poll_virqs).
 */
#include <argo_stream.h>
#include <guest.h>

/* Data length of the control ring when argo_stream_init gets 0. */
#define CTRL_RING_DEFAULT   (4096u - ARGO_RING_HEADER_SIZE)
/* How long close waits for room in the peer's ring for its FIN: a peer
 * that stopped reading must not hold up the closing domain for ever. */
#define CLOSE_LINGER_US     2000000u
/* Free-list entries of ring memory (see mem_get). */
#define FREE_BLOCKS         (ARGO_STREAM_MAX_CONNS + 8)
/* Handles: listeners first, then connections. */
#define CONN_HANDLE0        ARGO_STREAM_MAX_LISTENERS
/* CONNECTs held beyond their listeners' backlogs, domain-wide (see
 * handle_connect). 0 would refuse at once what a backlog cannot take. */
#define HOLD_MAX            ARGO_STREAM_MAX_CONNS
/* Largest ring data length a register call accepts. */
#define RING_LEN_MAX        (ARGO_MAX_RING_SIZE - ARGO_RING_HEADER_SIZE)

/* ---- state ------------------------------------------------------------------ */

/* Ring memory: pages for the ring, then its gfn list (computed once). */
struct memblk {
    uint8_t *base;
    uint64_t *gfns;
    uint32_t pages;     /* ring pages the block holds */
};

enum { C_FREE, C_CONNECTING, C_OPEN };

struct conn {
    uint8_t state;
    uint8_t fin_sent;   /* our SHUTDOWN(FIN) is in the peer's ring */
    uint8_t fin_rcvd;   /* the peer's FIN has been read (all data before it too) */
    uint8_t rst;        /* reset: nothing more is read or sent */
    uint8_t gone;       /* our ring was removed (the peer domain ended) */
    uint8_t in_wait;    /* scratch: already in the wait set being built */
    uint16_t peer_dom;
    uint32_t peer_port; /* meaningful once C_OPEN */
    uint32_t chunk;     /* largest DATA payload we send */
    uint32_t port;      /* our connection port */
    uint32_t ring_len;
    uint32_t rd_off;    /* bytes of the DATA message at rx_ptr already read */
    uint32_t scan;      /* ring offset up to which messages were looked at
                         * for a RESET (conn_scan); rx_ptr never passes it */
    uint32_t rst_reason; /* RESET reason received (positive errno), for connect */
    struct argo_ring *ring;
    struct memblk mem;
};

struct pending {
    uint16_t dom;
    uint32_t port;      /* the connector's connection port */
    uint32_t ring_len;  /* the connector's ring data length */
};

/* A CONNECT held for the listener on stream port `port`. */
struct held {
    uint32_t port;
    struct pending p;
};

struct listener {
    uint8_t used;
    uint32_t port;
    uint32_t backlog;
    uint32_t count;
    struct pending q[ARGO_STREAM_MAX_BACKLOG];
};

static int inited;
static struct argo_ring *ctrl;      /* NULL: none (see argo_stream_init) */
static uint32_t ctrl_len;
static uint16_t ctrl_partner;       /* ARGO_DOMID_ANY, or the host only */
static uint32_t next_port = ARGO_STREAM_CTRL_PORT + 1;
static struct listener listeners[ARGO_STREAM_MAX_LISTENERS];
static struct conn conns[ARGO_STREAM_MAX_CONNS];
static struct held hold[HOLD_MAX];  /* in arrival order */
static uint32_t nhold;
static struct memblk free_blocks[FREE_BLOCKS];
static uint32_t nfree;
static struct argo_stream_stats stats;

/* One batch of DATA messages (the SDK runs on one vCPU, not reentrant). */
static struct argo_send_ent batch_ents[ARGO_MAX_BATCH];
static struct argo_iov batch_iovs[ARGO_MAX_BATCH];

/* ---- small helpers ------------------------------------------------------------ */

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

static uint32_t rd_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* A ring data length we can register: Argo's limits. */
static int ring_len_ok(uint32_t len)
{
    return len >= ARGO_MIN_RING_SIZE && len <= RING_LEN_MAX && len % ARGO_MSG_SLOT_SIZE == 0;
}

/* A ring length a peer claims (the host's check, stream.ValidRingLen).
 * Only used to size our chunks: a lie shows up as -EMSGSIZE (send_data). */
static int peer_ring_len_ok(uint32_t len)
{
    return len >= ARGO_MIN_RING_SIZE && len <= ARGO_MAX_RING_SIZE && len % ARGO_MSG_SLOT_SIZE == 0;
}

static uint32_t chunk_for(uint32_t peer_ring_len)
{
    uint32_t c = min_u32(peer_ring_len / 4, ARGO_STREAM_MAX_CHUNK);
    c = min_u32(c, argo_max_payload(peer_ring_len));
    return c ? c : 1;
}

/* Runs the application's VIRQ handler (if any) for VIRQs that ended a
 * wait, so that it sees them as it would in guest_wait_for_interrupt. */
static void poll_virqs(void)
{
    guest_poll_virq();
}

static struct conn *conn_of(long h)
{
    if (h < CONN_HANDLE0 || h >= CONN_HANDLE0 + ARGO_STREAM_MAX_CONNS)
        return NULL;
    struct conn *c = &conns[h - CONN_HANDLE0];
    return c->state == C_OPEN ? c : NULL;
}

static struct listener *listener_of(long h)
{
    if (h < 0 || h >= ARGO_STREAM_MAX_LISTENERS || !listeners[h].used)
        return NULL;
    return &listeners[h];
}

static long conn_handle(const struct conn *c)
{
    return CONN_HANDLE0 + (long)(c - conns);
}

/* ---- ring memory ---------------------------------------------------------------- */

/* Memory for a ring of `pages` pages: the smallest free block that holds
 * it, else fresh pages. */
static int mem_get(uint32_t pages, struct memblk *out)
{
    uint32_t best = nfree;
    for (uint32_t i = 0; i < nfree; i++)
        if (free_blocks[i].pages >= pages && (best == nfree || free_blocks[i].pages < free_blocks[best].pages))
            best = i;
    if (best < nfree) {
        *out = free_blocks[best];
        free_blocks[best] = free_blocks[--nfree];
        return 0;
    }
    uint32_t gfn_pages = (pages * 8 + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE;
    uint8_t *base = guest_alloc_pages(pages + gfn_pages);
    if (!base)
        return -ENOMEM;
    out->base = base;
    out->gfns = (uint64_t *)(base + (uint64_t)pages * ARGO_PAGE_SIZE);
    out->pages = pages;
    for (uint32_t i = 0; i < pages; i++)
        out->gfns[i] = guest_virt_to_phys(base + (uint64_t)i * ARGO_PAGE_SIZE) >> 12;
    return 0;
}

/* Gives a block back. With the list full the smallest block is given up
 * (it stays allocated; there is no free), which only happens after many
 * connections of ever larger rings. */
static void mem_put(const struct memblk *b)
{
    if (!b->base)
        return;
    if (nfree < FREE_BLOCKS) {
        free_blocks[nfree++] = *b;
        return;
    }
    uint32_t small = 0;
    for (uint32_t i = 1; i < nfree; i++)
        if (free_blocks[i].pages < free_blocks[small].pages)
            small = i;
    if (free_blocks[small].pages < b->pages)
        free_blocks[small] = *b;
}

/* ---- reading rings in place ----------------------------------------------------- */

/* Copies n bytes of the data area from offset off (any value), wrapping. */
static void ring_read(const struct argo_ring *r, uint32_t len, uint32_t off, void *dst, uint32_t n)
{
    off %= len;
    uint32_t first = min_u32(len - off, n);
    guest_memcpy(dst, &r->ring[off], first);
    guest_memcpy((uint8_t *)dst + first, &r->ring[0], n - first);
}

/* The message at the head of a ring: its header in *h and its offset in
 * *rxp. 0, -EAGAIN when the ring is empty, -EINVAL when what is there is
 * not a message (only the VMM writes the ring, so that means our own
 * memory was overwritten). */
static long ring_head(const struct argo_ring *r, uint32_t len, struct argo_ring_message_header *h,
                      uint32_t *rxp)
{
    uint32_t rx = (__atomic_load_n(&r->rx_ptr, __ATOMIC_RELAXED) + 15u) & ~15u;
    if (rx >= len)
        rx = 0;
    /* Acquire: the message bytes tx_ptr covers are visible after it. */
    uint32_t tx = __atomic_load_n(&r->tx_ptr, __ATOMIC_ACQUIRE);
    if (tx >= len || (tx & 15u))
        return -EINVAL;
    uint32_t avail = (tx + len - rx) % len;
    if (avail == 0)
        return -EAGAIN;
    if (avail < ARGO_MSG_HEADER_SIZE)
        return -EINVAL;
    /* rx and len are multiples of 16: the header never wraps. */
    guest_memcpy(h, &r->ring[rx], ARGO_MSG_HEADER_SIZE);
    if (h->len < ARGO_MSG_HEADER_SIZE || h->len > avail)
        return -EINVAL;
    *rxp = rx;
    return 0;
}

/* Moves rx_ptr past the message at rx of total length mlen. Release: our
 * reads of it are done before the VMM may reuse the space. */
static void ring_advance(struct argo_ring *r, uint32_t len, uint32_t rx, uint32_t mlen)
{
    uint32_t next = rx + ((mlen + 15u) & ~15u);
    if (next >= len)
        next -= len;
    __atomic_store_n(&r->rx_ptr, next, __ATOMIC_RELEASE);
}

/* Throws away everything in a ring (used when it holds garbage). */
static void ring_flush(struct argo_ring *r, uint32_t len)
{
    uint32_t tx = __atomic_load_n(&r->tx_ptr, __ATOMIC_ACQUIRE);
    if (tx >= len || (tx & 15u))
        tx = 0;
    __atomic_store_n(&r->rx_ptr, tx, __ATOMIC_RELEASE);
}

/* The first min(payload, n) bytes of the payload at rx; the rest zeroed. */
static void ring_payload(const struct argo_ring *r, uint32_t len, uint32_t rx, uint32_t plen, uint8_t *dst,
                         uint32_t n)
{
    guest_memset(dst, 0, n);
    ring_read(r, len, rx + ARGO_MSG_HEADER_SIZE, dst, min_u32(plen, n));
}

/* ---- sending ---------------------------------------------------------------------- */

/* One small protocol message from src_port to (dom, port), as one batch
 * entry. timeout_us 0 never sleeps; otherwise it sleeps in the VMM for
 * room in the destination ring, up to timeout_us per sleep (an interrupt
 * ends a sleep; the send is then tried again). Returns argo_sendv's
 * result. */
static long send_msg(uint32_t src_port, uint16_t dom, uint32_t port, uint32_t type, const void *payload,
                     uint32_t plen, uint32_t timeout_us)
{
    struct argo_iov iov = { .iov_hnd = (uint64_t)(uintptr_t)payload, .iov_len = plen };
    struct argo_send_ent e = {
        .addr = { .src = { .aport = src_port, .domain_id = ARGO_DOMID_ANY },
                  .dst = { .aport = port, .domain_id = dom } },
        .iov_hnd = (uint64_t)(uintptr_t)&iov,
        .niov = 1,
        .message_type = type,
    };
    if (timeout_us == 0)
        return argo_sendv(&e.addr, &iov, 1, type);
    for (;;) {
        e.result = 0;
        long r = argo_sendv_batch_wait(&e, 1, 0, timeout_us);
        if (r < 0)
            return r;
        if (e.result != -EINTR)
            return e.result;
        poll_virqs();
    }
}

/* RESET(reason) from the control port to a connector's port; never waits
 * (its ring is fresh, and a hostile connector must not stall us). */
static void send_reset_ctrl(uint16_t dom, uint32_t port, uint32_t reason)
{
    uint8_t p[4];
    wr_le32(p, reason);
    if (send_msg(ARGO_STREAM_CTRL_PORT, dom, port, ARGO_STREAM_MSG_RESET, p, sizeof(p), 0) >= 0)
        stats.resets_sent++;
}

/* A send to the peer failed with r: the errors that mean its ring is gone
 * reset the connection. */
static long conn_send_failed(struct conn *c, long r)
{
    if (r == -ECONNREFUSED || r == -ESRCH) {
        c->rst = 1;
        return -ECONNRESET;
    }
    return r;
}

/* Sends len bytes as DATA, ARGO_MAX_BATCH chunks per hypercall. Blocking:
 * sleeps in the VMM for room. Returns the bytes sent if any, else the
 * error. */
static long send_data(struct conn *c, const uint8_t *buf, uint32_t len, int nonblock)
{
    uint32_t done = 0;
    while (done < len) {
        uint32_t n = 0, off = done;
        while (n < ARGO_MAX_BATCH && off < len) {
            uint32_t k = min_u32(c->chunk, len - off);
            batch_iovs[n] = (struct argo_iov){ .iov_hnd = (uint64_t)(uintptr_t)(buf + off), .iov_len = k };
            batch_ents[n] = (struct argo_send_ent){
                .addr = { .src = { .aport = c->port, .domain_id = ARGO_DOMID_ANY },
                          .dst = { .aport = c->peer_port, .domain_id = c->peer_dom } },
                .iov_hnd = (uint64_t)(uintptr_t)&batch_iovs[n],
                .niov = 1,
                .message_type = ARGO_STREAM_MSG_DATA,
            };
            off += k;
            n++;
        }
        long r = nonblock ? argo_sendv_batch(batch_ents, n, 0)
                          : argo_sendv_batch_wait(batch_ents, n, 0, ARGO_WAIT_FOREVER);
        if (r < 0)
            return done ? (long)done : r; /* the call itself was refused (a bad buffer) */
        if ((uint32_t)r > n)
            r = n;
        for (long i = 0; i < r; i++)
            done += batch_iovs[i].iov_len;
        if ((uint32_t)r == n)
            continue;
        long e = batch_ents[r].result;
        if (e == -EINTR) {
            poll_virqs();
            continue;
        }
        if (e == -EAGAIN) {
            if (nonblock)
                return done ? (long)done : -EAGAIN;
            continue; /* not expected without a timeout; just try again */
        }
        if (e == -EMSGSIZE && c->chunk > 1) {
            /* The peer's ring is smaller than it said: smaller chunks. */
            c->chunk /= 2;
            continue;
        }
        e = conn_send_failed(c, e);
        return done ? (long)done : e;
    }
    return (long)done;
}

/* ---- connection rings ------------------------------------------------------------- */

static int port_in_use(uint32_t port)
{
    if (port == ARGO_STREAM_CTRL_PORT)
        return 1;
    for (uint32_t i = 0; i < ARGO_STREAM_MAX_CONNS; i++)
        if (conns[i].state != C_FREE && conns[i].port == port)
            return 1;
    return 0;
}

static uint32_t take_port(void)
{
    for (;;) {
        uint32_t p = next_port;
        next_port = next_port == 0xFFFFFFFFu ? ARGO_STREAM_CTRL_PORT + 1 : next_port + 1;
        if (!port_in_use(p))
            return p;
    }
}

static struct conn *conn_alloc(void)
{
    for (uint32_t i = 0; i < ARGO_STREAM_MAX_CONNS; i++)
        if (conns[i].state == C_FREE)
            return &conns[i];
    return NULL;
}

/* Registers a fresh connection ring for partner on c (a free slot) and
 * puts c in state `state`. */
static long conn_setup(struct conn *c, uint16_t partner, uint32_t len, uint8_t state)
{
    struct memblk b;
    uint32_t pages = argo_ring_pages(len);
    if (mem_get(pages, &b) < 0)
        return -ENOMEM;
    struct argo_ring *ring = (struct argo_ring *)b.base;
    /* Reused memory: an empty ring (the VMM keeps a sane tx_ptr it finds),
     * polling from the first message on. */
    __atomic_store_n(&ring->rx_ptr, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&ring->tx_ptr, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&ring->rx_event, 0, __ATOMIC_RELAXED);
    argo_ring_set_polling(ring);

    long r = -EEXIST;
    uint32_t port = 0;
    /* FAIL_EXIST: never take over a ring the application registered at a
     * port in the stream range; try the next port instead (bounded). */
    for (int tries = 0; tries < 16 && r == -EEXIST; tries++) {
        port = take_port();
        struct argo_register_ring reg = { .aport = port, .partner_id = partner, .len = len };
        r = argo_register_ring(&reg, b.gfns, pages, ARGO_REGISTER_FLAG_EXT_HEADER | ARGO_REGISTER_FLAG_FAIL_EXIST);
    }
    if (r < 0) {
        mem_put(&b);
        return r;
    }
    guest_memset(c, 0, sizeof(*c));
    c->state = state;
    c->peer_dom = partner;
    c->port = port;
    c->ring = ring;
    c->ring_len = len;
    c->mem = b;
    return 0;
}

/* Unregisters c's ring (it may be gone already), keeps its memory for
 * reuse and frees the slot. */
static void conn_release(struct conn *c)
{
    struct argo_unregister_ring u = { .aport = c->port, .partner_id = c->peer_dom };
    argo_unregister_ring(&u);
    mem_put(&c->mem);
    guest_memset(c, 0, sizeof(*c));
}

/* Our ring holds garbage (only possible if our own memory was
 * overwritten): nothing in it can be trusted, so the connection is over. */
static void conn_corrupt(struct conn *c)
{
    ring_flush(c->ring, c->ring_len);
    stats.dropped++;
    c->rst = 1;
    c->rst_reason = ECONNRESET;
}

/*
 * Looks at the headers of the messages that arrived since the last look,
 * for a RESET from the peer: the connection is then over at once, and what
 * is still unread in the ring — data sent before the RESET included — is
 * dropped (docs/streams.md, "Closing"). A RESET too short, or from another
 * domain, is left for conn_pump to drop. Each header is looked at once.
 */
static void conn_scan(struct conn *c)
{
    uint32_t len = c->ring_len;
    uint32_t tx = __atomic_load_n(&c->ring->tx_ptr, __ATOMIC_ACQUIRE);
    uint32_t budget = len / ARGO_MSG_SLOT_SIZE + 1;
    if (c->rst)
        return;
    if (tx >= len || (tx & 15u)) {
        conn_corrupt(c);
        return;
    }
    while (c->scan != tx && budget-- > 0) {
        struct argo_ring_message_header h;
        uint32_t avail = (tx + len - c->scan) % len;
        if (avail < ARGO_MSG_HEADER_SIZE) {
            conn_corrupt(c);
            return;
        }
        guest_memcpy(&h, &c->ring->ring[c->scan], ARGO_MSG_HEADER_SIZE);
        if (h.len < ARGO_MSG_HEADER_SIZE || h.len > avail) {
            conn_corrupt(c);
            return;
        }
        uint32_t plen = h.len - ARGO_MSG_HEADER_SIZE;
        if (h.message_type == ARGO_STREAM_MSG_RESET && h.source.domain_id == c->peer_dom && plen >= 4) {
            /* From any port of the peer: the acceptor refuses from its
             * control port, and only the peer domain reaches this ring. */
            uint8_t p[4];
            ring_payload(c->ring, len, c->scan, plen, p, sizeof(p));
            c->rst = 1;
            c->rst_reason = rd_le32(p);
            stats.resets_received++;
            ring_flush(c->ring, len);
            argo_notify_if_needed(c->ring, len);
            return;
        }
        c->scan += (h.len + 15u) & ~15u;
        if (c->scan >= len)
            c->scan -= len;
    }
}

/* Applies the messages at the head of c's ring in order and copies up to
 * len bytes of DATA into buf. Stops at DATA it has no room for (setting
 * *data_left), at a reset, or when the ring is empty. Returns the bytes
 * copied. */
static uint32_t conn_pump(struct conn *c, uint8_t *buf, uint32_t len, int *data_left)
{
    uint32_t copied = 0;
    int consumed = 0;
    /* At most what the ring can hold: a peer that keeps sending cannot
     * keep one call here for ever. */
    uint32_t budget = c->ring_len / ARGO_MSG_SLOT_SIZE + 1;

    if (data_left)
        *data_left = 0;
    conn_scan(c);
    while (!c->rst && budget-- > 0) {
        struct argo_ring_message_header h;
        uint32_t rx;
        /* Only what conn_scan has seen: no RESET hides behind it. */
        if (__atomic_load_n(&c->ring->rx_ptr, __ATOMIC_RELAXED) == c->scan)
            break;
        long r = ring_head(c->ring, c->ring_len, &h, &rx);
        if (r == -EAGAIN)
            break;
        if (r < 0) {
            conn_corrupt(c);
            consumed = 1;
            break;
        }
        uint32_t plen = h.len - ARGO_MSG_HEADER_SIZE;
        int peer_dom = h.source.domain_id == c->peer_dom;
        int peer_port = peer_dom && c->state == C_OPEN && h.source.aport == c->peer_port;
        uint8_t p[8];

        switch (h.message_type) {
        case ARGO_STREAM_MSG_DATA:
            if (!peer_port || c->fin_rcvd || plen == 0)
                goto drop;
            if (copied == len) {
                if (data_left)
                    *data_left = 1;
                goto out;
            }
            {
                uint32_t n = min_u32(plen - c->rd_off, len - copied);
                ring_read(c->ring, c->ring_len, rx + ARGO_MSG_HEADER_SIZE + c->rd_off, buf + copied, n);
                copied += n;
                c->rd_off += n;
            }
            if (c->rd_off < plen)
                goto out; /* buf is full */
            c->rd_off = 0;
            break;
        case ARGO_STREAM_MSG_SHUTDOWN:
            if (!peer_port || plen < 4)
                goto drop;
            ring_payload(c->ring, c->ring_len, rx, plen, p, 4);
            if (rd_le32(p) & ARGO_STREAM_SHUT_FIN)
                c->fin_rcvd = 1;
            break;
        case ARGO_STREAM_MSG_RESET:
            goto drop; /* a good one was taken by conn_scan */
        case ARGO_STREAM_MSG_ACCEPT:
            if (c->state != C_CONNECTING || !peer_dom || plen < 8)
                goto drop;
            ring_payload(c->ring, c->ring_len, rx, plen, p, 8);
            if (!peer_ring_len_ok(rd_le32(p)))
                goto drop;
            c->peer_port = h.source.aport;
            c->chunk = chunk_for(rd_le32(p));
            c->state = C_OPEN;
            break;
        case ARGO_STREAM_MSG_CREDIT:
            break; /* defined, never needed on Argo: ignored */
        default:
            goto drop;
        }
        ring_advance(c->ring, c->ring_len, rx, h.len);
        consumed = 1;
        continue;
    drop:
        stats.dropped++;
        ring_advance(c->ring, c->ring_len, rx, h.len);
        consumed = 1;
    }
out:
    if (consumed)
        argo_notify_if_needed(c->ring, c->ring_len);
    return copied;
}

/* ---- the control ring -------------------------------------------------------------- */

static struct listener *listener_by_port(uint32_t port)
{
    for (uint32_t i = 0; i < ARGO_STREAM_MAX_LISTENERS; i++)
        if (listeners[i].used && listeners[i].port == port)
            return &listeners[i];
    return NULL;
}

static int same_connector(const struct pending *a, const struct argo_addr *src)
{
    return a->dom == src->domain_id && a->port == src->aport;
}

/*
 * A CONNECT for stream port `port`. No listener: refused. Otherwise it
 * joins the listener's backlog; with the backlog full it is held,
 * unanswered, in a small queue shared by all listeners (as a network
 * holds a SYN), and moves into the backlog as accept makes room, so a
 * burst of connections larger than the backlog — a host opening 64 at
 * once — is not refused while the application is taking them. Only with
 * that queue full too is it refused, as docs/streams.md says for a full
 * backlog. All bounded; a listener that never accepts fills only its
 * backlog and the shared queue, after which its connectors are refused.
 */
static void handle_connect(const struct argo_addr *src, const uint8_t *p)
{
    uint32_t port = rd_le32(p), ring_len = rd_le32(p + 4);
    if (!peer_ring_len_ok(ring_len)) {
        stats.dropped++;
        return;
    }
    struct listener *l = listener_by_port(port);
    if (!l) {
        send_reset_ctrl(src->domain_id, src->aport, ECONNREFUSED);
        return;
    }
    /* The same connector again: it is waiting already. */
    for (uint32_t i = 0; i < l->count; i++)
        if (same_connector(&l->q[i], src))
            goto dup;
    for (uint32_t i = 0; i < nhold; i++)
        if (same_connector(&hold[i].p, src))
            goto dup;
    struct pending e = { .dom = src->domain_id, .port = src->aport, .ring_len = ring_len };
    if (l->count < l->backlog)
        l->q[l->count++] = e;
    else if (nhold < HOLD_MAX)
        hold[nhold++] = (struct held){ .port = port, .p = e };
    else
        send_reset_ctrl(src->domain_id, src->aport, ECONNREFUSED);
    return;
dup:
    stats.dropped++;
}

/* Moves held CONNECTs for l into its backlog while it has room, oldest
 * first. */
static void unhold(struct listener *l)
{
    for (uint32_t i = 0; i < nhold && l->count < l->backlog;) {
        if (hold[i].port != l->port) {
            i++;
            continue;
        }
        l->q[l->count++] = hold[i].p;
        nhold--;
        guest_memmove(&hold[i], &hold[i + 1], (nhold - i) * sizeof(hold[0]));
    }
}

/* Takes every message out of the control ring: CONNECTs are queued in
 * their listener's backlog or refused; the rest is dropped. */
static void ctrl_drain(void)
{
    if (!ctrl)
        return;
    int consumed = 0;
    uint32_t budget = ctrl_len / ARGO_MSG_SLOT_SIZE + 1;
    while (budget-- > 0) {
        struct argo_ring_message_header h;
        uint32_t rx;
        long r = ring_head(ctrl, ctrl_len, &h, &rx);
        if (r == -EAGAIN)
            break;
        if (r < 0) {
            ring_flush(ctrl, ctrl_len);
            stats.dropped++;
            consumed = 1;
            break;
        }
        uint32_t plen = h.len - ARGO_MSG_HEADER_SIZE;
        if (h.message_type == ARGO_STREAM_MSG_CONNECT && plen >= 16) {
            uint8_t p[16];
            ring_payload(ctrl, ctrl_len, rx, plen, p, sizeof(p));
            handle_connect(&h.source, p);
        } else if (h.message_type != ARGO_STREAM_MSG_CREDIT) {
            stats.dropped++;
        }
        ring_advance(ctrl, ctrl_len, rx, h.len);
        consumed = 1;
    }
    if (consumed)
        argo_notify_if_needed(ctrl, ctrl_len);
}

/* ---- waiting ------------------------------------------------------------------------- */

/* Marks the connections whose rings are no longer registered; called
 * after argo_wait said -ENOENT for a set of rings. Each ring is asked
 * alone, without sleeping. The control ring too: only an unregister by
 * the application removes it, but if it did, waiting on it would say
 * -ENOENT for ever. */
static void find_gone(struct conn **cs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        struct argo_addr a = { .aport = cs[i]->port, .domain_id = cs[i]->peer_dom };
        if (argo_wait(&a, 1, 0) == -ENOENT)
            cs[i]->gone = 1;
    }
    struct argo_addr a = { .aport = ARGO_STREAM_CTRL_PORT, .domain_id = ctrl_partner };
    if (ctrl && argo_wait(&a, 1, 0) == -ENOENT)
        ctrl = NULL;
}

/* Sleeps in the VMM until c's ring or the control ring has a message, an
 * interrupt comes or timeout_us passes. 0 when there is something to look
 * at (or the ring went away: c->gone), -ETIMEDOUT, or another error. */
static long wait_conn(struct conn *c, uint32_t timeout_us)
{
    struct argo_addr a[2] = { { .aport = c->port, .domain_id = c->peer_dom },
                              { .aport = ARGO_STREAM_CTRL_PORT, .domain_id = ctrl_partner } };
    long r = argo_wait(a, ctrl ? 2 : 1, timeout_us);
    if (r >= 0)
        return 0;
    if (r == -EINTR) {
        poll_virqs();
        return 0;
    }
    if (r == -ENOENT) {
        find_gone(&c, 1);
        return 0;
    }
    return r;
}

/* ---- the API ---------------------------------------------------------------------------- */

long argo_stream_init(uint32_t ctrl_ring_len)
{
    if (inited)
        return 0;
    if (ctrl_ring_len == 0)
        ctrl_ring_len = CTRL_RING_DEFAULT;
    if (!ring_len_ok(ctrl_ring_len))
        return -EINVAL;
    struct memblk b;
    uint32_t pages = argo_ring_pages(ctrl_ring_len);
    if (mem_get(pages, &b) < 0)
        return -ENOMEM;
    struct argo_ring *ring = (struct argo_ring *)b.base;
    argo_ring_set_polling(ring);
    struct argo_register_ring reg = { .aport = ARGO_STREAM_CTRL_PORT, .partner_id = ARGO_DOMID_ANY,
                                      .len = ctrl_ring_len };
    long r = argo_register_ring(&reg, b.gfns, pages, ARGO_REGISTER_FLAG_EXT_HEADER);
    if (r == -EPERM) {
        /* The policy allows no wildcard rings here (wildcard = false):
         * then take connections from the host only, whose bridge needs
         * no wildcard ring (the domain has a stream socket). Without a
         * host endpoint there is no control ring at all: the domain can
         * still connect out, and listen says -EPERM. */
        reg.partner_id = ARGO_STREAM_HOST;
        r = argo_register_ring(&reg, b.gfns, pages, ARGO_REGISTER_FLAG_EXT_HEADER);
        if (r < 0)
            r = -EPERM;
    }
    if (r == -EPERM) {
        mem_put(&b);
    } else if (r < 0) {
        mem_put(&b);
        return r;
    } else {
        ctrl = ring;
        ctrl_len = ctrl_ring_len;
        ctrl_partner = reg.partner_id;
    }
    inited = 1;
    return 0;
}

long argo_stream_listen(uint32_t port, uint32_t backlog)
{
    if (!inited)
        return -EINVAL;
    if (!ctrl)
        return -EPERM;
    if (backlog < 1 || backlog > ARGO_STREAM_MAX_BACKLOG)
        return -EINVAL;
    if (listener_by_port(port))
        return -EADDRINUSE;
    for (uint32_t i = 0; i < ARGO_STREAM_MAX_LISTENERS; i++) {
        if (!listeners[i].used) {
            guest_memset(&listeners[i], 0, sizeof(listeners[i]));
            listeners[i].used = 1;
            listeners[i].port = port;
            listeners[i].backlog = backlog;
            return (long)i;
        }
    }
    return -EMFILE;
}

/* Takes the first connection of l's backlog: registers its ring and
 * answers ACCEPT. Returns the handle; -EAGAIN when the connector is gone
 * (the entry is dropped, try the next); -EMFILE (entry kept) or another
 * error of ours (the connector gets RESET(ENOBUFS)). */
static long accept_one(struct listener *l, uint32_t ring_len, uint16_t *peer_domid)
{
    struct pending e = l->q[0];
    struct conn *c = conn_alloc();
    if (!c)
        return -EMFILE;
    l->count--;
    guest_memmove(&l->q[0], &l->q[1], l->count * sizeof(l->q[0]));
    unhold(l);

    long r = conn_setup(c, e.dom, ring_len, C_OPEN);
    if (r == -ESRCH || r == -ECONNREFUSED)
        return -EAGAIN; /* the connector's domain is gone */
    if (r < 0) {
        send_reset_ctrl(e.dom, e.port, ENOBUFS);
        return r;
    }
    c->peer_port = e.port;
    c->chunk = chunk_for(e.ring_len);
    uint8_t p[8];
    wr_le32(p, ring_len);
    wr_le32(p + 4, 0);
    r = send_msg(c->port, e.dom, e.port, ARGO_STREAM_MSG_ACCEPT, p, sizeof(p), 0);
    if (r < 0) {
        /* It gave up (its ring is gone), or cannot be answered: as a
         * reset, before the application ever sees it. */
        conn_release(c);
        return -EAGAIN;
    }
    if (peer_domid)
        *peer_domid = e.dom;
    return conn_handle(c);
}

long argo_stream_accept(long listener, uint32_t ring_len, uint32_t timeout_us, uint16_t *peer_domid)
{
    struct listener *l = listener_of(listener);
    if (!l)
        return -EBADF;
    if (ring_len == 0)
        ring_len = ARGO_STREAM_DEFAULT_RING;
    if (!ring_len_ok(ring_len))
        return -EINVAL;
    int last = 0;
    for (;;) {
        ctrl_drain();
        while (l->count > 0) {
            long r = accept_one(l, ring_len, peer_domid);
            if (r != -EAGAIN)
                return r;
        }
        if (timeout_us == 0)
            return -EAGAIN;
        if (last)
            return -ETIMEDOUT;
        struct argo_addr a = { .aport = ARGO_STREAM_CTRL_PORT, .domain_id = ctrl_partner };
        long r = argo_wait(&a, 1, timeout_us);
        if (r == -EINTR)
            poll_virqs();
        else if (r == -ETIMEDOUT)
            last = 1; /* one more look, then give up */
        else if (r < 0)
            return r;
    }
}

/* How a RESET answering a CONNECT reads to the connector. */
static long refusal(uint32_t reason)
{
    switch (reason) {
    case ECONNREFUSED: return -ECONNREFUSED;
    case ENOBUFS: return -ENOBUFS;
    case ETIMEDOUT: return -ETIMEDOUT;
    default: return -ECONNRESET;
    }
}

long argo_stream_connect(uint16_t domid, uint32_t port, uint32_t ring_len, uint32_t timeout_us)
{
    if (!inited)
        return -EINVAL;
    if (ring_len == 0)
        ring_len = ARGO_STREAM_DEFAULT_RING;
    if (!ring_len_ok(ring_len))
        return -EINVAL;
    struct conn *c = conn_alloc();
    if (!c)
        return -EMFILE;
    long r = conn_setup(c, domid, ring_len, C_CONNECTING);
    if (r < 0)
        return r;

    uint8_t p[16];
    wr_le32(p, port);
    wr_le32(p + 4, ring_len);
    wr_le32(p + 8, 0);
    wr_le32(p + 12, 0);
    /* The acceptor's control ring may be full for a moment: wait for room
     * as for anything else (0 = only try). */
    r = send_msg(c->port, domid, ARGO_STREAM_CTRL_PORT, ARGO_STREAM_MSG_CONNECT, p, sizeof(p), timeout_us);
    if (r < 0) {
        conn_release(c);
        /* -ECONNREFUSED: no control ring there, nobody listens. */
        return r == -EAGAIN ? -ETIMEDOUT : r;
    }

    int last = 0;
    for (;;) {
        ctrl_drain();
        conn_pump(c, NULL, 0, NULL);
        if (c->state == C_OPEN)
            return conn_handle(c); /* a RESET right behind the ACCEPT shows in the first recv */
        if (c->rst || c->gone || last || timeout_us == 0) {
            long e = c->rst ? refusal(c->rst_reason) : c->gone ? -ECONNRESET : -ETIMEDOUT;
            conn_release(c);
            return e;
        }
        r = wait_conn(c, timeout_us);
        if (r == -ETIMEDOUT)
            last = 1;
        else if (r < 0) {
            conn_release(c);
            return r;
        }
    }
}

long argo_stream_send(long conn, const void *buf, uint32_t len, uint32_t flags)
{
    struct conn *c = conn_of(conn);
    if (!c)
        return -EBADF;
    conn_scan(c); /* a RESET waiting in our ring ends the connection now */
    if (c->rst)
        return -ECONNRESET;
    if (c->fin_sent)
        return -EPIPE;
    if (len == 0)
        return 0;
    if (!buf)
        return -EFAULT;
    return send_data(c, buf, len, (flags & ARGO_STREAM_NONBLOCK) != 0);
}

long argo_stream_recv(long conn, void *buf, uint32_t len, uint32_t flags)
{
    struct conn *c = conn_of(conn);
    if (!c)
        return -EBADF;
    if (len > 0 && !buf)
        return -EFAULT;
    for (;;) {
        uint32_t n = conn_pump(c, buf, len, NULL);
        if (n > 0)
            return (long)n;
        if (c->rst)
            return -ECONNRESET;
        if (c->fin_rcvd || len == 0)
            return 0;
        if (c->gone) {
            /* The ring went away and what it held has been read: the
             * peer's domain ended without a FIN. */
            c->rst = 1;
            return -ECONNRESET;
        }
        if (flags & ARGO_STREAM_NONBLOCK)
            return -EAGAIN;
        ctrl_drain();
        long r = wait_conn(c, ARGO_WAIT_FOREVER);
        if (r < 0)
            return r;
    }
}

long argo_stream_shutdown(long conn)
{
    struct conn *c = conn_of(conn);
    if (!c)
        return -EBADF;
    if (c->rst)
        return -ECONNRESET;
    if (c->fin_sent)
        return 0;
    uint8_t p[4];
    wr_le32(p, ARGO_STREAM_SHUT_FIN);
    long r = send_msg(c->port, c->peer_dom, c->peer_port, ARGO_STREAM_MSG_SHUTDOWN, p, sizeof(p),
                      ARGO_WAIT_FOREVER);
    if (r < 0)
        return conn_send_failed(c, r);
    c->fin_sent = 1;
    return 0;
}

long argo_stream_close(long handle)
{
    struct listener *l = listener_of(handle);
    if (l) {
        /* Queued connectors, and those still in the control ring, are
         * refused: nobody will accept them now. */
        ctrl_drain();
        for (uint32_t i = 0; i < l->count; i++)
            send_reset_ctrl(l->q[i].dom, l->q[i].port, ECONNREFUSED);
        for (uint32_t i = 0; i < nhold;) {
            if (hold[i].port != l->port) {
                i++;
                continue;
            }
            send_reset_ctrl(hold[i].p.dom, hold[i].p.port, ECONNREFUSED);
            nhold--;
            guest_memmove(&hold[i], &hold[i + 1], (nhold - i) * sizeof(hold[0]));
        }
        guest_memset(l, 0, sizeof(*l));
        return 0;
    }
    struct conn *c = conn_of(handle);
    if (!c)
        return -EBADF;
    if (!c->rst && !c->fin_sent) {
        uint8_t p[4];
        wr_le32(p, ARGO_STREAM_SHUT_FIN);
        send_msg(c->port, c->peer_dom, c->peer_port, ARGO_STREAM_MSG_SHUTDOWN, p, sizeof(p), CLOSE_LINGER_US);
    }
    conn_release(c);
    return 0;
}

/* What entry f is ready for now (revents). */
static uint16_t poll_one(const struct argo_stream_pollfd *f)
{
    struct listener *l = listener_of(f->handle);
    if (l)
        return l->count > 0 ? (f->events & ARGO_STREAM_POLLIN) : 0;
    struct conn *c = conn_of(f->handle);
    int data = 0;
    conn_pump(c, NULL, 0, &data);
    if (!c->rst && !c->fin_rcvd && !data && c->gone)
        c->rst = 1; /* gone and drained: as recv would conclude */
    uint16_t rev = 0;
    if (c->rst || (c->fin_rcvd && !data))
        rev |= ARGO_STREAM_POLLHUP;
    if (data || rev)
        rev |= f->events & ARGO_STREAM_POLLIN;
    return rev;
}

/* More rings than one argo_wait takes: arm each for a VIRQ on its next
 * message and halt. Never sleeps while a ring already has data or a
 * connection ring has gone. */
static void poll_halt(struct conn **cs, uint32_t n)
{
    /* argo_wait, 32 rings at a time and without sleeping, to see rings
     * that went away (a halt hears of that from no VIRQ). */
    for (uint32_t i = 0; i < n; i += ARGO_MAX_WAIT_RINGS) {
        struct argo_addr a[ARGO_MAX_WAIT_RINGS];
        uint32_t k = min_u32(ARGO_MAX_WAIT_RINGS, n - i);
        for (uint32_t j = 0; j < k; j++)
            a[j] = (struct argo_addr){ .aport = cs[i + j]->port, .domain_id = cs[i + j]->peer_dom };
        long r = argo_wait(a, k, 0);
        if (r == -ENOENT) {
            find_gone(cs + i, k);
            return;
        }
        if (r >= 0)
            return;
    }
    int ready = ctrl && argo_ring_arm(ctrl, ctrl_len, 0);
    for (uint32_t i = 0; i < n && !ready; i++)
        ready = argo_ring_arm(cs[i]->ring, cs[i]->ring_len, 0);
    if (!ready)
        guest_wait_for_interrupt();
    /* Back to no VIRQs: the other waits are argo_wait. */
    if (ctrl)
        argo_ring_set_polling(ctrl);
    for (uint32_t i = 0; i < n; i++)
        argo_ring_set_polling(cs[i]->ring);
}

long argo_stream_poll(struct argo_stream_pollfd *fds, uint32_t n, uint32_t timeout_us)
{
    if (!inited)
        return -EINVAL;
    if (n > 0 && !fds)
        return -EFAULT;
    for (uint32_t i = 0; i < n; i++)
        if (fds[i].handle >= 0 && !listener_of(fds[i].handle) && !conn_of(fds[i].handle))
            return -EBADF;
    int last = 0;
    for (;;) {
        ctrl_drain();
        long ready = 0;
        for (uint32_t i = 0; i < n; i++) {
            fds[i].revents = fds[i].handle >= 0 ? poll_one(&fds[i]) : 0;
            if (fds[i].revents)
                ready++;
        }
        if (ready || timeout_us == 0 || last)
            return ready;

        /* The rings to wait on, each once: the connections polled (none
         * of them reset or gone, or it would be ready) and the control
         * ring, for listeners and to answer connectors meanwhile. */
        static struct conn *cs[ARGO_STREAM_MAX_CONNS];
        uint32_t nc = 0;
        for (uint32_t i = 0; i < n; i++) {
            struct conn *c = fds[i].handle >= 0 ? conn_of(fds[i].handle) : NULL;
            if (c && !c->in_wait) {
                c->in_wait = 1;
                cs[nc++] = c;
            }
        }
        for (uint32_t i = 0; i < nc; i++)
            cs[i]->in_wait = 0;
        uint32_t total = nc + (ctrl ? 1 : 0);
        if (total == 0)
            return 0; /* nothing could ever become ready */
        if (total > ARGO_MAX_WAIT_RINGS) {
            poll_halt(cs, nc);
            continue;
        }
        struct argo_addr a[ARGO_MAX_WAIT_RINGS];
        for (uint32_t i = 0; i < nc; i++)
            a[i] = (struct argo_addr){ .aport = cs[i]->port, .domain_id = cs[i]->peer_dom };
        if (ctrl)
            a[nc] = (struct argo_addr){ .aport = ARGO_STREAM_CTRL_PORT, .domain_id = ctrl_partner };
        long r = argo_wait(a, total, timeout_us);
        if (r == -EINTR)
            poll_virqs();
        else if (r == -ENOENT)
            find_gone(cs, nc);
        else if (r == -ETIMEDOUT)
            last = 1; /* one more look, then report nothing */
        else if (r < 0)
            return r;
    }
}

void argo_stream_get_stats(struct argo_stream_stats *st)
{
    if (st)
        *st = stats;
}
