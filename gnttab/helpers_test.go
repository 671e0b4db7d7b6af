package gnttab

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/argovisor/argovisor/internal/testutil"
)

// fakeDomain is a guest for unit tests: RAM is a byte slice, guest-virtual
// addresses equal guest-physical ones, and anything outside RAM (or page 0)
// faults. Its grant table is a separate slice, seen by the guest at
// testTableGPA.
type fakeDomain struct {
	id    DomainID
	ram   []byte
	table []byte
	brk   uint64 // bump allocator for pages
	sbrk  uint64 // wrapping allocator for buffers
	// absent, if set, reports frames that hold no page (the transfer
	// tests' physmap): accesses to them fault.
	absent func(gfn uint64) bool
}

const (
	testTableGPA = 0xF000_0000
	winBase      = 0x1_0000_0000 // grant window: RW half, then RO half
	winPages     = 1024
	winHalf      = winPages / 2 * PageSize
	bad          = 0x7FFF_FFFF_0000 // an address outside every fake domain
)

var errFault = errors.New("fault")

func newFakeDomain(id DomainID, ramSize uint64, maxFrames uint32) *fakeDomain {
	if maxFrames == 0 {
		maxFrames = DefaultMaxFrames
	}
	return &fakeDomain{id: id, ram: make([]byte, ramSize), table: make([]byte, uint64(maxFrames)*PageSize), brk: PageSize}
}

func (d *fakeDomain) Slice(gpa, n uint64) ([]byte, error) {
	end := gpa + n
	if end < gpa || end > uint64(len(d.ram)) || gpa < PageSize {
		return nil, errFault
	}
	if d.absent != nil && n > 0 {
		for g := gpa / PageSize; g <= (end-1)/PageSize; g++ {
			if d.absent(g) {
				return nil, errFault
			}
		}
	}
	return d.ram[gpa:end:end], nil
}

func (d *fakeDomain) Domain() DomainID { return d.id }

