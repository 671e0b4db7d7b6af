/*
 * argo.h - Argo (hypervisor-mediated data exchange) for argovisor guests.
 *
 * The structures are Xen's public/argo.h without the xen_ prefix, with the
 * same layouts. Calls trap to the VMM with hypercall 39 (argo_op) and return
 * a negative errno or a value, as Xen does. Pointer arguments are ordinary
 * guest pointers (guest-virtual addresses); the gfn list holds guest frame
 * numbers (guest_virt_to_phys(p) >> 12).
 *
 * Receiving: register a ring, install a VIRQ handler with
 * guest_set_virq_handler, and after each VIRQ drain the ring with
 * argo_ring_recv until it returns -EAGAIN, then call argo_notify(NULL) so
 * the VMM can wake senders waiting for space. See docs/argo.md.
 *
 * Beyond Xen (argovisor only; docs/argo.md, "Beyond Xen: fewer
 * transitions"): a ring registered with ARGO_REGISTER_FLAG_EXT_HEADER
 * (argo_ring_create_ext) uses three words of the header's reserved bytes.
 * The receiver says when it wants a VIRQ (argo_ring_arm: an event index,
 * re-checked after it is published; argo_ring_set_polling: never), and
 * the VMM says whether a sender waits for space (argo_notify_if_needed
 * calls notify only then). argo_sendv_batch sends many messages in one
 * hypercall; argo_wait and argo_send_wait block in the VMM until one of
 * the caller's rings has data, with no VIRQ needed. A guest that uses
 * none of these sees exactly Xen's behaviour.
 */
#ifndef ARGOVISOR_ARGO_H
#define ARGOVISOR_ARGO_H

#include <stdint.h>
#include <stddef.h>
#include "guest.h"

#define ARGO_HYPERCALL            39

#define ARGO_OP_REGISTER_RING     1
#define ARGO_OP_UNREGISTER_RING   2
#define ARGO_OP_SENDV             3
#define ARGO_OP_NOTIFY            4
/* argovisor's ops, above Xen's numbers (docs/hypercall-abi.md) */
#define ARGO_OP_SENDV_BATCH       0x100
#define ARGO_OP_WAIT              0x101
#define ARGO_OP_SEND_WAIT         0x102
#define ARGO_OP_DOMAIN_INFO       0x103     /* argovisor: a domain's id, name, label, state */

#define ARGO_DOMID_ANY            0x7FF4u   /* wildcard partner; "me" as a source */
#define ARGO_MAX_RING_SIZE        0x1000000u
#define ARGO_MAXIOV               8u
#define ARGO_MSG_SLOT_SIZE        0x10u
#define ARGO_RING_HEADER_SIZE     64u
#define ARGO_MSG_HEADER_SIZE      16u
#define ARGO_MIN_RING_SIZE        48u
#define ARGO_MAX_RINGS            128u
#define ARGO_MAX_NOTIFY_COUNT     256u
#define ARGO_MAX_MESSAGE_SIZE     0xFFFFE0u
#define ARGO_PAGE_SIZE            4096u

#define ARGO_REGISTER_FLAG_FAIL_EXIST  0x1u
#define ARGO_REGISTER_FLAG_EXT_HEADER  0x10000u  /* argovisor: extended ring header */
#define ARGO_REGISTER_FLAG_SENDER_CONTEXT 0x20000u /* argovisor: 32-byte message headers with
                                                    * the sending vCPU and its CR3 */
#define ARGO_DOMID_SELF           0x7FF0u   /* argo_domain_info: the caller */
#define ARGO_DOMAIN_RUNNING       1u        /* argo_domain_info.state */
#define ARGO_DOMAIN_ENDED         2u        /* exited, crashed or stopped; rings gone */
#define ARGO_NO_VCPU              0xFFFFFFFFu /* sending context of the host */
#define ARGO_CTX_F_CR3            0x1u      /* the context's cr3 is meaningful */

/* rx_flags of an extended header (other bits are ignored) */
#define ARGO_RX_F_EVENT    0x1u  /* VIRQ only when tx_ptr moves past rx_event */
#define ARGO_RX_F_POLLING  0x2u  /* no VIRQ for data on this ring at all */

