package vmm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/argovisor/argovisor/gnttab"
)

// These tests run real grant windows over a real memfd (no KVM needed) and
// hold the window's VMA accounting against what the kernel reports in
// /proc/self/maps.

// kernelVMAs counts the process's VMAs that overlap w's host range.
func kernelVMAs(t *testing.T, w *grantWindow) int {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lo, hi := uint64(w.base), uint64(w.base)+grantWinBytes
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var start, end uint64
		if _, err := fmt.Sscanf(strings.Fields(sc.Text())[0], "%x-%x", &start, &end); err != nil {
			t.Fatalf("parse %q: %v", sc.Text(), err)
		}
		if start < hi && end > lo {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkWindow checks the window's invariants: its counters agree with its
// bitmaps, the kernel has no more VMAs in the window than vmas, and
// neither vmas nor charged exceeds the limit. It returns the kernel's
// count.
func checkWindow(t *testing.T, w *grantWindow) int {
	t.Helper()
	real := kernelVMAs(t, w)
	w.mu.Lock()
	defer w.mu.Unlock()
	nused, gaps := 0, 0
	carry := uint64(1) // a gap can start at page 0
	for _, x := range w.used {
		nused += bits.OnesCount64(x)
		gaps += bits.OnesCount64(^x & (x<<1 | carry)) // clear bits after a set one
		carry = x >> 63
	}
	if nused != w.nused || gaps != w.gaps {
		t.Fatalf("window counts %d used pages in %d gaps, its bitmap says %d in %d", w.nused, w.gaps, nused, gaps)
	}
	if e := w.edge.count(1, windowPages); w.vmas != 1+e || w.edge.has(0) {
		t.Fatalf("vmas %d, but %d edges are set", w.vmas, e)
	}
	if real > w.vmas {
		t.Fatalf("the kernel has %d VMAs in the window, the window's bound says at most %d", real, w.vmas)
	}
	if w.vmas > w.limit || w.charged() > w.limit || w.overruns != 0 {
		t.Fatalf("over the limit %d: vmas %d, charged %d, overruns %d", w.limit, w.vmas, w.charged(), w.overruns)
	}
	return real
}

func newTestWindow(t *testing.T, limit int) (*grantWindow, *RAM) {
	t.Helper()
	ram, err := NewRAM("window-test", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// A marker in every page, to check later what a window page shows.
	for g := uint64(0); g < ram.Size()/PageSize; g++ {
		binary.LittleEndian.PutUint64(ram.Bytes()[g*PageSize:], 0xA000+g)
	}
	w, err := newGrantWindow(limit)
	if err != nil {
		ram.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.close(); err != nil {
			t.Error(err)
		}
		if err := ram.Close(); err != nil {
			t.Error(err)
		}
	})
	return w, ram
}

func rwPage(p int) uint64 { return GrantWindowGPA + uint64(p)*PageSize }

// shows reads the first word of window page p through /proc/self/mem (no
// unsafe pointer needed): the granted frame's marker, or 0.
func shows(t *testing.T, w *grantWindow, p int) uint64 {
	t.Helper()
	f, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], int64(w.pageAddr(p))); err != nil {
		return 0 // an inaccessible page may refuse even a forced read
	}
	return binary.LittleEndian.Uint64(b[:])
}

// The worst case for the kernel: single pages with gaps between them, all
// of the same frame so that no two mappings could merge. Each costs two
// VMAs (itself and the gap it splits off), the window stops at its limit
// with ErrNoSpace, and the kernel's count equals the window's exactly.
func TestGrantWindowIsolatedPages(t *testing.T) {
	const limit = 64
	w, ram := newTestWindow(t, limit)
	ok := 0
	for i := 0; i < limit; i++ {
		err := w.mapFrame(rwPage(2*i), ram.FD(), 7, false)
		if err != nil {
			if !errors.Is(err, gnttab.ErrNoSpace) {
				t.Fatalf("map %d: %v, want ErrNoSpace", i, err)
			}
			break
		}
		ok++
	}
	// charged after k maps from page 0 with stride 2: k pages + k gaps.
	if ok != limit/2 {
		t.Fatalf("%d maps fit a share of %d VMAs, want %d", ok, limit, limit/2)
	}
	if real := checkWindow(t, w); real != limit {
		t.Errorf("the kernel has %d VMAs in the window, want exactly %d", real, limit)
	}
	if s := w.stats(); s.Refused != 1 || s.Pages != limit/2 || s.Charged != limit || s.Peak != limit {
		t.Errorf("stats %+v", s)
	}
	// An unmap gives two VMAs back; a page that fills a one-page hole
	// between two mapped ones costs nothing, an isolated one two.
	if err := w.replace([]uint64{rwPage(10)}, false); err != nil {
		t.Fatal(err)
	}
	checkWindow(t, w)
	if err := w.mapFrame(rwPage(1), ram.FD(), 8, false); err != nil {
		t.Fatalf("map between two mapped pages at the limit: %v", err)
	}
	if err := w.mapFrame(rwPage(200), ram.FD(), 8, false); err != nil {
		t.Fatalf("isolated map after an unmap: %v", err)
	}
	if err := w.mapFrame(rwPage(300), ram.FD(), 8, false); !errors.Is(err, gnttab.ErrNoSpace) {
		t.Fatalf("isolated map at the limit: %v, want ErrNoSpace", err)
	}
	checkWindow(t, w)
	if got := shows(t, w, 1); got != 0xA000+8 {
		t.Errorf("page 1 shows %#x, want frame 8's marker", got)
	}
}

