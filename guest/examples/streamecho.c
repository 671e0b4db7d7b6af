/*
 * streamecho: Argo streams (argo_stream.h, docs/streams.md) between
 * domains and with the host.
 *
 * role=server (default) listens on `port` and echoes every byte of every
 * connection back, many connections at once (argo_stream_poll over the
 * listener and up to ARGO_STREAM_MAX_CONNS connections). Once listening
 * it prints
 *     streamecho: listening on port <P>
 * A connection at end of file has had all its bytes echoed, so it is
 * closed then; a reset one is closed too. With conns=<n> it returns 0
 * after n connections have ended, printing
 *     streamecho: served <n> connections, <bytes> bytes
 *     streamecho: stats: dropped <d>, resets sent <s>, received <r>
 * The echo is a blocking send: a client that sends without ever reading
 * holds the server up once its own ring is full (there is no POLLOUT to
 * wait for); the client role below never does that.
 *
 * role=client connects to `peer` on `port`, sends `bytes` bytes of a
 * pseudo-random pattern (one per connection) in pieces of at most `chunk`,
 * and reads the echo back meanwhile, checking every byte; it never has
 * more than half its own ring unanswered, so neither side can fill the
 * other's ring while that one waits to send. Then it shuts down, reads
 * end of file and closes. It does this `conns` times, each time with
 * `parallel` connections open at once (exchanged one after the other),
 * and prints
 *     streamecho: client ok <total bytes> bytes
 * With expect=refused (client, source, hostclient) the connect must fail
 * with ECONNREFUSED: it prints
 *     streamecho: connect failed: ECONNREFUSED
 * and returns 0 (1 if the connect succeeds or fails otherwise).
 *
 * role=source connects to `peer` on `port`, sends `bytes` bytes (the
 * pattern, unless verify=0) and closes, printing
 *     streamecho: source sent <n> bytes
 * With crash_after=<n> it stops after n bytes instead, prints
 *     streamecho: source crashing after <n> bytes
 * and crashes the domain on purpose (ud2), so the peer sees a domain end
 * without a FIN.
 *
 * role=sink listens on `port` (printing the listening line), takes `conns`
 * connections (default 1) one after the other and reads each to end of
 * file, checking the source's pattern (verify=0: not), then prints
 *     streamecho: sink got <n> bytes in <cycles> cycles
 * (TSC cycles from accept to end of file). A reset prints
 *     streamecho: sink reset after <n> bytes
 * which is success with expect=reset and failure otherwise (and end of
 * file is a failure with expect=reset).
 *
 * role=hostclient connects to the host (domain 0) on `port`, sends the
 * line "hello from domain <id>\n", reads the reply up to a newline or end
 * of file (at most 255 bytes) and prints
 *     streamecho: host replied: <reply without the newline>
 *
 * Any failure prints "streamecho: <what> failed: <errno name>" (or what
 * was wrong) and returns 1.
 *
 * Listening for other domains needs a wildcard control ring: wildcard =
 * true in the domain's [domain.argo]; without it a domain with a stream
 * socket still takes connections from the host. send_to, if given, must
 * allow the peer.
 *
 * Params:
 *   role=server|client|source|sink|hostclient   (default server)
 *   port=<n>          stream port (default 5000)
 *   peer=<domid>      client, source: the domain to connect to (required)
 *   ring=<bytes>      data length of this side's connection rings, a
 *                     multiple of 16 (default 262080)
 *   conns=<n>         server: connections to serve before exiting (default
 *                     0: for ever); client: rounds of connections (default
 *                     1); sink: connections to take (default 1)
 *   parallel=<n>      client: connections open at once per round (default 1)
 *   bytes=<n>         client: bytes per connection; source: bytes to send
 *                     (default 1048576)
 *   chunk=<n>         client, source: bytes per send call (default 65536)
 *   timeout=<us>      client, source, hostclient: connect timeout (default:
 *                     none)
 *   expect=refused    client, source, hostclient: the connect must be refused
 *   expect=reset      sink: the connection must be reset
 *   crash_after=<n>   source: crash after sending n bytes
 *   verify=0          source: do not write the pattern; sink: do not check it
 */
