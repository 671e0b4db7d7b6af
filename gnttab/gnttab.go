package gnttab

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/argovisor/argovisor/hcall"
	"github.com/argovisor/argovisor/internal/hsync"
)

// Memory and Caller are the shared hypercall context (package hcall).
type (
	Memory = hcall.Memory
	Caller = hcall.Caller
)

// ErrNoSpace is what Window.Map returns (wrapped) when the grantee's share
// of the host's mapping resources is spent: the element gets
// GNTST_no_device_space, and an unmap makes room again.
var ErrNoSpace = errors.New("gnttab: no space left in the grant window's budget")

// Window maps granted frames into a grantee's grant window. GrantTables
// calls it with its own locks held: an implementation must not call back
// into GrantTables. Calls concerning one grantee never overlap (they are
// serialised by that grantee's maptrack lock or by the global lock).
type Window interface {
	// Map makes grantee's GPA gpa show granter's frame gfn, read-only if ro.
	// An error wrapping ErrNoSpace means the grantee's mapping budget is
	// spent (GNTST_no_device_space); any other error is
	// GNTST_general_error. Either way nothing is mapped.
	Map(grantee DomainID, gpa uint64, granter DomainID, gfn uint64, ro bool) error
	// Unmap puts inaccessible pages back at gpas (one batch; the
	// implementation coalesces contiguous runs). It never fails for lack
	// of budget: an unmap only ever gives budget back.
	Unmap(grantee DomainID, gpas []uint64) error
	// Revoke replaces the mappings at gpas with a dead page (reads zeros,
	// writes discarded): used when the granter dies or a policy revokes.
	// Like Unmap it never fails for lack of budget.
	Revoke(grantee DomainID, gpas []uint64) error
	// Valid reports whether gpa is a page-aligned address inside grantee's
	// grant window usable for a mapping of this kind (read-only maps live
	// in the read-only half).
	Valid(grantee DomainID, gpa uint64, ro bool) bool
}

// Config is a domain's grant-table configuration.
type Config struct {
	// MaxFrames is the most grant-table frames the domain may use
	// (DefaultMaxFrames when 0); 512 entries each.
	MaxFrames uint32
	// MaxMaptrackFrames bounds the domain's live mappings of other
	// domains' grants to MaxMaptrackFrames*256 (DefaultMaxMaptrack when 0).
	MaxMaptrackFrames uint32
	// MapFrom, if non-nil, lists the only granters this domain may map or
	// copy from (or to); others give GNTST_permission_denied.
	MapFrom []DomainID
}

// Stats are a domain's grant-table counters, as a mapping and copying
// domain.
type Stats struct {
	Maps, Unmaps, Copies, CopyBytes uint64
	// Revoked counts this domain's mappings revoked because their granter
	// died or a policy revoked them.
	Revoked uint64
	// Errors counts failed elements (status other than GNTST_okay) and
	// calls that returned a negative errno; ErrorsByStatus and
	// ErrorsByErrno split it.
	Errors         uint64
	ErrorsByStatus StatusCounts
	ErrorsByErrno  hcall.ErrnoCounts
	// Mapped is the number of live mappings now (revoked ones excluded).
	Mapped int64
}

type stats struct {
	maps, unmaps, copies, copyBytes, revoked, errors atomic.Uint64
	mapped                                           atomic.Int64
	statuses                                         [numStatus]atomic.Uint64 // index -GNTST_*
	errnos                                           hcall.ErrnoCounter
}

// failStatus counts n failed elements with status st.
func (s *stats) failStatus(st int16, n uint64) {
	s.errors.Add(n)
	i := -int(st)
	if i <= 0 || i >= numStatus {
		i = -GNTSTGeneralError
	}
	s.statuses[i].Add(n)
}

// failErrno counts a call that returned the negated errno ret.
func (s *stats) failErrno(ret int64) {
	s.errors.Add(1)
	s.errnos.Add(ret)
}

func (s *stats) snapshot() Stats {
	st := Stats{
		Maps: s.maps.Load(), Unmaps: s.unmaps.Load(), Copies: s.copies.Load(),
		CopyBytes: s.copyBytes.Load(), Revoked: s.revoked.Load(), Errors: s.errors.Load(),
		Mapped: s.mapped.Load(), ErrorsByErrno: s.errnos.Snapshot(),
	}
	for i := range s.statuses {
		st.ErrorsByStatus[i] = s.statuses[i].Load()
	}
	return st
}

// Lock classes, one per role in the hierarchy (for the lockdep build).
var (
	classL1       = hsync.NewClass("gnttab L1")
	classMaptrack = hsync.NewClass("gnttab maptrack")
	classTable    = hsync.NewClass("gnttab table")
)