// Unmaps that leave the inaccessible run in pieces (cheap, usually merged
// by the kernel) until the bound reaches the limit; the next map first
// remaps the run whole.
func TestGrantWindowDefragments(t *testing.T) {
	const limit = 8
	w, ram := newTestWindow(t, limit)
	for i, p := range []int{10, 20, 30} {
		if err := w.mapFrame(rwPage(p), ram.FD(), uint64(i), false); err != nil {
			t.Fatal(err)
		}
		if err := w.replace([]uint64{rwPage(p)}, false); err != nil {
			t.Fatal(err)
		}
		checkWindow(t, w)
	}
	w.mu.Lock()
	vmas, charged := w.vmas, w.charged()
	w.mu.Unlock()
	if vmas != 7 || charged != 1 {
		t.Fatalf("after three map/unmap cycles: vmas %d charged %d, want 7 and 1", vmas, charged)
	}
	if err := w.mapFrame(rwPage(40), ram.FD(), 3, false); err != nil {
		t.Fatal(err)
	}
	if real := checkWindow(t, w); real != 3 {
		t.Errorf("after the defragmenting map the kernel has %d VMAs, want 3", real)
	}
	if w.stats().VMAs != 3 {
		t.Errorf("vmas %d, want 3", w.stats().VMAs)
	}
	if got := shows(t, w, 40); got != 0xA003 {
		t.Errorf("page 40 shows %#x, want frame 3's marker", got)
	}
}

