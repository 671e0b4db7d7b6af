package gnttab

import (
	"bytes"
	"slices"
	"testing"
)

// fill writes a recognisable pattern into frame f of d.
func fill(d *fakeDomain, f uint64, seed byte) {
	p := d.ram[f*PageSize : (f+1)*PageSize]
	for i := range p {
		p[i] = seed + byte(i*7)
	}
}

func frame(d *fakeDomain, f uint64) []byte { return d.ram[f*PageSize : (f+1)*PageSize] }

func TestCopy(t *testing.T) {
	w := newWorld(t)
	a, b, c := w.add(1, Config{}), w.add(2, Config{}), w.add(3, Config{})
	bf, af, cf := b.page(), a.page(), c.page()
	fill(b, bf, 1)
	fill(a, af, 100)
	fill(c, cf, 200)
	b.grant(8, 1, bf, GTFPermitAccess)
	c.grant(8, 1, cf, GTFPermitAccess)

	// Out of a grant into the caller's own frame (DOMID_SELF).
	expectSt(t, "gref → gmfn", w.copyOne(a, copyArgs{src: gref(2, 8, 100), dst: gmfn(DomainSelf, af, 10), len: 300, flags: GNTCOPYSourceGref}), GNTSTOkay)
	if !bytes.Equal(frame(a, af)[10:310], frame(b, bf)[100:400]) {
		t.Error("gref → gmfn: wrong bytes")
	}
	if frame(a, af)[9] != 100+9*7 || frame(a, af)[310] != byte(100+310*7%256) {
		t.Error("gref → gmfn wrote outside the range")
	}
	// From the caller's frame (by its own id) into a grant.
	expectSt(t, "gmfn → gref", w.copyOne(a, copyArgs{src: gmfn(1, af, 0), dst: gref(2, 8, 4000), len: 96, flags: GNTCOPYDestGref}), GNTSTOkay)
	if !bytes.Equal(frame(b, bf)[4000:], frame(a, af)[:96]) {
		t.Error("gmfn → gref: wrong bytes")
	}
	// Between two other domains' grants (a third party copying).
	expectSt(t, "gref → gref", w.copyOne(a, copyArgs{src: gref(3, 8, 0), dst: gref(2, 8, 0), len: PageSize, flags: GNTCOPYSourceGref | GNTCOPYDestGref}), GNTSTOkay)
	if !bytes.Equal(frame(b, bf), frame(c, cf)) {
		t.Error("gref → gref: wrong bytes")
	}
	// A whole page and an empty copy at the end of a page.
	expectSt(t, "len 0 at offset 4096", w.copyOne(a, copyArgs{src: gref(2, 8, PageSize), dst: gmfn(DomainSelf, af, PageSize), flags: GNTCOPYSourceGref}), GNTSTOkay)
	// Pins are released: the grants are unused afterwards.
	if b.flags(8) != GTFPermitAccess || c.flags(8) != GTFPermitAccess || w.activeCount(2)+w.activeCount(3) != 0 {
		t.Errorf("pins left: flags %#x %#x", b.flags(8), c.flags(8))
	}
	if s, _ := w.g.Stats(1); s.Copies != 4 || s.CopyBytes != 300+96+PageSize {
		t.Errorf("stats %+v", s)
	}
}

