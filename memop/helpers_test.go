package memop

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/argovisor/argovisor/internal/testutil"
)

var errHost = errors.New("host refuses")

// fakeHost is a Backing that keeps each populated frame's contents and
// reports protocol violations: removing or moving a frame that holds no
// page, populating or moving onto one that does.
type fakeHost struct {
	mu         sync.Mutex
	pages      map[DomainID]map[uint64][]byte
	removes    int
	populates  int
	moves      int
	fail       map[string]bool // "remove", "populate", "move"
	okRemoves  int             // if > 0: Remove fails once this many succeeded
	violations testutil.Violations
}

func newFakeHost() *fakeHost {
	return &fakeHost{pages: map[DomainID]map[uint64][]byte{}, fail: map[string]bool{}}
}

func (h *fakeHost) add(id DomainID, pages uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := map[uint64][]byte{}
	for g := range pages {
		p := make([]byte, PageSize)
		p[0], p[1] = byte(g), byte(g>>8) // recognisable contents
		m[g] = p
	}
	h.pages[id] = m
}

func (h *fakeHost) Remove(id DomainID, gfn, n uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail["remove"] || h.okRemoves > 0 && h.removes >= h.okRemoves {
		return errHost
	}
	for g := gfn; g < gfn+n; g++ {
		if h.pages[id][g] == nil {
			h.violations.Add("dom%d: remove of empty frame %#x", id, g)
		}
		delete(h.pages[id], g)
	}
	h.removes++
	return nil
}

func (h *fakeHost) Populate(id DomainID, gfn, n uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail["populate"] {
		return errHost
	}
	for g := gfn; g < gfn+n; g++ {
		if h.pages[id][g] != nil {
			h.violations.Add("dom%d: populate of populated frame %#x", id, g)
		}
		h.pages[id][g] = make([]byte, PageSize)
	}
	h.populates++
	return nil
}

func (h *fakeHost) Move(from DomainID, gfn uint64, to DomainID, toGFN uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail["move"] {
		return errHost
	}
	p := h.pages[from][gfn]
	if p == nil {
		h.violations.Add("dom%d: move of empty frame %#x", from, gfn)
	}
	if h.pages[to][toGFN] != nil {
		h.violations.Add("dom%d: move onto populated frame %#x", to, toGFN)
	}
	delete(h.pages[from], gfn)
	h.pages[to][toGFN] = p
	h.moves++
	return nil
}

// page returns the contents of a frame (nil if empty).
func (h *fakeHost) page(id DomainID, gfn uint64) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pages[id][gfn]
}

func (h *fakeHost) count(id DomainID) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pages[id])
}

func (h *fakeHost) check(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.violations.Report(t, "host:")
}

// guest is a caller whose virtual addresses index its argument memory;
// anything beyond it faults.
type guest struct {
	id  DomainID
	mem []byte
	brk uint64
}

var errFault = errors.New("fault")

func (g *guest) Domain() DomainID { return g.id }

func (g *guest) slice(addr uint64, n int) ([]byte, error) {
	end := addr + uint64(n)
	if end < addr || end > uint64(len(g.mem)) {
		return nil, errFault
	}
	return g.mem[addr:end], nil
}