func (d *fakeDomain) ReadGuest(addr uint64, p []byte) error {
	b, err := d.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

func (d *fakeDomain) WriteGuest(addr uint64, p []byte) error {
	b, err := d.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// alloc reserves n bytes. Pages (page set) come from a bump allocator
// that never reuses memory; other buffers come from a scratch area at the
// top quarter of RAM that wraps around, so long tests do not run out.
func (d *fakeDomain) alloc(n uint64, page bool) uint64 {
	scratch := uint64(len(d.ram)) / 4 * 3
	if page {
		d.brk = (d.brk + PageSize - 1) &^ (PageSize - 1)
		a := d.brk
		d.brk += n
		if d.brk > scratch {
			panic("fake domain out of memory")
		}
		return a
	}
	d.sbrk = max((d.sbrk+15)&^15, scratch)
	if d.sbrk+n > uint64(len(d.ram)) {
		d.sbrk = scratch
	}
	a := d.sbrk
	d.sbrk += n
	return a
}

// put copies b into fresh memory and returns its address.
func (d *fakeDomain) put(b []byte) uint64 {
	a := d.alloc(uint64(len(b)), false)
	copy(d.ram[a:], b)
	return a
}

// page allocates a page and returns its frame number.
func (d *fakeDomain) page() uint64 { return d.alloc(PageSize, true) / PageSize }

// Guest side of the table, with the atomics a real guest would use.

func (d *fakeDomain) hdr(ref uint32) *uint32 { return word32(d.table, entryOff(ref)) }

// grant writes entry ref: frame first, then flags and domid together (the
// guest's "domid, frame, barrier, flags").
func (d *fakeDomain) grant(ref uint32, to DomainID, frame uint64, flags uint16) {
	atomic.StoreUint32(word32(d.table, entryOff(ref)+4), uint32(frame))
	atomic.StoreUint32(d.hdr(ref), uint32(flags)|uint32(to)<<16)
}

// flags returns entry ref's flags.
func (d *fakeDomain) flags(ref uint32) uint16 { return uint16(atomic.LoadUint32(d.hdr(ref))) }

// endAccess is the guest's gnttab_end_foreign_access_ref: clear the flags
// with a compare-and-exchange, unless the VMM marked the entry in use.
func (d *fakeDomain) endAccess(ref uint32) bool {
	for {
		old := atomic.LoadUint32(d.hdr(ref))
		if old&(GTFReading|GTFWriting) != 0 {
			return false
		}
		if atomic.CompareAndSwapUint32(d.hdr(ref), old, old&0xFFFF0000) {
			return true
		}
	}
}

// sigRecorder records which domains were signalled.
type sigRecorder = testutil.Counter[DomainID]

// winMapping is what the fake window shows at one grantee GPA.
type winMapping struct {
	granter DomainID
	gfn     uint64
	ro      bool
	dead    bool // revoked: the dead page
}

// fakeWindow models every grantee's grant window and records the calls.
// It reports protocol violations (mapping over a mapping, unmapping or
// revoking nothing, an invalid GPA, overlapping calls for one grantee).
type fakeWindow struct {
	mu           sync.Mutex
	m            map[DomainID]map[uint64]winMapping
	unmapBatches map[DomainID][][]uint64
	revokes      map[DomainID][][]uint64
	maps         int
	busy         map[DomainID]bool
	violations   testutil.Violations
	failMap      bool
	failUnmap    bool
	// budget, if set for a grantee, is how many pages its window may
	// show at once (live or dead); a map beyond it fails with
	// ErrNoSpace, as vmm's window does when its VMA share is spent.
	budget map[DomainID]int
}

func newFakeWindow() *fakeWindow {
	return &fakeWindow{m: map[DomainID]map[uint64]winMapping{}, unmapBatches: map[DomainID][][]uint64{},
		revokes: map[DomainID][][]uint64{}, busy: map[DomainID]bool{}}
}

// begin and end bracket a call and detect overlapping calls for one
// grantee.
func (w *fakeWindow) begin(id DomainID) {
	w.mu.Lock()
	if w.busy[id] {
		w.violations.Add("overlapping window calls for domain %d", id)
	}
	w.busy[id] = true
	w.mu.Unlock()
	runtime.Gosched() // widen the window for an overlapping call
}

func (w *fakeWindow) end(id DomainID) {
	w.mu.Lock()
	delete(w.busy, id)
	w.mu.Unlock()
}

func (w *fakeWindow) validLocked(gpa uint64, ro bool) bool {
	if gpa%PageSize != 0 || gpa < winBase || gpa >= winBase+2*winHalf {
		return false
	}
	return (gpa >= winBase+winHalf) == ro
}

func (w *fakeWindow) Valid(grantee DomainID, gpa uint64, ro bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.validLocked(gpa, ro)
}

func (w *fakeWindow) Map(grantee DomainID, gpa uint64, granter DomainID, gfn uint64, ro bool) error {
	w.begin(grantee)
	defer w.end(grantee)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failMap {
		return errFault
	}
	if n, ok := w.budget[grantee]; ok && len(w.m[grantee]) >= n {
		return fmt.Errorf("fake window of domain %d full (%d pages): %w", grantee, n, ErrNoSpace)
	}
	if !w.validLocked(gpa, ro) {
		w.violations.Add("map at invalid gpa %#x ro=%v", gpa, ro)
	}
	if w.m[grantee] == nil {
		w.m[grantee] = map[uint64]winMapping{}
	}
	if old, ok := w.m[grantee][gpa]; ok {
		w.violations.Add("dom%d: map over %+v at %#x", grantee, old, gpa)
	}
	w.m[grantee][gpa] = winMapping{granter: granter, gfn: gfn, ro: ro}
	w.maps++
	return nil
}

func (w *fakeWindow) Unmap(grantee DomainID, gpas []uint64) error {
	w.begin(grantee)
	defer w.end(grantee)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failUnmap {
		return errFault
	}
	w.unmapBatches[grantee] = append(w.unmapBatches[grantee], append([]uint64(nil), gpas...))
	for _, gpa := range gpas {
		if _, ok := w.m[grantee][gpa]; !ok {
			w.violations.Add("dom%d: unmap of nothing at %#x", grantee, gpa)
		}
		delete(w.m[grantee], gpa)
	}
	return nil
}

func (w *fakeWindow) Revoke(grantee DomainID, gpas []uint64) error {
	w.begin(grantee)
	defer w.end(grantee)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.revokes[grantee] = append(w.revokes[grantee], append([]uint64(nil), gpas...))
	for _, gpa := range gpas {
		m, ok := w.m[grantee][gpa]
		if !ok || m.dead {
			w.violations.Add("dom%d: revoke of %+v (present %v) at %#x", grantee, m, ok, gpa)
		}
		m.dead = true
		w.m[grantee][gpa] = m
	}
	return nil
}

// at returns what grantee sees at gpa.
func (w *fakeWindow) at(grantee DomainID, gpa uint64) (winMapping, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, ok := w.m[grantee][gpa]
	return m, ok
}

// mapped counts grantee's pages that are not inaccessible.
func (w *fakeWindow) mapped(grantee DomainID) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m[grantee])
}

