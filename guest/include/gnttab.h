/*
 * gnttab.h - grant tables (Xen v1 semantics) for argovisor guests.
 *
 * A domain grants another domain access to one of its pages by writing an
 * entry in its grant table; the grantee maps the page into its grant
 * window (map_grant_ref) or has the VMM copy to or from it (copy). The
 * table frames are reported by setup_table; the window is a guest-physical
 * range above RAM: read-write mappings in [GNTTAB_WINDOW_RW,
 * +GNTTAB_WINDOW_HALF), read-only ones in [GNTTAB_WINDOW_RO, +HALF).
 * Calls trap with hypercall 20: grant_table_op(cmd, uop, count) returns 0
 * or a negative errno; array ops also set a GNTST_* status per element.
 * See docs/grant-tables.md.
 */
#ifndef ARGOVISOR_GNTTAB_H
#define ARGOVISOR_GNTTAB_H

#include <stdint.h>
#include <stddef.h>
#include "guest.h"

#define GNTTAB_HYPERCALL        20

#define GNTTAB_TABLE_GPA        0xC0000000ul
#define GNTTAB_WINDOW_RW        0xC8000000ul
#define GNTTAB_WINDOW_HALF      0x10000000ul
#define GNTTAB_WINDOW_RO        (GNTTAB_WINDOW_RW + GNTTAB_WINDOW_HALF)
#define GNTTAB_ENTRIES_PER_FRAME 512u
#define GNTTAB_NR_RESERVED_ENTRIES 8u

#ifndef DOMID_SELF
#define DOMID_SELF              0x7FF0u
#endif

typedef uint32_t grant_ref_t;
typedef uint32_t grant_handle_t;

/* Operations (GNTTABOP_*). */
#define GNTTABOP_map_grant_ref      0
#define GNTTABOP_unmap_grant_ref    1
#define GNTTABOP_setup_table        2
#define GNTTABOP_dump_table         3
#define GNTTABOP_transfer           4
#define GNTTABOP_copy               5
#define GNTTABOP_query_size         6
#define GNTTABOP_unmap_and_replace  7
#define GNTTABOP_set_version        8
#define GNTTABOP_get_status_frames  9
#define GNTTABOP_get_version        10
#define GNTTABOP_swap_grant_ref     11
#define GNTTABOP_cache_flush        12
#define GNTTABOP_query_revoked      64  /* argovisor extension */

/* Entry flags (GTF_*). */
#define GTF_invalid             0x0u
#define GTF_permit_access       0x1u
#define GTF_accept_transfer     0x2u
#define GTF_transitive          0x3u
#define GTF_type_mask           0x3u
#define GTF_readonly            (1u << 2)
#define GTF_reading             (1u << 3)
#define GTF_writing             (1u << 4)
#define GTF_PWT                 (1u << 5)
#define GTF_PCD                 (1u << 6)
#define GTF_PAT                 (1u << 7)
#define GTF_sub_page            (1u << 8)
/* In a GTF_accept_transfer entry, set by the VMM: */
#define GTF_transfer_committed  (1u << 2) /* a transfer into the entry has begun */
#define GTF_transfer_completed  (1u << 3) /* the page has arrived; frame is valid */

/* Map flags (GNTMAP_*). */
#define GNTMAP_device_map       (1u << 0)
#define GNTMAP_host_map         (1u << 1)
#define GNTMAP_readonly         (1u << 2)
#define GNTMAP_application_map  (1u << 3)
#define GNTMAP_contains_pte     (1u << 4)

/* Copy flags. */
#define GNTCOPY_source_gref     (1u << 0)
#define GNTCOPY_dest_gref       (1u << 1)

/* Per-element status codes (GNTST_*). */
#define GNTST_okay              0
#define GNTST_general_error     (-1)
#define GNTST_bad_domain        (-2)
#define GNTST_bad_gntref        (-3)
#define GNTST_bad_handle        (-4)
#define GNTST_bad_virt_addr     (-5)
#define GNTST_bad_dev_addr      (-6)
#define GNTST_no_device_space   (-7)
#define GNTST_permission_denied (-8)
#define GNTST_bad_page          (-9)
#define GNTST_bad_copy_arg      (-10)
#define GNTST_address_too_big   (-11)
#define GNTST_eagain            (-12)
#define GNTST_no_space          (-13)