// GrantTables is the grant-table state of one VMM: every domain's table,
// active entries and maptrack, and the global lock.
type GrantTables struct {
	w      Window
	signal func(DomainID)

	// l1 is the global lock. R(l1) for every operation; W(l1) only to add
	// a domain, to handle a death, to revoke by policy, or to remove a
	// domain. W(l1) makes every lower lock uncontended. Lock order: first.
	l1 hsync.RWMutex
	// alive holds the domains that can take part in grant operations.
	// +checklocks:l1
	alive map[DomainID]*domain
	// known holds every domain added and not yet removed, dead or alive,
	// so that Stats and idempotent teardown keep working after a death.
	// +checklocks:l1
	known map[DomainID]*domain
	// frames moves frames for GNTTABOP_transfer (nil: -EOPNOTSUPP).
	// +checklocks:l1
	frames Frames
}

// New makes an empty GrantTables. w maps granted frames into grantees;
// signal tells a domain that some of its mappings were revoked. signal is
// called with no gnttab lock held and must not block for long.
func New(w Window, signal func(DomainID)) *GrantTables {
	g := &GrantTables{w: w, signal: signal, alive: map[DomainID]*domain{}, known: map[DomainID]*domain{}}
	g.l1.Init(classL1)
	return g
}

// ErrDomainExists is returned by AddDomain for an id already present.
var ErrDomainExists = errors.New("gnttab: domain already exists")

// AddDomain makes domain id known. mem is its guest-physical RAM (granted
// frames and gmfn copies are taken from it). table is the host memory
// holding its grant-table frames, at least MaxFrames*4096 bytes and 8-byte
// aligned; the guest writes entries there and the VMM reads and updates
// them atomically. tableGPA is where the guest sees the table; setup_table
// reports frames tableGPA>>12 + i.
func (g *GrantTables) AddDomain(id DomainID, mem Memory, table []byte, tableGPA uint64, cfg Config) error {
	if id == DomainSelf {
		return fmt.Errorf("gnttab: domain id %#x is reserved", id)
	}
	if cfg.MaxFrames == 0 {
		cfg.MaxFrames = DefaultMaxFrames
	}
	if cfg.MaxMaptrackFrames == 0 {
		cfg.MaxMaptrackFrames = DefaultMaxMaptrack
	}
	if cfg.MaxFrames > maxConfigFrames || cfg.MaxMaptrackFrames > maxConfigFrames {
		return fmt.Errorf("gnttab: domain %d: limits too large (%d table frames, %d maptrack frames)",
			id, cfg.MaxFrames, cfg.MaxMaptrackFrames)
	}
	if uint64(len(table)) < uint64(cfg.MaxFrames)*PageSize {
		return fmt.Errorf("gnttab: domain %d: table is %d bytes, %d frames need %d",
			id, len(table), cfg.MaxFrames, uint64(cfg.MaxFrames)*PageSize)
	}
	if !aligned8(table) {
		return fmt.Errorf("gnttab: domain %d: table memory is not 8-byte aligned", id)
	}
	if tableGPA%PageSize != 0 {
		return fmt.Errorf("gnttab: domain %d: table GPA %#x is not page aligned", id, tableGPA)
	}
	d := newDomain(id, mem, table[:uint64(cfg.MaxFrames)*PageSize], tableGPA, cfg)
	g.l1.Lock()
	defer g.l1.Unlock()
	if g.known[id] != nil {
		return fmt.Errorf("%w: %d", ErrDomainExists, id)
	}
	g.known[id] = d
	g.alive[id] = d
	return nil
}

// Stats returns a domain's counters (also after its death, until
// RemoveDomain).
func (g *GrantTables) Stats(id DomainID) (Stats, bool) {
	g.l1.RLock()
	defer g.l1.RUnlock()
	d := g.known[id]
	if d == nil {
		return Stats{}, false
	}
	return d.stats.snapshot(), true
}

