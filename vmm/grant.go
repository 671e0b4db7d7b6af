package vmm

import (
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"sync"

	"github.com/argovisor/argovisor/gnttab"
	"golang.org/x/sys/unix"
)

// Grant-table guest-physical regions (docs/memory-layout.md).
const (
	// GrantTableGPA is where a domain's grant table frames appear.
	GrantTableGPA = 0xC0000000
	// MaxGrantFrames bounds [domain.gnttab] max_frames.
	MaxGrantFrames = 1024
	// GrantWindowGPA starts the grant window: the read-write half, then
	// the read-only half.
	GrantWindowGPA = 0xC8000000
	// GrantWindowHalf is the size of each half.
	GrantWindowHalf = 256 << 20
	// GrantWindowROGPA starts the read-only half.
	GrantWindowROGPA = GrantWindowGPA + GrantWindowHalf

	slotRAM       = 0
	slotGrantTab  = 1
	slotWindowRW  = 2
	slotWindowRO  = 3
	grantWinBytes = 2 * GrantWindowHalf
)

// ErrWindow is returned for a window operation on an address outside the
// window or not page aligned.
var ErrWindow = errors.New("address outside the grant window")

// grantWindow is a domain's grant window: one host address range, reserved
// inaccessible, registered with KVM as two memory slots (the read-only half
// with KVM_MEM_READONLY, so a guest write there is an MMIO exit the VMM
// drops). Granted pages are placed into it with mmap(MAP_FIXED) of the
// granter's memfd; KVM's MMU notifier sees the change, so no memory slot is
// added or removed per grant.
//
// Every mmap into the window may split the VMA it lands in, and the
// process may hold only vm.max_map_count VMAs in all, so the window keeps
// to a share of them (limit) with two counts (docs/limits.md):
//
//   - charged = pages showing something + runs of inaccessible pages. A map
//     is refused (gnttab.ErrNoSpace) if it would raise charged above limit;
//     an unmap or revocation never raises it.
//   - vmas = 1 + the places where the window's VMAs may have a boundary,
//     which are the two ends of every mmap the VMM made in the window
//     unless a later mmap covered them. The kernel only splits VMAs where
//     an mmap starts or ends, and may merge neighbours, so the window never
//     has more than vmas VMAs, whatever the kernel merges.
//
// vmas can exceed charged, since the cheap way to unmap a page leaves the
// run of inaccessible pages around it in several pieces (the kernel
// usually merges them; this does not count on it). When an operation
// would take vmas past limit, the window first remaps such runs whole
// with one mmap each (defragLocked), which brings vmas down to at most
// charged. So the kernel's VMAs in the window never exceed limit.
type grantWindow struct {
	base  uintptr // host address of GrantWindowGPA
	limit int     // the share of VMAs (max_window_vmas)

	// mu serialises changes to the mappings and guards everything below.
	// Leaf lock.
	mu sync.Mutex
	// used has a bit per window page that shows something: a granted
	// frame or a revoked dead page. The others are inaccessible. A guest
	// write to the read-only half arrives as an MMIO exit whatever the
	// backing, so the VMM needs this to stop a domain that writes to an
	// unmapped page there, as touching one in the read-write half does.
	// +checklocks:mu
	used bitset
	// nused counts the set bits of used.
	// +checklocks:mu
	nused int
	// gaps counts the maximal runs of clear bits of used.
	// +checklocks:mu
	gaps int
	// edge has bit i set where a VMA boundary may lie between pages i-1
	// and i (1 <= i < windowPages).
	// +checklocks:mu
	edge bitset
	// vmas is 1 + the set bits of edge.
	// +checklocks:mu
	vmas int
	// peak is the highest max(charged, vmas) so far.
	// +checklocks:mu
	peak int
	// refused counts maps refused for lack of budget.
	// +checklocks:mu
	refused uint64
	// remaps counts runs of inaccessible pages remapped whole to bring
	// vmas down.
	// +checklocks:mu
	remaps uint64
	// overruns counts operations after which vmas exceeded limit (never,
	// if the reasoning above holds).
	// +checklocks:mu
	overruns uint64
}

// windowPages is the number of pages in the grant window.
const windowPages = grantWinBytes / PageSize

// newGrantWindow reserves the window's host address range; limit is its
// share of VMAs (at least MinWindowVMAs).
func newGrantWindow(limit int) (*grantWindow, error) {
	p, err := mmapAnon(0, grantWinBytes, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("reserve grant window (%d MiB): %w", grantWinBytes>>20, err)
	}
	return &grantWindow{base: p, limit: limit, used: newBitset(windowPages), edge: newBitset(windowPages),
		gaps: 1, vmas: 1, peak: 1}, nil
}

