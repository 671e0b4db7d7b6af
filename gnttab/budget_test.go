package gnttab

import "testing"

// A grantee whose window budget is spent gets GNTST_no_device_space for
// each further element of a batch, while the elements before it succeed;
// a refused element leaves no pin, handle or status bit behind; another
// grantee mapping the same granter is unaffected; an unmap makes room
// again, and a revocation does not need any.
func TestMapNoDeviceSpace(t *testing.T) {
	w := newWorld(t)
	a, b, c := w.add(1, Config{}), w.add(2, Config{}), w.add(3, Config{})
	w.win.mu.Lock()
	w.win.budget = map[DomainID]int{1: 3, 3: 8}
	w.win.mu.Unlock()
	for ref := uint32(8); ref < 14; ref++ {
		b.grant(ref, 1, b.page(), GTFPermitAccess)
		b.grant(ref+100, 3, b.page(), GTFPermitAccess)
	}
	ops := make([]mapArgs, 5)
	for i := range ops {
		ops[i] = mapArgs{dom: 2, ref: 8 + uint32(i), flags: hostRW, gpa: rw(2 * i)}
	}
	ret, res := w.mapBatch(a, ops...)
	expect(t, "map batch", ret, 0)
	for i, r := range res {
		want := int16(GNTSTOkay)
		if i >= 3 {
			want = GNTSTNoDeviceSpace
		}
		expectSt(t, "batch element", r.status, want)
		if want != GNTSTOkay && r.handle != 0xDEADBEEF {
			t.Errorf("element %d: handle %#x written for a refused map", i, r.handle)
		}
	}
	for i := 3; i < 5; i++ {
		if f := b.flags(8 + uint32(i)); f != GTFPermitAccess {
			t.Errorf("ref %d refused for space: flags %#x, want no status bits", 8+i, f)
		}
		if _, ok := w.win.at(1, rw(2*i)); ok {
			t.Errorf("refused map left something at %#x", rw(2*i))
		}
	}
	if s, _ := w.g.Stats(1); s.Maps != 3 || s.Mapped != 3 || s.Errors != 2 {
		t.Errorf("stats of the full grantee: %+v, want 3 maps, 3 mapped, 2 errors", s)
	}
	if n := len(w.handles(1)); n != 3 {
		t.Errorf("%d handles allocated, want 3", n)
	}

	// Another grantee of the same granter has its own budget.
	for i := 0; i < 6; i++ {
		w.mustMap(c, 2, 108+uint32(i), hostRW, rw(i))
	}

	// An unmap gives the room back: one more map fits, then none.
	expectSt(t, "unmap", w.unmapOne(a, res[1].handle, rw(2)), GNTSTOkay)
	st, _ := w.mapOne(a, 2, 11, hostRW, rw(6))
	expectSt(t, "map after unmap", st, GNTSTOkay)
	st, _ = w.mapOne(a, 2, 12, hostRO, ro(0))
	expectSt(t, "map when full again (read-only half)", st, GNTSTNoDeviceSpace)

	// The granter dies: the full grantee's mappings are revoked (the dead
	// pages need no new budget) and unmap as usual.
	w.g.DomainDied(2)
	if got := w.win.mapped(1); got != 3 {
		t.Errorf("after revocation the window shows %d pages, want the 3 dead ones", got)
	}
	_, hs := w.queryRevoked(a, 8)
	if len(hs) != 3 {
		t.Fatalf("query_revoked: %v, want 3 handles", hs)
	}
	var un []unmapArgs
	for _, x := range hs {
		un = append(un, unmapArgs{handle: x})
	}
	ret, sts := w.unmapBatch(a, un...)
	expect(t, "unmap revoked", ret, 0)
	for _, s := range sts {
		expectSt(t, "unmap revoked", s, GNTSTOkay)
	}
	if w.win.mapped(1) != 0 || len(w.handles(1)) != 0 {
		t.Errorf("left: %d pages, handles %v", w.win.mapped(1), w.handles(1))
	}
}
