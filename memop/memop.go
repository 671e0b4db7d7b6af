package memop

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/argovisor/argovisor/hcall"
	"github.com/argovisor/argovisor/internal/hsync"
)

// Caller is the context of one hypercall (package hcall's, shared with
// argo and gnttab).
type Caller = hcall.Caller

// Backing is the host memory behind the domains' frames. memop calls it
// with none of its locks held, and only for frames it has reserved for the
// call (busy), so two calls never concern the same frame at once.
type Backing interface {
	// Remove takes frames [gfn, gfn+n) away from domain id: a guest
	// access to them must fault from now on, and their memory goes back
	// to the host. On error nothing may have changed.
	Remove(id DomainID, gfn, n uint64) error
	// Populate gives frames [gfn, gfn+n) of id fresh zeroed pages the
	// guest can read and write. On error nothing may have changed.
	Populate(id DomainID, gfn, n uint64) error
	// Move makes the contents of from's frame gfn appear at to's frame
	// toGFN (a guest access there works from now on) and removes from's
	// frame as Remove does. On error nothing may have changed.
	Move(from DomainID, gfn uint64, to DomainID, toGFN uint64) error
}

// InUse reports whether any of frames [gfn, gfn+n) of domain id is held
// by another mechanism (a pinned grant, an Argo ring), which stops a
// decrease_reservation there. It is called with no memop lock held, after
// the frames stopped being Present, so a mechanism that takes a frame only
// while it is Present, and records it under the lock InUse takes, is never
// missed.
type InUse func(id DomainID, gfn, n uint64) bool

// Config is a domain's memory configuration.
type Config struct {
	// Pages are populated when the domain is created: frames [0, Pages).
	Pages uint64
	// MaxPages is both the domain's RAM region (frames [0, MaxPages) may
	// be populated) and its maximum reservation (Xen's max_pages).
	// Default: Pages.
	MaxPages uint64
	// MaxHoles bounds the separate runs of empty frames inside the
	// region (default DefaultMaxHoles); an operation that would make more
	// is refused.
	MaxHoles int
}

// Stats are a domain's reservation and counters.
type Stats struct {
	// Current is the current reservation in pages (Xen's tot_pages):
	// populated frames plus pages added by increase_reservation.
	Current uint64
	// Max is the maximum reservation in pages.
	Max uint64
	// Holes is the number of separate runs of empty frames.
	Holes int
	// Pages removed by decrease_reservation, populated by
	// populate_physmap, and added (unplaced) by increase_reservation.
	Decreased, Populated, Increased uint64
	// Frames this domain transferred away (or lost in a failed transfer)
	// and frames it received.
	TransfersOut, TransfersIn uint64
	// Errors counts calls that returned an error or did fewer extents
	// than asked.
	Errors uint64
}

type stats struct {
	decreased, populated, increased, transfersOut, transfersIn, errors atomic.Uint64
}

// Errors of the frame operations.
var (
	ErrNoDomain     = errors.New("memop: no such domain")
	ErrDead         = errors.New("memop: domain is dead")
	ErrNotPopulated = errors.New("memop: frame is not populated or is busy")
	ErrNotEmpty     = errors.New("memop: frame is outside the region, populated or busy")
	ErrNoRoom       = errors.New("memop: domain is at its maximum reservation")
	ErrTooManyHoles = errors.New("memop: too many separate empty runs")
	ErrInUse        = errors.New("memop: frame is in use")
	ErrDomainExists = errors.New("memop: domain already exists")
)

// Lock classes, one per role (for the lockdep build).
var (
	classL1  = hsync.NewClass("memop L1")
	classP2M = hsync.NewClass("memop p2m")
)

// Memop is the memory-reservation state of one VMM.
type Memop struct {
	b     Backing
	inUse InUse

	// l1 guards domains. W only to add, kill or remove a domain; R for
	// lookups. Nothing is called while it is held. Lock order: before
	// every Domain.mu.
	l1 hsync.RWMutex
	// domains holds every domain added and not yet removed.
	// +checklocks:l1
	domains map[DomainID]*Domain
}

