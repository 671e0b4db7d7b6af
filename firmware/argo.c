/* argo.c - the guest side of Argo rings: the reader and small helpers. */
#include <argo.h>
#include <guest.h>

/* Copies n bytes of the data area from offset off, wrapping at ring_len. */
static void ring_copy_out(const struct argo_ring *ring, uint32_t ring_len, uint32_t off, void *dst, uint32_t n)
{
    if (off >= ring_len)
        off -= ring_len;
    uint32_t first = ring_len - off;
    if (first > n)
        first = n;
    guest_memcpy(dst, &ring->ring[off], first);
    guest_memcpy((uint8_t *)dst + first, &ring->ring[0], n - first);
}

/* The reader side of the ring protocol for message headers of hdr_len
 * bytes (16: Xen's; 32: with the sending context). The whole header goes
 * to *hdr. */
static long ring_recv(struct argo_ring *ring, uint32_t ring_len, void *buf, uint32_t buf_len, uint32_t hdr_len,
                      struct argo_ring_message_header_ctx *hdr)
{
    /* rx is ours, tx is the VMM's: load tx with acquire so the message
     * bytes it covers are visible. Sanitise both like the VMM does. */
    uint32_t rx = __atomic_load_n(&ring->rx_ptr, __ATOMIC_RELAXED);
    uint32_t tx = __atomic_load_n(&ring->tx_ptr, __ATOMIC_ACQUIRE);
    rx = (rx + 15u) & ~15u;
    if (rx >= ring_len)
        rx = 0;
    if (tx >= ring_len || (tx & 15u))
        return -EINVAL;
    uint32_t avail = (tx + ring_len - rx) % ring_len;
    if (avail < hdr_len)
        return -EAGAIN;

    /* A 16-byte header never wraps (rx and len are multiples of 16); a
     * 32-byte one may. */
    ring_copy_out(ring, ring_len, rx, hdr, hdr_len);
    uint32_t mlen = hdr->len;
    if (mlen < hdr_len || mlen > avail) {
        __atomic_store_n(&ring->rx_ptr, tx, __ATOMIC_RELEASE);
        return -EINVAL;
    }
    uint32_t plen = mlen - hdr_len;
    if (plen > buf_len)
        return -EMSGSIZE;
    /* The payload may wrap at the end of the data area. */
    ring_copy_out(ring, ring_len, rx + hdr_len, buf, plen);

    uint32_t next = rx + ((mlen + 15u) & ~15u);
    if (next >= ring_len)
        next -= ring_len;
    /* Release: our reads of the message finish before the VMM may reuse
     * the space. */
    __atomic_store_n(&ring->rx_ptr, next, __ATOMIC_RELEASE);
    return (long)plen;
}

long argo_ring_recv(struct argo_ring *ring, uint32_t ring_len, void *buf, uint32_t buf_len,
                    struct argo_addr *source, uint32_t *message_type)
{
    struct argo_ring_message_header_ctx h;
    long r = ring_recv(ring, ring_len, buf, buf_len, ARGO_MSG_HEADER_SIZE, &h);
    if (r >= 0) {
        if (source)
            *source = h.source;
        if (message_type)
            *message_type = h.message_type;
    }
    return r;
}

long argo_ring_recv_ctx(struct argo_ring *ring, uint32_t ring_len, void *buf, uint32_t buf_len,
                        struct argo_ring_message_header_ctx *hdr)
{
    struct argo_ring_message_header_ctx h;
    long r = ring_recv(ring, ring_len, buf, buf_len, sizeof(h), &h);
    if (r >= 0 && hdr)
        *hdr = h;
    return r;
}

static struct argo_ring *ring_create(uint32_t aport, uint16_t partner, uint32_t len, long *err,
                                     uint32_t flags)
{
    uint32_t npages = argo_ring_pages(len);
    struct argo_ring *ring = guest_alloc_pages(npages);
    uint64_t *gfns = guest_alloc_pages((npages * 8 + ARGO_PAGE_SIZE - 1) / ARGO_PAGE_SIZE);
    long ret = -ENOMEM;

    if (ring && gfns) {
        for (uint32_t i = 0; i < npages; i++)
            gfns[i] = guest_virt_to_phys((uint8_t *)ring + (uint64_t)i * ARGO_PAGE_SIZE) >> 12;
        struct argo_register_ring reg = { .aport = aport, .partner_id = partner, .len = len };
        ret = argo_register_ring(&reg, gfns, npages, flags);
    }
    if (err)
        *err = ret;
    return ret == 0 ? ring : NULL;
}

