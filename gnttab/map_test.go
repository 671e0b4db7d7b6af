package gnttab

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const hostRW, hostRO = GNTMAPHostMap, GNTMAPHostMap | GNTMAPReadonly

func TestMapAndUnmap(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	g := b.page()
	b.grant(8, 1, g, GTFPermitAccess)
	ret, res := w.mapBatch(a, mapArgs{dom: 2, ref: 8, flags: hostRW, gpa: rw(3)})
	if ret != 0 || res[0].status != GNTSTOkay || res[0].dev != 0 {
		t.Fatalf("map: %d %+v", ret, res[0])
	}
	if m, ok := w.win.at(1, rw(3)); !ok || m != (winMapping{granter: 2, gfn: g}) {
		t.Errorf("window: %+v %v", m, ok)
	}
	if f := b.flags(8); f != GTFPermitAccess|GTFReading|GTFWriting {
		t.Errorf("flags after RW map: %#x", f)
	}
	if p := w.pins(2, 8); p != pinHostW {
		t.Errorf("pins %#x", p)
	}
	if s, _ := w.g.Stats(1); s.Maps != 1 || s.Mapped != 1 {
		t.Errorf("stats %+v", s)
	}
	expectSt(t, "unmap", w.unmapOne(a, res[0].handle, rw(3)), GNTSTOkay)
	if _, ok := w.win.at(1, rw(3)); ok {
		t.Error("still mapped")
	}
	if f := b.flags(8); f != GTFPermitAccess {
		t.Errorf("flags after unmap: %#x", f)
	}
	if w.activeCount(2) != 0 {
		t.Error("entry still active")
	}
	if s, _ := w.g.Stats(1); s.Unmaps != 1 || s.Mapped != 0 {
		t.Errorf("stats %+v", s)
	}
	// Reserved refs 0-7 are ordinary refs, as in Xen.
	b.grant(0, 1, g, GTFPermitAccess)
	h := w.mustMap(a, 2, 0, hostRW, rw(0))
	expectSt(t, "unmap ref 0", w.unmapOne(a, h, 0), GNTSTOkay)
}