/* A v1 grant entry. */
struct grant_entry_v1 {
    uint16_t flags;
    uint16_t domid;
    uint32_t frame;
};

struct gnttab_map_grant_ref {
    uint64_t host_addr;     /* in: guest-physical address in the grant window */
    uint32_t flags;         /* in: GNTMAP_host_map [| GNTMAP_readonly] */
    grant_ref_t ref;        /* in */
    uint16_t dom;           /* in: granting domain */
    int16_t status;         /* out: GNTST_* */
    grant_handle_t handle;  /* out */
    uint64_t dev_bus_addr;  /* out: 0 */
};

struct gnttab_unmap_grant_ref {
    uint64_t host_addr;     /* in: the mapped address, or 0 */
    uint64_t dev_bus_addr;  /* in: 0 */
    grant_handle_t handle;  /* in */
    int16_t status;         /* out */
};

struct gnttab_setup_table {
    uint16_t dom;           /* in: DOMID_SELF */
    uint32_t nr_frames;     /* in */
    int16_t status;         /* out */
    uint64_t frame_list;    /* in: pointer to nr_frames uint64_t (out: frame numbers) */
};

struct gnttab_copy_ptr {
    union {
        grant_ref_t ref;
        uint64_t gmfn;
    } u;
    uint16_t domid;
    uint16_t offset;
};

struct gnttab_copy {
    struct gnttab_copy_ptr source;
    struct gnttab_copy_ptr dest;
    uint16_t len;
    uint16_t flags;         /* GNTCOPY_* */
    int16_t status;         /* out */
};

/* Give the caller's frame mfn (a GFN) to domain domid, into the frame its
 * accept-transfer entry ref names. Once the frame has left the caller
 * (any status but GNTST_bad_page) it is gone even if the transfer fails. */
struct gnttab_transfer {
    uint64_t mfn;           /* in: the frame to give */
    uint16_t domid;         /* in: the receiving domain */
    grant_ref_t ref;        /* in: its GTF_accept_transfer entry naming us */
    int16_t status;         /* out: GNTST_* */
};

struct gnttab_query_size {
    uint16_t dom;
    uint32_t nr_frames;     /* out */
    uint32_t max_nr_frames; /* out */
    int16_t status;         /* out */
};

struct gnttab_unmap_and_replace {
    uint64_t host_addr;
    uint64_t new_addr;      /* must be 0 */
    grant_handle_t handle;
    int16_t status;
};

struct gnttab_set_version {
    uint32_t version;
};

struct gnttab_get_version {
    uint16_t dom;
    uint16_t pad;
    uint32_t version;       /* out */
};

struct gnttab_swap_grant_ref {
    grant_ref_t ref_a;
    grant_ref_t ref_b;
    int16_t status;
};

/* argovisor extension: handles of this domain's mappings that were revoked
 * (their granter died or a policy revoked them) and not yet reported. */
struct gnttab_query_revoked {
    uint32_t nr;            /* in: capacity of handles[]; out: count written */
    uint32_t pad;
    uint64_t handles;       /* in: pointer to uint32_t[nr] */
};

_Static_assert(sizeof(struct grant_entry_v1) == 8, "grant_entry_v1");
_Static_assert(sizeof(struct gnttab_map_grant_ref) == 32, "map_grant_ref");
_Static_assert(sizeof(struct gnttab_unmap_grant_ref) == 24, "unmap_grant_ref");
_Static_assert(sizeof(struct gnttab_setup_table) == 24, "setup_table");
_Static_assert(sizeof(struct gnttab_copy) == 40, "copy");
_Static_assert(sizeof(struct gnttab_transfer) == 24, "transfer");
_Static_assert(sizeof(struct gnttab_query_size) == 16, "query_size");
_Static_assert(sizeof(struct gnttab_unmap_and_replace) == 24, "unmap_and_replace");
_Static_assert(sizeof(struct gnttab_get_version) == 8, "get_version");
_Static_assert(sizeof(struct gnttab_swap_grant_ref) == 12, "swap_grant_ref");
_Static_assert(sizeof(struct gnttab_query_revoked) == 16, "query_revoked");

