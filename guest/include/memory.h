/*
 * memory.h - memory reservation (Xen's memory_op, hypercall 12) for
 * argovisor guests.
 *
 * A domain's RAM region is frames [0, maximum reservation); at boot
 * frames [0, RAM size) hold pages and the rest are empty. A domain can
 * give frames back to the host (decrease_reservation: the frame becomes
 * empty, and touching it then stops the domain) and have empty frames
 * populated with fresh zeroed pages (populate_physmap), never holding
 * more than its maximum reservation. Frames are guest-physical page
 * numbers (the identity map makes them virtual address >> 12).
 * memory_op(cmd, arg) returns, for the reservation ops, the number of
 * extents done (all of them on success), and for the query ops a page
 * count or a negative errno. See docs/grant-tables.md, "Memory
 * reservation".
 */
#ifndef ARGOVISOR_MEMORY_H
#define ARGOVISOR_MEMORY_H

#include <stdint.h>
#include "guest.h"

#define MEMORY_HYPERCALL            12

#define XENMEM_increase_reservation 0
#define XENMEM_decrease_reservation 1
#define XENMEM_current_reservation  3
#define XENMEM_maximum_reservation  4
#define XENMEM_populate_physmap     6

/* cmd bits above the op number: the extent to start at. */
#define MEMOP_EXTENT_SHIFT          6
/* At most this many extents per call, of at most 2^MEMOP_MAX_ORDER frames. */
#define MEMOP_MAX_EXTENTS           4096u
#define MEMOP_MAX_ORDER             9u

/* mem_flags */
#define XENMEMF_address_bits(x)     (x)
#define XENMEMF_populate_on_demand  (1u << 16)

#ifndef DOMID_SELF
#define DOMID_SELF                  0x7FF0u
#endif

struct xen_memory_reservation {
    uint64_t extent_start;  /* pointer to uint64_t[nr_extents]: first frame of each extent */
    uint64_t nr_extents;
    uint32_t extent_order;  /* each extent is 2^extent_order contiguous frames */
    uint32_t mem_flags;     /* XENMEMF_*; 0 */
    uint16_t domid;         /* DOMID_SELF */
};

_Static_assert(sizeof(struct xen_memory_reservation) == 32, "xen_memory_reservation");

static inline long memory_op(unsigned long cmd, void *arg)
{
    return guest_hypercall(MEMORY_HYPERCALL, cmd, (unsigned long)arg, 0, 0, 0);
}

/* Give frames gfns[0..n) (order 0) back to the host, in calls of at most
 * MEMOP_MAX_EXTENTS. Returns how many were given back: n, or fewer if one
 * could not be (empty, outside the region, granted and mapped, an Argo
 * ring page); those after it are untouched. */
long memory_decrease_reservation(const uint64_t *gfns, unsigned long n);

/* Populate empty frames gfns[0..n) with fresh zeroed pages. Returns how
 * many were populated: fewer than n when a frame is not empty or outside
 * the region, or the maximum reservation is reached. */
long memory_populate_physmap(const uint64_t *gfns, unsigned long n);

/* Add n pages to the reservation without placing them anywhere (Xen's
 * increase_reservation for a translated guest). Returns how many. */
long memory_increase_reservation(unsigned long n);

/* The current and maximum reservation in pages, or a negative errno. */
long memory_current_reservation(void);
long memory_maximum_reservation(void);

#endif