struct argo_ring *argo_ring_create(uint32_t aport, uint16_t partner, uint32_t len, long *err)
{
    return ring_create(aport, partner, len, err, 0);
}

struct argo_ring *argo_ring_create_ext(uint32_t aport, uint16_t partner, uint32_t len, long *err)
{
    return ring_create(aport, partner, len, err, ARGO_REGISTER_FLAG_EXT_HEADER);
}

struct argo_ring *argo_ring_create_flags(uint32_t aport, uint16_t partner, uint32_t len, uint32_t flags,
                                         long *err)
{
    return ring_create(aport, partner, len, err, flags);
}

/* rx_ptr as the VMM sanitises it. */
static uint32_t sane_rx(const struct argo_ring *ring, uint32_t ring_len)
{
    uint32_t rx = (__atomic_load_n(&ring->rx_ptr, __ATOMIC_RELAXED) + 15u) & ~15u;
    return rx >= ring_len ? 0 : rx;
}

int argo_ring_arm(struct argo_ring *ring, uint32_t ring_len, uint32_t after)
{
    uint32_t rx = sane_rx(ring, ring_len);
    after = (after + 15u) & ~15u;
    if (after >= ring_len)
        after = 0;
    uint32_t ev = rx + after;
    if (ev >= ring_len)
        ev -= ring_len;
    /* The index before the flag: a VMM that sees the flag sees the index. */
    __atomic_store_n(&ring->rx_event, ev, __ATOMIC_SEQ_CST);
    __atomic_store_n(&ring->rx_flags, ARGO_RX_F_EVENT, __ATOMIC_SEQ_CST);
    /* Publish, then re-check: the stores above are ordered before the
     * load of tx_ptr below (mfence), as the VMM orders its tx_ptr store
     * before its rx_event load. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint32_t tx = __atomic_load_n(&ring->tx_ptr, __ATOMIC_SEQ_CST);
    if (tx >= ring_len || (tx & 15u))
        return 1; /* let the reader see (and report) the bad ring */
    uint32_t avail = (tx + ring_len - rx) % ring_len;
    return avail > after;
}

int argo_ring_notify_needed(struct argo_ring *ring, uint32_t ring_len)
{
    /* The reader's rx_ptr store comes before this load of tx_ptr's
     * counterpart: the VMM stores tx_wanted, then reads rx_ptr again. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint32_t want = __atomic_load_n(&ring->tx_wanted, __ATOMIC_SEQ_CST);
    if (want == 0)
        return 0;
    uint32_t rx = sane_rx(ring, ring_len);
    uint32_t tx = __atomic_load_n(&ring->tx_ptr, __ATOMIC_ACQUIRE);
    if (tx >= ring_len || (tx & 15u))
        return 1;
    uint32_t space = rx == tx ? ring_len : (rx + ring_len - tx) % ring_len;
    return want < space; /* Xen's fit rule: slot bytes < free bytes */
}

long argo_notify_if_needed(struct argo_ring *ring, uint32_t ring_len)
{
    return argo_ring_notify_needed(ring, ring_len) ? argo_notify(NULL) : 0;
}

long argo_send(uint16_t domid, uint32_t dst_port, uint32_t src_port, const void *buf,
               uint32_t len, uint32_t message_type)
{
    struct argo_send_addr addr = {
        .src = { .aport = src_port, .domain_id = ARGO_DOMID_ANY },
        .dst = { .aport = dst_port, .domain_id = domid },
    };
    struct argo_iov iov = { .iov_hnd = (uint64_t)(uintptr_t)buf, .iov_len = len };
    return argo_sendv(&addr, &iov, 1, message_type);
}
