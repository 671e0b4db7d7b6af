package gnttab

import (
	"errors"
	"testing"
)

func TestAddDomain(t *testing.T) {
	w := newWorld(t)
	d := newFakeDomain(1, 1<<20, 4)
	if err := w.g.AddDomain(DomainSelf, d, d.table, testTableGPA, Config{MaxFrames: 4}); err == nil {
		t.Error("DOMID_SELF accepted as a domain id")
	}
	if err := w.g.AddDomain(1, d, d.table[:3*PageSize], testTableGPA, Config{MaxFrames: 4}); err == nil {
		t.Error("short table accepted")
	}
	if err := w.g.AddDomain(1, d, d.table[1:], testTableGPA, Config{MaxFrames: 2}); err == nil {
		t.Error("misaligned table accepted")
	}
	if err := w.g.AddDomain(1, d, d.table, testTableGPA+8, Config{MaxFrames: 4}); err == nil {
		t.Error("unaligned table GPA accepted")
	}
	if err := w.g.AddDomain(1, d, d.table, testTableGPA, Config{MaxFrames: 1 << 21}); err == nil {
		t.Error("huge limit accepted")
	}
	if err := w.g.AddDomain(1, d, d.table, testTableGPA, Config{}); err == nil {
		t.Error("default 64 frames accepted with a 4-frame table")
	}
	if err := w.g.AddDomain(1, d, d.table, testTableGPA, Config{MaxFrames: 4}); err != nil {
		t.Fatal(err)
	}
	if err := w.g.AddDomain(1, d, d.table, testTableGPA, Config{MaxFrames: 4}); !errors.Is(err, ErrDomainExists) {
		t.Errorf("second add: %v", err)
	}
	if _, ok := w.g.Stats(1); !ok {
		t.Error("no stats")
	}
	if _, ok := w.g.Stats(2); ok {
		t.Error("stats for an unknown domain")
	}
}

func TestEntryChecks(t *testing.T) {
	w := newWorld(t)
	d := w.add(1, Config{})
	expect(t, "count > MaxBatch", w.g.Op(d, OpCopy, bad, MaxBatch+1), -EINVAL)
	expect(t, "count way above", w.g.Op(d, OpMapGrantRef, bad, 1<<40), -EINVAL)
	expect(t, "continuation bits in cmd", w.g.Op(d, OpMapGrantRef|1<<12, bad, 1), -EINVAL)
	expect(t, "cache_flush with opaque bits", w.g.Op(d, OpCacheFlush|1<<12, bad, 1), -ENOSYS)
	expect(t, "unknown caller", w.g.Op(newFakeDomain(9, 1<<20, 1), OpQuerySize, bad, 1), -ESRCH)
	expect(t, "dump_table", w.g.Op(d, OpDumpTable, bad, 1), -ENOSYS)
	expect(t, "transfer", w.g.Op(d, OpTransfer, bad, 1), -EOPNOTSUPP)
	expect(t, "cache_flush", w.g.Op(d, OpCacheFlush, bad, 1), -ENOSYS)
	expect(t, "unknown op 13", w.g.Op(d, 13, bad, 1), -ENOSYS)
	expect(t, "unknown op 63", w.g.Op(d, 63, bad, 1), -ENOSYS)
	for _, cmd := range []uint64{OpMapGrantRef, OpUnmapGrantRef, OpUnmapAndReplace, OpCopy, OpSwapGrantRef} {
		expect(t, "array op, count 0, bad pointer", w.g.Op(d, cmd, bad, 0), 0)
		expect(t, "array op, bad pointer", w.g.Op(d, cmd, bad, 1), -EFAULT)
		expect(t, "array op wrapping the address space", w.g.Op(d, cmd, ^uint64(0)-8, 2), -EFAULT)
	}
	for _, cmd := range []uint64{OpSetupTable, OpQuerySize, OpGetStatusFrames, OpSetVersion, OpGetVersion, OpQueryRevoked} {
		expect(t, "count 0", w.g.Op(d, cmd, bad, 0), -EINVAL)
		expect(t, "count 2", w.g.Op(d, cmd, bad, 2), -EINVAL)
		expect(t, "bad pointer", w.g.Op(d, cmd, bad, 1), -EFAULT)
	}
	// A fault half way through a batch: the first element is done.
	g := d.page()
	d.grant(10, 1, g, GTFPermitAccess)
	b := mapBytes(mapArgs{dom: DomainSelf, ref: 10, flags: GNTMAPHostMap, gpa: rw(0)})
	end := uint64(len(d.ram))
	copy(d.ram[end-sizeofMap:], b)
	expect(t, "map batch running off RAM", w.g.Op(d, OpMapGrantRef, end-sizeofMap, 2), -EFAULT)
	expectSt(t, "first element", int16(le.Uint16(d.ram[end-sizeofMap+18:])), GNTSTOkay)
	if s, _ := w.g.Stats(1); s.Mapped != 1 || s.Errors == 0 {
		t.Errorf("stats %+v", s)
	}
	// Every failure above is a call-level errno (no element failed).
	s, _ := w.g.Stats(1)
	var byStatus uint64
	for _, n := range s.ErrorsByStatus {
		byStatus += n
	}
	if by := s.ErrorsByErrno; by.Total()+byStatus != s.Errors || by[ENOSYS] == 0 || by[EFAULT] == 0 || by[EINVAL] == 0 || byStatus != 0 {
		t.Errorf("errors %d split as %s and %d element statuses", s.Errors, by.String(), byStatus)
	}
}

