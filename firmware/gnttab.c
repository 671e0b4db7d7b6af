/* gnttab.c - granter-side helpers: the ordering rules for writing entries. */
#include <gnttab.h>
#include <guest.h>

struct grant_entry_v1 *gnttab_init(uint32_t nr_frames, long *err)
{
    uint64_t frames[64];
    if (nr_frames == 0 || nr_frames > 64) {
        if (err)
            *err = -22;
        return 0;
    }
    struct gnttab_setup_table op = {
        .dom = DOMID_SELF,
        .nr_frames = nr_frames,
        .frame_list = (uint64_t)(uintptr_t)frames,
    };
    long ret = gnttab_setup_table(&op);
    if (ret == 0 && op.status != GNTST_okay)
        ret = op.status;
    if (err)
        *err = ret;
    if (ret != 0)
        return 0;
    /* The frames are contiguous and identity mapped. */
    return (struct grant_entry_v1 *)(uintptr_t)(frames[0] << 12);
}

void gnttab_grant_access(struct grant_entry_v1 *table, grant_ref_t ref, uint16_t domid,
                         const void *page, int readonly)
{
    struct grant_entry_v1 *e = &table[ref];
    e->domid = domid;
    e->frame = (uint32_t)(guest_virt_to_phys(page) >> 12);
    /* The VMM must see domid and frame before the entry becomes valid. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&e->flags, (uint16_t)(GTF_permit_access | (readonly ? GTF_readonly : 0)),
                     __ATOMIC_RELEASE);
}

int gnttab_end_access(struct grant_entry_v1 *table, grant_ref_t ref)
{
    uint16_t *flags = &table[ref].flags;
    uint16_t old = __atomic_load_n(flags, __ATOMIC_ACQUIRE);
    for (;;) {
        if (old & (GTF_reading | GTF_writing))
            return -16;
        if (__atomic_compare_exchange_n(flags, &old, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 0;
    }
}

int gnttab_make_readonly(struct grant_entry_v1 *table, grant_ref_t ref)
{
    uint16_t *flags = &table[ref].flags;
    uint16_t old = __atomic_load_n(flags, __ATOMIC_ACQUIRE);
    for (;;) {
        if (old & GTF_writing)
            return -16;
        if (__atomic_compare_exchange_n(flags, &old, (uint16_t)(old | GTF_readonly), 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 0;
    }
}

void gnttab_grant_foreign_transfer(struct grant_entry_v1 *table, grant_ref_t ref, uint16_t domid,
                                   uint64_t gfn)
{
    struct grant_entry_v1 *e = &table[ref];
    e->domid = domid;
    e->frame = (uint32_t)gfn;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&e->flags, (uint16_t)GTF_accept_transfer, __ATOMIC_RELEASE);
}

uint64_t gnttab_end_foreign_transfer(struct grant_entry_v1 *table, grant_ref_t ref)
{
    uint16_t *flags = &table[ref].flags;
    for (;;) {
        uint16_t old = __atomic_load_n(flags, __ATOMIC_ACQUIRE);
        if (!(old & GTF_transfer_committed)) {
            /* Not begun: take the entry back. The VMM commits with a
             * compare-and-exchange too, so exactly one of us wins. */
            if (__atomic_compare_exchange_n(flags, &old, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return 0;
            continue;
        }
        if (old & GTF_transfer_completed) {
            /* frame is read after completed (acquire above). */
            uint64_t frame = __atomic_load_n(&table[ref].frame, __ATOMIC_ACQUIRE);
            __atomic_store_n(flags, 0, __ATOMIC_RELEASE);
            return frame;
        }
        guest_cpu_relax();
    }
}
