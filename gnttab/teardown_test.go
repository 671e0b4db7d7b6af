package gnttab

import (
	"bytes"
	"slices"
	"testing"
)

func TestGranteeDeath(t *testing.T) {
	w := newWorld(t)
	a, b, c := w.add(1, Config{}), w.add(2, Config{}), w.add(3, Config{})
	b.grant(8, 1, b.page(), GTFPermitAccess)
	b.grant(9, 1, b.page(), GTFPermitAccess|GTFReadonly)
	c.grant(8, 1, c.page(), GTFPermitAccess)
	a.grant(8, 1, a.page(), GTFPermitAccess)
	a.grant(9, 3, a.page(), GTFPermitAccess) // a is also a granter, to c
	w.mustMap(a, 2, 8, hostRW, rw(0))
	w.mustMap(a, 2, 8, hostRO, ro(0))
	w.mustMap(a, 2, 9, hostRO, ro(1))
	w.mustMap(a, 3, 8, hostRW, rw(1))
	w.mustMap(a, DomainSelf, 8, hostRW, rw(2))
	hc := w.mustMap(c, 1, 9, hostRW, rw(0))
	w.win.mu.Lock()
	before := len(w.win.unmapBatches[1])
	w.win.mu.Unlock()

	w.g.DomainDied(1)
	w.g.DomainDied(1) // idempotent

	w.win.mu.Lock()
	batches := slices.Clone(w.win.unmapBatches[1][before:])
	w.win.mu.Unlock()
	if len(batches) != 1 || len(batches[0]) != 5 {
		t.Errorf("grantee's Window.Unmap calls: %v (want one batch of 5)", batches)
	}
	if w.win.mapped(1) != 0 {
		t.Error("the dead grantee still has mappings")
	}
	for _, e := range []struct {
		d   *fakeDomain
		ref uint32
	}{{b, 8}, {b, 9}, {c, 8}} {
		if e.d.flags(e.ref)&(GTFReading|GTFWriting) != 0 {
			t.Errorf("dom%d ref %d still in use: %#x", e.d.id, e.ref, e.d.flags(e.ref))
		}
	}
	if !b.endAccess(8) || !b.endAccess(9) || !c.endAccess(8) {
		t.Error("granters cannot end access after the grantee died")
	}
	if w.activeCount(2)+w.activeCount(3) != 0 {
		t.Error("pins left")
	}
	// As a granter it died too: c's mapping of a's page is revoked.
	if m, ok := w.win.at(3, rw(0)); !ok || !m.dead {
		t.Errorf("c's mapping of the dead domain: %+v %v", m, ok)
	}
	if w.sig.Count(3) != 1 || w.sig.Count(1) != 0 || w.sig.Count(2) != 0 {
		t.Errorf("signals: %v", w.sig.Snapshot())
	}
	_, hs := w.queryRevoked(c, 10)
	if !slices.Equal(hs, []uint32{hc}) {
		t.Errorf("c's revoked handles: %v", hs)
	}
	// The dead domain's calls fail; calls naming it get bad_domain.
	expect(t, "dead caller", w.g.Op(a, OpQuerySize, a.put(make([]byte, 16)), 1), -ESRCH)
	st, _ := w.mapOne(c, 1, 9, hostRW, rw(1))
	expectSt(t, "map from the dead domain", st, GNTSTBadDomain)
	expectSt(t, "copy from the dead domain", w.copyOne(c, copyArgs{gref(1, 9, 0), gmfn(DomainSelf, c.page(), 0), 8, GNTCOPYSourceGref}), GNTSTBadDomain)
	if s, ok := w.g.Stats(1); !ok || s.Mapped != 0 {
		t.Errorf("dead domain's stats: %+v %v", s, ok)
	}
	expectSt(t, "unmap revoked", w.unmapOne(c, hc, rw(0)), GNTSTOkay)
	if w.win.mapped(3) != 0 {
		t.Error("c's dead page not unmapped")
	}
}

