package gnttab

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
)

// xferArgs is one gnttab_transfer element.
type xferArgs struct {
	gfn uint64
	dom DomainID
	ref uint32
}

func (w *world) transferBatch(d *fakeDomain, ops ...xferArgs) (int64, []int16) {
	b := make([]byte, len(ops)*sizeofTransfer)
	for i, op := range ops {
		x := b[i*sizeofTransfer:]
		le.PutUint64(x[0:], op.gfn)
		le.PutUint16(x[8:], uint16(op.dom))
		le.PutUint32(x[12:], op.ref)
		le.PutUint16(x[16:], 0x7777)
	}
	return w.statusBatch(d, OpTransfer, b, sizeofTransfer, 16)
}

func (w *world) transferOne(d *fakeDomain, gfn uint64, dom DomainID, ref uint32) int16 {
	w.t.Helper()
	ret, st := w.transferBatch(d, xferArgs{gfn, dom, ref})
	if ret != 0 {
		w.t.Fatalf("transfer returned %d", ret)
	}
	return st[0]
}

// frameOf returns entry ref's frame field.
func (d *fakeDomain) frameOf(ref uint32) uint32 {
	return atomic.LoadUint32(word32(d.table, entryOff(ref)+4))
}

// transferWorld: domains 1 (sender) and 2 (receiver) with physmaps; the
// receiver has emptied frame 40 and accepts a transfer from 1 into it in
// entry 8.
func transferWorld(t *testing.T) (*world, *fakeFrames, *fakeDomain, *fakeDomain) {
	w := newWorld(t)
	f := newFakeFrames(w.g, w.dom)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	f.attach(a, 0)
	f.attach(b, 0)
	f.makeEmpty(b, 40)
	b.grant(8, 1, 40, GTFAcceptTransfer)
	t.Cleanup(func() { f.check(t) })
	return w, f, a, b
}

// The accept-transfer protocol: the page moves to the frame the receiver
// chose, the entry ends committed and completed with that frame, and the
// sender's frame is empty.
func TestTransfer(t *testing.T) {
	w, f, a, b := transferWorld(t)
	g := a.page()
	fill := bytes.Repeat([]byte("transfer"), PageSize/8)
	copy(a.ram[g*PageSize:], fill)
	expectSt(t, "transfer", w.transferOne(a, g, 2, 8), GNTSTOkay)
	if fl := b.flags(8); fl != GTFAcceptTransfer|GTFTransferCommitted|GTFTransferCompleted {
		t.Errorf("receiver's entry flags %#x", fl)
	}
	if fr := b.frameOf(8); fr != 40 {
		t.Errorf("receiver's entry frame %d, want 40", fr)
	}
	if !bytes.Equal(b.ram[40*PageSize:41*PageSize], fill) {
		t.Errorf("the page did not arrive")
	}
	if !f.isEmpty(1, g) || f.isEmpty(2, 40) {
		t.Errorf("physmaps after the transfer: sender's frame empty %v, receiver's %v", f.isEmpty(1, g), f.isEmpty(2, 40))
	}
	// The sender's frame is gone: it cannot be transferred or granted again.
	b.grant(9, 1, 41, GTFAcceptTransfer)
	f.makeEmpty(b, 41)
	expectSt(t, "transfer of the transferred frame", w.transferOne(a, g, 2, 9), GNTSTBadPage)
	a.grant(10, 2, g, GTFPermitAccess)
	expectSt(t, "map of a grant of the transferred frame", first(w.mapOne(b, 1, 10, hostRW, rw(0))), GNTSTBadPage)
	// The used entry cannot be used twice.
	expectSt(t, "second transfer into the used entry", w.transferOne(a, a.page(), 2, 8), GNTSTGeneralError)
}

func first(st int16, _ uint32) int16 { return st }