// TestMapStatuses triggers every status map_grant_ref can give.
func TestMapStatuses(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{MaxMaptrackFrames: 1}), w.add(2, Config{})
	c := w.add(3, Config{MapFrom: []DomainID{1}})
	g := b.page()
	entry := func(ref uint32, to DomainID, frame uint64, flags uint16) uint32 {
		b.grant(ref, to, frame, flags)
		return ref
	}
	good := entry(8, 1, g, GTFPermitAccess)
	for _, tc := range []struct {
		name  string
		d     *fakeDomain
		op    mapArgs
		want  int16
		setup func()
	}{
		{name: "no host or device flag", d: a, op: mapArgs{2, good, GNTMAPReadonly, rw(0)}, want: GNTSTBadGntref},
		{name: "device_map", d: a, op: mapArgs{2, good, GNTMAPDeviceMap, rw(0)}, want: GNTSTGeneralError},
		{name: "host+device_map", d: a, op: mapArgs{2, good, hostRW | GNTMAPDeviceMap, rw(0)}, want: GNTSTGeneralError},
		{name: "application_map", d: a, op: mapArgs{2, good, hostRW | GNTMAPApplicationMap, rw(0)}, want: GNTSTGeneralError},
		{name: "contains_pte", d: a, op: mapArgs{2, good, hostRW | GNTMAPContainsPTE, rw(0)}, want: GNTSTGeneralError},
		{name: "missing domain", d: a, op: mapArgs{9, good, hostRW, rw(0)}, want: GNTSTBadDomain},
		{name: "DOMID_INVALID", d: a, op: mapArgs{0x7FF4, good, hostRW, rw(0)}, want: GNTSTBadDomain},
		{name: "MapFrom", d: c, op: mapArgs{2, good, hostRW, rw(0)}, want: GNTSTPermissionDenied},
		{name: "ref beyond the table", d: a, op: mapArgs{2, 512, hostRW, rw(0)}, want: GNTSTBadGntref},
		{name: "ref huge", d: a, op: mapArgs{2, 1 << 31, hostRW, rw(0)}, want: GNTSTBadGntref},
		{name: "invalid entry", d: a, op: mapArgs{2, entry(9, 1, g, GTFInvalid), hostRW, rw(0)}, want: GNTSTGeneralError},
		{name: "accept_transfer entry", d: a, op: mapArgs{2, entry(10, 1, g, GTFAcceptTransfer), hostRW, rw(0)}, want: GNTSTGeneralError},
		{name: "transitive entry (v2 only)", d: a, op: mapArgs{2, entry(11, 1, g, GTFTransitive), hostRW, rw(0)}, want: GNTSTGeneralError},
		{name: "sub_page entry", d: a, op: mapArgs{2, entry(12, 1, g, GTFPermitAccess|GTFSubPage), hostRW, rw(0)}, want: GNTSTGeneralError},
		{name: "granted to another domain", d: a, op: mapArgs{2, entry(13, 3, g, GTFPermitAccess), hostRW, rw(0)}, want: GNTSTGeneralError},
		{name: "granted to DOMID_SELF", d: a, op: mapArgs{2, entry(14, DomainSelf, g, GTFPermitAccess), hostRW, rw(0)}, want: GNTSTGeneralError},
		{name: "readonly grant, RW map", d: a, op: mapArgs{2, entry(15, 1, g, GTFPermitAccess|GTFReadonly), hostRW, rw(0)}, want: GNTSTGeneralError},
		{name: "frame outside RAM", d: a, op: mapArgs{2, entry(16, 1, uint64(len(b.ram))/PageSize, GTFPermitAccess), hostRW, rw(0)}, want: GNTSTBadPage},
		{name: "frame 0 (not RAM in the fake)", d: a, op: mapArgs{2, entry(17, 1, 0, GTFPermitAccess), hostRO, ro(0)}, want: GNTSTBadPage},
		{name: "cache attribute PWT", d: a, op: mapArgs{2, entry(18, 1, g, GTFPermitAccess|GTFPWT), hostRW, rw(0)}, want: GNTSTGeneralError},
		{name: "cache attribute PAT", d: a, op: mapArgs{2, entry(19, 1, g, GTFPermitAccess|GTFPAT), hostRO, ro(0)}, want: GNTSTGeneralError},
		{name: "host_addr outside the window", d: a, op: mapArgs{2, good, hostRW, 0x1000}, want: GNTSTGeneralError},
		{name: "host_addr unaligned", d: a, op: mapArgs{2, good, hostRW, rw(0) + 8}, want: GNTSTGeneralError},
		{name: "RW map in the RO half", d: a, op: mapArgs{2, good, hostRW, ro(0)}, want: GNTSTGeneralError},
		{name: "RO map in the RW half", d: a, op: mapArgs{2, good, hostRO, rw(0)}, want: GNTSTGeneralError},
		{name: "Window.Map fails", d: a, op: mapArgs{2, good, hostRW, rw(0)}, want: GNTSTGeneralError,
			setup: func() { w.win.mu.Lock(); w.win.failMap = true; w.win.mu.Unlock() }},
		{name: "okay", d: a, op: mapArgs{2, good, hostRW, rw(0)}, want: GNTSTOkay,
			setup: func() { w.win.mu.Lock(); w.win.failMap = false; w.win.mu.Unlock() }},
		{name: "host_addr already mapped", d: a, op: mapArgs{2, good, hostRW, rw(0)}, want: GNTSTGeneralError},
		{name: "pinned by another grantee", d: c, op: mapArgs{1, 0, hostRW, rw(0)}, want: GNTSTGeneralError,
			setup: func() {
				// c may map from 1 (MapFrom), but a's entry 0 is pinned
				// by a when a re-grants it to c.
				f := a.page()
				a.grant(0, 1, f, GTFPermitAccess)
				w.mustMap(a, DomainSelf, 0, hostRW, rw(100))
				a.grant(0, 3, f, GTFPermitAccess|GTFReading|GTFWriting)
			}},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		flagsBefore := b.flags(tc.op.ref % 512)
		st, _ := w.mapOne(tc.d, tc.op.dom, tc.op.ref, tc.op.flags, tc.op.gpa)
		expectSt(t, tc.name, st, tc.want)
		if tc.want != GNTSTOkay && tc.d == a && tc.op.ref < 512 && b.flags(tc.op.ref) != flagsBefore {
			t.Errorf("%s: flags changed from %#x to %#x", tc.name, flagsBefore, b.flags(tc.op.ref))
		}
	}
	if w.activeCount(2) != 1 || w.pins(2, good) != pinHostW {
		t.Errorf("only the okay map may hold a pin: %d active, pin %#x", w.activeCount(2), w.pins(2, good))
	}
	// Maptrack full: a has one maptrack frame, 256 handles, two in use.
	b.grant(30, 1, b.page(), GTFPermitAccess|GTFReadonly)
	b.grant(31, 1, b.page(), GTFPermitAccess|GTFReadonly)
	var hs []uint32
	for i := 0; ; i++ {
		st, h := w.mapOne(a, 2, 30+uint32(i/128), hostRO, ro(i))
		if st == GNTSTNoSpace {
			if i != HandlesPerFrame-2 {
				t.Errorf("no_space after %d maps", i)
			}
			break
		}
		if st != GNTSTOkay {
			t.Fatalf("map %d: %d", i, st)
		}
		hs = append(hs, h)
	}
	if len(w.handles(1)) != HandlesPerFrame {
		t.Errorf("%d handles allocated", len(w.handles(1)))
	}
	// no_space comes before the ref is even looked at.
	st, _ := w.mapOne(a, 2, 1<<30, hostRW, rw(1))
	expectSt(t, "no_space before bad_gntref", st, GNTSTNoSpace)
	st, _ = w.mapOne(a, 9, 1<<30, hostRW, rw(1))
	expectSt(t, "bad_domain before no_space", st, GNTSTBadDomain)
	// Freeing one handle makes room.
	expectSt(t, "unmap", w.unmapOne(a, hs[0], 0), GNTSTOkay)
	b.grant(60, 1, b.page(), GTFPermitAccess)
	w.mustMap(a, 2, 60, hostRW, rw(5))
}