func (g *guest) ReadGuest(addr uint64, p []byte) error {
	b, err := g.slice(addr, len(p))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

func (g *guest) WriteGuest(addr uint64, p []byte) error {
	b, err := g.slice(addr, len(p))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// put copies b into the argument memory (wrapping) and returns its address.
func (g *guest) put(b []byte) uint64 {
	if g.brk+uint64(len(b)) > uint64(len(g.mem)) {
		g.brk = 0
	}
	a := g.brk
	copy(g.mem[a:], b)
	g.brk += (uint64(len(b)) + 15) &^ 15
	return a
}

const bad = 1 << 40 // an address no guest has

// world is a Memop over a fake host, with an in-use set.
type world struct {
	t     testing.TB
	m     *Memop
	host  *fakeHost
	dom   map[DomainID]*Domain
	g     map[DomainID]*guest
	mu    sync.Mutex
	used  map[DomainID]map[uint64]bool
	asked []string // in-use queries, with whether the frames were Present then
}

func newWorld(t testing.TB) *world {
	w := &world{t: t, host: newFakeHost(), dom: map[DomainID]*Domain{}, g: map[DomainID]*guest{}, used: map[DomainID]map[uint64]bool{}}
	w.m = New(w.host, w.inUse)
	if c, ok := t.(interface{ Cleanup(func()) }); ok {
		c.Cleanup(func() { w.host.check(t) })
	}
	return w
}

func (w *world) inUse(id DomainID, gfn, n uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.asked = append(w.asked, fmt.Sprintf("dom%d %#x+%d present=%v", id, gfn, n, w.dom[id].Present(gfn, n)))
	for g := gfn; g < gfn+n; g++ {
		if w.used[id][g] {
			return true
		}
	}
	return false
}

func (w *world) setUsed(id DomainID, gfn uint64, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.used[id] == nil {
		w.used[id] = map[uint64]bool{}
	}
	w.used[id][gfn] = on
}

func (w *world) add(id DomainID, cfg Config) *guest {
	w.t.Helper()
	d, err := w.m.AddDomain(id, cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.host.add(id, cfg.Pages)
	w.dom[id] = d
	g := &guest{id: id, mem: make([]byte, 1<<20)}
	w.g[id] = g
	return g
}

// resv is one reservation call's arguments.
type resv struct {
	list   []uint64 // nil: extent_start = listAddr (0 if unset)
	nr     uint64
	order  uint32
	flags  uint32
	domid  DomainID // 0: DOMID_SELF (see dom0)
	dom0   bool     // domid really 0
	start  uint64   // the start extent, in cmd's high bits
	rawPtr uint64   // if non-zero: extent_start as given
}

// call runs a reservation op and returns its result.
func (w *world) call(g *guest, op uint64, r resv) int64 {
	list := r.rawPtr
	if r.list != nil {
		b := make([]byte, 8*len(r.list))
		for i, x := range r.list {
			le.PutUint64(b[8*i:], x)
		}
		list = g.put(b)
	}
	nr := r.nr
	if nr == 0 && r.list != nil {
		nr = uint64(len(r.list))
	}
	var b [sizeofReservation]byte
	le.PutUint64(b[0:], list)
	le.PutUint64(b[8:], nr)
	le.PutUint32(b[16:], r.order)
	le.PutUint32(b[20:], r.flags)
	dom := r.domid
	if dom == 0 && !r.dom0 {
		dom = DomainSelf
	}
	le.PutUint16(b[24:], uint16(dom))
	a := g.put(b[:])
	return w.m.Op(g, op|r.start<<extentShift, a)
}

// query runs current_ or maximum_reservation for dom.
func (w *world) query(g *guest, op uint64, dom DomainID) int64 {
	var b [2]byte
	le.PutUint16(b[:], uint16(dom))
	return w.m.Op(g, op, g.put(b[:]))
}

func (w *world) stats(id DomainID) Stats {
	w.t.Helper()
	s, ok := w.m.Stats(id)
	if !ok {
		w.t.Fatalf("no stats for dom%d", id)
	}
	return s
}

// recount checks the domain's invariants against its bitmaps and the
// fake host: nothing busy, present == mapped, the host holds exactly the
// mapped frames, tot = mapped + increased, and holes is the number of
// empty runs.
func (w *world) recount(id DomainID) {
	w.t.Helper()
	d := w.dom[id]
	d.mu.Lock()
	defer d.mu.Unlock()
	var mapped uint64
	holes := 0
	for g := range d.pages {
		m := bit(d.mapped, g)
		if bit(d.taking, g) || bit(d.filling, g) {
			w.t.Errorf("dom%d frame %#x still busy", id, g)
		}
		if p := d.present[g/64].Load()&(1<<(g%64)) != 0; p != m {
			w.t.Errorf("dom%d frame %#x: present %v, mapped %v", id, g, p, m)
		}
		if has := w.host.page(id, g) != nil; has != m {
			w.t.Errorf("dom%d frame %#x: host has a page %v, mapped %v", id, g, has, m)
		}
		if m {
			mapped++
		} else if g == 0 || bit(d.mapped, g-1) {
			holes++
		}
	}
	if holes != d.holes {
		w.t.Errorf("dom%d: %d holes counted, %d recorded", id, holes, d.holes)
	}
	if d.pending != 0 || len(d.est) != 0 {
		w.t.Errorf("dom%d: hole estimates left: %d, %v", id, d.pending, d.est)
	}
	if inc := d.stats.increased.Load(); d.tot != mapped+inc {
		w.t.Errorf("dom%d: tot %d, want %d mapped + %d increased", id, d.tot, mapped, inc)
	}
	if d.tot > d.max {
		w.t.Errorf("dom%d: tot %d above max %d", id, d.tot, d.max)
	}
}

func expect(t testing.TB, what string, got, want int64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %d, want %d", what, got, want)
	}
}

// seq returns n frame numbers from first.
func seq(first, n uint64) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = first + uint64(i)
	}
	return s
}