func TestGranterDeath(t *testing.T) {
	w := newWorld(t)
	a, b, c := w.add(1, Config{}), w.add(2, Config{}), w.add(3, Config{})
	bf := b.page()
	b.grant(8, 1, bf, GTFPermitAccess)
	b.grant(9, 1, b.page(), GTFPermitAccess)
	b.grant(10, 3, b.page(), GTFPermitAccess)
	c.grant(8, 1, c.page(), GTFPermitAccess)
	h1 := w.mustMap(a, 2, 8, hostRW, rw(0))
	h2 := w.mustMap(a, 2, 9, hostRO, ro(0))
	h3 := w.mustMap(a, 2, 8, hostRO, ro(1))
	hc := w.mustMap(a, 3, 8, hostRW, rw(1)) // not b's: stays live
	hcb := w.mustMap(c, 2, 10, hostRW, rw(0))

	w.g.DomainDied(2)
	// Scribble over the dead granter's table: from now on nothing may
	// write it (and reading it could only matter through a status).
	for i := range b.table {
		b.table[i] = 0xA5
	}
	scribbled := slices.Clone(b.table)

	// Revoke on each mapper's GPAs, one call per mapper.
	w.win.mu.Lock()
	ra, rc := slices.Clone(w.win.revokes[1]), slices.Clone(w.win.revokes[3])
	w.win.mu.Unlock()
	if len(ra) != 1 || !slices.Equal(ra[0], []uint64{rw(0), ro(0), ro(1)}) || len(rc) != 1 || !slices.Equal(rc[0], []uint64{rw(0)}) {
		t.Errorf("revokes: a %v, c %v", ra, rc)
	}
	for _, gpa := range []uint64{rw(0), ro(0), ro(1)} {
		if m, ok := w.win.at(1, gpa); !ok || !m.dead {
			t.Errorf("a at %#x: %+v %v", gpa, m, ok)
		}
	}
	if m, ok := w.win.at(1, rw(1)); !ok || m.dead {
		t.Error("a's mapping of c's page was revoked")
	}
	if w.sig.Count(1) != 1 || w.sig.Count(3) != 1 || w.sig.Count(2) != 0 {
		t.Errorf("signals %v", w.sig.Snapshot())
	}
	if s, _ := w.g.Stats(1); s.Revoked != 3 || s.Mapped != 1 {
		t.Errorf("a's stats %+v", s)
	}
	_, hs := w.queryRevoked(a, 8)
	if !slices.Equal(hs, []uint32{h1, h2, h3}) {
		t.Errorf("revoked handles %v", hs)
	}
	// A revoked GPA stays taken until the handle is unmapped.
	c.grant(9, 1, c.page(), GTFPermitAccess)
	st, _ := w.mapOne(a, 3, 9, hostRW, rw(0))
	expectSt(t, "map over a revoked mapping", st, GNTSTGeneralError)
	// Unmapping revoked handles: okay, with the usual address checks.
	expectSt(t, "revoked, wrong host_addr", w.unmapOne(a, h1, rw(5)), GNTSTGeneralError)
	ret, sts := w.unmapBatch(a, unmapArgs{gpa: rw(0), handle: h1}, unmapArgs{handle: h2}, unmapArgs{handle: hc}, unmapArgs{handle: h3, second: 1})
	if ret != 0 || !slices.Equal(sts, []int16{GNTSTOkay, GNTSTOkay, GNTSTOkay, GNTSTBadDevAddr}) {
		t.Errorf("unmap: %d %v", ret, sts)
	}
	expectSt(t, "revoked, again", w.unmapOne(a, h1, 0), GNTSTBadHandle)
	expectSt(t, "last one", w.unmapOne(a, h3, 0), GNTSTOkay)
	if w.win.mapped(1) != 0 {
		t.Errorf("a still has %d window pages", w.win.mapped(1))
	}
	if c.flags(8) != GTFPermitAccess {
		t.Errorf("c's entry: %#x", c.flags(8))
	}
	w.mustMap(a, 3, 9, hostRW, rw(0)) // the GPA is free again
	expectSt(t, "c unmaps", w.unmapOne(c, hcb, 0), GNTSTOkay)
	if !bytes.Equal(b.table, scribbled) {
		t.Error("the dead granter's table was written")
	}
	if s, _ := w.g.Stats(1); s.Mapped != 1 {
		t.Errorf("a's stats %+v", s)
	}
	// Later ops naming the dead granter.
	st, _ = w.mapOne(a, 2, 8, hostRW, rw(7))
	expectSt(t, "map", st, GNTSTBadDomain)
	_, st, _, _ = w.querySize(a, 2)
	expectSt(t, "query_size", st, GNTSTBadDomain)

	// RemoveDomain forgets it; the id can be used again.
	w.g.RemoveDomain(2)
	if _, ok := w.g.Stats(2); ok {
		t.Error("stats after RemoveDomain")
	}
	nb := newFakeDomain(2, 1<<20, 0)
	if err := w.g.AddDomain(2, nb, nb.table, testTableGPA, Config{}); err != nil {
		t.Fatal(err)
	}
	nb.grant(8, 1, 5, GTFPermitAccess)
	h := w.mustMap(a, 2, 8, hostRW, rw(9))
	expectSt(t, "unmap", w.unmapOne(a, h, 0), GNTSTOkay)
}