// TestMapCheckOrder breaks several checks at once: the first in Xen's
// order must win.
func TestMapCheckOrder(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Config{MapFrom: []DomainID{3}})
	w.add(2, Config{})
	for _, tc := range []struct {
		name string
		op   mapArgs
		want int16
	}{
		{"bad flags before device_map", mapArgs{9, 1 << 31, 0, 0}, GNTSTBadGntref},
		{"device_map before bad domain", mapArgs{9, 1 << 31, GNTMAPDeviceMap | hostRW, 0}, GNTSTGeneralError},
		{"bad domain before policy", mapArgs{9, 1 << 31, hostRW, 0}, GNTSTBadDomain},
		{"policy before bad ref", mapArgs{2, 1 << 31, hostRW, 0}, GNTSTPermissionDenied},
		{"bad ref before host_addr", mapArgs{DomainSelf, 1 << 31, hostRW, 0}, GNTSTBadGntref},
	} {
		st, _ := w.mapOne(a, tc.op.dom, tc.op.ref, tc.op.flags, tc.op.gpa)
		expectSt(t, tc.name, st, tc.want)
	}
	a.grant(9, 1, uint64(len(a.ram))/PageSize+1, GTFPermitAccess)
	st, _ := w.mapOne(a, DomainSelf, 9, hostRW, 0)
	expectSt(t, "bad page before host_addr", st, GNTSTBadPage)
	if a.flags(9) != GTFPermitAccess {
		t.Errorf("flags left at %#x after bad_page", a.flags(9))
	}
}