#include <argo_stream.h>
#include <guest.h>

#define BUF_SIZE (64u * 1024u)

static uint32_t ring_len;      /* 0: the SDK's default */
static uint32_t conn_timeout;

/* ---- the pattern ------------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Byte `pos` of stream `seed`: one 64-bit hash per 8 bytes. */
static uint64_t pat_word(uint64_t seed, uint64_t pos)
{
    return mix((pos >> 3) ^ (seed << 40));
}

static void fill(uint8_t *b, uint32_t n, uint64_t seed, uint64_t off)
{
    for (uint32_t i = 0; i < n;) {
        uint64_t pos = off + i;
        uint64_t w = pat_word(seed, pos);
        for (unsigned s = pos & 7; s < 8 && i < n; s++, i++)
            b[i] = (uint8_t)(w >> (s * 8));
    }
}

/* Index of the first byte of b that is not the pattern, or -1. */
static long check(const uint8_t *b, uint32_t n, uint64_t seed, uint64_t off)
{
    for (uint32_t i = 0; i < n;) {
        uint64_t pos = off + i;
        uint64_t w = pat_word(seed, pos);
        for (unsigned s = pos & 7; s < 8 && i < n; s++, i++)
            if (b[i] != (uint8_t)(w >> (s * 8)))
                return (long)i;
    }
    return -1;
}

/* ---- helpers ------------------------------------------------------------------ */

static int fail(const char *what, long r)
{
    guest_printf("streamecho: %s failed: %s\n", what, guest_errno_name(r));
    return 1;
}

static void *alloc_bytes(uint64_t n)
{
    return guest_alloc_pages((n + GUEST_PAGE_SIZE - 1) / GUEST_PAGE_SIZE);
}

/* A blocking send returns less than asked only when it then fails; go on
 * until all is sent or it does. */
static long send_all(long h, const uint8_t *p, uint32_t n)
{
    uint32_t done = 0;
    while (done < n) {
        long r = argo_stream_send(h, p + done, n - done, 0);
        if (r < 0)
            return r;
        done += (uint32_t)r;
    }
    return (long)done;
}

static int need_peer(uint16_t *peer)
{
    if (!guest_param("peer")) {
        guest_puts("streamecho: param peer=<domid> is required for this role");
        return 1;
    }
    *peer = (uint16_t)guest_param_u64("peer", 0);
    return 0;
}

/* Connects, or with expect=refused checks that the connect is refused:
 * returns the handle, or -1 with *rc the exit status. */
static long do_connect(uint16_t peer, uint32_t port, int *rc)
{
    const char *expect = guest_param("expect");
    int want_refused = expect && guest_strcmp(expect, "refused") == 0;
    long h = argo_stream_connect(peer, port, ring_len, conn_timeout);
    if (h >= 0 && want_refused) {
        guest_puts("streamecho: connected, but expected a refusal");
        argo_stream_close(h);
        *rc = 1;
        return -1;
    }
    if (h < 0) {
        fail("connect", h);
        *rc = want_refused && h == -ECONNREFUSED ? 0 : 1;
        return -1;
    }
    return h;
}

static void print_stats(void)
{
    struct argo_stream_stats st;
    argo_stream_get_stats(&st);
    guest_printf("streamecho: stats: dropped %lu, resets sent %lu, received %lu\n", (unsigned long)st.dropped,
                 (unsigned long)st.resets_sent, (unsigned long)st.resets_received);
}

/* ---- server ---------------------------------------------------------------------- */