static inline long gnttab_op(unsigned cmd, void *uop, unsigned count)
{
    return guest_hypercall(GNTTAB_HYPERCALL, cmd, (unsigned long)uop, count, 0, 0);
}

static inline long gnttab_map_grant_ref(struct gnttab_map_grant_ref *ops, unsigned count)
{
    return gnttab_op(GNTTABOP_map_grant_ref, ops, count);
}

static inline long gnttab_unmap_grant_ref(struct gnttab_unmap_grant_ref *ops, unsigned count)
{
    return gnttab_op(GNTTABOP_unmap_grant_ref, ops, count);
}

static inline long gnttab_setup_table(struct gnttab_setup_table *op)
{
    return gnttab_op(GNTTABOP_setup_table, op, 1);
}

static inline long gnttab_copy(struct gnttab_copy *ops, unsigned count)
{
    return gnttab_op(GNTTABOP_copy, ops, count);
}

static inline long gnttab_transfer(struct gnttab_transfer *ops, unsigned count)
{
    return gnttab_op(GNTTABOP_transfer, ops, count);
}

static inline long gnttab_query_size(struct gnttab_query_size *op)
{
    return gnttab_op(GNTTABOP_query_size, op, 1);
}

static inline long gnttab_unmap_and_replace(struct gnttab_unmap_and_replace *ops, unsigned count)
{
    return gnttab_op(GNTTABOP_unmap_and_replace, ops, count);
}

static inline long gnttab_set_version(struct gnttab_set_version *op)
{
    return gnttab_op(GNTTABOP_set_version, op, 1);
}

static inline long gnttab_get_version(struct gnttab_get_version *op)
{
    return gnttab_op(GNTTABOP_get_version, op, 1);
}

static inline long gnttab_swap_grant_ref(struct gnttab_swap_grant_ref *ops, unsigned count)
{
    return gnttab_op(GNTTABOP_swap_grant_ref, ops, count);
}

static inline long gnttab_query_revoked(struct gnttab_query_revoked *op)
{
    return gnttab_op(GNTTABOP_query_revoked, op, 1);
}

/*
 * Granter-side helpers. gnttab_init maps the table: it calls setup_table
 * for nr_frames frames and returns a pointer to entry 0 (the frames are
 * contiguous at GNTTAB_TABLE_GPA), or NULL.
 */
struct grant_entry_v1 *gnttab_init(uint32_t nr_frames, long *err);

/* Create a grant of the page at `page` (a guest pointer) to domid, in entry
 * ref: domid and frame first, a barrier, then flags, as the ABI requires. */
void gnttab_grant_access(struct grant_entry_v1 *table, grant_ref_t ref, uint16_t domid,
                         const void *page, int readonly);

/* End a grant that is not in use: atomically clear flags unless the VMM has
 * GTF_reading or GTF_writing set. Returns 0, or -EBUSY (16) while the grant
 * is mapped or being copied (retry after the grantee unmaps). */
int gnttab_end_access(struct grant_entry_v1 *table, grant_ref_t ref);

/* Make a writable grant read-only; fails with -EBUSY while GTF_writing is
 * set. */
int gnttab_make_readonly(struct grant_entry_v1 *table, grant_ref_t ref);

/*
 * Transfers (see memory.h for giving frames up). The receiver makes frame
 * gfn empty (memory_decrease_reservation), then lets domid transfer a
 * page into it through entry ref: domid and frame first, a barrier, then
 * flags = GTF_accept_transfer.
 */
void gnttab_grant_foreign_transfer(struct grant_entry_v1 *table, grant_ref_t ref, uint16_t domid,
                                   uint64_t gfn);

/* Finish with an accept-transfer entry. If no transfer has begun, the
 * entry is cleared (atomically, so no transfer can begin afterwards) and
 * 0 is returned. Otherwise this waits for the transfer to complete,
 * clears the entry and returns the frame the page arrived at (the one
 * the entry named). As Linux's, it cannot tell a page that arrived at
 * frame 0 from none. */
uint64_t gnttab_end_foreign_transfer(struct grant_entry_v1 *table, grant_ref_t ref);

#endif