func TestUnmapStatuses(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{MaxMaptrackFrames: 1}), w.add(2, Config{})
	for r := uint32(8); r < 12; r++ {
		b.grant(r, 1, b.page(), GTFPermitAccess)
	}
	h8 := w.mustMap(a, 2, 8, hostRW, rw(8))
	expectSt(t, "handle beyond the maptrack", w.unmapOne(a, HandlesPerFrame, 0), GNTSTBadHandle)
	expectSt(t, "handle huge", w.unmapOne(a, 1<<31, 0), GNTSTBadHandle)
	expectSt(t, "free handle", w.unmapOne(a, h8+1, 0), GNTSTBadHandle)
	ret, st := w.unmapBatch(a, unmapArgs{gpa: rw(8), second: 0x1000, handle: h8})
	expect(t, "unmap", ret, 0)
	expectSt(t, "dev_bus_addr", st[0], GNTSTBadDevAddr)
	expectSt(t, "host_addr mismatch", w.unmapOne(a, h8, rw(9)), GNTSTGeneralError)
	ret, st = w.unmapBatchCmd(a, OpUnmapAndReplace, unmapArgs{gpa: rw(8), second: rw(20), handle: h8})
	expect(t, "unmap_and_replace", ret, 0)
	expectSt(t, "unmap_and_replace with new_addr", st[0], GNTSTGeneralError)
	if p := w.pins(2, 8); p != pinHostW {
		t.Fatalf("failed unmaps changed the pins: %#x", p)
	}
	ret, st = w.unmapBatchCmd(a, OpUnmapAndReplace, unmapArgs{gpa: rw(8), handle: h8})
	if ret != 0 || st[0] != GNTSTOkay {
		t.Fatalf("unmap_and_replace(new_addr 0): %d %d", ret, st[0])
	}
	expectSt(t, "double unmap", w.unmapOne(a, h8, 0), GNTSTBadHandle)

	// A batch: one Window.Unmap for all accepted elements, duplicate and
	// bad handles rejected individually.
	h8 = w.mustMap(a, 2, 8, hostRW, rw(8))
	h9 := w.mustMap(a, 2, 9, hostRO, ro(9))
	h10 := w.mustMap(a, 2, 10, hostRW, rw(10))
	w.win.mu.Lock()
	before := len(w.win.unmapBatches[1])
	w.win.mu.Unlock()
	ret, st = w.unmapBatch(a,
		unmapArgs{gpa: rw(8), handle: h8}, unmapArgs{handle: h8}, unmapArgs{handle: 200},
		unmapArgs{gpa: 0, handle: h9}, unmapArgs{gpa: rw(10), handle: h10})
	expect(t, "batch", ret, 0)
	if !slices.Equal(st, []int16{GNTSTOkay, GNTSTBadHandle, GNTSTBadHandle, GNTSTOkay, GNTSTOkay}) {
		t.Errorf("batch statuses %v", st)
	}
	w.win.mu.Lock()
	batches := w.win.unmapBatches[1][before:]
	w.win.mu.Unlock()
	if len(batches) != 1 || !slices.Equal(batches[0], []uint64{rw(8), ro(9), rw(10)}) {
		t.Errorf("Window.Unmap calls: %v", batches)
	}
	if w.activeCount(2) != 0 || w.win.mapped(1) != 0 {
		t.Error("batch left mappings")
	}
	for r := uint32(8); r < 11; r++ {
		if b.flags(r) != GTFPermitAccess {
			t.Errorf("ref %d flags %#x", r, b.flags(r))
		}
	}

	// Window.Unmap failing: nothing is released, status general_error.
	h8 = w.mustMap(a, 2, 8, hostRW, rw(8))
	w.win.mu.Lock()
	w.win.failUnmap = true
	w.win.mu.Unlock()
	expectSt(t, "Window.Unmap fails", w.unmapOne(a, h8, 0), GNTSTGeneralError)
	w.win.mu.Lock()
	w.win.failUnmap = false
	w.win.mu.Unlock()
	if w.pins(2, 8) != pinHostW || b.flags(8)&GTFWriting == 0 {
		t.Error("failed Window.Unmap released the grant")
	}
	expectSt(t, "retry", w.unmapOne(a, h8, 0), GNTSTOkay)
	if s, _ := w.g.Stats(1); s.Mapped != 0 || s.Unmaps != 5 {
		t.Errorf("stats %+v", s)
	}
}