// Frames the caller may not give: GNTST_bad_page, and the frame stays.
func TestTransferBadPage(t *testing.T) {
	w, f, a, b := transferWorld(t)
	mapped, selfMapped, ring, own := a.page(), a.page(), a.page(), a.page()
	a.grant(20, 2, mapped, GTFPermitAccess)
	h := w.mustMap(b, 1, 20, hostRW, rw(0))
	a.grant(21, 1, selfMapped, GTFPermitAccess|GTFReadonly)
	hs := w.mustMap(a, DomainSelf, 21, hostRO, ro(0))
	f.mu.Lock()
	f.ring[1][ring] = true
	f.mu.Unlock()
	a.grant(22, 2, own, GTFPermitAccess) // granted but not in use: may go
	for _, tc := range []struct {
		name string
		gfn  uint64
	}{
		{"mapped by another domain", mapped},
		{"mapped by the caller itself", selfMapped},
		{"an Argo ring page", ring},
		{"outside RAM", uint64(len(a.ram)) / PageSize},
		{"huge frame", ^uint64(0)},
		{"the grant table frame", testTableGPA / PageSize},
	} {
		before := append([]byte(nil), w.dom[1].ram[min(tc.gfn, 1)*PageSize:][:8]...)
		expectSt(t, tc.name, w.transferOne(a, tc.gfn, 2, 8), GNTSTBadPage)
		if tc.gfn < uint64(len(a.ram))/PageSize && (f.isEmpty(1, tc.gfn) || !bytes.Equal(before, w.dom[1].ram[min(tc.gfn, 1)*PageSize:][:8])) {
			t.Errorf("%s: the frame was lost", tc.name)
		}
	}
	if fl := b.flags(8); fl != GTFAcceptTransfer {
		t.Errorf("the receiver's entry changed: %#x", fl)
	}
	// Unmapped, the frame may go.
	expectSt(t, "unmap", w.unmapOne(b, h, rw(0)), GNTSTOkay)
	expectSt(t, "transfer once unmapped", w.transferOne(a, mapped, 2, 8), GNTSTOkay)
	expectSt(t, "unmap self", w.unmapOne(a, hs, ro(0)), GNTSTOkay)
	if w.g.FramesInUse(1, selfMapped, 1) {
		t.Errorf("FramesInUse after the unmap")
	}
}

// Once taken, a frame is lost whatever goes wrong next (Xen), and the
// receiver's entry is left as it was.
func TestTransferFailuresLoseTheFrame(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32)
		want  int16
	}{
		{"missing domain", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) { return 9, 8 }, GNTSTBadDomain},
		{"DOMID_INVALID", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) { return 0x7FF4, 8 }, GNTSTBadDomain},
		{"dead domain", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) {
			w.add(3, Config{})
			w.g.DomainDied(3)
			return 3, 8
		}, GNTSTGeneralError},
		{"ref beyond the table", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) { return 2, 512 }, GNTSTGeneralError},
		{"permit_access entry", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) {
			b.grant(9, 1, 40, GTFPermitAccess)
			return 2, 9
		}, GNTSTGeneralError},
		{"invalid entry", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) { return 2, 9 }, GNTSTGeneralError},
		{"entry names another domain", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) {
			b.grant(9, 3, 40, GTFAcceptTransfer)
			return 2, 9
		}, GNTSTGeneralError},
		{"entry already committed", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) {
			b.grant(9, 1, 40, GTFAcceptTransfer|GTFTransferCommitted)
			return 2, 9
		}, GNTSTGeneralError},
		{"entry with extra flags", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) {
			b.grant(9, 1, 40, GTFAcceptTransfer|GTFSubPage)
			return 2, 9
		}, GNTSTGeneralError},
		{"receiver's frame populated", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) {
			b.grant(9, 1, 41, GTFAcceptTransfer)
			return 2, 9
		}, GNTSTGeneralError},
		{"receiver's frame outside its RAM", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) {
			b.grant(9, 1, 0xFFFFF, GTFAcceptTransfer)
			return 2, 9
		}, GNTSTGeneralError},
		{"receiver at its maximum", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) {
			f.mu.Lock()
			f.room[2] = 0
			f.mu.Unlock()
			return 2, 8
		}, GNTSTGeneralError},
		{"the move fails", func(w *world, f *fakeFrames, a, b *fakeDomain) (DomainID, uint32) {
			f.failMove = true
			return 2, 8
		}, GNTSTGeneralError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, f, a, b := transferWorld(t)
			dom, ref := tc.setup(w, f, a, b)
			before := atomic.LoadUint64(word64(b.table, entryOff(ref%512)))
			g := a.page()
			a.ram[g*PageSize] = 0xAB
			expectSt(t, tc.name, w.transferOne(a, g, dom, ref), tc.want)
			if !f.isEmpty(1, g) || a.ram[g*PageSize] != 0 {
				t.Errorf("the sender kept the frame")
			}
			if after := atomic.LoadUint64(word64(b.table, entryOff(ref%512))); after != before {
				t.Errorf("the receiver's entry changed from %#x to %#x", before, after)
			}
			if f.isEmpty(2, 41) || !f.isEmpty(2, 40) {
				t.Errorf("the receiver's frames changed")
			}
		})
	}
}

