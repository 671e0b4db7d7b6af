/*
 * hostile: fires random hypercalls at the VMM for a while and survives.
 *
 * Mostly argo_op (39) with random ops 0..6, sometimes random hypercall
 * numbers; arguments are random 64-bit values, pointers into its own
 * memory (valid, with random contents), pointers just past the end of RAM,
 * unmapped or non-canonical pointers, random niov / npages / flags, gfn
 * lists with random gfns, and sendv aimed at the victims' domain ids and
 * ports. At the end it prints how many calls returned each errno and
 * returns 0.
 *
 * What keeps it alive: the VMM writes guest memory only (a) into the pages
 * of a ring it registered and (b) into notify's ring-data buffer. So every
 * gfn list that could register successfully names only pages of a scratch
 * area (or gfns that are not RAM at all), and every notify buffer is inside
 * the scratch area (or at an address that is not RAM). Pointers the VMM only
 * reads point anywhere. Its own state lives outside the scratch area.
 * Grant-table calls (20) are not made, since a future grant-table op could
 * write through its pointers.
 *
 * Params:
 *   seconds=<n>      run time (default 10), measured with RDTSC
 *   tsc_mhz=<n>      TSC frequency for that (default 2000)
 *   iterations=<n>   if set, make exactly this many calls instead
 *   victims=a,b,..   domain ids to aim sendv / notify / register at
 *   ports=p,q,..     their ports (default 1)
 *   seed=<n>         random seed (default: from the TSC)
 */
#include <argo.h>
#include <guest.h>

/*
 * Scratch layout, in pages: 0..47 ring pages (the only RAM gfns ever
 * offered for registration), 48..51 notify buffers, then one two-page slot
 * per argument structure. Only the first two regions are ever written by
 * the VMM. Argument structures are rebuilt before every call.
 */
#define SCRATCH_PAGES 64
#define SCRATCH_SIZE (SCRATCH_PAGES * ARGO_PAGE_SIZE)
#define RING_PAGES 48
#define NOTIFY_AREA (48 * ARGO_PAGE_SIZE)
#define NOTIFY_AREA_SIZE (4 * ARGO_PAGE_SIZE)
#define SLOT_REG 52
#define SLOT_UNREG 54
#define SLOT_SENDADDR 56
#define SLOT_IOV 58
#define SLOT_GFNS 60
#define MAX_GFNS 32
/* The largest notify buffer: header and 260 entries. */
#define NOTIFY_MAX (8 + 260 * 20)
#define MAX_VICTIMS 16
#define NERR 128

static uint8_t *scratch;
static uint64_t ram;
static uint64_t rng;
static uint16_t victims[MAX_VICTIMS];
static unsigned nvictims;
static uint32_t ports[MAX_VICTIMS];
static unsigned nports;
static uint64_t counts[NERR], ok_count, other_count, calls;
static uint64_t op_calls[8];

/* Rings this domain registered (port, partner), to unregister sometimes. */
static struct {
    uint32_t port;
    uint16_t partner;
} mine[32];
static unsigned nmine;

static unsigned parse_list(const char *s, uint64_t *out, unsigned max)
{
    unsigned n = 0;
    while (s && *s && n < max) {
        const char *end;
        out[n++] = (uint64_t)guest_strtol(s, &end);
        if (end == s)
            break;
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    return n;
}

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}

static uint64_t below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static int chance(unsigned percent)
{
    return below(100) < percent;
}

/* An address that is not RAM: past the end, unmapped, non-canonical, NULL. */
static uint64_t bad_ptr(void)
{
    switch (below(7)) {
    case 0: return ram + below(0x10000);                   /* just past RAM (still mapped) */
    case 1: return ram;                                    /* exactly the end */
    case 2: return 0x100000000ULL + below(1ULL << 36);     /* above the 4 GiB identity map */
    case 3: return 0x8000000000000000ULL | rnd();          /* non-canonical high */
    case 4: return 0x0000800000000000ULL + below(1ULL << 40); /* non-canonical, just above the hole */
    case 5: return below(0x1000);                          /* the unmapped null page */
    default: return 0xFFFFFFFFFFFFFFFFULL - below(64);     /* wraps around */
    }
}

/* A pointer the VMM may only read: anywhere at all. */
static uint64_t read_ptr(void)
{
    switch (below(8)) {
    case 0: return rnd();
    case 1:
    case 2: return (uint64_t)(uintptr_t)scratch + below(SCRATCH_SIZE);
    case 3: return 0x1000 + below(ram - 0x1000);           /* any RAM: code, tables, stack */
    case 4: return ram - below(64);                        /* straddles the end of RAM */
    default: return bad_ptr();
    }
}