// domain is one domain's grant-table state: its table and active entries
// (as a granter) and its maptrack (as a mapper).
type domain struct {
	id        DomainID
	mem       Memory
	tableGPA  uint64
	maxFrames uint32
	maxHandle uint32            // MaxMaptrackFrames * HandlesPerFrame
	mapFrom   map[DomainID]bool // nil: may map from anyone
	stats     *stats

	// maptrackMu guards the domain's mappings of grants. It is held for
	// a whole map, unmap or revocation of this domain's mappings,
	// including the Window calls for its GPAs. Requires R(l1). Lock order:
	// after l1, before any domain's tableMu.
	maptrackMu hsync.Mutex
	// maptrack is indexed by handle; it grows a frame (256 handles) at a
	// time up to maxHandle.
	// +checklocks:maptrackMu
	maptrack []mapEntry
	// freeHandles lists released handles below len(maptrack).
	// +checklocks:maptrackMu
	freeHandles []uint32
	// byGPA maps every GPA this domain has a live or revoked mapping at
	// to its handle.
	// +checklocks:maptrackMu
	byGPA map[uint64]uint32
	// byGranter indexes live mappings by granter, for revocation.
	// +checklocks:maptrackMu
	byGranter map[DomainID]map[uint32]struct{}
	// unreported holds the revoked handles query_revoked has not
	// reported yet.
	// +checklocks:maptrackMu
	unreported map[uint32]struct{}

	// tableMu guards the table size, the active entries and every VMM
	// update of the shared table. Requires R(l1). Lock order: after every
	// maptrackMu; no other tableMu is taken while holding it.
	tableMu hsync.Mutex
	// table is the shared table memory (nil once the domain is dead: it
	// must not be touched again).
	// +checklocks:tableMu
	table []byte
	// nrFrames is the current table size in frames.
	// +checklocks:tableMu
	nrFrames uint32
	// active holds the pinned entries (Xen's active grant entries), by
	// ref. An entry is present exactly while its pin count is non-zero.
	// +checklocks:tableMu
	active map[uint32]*activeEntry
	// activeFrames counts the active entries per frame, so that a
	// transfer or a decrease_reservation can tell a pinned frame.
	// +checklocks:tableMu
	activeFrames map[uint64]int
}

func newDomain(id DomainID, mem Memory, table []byte, tableGPA uint64, cfg Config) *domain {
	d := &domain{
		id: id, mem: mem, tableGPA: tableGPA, maxFrames: cfg.MaxFrames,
		maxHandle: cfg.MaxMaptrackFrames * HandlesPerFrame, stats: &stats{},
	}
	if cfg.MapFrom != nil {
		d.mapFrom = map[DomainID]bool{}
		for _, m := range cfg.MapFrom {
			d.mapFrom[m] = true
		}
	}
	d.maptrackMu.Init(classMaptrack)
	d.tableMu.Init(classTable)
	d.maptrackMu.Lock()
	d.byGPA = map[uint64]uint32{}
	d.byGranter = map[DomainID]map[uint32]struct{}{}
	d.unreported = map[uint32]struct{}{}
	d.maptrackMu.Unlock()
	d.tableMu.Lock()
	d.table = table
	d.nrFrames = initialFrames
	d.active = map[uint32]*activeEntry{}
	d.activeFrames = map[uint64]int{}
	d.tableMu.Unlock()
	return d
}

// mayUse reports whether d's policy lets it map or copy granter's grants.
// A domain may always use its own.
func (d *domain) mayUse(granter DomainID) bool {
	return d.mapFrom == nil || granter == d.id || d.mapFrom[granter]
}

// activeEntry is the VMM-private state of a pinned grant.
type activeEntry struct {
	pin     uint32   // four 8-bit counters, pinHost*
	grantee DomainID // the one domain pinning it
	gfn     uint64   // frame cached at the first pin
	page    []byte   // the frame's host memory
}

// Maptrack entry states.
const (
	mapFree    = iota
	mapLive    // pins held in the granter's active entry
	mapRevoked // granter gone or access revoked: a dead page sits at gpa
)

// mapEntry is one of a domain's mappings (Xen's struct grant_mapping).
type mapEntry struct {
	state   uint8
	ro      bool
	ref     uint32
	granter DomainID
	gpa     uint64
}

// signals collects the domains to signal once the locks are dropped.
type signals struct {
	ids []DomainID
}

func (s *signals) add(id DomainID) {
	for _, x := range s.ids {
		if x == id {
			return
		}
	}
	s.ids = append(s.ids, id)
}

// raise signals every collected domain. Preconditions: no gnttab lock held.
func (g *GrantTables) raise(s *signals) {
	if g.signal == nil {
		return
	}
	for _, id := range s.ids {
		g.signal(id)
	}
}

// lookup resolves a domain id as the caller me sees it: DomainSelf and its
// own id are me, anything else must be alive.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) lookup(me *domain, id DomainID) *domain {
	g.l1.AssertRLocked()
	if id == DomainSelf || id == me.id {
		return me
	}
	return g.alive[id]
}

// isSelf reports whether id names the caller.
func (d *domain) isSelf(id DomainID) bool { return id == DomainSelf || id == d.id }
