package argo

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

// Policy is a domain's Argo access control (the config's [domain.argo]).
type Policy struct {
	// Enabled gives the domain Argo state. A disabled domain gets
	// -EOPNOTSUPP for every op, and others get -ECONNREFUSED when they
	// target it.
	Enabled bool
	// Wildcard lets the domain register rings any domain may send to
	// (Xen's mac-permissive); otherwise such a registration is -EPERM.
	Wildcard bool
	// SendTo, if non-nil, lists the only domains this one may send to or
	// query with notify; others get -EACCES (Xen's XSM send hook).
	SendTo []DomainID
	// Name and Label are the identity the VMM vouches for (OpDomainInfo):
	// the domain's configured name and label. Longer values are cut to
	// MaxNameLen and MaxLabelLen bytes.
	Name, Label string
}

// Stats are a domain's Argo counters.
type Stats struct {
	Rings                                         int64 // registered now
	MsgsOut, BytesOut, MsgsIn, BytesIn            uint64
	EAGAINs, Notifies, Signals, Registers, Errors uint64
	// ErrorsByErrno splits Errors by the errno returned, so an expected
	// -ECONNREFUSED (a peer not yet registered) is told from a fault.
	ErrorsByErrno hcall.ErrnoCounts
	// Suppressed counts messages that arrived in this domain's
	// extended-header rings without a VIRQ (rx_flags/rx_event said so).
	Suppressed uint64
	// Waits counts wait operations that found all their rings;
	// WaitsBlocked those of them that slept at least once.
	Waits, WaitsBlocked uint64
	// SpaceWaits counts batched sends (BatchWaitSpace) that slept at
	// least once for space in a ring. A wait for space is not an -EAGAIN
	// and not an error.
	SpaceWaits uint64
}

type stats struct {
	rings                                         atomic.Int64
	msgsOut, bytesOut, msgsIn, bytesIn            atomic.Uint64
	eagains, notifies, signals, registers, errors atomic.Uint64
	errnos                                        hcall.ErrnoCounter
	suppressed, waits, waitsBlocked, spaceWaits   atomic.Uint64
}

func (s *stats) snapshot() Stats {
	return Stats{
		Rings: s.rings.Load(), MsgsOut: s.msgsOut.Load(), BytesOut: s.bytesOut.Load(),
		MsgsIn: s.msgsIn.Load(), BytesIn: s.bytesIn.Load(), EAGAINs: s.eagains.Load(),
		Notifies: s.notifies.Load(), Signals: s.signals.Load(), Registers: s.registers.Load(),
		Errors: s.errors.Load(), ErrorsByErrno: s.errnos.Snapshot(), Suppressed: s.suppressed.Load(),
		Waits: s.waits.Load(), WaitsBlocked: s.waitsBlocked.Load(), SpaceWaits: s.spaceWaits.Load(),
	}
}

// domainInfo is what Argo knows about every domain that exists, Argo state
// or not. Its fields are immutable after AddDomain, except ended.
type domainInfo struct {
	id          DomainID
	enabled     bool
	wildcard    bool
	sendTo      map[DomainID]bool // nil: may send anywhere
	name, label string
	stats       *stats
	wq          *waitq      // the domain's vCPUs waiting in OpWait/OpSendWait
	ended       atomic.Bool // set by Teardown: the domain's vCPUs have stopped
}

func (d *domainInfo) maySendTo(dst DomainID) bool {
	return d.sendTo == nil || d.sendTo[dst]
}

// Lock classes, one per role in the hierarchy (for the lockdep build).
var (
	classL1         = hsync.NewClass("L1")
	classRingsL2    = hsync.NewClass("rings_L2")
	classSendL2     = hsync.NewClass("send_L2")
	classWildcardL2 = hsync.NewClass("wildcard_L2")
	classL3         = hsync.NewClass("L3")
	classWaitq      = hsync.NewClass("waitq")
)