func TestVersions(t *testing.T) {
	w := newWorld(t)
	d := w.add(1, Config{})
	w.add(2, Config{})
	setv := func(v uint32) (int64, uint32) {
		a := d.put(le.AppendUint32(nil, v))
		ret := w.g.Op(d, OpSetVersion, a, 1)
		return ret, le.Uint32(d.ram[a:])
	}
	for _, tc := range []struct {
		v    uint32
		want int64
	}{{1, 0}, {2, -ENOSYS}, {0, -EINVAL}, {3, -EINVAL}, {0xFFFFFFFF, -EINVAL}} {
		ret, out := setv(tc.v)
		expect(t, "set_version", ret, tc.want)
		expect(t, "set_version writes back the version", int64(out), 1)
	}
	getv := func(dom DomainID) (int64, uint32) {
		b := make([]byte, sizeofGetVersion)
		le.PutUint16(b[0:], uint16(dom))
		le.PutUint32(b[4:], 77)
		a := d.put(b)
		ret := w.g.Op(d, OpGetVersion, a, 1)
		return ret, le.Uint32(d.ram[a+4:])
	}
	for _, dom := range []DomainID{DomainSelf, 1} {
		ret, v := getv(dom)
		expect(t, "get_version self", ret, 0)
		expect(t, "version", int64(v), 1)
	}
	ret, v := getv(2)
	expect(t, "get_version of another domain", ret, -EPERM)
	expect(t, "untouched", int64(v), 77)
	ret, _ = getv(3)
	expect(t, "get_version of a missing domain", ret, -ESRCH)

	gsf := func(dom DomainID, nr uint32) (int64, int16) {
		b := make([]byte, sizeofGetStatusFrame)
		le.PutUint32(b[0:], nr)
		le.PutUint16(b[4:], uint16(dom))
		le.PutUint16(b[6:], 0x7777)
		le.PutUint64(b[8:], bad)
		a := d.put(b)
		ret := w.g.Op(d, OpGetStatusFrames, a, 1)
		return ret, int16(le.Uint16(d.ram[a+6:]))
	}
	ret, st := gsf(DomainSelf, 0)
	expect(t, "get_status_frames, 0 frames", ret, 0)
	expectSt(t, "get_status_frames, 0 frames", st, GNTSTOkay)
	_, st = gsf(1, 1)
	expectSt(t, "get_status_frames on v1", st, GNTSTGeneralError)
	_, st = gsf(2, 0)
	expectSt(t, "get_status_frames of another domain", st, GNTSTPermissionDenied)
	_, st = gsf(3, 0)
	expectSt(t, "get_status_frames of a missing domain", st, GNTSTBadDomain)
}

