/*
 * gntstorm: a grant-map storm against the VMM's mapping budget.
 *
 * Grants one page to itself under refs 0..1023, then for `rounds` rounds
 * maps it with DOMID_SELF in batches of `batch` elements until the VMM
 * refuses an element with GNTST_no_device_space, and unmaps every mapping
 * it got in calls of up to 4096 elements. Element i of a round takes ref
 * i/100 (at most 100 pins per ref, below the limit of 128) and window page
 * i*stride. Even rounds map writable into the read-write half, odd rounds
 * read-only into the read-only half.
 *
 * Each map must end okay or no_device_space; once one element is refused,
 * every later one of the round must be too (a refused element frees
 * nothing); every unmap must be okay; and every round of the same half
 * must map the same number of pages, since unmapping everything gives the
 * whole budget back. Then it prints
 *
 *     gntstorm: <r> rounds: rw <a> maps ok, ro <b> maps ok, no_device_space <n>, other 0, unmaps ok <u>
 *
 * and returns 0; on any failure it prints "gntstorm: FAIL ..." and returns 1.
 * With stride >= 2 every page stands alone and costs the budget two VMAs,
 * so a share of S VMAs (max_window_vmas) gives a = S/2 and b = (S-1)/2
 * (docs/limits.md).
 *
 * Params:
 *   rounds=<n>   rounds (default 20)
 *   batch=<n>    elements per map call, 1..4096 (default 4096)
 *   stride=<n>   window pages between two mappings, 1..16 (default 2)
 */
#include <gnttab.h>
#include <guest.h>

#define NREFS      1024u
#define PER_REF    100u
#define MAX_BATCH  4096u
#define HALF_PAGES (GNTTAB_WINDOW_HALF / GUEST_PAGE_SIZE)
#define MAX_MAPS   (NREFS * PER_REF)

static struct gnttab_map_grant_ref *maps;     /* one batch */
static struct gnttab_unmap_grant_ref *unmaps; /* one unmap call */
static uint32_t *handles;                     /* every mapping of a round */
static uint64_t *addrs;

static const char *st_name(int16_t st)
{
    switch (st) {
    case GNTST_okay:
        return "okay";
    case GNTST_no_device_space:
        return "no_device_space";
    case GNTST_general_error:
        return "general_error";
    case GNTST_no_space:
        return "no_space";
    }
    return "other";
}

/* One round: maps until refused, then unmaps everything. Returns the
 * number mapped, or -1 after printing the failure. */
static long round_trip(unsigned round, uint32_t batch, uint32_t stride, int ro, unsigned long *refused,
                       unsigned long *unmapped)
{
    uint64_t base = ro ? GNTTAB_WINDOW_RO : GNTTAB_WINDOW_RW;
    uint32_t flags = GNTMAP_host_map | (ro ? GNTMAP_readonly : 0);
    uint32_t n = 0; /* mappings held */
    int full = 0;
    for (uint32_t first = 0; !full; first += batch) {
        if ((uint64_t)(first + batch) * stride > HALF_PAGES || first + batch > MAX_MAPS) {
            guest_printf("gntstorm: FAIL round %u: %u maps and never refused\n", round, n);
            return -1;
        }
        for (uint32_t k = 0; k < batch; k++) {
            uint32_t i = first + k;
            maps[k] = (struct gnttab_map_grant_ref){
                .host_addr = base + (uint64_t)i * stride * GUEST_PAGE_SIZE,
                .flags = flags,
                .ref = i / PER_REF,
                .dom = DOMID_SELF,
                .status = 99,
            };
        }
        long r = gnttab_map_grant_ref(maps, batch);
        if (r != 0) {
            guest_printf("gntstorm: FAIL round %u: map_grant_ref returned %ld (%s)\n", round, r, guest_errno_name(r));
            return -1;
        }
        for (uint32_t k = 0; k < batch; k++) {
            int16_t st = maps[k].status;
            if (st == GNTST_okay && !full) {
                handles[n] = maps[k].handle;
                addrs[n] = maps[k].host_addr;
                n++;
                continue;
            }
            if (st == GNTST_no_device_space) {
                full = 1;
                (*refused)++;
                continue;
            }
            guest_printf("gntstorm: FAIL round %u: element %u got %d (%s)%s\n", round, first + k, st, st_name(st),
                         full ? " after a refusal" : "");
            return -1;
        }
    }
    for (uint32_t done = 0; done < n;) {
        uint32_t c = n - done < MAX_BATCH ? n - done : MAX_BATCH;
        for (uint32_t k = 0; k < c; k++)
            unmaps[k] = (struct gnttab_unmap_grant_ref){
                .host_addr = addrs[done + k], .handle = handles[done + k], .status = 99};
        long r = gnttab_unmap_grant_ref(unmaps, c);
        if (r != 0) {
            guest_printf("gntstorm: FAIL round %u: unmap_grant_ref returned %ld (%s)\n", round, r, guest_errno_name(r));
            return -1;
        }
        for (uint32_t k = 0; k < c; k++) {
            if (unmaps[k].status != GNTST_okay) {
                guest_printf("gntstorm: FAIL round %u: unmap of handle %u got %d (%s)\n", round, unmaps[k].handle,
                             unmaps[k].status, st_name(unmaps[k].status));
                return -1;
            }
        }
        *unmapped += c;
        done += c;
    }
    return n;
}