static int run_server(uint32_t port)
{
    uint64_t limit = guest_param_u64("conns", 0);
    long handles[ARGO_STREAM_MAX_CONNS];
    static struct argo_stream_pollfd fds[1 + ARGO_STREAM_MAX_CONNS];
    uint32_t nh = 0;
    uint64_t ended = 0, bytes = 0;
    uint8_t *buf = alloc_bytes(BUF_SIZE);
    if (!buf)
        return fail("allocation", -ENOMEM);

    long l = argo_stream_listen(port, ARGO_STREAM_MAX_BACKLOG);
    if (l < 0)
        return fail("listen", l);
    guest_printf("streamecho: listening on port %u\n", port);

    for (;;) {
        uint32_t n = 0;
        /* With the table full the listener is left out: its backlog would
         * make every poll return at once. */
        if (nh < ARGO_STREAM_MAX_CONNS)
            fds[n++] = (struct argo_stream_pollfd){ .handle = l, .events = ARGO_STREAM_POLLIN };
        for (uint32_t i = 0; i < nh; i++)
            fds[n++] = (struct argo_stream_pollfd){ .handle = handles[i], .events = ARGO_STREAM_POLLIN };
        long r = argo_stream_poll(fds, n, ARGO_STREAM_FOREVER);
        if (r < 0)
            return fail("poll", r);

        /* Connections first, the listener last: a handle closed here may
         * be handed out again by accept. */
        int accept_now = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (!fds[i].revents)
                continue;
            if (fds[i].handle == l) {
                accept_now = 1;
                continue;
            }
            long h = fds[i].handle;
            long got = argo_stream_recv(h, buf, BUF_SIZE, ARGO_STREAM_NONBLOCK);
            if (got == -EAGAIN)
                continue;
            if (got > 0) {
                long s = send_all(h, buf, (uint32_t)got);
                if (s >= 0) {
                    bytes += (uint64_t)got;
                    continue;
                }
                got = s;
            }
            if (got < 0 && got != -ECONNRESET)
                guest_printf("streamecho: connection %ld failed: %s\n", h, guest_errno_name(got));
            /* End of file (everything echoed already) or an error. */
            argo_stream_close(h);
            ended++;
            for (uint32_t k = 0; k < nh; k++) {
                if (handles[k] == h) {
                    handles[k] = handles[--nh];
                    break;
                }
            }
        }
        while (accept_now && nh < ARGO_STREAM_MAX_CONNS) {
            long h = argo_stream_accept(l, ring_len, 0, NULL);
            if (h == -EAGAIN)
                break;
            if (h < 0)
                return fail("accept", h);
            handles[nh++] = h;
        }
        if (limit && ended >= limit) {
            guest_printf("streamecho: served %lu connections, %lu bytes\n", (unsigned long)ended,
                         (unsigned long)bytes);
            print_stats();
            return 0;
        }
    }
}

/* ---- client ------------------------------------------------------------------------ */

/* Sends `total` bytes of stream `seed` on h and reads the echo back,
 * with at most `window` bytes sent and not yet echoed. */
static int exchange(long h, uint64_t seed, uint64_t total, uint32_t chunk, uint32_t window, uint8_t *tx,
                    uint8_t *rx)
{
    uint64_t sent = 0, recvd = 0;
    while (recvd < total) {
        uint64_t out = sent - recvd;
        if (sent < total && out < window) {
            uint32_t n = chunk;
            if (n > total - sent)
                n = (uint32_t)(total - sent);
            if (n > window - out)
                n = (uint32_t)(window - out);
            fill(tx, n, seed, sent);
            long r = send_all(h, tx, n);
            if (r < 0)
                return fail("send", r);
            sent += n;
            out += n;
        }
        if (out == 0)
            continue;
        /* Block for the echo only when nothing more may be sent. */
        uint32_t flags = sent < total && out < window ? ARGO_STREAM_NONBLOCK : 0;
        uint32_t want = out < BUF_SIZE ? (uint32_t)out : BUF_SIZE;
        long r = argo_stream_recv(h, rx, want, flags);
        if (r == -EAGAIN)
            continue;
        if (r == 0) {
            guest_printf("streamecho: unexpected end of file after %lu of %lu bytes\n", (unsigned long)recvd,
                         (unsigned long)total);
            return 1;
        }
        if (r < 0)
            return fail("recv", r);
        long bad = check(rx, (uint32_t)r, seed, recvd);
        if (bad >= 0) {
            guest_printf("streamecho: echo byte %lu is wrong\n", (unsigned long)(recvd + (uint64_t)bad));
            return 1;
        }
        recvd += (uint64_t)r;
    }
    return 0;
}