func (w *fakeWindow) check(t testing.TB) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations.Report(t, "window:")
}

// rw and ro give the i'th page of the window's read-write and read-only
// halves.
func rw(i int) uint64 { return winBase + uint64(i)*PageSize }
func ro(i int) uint64 { return winBase + winHalf + uint64(i)*PageSize }

// world is a GrantTables with fake domains and a fake window.
type world struct {
	t   testing.TB
	g   *GrantTables
	win *fakeWindow
	sig *sigRecorder
	dom map[DomainID]*fakeDomain
}

func newWorld(t testing.TB) *world {
	s := &sigRecorder{}
	win := newFakeWindow()
	w := &world{t: t, g: New(win, s.Add), win: win, sig: s, dom: map[DomainID]*fakeDomain{}}
	if c, ok := t.(interface{ Cleanup(func()) }); ok {
		c.Cleanup(func() { win.check(t) })
	}
	return w
}

func (w *world) add(id DomainID, cfg Config) *fakeDomain {
	w.t.Helper()
	d := newFakeDomain(id, 4<<20, cfg.MaxFrames)
	if err := w.g.AddDomain(id, d, d.table, testTableGPA, cfg); err != nil {
		w.t.Fatal(err)
	}
	w.dom[id] = d
	return d
}

// mapArgs is one map_grant_ref element; mapRes its outputs.
type mapArgs struct {
	dom   DomainID
	ref   uint32
	flags uint32
	gpa   uint64
}

type mapRes struct {
	status int16
	handle uint32
	dev    uint64
}

func mapBytes(ops ...mapArgs) []byte {
	b := make([]byte, len(ops)*sizeofMap)
	for i, op := range ops {
		x := b[i*sizeofMap:]
		le.PutUint64(x[0:], op.gpa)
		le.PutUint32(x[8:], op.flags)
		le.PutUint32(x[12:], op.ref)
		le.PutUint16(x[16:], uint16(op.dom))
		le.PutUint16(x[18:], 0x7777) // must be overwritten
		le.PutUint32(x[20:], 0xDEADBEEF)
		le.PutUint64(x[24:], 0xDEAD)
	}
	return b
}

// mapBatch runs one map_grant_ref call and returns its result and outputs.
func (w *world) mapBatch(d *fakeDomain, ops ...mapArgs) (int64, []mapRes) {
	a := d.put(mapBytes(ops...))
	ret := w.g.Op(d, OpMapGrantRef, a, uint64(len(ops)))
	res := make([]mapRes, len(ops))
	for i := range ops {
		x := d.ram[a+uint64(i)*sizeofMap:]
		res[i] = mapRes{status: int16(le.Uint16(x[18:])), handle: le.Uint32(x[20:]), dev: le.Uint64(x[24:])}
	}
	return ret, res
}