// writeFaultCaller fails every write at or above an address.
type writeFaultCaller struct {
	*fakeDomain
	from uint64
}

func (c writeFaultCaller) WriteGuest(addr uint64, p []byte) error {
	if addr+uint64(len(p)) > c.from {
		return errFault
	}
	return c.fakeDomain.WriteGuest(addr, p)
}

// A map whose result cannot be written back is undone (the guest never
// learns the handle).
func TestMapWriteBackFault(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.grant(8, 1, b.page(), GTFPermitAccess)
	uop := a.put(mapBytes(mapArgs{dom: 2, ref: 8, flags: hostRW, gpa: rw(0)}))
	expect(t, "map", w.g.Op(writeFaultCaller{a, uop}, OpMapGrantRef, uop, 1), -EFAULT)
	if w.activeCount(2) != 0 || w.win.mapped(1) != 0 || b.flags(8) != GTFPermitAccess || len(w.handles(1)) != 0 {
		t.Error("mapping not undone")
	}
}

// TestPinLimit: each counter stops at 128 mappings, and the last unmap
// clears the status bits.
func TestPinLimit(t *testing.T) {
	for _, roMap := range []bool{false, true} {
		w := newWorld(t)
		a, b := w.add(1, Config{}), w.add(2, Config{})
		b.grant(8, 1, b.page(), GTFPermitAccess)
		flags, at := uint32(hostRW), rw
		if roMap {
			flags, at = hostRO, ro
		}
		var hs []uint32
		for i := range 128 {
			hs = append(hs, w.mustMap(a, 2, 8, flags, at(i)))
		}
		st, _ := w.mapOne(a, 2, 8, flags, at(128))
		expectSt(t, "129th map", st, GNTSTGeneralError)
		// A saturated counter blocks the other kind too (Xen checks all
		// four counters' top bits).
		other, oat := uint32(hostRO), ro
		if roMap {
			other, oat = hostRW, rw
		}
		st, _ = w.mapOne(a, 2, 8, other, oat(200))
		expectSt(t, "other kind while saturated", st, GNTSTGeneralError)
		want := uint32(128 * pinHostW)
		if roMap {
			want = 128 * pinHostR
		}
		if p := w.pins(2, 8); p != want {
			t.Errorf("pins %#x, want %#x", p, want)
		}
		expectSt(t, "unmap one", w.unmapOne(a, hs[0], 0), GNTSTOkay)
		hs[0] = w.mustMap(a, 2, 8, flags, at(128))
		var ops []unmapArgs
		for _, h := range hs {
			ops = append(ops, unmapArgs{handle: h})
		}
		ret, sts := w.unmapBatch(a, ops...)
		if ret != 0 || slices.ContainsFunc(sts, func(s int16) bool { return s != GNTSTOkay }) {
			t.Fatalf("unmap all: %d %v", ret, sts)
		}
		if b.flags(8) != GTFPermitAccess || w.activeCount(2) != 0 {
			t.Errorf("after the last unmap: flags %#x, %d active", b.flags(8), w.activeCount(2))
		}
	}
}