func (w *grantWindow) close() error {
	if w == nil || w.base == 0 {
		return nil
	}
	err := munmapAddr(w.base, grantWinBytes)
	w.base = 0
	if err != nil {
		return fmt.Errorf("munmap grant window: %w", err)
	}
	return nil
}

// valid reports whether gpa is a page in the half of the window used for
// mappings of this kind.
func windowValid(gpa uint64, ro bool) bool {
	if gpa%PageSize != 0 {
		return false
	}
	lo := uint64(GrantWindowGPA)
	if ro {
		lo = GrantWindowROGPA
	}
	return gpa >= lo && gpa < lo+GrantWindowHalf
}

func (w *grantWindow) hostAddr(gpa uint64) uintptr { return w.base + uintptr(gpa-GrantWindowGPA) }

// mapFrame makes gpa show page gfn of the memfd fd. It fails with an
// error wrapping gnttab.ErrNoSpace if that would take the window over its
// share of VMAs.
func (w *grantWindow) mapFrame(gpa uint64, fd int, gfn uint64, ro bool) error {
	if !windowValid(gpa, ro) {
		return fmt.Errorf("map grant at %#x: %w", gpa, ErrWindow)
	}
	prot := unix.PROT_READ
	if !ro {
		prot |= unix.PROT_WRITE
	}
	p := int((gpa - GrantWindowGPA) / PageSize)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.charged()+w.mapCostLocked(p) > w.limit {
		w.refused++
		return fmt.Errorf("map grant at %#x: the window's share of %d VMAs is spent: %w", gpa, w.limit, gnttab.ErrNoSpace)
	}
	if w.vmas+w.edgeDeltaLocked(p, p+1) > w.limit {
		w.defragLocked(p, p+1)
	}
	_, err := mmapFile(w.hostAddr(gpa), PageSize, prot, unix.MAP_SHARED|unix.MAP_FIXED, fd, int64(gfn*PageSize))
	w.mmappedLocked(p, p+1, err == nil)
	if err != nil {
		return fmt.Errorf("mmap granted frame %#x at %#x: %w", gfn, gpa, err)
	}
	w.setUsedLocked(p, true)
	w.notePeakLocked()
	return nil
}

