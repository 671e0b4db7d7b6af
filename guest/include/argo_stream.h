/*
 * argo_stream.h - reliable byte streams over Argo for argovisor guests.
 *
 * Connections between domains (and with the host, domain 0, through the
 * VMM's socket bridge) made of ordinary Argo messages: the wire format,
 * the flow control and the close and reset rules are in docs/streams.md.
 * Each connection has an Argo ring of its own on each side, so one slow or
 * hostile peer never holds up another connection's data.
 *
 * The calls are for one vCPU (the firmware runs guest_main on vCPU 0);
 * they are not reentrant. Handles are small integers >= 0; every call
 * returns a negative errno on failure:
 *   -EBADF        not a handle of the right kind
 *   -EMFILE       the table of listeners or connections is full
 *   -EADDRINUSE   the stream port has a listener already
 *   -ECONNREFUSED nobody listens on the port, or the backlog was full
 *   -ECONNRESET   the peer reset the connection, closed it while we were
 *                 sending, or its domain ended
 *   -EPIPE        send after argo_stream_shutdown
 *   -ETIMEDOUT    the timeout passed
 *   -EAGAIN       ARGO_STREAM_NONBLOCK and nothing could be done now
 *   -EINVAL       a bad argument, or argo_stream_init not called yet
 *   other         an Argo error from the underlying hypercall
 *
 * Waiting never spins: blocked calls sleep in the VMM (argo_wait for data,
 * argo_sendv_batch_wait for ring space), or halt for a VIRQ when more
 * rings are watched than one argo_wait takes. While a call waits for a
 * message (recv, accept, connect, poll), the domain also answers CONNECTs
 * arriving on its control ring (queues or refuses them), so connectors
 * are not kept waiting by a domain that is busy in another call.
 *
 * A timeout_us bounds each sleep in the VMM: an interrupt, or traffic that
 * does not concern the call (a CONNECT for another listener), ends a
 * sleep early and the next one gets the full timeout again (the guest has
 * no clock to count the time already spent).
 *
 * Interrupts: the SDK never installs or changes the VIRQ handler. Its
 * rings raise no VIRQ (they are polling) except during the halt of
 * argo_stream_poll; a VIRQ that ends a wait (the wait returns -EINTR) is
 * handed to the application's handler, if one is set, through
 * guest_poll_virq. The handler must not call these functions.
 *
 * Memory comes from guest_alloc_pages; the ring memory of a closed
 * connection is kept and registered again for a later connection whose
 * ring fits in it, so a server taking connections for ever does not run
 * out.
 */
#ifndef ARGOVISOR_ARGO_STREAM_H
#define ARGOVISOR_ARGO_STREAM_H

#include <stdint.h>
#include "argo.h"

#define ARGO_STREAM_CTRL_PORT      0x80000000u  /* Argo port of the control ring */
#define ARGO_STREAM_HOST           0u           /* the host's domain id */

#define ARGO_STREAM_MSG_CONNECT    0x53540001u
#define ARGO_STREAM_MSG_ACCEPT     0x53540002u
#define ARGO_STREAM_MSG_DATA       0x53540003u
#define ARGO_STREAM_MSG_CREDIT     0x53540004u  /* defined, never sent (docs/streams.md) */
#define ARGO_STREAM_MSG_SHUTDOWN   0x53540005u
#define ARGO_STREAM_MSG_RESET      0x53540006u

#define ARGO_STREAM_SHUT_FIN       0x1u         /* SHUTDOWN flags */

#define ARGO_STREAM_MAX_LISTENERS  8
#define ARGO_STREAM_MAX_CONNS      64
#define ARGO_STREAM_MAX_BACKLOG    16
#define ARGO_STREAM_DEFAULT_RING   (256u * 1024u - 64u)  /* data length of a connection ring */
#define ARGO_STREAM_MAX_CHUNK      (256u * 1024u)        /* largest DATA payload sent */

#define ARGO_STREAM_NONBLOCK       0x1u         /* send/recv flags (accept: timeout 0) */
#define ARGO_STREAM_FOREVER        ARGO_WAIT_FOREVER

#ifndef EBADF
#define EBADF          9
#endif
#ifndef EMFILE
#define EMFILE         24
#endif
#ifndef EPIPE
#define EPIPE          32
#endif
#ifndef EADDRINUSE
#define EADDRINUSE     98
#endif
#ifndef ECONNRESET
#define ECONNRESET     104
#endif
#ifndef ENOBUFS
#define ENOBUFS        105
#endif
#ifndef ENOTCONN
#define ENOTCONN       107
#endif

/* Register the control ring (data length ctrl_ring_len; 0: 4032 bytes).
 * Call once before the other calls (they return -EINVAL until then; a
 * second call does nothing). The control ring takes CONNECTs from any
 * domain Argo's policy lets through, which needs wildcard rings
 * (wildcard = true); where the policy allows none it takes them from the
 * host only (a domain with a stream socket), and without a host endpoint
 * there is none: connecting out still works, argo_stream_listen returns
 * -EPERM. */
long argo_stream_init(uint32_t ctrl_ring_len);