// mapOne maps one grant and returns status and handle (failing the test
// on a non-zero return value).
func (w *world) mapOne(d *fakeDomain, dom DomainID, ref uint32, flags uint32, gpa uint64) (int16, uint32) {
	w.t.Helper()
	ret, res := w.mapBatch(d, mapArgs{dom: dom, ref: ref, flags: flags, gpa: gpa})
	if ret != 0 {
		w.t.Fatalf("map_grant_ref returned %d", ret)
	}
	return res[0].status, res[0].handle
}

func (w *world) mustMap(d *fakeDomain, dom DomainID, ref uint32, flags uint32, gpa uint64) uint32 {
	w.t.Helper()
	st, h := w.mapOne(d, dom, ref, flags, gpa)
	if st != GNTSTOkay {
		w.t.Fatalf("dom%d map dom%d ref %d flags %#x at %#x: status %d", d.id, dom, ref, flags, gpa, st)
	}
	return h
}

// unmapArgs is one unmap_grant_ref (or unmap_and_replace) element.
type unmapArgs struct {
	gpa    uint64
	second uint64 // dev_bus_addr, or new_addr
	handle uint32
}

func (w *world) unmapBatchCmd(d *fakeDomain, cmd uint64, ops ...unmapArgs) (int64, []int16) {
	b := make([]byte, len(ops)*sizeofUnmap)
	for i, op := range ops {
		x := b[i*sizeofUnmap:]
		le.PutUint64(x[0:], op.gpa)
		le.PutUint64(x[8:], op.second)
		le.PutUint32(x[16:], op.handle)
		le.PutUint16(x[20:], 0x7777)
	}
	return w.statusBatch(d, cmd, b, sizeofUnmap, 20)
}

// statusBatch runs one cmd call over the elements of size bytes in b and
// returns its result and each element's status, the int16 at statusOff.
func (w *world) statusBatch(d *fakeDomain, cmd uint64, b []byte, size, statusOff uint64) (int64, []int16) {
	n := uint64(len(b)) / size
	a := d.put(b)
	ret := w.g.Op(d, cmd, a, n)
	st := make([]int16, n)
	for i := range st {
		st[i] = int16(le.Uint16(d.ram[a+uint64(i)*size+statusOff:]))
	}
	return ret, st
}

func (w *world) unmapBatch(d *fakeDomain, ops ...unmapArgs) (int64, []int16) {
	return w.unmapBatchCmd(d, OpUnmapGrantRef, ops...)
}

func (w *world) unmapOne(d *fakeDomain, h uint32, gpa uint64) int16 {
	w.t.Helper()
	ret, st := w.unmapBatch(d, unmapArgs{gpa: gpa, handle: h})
	if ret != 0 {
		w.t.Fatalf("unmap_grant_ref returned %d", ret)
	}
	return st[0]
}

// copyArgs is one gnttab_copy element.
type copyArgs struct {
	src, dst copyPtr
	len      uint16
	flags    uint16
}

func gref(dom DomainID, ref uint32, off uint16) copyPtr {
	return copyPtr{refOrGmfn: uint64(ref), dom: dom, offset: off}
}

func gmfn(dom DomainID, frame uint64, off uint16) copyPtr {
	return copyPtr{refOrGmfn: frame, dom: dom, offset: off}
}

func putCopyPtr(b []byte, p copyPtr) {
	le.PutUint64(b[0:], p.refOrGmfn)
	le.PutUint16(b[8:], uint16(p.dom))
	le.PutUint16(b[10:], p.offset)
}

func copyBytes(ops ...copyArgs) []byte {
	b := make([]byte, len(ops)*sizeofCopy)
	for i, op := range ops {
		x := b[i*sizeofCopy:]
		putCopyPtr(x[0:], op.src)
		putCopyPtr(x[16:], op.dst)
		le.PutUint16(x[32:], op.len)
		le.PutUint16(x[34:], op.flags)
		le.PutUint16(x[36:], 0x7777)
	}
	return b
}

func (w *world) copyBatch(d *fakeDomain, ops ...copyArgs) (int64, []int16) {
	return w.statusBatch(d, OpCopy, copyBytes(ops...), sizeofCopy, 36)
}