/* Half-close, the peer's end of file, close. */
static int finish(long h, uint8_t *rx)
{
    long r = argo_stream_shutdown(h);
    if (r < 0)
        return fail("shutdown", r);
    r = argo_stream_recv(h, rx, 1, 0);
    if (r > 0) {
        guest_puts("streamecho: more bytes than were sent came back");
        return 1;
    }
    if (r < 0)
        return fail("recv at end", r);
    r = argo_stream_close(h);
    if (r < 0)
        return fail("close", r);
    return 0;
}

static int run_client(uint32_t port)
{
    uint16_t peer;
    if (need_peer(&peer))
        return 1;
    uint64_t rounds = guest_param_u64("conns", 1);
    uint64_t parallel = guest_param_u64("parallel", 1);
    uint64_t bytes = guest_param_u64("bytes", 1 << 20);
    uint32_t chunk = (uint32_t)guest_param_u64("chunk", 64 * 1024);
    uint32_t window = (ring_len ? ring_len : ARGO_STREAM_DEFAULT_RING) / 2;
    if (chunk == 0 || parallel == 0 || parallel > ARGO_STREAM_MAX_CONNS || window == 0) {
        guest_puts("streamecho: bad chunk, parallel or ring");
        return 1;
    }
    uint8_t *tx = alloc_bytes(chunk), *rx = alloc_bytes(BUF_SIZE);
    if (!tx || !rx)
        return fail("allocation", -ENOMEM);

    long hs[ARGO_STREAM_MAX_CONNS];
    uint64_t total = 0;
    for (uint64_t round = 0; round < rounds; round++) {
        for (uint64_t i = 0; i < parallel; i++) {
            int rc;
            long h = do_connect(peer, port, &rc);
            if (h < 0)
                return rc;
            hs[i] = h;
        }
        for (uint64_t i = 0; i < parallel; i++) {
            uint64_t seed = (uint64_t)guest_domid() << 32 | (round * parallel + i + 1);
            if (exchange(hs[i], seed, bytes, chunk, window, tx, rx))
                return 1;
            total += bytes;
        }
        for (uint64_t i = 0; i < parallel; i++)
            if (finish(hs[i], rx))
                return 1;
    }
    guest_printf("streamecho: client ok %lu bytes\n", (unsigned long)total);
    return 0;
}

/* ---- source and sink ----------------------------------------------------------------- */

static int run_source(uint32_t port)
{
    uint16_t peer;
    if (need_peer(&peer))
        return 1;
    uint64_t bytes = guest_param_u64("bytes", 1 << 20);
    uint32_t chunk = (uint32_t)guest_param_u64("chunk", 64 * 1024);
    uint64_t crash_after = guest_param_u64("crash_after", 0);
    int verify = guest_param_u64("verify", 1) != 0;
    if (chunk == 0) {
        guest_puts("streamecho: bad chunk");
        return 1;
    }
    uint8_t *tx = alloc_bytes(chunk);
    if (!tx)
        return fail("allocation", -ENOMEM);
    int rc;
    long h = do_connect(peer, port, &rc);
    if (h < 0)
        return rc;
    uint64_t limit = crash_after && crash_after < bytes ? crash_after : bytes;
    uint64_t sent = 0;
    while (sent < limit) {
        uint32_t n = limit - sent < chunk ? (uint32_t)(limit - sent) : chunk;
        if (verify)
            fill(tx, n, 0, sent);
        long r = send_all(h, tx, n);
        if (r < 0)
            return fail("send", r);
        sent += n;
    }
    if (crash_after) {
        guest_printf("streamecho: source crashing after %lu bytes\n", (unsigned long)sent);
        __asm__ volatile("ud2" : : : "memory");
    }
    long r = argo_stream_close(h);
    if (r < 0)
        return fail("close", r);
    guest_printf("streamecho: source sent %lu bytes\n", (unsigned long)sent);
    return 0;
}