func TestReadOnly(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	gro, grw := b.page(), b.page()
	b.grant(8, 1, gro, GTFPermitAccess|GTFReadonly)
	b.grant(9, 1, grw, GTFPermitAccess)
	st, _ := w.mapOne(a, 2, 8, hostRW, rw(0))
	expectSt(t, "RW map of a readonly grant", st, GNTSTGeneralError)
	if b.flags(8) != GTFPermitAccess|GTFReadonly {
		t.Errorf("flags %#x", b.flags(8))
	}
	h := w.mustMap(a, 2, 8, hostRO, ro(0))
	if b.flags(8) != GTFPermitAccess|GTFReadonly|GTFReading {
		t.Errorf("RO map: flags %#x, want only reading added", b.flags(8))
	}
	if m, _ := w.win.at(1, ro(0)); !m.ro {
		t.Error("window mapping not read-only")
	}
	// A read-only mapping already pinned cannot be upgraded either.
	st, _ = w.mapOne(a, 2, 8, hostRW, rw(1))
	expectSt(t, "RW map while RO-mapped", st, GNTSTGeneralError)
	// Copy into the readonly grant: general_error; out of it: fine.
	self := a.page()
	expectSt(t, "copy into readonly grant",
		w.copyOne(a, copyArgs{src: gmfn(DomainSelf, self, 0), dst: gref(2, 8, 0), len: 16, flags: GNTCOPYDestGref}), GNTSTGeneralError)
	expectSt(t, "copy out of readonly grant",
		w.copyOne(a, copyArgs{src: gref(2, 8, 0), dst: gmfn(DomainSelf, self, 0), len: 16, flags: GNTCOPYSourceGref}), GNTSTOkay)
	expectSt(t, "unmap", w.unmapOne(a, h, ro(0)), GNTSTOkay)
	if b.flags(8) != GTFPermitAccess|GTFReadonly {
		t.Errorf("flags %#x", b.flags(8))
	}

	// A writable grant mapped RO, then RW (an upgrade re-validates and sets
	// writing), then the RW mapping goes: writing clears, reading stays.
	hro := w.mustMap(a, 2, 9, hostRO, ro(1))
	if b.flags(9) != GTFPermitAccess|GTFReading {
		t.Errorf("flags %#x", b.flags(9))
	}
	// The granter makes it readonly while only read-mapped (allowed: writing
	// is clear); the upgrade must now fail.
	atomic.OrUint32(b.hdr(9), GTFReadonly)
	st, _ = w.mapOne(a, 2, 9, hostRW, rw(2))
	expectSt(t, "upgrade after the granter made it readonly", st, GNTSTGeneralError)
	atomic.AndUint32(b.hdr(9), ^uint32(GTFReadonly))
	hrw := w.mustMap(a, 2, 9, hostRW, rw(2))
	if b.flags(9) != GTFPermitAccess|GTFReading|GTFWriting {
		t.Errorf("flags after upgrade %#x", b.flags(9))
	}
	expectSt(t, "unmap RW", w.unmapOne(a, hrw, rw(2)), GNTSTOkay)
	if b.flags(9) != GTFPermitAccess|GTFReading {
		t.Errorf("flags after RW unmap %#x", b.flags(9))
	}
	expectSt(t, "unmap RO", w.unmapOne(a, hro, ro(1)), GNTSTOkay)
	if b.flags(9) != GTFPermitAccess {
		t.Errorf("flags after last unmap %#x", b.flags(9))
	}
}