func (w *world) copyOne(d *fakeDomain, op copyArgs) int16 {
	w.t.Helper()
	ret, st := w.copyBatch(d, op)
	if ret != 0 {
		w.t.Fatalf("copy returned %d", ret)
	}
	return st[0]
}

// querySize runs query_size for dom and returns (ret, status, nr, max).
func (w *world) querySize(d *fakeDomain, dom DomainID) (int64, int16, uint32, uint32) {
	b := make([]byte, sizeofQuerySize)
	le.PutUint16(b[0:], uint16(dom))
	le.PutUint16(b[12:], 0x7777)
	a := d.put(b)
	ret := w.g.Op(d, OpQuerySize, a, 1)
	x := d.ram[a:]
	return ret, int16(le.Uint16(x[12:])), le.Uint32(x[4:]), le.Uint32(x[8:])
}

// setupTable runs setup_table and returns (ret, status).
func (w *world) setupTable(d *fakeDomain, dom DomainID, nr uint32, list uint64) (int64, int16) {
	b := make([]byte, sizeofSetupTable)
	le.PutUint16(b[0:], uint16(dom))
	le.PutUint32(b[4:], nr)
	le.PutUint16(b[8:], 0x7777)
	le.PutUint64(b[16:], list)
	a := d.put(b)
	ret := w.g.Op(d, OpSetupTable, a, 1)
	return ret, int16(le.Uint16(d.ram[a+8:]))
}

// queryRevoked runs op 64 with room for capacity handles.
func (w *world) queryRevoked(d *fakeDomain, capacity uint32) (int64, []uint32) {
	arr := d.alloc(4*uint64(capacity)+4, false)
	b := make([]byte, sizeofQueryRevoked)
	le.PutUint32(b[0:], capacity)
	le.PutUint64(b[8:], arr)
	a := d.put(b)
	ret := w.g.Op(d, OpQueryRevoked, a, 1)
	n := le.Uint32(d.ram[a:])
	var hs []uint32
	for i := range uint64(n) {
		hs = append(hs, le.Uint32(d.ram[arr+4*i:]))
	}
	return ret, hs
}

func expect(t testing.TB, what string, got, want int64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %d, want %d", what, got, want)
	}
}

func expectSt(t testing.TB, what string, got int16, want int16) {
	t.Helper()
	if got != want {
		t.Errorf("%s: status %d, want %d", what, got, want)
	}
}

// Internal views for white-box checks.

func (w *world) domainOf(id DomainID) *domain {
	w.g.l1.RLock()
	defer w.g.l1.RUnlock()
	return w.g.known[id]
}

// pins returns the pin word of d's entry ref (0 if not active).
func (w *world) pins(id DomainID, ref uint32) uint32 {
	d := w.domainOf(id)
	d.tableMu.Lock()
	defer d.tableMu.Unlock()
	if a := d.active[ref]; a != nil {
		return a.pin
	}
	return 0
}

// activeCount is the number of d's pinned entries.
func (w *world) activeCount(id DomainID) int {
	d := w.domainOf(id)
	d.tableMu.Lock()
	defer d.tableMu.Unlock()
	return len(d.active)
}

// handles lists d's allocated handles (live or revoked).
func (w *world) handles(id DomainID) []uint32 {
	d := w.domainOf(id)
	d.maptrackMu.Lock()
	defer d.maptrackMu.Unlock()
	var hs []uint32
	for h, e := range d.maptrack {
		if e.state != mapFree {
			hs = append(hs, uint32(h))
		}
	}
	return hs
}

var errFrames = errors.New("frames refuse")