// roWriteDropped reports whether a guest write at gpa in the read-only
// half hits a mapped page (the write is then dropped, as documented) rather
// than an unmapped one.
func (w *grantWindow) roWriteDropped(gpa uint64) bool {
	if !inReadOnlyWindow(gpa) {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.used.has(int((gpa - GrantWindowGPA) / PageSize))
}

// inReadOnlyWindow reports whether gpa lies in the read-only half.
func inReadOnlyWindow(gpa uint64) bool {
	return gpa >= GrantWindowROGPA && gpa < GrantWindowROGPA+GrantWindowHalf
}

// replace puts anonymous pages back at gpas, one mmap call per run of
// contiguous pages (so a batch of adjacent unmaps costs one invalidation).
// dead pages are zero pages the mapper may keep reading and writing: its
// writes land in a private copy that belongs to nobody and is dropped at
// unmap (revocation: the mapper keeps running, the granter never sees
// them); otherwise the pages are inaccessible (unmap: touching one stops
// the domain with a fault). Neither ever needs budget: an unmap lowers
// charged, a revocation keeps it, and either may remap whole runs of
// inaccessible pages to keep vmas within the limit.
func (w *grantWindow) replace(gpas []uint64, dead bool) error {
	for _, g := range gpas {
		if g%PageSize != 0 || g < GrantWindowGPA || g >= GrantWindowGPA+grantWinBytes {
			return fmt.Errorf("unmap grant at %#x: %w", g, ErrWindow)
		}
	}
	sorted := append([]uint64(nil), gpas...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for i := 0; i < len(sorted); {
		// [i, j) is a run of adjacent (or repeated) pages in one half.
		j := i + 1
		for j < len(sorted) && (sorted[j] == sorted[j-1] ||
			sorted[j] == sorted[j-1]+PageSize && (sorted[j] >= GrantWindowROGPA) == (sorted[i] >= GrantWindowROGPA)) {
			j++
		}
		lo := int((sorted[i] - GrantWindowGPA) / PageSize)
		hi := int((sorted[j-1]-GrantWindowGPA)/PageSize) + 1
		var err error
		if dead {
			err = w.reviveLocked(lo, hi)
		} else {
			err = w.clearLocked(lo, hi)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("replace grant pages at %#x (+%d): %w", sorted[i], hi-lo, err))
		}
		i = j
	}
	w.notePeakLocked()
	return errors.Join(errs...)
}

// clearLocked makes pages [lo, hi) inaccessible. It maps just those pages
// unless that would take vmas over the limit; then it maps the whole run
// of inaccessible pages around them as one VMA.
// Preconditions: w.mu.
// +checklocks:w.mu
func (w *grantWindow) clearLocked(lo, hi int) error {
	for p := lo; p < hi; p++ {
		w.setUsedLocked(p, false)
	}
	if w.vmas+w.edgeDeltaLocked(lo, hi) > w.limit {
		lo = w.used.prev(lo, true) + 1
		hi = w.used.next(hi, windowPages, true)
		w.remaps++
		if w.vmas+w.edgeDeltaLocked(lo, hi) > w.limit {
			w.defragLocked(lo, hi)
		}
	}
	return w.reserveLocked(lo, hi)
}

// reviveLocked puts dead pages at [lo, hi).
// Preconditions: w.mu.
// +checklocks:w.mu
func (w *grantWindow) reviveLocked(lo, hi int) error {
	for p := lo; p < hi; p++ {
		w.setUsedLocked(p, true) // already set for every live mapping
	}
	if w.vmas+w.edgeDeltaLocked(lo, hi) > w.limit {
		w.defragLocked(lo, hi)
	}
	_, err := mmapAnon(w.pageAddr(lo), uintptr(hi-lo)*PageSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|unix.MAP_NORESERVE)
	w.mmappedLocked(lo, hi, err == nil)
	return err
}

// reserveLocked maps inaccessible anonymous memory at pages [lo, hi).
// Preconditions: w.mu.
// +checklocks:w.mu
func (w *grantWindow) reserveLocked(lo, hi int) error {
	_, err := mmapAnon(w.pageAddr(lo), uintptr(hi-lo)*PageSize, unix.PROT_NONE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|unix.MAP_NORESERVE)
	w.mmappedLocked(lo, hi, err == nil)
	return err
}

func (w *grantWindow) pageAddr(p int) uintptr { return w.base + uintptr(p)*PageSize }

// charged is the VMA count the budget holds the window to: pages showing
// something, plus runs of inaccessible pages. Each run is one VMA once
// defragmented, and each page at most one more.
// Preconditions: w.mu.
// +checklocks:w.mu
func (w *grantWindow) charged() int { return w.nused + w.gaps }

// mapCostLocked is how much mapping page p raises charged: one for each
// neighbour that is inaccessible (the page splits a run, shortens one, or
// fills a one-page hole).
// Preconditions: w.mu.
// +checklocks:w.mu
func (w *grantWindow) mapCostLocked(p int) int {
	if w.used.has(p) {
		return 0
	}
	n := 0
	if p > 0 && !w.used.has(p-1) {
		n++
	}
	if p < windowPages-1 && !w.used.has(p+1) {
		n++
	}
	return n
}

// setUsedLocked marks page p as showing something (on) or inaccessible,
// keeping nused and gaps.
// Preconditions: w.mu.
// +checklocks:w.mu
func (w *grantWindow) setUsedLocked(p int, on bool) {
	if w.used.has(p) == on {
		return
	}
	n := 0 // inaccessible neighbours
	if p > 0 && !w.used.has(p-1) {
		n++
	}
	if p < windowPages-1 && !w.used.has(p+1) {
		n++
	}
	if on {
		w.used.set(p)
		w.nused++
		w.gaps += n - 1 // a run splits (2), shrinks (1) or goes (0)
	} else {
		w.used.clear(p)
		w.nused--
		w.gaps += 1 - n // a run appears (0), grows (1) or two join (2)
	}
}

// edgeDeltaLocked is how much one mmap over pages [lo, hi) changes vmas:
// it adds boundaries at its ends and removes those inside.
// Preconditions: w.mu.
// +checklocks:w.mu
func (w *grantWindow) edgeDeltaLocked(lo, hi int) int {
	d := -w.edge.count(lo+1, hi)
	if lo > 0 && !w.edge.has(lo) {
		d++
	}
	if hi < windowPages && !w.edge.has(hi) {
		d++
	}
	return d
}

// mmappedLocked records an mmap over pages [lo, hi). After a failed one
// the kernel's VMAs there are unknown, so boundaries are added at the
// ends and none are removed.
// Preconditions: w.mu.
// +checklocks:w.mu
func (w *grantWindow) mmappedLocked(lo, hi int, ok bool) {
	if ok {
		w.vmas -= w.edge.clearRange(lo+1, hi)
	}
	if lo > 0 && !w.edge.has(lo) {
		w.edge.set(lo)
		w.vmas++
	}
	if hi < windowPages && !w.edge.has(hi) {
		w.edge.set(hi)
		w.vmas++
	}
}

// defragLocked remaps runs of inaccessible pages that may span several
// VMAs, each with one mmap, until an mmap over [lo, hi) fits within the
// limit. Remapping every such run leaves each run one VMA, so vmas is
// then at most charged.
// Preconditions: w.mu.
// +checklocks:w.mu
func (w *grantWindow) defragLocked(lo, hi int) {
	for g0 := w.used.next(0, windowPages, false); g0 < windowPages; {
		if w.vmas+w.edgeDeltaLocked(lo, hi) <= w.limit {
			return
		}
		g1 := w.used.next(g0, windowPages, true)
		if w.edge.count(g0+1, g1) > 0 {
			// A failure leaves vmas as it was; the caller goes on
			// regardless (an unmap or revocation cannot be refused).
			_ = w.reserveLocked(g0, g1)
			w.remaps++
		}
		g0 = w.used.next(g1, windowPages, false)
	}
}

// notePeakLocked updates peak and overruns after an operation.
// Preconditions: w.mu.
// +checklocks:w.mu
func (w *grantWindow) notePeakLocked() {
	n := max(w.charged(), w.vmas)
	w.peak = max(w.peak, n)
	if w.vmas > w.limit {
		w.overruns++
	}
}

// WindowStats are a domain's grant-window counters (docs/limits.md).
type WindowStats struct {
	// Limit is the window's share of VMAs ([domain.gnttab]
	// max_window_vmas).
	Limit int
	// Pages is the number of window pages showing a granted frame or a
	// dead page.
	Pages int
	// Charged is what the budget counts now: Pages plus the runs of
	// inaccessible pages; Peak is the most ever charged or held.
	Charged, Peak int
	// VMAs is an upper bound of the VMAs the window has now.
	VMAs int
	// Refused counts maps refused with GNTST_no_device_space.
	Refused uint64
	// Remaps counts runs of inaccessible pages remapped whole to keep
	// VMAs within the limit.
	Remaps uint64
}

func (w *grantWindow) stats() WindowStats {
	if w == nil {
		return WindowStats{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return WindowStats{Limit: w.limit, Pages: w.nused, Charged: w.charged(), Peak: w.peak, VMAs: w.vmas,
		Refused: w.refused, Remaps: w.remaps}
}

// bitset is a fixed-size set of small integers.
type bitset []uint64

func newBitset(n int) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) clear(i int)    { b[i>>6] &^= 1 << (i & 63) }

// mask is the bits of word w that lie in [lo, hi).
func mask(w, lo, hi int) uint64 {
	m := ^uint64(0)
	if s := lo - w*64; s > 0 {
		m &= ^uint64(0) << s
	}
	if e := hi - w*64; e < 64 {
		m &= ^(^uint64(0) << e)
	}
	return m
}

// count returns how many of [lo, hi) are set.
func (b bitset) count(lo, hi int) int {
	n := 0
	for w := lo >> 6; lo < hi && w <= (hi-1)>>6; w++ {
		n += bits.OnesCount64(b[w] & mask(w, lo, hi))
	}
	return n
}

// clearRange clears [lo, hi) and returns how many were set.
func (b bitset) clearRange(lo, hi int) int {
	n := 0
	for w := lo >> 6; lo < hi && w <= (hi-1)>>6; w++ {
		m := mask(w, lo, hi)
		n += bits.OnesCount64(b[w] & m)
		b[w] &^= m
	}
	return n
}

// next returns the first i in [from, n) whose bit is v, or n.
func (b bitset) next(from, n int, v bool) int {
	for w := from >> 6; from < n && w <= (n-1)>>6; w++ {
		x := b[w]
		if !v {
			x = ^x
		}
		if x &= mask(w, from, n); x != 0 {
			return w*64 + bits.TrailingZeros64(x)
		}
	}
	return n
}

// prev returns the last i < before whose bit is v, or -1.
func (b bitset) prev(before int, v bool) int {
	for w := (before - 1) >> 6; before > 0 && w >= 0; w-- {
		x := b[w]
		if !v {
			x = ^x
		}
		if x &= mask(w, 0, before); x != 0 {
			return w*64 + 63 - bits.LeadingZeros64(x)
		}
	}
	return -1
}