/* Listen on stream port `port`, keeping at most `backlog` (1 ..
 * ARGO_STREAM_MAX_BACKLOG) connections waiting to be accepted. Returns a
 * listener handle. CONNECTs beyond the backlog are held unanswered, up to
 * ARGO_STREAM_MAX_CONNS for all listeners together, and join the backlog
 * as accept makes room (a burst larger than the backlog is not refused
 * while the application accepts); beyond that they are refused. */
long argo_stream_listen(uint32_t port, uint32_t backlog);

/* Take the next connection of a listener: registers the connection's ring
 * (data length ring_len, a multiple of 16; 0: ARGO_STREAM_DEFAULT_RING)
 * and answers ACCEPT. Waits up to timeout_us (ARGO_STREAM_FOREVER, or 0 =
 * only look: then -EAGAIN when there is none) for a CONNECT; -ETIMEDOUT
 * when the timeout passes. Connectors that gave up meanwhile are skipped.
 * Returns a connection handle; *peer_domid (may be NULL) gets the
 * connecting domain. */
long argo_stream_accept(long listener, uint32_t ring_len, uint32_t timeout_us, uint16_t *peer_domid);

/* Connect to the listener on stream port `port` of domain domid
 * (ARGO_STREAM_HOST: the host, which forwards to its Unix socket
 * PATH_port). Our ring has data length ring_len (a multiple of 16; 0:
 * ARGO_STREAM_DEFAULT_RING). Waits up to timeout_us for ACCEPT. Returns a
 * connection handle, or -ECONNREFUSED (nobody listens, or the backlog is
 * full), -ENOBUFS (the peer is over its budget), -ETIMEDOUT, -ECONNRESET
 * (the peer's domain ended), -ESRCH (no such domain), -EACCES (the policy
 * forbids sending there). */
long argo_stream_connect(uint16_t domid, uint32_t port, uint32_t ring_len, uint32_t timeout_us);

/* Send len bytes. Blocks until all are in the peer's ring (sleeping in the
 * VMM while it is full), unless flags has ARGO_STREAM_NONBLOCK: then
 * sends what fits now, in whole chunks (a quarter of the peer's ring at
 * most). Returns the bytes sent (> 0, or 0 for len 0); an error after
 * some bytes went returns those, and the next call the error. A peer that
 * stops reading without going away blocks a blocking send for ever: there
 * is no timeout here. */
long argo_stream_send(long conn, const void *buf, uint32_t len, uint32_t flags);

/* Receive up to len bytes. Blocks until at least one byte, end of file or
 * a reset, unless ARGO_STREAM_NONBLOCK (-EAGAIN when nothing is there).
 * Returns the bytes read, 0 at end of file (the peer sent FIN and all its
 * data has been read). A RESET drops the data not yet read; a peer domain
 * that ended leaves what it sent readable, then -ECONNRESET. */
long argo_stream_recv(long conn, void *buf, uint32_t len, uint32_t flags);

/* No more sends on this connection: sends FIN (waiting for room in the
 * peer's ring as a blocking send does). The peer reads end of file after
 * the data. Receiving goes on. A second call does nothing. */
long argo_stream_shutdown(long conn);

/* Close a connection (FIN if not sent, then its ring goes away) or a
 * listener (waiting connections get RESET(ECONNREFUSED)). The handle is
 * free again. The FIN waits for room in the peer's ring for 2 s at most:
 * a peer that stopped reading does not hold up the close (it then learns
 * of it as a reset, on its next send). */
long argo_stream_close(long handle);

/* argo_stream_poll: what each entry waits for and what happened. */
#define ARGO_STREAM_POLLIN   0x1u   /* data, end of file or a reset to read;
                                     * for a listener: a connection to accept */
#define ARGO_STREAM_POLLHUP  0x2u   /* revents only: the connection was reset
                                     * or is at end of file */

struct argo_stream_pollfd {
    long handle;
    uint16_t events;
    uint16_t revents;   /* out */
    uint32_t pad;
};

/* Wait until one of the entries is ready or timeout_us passes. Returns the
 * number of entries with revents set (0 on timeout). Entries with a
 * negative handle are skipped (revents 0); a handle that is not open is
 * -EBADF. POLLHUP is reported whether asked for or not. With more rings
 * to watch than one argo_wait takes (ARGO_MAX_WAIT_RINGS, the control ring
 * counting as one) it arms them and halts for a VIRQ instead, and then
 * the timeout is not applied, and a peer domain that ends during the halt
 * is noticed only at the next wake-up (its end raises no VIRQ here). */
long argo_stream_poll(struct argo_stream_pollfd *fds, uint32_t n, uint32_t timeout_us);

/* Counters, for tests and for people: messages dropped because they were
 * malformed, of an unknown type, from the wrong port or not expected in
 * the connection's state (CREDIT, which a peer may send, is ignored
 * without being counted); RESETs sent (refused CONNECTs) and received. */
struct argo_stream_stats {
    uint64_t dropped;
    uint64_t resets_sent;
    uint64_t resets_received;
};
void argo_stream_get_stats(struct argo_stream_stats *st);

#endif
