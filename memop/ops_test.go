package memop

import (
	"strings"
	"testing"
)

const (
	dA DomainID = 1
	dB DomainID = 2
)

// Balloon down and back: decrease_reservation empties frames (the host
// page goes, Present turns false, the reservation drops), populate_physmap
// brings fresh zeroed pages back, and the region above the initial memory
// can be populated up to the maximum and no further.
func TestDecreaseThenPopulate(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 64, MaxPages: 96})
	d := w.dom[dA]
	expect(t, "current", w.query(g, OpCurrentReservation, DomainSelf), 64)
	expect(t, "maximum", w.query(g, OpMaximumReservation, DomainSelf), 96)

	expect(t, "decrease 16", w.call(g, OpDecreaseReservation, resv{list: seq(16, 16)}), 16)
	expect(t, "current after decrease", w.query(g, OpCurrentReservation, DomainSelf), 48)
	if d.Present(16, 1) || d.Present(31, 1) || !d.Present(15, 1) || !d.Present(32, 1) {
		t.Errorf("Present after decrease of 16..31 is wrong")
	}
	if w.host.count(dA) != 48 {
		t.Errorf("host holds %d pages, want 48", w.host.count(dA))
	}
	w.recount(dA)
	if s := w.stats(dA); s.Holes != 2 || s.Decreased != 16 {
		t.Errorf("stats %+v: want 2 holes (16..31 and the tail), 16 decreased", s)
	}

	expect(t, "populate 16 back", w.call(g, OpPopulatePhysmap, resv{list: seq(16, 16)}), 16)
	for gfn := uint64(16); gfn < 32; gfn++ {
		p := w.host.page(dA, gfn)
		if p == nil || p[0] != 0 || p[1] != 0 {
			t.Fatalf("frame %#x after populate: %v, want a fresh zero page", gfn, p != nil)
		}
	}
	// The tail of the region: 32 more frames fit, the next does not.
	expect(t, "populate the tail", w.call(g, OpPopulatePhysmap, resv{list: seq(64, 32)}), 32)
	expect(t, "populate at the maximum", w.call(g, OpPopulatePhysmap, resv{list: seq(10, 1)}), 0)
	expect(t, "current at the maximum", w.query(g, OpCurrentReservation, DomainSelf), 96)
	w.recount(dA)
	if s := w.stats(dA); s.Holes != 0 || s.Populated != 48 || s.Errors != 1 {
		t.Errorf("stats %+v: want no holes, 48 populated, 1 error", s)
	}
}

// Extents of order k are 2^k contiguous frames; the result counts extents.
func TestExtentOrder(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 2048})
	expect(t, "decrease two order-9 extents", w.call(g, OpDecreaseReservation, resv{list: []uint64{512, 1024}, order: 9}), 2)
	expect(t, "current", w.query(g, OpCurrentReservation, DomainSelf), 1024)
	expect(t, "order 10 is refused", w.call(g, OpDecreaseReservation, resv{list: []uint64{0}, order: 10}), 0)
	expect(t, "populate one order-9 extent", w.call(g, OpPopulatePhysmap, resv{list: []uint64{512}, order: 9}), 1)
	// An extent is all or nothing: 1024..1535 is empty, 1536 is not.
	expect(t, "populate an extent reaching a populated frame", w.call(g, OpPopulatePhysmap, resv{list: []uint64{1025}, order: 9}), 0)
	expect(t, "decrease an extent reaching an empty frame", w.call(g, OpDecreaseReservation, resv{list: []uint64{1000}, order: 5}), 0)
	expect(t, "current unchanged", w.query(g, OpCurrentReservation, DomainSelf), 1536)
	w.recount(dA)
}