#define ARGO_MAX_BATCH        64u          /* entries per argo_sendv_batch */
#define ARGO_BATCH_CONTINUE   0x1u         /* go on after a failed entry */
#define ARGO_BATCH_WAIT_SPACE 0x2u         /* sleep in the VMM for space (argo_sendv_batch_wait) */
#define ARGO_MAX_WAIT_RINGS   32u          /* rings per argo_wait */
#define ARGO_WAIT_FOREVER     0xFFFFFFFFu  /* timeout_us that never expires */

#define ARGO_RING_DATA_F_EXISTS        0x1u
#define ARGO_RING_DATA_F_SHARED        0x2u
#define ARGO_RING_DATA_F_EMPTY         0x4u
#define ARGO_RING_DATA_F_SUFFICIENT    0x8u
#define ARGO_RING_DATA_F_EMSGSIZE      0x10u
#define ARGO_RING_DATA_F_EBUSY         0x20u

/* Linux errno values; calls return them negated. */
#ifndef EPERM
#define EPERM          1
#define ENOENT         2
#define ESRCH          3
#define EAGAIN         11
#define ENOMEM         12
#define EACCES         13
#define EFAULT         14
#define EBUSY          16
#define EEXIST         17
#define ENODEV         19
#define EINVAL         22
#define ENOSPC         28
#define ENOSYS         38
#define EMSGSIZE       90
#define EOPNOTSUPP     95
#define ECONNREFUSED   111
#endif
#ifndef EINTR
#define EINTR          4     /* argo_wait: interrupted (kick, interrupt) */
#endif
#ifndef ETIMEDOUT
#define ETIMEDOUT      110   /* argo_wait: nothing arrived in time */
#endif
#ifndef ECANCELED
#define ECANCELED      125   /* batch entry not attempted */
#endif

struct argo_addr {
    uint32_t aport;
    uint16_t domain_id;
    uint16_t pad;
};

struct argo_send_addr {
    struct argo_addr src;
    struct argo_addr dst;
};

struct argo_iov {
    uint64_t iov_hnd;   /* guest pointer to the data */
    uint32_t iov_len;
    uint32_t pad;
};

struct argo_ring {
    uint32_t rx_ptr;    /* written by the receiver */
    uint32_t tx_ptr;    /* written by the VMM only */
    /* Xen's reserved bytes. Rings registered with
     * ARGO_REGISTER_FLAG_EXT_HEADER use the first three words: */
    uint32_t rx_flags;  /* receiver: ARGO_RX_F_* */
    uint32_t rx_event;  /* receiver: data offset; see argo_ring_arm */
    uint32_t tx_wanted; /* VMM: ring bytes the smallest waiting sender's
                         * message needs, 0 when nobody waits */
    uint8_t reserved[44];
    uint8_t ring[];
};

struct argo_register_ring {
    uint32_t aport;
    uint16_t partner_id;
    uint16_t pad;
    uint32_t len;
};

struct argo_unregister_ring {
    uint32_t aport;
    uint16_t partner_id;
    uint16_t pad;
};

struct argo_ring_data_ent {
    struct argo_addr ring;
    uint16_t flags;             /* out */
    uint16_t pad;
    uint32_t space_required;    /* in */
    uint32_t max_message_size;  /* out */
};

struct argo_ring_data {
    uint32_t nent;
    uint32_t pad;
    struct argo_ring_data_ent data[];
};

struct argo_ring_message_header {
    uint32_t len;               /* payload + 16, not rounded */
    struct argo_addr source;
    uint32_t message_type;
    uint8_t data[];
};

/* Message header in a ring registered with ARGO_REGISTER_FLAG_SENDER_CONTEXT:
 * Xen's 16 bytes, then the sending context the VMM took from the sender's
 * exit (never from its memory). */
struct argo_ring_message_header_ctx {
    uint32_t len;               /* payload + 32, not rounded */
    struct argo_addr source;
    uint32_t message_type;
    uint32_t vcpu;              /* sending vCPU; ARGO_NO_VCPU for the host */
    uint32_t ctx_flags;         /* ARGO_CTX_F_CR3 */
    uint64_t cr3;               /* the sending vCPU's CR3 at the send */
};