// Argo is the Argo state of one VMM: every domain's rings and the global L1
// lock. Many Argo values can live in one process.
type Argo struct {
	signal func(DomainID)
	host   atomic.Pointer[Host] // domain 0's endpoint, if any

	// l1 is Xen's L1_global_argo_rwlock. R(l1) for every operation;
	// W(l1) only to add, tear down or remove a domain, and W(l1) implies
	// every lower lock is uncontended. Lock order: first.
	l1 hsync.RWMutex
	// known holds every existing domain.
	// +checklocks:l1
	known map[DomainID]*domainInfo
	// state holds the Argo state of domains that have it (Xen's d->argo).
	// +checklocks:l1
	state map[DomainID]*domainArgo

	// raceHook, set only by tests before any operation, runs inside a
	// send to an extended-header ring between its first reading of
	// rx_ptr and the -EAGAIN decision, so a test can put a reader's
	// rx_ptr store in the window the tx_wanted protocol must cover.
	raceHook func()
	// spaceHook, set only by tests before any operation, runs in a
	// batch waiting for space (BatchWaitSpace) after an entry found its
	// ring full and before the batch arms its wait queue, under R(L1):
	// the window that the look after arming must cover.
	spaceHook func()
}

// New makes an empty Argo. signal raises a domain's VIRQ; it is called
// with no Argo lock held and must not block for long.
func New(signal func(DomainID)) *Argo {
	a := &Argo{signal: signal, known: map[DomainID]*domainInfo{}, state: map[DomainID]*domainArgo{}}
	a.l1.Init(classL1)
	return a
}

// ErrDomainExists is returned by AddDomain for an id already present.
var ErrDomainExists = errors.New("argo: domain already exists")

// AddDomain makes domain id known to Argo, with Argo state if the policy
// enables it. mem is the domain's guest-physical memory (ring pages are
// taken from it).
func (a *Argo) AddDomain(id DomainID, mem Memory, p Policy) error {
	if id == DomainAny {
		return fmt.Errorf("argo: domain id %#x is reserved", id)
	}
	info := &domainInfo{id: id, enabled: p.Enabled, wildcard: p.Wildcard, stats: &stats{}, wq: newWaitq(),
		name: truncate(p.Name, MaxNameLen), label: truncate(p.Label, MaxLabelLen)}
	if p.SendTo != nil {
		info.sendTo = map[DomainID]bool{}
		for _, d := range p.SendTo {
			info.sendTo[d] = true
		}
	}
	a.l1.Lock()
	defer a.l1.Unlock()
	if a.known[id] != nil {
		return fmt.Errorf("%w: %d", ErrDomainExists, id)
	}
	a.known[id] = info
	if p.Enabled {
		a.state[id] = newDomainArgo(id, mem, info)
	}
	return nil
}

func truncate(s string, n int) string { return s[:min(len(s), n)] }

// Stats returns a domain's counters (also after teardown).
func (a *Argo) Stats(id DomainID) (Stats, bool) {
	a.l1.RLock()
	defer a.l1.RUnlock()
	info := a.known[id]
	if info == nil {
		return Stats{}, false
	}
	return info.stats.snapshot(), true
}

// domainArgo is one domain's Argo state (Xen's struct argo_domain).
type domainArgo struct {
	id   DomainID
	mem  Memory
	info *domainInfo

	// ringsL2 guards the ring table. R to look rings up, W to add,
	// remove or re-register one. Requires R(L1). Lock order: after l1,
	// before L3 and send_L2.
	ringsL2 hsync.RWMutex
	// rings are the rings this domain owns, by (port, partner).
	// +checklocks:ringsL2
	rings map[ringKey]*ring

	// sendL2 guards sendInfo. Requires R(L1); no rings_L2 may be taken
	// while holding it.
	sendL2 hsync.Mutex
	// sendInfo lists the unicast rings other domains registered with
	// this domain as the partner, so they can be torn down with it.
	// +checklocks:sendL2
	sendInfo map[ringRef]struct{}

	// wildcardL2 guards wildcardPending. Requires R(L1); leaf.
	wildcardL2 hsync.Mutex
	// wildcardPending lists the wildcard rings on which this domain has
	// a pending space request, so it can be cancelled when it dies.
	// +checklocks:wildcardL2
	wildcardPending map[ringRef]struct{}
}

func newDomainArgo(id DomainID, mem Memory, info *domainInfo) *domainArgo {
	d := &domainArgo{id: id, mem: mem, info: info}
	d.ringsL2.Init(classRingsL2)
	d.sendL2.Init(classSendL2)
	d.wildcardL2.Init(classWildcardL2)
	d.ringsL2.Lock()
	d.rings = map[ringKey]*ring{}
	d.ringsL2.Unlock()
	d.sendL2.Lock()
	d.sendInfo = map[ringRef]struct{}{}
	d.sendL2.Unlock()
	d.wildcardL2.Lock()
	d.wildcardPending = map[ringRef]struct{}{}
	d.wildcardL2.Unlock()
	return d
}