// Every way a reservation call stops, and the count it returns.
func TestReservationErrors(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 64, MaxPages: 128})
	w.add(dB, Config{Pages: 64})
	for _, tc := range []struct {
		name string
		op   uint64
		r    resv
		want int64
	}{
		{"decrease ok", OpDecreaseReservation, resv{list: []uint64{40}}, 1},
		{"struct unreadable", OpDecreaseReservation, resv{}, -1}, // special-cased below
		{"nr_extents beyond Xen's continuation limit", OpDecreaseReservation, resv{list: []uint64{41}, nr: maxNrExtents + 1}, 0},
		{"start at nr_extents", OpDecreaseReservation, resv{list: []uint64{41}, start: 1}, 1},
		{"start beyond nr_extents", OpDecreaseReservation, resv{list: []uint64{41}, start: 5}, 5},
		{"start inside the list", OpDecreaseReservation, resv{list: []uint64{999, 41}, start: 1}, 2},
		{"another domain", OpDecreaseReservation, resv{list: []uint64{42}, domid: dB}, 0},
		{"missing domain", OpDecreaseReservation, resv{list: []uint64{42}, domid: 77}, 0},
		{"domain 0", OpDecreaseReservation, resv{list: []uint64{42}, dom0: true}, 0},
		{"own id", OpDecreaseReservation, resv{list: []uint64{42}, domid: dA}, 1},
		{"address_bits 12", OpPopulatePhysmap, resv{list: []uint64{40}, flags: 12}, 0},
		{"address_bits 1", OpPopulatePhysmap, resv{list: []uint64{40}, flags: 1}, 0},
		{"address_bits 13", OpPopulatePhysmap, resv{list: []uint64{40}, flags: 13}, 1},
		{"more than MaxExtents", OpDecreaseReservation, resv{list: []uint64{43}, nr: MaxExtents + 1}, 0},
		{"order 10", OpDecreaseReservation, resv{list: []uint64{0}, order: 10}, 0},
		{"populate on demand", OpPopulatePhysmap, resv{list: []uint64{41}, flags: memfPopulateOnDemand}, 0},
		{"populate-on-demand flag ignored by decrease", OpDecreaseReservation, resv{list: []uint64{44}, flags: memfPopulateOnDemand}, 1},
		{"list unreadable at the second", OpDecreaseReservation, resv{rawPtr: 0, nr: 2}, -2}, // special-cased below
		{"list pointer wraps", OpDecreaseReservation, resv{rawPtr: ^uint64(0) - 7, nr: 2}, 0},
		{"decrease outside the region", OpDecreaseReservation, resv{list: []uint64{45, 128}}, 1},
		{"decrease huge frame", OpDecreaseReservation, resv{list: []uint64{^uint64(0)}}, 0},
		{"decrease empty frame", OpDecreaseReservation, resv{list: []uint64{46, 45}}, 1},
		{"decrease tail frame never populated", OpDecreaseReservation, resv{list: []uint64{100}}, 0},
		{"populate populated frame", OpPopulatePhysmap, resv{list: []uint64{45, 1}}, 1},
		{"populate outside the region", OpPopulatePhysmap, resv{list: []uint64{128}}, 0},
		{"populate last frame of the region", OpPopulatePhysmap, resv{list: []uint64{127}}, 1},
		{"increase", OpIncreaseReservation, resv{nr: 3}, 3},
		{"increase order 9 beyond the maximum", OpIncreaseReservation, resv{nr: 1, order: 9}, 0},
		{"MaxExtents after start", OpIncreaseReservation, resv{nr: MaxExtents + 3, start: 3}, 0}, // computed below
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			var got int64
			switch tc.name {
			case "struct unreadable":
				got, tc.want = w.m.Op(g, OpDecreaseReservation, bad), 0
				expect(t, "struct unreadable, start 3", w.m.Op(g, OpDecreaseReservation|3<<extentShift, bad), 3)
			case "list unreadable at the second":
				// One readable entry at the very end of the argument
				// memory; the second is beyond it.
				le.PutUint64(g.mem[len(g.mem)-8:], 47)
				tc.r.rawPtr = uint64(len(g.mem) - 8)
				got, tc.want = w.call(g, tc.op, tc.r), 1
			case "MaxExtents after start":
				// nr - start = MaxExtents is allowed; extent_start
				// is not read by increase (translated guest). The
				// maximum stops it first, after the pages left.
				s := w.stats(dA)
				left := int64(s.Max - s.Current)
				got, tc.want = w.call(g, tc.op, tc.r), 3+left
			default:
				got = w.call(g, tc.op, tc.r)
			}
			expect(t, tc.name, got, tc.want)
		})
	}
	w.recount(dA)
	w.recount(dB)
	if s := w.stats(dB); s.Current != 64 || s.Decreased != 0 {
		t.Errorf("dom%d was changed by another domain's calls: %+v", dB, s)
	}
}