/* A pointer the VMM may write through: the scratch area or not RAM. */
static uint64_t write_ptr(void)
{
    if (chance(80))
        return (uint64_t)(uintptr_t)scratch + below(SCRATCH_SIZE - NOTIFY_MAX);
    return bad_ptr();
}

/* A notify buffer: inside the notify area, any alignment. */
static uint8_t *notify_buf(void)
{
    return scratch + NOTIFY_AREA + below(NOTIFY_AREA_SIZE - NOTIFY_MAX);
}

static uint64_t scratch_gfn(void)
{
    return guest_virt_to_phys(scratch) / ARGO_PAGE_SIZE + below(RING_PAGES);
}

/* A gfn that may end up registered: a scratch page, or not RAM. */
static uint64_t safe_gfn(void)
{
    switch (below(10)) {
    case 0: return ram / ARGO_PAGE_SIZE + below(4);        /* just past RAM */
    case 1: return rnd();                                  /* usually far outside */
    case 2: return 0xFFFFFFFFFFFFFULL;                     /* largest 52-bit frame */
    default: return scratch_gfn();
    }
}

static uint16_t some_domain(void)
{
    switch (below(8)) {
    case 0: return guest_domid();
    case 1: return ARGO_DOMID_ANY;
    case 2: return 0;
    case 3: return (uint16_t)rnd();
    case 4: return (uint16_t)(1 + below(8));
    default: return nvictims ? victims[below(nvictims)] : (uint16_t)rnd();
    }
}

static uint32_t some_port(void)
{
    switch (below(4)) {
    case 0: return (uint32_t)rnd();
    case 1: return (uint32_t)below(8);
    default: return nports ? ports[below(nports)] : 1;
    }
}

static uint32_t some_len(void)
{
    switch (below(6)) {
    case 0: return (uint32_t)rnd();
    case 1: return (uint32_t)below(64);
    case 2: return ARGO_MAX_MESSAGE_SIZE + (uint32_t)below(64);
    default: return (uint32_t)below(5000);
    }
}