// fakeFrames is Frames over fake domains' RAM: it keeps which frames are
// empty, taken or reserved, the room left in each reservation and a set
// of "Argo ring" frames, and moves page contents. Each populated frame
// holds a page with an identity of its own, which a move carries to the
// receiver, so that a test can check that no page is ever in two places
// and count where a domain's pages went. It reports protocol violations
// (dropping or moving a frame that was not taken, moving to a frame that
// was not reserved).
type fakeFrames struct {
	// dom is the domains by id (shared with the test's world, so later
	// additions are seen).
	dom map[DomainID]*fakeDomain
	// mu guards the fields below.
	mu       sync.Mutex
	empty    map[DomainID]map[uint64]bool
	taken    map[DomainID]map[uint64]bool
	reserved map[DomainID]map[uint64]bool
	room     map[DomainID]int
	ring     map[DomainID]map[uint64]bool
	// page is the identity of the page in each populated frame (taken
	// frames included: a taken page is still its owner's until moved or
	// dropped); nextPage the next identity to hand out.
	page     map[DomainID]map[uint64]uint64
	nextPage uint64
	// moved counts pages moved per (from, to); lost the pages dropped per
	// domain; events lists moves and drops since the last takeEvents.
	moved      map[[2]DomainID]int
	lost       map[DomainID]int
	events     []frameEvent
	failMove   bool
	violations testutil.Violations
}

// frameEvent is one page leaving a frame: moved to (to, toGFN), or
// dropped (moved false).
type frameEvent struct {
	from      DomainID
	gfn       uint64
	to        DomainID
	toGFN     uint64
	moved     bool
	fromBytes []byte // the page as it left
}

// newFakeFrames makes a fakeFrames over dom and enables transfers on g
// with it.
func newFakeFrames(g *GrantTables, dom map[DomainID]*fakeDomain) *fakeFrames {
	f := &fakeFrames{dom: dom, empty: map[DomainID]map[uint64]bool{}, taken: map[DomainID]map[uint64]bool{},
		reserved: map[DomainID]map[uint64]bool{}, room: map[DomainID]int{}, ring: map[DomainID]map[uint64]bool{},
		page: map[DomainID]map[uint64]uint64{}, moved: map[[2]DomainID]int{}, lost: map[DomainID]int{}}
	g.SetFrames(f)
	return f
}

// attach gives d a physmap: every RAM frame but frame 0 populated with a
// page of its own, room for room more pages; accesses to empty or taken
// frames fault.
func (f *fakeFrames) attach(d *fakeDomain, room int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.empty[d.id], f.taken[d.id], f.reserved[d.id], f.ring[d.id] = map[uint64]bool{}, map[uint64]bool{}, map[uint64]bool{}, map[uint64]bool{}
	f.page[d.id] = map[uint64]uint64{}
	for g := uint64(1); g < uint64(len(d.ram))/PageSize; g++ {
		f.nextPage++
		f.page[d.id][g] = f.nextPage
	}
	f.room[d.id] = room
	id := d.id
	d.absent = func(g uint64) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.empty[id][g] || f.taken[id][g]
	}
}

// makeEmpty empties a frame as a decrease_reservation would.
func (f *fakeFrames) makeEmpty(d *fakeDomain, gfn uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.empty[d.id][gfn] = true
	delete(f.page[d.id], gfn)
	f.room[d.id]++
	clear(d.ram[gfn*PageSize : (gfn+1)*PageSize])
}

// populate gives empty frame gfn a fresh zeroed page, as a
// populate_physmap would, without charging the reservation (the tests use
// it to give a guest back a working page).
func (f *fakeFrames) populate(d *fakeDomain, gfn uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.empty[d.id][gfn] {
		return
	}
	delete(f.empty[d.id], gfn)
	f.nextPage++
	f.page[d.id][gfn] = f.nextPage
	clear(d.ram[gfn*PageSize : (gfn+1)*PageSize])
}

func (f *fakeFrames) isEmpty(id DomainID, gfn uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.empty[id][gfn]
}

// pages counts the pages domain id holds.
func (f *fakeFrames) pages(id DomainID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.page[id])
}

// takeEvents returns and forgets the moves and drops so far.
func (f *fakeFrames) takeEvents() []frameEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := f.events
	f.events = nil
	return ev
}