static int run_sink(uint32_t port)
{
    uint64_t conns = guest_param_u64("conns", 1);
    int verify = guest_param_u64("verify", 1) != 0;
    const char *expect = guest_param("expect");
    int want_reset = expect && guest_strcmp(expect, "reset") == 0;
    uint8_t *buf = alloc_bytes(BUF_SIZE);
    if (!buf)
        return fail("allocation", -ENOMEM);
    long l = argo_stream_listen(port, 1);
    if (l < 0)
        return fail("listen", l);
    guest_printf("streamecho: listening on port %u\n", port);

    for (uint64_t k = 0; k < conns; k++) {
        long h = argo_stream_accept(l, ring_len, ARGO_STREAM_FOREVER, NULL);
        if (h < 0)
            return fail("accept", h);
        uint64_t t0 = guest_rdtsc(), got = 0;
        for (;;) {
            long r = argo_stream_recv(h, buf, BUF_SIZE, 0);
            if (r == 0)
                break;
            if (r == -ECONNRESET) {
                guest_printf("streamecho: sink reset after %lu bytes\n", (unsigned long)got);
                argo_stream_close(h);
                if (!want_reset)
                    return 1;
                goto next;
            }
            if (r < 0)
                return fail("recv", r);
            if (verify) {
                long bad = check(buf, (uint32_t)r, 0, got);
                if (bad >= 0) {
                    guest_printf("streamecho: byte %lu is wrong\n", (unsigned long)(got + (uint64_t)bad));
                    return 1;
                }
            }
            got += (uint64_t)r;
        }
        guest_printf("streamecho: sink got %lu bytes in %lu cycles\n", (unsigned long)got,
                     (unsigned long)(guest_rdtsc() - t0));
        argo_stream_close(h);
        if (want_reset) {
            guest_puts("streamecho: expected a reset, got end of file");
            return 1;
        }
    next:;
    }
    return 0;
}

/* ---- host client ----------------------------------------------------------------------- */

static int run_hostclient(uint32_t port)
{
    char line[64], reply[256];
    int rc;
    long h = do_connect(ARGO_STREAM_HOST, port, &rc);
    if (h < 0)
        return rc;
    int n = guest_snprintf(line, sizeof(line), "hello from domain %u\n", guest_domid());
    long r = send_all(h, (const uint8_t *)line, (uint32_t)n);
    if (r < 0)
        return fail("send", r);
    uint32_t got = 0;
    int eol = 0;
    while (!eol && got < sizeof(reply) - 1) {
        r = argo_stream_recv(h, reply + got, sizeof(reply) - 1 - got, 0);
        if (r < 0)
            return fail("recv", r);
        if (r == 0)
            break;
        for (long i = 0; i < r && !eol; i++)
            eol = reply[got + i] == '\n';
        got += (uint32_t)r;
    }
    reply[got] = 0;
    for (uint32_t i = 0; i < got; i++) {
        if (reply[i] == '\n') {
            reply[i] = 0;
            break;
        }
    }
    guest_printf("streamecho: host replied: %s\n", reply);
    r = argo_stream_close(h);
    if (r < 0)
        return fail("close", r);
    return 0;
}

int guest_main(void)
{
    const char *role = guest_param("role");
    uint32_t port = (uint32_t)guest_param_u64("port", 5000);
    ring_len = (uint32_t)guest_param_u64("ring", 0);
    conn_timeout = (uint32_t)guest_param_u64("timeout", ARGO_STREAM_FOREVER);

    long r = argo_stream_init(0);
    if (r < 0)
        return fail("init", r);
    if (!role || guest_strcmp(role, "server") == 0)
        return run_server(port);
    if (guest_strcmp(role, "client") == 0)
        return run_client(port);
    if (guest_strcmp(role, "source") == 0)
        return run_source(port);
    if (guest_strcmp(role, "sink") == 0)
        return run_sink(port);
    if (guest_strcmp(role, "hostclient") == 0)
        return run_hostclient(port);
    guest_printf("streamecho: unknown role %s\n", role);
    return 1;
}