// A granter dying while the revoked handles are still unreported, then the
// mapper dying: everything is released and nothing touches the dead.
func TestBothDie(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.grant(8, 1, b.page(), GTFPermitAccess)
	a.grant(8, 2, a.page(), GTFPermitAccess)
	w.mustMap(a, 2, 8, hostRW, rw(0))
	w.mustMap(b, 1, 8, hostRW, rw(0))
	w.g.DomainDied(2)
	if m, ok := w.win.at(1, rw(0)); !ok || !m.dead {
		t.Error("a's mapping not revoked")
	}
	if w.win.mapped(2) != 0 {
		t.Error("b's own mapping not unmapped")
	}
	if a.flags(8) != GTFPermitAccess {
		t.Errorf("a's entry still in use after its grantee died: %#x", a.flags(8))
	}
	w.g.RemoveDomain(1)
	if w.win.mapped(1) != 0 {
		t.Error("a's revoked page not unmapped at its death")
	}
	w.g.RemoveDomain(2)
	w.g.RemoveDomain(2)
	w.g.DomainDied(7) // unknown: nothing
}

func TestPolicyRevoke(t *testing.T) {
	w := newWorld(t)
	a, b, c := w.add(1, Config{}), w.add(2, Config{}), w.add(3, Config{})
	b.grant(8, 1, b.page(), GTFPermitAccess)
	b.grant(9, 3, b.page(), GTFPermitAccess)
	h := w.mustMap(a, 2, 8, hostRW, rw(0))
	w.mustMap(c, 2, 9, hostRW, rw(0))
	w.g.Revoke(2, 1)
	w.g.Revoke(2, 1) // nothing left: no second signal
	w.g.Revoke(2, 9) // unknown mapper
	if m, _ := w.win.at(1, rw(0)); !m.dead {
		t.Error("not revoked")
	}
	if m, _ := w.win.at(3, rw(0)); m.dead {
		t.Error("the other mapper was revoked")
	}
	if b.flags(8) != GTFPermitAccess || b.flags(9)&GTFWriting == 0 {
		t.Errorf("granter's flags %#x %#x", b.flags(8), b.flags(9))
	}
	if w.sig.Count(1) != 1 || w.sig.Count(3) != 0 {
		t.Errorf("signals %v", w.sig.Snapshot())
	}
	// The granter's entry is free again; a can map it anew elsewhere.
	h2 := w.mustMap(a, 2, 8, hostRW, rw(1))
	_, hs := w.queryRevoked(a, 4)
	if !slices.Equal(hs, []uint32{h}) {
		t.Errorf("revoked %v", hs)
	}
	expectSt(t, "unmap revoked", w.unmapOne(a, h, 0), GNTSTOkay)
	expectSt(t, "unmap live", w.unmapOne(a, h2, 0), GNTSTOkay)
}
