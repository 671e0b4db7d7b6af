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
    uint8_t reserved[56];
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

_Static_assert(sizeof(struct argo_addr) == 8, "argo_addr");
_Static_assert(sizeof(struct argo_send_addr) == 16, "argo_send_addr");
_Static_assert(sizeof(struct argo_iov) == 16, "argo_iov");
_Static_assert(sizeof(struct argo_ring) == 64, "argo_ring");
_Static_assert(sizeof(struct argo_register_ring) == 12, "argo_register_ring");
_Static_assert(sizeof(struct argo_unregister_ring) == 8, "argo_unregister_ring");
_Static_assert(sizeof(struct argo_ring_data_ent) == 20, "argo_ring_data_ent");
_Static_assert(sizeof(struct argo_ring_data) == 8, "argo_ring_data");
_Static_assert(sizeof(struct argo_ring_message_header) == 16, "argo_ring_message_header");

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

/*
 * Convenience: allocate and register a ring of data length len for partner
 * (ARGO_DOMID_ANY: wildcard) on aport. Returns the ring or NULL; *err gets
 * the hypercall result when err is not NULL.
 */
struct argo_ring *argo_ring_create(uint32_t aport, uint16_t partner, uint32_t len, long *err);

/* Convenience: send one buffer from aport to (domid, dst_port). */
long argo_send(uint16_t domid, uint32_t dst_port, uint32_t src_port, const void *buf,
               uint32_t len, uint32_t message_type);

#endif