func TestSetupAndQuery(t *testing.T) {
	w := newWorld(t)
	d := w.add(1, Config{MaxFrames: 8})
	w.add(2, Config{})
	g := d.page()
	ret, st, nr, mx := w.querySize(d, DomainSelf)
	if ret != 0 || st != GNTSTOkay || nr != 1 || mx != 8 {
		t.Fatalf("query_size: %d %d nr %d max %d", ret, st, nr, mx)
	}
	// Ref 512 is beyond the initial single frame.
	d.grant(512, 1, g, GTFPermitAccess)
	d.grant(511, 1, g, GTFPermitAccess)
	st, _ = w.mapOne(d, DomainSelf, 512, GNTMAPHostMap, rw(0))
	expectSt(t, "ref 512 before growth", st, GNTSTBadGntref)
	h := w.mustMap(d, DomainSelf, 511, GNTMAPHostMap, rw(0)) // the last ref of frame 0
	expectSt(t, "unmap", w.unmapOne(d, h, rw(0)), GNTSTOkay)

	list := d.alloc(8*8, false)
	ret, st = w.setupTable(d, DomainSelf, 3, list)
	expect(t, "setup_table", ret, 0)
	expectSt(t, "setup_table", st, GNTSTOkay)
	for i := range uint64(3) {
		if got := le.Uint64(d.ram[list+8*i:]); got != testTableGPA/PageSize+i {
			t.Errorf("frame %d: %#x", i, got)
		}
	}
	_, _, nr, _ = w.querySize(d, 1)
	expect(t, "nr_frames after setup", int64(nr), 3)
	h = w.mustMap(d, DomainSelf, 512, GNTMAPHostMap, rw(0))
	expectSt(t, "unmap", w.unmapOne(d, h, rw(0)), GNTSTOkay)
	d.grant(3*512, 1, g, GTFPermitAccess)
	st, _ = w.mapOne(d, DomainSelf, 3*512, GNTMAPHostMap, rw(0))
	expectSt(t, "ref in frame 3", st, GNTSTBadGntref)

	// Asking for fewer frames does not shrink the table.
	_, st = w.setupTable(d, 1, 1, list)
	expectSt(t, "setup 1 frame", st, GNTSTOkay)
	_, _, nr, _ = w.querySize(d, 1)
	expect(t, "still 3 frames", int64(nr), 3)
	_, st = w.setupTable(d, 1, 0, bad)
	expectSt(t, "setup 0 frames, no list", st, GNTSTOkay)

	_, st = w.setupTable(d, DomainSelf, 9, list)
	expectSt(t, "more than MaxFrames", st, GNTSTGeneralError)
	_, st = w.setupTable(d, 2, 1, list)
	expectSt(t, "another domain's table", st, GNTSTPermissionDenied)
	_, st = w.setupTable(d, 3, 1, list)
	expectSt(t, "missing domain", st, GNTSTBadDomain)
	_, st = w.setupTable(d, DomainSelf, 8, bad)
	expectSt(t, "unwritable frame list", st, GNTSTBadVirtAddr)
	_, _, nr, _ = w.querySize(d, 1)
	expect(t, "grown even so, as Xen", int64(nr), 8)

	_, st, _, _ = w.querySize(d, 2)
	expectSt(t, "query_size of another domain", st, GNTSTPermissionDenied)
	_, st, _, _ = w.querySize(d, 3)
	expectSt(t, "query_size of a missing domain", st, GNTSTBadDomain)
}