// A frame another mechanism holds (a pinned grant, an Argo ring) is not
// decreased; the check runs after the frame stopped being Present.
func TestDecreaseInUse(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 64})
	w.setUsed(dA, 21, true)
	expect(t, "decrease 20..22", w.call(g, OpDecreaseReservation, resv{list: []uint64{20, 21, 22}}), 1)
	expect(t, "decrease order 2 over the used frame", w.call(g, OpDecreaseReservation, resv{list: []uint64{21}, order: 2}), 0)
	if !w.dom[dA].Present(21, 1) || w.host.page(dA, 21) == nil {
		t.Errorf("the used frame was removed")
	}
	w.setUsed(dA, 21, false)
	expect(t, "decrease once unused", w.call(g, OpDecreaseReservation, resv{list: []uint64{21}}), 1)
	w.recount(dA)
	for _, a := range w.asked {
		if !strings.HasSuffix(a, "present=false") {
			t.Errorf("in-use check while the frames were still Present: %s", a)
		}
	}
	if len(w.asked) != 4 {
		t.Errorf("in-use asked %d times, want 4: %v", len(w.asked), w.asked)
	}
}

// A Backing failure stops the call and changes nothing.
func TestBackingFailures(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 64})
	w.host.fail["remove"] = true
	expect(t, "decrease with the host failing", w.call(g, OpDecreaseReservation, resv{list: []uint64{5}}), 0)
	if !w.dom[dA].Present(5, 1) {
		t.Errorf("frame not Present after a failed decrease")
	}
	w.host.fail["remove"] = false
	expect(t, "decrease", w.call(g, OpDecreaseReservation, resv{list: []uint64{5}}), 1)
	w.host.fail["populate"] = true
	expect(t, "populate with the host failing", w.call(g, OpPopulatePhysmap, resv{list: []uint64{5}}), 0)
	expect(t, "current unchanged", w.query(g, OpCurrentReservation, DomainSelf), 63)
	w.recount(dA)
}

// current_ and maximum_reservation, and the call-level errors.
func TestQueriesAndErrnos(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 64, MaxPages: 80})
	w.add(dB, Config{Pages: 32})
	expect(t, "current self", w.query(g, OpCurrentReservation, DomainSelf), 64)
	expect(t, "current own id", w.query(g, OpCurrentReservation, dA), 64)
	expect(t, "maximum", w.query(g, OpMaximumReservation, DomainSelf), 80)
	expect(t, "current of another domain", w.query(g, OpCurrentReservation, dB), -EPERM)
	expect(t, "maximum of a missing domain", w.query(g, OpMaximumReservation, 99), -ESRCH)
	expect(t, "current, bad pointer", w.m.Op(g, OpCurrentReservation, bad), -EFAULT)
	expect(t, "current with start bits", w.m.Op(g, OpCurrentReservation|1<<extentShift, 0), -EINVAL)
	for _, op := range []uint64{2, 5, 7, 8, 11, 12, 63} {
		expect(t, "unknown op", w.m.Op(g, op, 0), -ENOSYS)
	}
	expect(t, "unknown caller", w.m.Op(&guest{id: 9, mem: g.mem}, OpCurrentReservation, 0), -ESRCH)
	w.m.DomainDied(dA)
	expect(t, "dead caller", w.query(g, OpCurrentReservation, DomainSelf), -ESRCH)
	// -EPERM, -ESRCH, -EFAULT, -EINVAL and seven -ENOSYS; the dead
	// caller's call is refused before it counts.
	if s := w.stats(dA); s.Errors != 11 {
		t.Errorf("errors %d, want 11", s.Errors)
	}
	w.m.RemoveDomain(dA)
	if _, ok := w.m.Stats(dA); ok {
		t.Errorf("stats of a removed domain")
	}
	if _, err := w.m.AddDomain(dA, Config{Pages: 8}); err != nil {
		t.Errorf("re-adding a removed id: %v", err)
	}
}

// Bad configurations are refused.
func TestAddDomainErrors(t *testing.T) {
	w := newWorld(t)
	for _, cfg := range []Config{{}, {Pages: 8, MaxPages: 4}, {Pages: 8, MaxPages: 1<<32 + 1}, {Pages: 8, MaxHoles: -1}} {
		if _, err := w.m.AddDomain(5, cfg); err == nil {
			t.Errorf("AddDomain(%+v) succeeded", cfg)
		}
	}
	if _, err := w.m.AddDomain(DomainSelf, Config{Pages: 8}); err == nil {
		t.Errorf("AddDomain(DOMID_SELF) succeeded")
	}
	w.add(dA, Config{Pages: 8})
	if _, err := w.m.AddDomain(dA, Config{Pages: 8}); err == nil {
		t.Errorf("AddDomain twice succeeded")
	}
}