/* What argo_domain_info returns: the identity the VMM vouches for. */
struct argo_domain_info {
    uint16_t domain_id;
    uint16_t state;             /* ARGO_DOMAIN_RUNNING or ARGO_DOMAIN_ENDED */
    uint16_t name_len;          /* bytes of name used (no NUL when 248) */
    uint16_t label_len;         /* bytes of label used (no NUL when 64) */
    char label[64];
    char name[248];
};

/* One message of argo_sendv_batch, or the send of argo_send_wait. */
struct argo_send_ent {
    struct argo_send_addr addr;
    uint64_t iov_hnd;           /* guest pointer to niov struct argo_iov */
    uint32_t niov;
    uint32_t message_type;
    int64_t result;             /* out: what argo_sendv would return, or
                                 * -ECANCELED if not attempted */
};

_Static_assert(sizeof(struct argo_addr) == 8, "argo_addr");
_Static_assert(sizeof(struct argo_send_addr) == 16, "argo_send_addr");
_Static_assert(sizeof(struct argo_iov) == 16, "argo_iov");
_Static_assert(sizeof(struct argo_ring) == 64, "argo_ring");
_Static_assert(sizeof(struct argo_register_ring) == 12, "argo_register_ring");
_Static_assert(sizeof(struct argo_unregister_ring) == 8, "argo_unregister_ring");
_Static_assert(sizeof(struct argo_ring_data_ent) == 20, "argo_ring_data_ent");
_Static_assert(sizeof(struct argo_ring_data) == 8, "argo_ring_data");
_Static_assert(sizeof(struct argo_ring_message_header) == 16, "argo_ring_message_header");
_Static_assert(offsetof(struct argo_ring, rx_flags) == 8, "argo_ring.rx_flags");
_Static_assert(offsetof(struct argo_ring, rx_event) == 12, "argo_ring.rx_event");
_Static_assert(offsetof(struct argo_ring, tx_wanted) == 16, "argo_ring.tx_wanted");
_Static_assert(sizeof(struct argo_send_ent) == 40, "argo_send_ent");
_Static_assert(sizeof(struct argo_ring_message_header_ctx) == 32, "argo_ring_message_header_ctx");
_Static_assert(sizeof(struct argo_domain_info) == 320, "argo_domain_info");
_Static_assert(offsetof(struct argo_domain_info, name) == 72, "argo_domain_info.name");
_Static_assert(offsetof(struct argo_send_ent, result) == 32, "argo_send_ent.result");