func TestCopyStatuses(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	c := w.add(3, Config{MapFrom: []DomainID{2}})
	w.add(4, Config{})
	bf, af := b.page(), a.page()
	fill(b, bf, 1)
	fill(a, af, 2)
	b.grant(8, 1, bf, GTFPermitAccess)
	b.grant(9, 1, bf, GTFPermitAccess|GTFReadonly)
	b.grant(10, 1, uint64(len(b.ram))/PageSize, GTFPermitAccess)
	b.grant(11, 4, bf, GTFPermitAccess)
	b.grant(12, 3, bf, GTFPermitAccess)
	b.grant(13, 1, bf, GTFPermitAccess|GTFSubPage) // v1 ignores the bit for copies, as Xen
	self := gmfn(DomainSelf, af, 0)
	src, dst := uint16(GNTCOPYSourceGref), uint16(GNTCOPYDestGref)
	for _, tc := range []struct {
		name string
		d    *fakeDomain
		op   copyArgs
		want int16
	}{
		{"gmfn of another domain (source)", a, copyArgs{gmfn(2, bf, 0), self, 8, 0}, GNTSTPermissionDenied},
		{"gmfn of another domain (dest)", a, copyArgs{self, gmfn(2, bf, 0), 8, 0}, GNTSTPermissionDenied},
		{"gmfn of a missing domain", a, copyArgs{self, gmfn(9, bf, 0), 8, 0}, GNTSTPermissionDenied},
		{"gref of a missing domain", a, copyArgs{gref(9, 8, 0), self, 8, src}, GNTSTBadDomain},
		{"source checked before dest", a, copyArgs{gref(9, 8, 0), gmfn(2, 0, 0), 8, src}, GNTSTBadDomain},
		{"MapFrom (dest side)", c, copyArgs{gref(2, 12, 0), gref(4, 11, 0), 8, src | dst}, GNTSTPermissionDenied},
		{"MapFrom allows 2", c, copyArgs{gref(2, 12, 0), gmfn(DomainSelf, c.page(), 0), 8, src}, GNTSTOkay},
		{"bad ref", a, copyArgs{gref(2, 512, 0), self, 8, src}, GNTSTBadGntref},
		{"granted to someone else", a, copyArgs{gref(2, 11, 0), self, 8, src}, GNTSTGeneralError},
		{"readonly grant as dest", a, copyArgs{self, gref(2, 9, 0), 8, dst}, GNTSTGeneralError},
		{"readonly grant as source", a, copyArgs{gref(2, 9, 0), self, 8, src}, GNTSTOkay},
		{"sub_page bit on a v1 entry", a, copyArgs{gref(2, 13, 0), self, 8, src}, GNTSTOkay},
		{"grant of a frame outside RAM", a, copyArgs{gref(2, 10, 0), self, 8, src}, GNTSTBadPage},
		{"own gmfn outside RAM", a, copyArgs{gmfn(DomainSelf, uint64(len(a.ram))/PageSize, 0), gref(2, 8, 0), 8, dst}, GNTSTBadPage},
		{"own gmfn huge", a, copyArgs{gmfn(DomainSelf, 1<<60, 0), gref(2, 8, 0), 8, dst}, GNTSTBadPage},
		{"source offset+len > 4096", a, copyArgs{gref(2, 8, 4000), self, 97, src}, GNTSTBadCopyArg},
		{"dest offset+len > 4096", a, copyArgs{self, gref(2, 8, 4095), 2, dst}, GNTSTBadCopyArg},
		{"offset past the page", a, copyArgs{gmfn(DomainSelf, af, 5000), self, 0, 0}, GNTSTBadCopyArg},
		{"len > 4096", a, copyArgs{self, gmfn(DomainSelf, af, 0), PageSize + 1, 0}, GNTSTBadCopyArg},
		{"claims before bounds (Xen order)", a, copyArgs{gref(2, 10, 4000), self, 200, src}, GNTSTBadPage},
	} {
		before := slices.Clone(frame(b, bf))
		st := w.copyOne(tc.d, tc.op)
		expectSt(t, tc.name, st, tc.want)
		if st != GNTSTOkay && !bytes.Equal(before, frame(b, bf)) {
			t.Errorf("%s: failed copy wrote", tc.name)
		}
		if w.activeCount(2) != 0 {
			t.Fatalf("%s: pins left", tc.name)
		}
		for r := uint32(8); r < 14; r++ {
			if b.flags(r)&(GTFReading|GTFWriting) != 0 {
				t.Fatalf("%s: ref %d flags %#x", tc.name, r, b.flags(r))
			}
		}
	}
	// A copy needs the entry's single grantee slot: while 4 maps ref 11,
	// 1 cannot copy through it even once it is re-granted to 1.
	h := w.mustMap(w.dom[4], 2, 11, hostRO, ro(0))
	b.grant(11, 1, bf, GTFPermitAccess|GTFReading)
	expectSt(t, "entry pinned by another grantee", w.copyOne(a, copyArgs{gref(2, 11, 0), self, 8, src}), GNTSTGeneralError)
	expectSt(t, "unmap", w.unmapOne(w.dom[4], h, 0), GNTSTOkay)
	expectSt(t, "after unmap", w.copyOne(a, copyArgs{gref(2, 11, 0), self, 8, src}), GNTSTOkay)
	// A batch reports per element and goes on after failures.
	ret, sts := w.copyBatch(a, copyArgs{gref(2, 512, 0), self, 8, src}, copyArgs{gref(2, 8, 0), self, 8, src}, copyArgs{self, gref(2, 9, 0), 8, dst})
	if ret != 0 || !slices.Equal(sts, []int16{GNTSTBadGntref, GNTSTOkay, GNTSTGeneralError}) {
		t.Errorf("batch: %d %v", ret, sts)
	}
}

// TestCopyOverlap: copies within one page behave like memmove, whether the
// page is named as a grant on both sides or as the caller's frame.
func TestCopyOverlap(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Config{})
	f := a.page()
	a.grant(8, 1, f, GTFPermitAccess)
	for _, tc := range []struct {
		name     string
		src, dst copyPtr
		flags    uint16
	}{
		{"gmfn forward", gmfn(DomainSelf, f, 0), gmfn(DomainSelf, f, 100), 0},
		{"gmfn backward", gmfn(DomainSelf, f, 100), gmfn(DomainSelf, f, 0), 0},
		{"gref forward", gref(DomainSelf, 8, 10), gref(1, 8, 1000), GNTCOPYSourceGref | GNTCOPYDestGref},
		{"gref backward", gref(1, 8, 1000), gref(DomainSelf, 8, 10), GNTCOPYSourceGref | GNTCOPYDestGref},
		{"mixed", gref(1, 8, 0), gmfn(1, f, 1), GNTCOPYSourceGref},
	} {
		fill(a, f, 3)
		want := slices.Clone(frame(a, f))
		copy(want[tc.dst.offset:uint32(tc.dst.offset)+2000], want[tc.src.offset:uint32(tc.src.offset)+2000])
		expectSt(t, tc.name, w.copyOne(a, copyArgs{src: tc.src, dst: tc.dst, len: 2000, flags: tc.flags}), GNTSTOkay)
		if !bytes.Equal(frame(a, f), want) {
			t.Errorf("%s: not memmove", tc.name)
		}
	}
	if a.flags(8) != GTFPermitAccess {
		t.Errorf("flags %#x", a.flags(8))
	}
}