/* Fill some scratch bytes with random junk. */
static void scribble(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rnd();
        guest_memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

/* Where to put an n-byte argument structure: somewhere in its own two-page
 * slot, sometimes straddling the page boundary. */
static void *arg_area(unsigned slot, size_t n)
{
    return scratch + slot * ARGO_PAGE_SIZE + below(2 * ARGO_PAGE_SIZE - n);
}

static long do_register(uint64_t *a)
{
    uint32_t len_choices[] = { 48, 64, 4032, 4096 - 64 + 16, 8128, 40, 4000, 16 * 4096 - 64 };
    struct argo_register_ring *reg = arg_area(SLOT_REG, sizeof(*reg));
    uint64_t *gfns = arg_area(SLOT_GFNS, MAX_GFNS * 8);
    uint32_t npages;

    reg->aport = some_port();
    reg->partner_id = chance(40) ? guest_domid() : some_domain();
    reg->pad = chance(5) ? (uint16_t)rnd() : 0;
    reg->len = chance(10) ? (uint32_t)rnd() : len_choices[below(sizeof(len_choices) / 4)];
    npages = chance(80) ? argo_ring_pages(reg->len) : (uint32_t)below(40);
    for (unsigned i = 0; i < MAX_GFNS; i++)
        gfns[i] = safe_gfn();

    a[0] = ARGO_OP_REGISTER_RING;
    a[1] = (uint64_t)(uintptr_t)reg;
    a[2] = (uint64_t)(uintptr_t)gfns;
    a[3] = npages;
    a[4] = chance(80) ? 0 : (chance(50) ? ARGO_REGISTER_FLAG_FAIL_EXIST : rnd());
    if (npages > MAX_GFNS || chance(10)) {
        /* The VMM reads gfns that are not ours to choose (past the array,
         * or a list from anywhere): only with a reg that cannot be valid. */
        if (chance(50))
            a[2] = read_ptr();
        reg->pad = 1;
    } else if (chance(5)) {
        a[1] = read_ptr();   /* reg from anywhere, gfns safe */
    }
    long r = guest_hypercall(ARGO_HYPERCALL, a[0], a[1], a[2], a[3], a[4]);
    if (r == 0 && a[1] == (uint64_t)(uintptr_t)reg && nmine < 32) {
        mine[nmine].port = reg->aport;
        mine[nmine].partner = reg->partner_id;
        nmine++;
    }
    return r;
}

static long do_unregister(uint64_t *a)
{
    struct argo_unregister_ring *u = arg_area(SLOT_UNREG, sizeof(*u));
    if (nmine && chance(50)) {
        unsigned i = (unsigned)below(nmine);
        u->aport = mine[i].port;
        u->partner_id = mine[i].partner;
        mine[i] = mine[--nmine];
    } else {
        u->aport = some_port();
        u->partner_id = some_domain();
    }
    u->pad = chance(5) ? (uint16_t)rnd() : 0;
    a[0] = ARGO_OP_UNREGISTER_RING;
    a[1] = chance(85) ? (uint64_t)(uintptr_t)u : read_ptr();
    a[2] = chance(90) ? 0 : rnd();
    a[3] = 0;
    a[4] = 0;
    return guest_hypercall(ARGO_HYPERCALL, a[0], a[1], a[2], a[3], a[4]);
}

static long do_sendv(uint64_t *a)
{
    struct argo_send_addr *ad = arg_area(SLOT_SENDADDR, sizeof(*ad));
    struct argo_iov *iov = arg_area(SLOT_IOV, 10 * sizeof(*iov));
    uint64_t niov = chance(90) ? below(4) : below(12);

    ad->src.aport = some_port();
    ad->src.domain_id = chance(70) ? ARGO_DOMID_ANY : some_domain();
    ad->src.pad = chance(3) ? (uint16_t)rnd() : 0;
    ad->dst.aport = some_port();
    ad->dst.domain_id = some_domain();
    ad->dst.pad = chance(3) ? (uint16_t)rnd() : 0;
    for (unsigned i = 0; i < 10; i++) {
        iov[i].iov_hnd = read_ptr();
        iov[i].iov_len = some_len();
        iov[i].pad = chance(3) ? (uint32_t)rnd() : 0;
    }
    if (chance(30)) {
        /* A plausible send (to itself, where it may have rings, or to a
         * victim's port), so that ring writes and wrap-around happen. */
        ad->src.domain_id = ARGO_DOMID_ANY;
        ad->src.pad = ad->dst.pad = 0;
        ad->dst.domain_id = chance(60) ? guest_domid()
                                       : (nvictims ? victims[below(nvictims)] : guest_domid());
        if (chance(50) && nmine) {
            ad->dst.aport = mine[below(nmine)].port;
        }
        niov = 1 + below(3);
        for (unsigned i = 0; i < niov; i++) {
            iov[i].iov_hnd = chance(90) ? (uint64_t)(uintptr_t)scratch + below(SCRATCH_SIZE - 4096)
                                        : read_ptr();
            iov[i].iov_len = (uint32_t)below(chance(80) ? 300 : 5000);
            iov[i].pad = 0;
        }
    }
    a[0] = ARGO_OP_SENDV;
    a[1] = chance(90) ? (uint64_t)(uintptr_t)ad : read_ptr();
    a[2] = chance(90) ? (uint64_t)(uintptr_t)iov : read_ptr();
    a[3] = chance(97) ? niov : rnd();
    a[4] = chance(95) ? (uint32_t)rnd() : rnd();
    return guest_hypercall(ARGO_HYPERCALL, a[0], a[1], a[2], a[3], a[4]);
}

static long do_notify(uint64_t *a)
{
    struct argo_ring_data *d = (struct argo_ring_data *)notify_buf();
    uint32_t nent = chance(90) ? (uint32_t)below(8) : (chance(50) ? (uint32_t)below(260) : (uint32_t)rnd());

    d->nent = nent;
    d->pad = chance(5) ? (uint32_t)rnd() : 0;
    for (uint32_t i = 0; i < nent && i < 260; i++) {
        d->data[i].ring.aport = some_port();
        d->data[i].ring.domain_id = some_domain();
        d->data[i].ring.pad = chance(3) ? (uint16_t)rnd() : 0;
        d->data[i].flags = (uint16_t)rnd();
        d->data[i].pad = 0;
        d->data[i].space_required = some_len();
        d->data[i].max_message_size = (uint32_t)rnd();
    }
    a[0] = ARGO_OP_NOTIFY;
    a[1] = chance(15) ? 0 : (chance(85) ? (uint64_t)(uintptr_t)d : write_ptr());
    a[2] = chance(95) ? 0 : rnd();
    a[3] = 0;
    a[4] = 0;
    return guest_hypercall(ARGO_HYPERCALL, a[0], a[1], a[2], a[3], a[4]);
}

static long one_call(void)
{
    uint64_t a[5];
    unsigned op;

    if (chance(5)) {
        /* A random hypercall number (never 20, grant_table_op) with
         * random arguments; 39 gets only read-safe arguments below. */
        uint32_t nr;
        do
            nr = chance(50) ? (uint32_t)below(256) : (uint32_t)rnd();
        while (nr == 20 || nr == ARGO_HYPERCALL);
        op_calls[7]++;
        return guest_hypercall(nr, rnd(), rnd(), rnd(), rnd(), rnd());
    }
    op = (unsigned)below(7);
    op_calls[op]++;
    switch (op) {
    case ARGO_OP_REGISTER_RING:
        return do_register(a);
    case ARGO_OP_UNREGISTER_RING:
        return do_unregister(a);
    case ARGO_OP_SENDV:
        return do_sendv(a);
    case ARGO_OP_NOTIFY:
        return do_notify(a);
    default:
        /* ops 0, 5, 6: unknown; random read-only arguments. */
        return guest_hypercall(ARGO_HYPERCALL, chance(50) ? op : (rnd() | 8), read_ptr(), read_ptr(),
                               rnd(), rnd());
    }
}

static void on_virq(void)
{
}

int guest_main(void)
{
    uint64_t list[MAX_VICTIMS];
    uint64_t seconds = guest_param_u64("seconds", 10);
    uint64_t mhz = guest_param_u64("tsc_mhz", 2000);
    uint64_t iterations = guest_param_u64("iterations", 0);

    ram = guest_ram_size();
    rng = guest_param_u64("seed", guest_rdtsc()) | 1;
    nvictims = parse_list(guest_param("victims"), list, MAX_VICTIMS);
    for (unsigned i = 0; i < nvictims; i++)
        victims[i] = (uint16_t)list[i];
    nports = parse_list(guest_param("ports") ? guest_param("ports") : "1", list, MAX_VICTIMS);
    for (unsigned i = 0; i < nports; i++)
        ports[i] = (uint32_t)list[i];

    scratch = guest_alloc_pages(SCRATCH_PAGES);
    if (!scratch) {
        guest_puts("hostile: out of memory");
        return 1;
    }
    scribble(scratch, SCRATCH_SIZE);
    guest_set_virq_handler(on_virq);
    guest_printf("hostile: domain %u, %u victims, %s\n", guest_domid(), nvictims,
                 iterations ? "counting iterations" : "timed");

    uint64_t start = guest_rdtsc();
    uint64_t deadline = start + seconds * mhz * 1000000ULL;
    for (;;) {
        if (iterations ? calls >= iterations : guest_rdtsc() >= deadline)
            break;
        long r = one_call();
        calls++;
        if (r >= 0)
            ok_count++;
        else if (r > -NERR)
            counts[-r]++;
        else
            other_count++;
        if (chance(2))
            scribble(scratch + below(SCRATCH_SIZE - 256), 256);
        /* Take VIRQs (from sends to its own rings) now and then. */
        if ((calls & 1023) == 0)
            guest_poll_virq();
    }
    uint64_t cycles = guest_rdtsc() - start;

    guest_printf("hostile: %lu calls in %lu Mcycles (%lu register, %lu unregister, %lu sendv, %lu notify, %lu bad op, %lu other hypercalls)\n",
                 (unsigned long)calls, (unsigned long)(cycles / 1000000), (unsigned long)op_calls[1],
                 (unsigned long)op_calls[2], (unsigned long)op_calls[3], (unsigned long)op_calls[4],
                 (unsigned long)(op_calls[0] + op_calls[5] + op_calls[6]), (unsigned long)op_calls[7]);
    guest_printf("hostile: result ok (>= 0): %lu\n", (unsigned long)ok_count);
    for (unsigned e = 1; e < NERR; e++)
        if (counts[e])
            guest_printf("hostile: result -%u %s: %lu\n", e, guest_errno_name(-(long)(e)), (unsigned long)counts[e]);
    if (other_count)
        guest_printf("hostile: result other: %lu\n", (unsigned long)other_count);
    guest_printf("hostile: survived %lu calls\n", (unsigned long)calls);
    return 0;
}