/* Pages a ring of data length len needs: header plus data, whole pages. */
static inline uint32_t argo_ring_pages(uint32_t len)
{
    return (((len + 15u) & ~15u) + ARGO_RING_HEADER_SIZE + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE;
}

/* Largest payload a ring of data length len accepts. */
static inline uint32_t argo_max_payload(uint32_t len)
{
    return len - 2 * ARGO_MSG_SLOT_SIZE;
}

static inline long argo_register_ring(struct argo_register_ring *reg, const uint64_t *gfns,
                                      uint32_t npages, uint32_t flags)
{
    return guest_hypercall(ARGO_HYPERCALL, ARGO_OP_REGISTER_RING, (unsigned long)reg,
                           (unsigned long)gfns, npages, flags);
}

static inline long argo_unregister_ring(struct argo_unregister_ring *unreg)
{
    return guest_hypercall(ARGO_HYPERCALL, ARGO_OP_UNREGISTER_RING, (unsigned long)unreg, 0, 0, 0);
}

static inline long argo_sendv(struct argo_send_addr *addr, const struct argo_iov *iovs,
                              uint32_t niov, uint32_t message_type)
{
    return guest_hypercall(ARGO_HYPERCALL, ARGO_OP_SENDV, (unsigned long)addr,
                           (unsigned long)iovs, niov, message_type);
}

static inline long argo_notify(struct argo_ring_data *data)
{
    return guest_hypercall(ARGO_HYPERCALL, ARGO_OP_NOTIFY, (unsigned long)data, 0, 0, 0);
}

/*
 * argovisor: send n (at most ARGO_MAX_BATCH) messages with one hypercall.
 * Each entry gets in ->result what argo_sendv would have returned for it.
 * The batch stops at the first failed entry (the rest get -ECANCELED), so
 * a later message to the same ring never overtakes one that must be
 * retried, unless flags has ARGO_BATCH_CONTINUE. Returns the number of
 * messages sent, or a negative errno if the call itself is bad (nothing
 * sent). VIRQs are raised once per destination, after the whole batch.
 */
static inline long argo_sendv_batch(struct argo_send_ent *ents, uint32_t n, uint32_t flags)
{
    return guest_hypercall(ARGO_HYPERCALL, ARGO_OP_SENDV_BATCH, (unsigned long)ents, 0, n, flags);
}

/*
 * argovisor: argo_sendv_batch that does not stop at a full ring: an entry
 * whose ring is full waits in the VMM (no VIRQ, no halt) until the
 * message fits, then the batch goes on in order. Before each sleep the
 * VIRQs of the messages sent so far are raised, and the wait is announced
 * in the ring's tx_wanted, so a reader's argo_notify_if_needed after its
 * drain wakes the batch. timeout_us bounds the time the call sleeps in
 * all (ARGO_WAIT_FOREVER: no bound; 0: never sleep, as argo_sendv_batch).
 * Per entry, beyond argo_sendv: -EAGAIN when the timeout passed (a space
 * request is queued, as argo_sendv's, whose VIRQ comes when it fits);
 * -EINTR when an interrupt or kick reached this vCPU during the wait
 * (handle it, then resend from that entry); -ECONNREFUSED (or -ESRCH)
 * when the ring went away during the wait. After such an entry the rest
 * get -ECANCELED, even with ARGO_BATCH_CONTINUE. Returns the number of
 * messages sent, or a negative errno if the call itself is bad.
 */
static inline long argo_sendv_batch_wait(struct argo_send_ent *ents, uint32_t n, uint32_t flags,
                                         uint32_t timeout_us)
{
    return guest_hypercall(ARGO_HYPERCALL, ARGO_OP_SENDV_BATCH, (unsigned long)ents, timeout_us, n,
                           flags | ARGO_BATCH_WAIT_SPACE);
}

/*
 * argovisor: block in the VMM until one of the caller's rings named in
 * rings[] ({aport, partner} each, as registered; at most
 * ARGO_MAX_WAIT_RINGS) has a message, and return its index. timeout_us 0
 * only looks; ARGO_WAIT_FOREVER never times out. Errors: -ETIMEDOUT,
 * -EINTR (an interrupt or kick reached this vCPU: handle it, then wait
 * again), -ENOENT (a ring is not registered, or went away while waiting
 * with nothing unread in it). A ring goes away when its partner domain
 * ends, as in Xen — and what was delivered into it stays in its memory:
 * on -ENOENT, read the ring once more before concluding that nothing
 * came (a ring removed during the wait with an unread message is
 * reported as having data). The wait also wakes senders waiting for
 * space on these rings, so a
 * reader that drains and then waits need not call notify. Make the rings
 * polling (argo_ring_set_polling) to get no VIRQ for their data.
 */
static inline long argo_wait(const struct argo_addr *rings, uint32_t n, uint32_t timeout_us)
{
    return guest_hypercall(ARGO_HYPERCALL, ARGO_OP_WAIT, (unsigned long)rings, 0, n, timeout_us);
}

/*
 * argovisor: send *ent, then wait as argo_wait does: one hypercall for a
 * request and its reply. If the send fails (ent->result < 0) the call
 * returns that error at once; otherwise it returns the wait's result.
 */
static inline long argo_send_wait(struct argo_send_ent *ent, const struct argo_addr *rings,
                                  uint32_t n, uint32_t timeout_us)
{
    return guest_hypercall(ARGO_HYPERCALL, ARGO_OP_SEND_WAIT, (unsigned long)ent,
                           (unsigned long)rings, n, timeout_us);
}

/* argovisor: never raise the VIRQ for data on this extended-header ring. */
static inline void argo_ring_set_polling(struct argo_ring *ring)
{
    __atomic_store_n(&ring->rx_flags, ARGO_RX_F_POLLING, __ATOMIC_SEQ_CST);
}

/*
 * argovisor, extended-header rings: ask for a VIRQ once the ring holds
 * more than `after` bytes (rounded up to 16) past rx_ptr — 0: on the next
 * message — then look at the ring again. Returns 1 if that is already so
 * (do not sleep: drain), 0 if the ring holds no more than that and the
 * VIRQ is armed (sleep). The order — publish rx_event and rx_flags, full
 * fence, read tx_ptr — is what makes it free of lost wake-ups: the VMM
 * publishes tx_ptr and then reads rx_event, so one of the two always sees
 * the other. `after` should be less than what senders will put in the
 * ring before they stop (0 is always safe); a larger one delays the VIRQ
 * only for this ring's own reader.
 */
int argo_ring_arm(struct argo_ring *ring, uint32_t ring_len, uint32_t after);

/*
 * argovisor, extended-header rings: after argo_ring_recv has moved rx_ptr,
 * report whether a sender waiting for space would now fit (tx_wanted),
 * i.e. whether argo_notify(NULL) would wake anyone. The fence between
 * the reader's rx_ptr store and its tx_wanted load is inside.
 */
int argo_ring_notify_needed(struct argo_ring *ring, uint32_t ring_len);

/* argo_notify(NULL) if argo_ring_notify_needed says so; else 0. */
long argo_notify_if_needed(struct argo_ring *ring, uint32_t ring_len);

/*
 * argo_ring_recv takes the next message out of a ring of data length
 * ring_len: copies its payload to buf and returns the payload length, fills
 * *source and *message_type (either may be NULL), and advances rx_ptr.
 * Returns -EAGAIN when the ring is empty, -EMSGSIZE when buf_len is smaller
 * than the payload (the message stays in the ring), -EINVAL if the ring
 * holds a malformed message (the ring is then emptied).
 * It does not call argo_notify: call argo_notify(NULL) after draining.
 */
long argo_ring_recv(struct argo_ring *ring, uint32_t ring_len, void *buf, uint32_t buf_len,
                    struct argo_addr *source, uint32_t *message_type);

/* argo_ring_recv for a ring registered with ARGO_REGISTER_FLAG_SENDER_CONTEXT:
 * the whole 32-byte header (source, type and sending context) goes to *hdr
 * (may be NULL). */
long argo_ring_recv_ctx(struct argo_ring *ring, uint32_t ring_len, void *buf, uint32_t buf_len,
                        struct argo_ring_message_header_ctx *hdr);

/* argovisor: the id, name, label and state of domain domid
 * (ARGO_DOMID_SELF: the caller). 0, -ESRCH for no such domain, -EFAULT. */
static inline long argo_domain_info(uint16_t domid, struct argo_domain_info *info)
{
    return guest_hypercall(ARGO_HYPERCALL, ARGO_OP_DOMAIN_INFO, domid, (unsigned long)info, 0, 0);
}

/*
 * Convenience: allocate and register a ring of data length len for partner
 * (ARGO_DOMID_ANY: wildcard) on aport. Returns the ring or NULL; *err gets
 * the hypercall result when err is not NULL.
 */
struct argo_ring *argo_ring_create(uint32_t aport, uint16_t partner, uint32_t len, long *err);

/* The same with ARGO_REGISTER_FLAG_EXT_HEADER (argovisor only). */
struct argo_ring *argo_ring_create_ext(uint32_t aport, uint16_t partner, uint32_t len, long *err);

/* The same with any register flags (ARGO_REGISTER_FLAG_*). */
struct argo_ring *argo_ring_create_flags(uint32_t aport, uint16_t partner, uint32_t len, uint32_t flags,
                                         long *err);

/* Convenience: send one buffer from aport to (domid, dst_port). */
long argo_send(uint16_t domid, uint32_t dst_port, uint32_t src_port, const void *buf,
               uint32_t len, uint32_t message_type);

#endif