func TestSwap(t *testing.T) {
	w := newWorld(t)
	d := w.add(1, Config{})
	g1, g2 := d.page(), d.page()
	d.grant(20, 1, g1, GTFPermitAccess)
	d.grant(21, 5, g2, GTFPermitAccess|GTFReadonly)
	swap := func(a, b uint32) int16 {
		x := make([]byte, sizeofSwap)
		le.PutUint32(x[0:], a)
		le.PutUint32(x[4:], b)
		le.PutUint16(x[8:], 0x7777)
		p := d.put(x)
		expect(t, "swap_grant_ref", w.g.Op(d, OpSwapGrantRef, p, 1), 0)
		return int16(le.Uint16(d.ram[p+8:]))
	}
	expectSt(t, "swap", swap(20, 21), GNTSTOkay)
	if le.Uint64(d.table[20*8:]) != uint64(GTFPermitAccess|GTFReadonly)|5<<16|g2<<32 ||
		le.Uint64(d.table[21*8:]) != uint64(GTFPermitAccess)|1<<16|g1<<32 {
		t.Errorf("entries not swapped: %#x %#x", le.Uint64(d.table[20*8:]), le.Uint64(d.table[21*8:]))
	}
	expectSt(t, "same ref", swap(21, 21), GNTSTOkay)
	expectSt(t, "ref a out of range", swap(512, 21), GNTSTBadGntref)
	expectSt(t, "ref b out of range", swap(20, 1<<31), GNTSTBadGntref)
	h := w.mustMap(d, DomainSelf, 21, GNTMAPHostMap, rw(0))
	expectSt(t, "b pinned", swap(20, 21), GNTSTEagain)
	expectSt(t, "a pinned", swap(21, 20), GNTSTEagain)
	expectSt(t, "unmap", w.unmapOne(d, h, 0), GNTSTOkay)
	expectSt(t, "swap back", swap(21, 20), GNTSTOkay)
	if le.Uint64(d.table[20*8:]) != uint64(GTFPermitAccess)|1<<16|g1<<32 {
		t.Errorf("entry 20 after swapping back: %#x", le.Uint64(d.table[20*8:]))
	}
	// The failed elements are counted by their status.
	if s, _ := w.g.Stats(d.id); s.ErrorsByStatus[-GNTSTBadGntref] != 2 || s.ErrorsByStatus[-GNTSTEagain] != 2 ||
		s.ErrorsByStatus.ByName()["GNTST_eagain"] != 2 {
		t.Errorf("errors by status %v", s.ErrorsByStatus.ByName())
	}
}

func TestQueryRevokedArgs(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Config{}), w.add(2, Config{})
	b.grant(8, 1, b.page(), GTFPermitAccess)
	b.grant(9, 1, b.page(), GTFPermitAccess)
	h0 := w.mustMap(a, 2, 8, GNTMAPHostMap, rw(0))
	h1 := w.mustMap(a, 2, 9, GNTMAPHostMap, rw(1))
	ret, hs := w.queryRevoked(a, 8)
	if ret != 0 || len(hs) != 0 {
		t.Fatalf("nothing revoked yet: %d %v", ret, hs)
	}
	w.g.Revoke(2, 1)
	x := make([]byte, sizeofQueryRevoked)
	le.PutUint32(x[0:], 4)
	le.PutUint32(x[4:], 1)
	le.PutUint64(x[8:], a.alloc(16, false))
	expect(t, "pad", w.g.Op(a, OpQueryRevoked, a.put(x), 1), -EINVAL)
	le.PutUint32(x[4:], 0)
	le.PutUint64(x[8:], bad)
	expect(t, "bad array", w.g.Op(a, OpQueryRevoked, a.put(x), 1), -EFAULT)
	// Nothing was lost: capacity 1, then the rest.
	ret, hs = w.queryRevoked(a, 1)
	if ret != 0 || len(hs) != 1 || hs[0] != h0 {
		t.Fatalf("first: %d %v", ret, hs)
	}
	ret, hs = w.queryRevoked(a, 5)
	if ret != 0 || len(hs) != 1 || hs[0] != h1 {
		t.Fatalf("second: %d %v", ret, hs)
	}
	if _, hs = w.queryRevoked(a, 5); len(hs) != 0 {
		t.Fatalf("reported twice: %v", hs)
	}
	// Reported handles stay allocated until unmapped.
	expectSt(t, "unmap revoked", w.unmapOne(a, h0, rw(0)), GNTSTOkay)
	expectSt(t, "unmap revoked", w.unmapOne(a, h1, 0), GNTSTOkay)
	expectSt(t, "again", w.unmapOne(a, h1, 0), GNTSTBadHandle)
}