// A guest that keeps rewriting its entry gets GNTST_general_error after
// bounded retries, never a hang; the frame is lost, the entry not taken.
func TestTransferUnstableEntry(t *testing.T) {
	w, f, a, b := transferWorld(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h := b.hdr(8)
		for i := uint32(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Alternate the domid's high bits: still naming 1 in
			// one, never valid in the other.
			atomic.StoreUint32(h, GTFAcceptTransfer|uint32(1+(i&1)*0x100)<<16)
		}
	}()
	var ok, failed int
	for range 200 {
		g := a.page()
		switch st := w.transferOne(a, g, 2, 8); st {
		case GNTSTOkay:
			ok++
			// Give the frame back so the next round can use it.
			f.makeEmpty(b, 40)
			f.mu.Lock()
			f.room[2]--
			f.mu.Unlock()
		case GNTSTGeneralError:
			failed++
		default:
			t.Fatalf("status %d", st)
		}
		if a.brk > uint64(len(a.ram))/2 {
			break
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d transfers went through, %d failed", ok, failed)
	if failed == 0 {
		t.Errorf("no transfer saw the unstable entry")
	}
}

// Batches: each element has its own status; a fault stops the call; the
// call-level checks.
func TestTransferBatchAndErrnos(t *testing.T) {
	w, f, a, b := transferWorld(t)
	f.makeEmpty(b, 41)
	b.grant(9, 1, 41, GTFAcceptTransfer)
	g1, g2 := a.page(), a.page()
	ret, st := w.transferBatch(a, xferArgs{g1, 2, 8}, xferArgs{0xFFFFFF, 2, 9}, xferArgs{g2, 2, 9})
	if ret != 0 || st[0] != GNTSTOkay || st[1] != GNTSTBadPage || st[2] != GNTSTOkay {
		t.Errorf("batch: %d %v", ret, st)
	}
	expect(t, "count > MaxBatch", w.g.Op(a, OpTransfer, bad, MaxBatch+1), -EINVAL)
	expect(t, "bad pointer", w.g.Op(a, OpTransfer, bad, 1), -EFAULT)
	expect(t, "wrapping array", w.g.Op(a, OpTransfer, ^uint64(0)-8, 2), -EFAULT)
	expect(t, "count 0", w.g.Op(a, OpTransfer, bad, 0), 0)
	// The bad_page and two -EFAULT calls; -EINVAL is refused before the
	// caller is looked up, as for every op.
	if s, _ := w.g.Stats(1); s.Errors != 3 {
		t.Errorf("errors %d, want 3", s.Errors)
	}
}

// A domain may transfer to itself (by DOMID_SELF or its own id).
func TestTransferToSelf(t *testing.T) {
	w, f, a, _ := transferWorld(t)
	f.makeEmpty(a, 50)
	a.grant(30, 1, 50, GTFAcceptTransfer)
	g := a.page()
	a.ram[g*PageSize+5] = 0x5A
	expectSt(t, "self transfer", w.transferOne(a, g, DomainSelf, 30), GNTSTOkay)
	if a.ram[50*PageSize+5] != 0x5A || !f.isEmpty(1, g) {
		t.Errorf("the page did not move within the domain")
	}
	if fl := a.flags(30); fl != GTFAcceptTransfer|GTFTransferCommitted|GTFTransferCompleted {
		t.Errorf("entry flags %#x", fl)
	}
}

// FramesInUse follows the pins: mapped frames, copies in progress are in
// use; granted-but-unpinned ones are not.
func TestFramesInUse(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	g := a.page()
	a.grant(8, 2, g, GTFPermitAccess)
	if w.g.FramesInUse(1, g, 1) {
		t.Errorf("a granted frame nobody maps is in use")
	}
	h := w.mustMap(b, 1, 8, hostRO, ro(1))
	h2 := w.mustMap(b, 1, 8, hostRW, rw(1))
	for _, r := range []struct{ gfn, n uint64 }{{g, 1}, {0, g + 1}, {0, 1 << 40}} {
		if !w.g.FramesInUse(1, r.gfn, r.n) {
			t.Errorf("FramesInUse(%#x, %d) false with the frame mapped", r.gfn, r.n)
		}
	}
	if w.g.FramesInUse(1, g+1, 100) || w.g.FramesInUse(2, g, 1) || w.g.FramesInUse(9, g, 1) {
		t.Errorf("FramesInUse true for unpinned frames or other domains")
	}
	expectSt(t, "unmap", w.unmapOne(b, h, 0), GNTSTOkay)
	if !w.g.FramesInUse(1, g, 1) {
		t.Errorf("still mapped writable, but not in use")
	}
	expectSt(t, "unmap", w.unmapOne(b, h2, 0), GNTSTOkay)
	if w.g.FramesInUse(1, g, 1) {
		t.Errorf("in use after the last unmap")
	}
	w.mustMap(b, 1, 8, hostRW, rw(2))
	w.g.DomainDied(1)
	if w.g.FramesInUse(1, g, 1) {
		t.Errorf("a dead domain's frame is in use")
	}
}