// New makes an empty Memop. b is the host memory; inUse (may be nil) is
// asked before a decrease_reservation takes frames away.
func New(b Backing, inUse InUse) *Memop {
	m := &Memop{b: b, inUse: inUse, domains: map[DomainID]*Domain{}}
	m.l1.Init(classL1)
	return m
}

// Domain is one domain's physmap and reservation.
type Domain struct {
	id    DomainID
	pages uint64 // the RAM region in frames (MaxPages)
	stats stats

	// present has one bit per frame: set while the VMM may touch the
	// frame. Read without locks (Present); written under mu.
	present []atomic.Uint64

	// mu guards the physmap and the counts below. Leaf lock: taken
	// after l1 when both are held; nothing is called while it is held.
	mu hsync.Mutex
	// mapped has one bit per frame: set while the frame is populated
	// (committed state; an operation in flight does not change it).
	// +checklocks:mu
	mapped []uint64
	// taking has one bit per populated frame an operation in flight is
	// taking away; filling one per empty frame one is populating.
	// +checklocks:mu
	taking []uint64
	// +checklocks:mu
	filling []uint64
	// tot is the current reservation (Xen's tot_pages).
	// +checklocks:mu
	tot uint64
	// max is the maximum reservation (Xen's max_pages).
	// +checklocks:mu
	max uint64
	// holes counts the maximal runs of empty frames in mapped.
	// +checklocks:mu
	holes int
	// pending is the sum of est: how many more holes the operations in
	// flight may make.
	// +checklocks:mu
	pending int
	// est holds, by first frame, the holes each operation in flight was
	// estimated to add (only positive estimates are kept).
	// +checklocks:mu
	est map[uint64]int
	// maxHoles bounds holes.
	// +checklocks:mu
	maxHoles int
	// dead is set once the domain has died: no frame changes hands any
	// more.
	// +checklocks:mu
	dead bool
}

// AddDomain adds domain id with frames [0, cfg.Pages) populated and
// returns its state (whose Present the VMM's memory accessors use).
func (m *Memop) AddDomain(id DomainID, cfg Config) (*Domain, error) {
	if id == DomainSelf {
		return nil, fmt.Errorf("memop: domain id %#x is reserved", id)
	}
	if cfg.MaxPages == 0 {
		cfg.MaxPages = cfg.Pages
	}
	if cfg.MaxHoles == 0 {
		cfg.MaxHoles = DefaultMaxHoles
	}
	if cfg.Pages == 0 || cfg.MaxPages < cfg.Pages || cfg.MaxPages > 1<<32 || cfg.MaxHoles < 1 {
		return nil, fmt.Errorf("memop: domain %d: bad limits (%d pages, max %d, %d holes)", id, cfg.Pages, cfg.MaxPages, cfg.MaxHoles)
	}
	words := (cfg.MaxPages + 63) / 64
	d := &Domain{id: id, pages: cfg.MaxPages, present: make([]atomic.Uint64, words)}
	d.mu.Init(classP2M)
	d.mu.Lock()
	d.mapped = make([]uint64, words)
	d.taking = make([]uint64, words)
	d.filling = make([]uint64, words)
	d.est = map[uint64]int{}
	setBits(d.mapped, 0, cfg.Pages)
	d.setPresentLocked(0, cfg.Pages, true)
	d.tot, d.max, d.maxHoles = cfg.Pages, cfg.MaxPages, cfg.MaxHoles
	if cfg.Pages < cfg.MaxPages {
		d.holes = 1 // the tail of the region
	}
	d.mu.Unlock()

	m.l1.Lock()
	defer m.l1.Unlock()
	if m.domains[id] != nil {
		return nil, fmt.Errorf("%w: %d", ErrDomainExists, id)
	}
	m.domains[id] = d
	return d, nil
}