// A revocation turns a contiguous run into one dead VMA. Unmapping a page
// in its middle splits it into three, whatever the budget; when map/unmap
// cycles have already taken the bound to the limit, the unmap first
// remaps the fragmented run of inaccessible pages whole.
func TestGrantWindowRevokeThenSplit(t *testing.T) {
	const limit = 12
	w, ram := newTestWindow(t, limit)
	var run []uint64
	for p := 50; p < 56; p++ {
		if err := w.mapFrame(rwPage(p), ram.FD(), uint64(p), false); err != nil {
			t.Fatal(err)
		}
		run = append(run, rwPage(p))
	}
	checkWindow(t, w)
	if err := w.replace(run, true); err != nil {
		t.Fatal(err)
	}
	if got := w.stats(); got.VMAs != 3 || got.Charged != 8 {
		t.Fatalf("after revoking the run: %+v, want 3 VMAs, charged 8", got)
	}
	checkWindow(t, w)
	for p := 200; p < 208; p += 2 {
		if err := w.mapFrame(rwPage(p), ram.FD(), 1, false); err != nil {
			t.Fatal(err)
		}
		if err := w.replace([]uint64{rwPage(p)}, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.stats(); got.VMAs != 11 || got.Charged != 8 {
		t.Fatalf("after four map/unmap cycles: %+v, want 11 VMAs, charged 8", got)
	}
	checkWindow(t, w)
	if err := w.replace([]uint64{rwPage(51)}, false); err != nil {
		t.Fatal(err)
	}
	if real := checkWindow(t, w); real != 5 || w.stats().VMAs != 5 {
		t.Errorf("after splitting the dead run: the kernel has %d VMAs, the window counts %d, want 5", real, w.stats().VMAs)
	}
	// Fill what is left of the share with isolated maps, then unmap
	// everything: no budget needed.
	for p := 100; ; p += 2 {
		if err := w.mapFrame(rwPage(p), ram.FD(), 1, false); errors.Is(err, gnttab.ErrNoSpace) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		checkWindow(t, w)
	}
	if err := w.replace([]uint64{rwPage(50), rwPage(52), rwPage(53), rwPage(54), rwPage(55), rwPage(100), rwPage(102)}, false); err != nil {
		t.Fatal(err)
	}
	checkWindow(t, w)
	if got := w.stats(); got.Pages != 0 || got.Charged != 1 {
		t.Errorf("after unmapping everything: %+v", got)
	}
}

// Random maps (isolated, or continuing a neighbour's frames so the kernel
// can merge them), batched unmaps and revocations over a small area of
// the window, against a shadow of which pages are used: ErrNoSpace comes
// exactly when the shadow's charge would pass the limit, the window's
// bound always holds the kernel's count, and every live page shows its
// frame.
func TestGrantWindowRandom(t *testing.T) {
	const (
		limit = 40
		area  = 160 // pages used, across the boundary of the two halves
	)
	w, ram := newTestWindow(t, limit)
	first := windowPages/2 - area/2 // straddle the read-only half
	rng := rand.New(rand.NewPCG(1, 2))
	live := map[int]uint64{} // page -> frame
	dead := map[int]bool{}
	used := func(p int) bool { _, l := live[p]; return l || dead[p] }
	// Pages outside the area are never used: the gap from page 0 counts
	// once, then every used page and every gap starting in the area.
	charge := func() int {
		n := 1
		for p := first; p <= first+area; p++ {
			if used(p) || used(p-1) {
				n++
			}
		}
		return n
	}
	gpaOf := func(p int) (uint64, bool) { return GrantWindowGPA + uint64(p)*PageSize, p >= windowPages/2 }
	pick := func(m map[int]bool) []int {
		var ps []int
		for p := range m {
			if rng.IntN(3) == 0 {
				ps = append(ps, p)
			}
		}
		slices.Sort(ps)
		return ps
	}
	refusals := 0
	for step := 0; step < 1500; step++ {
		switch op := rng.IntN(20); {
		case op < 15: // map
			p := first + rng.IntN(area)
			if used(p) {
				continue
			}
			frame := uint64(rng.IntN(200))
			if f, ok := live[p-1]; ok && f < 255 && rng.IntN(2) == 0 {
				frame = f + 1 // contiguous backing: the kernel may merge
			}
			gpa, ro := gpaOf(p)
			before := charge()
			err := w.mapFrame(gpa, ram.FD(), frame, ro)
			live[p] = frame
			over := charge() > limit
			if over {
				delete(live, p)
			}
			switch {
			case over && !errors.Is(err, gnttab.ErrNoSpace):
				t.Fatalf("step %d: map at page %d (charge %d) gave %v, want ErrNoSpace", step, p, before, err)
			case !over && err != nil:
				t.Fatalf("step %d: map at page %d (charge %d) gave %v", step, p, before, err)
			case over:
				refusals++
			}
		case op < 18: // unmap a batch of live and dead pages
			all := map[int]bool{}
			for p := range live {
				all[p] = true
			}
			for p := range dead {
				all[p] = true
			}
			ps := pick(all)
			var gpas []uint64
			for _, p := range ps {
				g, _ := gpaOf(p)
				gpas = append(gpas, g)
				delete(live, p)
				delete(dead, p)
			}
			if err := w.replace(gpas, false); err != nil {
				t.Fatalf("step %d: unmap: %v", step, err)
			}
		default: // revoke some live pages
			l := map[int]bool{}
			for p := range live {
				l[p] = true
			}
			ps := pick(l)
			var gpas []uint64
			for _, p := range ps {
				g, _ := gpaOf(p)
				gpas = append(gpas, g)
				delete(live, p)
				dead[p] = true
			}
			if err := w.replace(gpas, true); err != nil {
				t.Fatalf("step %d: revoke: %v", step, err)
			}
		}
		checkWindow(t, w)
		if c := w.stats().Charged; c != charge() {
			t.Fatalf("step %d: window charges %d, shadow %d", step, c, charge())
		}
	}
	for p, f := range live {
		if got := shows(t, w, p); got != 0xA000+f {
			t.Errorf("page %d shows %#x, want frame %d's marker", p, got, f)
		}
	}
	for p := range dead {
		if got := shows(t, w, p); got != 0 {
			t.Errorf("dead page %d shows %#x", p, got)
		}
	}
	if refusals == 0 || w.stats().Remaps == 0 {
		t.Errorf("%d refusals, %d remaps: the test never reached the limit", refusals, w.stats().Remaps)
	}
	t.Logf("%d refusals; final %+v", refusals, w.stats())
}

// The bitset helpers against a plain slice of bools.
func TestBitset(t *testing.T) {
	const n = 300
	rng := rand.New(rand.NewPCG(3, 4))
	b, ref := newBitset(n), make([]bool, n)
	for i := range n {
		if rng.IntN(3) == 0 {
			b.set(i)
			ref[i] = true
		}
	}
	for lo := 0; lo <= n; lo += 7 {
		for hi := lo; hi <= n; hi += 13 {
			c := 0
			for i := lo; i < hi; i++ {
				if ref[i] {
					c++
				}
			}
			if got := b.count(lo, hi); got != c {
				t.Fatalf("count(%d, %d) = %d, want %d", lo, hi, got, c)
			}
		}
		for _, v := range []bool{false, true} {
			want := n
			for i := lo; i < n; i++ {
				if ref[i] == v {
					want = i
					break
				}
			}
			if got := b.next(lo, n, v); got != want {
				t.Fatalf("next(%d, %v) = %d, want %d", lo, v, got, want)
			}
			want = -1
			for i := lo - 1; i >= 0; i-- {
				if ref[i] == v {
					want = i
					break
				}
			}
			if got := b.prev(lo, v); got != want {
				t.Fatalf("prev(%d, %v) = %d, want %d", lo, v, got, want)
			}
		}
	}
	c := b.count(65, 250)
	if got := b.clearRange(65, 250); got != c || b.count(65, 250) != 0 || b.count(0, n) != b.count(0, 65)+b.count(250, n) {
		t.Fatalf("clearRange(65, 250) = %d, want %d", got, c)
	}
}