func (f *fakeFrames) Take(from DomainID, gfn uint64, inUse func() bool) error {
	f.mu.Lock()
	d := f.dom[from]
	if gfn >= uint64(len(d.ram))/PageSize || gfn == 0 || f.empty[from][gfn] || f.taken[from][gfn] {
		f.mu.Unlock()
		return errFrames
	}
	f.taken[from][gfn] = true
	ring := f.ring[from][gfn]
	f.mu.Unlock()
	if ring || inUse() {
		f.mu.Lock()
		delete(f.taken[from], gfn)
		f.mu.Unlock()
		return errFrames
	}
	return nil
}

func (f *fakeFrames) Drop(from DomainID, gfn uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.taken[from][gfn] {
		f.violations.Add("dom%d: drop of frame %#x that was not taken", from, gfn)
	}
	src := f.dom[from].ram[gfn*PageSize : (gfn+1)*PageSize]
	f.events = append(f.events, frameEvent{from: from, gfn: gfn, fromBytes: append([]byte(nil), src...)})
	delete(f.taken[from], gfn)
	delete(f.page[from], gfn)
	f.empty[from][gfn] = true
	f.room[from]++
	f.lost[from]++
	clear(src)
	return nil
}

func (f *fakeFrames) Reserve(to DomainID, gfn uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.dom[to]
	if gfn >= uint64(len(d.ram))/PageSize || !f.empty[to][gfn] || f.reserved[to][gfn] || f.room[to] == 0 {
		return errFrames
	}
	f.reserved[to][gfn] = true
	f.room[to]--
	return nil
}

func (f *fakeFrames) Unreserve(to DomainID, gfn uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.reserved[to][gfn] {
		f.violations.Add("dom%d: unreserve of frame %#x that was not reserved", to, gfn)
	}
	delete(f.reserved[to], gfn)
	f.room[to]++
}

func (f *fakeFrames) Move(from DomainID, gfn uint64, to DomainID, toGFN uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failMove {
		return errFrames
	}
	if !f.taken[from][gfn] || !f.reserved[to][toGFN] {
		f.violations.Add("move dom%d %#x (taken %v) to dom%d %#x (reserved %v)", from, gfn, f.taken[from][gfn], to, toGFN, f.reserved[to][toGFN])
	}
	src, dst := f.dom[from].ram[gfn*PageSize:(gfn+1)*PageSize], f.dom[to].ram[toGFN*PageSize:(toGFN+1)*PageSize]
	f.events = append(f.events, frameEvent{from: from, gfn: gfn, to: to, toGFN: toGFN, moved: true, fromBytes: append([]byte(nil), src...)})
	copy(dst, src)
	clear(src)
	delete(f.taken[from], gfn)
	delete(f.reserved[to], toGFN)
	f.empty[from][gfn] = true
	delete(f.empty[to], toGFN)
	f.page[to][toGFN] = f.page[from][gfn]
	delete(f.page[from], gfn)
	f.room[from]++
	f.moved[[2]DomainID{from, to}]++
	return nil
}

// check reports violations, frames left taken or reserved, and any page
// found in two frames or a populated frame without a page.
func (f *fakeFrames) check(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.violations.Report(t, "frames:")
	for id, m := range f.taken {
		for g := range m {
			t.Errorf("dom%d frame %#x left taken", id, g)
		}
	}
	for id, m := range f.reserved {
		for g := range m {
			t.Errorf("dom%d frame %#x left reserved", id, g)
		}
	}
	where := map[uint64][2]uint64{}
	for id, m := range f.page {
		for g, p := range m {
			if w, ok := where[p]; ok {
				t.Errorf("page %d is both dom%d's frame %#x and dom%d's frame %#x", p, w[0], w[1], id, g)
			}
			where[p] = [2]uint64{uint64(id), g}
			if f.empty[id][g] {
				t.Errorf("dom%d's frame %#x is empty and holds page %d", id, g, p)
			}
		}
		for g := uint64(1); g < uint64(len(f.dom[id].ram))/PageSize; g++ {
			if _, ok := m[g]; !ok && !f.empty[id][g] {
				t.Errorf("dom%d's frame %#x is neither empty nor holds a page", id, g)
			}
		}
	}
}