// DomainDied marks a domain dead: its frames no longer change hands, and
// transfers to it fail. Its counters stay readable until RemoveDomain.
// Idempotent.
func (m *Memop) DomainDied(id DomainID) {
	m.l1.Lock()
	defer m.l1.Unlock()
	if d := m.domains[id]; d != nil {
		d.mu.Lock()
		d.dead = true
		d.mu.Unlock()
	}
}

// RemoveDomain forgets a domain (after DomainDied's effect); its id may be
// added again.
func (m *Memop) RemoveDomain(id DomainID) {
	m.DomainDied(id)
	m.l1.Lock()
	defer m.l1.Unlock()
	delete(m.domains, id)
}

// domain looks id up; the result stays usable after l1 is dropped.
func (m *Memop) domain(id DomainID) *Domain {
	m.l1.RLock()
	defer m.l1.RUnlock()
	return m.domains[id]
}

// Stats returns a domain's reservation and counters.
func (m *Memop) Stats(id DomainID) (Stats, bool) {
	d := m.domain(id)
	if d == nil {
		return Stats{}, false
	}
	return d.Stats(), true
}

// Stats returns the domain's reservation and counters.
func (d *Domain) Stats() Stats {
	d.mu.Lock()
	s := Stats{Current: d.tot, Max: d.max, Holes: d.holes}
	d.mu.Unlock()
	s.Decreased, s.Populated, s.Increased = d.stats.decreased.Load(), d.stats.populated.Load(), d.stats.increased.Load()
	s.TransfersOut, s.TransfersIn = d.stats.transfersOut.Load(), d.stats.transfersIn.Load()
	s.Errors = d.stats.errors.Load()
	return s
}

// Pages is the size of the domain's RAM region in frames.
func (d *Domain) Pages() uint64 { return d.pages }

// Present reports whether every frame of [gfn, gfn+n) is populated and
// not on its way out, that is, whether the VMM may touch it. n == 0 asks
// about nothing and is true. It takes no lock.
func (d *Domain) Present(gfn, n uint64) bool {
	if n == 0 {
		return true
	}
	if !d.inRegion(gfn, n) {
		return false
	}
	for g := gfn; g < gfn+n; g++ {
		if d.present[g/64].Load()&(1<<(g%64)) == 0 {
			return false
		}
	}
	return true
}

// inRegion reports whether [gfn, gfn+n) is a non-empty range inside the
// region.
func (d *Domain) inRegion(gfn, n uint64) bool {
	return n > 0 && gfn < d.pages && n <= d.pages-gfn
}

// setPresentLocked sets or clears the present bits of [gfn, gfn+n).
// Preconditions: d.mu.
// +checklocks:d.mu
func (d *Domain) setPresentLocked(gfn, n uint64, on bool) {
	d.mu.AssertLocked()
	for g := gfn; g < gfn+n; g++ {
		if on {
			d.present[g/64].Or(1 << (g % 64))
		} else {
			d.present[g/64].And(^uint64(1 << (g % 64)))
		}
	}
}

// Bitmap helpers over plain words.

func bit(w []uint64, i uint64) bool { return w[i/64]&(1<<(i%64)) != 0 }

func setBits(w []uint64, i, n uint64) {
	for g := i; g < i+n; g++ {
		w[g/64] |= 1 << (g % 64)
	}
}

func clearBits(w []uint64, i, n uint64) {
	for g := i; g < i+n; g++ {
		w[g/64] &^= 1 << (g % 64)
	}
}

// allSet reports whether every bit of [i, i+n) is set; anySet whether one
// is.
func allSet(w []uint64, i, n uint64) bool {
	for g := i; g < i+n; g++ {
		if !bit(w, g) {
			return false
		}
	}
	return true
}

func anySet(w []uint64, i, n uint64) bool {
	for g := i; g < i+n; g++ {
		if bit(w, g) {
			return true
		}
	}
	return false
}