// TestEndAccess plays the granter's side of the protocol: ending access
// fails while the entry is in use and succeeds once it is unmapped.
func TestEndAccess(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.grant(8, 1, b.page(), GTFPermitAccess)
	b.grant(9, 1, b.page(), GTFPermitAccess)
	hw := w.mustMap(a, 2, 8, hostRW, rw(0))
	hr := w.mustMap(a, 2, 9, hostRO, ro(0))
	if b.endAccess(8) || b.endAccess(9) {
		t.Fatal("end of access succeeded while mapped")
	}
	// After a failed end, the grant still works.
	h := w.mustMap(a, 2, 8, hostRO, ro(1))
	expectSt(t, "unmap", w.unmapOne(a, h, 0), GNTSTOkay)
	expectSt(t, "unmap", w.unmapOne(a, hw, 0), GNTSTOkay)
	expectSt(t, "unmap", w.unmapOne(a, hr, 0), GNTSTOkay)
	if !b.endAccess(8) || !b.endAccess(9) {
		t.Fatal("end of access failed after unmap")
	}
	st, _ := w.mapOne(a, 2, 8, hostRW, rw(0))
	expectSt(t, "map after end of access", st, GNTSTGeneralError)
	// A copy pins only for its duration.
	b.grant(10, 1, b.page(), GTFPermitAccess)
	expectSt(t, "copy", w.copyOne(a, copyArgs{src: gref(2, 10, 0), dst: gmfn(DomainSelf, a.page(), 0), len: 1, flags: GNTCOPYSourceGref}), GNTSTOkay)
	if !b.endAccess(10) {
		t.Error("copy left the entry in use")
	}
}

// TestUnstableEntry: a granter rewriting an entry as fast as it can makes
// maps fail (or succeed) after bounded retries, never hang or panic.
func TestUnstableEntry(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	g := b.page()
	b.grant(8, 1, g, GTFPermitAccess)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint32(0); !stop.Load(); i++ {
			// Flip domid between the grantee and another domain, and the
			// readonly bit, keeping whatever status bits the VMM set.
			h := b.hdr(8)
			old := atomic.LoadUint32(h)
			nw := old&(GTFReading|GTFWriting) | GTFPermitAccess | uint32(1+i%2)<<16 | (i/2%2)*GTFReadonly
			atomic.CompareAndSwapUint32(h, old, nw)
		}
	}()
	counts := map[int16]int{}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		st, h := w.mapOne(a, 2, 8, hostRW, rw(0))
		counts[st]++
		if st == GNTSTOkay {
			expectSt(t, "unmap", w.unmapOne(a, h, 0), GNTSTOkay)
		} else if st != GNTSTGeneralError {
			t.Fatalf("status %d", st)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("statuses under a flipping entry: %v", counts)
	if w.activeCount(2) != 0 {
		t.Error("pins left")
	}
	if b.flags(8)&(GTFReading|GTFWriting) != 0 {
		t.Errorf("status bits left: %#x", b.flags(8))
	}
}

// TestUnstableEntryOnly flips a flag bit validation ignores, so every
// failure is the bounded compare-and-exchange giving up.
func TestUnstableEntryOnly(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.grant(8, 1, b.page(), GTFPermitAccess)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			for range 1000 {
				old := atomic.LoadUint32(b.hdr(8))
				atomic.CompareAndSwapUint32(b.hdr(8), old, old^1<<15)
			}
		}
	}()
	unstable := 0
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		st, h := w.mapOne(a, 2, 8, hostRO, ro(0))
		switch st {
		case GNTSTOkay:
			expectSt(t, "unmap", w.unmapOne(a, h, 0), GNTSTOkay)
		case GNTSTGeneralError:
			unstable++
		default:
			t.Fatalf("status %d", st)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d maps gave up on the unstable entry", unstable)
	if b.flags(8)&(GTFReading|GTFWriting) != 0 || w.activeCount(2) != 0 {
		t.Errorf("left in use: flags %#x", b.flags(8))
	}
}

// A domain may map its own grants (DOMID_SELF or its own id).
func TestSelfMap(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Config{MapFrom: []DomainID{}})
	a.grant(8, 1, a.page(), GTFPermitAccess)
	h1 := w.mustMap(a, DomainSelf, 8, hostRW, rw(0))
	h2 := w.mustMap(a, 1, 8, hostRO, ro(0))
	expectSt(t, "unmap", w.unmapOne(a, h1, 0), GNTSTOkay)
	expectSt(t, "unmap", w.unmapOne(a, h2, 0), GNTSTOkay)
	if a.flags(8) != GTFPermitAccess {
		t.Errorf("flags %#x", a.flags(8))
	}
}
