/* memory.c - memory reservation helpers (memory.h). */
#include <memory.h>

/* One reservation op over n order-0 frames, in calls of at most
 * MEMOP_MAX_EXTENTS; stops at the first call that does fewer. */
static long reservation(unsigned op, const uint64_t *gfns, unsigned long n)
{
    long done = 0;
    while ((unsigned long)done < n) {
        unsigned long chunk = n - (unsigned long)done;
        if (chunk > MEMOP_MAX_EXTENTS)
            chunk = MEMOP_MAX_EXTENTS;
        struct xen_memory_reservation r = {
            .extent_start = gfns ? (uint64_t)(uintptr_t)(gfns + done) : 0,
            .nr_extents = chunk,
            .extent_order = 0,
            .mem_flags = 0,
            .domid = DOMID_SELF,
        };
        long got = memory_op(op, &r);
        if (got < 0)
            return done ? done : got;
        done += got;
        if ((unsigned long)got != chunk)
            break;
    }
    return done;
}

long memory_decrease_reservation(const uint64_t *gfns, unsigned long n)
{
    return reservation(XENMEM_decrease_reservation, gfns, n);
}

long memory_populate_physmap(const uint64_t *gfns, unsigned long n)
{
    return reservation(XENMEM_populate_physmap, gfns, n);
}

long memory_increase_reservation(unsigned long n)
{
    return reservation(XENMEM_increase_reservation, 0, n);
}

long memory_current_reservation(void)
{
    uint16_t dom = DOMID_SELF;
    return memory_op(XENMEM_current_reservation, &dom);
}

long memory_maximum_reservation(void)
{
    uint16_t dom = DOMID_SELF;
    return memory_op(XENMEM_maximum_reservation, &dom);
}