int guest_main(void)
{
    unsigned rounds = (unsigned)guest_param_u64("rounds", 20);
    uint32_t batch = (uint32_t)guest_param_u64("batch", MAX_BATCH);
    uint32_t stride = (uint32_t)guest_param_u64("stride", 2);
    if (batch < 1 || batch > MAX_BATCH || stride < 1 || stride > 16 || rounds < 1) {
        guest_puts("gntstorm: FAIL bad params");
        return 1;
    }
    long err;
    struct grant_entry_v1 *t = gnttab_init(NREFS / GNTTAB_ENTRIES_PER_FRAME, &err);
    uint8_t *page = guest_alloc_pages(1);
    maps = guest_alloc_pages(MAX_BATCH * sizeof(*maps) / GUEST_PAGE_SIZE);
    unmaps = guest_alloc_pages(MAX_BATCH * sizeof(*unmaps) / GUEST_PAGE_SIZE);
    uint32_t most = HALF_PAGES / stride; /* mappings a round can hold */
    handles = guest_alloc_pages((most * sizeof(*handles) + GUEST_PAGE_SIZE - 1) / GUEST_PAGE_SIZE);
    addrs = guest_alloc_pages((most * sizeof(*addrs) + GUEST_PAGE_SIZE - 1) / GUEST_PAGE_SIZE);
    if (!t || !page || !maps || !unmaps || !handles || !addrs) {
        guest_printf("gntstorm: FAIL setup (%ld)\n", err);
        return 1;
    }
    page[0] = 0x5A;
    uint16_t me = guest_domid();
    for (uint32_t ref = 0; ref < NREFS; ref++)
        gnttab_grant_access(t, ref, me, page, 0);

    long per_half[2] = { -1, -1 };
    unsigned long refused = 0, unmapped = 0;
    for (unsigned r = 0; r < rounds; r++) {
        int ro = r & 1;
        long n = round_trip(r, batch, stride, ro, &refused, &unmapped);
        if (n < 0)
            return 1;
        if (per_half[ro] >= 0 && n != per_half[ro]) {
            guest_printf("gntstorm: FAIL round %u: %ld maps, earlier %s rounds had %ld\n", r, n, ro ? "ro" : "rw",
                         per_half[ro]);
            return 1;
        }
        per_half[ro] = n;
    }
    for (uint32_t ref = 0; ref < NREFS; ref++) {
        if (gnttab_end_access(t, ref) != 0) {
            guest_printf("gntstorm: FAIL ref %u still in use after the last unmap\n", ref);
            return 1;
        }
    }
    guest_printf("gntstorm: %u rounds: rw %ld maps ok, ro %ld maps ok, no_device_space %lu, other 0, unmaps ok %lu\n",
                 rounds, per_half[0], per_half[1], refused, unmapped);
    return 0;
}