// ringKey identifies a ring inside its owner: (aport, partner).
type ringKey struct {
	port    uint32
	partner DomainID
}

// ringRef names a ring across domains: (owner, aport); the partner is
// implied by where the reference is kept.
type ringRef struct {
	owner DomainID
	port  uint32
}

// signals collects the domains to signal, and the wait queues to wake,
// once the locks are dropped. It is a value type with room for the common
// case so that an operation that signals a few domains does not allocate
// (no slice points into the value itself, so it stays on the stack).
type signals struct {
	ids smallSet[DomainID]
	wqs smallSet[*waitq]
}

// wake adds a domain's wait queue: data arrived in one of its rings (or a
// ring of it went away), whether or not a VIRQ is raised for it.
func (s *signals) wake(q *waitq) { s.wqs.add(q) }

func (s *signals) has(id DomainID) bool { return s.ids.has(id) }

func (s *signals) add(id DomainID) { s.ids.add(id) }

// remove drops id from the collected domains.
func (s *signals) remove(id DomainID) { s.ids.remove(id) }

// smallSet is a set that holds its first four members inline and the
// rest in a slice, in the order added.
type smallSet[T comparable] struct {
	buf  [4]T
	n    int // used entries of buf
	more []T // beyond buf
}

func (s *smallSet[T]) has(x T) bool {
	for _, y := range s.buf[:s.n] {
		if y == x {
			return true
		}
	}
	for _, y := range s.more {
		if y == x {
			return true
		}
	}
	return false
}

func (s *smallSet[T]) add(x T) {
	if s.has(x) {
		return
	}
	if s.n < len(s.buf) {
		s.buf[s.n] = x
		s.n++
		return
	}
	s.more = append(s.more, x)
}

func (s *smallSet[T]) remove(x T) {
	for i, y := range s.buf[:s.n] {
		if y == x {
			copy(s.buf[i:], s.buf[i+1:s.n])
			s.n--
			if len(s.more) > 0 { // keep buf full while more has entries
				s.buf[s.n], s.more = s.more[0], s.more[1:]
				s.n++
			}
			return
		}
	}
	for i, y := range s.more {
		if y == x {
			s.more = append(s.more[:i], s.more[i+1:]...)
			return
		}
	}
}

// each calls f for every member, in the order added.
func (s *smallSet[T]) each(f func(T)) {
	for _, x := range s.buf[:s.n] {
		f(x)
	}
	for _, x := range s.more {
		f(x)
	}
}

// raise signals every collected domain. Preconditions: no ring lock held.
// +checklocksignore
func (a *Argo) raise(s *signals) {
	s.wqs.each((*waitq).wake)
	s.ids.each(a.raiseOne)
}

func (a *Argo) raiseOne(id DomainID) {
	if h := a.host.Load(); id == HostDomain && h != nil {
		h.signalled()
		return
	}
	if a.signal != nil {
		a.signal(id)
	}
}

// assertReadL1 is LOCKING_Read_L1.
func (a *Argo) assertReadL1() { a.l1.AssertRLocked() }

// assertWriteL1 is LOCKING_Write_L1.
func (a *Argo) assertWriteL1() { a.l1.AssertLocked() }

// assertReadRingsL2 is LOCKING_Read_rings_L2(d): R(L1) and R(rings_L2),
// or W(L1).
func (a *Argo) assertReadRingsL2(d *domainArgo) {
	hsync.Assert((a.l1.IsRLocked() && d.ringsL2.IsRLocked()) || a.l1.IsLocked(), "R(rings_L2)")
}

// assertWriteRingsL2 is LOCKING_Write_rings_L2(d).
func (a *Argo) assertWriteRingsL2(d *domainArgo) {
	hsync.Assert((a.l1.IsRLocked() && d.ringsL2.IsLocked()) || a.l1.IsLocked(), "W(rings_L2)")
}

// assertL3 is LOCKING_L3(d, r): R(L1), R(rings_L2) and L3 held, or
// W(rings_L2).
func (a *Argo) assertL3(d *domainArgo, r *ring) {
	r.l3.AssertLocked()
	a.assertReadRingsL2(d)
}