// Present over ranges.
func TestPresent(t *testing.T) {
	w := newWorld(t)
	w.add(dA, Config{Pages: 100, MaxPages: 200})
	d := w.dom[dA]
	for _, tc := range []struct {
		gfn, n uint64
		want   bool
	}{
		{0, 0, true}, {0, 100, true}, {99, 1, true}, {99, 2, false}, {100, 1, false},
		{199, 1, false}, {200, 1, false}, {^uint64(0), 2, false}, {5, ^uint64(0), false},
	} {
		if got := d.Present(tc.gfn, tc.n); got != tc.want {
			t.Errorf("Present(%#x, %d) = %v, want %v", tc.gfn, tc.n, got, tc.want)
		}
	}
}

// The number of separate empty runs is bounded; an operation that would
// exceed it is refused, one that merges or fills runs never is.
func TestHoleLimit(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 64, MaxHoles: 3})
	expect(t, "three separate holes", w.call(g, OpDecreaseReservation, resv{list: []uint64{10, 20, 30}}), 3)
	expect(t, "a fourth is refused", w.call(g, OpDecreaseReservation, resv{list: []uint64{40}}), 0)
	expect(t, "growing a hole is fine", w.call(g, OpDecreaseReservation, resv{list: []uint64{11, 9, 31}}), 3)
	expect(t, "joining two holes is fine", w.call(g, OpDecreaseReservation, resv{list: seq(12, 8)}), 8)
	if s := w.stats(dA); s.Holes != 2 {
		t.Errorf("%d holes, want 2", s.Holes)
	}
	expect(t, "a third again", w.call(g, OpDecreaseReservation, resv{list: []uint64{50}}), 1)
	expect(t, "splitting a hole at the limit is refused", w.call(g, OpPopulatePhysmap, resv{list: []uint64{15}}), 0)
	expect(t, "filling a hole at the limit is fine", w.call(g, OpPopulatePhysmap, resv{list: []uint64{50}}), 1)
	expect(t, "shrinking a hole is fine", w.call(g, OpPopulatePhysmap, resv{list: []uint64{9}}), 1)
	w.recount(dA)
}

// increase_reservation only counts pages (a translated guest cannot reach
// them), up to the maximum; the pages are not frames.
func TestIncreaseReservation(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 64, MaxPages: 72})
	expect(t, "increase 2 order-2 extents", w.call(g, OpIncreaseReservation, resv{nr: 2, order: 2}), 2)
	expect(t, "increase beyond the maximum", w.call(g, OpIncreaseReservation, resv{nr: 1}), 0)
	expect(t, "current", w.query(g, OpCurrentReservation, DomainSelf), 72)
	expect(t, "no room to populate", w.call(g, OpPopulatePhysmap, resv{list: []uint64{64}}), 0)
	expect(t, "decrease makes room", w.call(g, OpDecreaseReservation, resv{list: []uint64{3}}), 1)
	expect(t, "populate", w.call(g, OpPopulatePhysmap, resv{list: []uint64{64}}), 1)
	w.recount(dA)
	if s := w.stats(dA); s.Increased != 8 {
		t.Errorf("increased %d, want 8", s.Increased)
	}
}

// The host work of a call is done one run of contiguous extents at a
// time; a failing run stops the call there, undoing it and every later
// extent, and the result counts the extents before it.
func TestBatchedBacking(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 256})
	list := append(seq(10, 64), 100, 101, 200)
	expect(t, "decrease three runs", w.call(g, OpDecreaseReservation, resv{list: list}), 67)
	if w.host.removes != 3 {
		t.Errorf("%d Remove calls for three runs", w.host.removes)
	}
	expect(t, "populate them back", w.call(g, OpPopulatePhysmap, resv{list: list}), 67)
	if w.host.populates != 3 {
		t.Errorf("%d Populate calls for three runs", w.host.populates)
	}
	// Order-1 extents are contiguous when each starts where the last ended.
	expect(t, "decrease order-1 run", w.call(g, OpDecreaseReservation, resv{list: []uint64{20, 22, 24, 30}, order: 1}), 4)
	if w.host.removes != 5 {
		t.Errorf("%d Remove calls after two more runs", w.host.removes)
	}
	w.host.okRemoves = 6 // the next call's second run fails
	expect(t, "second run fails", w.call(g, OpDecreaseReservation, resv{list: []uint64{40, 41, 50, 51, 60}}), 2)
	for _, gfn := range []uint64{50, 51, 60} {
		if !w.dom[dA].Present(gfn, 1) {
			t.Errorf("frame %d of an undone run is not Present", gfn)
		}
	}
	if w.dom[dA].Present(40, 1) || w.dom[dA].Present(41, 1) {
		t.Errorf("the first run was not done")
	}
	w.recount(dA)
}
