package argo

import (
	"bytes"
	"testing"
)

const bad = 0x7FFF_FFFF_0000 // an address outside every fake domain

func expect(t *testing.T, what string, got, want int64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %d, want %d", what, got, want)
	}
}

func TestEntryChecks(t *testing.T) {
	w := newWorld(t)
	d1 := w.add(1, permissive)
	off := w.add(2, Policy{Enabled: false})
	expect(t, "arg3 > 32 bits", w.a.Op(d1, OpNotify, 0, 0, 1<<32, 0), -EINVAL)
	expect(t, "arg4 > 32 bits", w.a.Op(d1, OpSendv, bad, 0, 0, 1<<32), -EINVAL)
	expect(t, "disabled domain", w.a.Op(off, OpNotify, 0, 0, 0, 0), -EOPNOTSUPP)
	expect(t, "disabled domain, bad args", w.a.Op(off, OpRegisterRing, bad, bad, 1, 7), -EOPNOTSUPP)
	expect(t, "unknown op", w.a.Op(d1, 5, 0, 0, 0, 0), -EOPNOTSUPP)
	expect(t, "op 0", w.a.Op(d1, 0, 0, 0, 0, 0), -EOPNOTSUPP)
	expect(t, "unknown domain", w.a.Op(newFakeDomain(9, 1<<20), OpNotify, 0, 0, 0, 0), -EOPNOTSUPP)
	// The 32-bit check comes before the enabled check.
	expect(t, "disabled, arg3 > 32 bits", w.a.Op(off, OpNotify, 0, 0, 1<<32, 0), -EINVAL)
}

// TestRegisterErrnoOrder walks reference §5.1 row by row. Each row breaks
// one check and also every later one it can, so a wrong order shows up as
// a wrong errno.
func TestRegisterErrnoOrder(t *testing.T) {
	w := newWorld(t)
	d1 := w.add(1, Policy{Enabled: true}) // no wildcard rings
	w.add(2, permissive)
	w.add(3, Policy{Enabled: false})
	dead := w.add(4, permissive)
	w.a.Teardown(4) // known, no Argo state
	good := d1.layRing(4096-64, false)
	reg := func(d *fakeDomain, port uint32, partner DomainID, pad uint16, length uint32) uint64 {
		return d.put(regBytes(port, partner, pad, length))
	}
	op := func(d *fakeDomain, regAddr, gfns, npages, flags uint64) int64 {
		return w.a.Op(d, OpRegisterRing, regAddr, gfns, npages, flags)
	}
	expect(t, "npages > 4096", op(d1, bad, bad, 4097, 2), -EINVAL)
	expect(t, "gfn array unreadable", op(d1, bad, bad, 1, 2), -EFAULT)
	expect(t, "gfn array runs off RAM", op(d1, bad, uint64(len(d1.ram))-8, 2, 2), -EFAULT)
	expect(t, "flags", op(d1, bad, good.gfns, 1, 2), -EINVAL)
	expect(t, "struct unreadable", op(d1, bad, good.gfns, 1, 1), -EFAULT)
	for _, tc := range []struct {
		name   string
		length uint32
		npages uint64
		pad    uint16
	}{
		{"len < 48", 32, 1, 0},
		{"len not a multiple of 16", 4000 + 8, 1, 0},
		{"len > 16 MiB", MaxRingSize + 16, 4097, 0},
		{"len = 16 MiB needs 4097 pages", MaxRingSize, 4096, 0},
		{"npages too few", 4096 - 48, 1, 0},
		{"npages too many", 4096 - 64, 2, 0},
		{"pad", 4096 - 64, 1, 1},
	} {
		// partner ANY without permission would be EPERM: EINVAL first.
		expect(t, tc.name, op(d1, reg(d1, 1, DomainAny, tc.pad, tc.length), good.gfns, tc.npages, 0), -EINVAL)
	}
	expect(t, "wildcard not permitted", op(dead, reg(dead, 1, DomainAny, 0, 4032), bad, 0, 0), -EINVAL) // npages mismatch first
	deadRing := dead.layRing(4032, false)
	expect(t, "wildcard needs permission (before ENODEV)", op(d1, reg(d1, 1, DomainAny, 0, 4032), good.gfns, 1, 0), -EPERM)
	expect(t, "partner does not exist", op(d1, reg(d1, 1, 77, 0, 4032), good.gfns, 1, 0), -ESRCH)
	expect(t, "ESRCH before ENODEV", op(dead, reg(dead, 1, 77, 0, 4032), deadRing.gfns, 1, 0), -ESRCH)
	expect(t, "caller without state", op(dead, reg(dead, 1, 3, 0, 4032), deadRing.gfns, 1, 0), -ENODEV)
	expect(t, "partner without state", op(d1, reg(d1, 1, 3, 0, 4032), good.gfns, 1, 0), -ECONNREFUSED)
	expect(t, "partner torn down", op(d1, reg(d1, 1, 4, 0, 4032), good.gfns, 1, 0), -ECONNREFUSED)
	outside := d1.put(make([]byte, 8))
	le.PutUint64(d1.ram[outside:], uint64(len(d1.ram))/PageSize+5)
	expect(t, "gfn outside RAM", op(d1, reg(d1, 1, 2, 0, 4032), outside, 1, 0), -EFAULT)
	huge := d1.put(make([]byte, 8))
	le.PutUint64(d1.ram[huge:], ^uint64(0))
	expect(t, "gfn overflows", op(d1, reg(d1, 1, 2, 0, 4032), huge, 1, 0), -EFAULT)
	expect(t, "success", op(d1, reg(d1, 1, 2, 0, 4032), good.gfns, 1, 0), 0)
	expect(t, "exists, FAIL_EXIST", op(d1, reg(d1, 1, 2, 0, 4032), good.gfns, 1, RegisterFailExist), -EEXIST)
	bigger := d1.layRing(8192-64, false)
	expect(t, "exists, other len", op(d1, reg(d1, 1, 2, 0, 8192-64), bigger.gfns, 2, 0), -EEXIST)
	expect(t, "re-register, same len", op(d1, reg(d1, 1, 2, 0, 4032), good.gfns, 1, 0), 0)

	// Limit: 128 rings; re-registering one of them still works.
	for p := uint32(2); p <= MaxRingsPerDomain; p++ {
		r := d1.layRing(48, false)
		expect(t, "fill", w.register(r, p, 2, 0), 0)
	}
	extra := d1.layRing(48, false)
	expect(t, "129th ring", w.register(extra, 1000, 2, 0), -ENOSPC)
	expect(t, "re-register at the limit", op(d1, reg(d1, 1, 2, 0, 4032), good.gfns, 1, 0), 0)
	if s, _ := w.a.Stats(1); s.Rings != MaxRingsPerDomain {
		t.Errorf("ring count %d after re-registrations, want %d", s.Rings, MaxRingsPerDomain)
	}
}

func TestReregistration(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, permissive), w.add(2, permissive)
	r := w.mustRegister(b, 4096-64, 7, 1)
	for i := 0; i < 3; i++ {
		expect(t, "send", w.send(a, Addr{Port: 7, Domain: 2}, 1, 0, []byte("hello")), 5)
	}
	tx := r.tx()
	if tx != 3*32 {
		t.Fatalf("tx = %d", tx)
	}
	// Same pages again: tx kept (it is sane).
	expect(t, "re-register", w.register(r, 7, 1, 0), 0)
	if r.tx() != tx {
		t.Errorf("tx changed to %d on re-registration", r.tx())
	}
	// New pages whose header has a garbage tx: tx restarts at rx.
	r2 := b.layRing(4096-64, false)
	le.PutUint32(b.ram[r2.base+4:], 13) // unaligned tx
	le.PutUint32(b.ram[r2.base:], 100)  // rx rounds up to 112
	expect(t, "re-register on new pages", w.register(r2, 7, 1, 0), 0)
	if r2.tx() != 112 {
		t.Errorf("tx = %d, want sanitised rx 112", r2.tx())
	}
	// A failed re-registration (bad gfn) leaves the ring working.
	badGfn := b.put(make([]byte, 8))
	le.PutUint64(b.ram[badGfn:], 1<<40)
	r3 := r2
	r3.gfns = badGfn
	expect(t, "failed re-registration", w.register(r3, 7, 1, 0), -EFAULT)
	expect(t, "send after failed re-registration", w.send(a, Addr{Port: 7, Domain: 2}, 1, 0, []byte("still")), 5)
	if m := r2.recv(t); string(m.Data) != "still" {
		t.Errorf("got %q", m.Data)
	}
	if s, _ := w.a.Stats(2); s.Rings != 1 {
		t.Errorf("rings = %d after re-registrations, want 1", s.Rings)
	}
}

func TestUnregisterErrnoOrder(t *testing.T) {
	w := newWorld(t)
	d1 := w.add(1, permissive)
	w.add(2, permissive)
	dead := w.add(3, permissive)
	w.a.Teardown(3)
	u := func(d *fakeDomain, a1, a2, a3, a4 uint64) int64 { return w.a.Op(d, OpUnregisterRing, a1, a2, a3, a4) }
	ok := d1.put(unregBytes(1, 2))
	expect(t, "arg2", u(d1, bad, 8, 0, 0), -EINVAL)
	expect(t, "arg3", u(d1, bad, 0, 1, 0), -EINVAL)
	expect(t, "arg4", u(d1, bad, 0, 0, 1), -EINVAL)
	expect(t, "unreadable", u(d1, bad, 0, 0, 0), -EFAULT)
	padded := d1.put(unregBytes(1, 2))
	d1.ram[padded+6] = 1
	expect(t, "pad", u(d1, padded, 0, 0, 0), -EINVAL)
	expect(t, "no state", u(dead, dead.put(unregBytes(1, 2)), 0, 0, 0), -ENODEV)
	expect(t, "no ring", u(d1, ok, 0, 0, 0), -ENOENT)
	w.mustRegister(d1, 48, 1, DomainAny)
	expect(t, "exact match only (no wildcard fallback)", u(d1, ok, 0, 0, 0), -ENOENT)
	w.mustRegister(d1, 48, 1, 2)
	expect(t, "unicast", u(d1, ok, 0, 0, 0), 0)
	expect(t, "twice", u(d1, ok, 0, 0, 0), -ENOENT)
	expect(t, "wildcard", u(d1, d1.put(unregBytes(1, DomainAny)), 0, 0, 0), 0)
	if s, _ := w.a.Stats(1); s.Rings != 0 {
		t.Errorf("rings = %d", s.Rings)
	}
}

func TestSendvErrnoOrder(t *testing.T) {
	w := newWorld(t)
	s := w.add(1, Policy{Enabled: true, SendTo: []DomainID{2, 3, 4, 5, 1}})
	w.add(2, permissive)
	w.add(3, Policy{Enabled: false})
	w.add(4, permissive)
	w.add(6, permissive) // not in s's allowlist
	dead := w.add(5, permissive)
	w.a.Teardown(5)
	r := w.mustRegister(w.dom[2], 256, 9, 1)
	w.mustRegister(w.dom[4], 256, 9, 2) // unicast for someone else
	sv := func(d *fakeDomain, src, dst Addr, iovs []iov, niov uint64) int64 {
		var ia uint64 = bad
		if iovs != nil {
			ia = d.put(iovBytes(iovs...))
		}
		return w.a.Op(d, OpSendv, d.put(sendAddrBytes(src, dst)), ia, niov, 0)
	}
	any := Addr{Domain: DomainAny}
	to := func(d DomainID) Addr { return Addr{Port: 9, Domain: d} }
	data := s.put(bytes.Repeat([]byte("x"), 64))
	one := []iov{{addr: data, len: 4}}

	expect(t, "send_addr unreadable", w.a.Op(s, OpSendv, bad, bad, 9, 0), -EFAULT)
	expect(t, "niov > 8", sv(s, Addr{Pad: 1}, to(2), nil, 9), -EINVAL)
	expect(t, "iov array unreadable", sv(s, Addr{Pad: 1}, to(2), nil, 1), -EFAULT)
	expect(t, "src pad", sv(s, Addr{Domain: 99, Pad: 1}, to(2), one, 1), -EINVAL)
	expect(t, "dst pad", sv(s, any, Addr{Port: 9, Domain: 2, Pad: 1}, one, 1), -EINVAL)
	expect(t, "spoofed source", sv(s, Addr{Domain: 2}, to(77), one, 1), -EPERM)
	expect(t, "no such destination", sv(s, Addr{Domain: 1}, to(77), []iov{{pad: 1}}, 1), -ESRCH)
	expect(t, "not in allowlist", sv(s, any, to(6), one, 1), -EACCES)
	expect(t, "sender without state (allowlist passes)", sv(dead, any, to(3), one, 1), -ENODEV)
	expect(t, "destination disabled", sv(s, any, to(3), one, 1), -ECONNREFUSED)
	expect(t, "destination torn down", sv(s, any, to(5), one, 1), -ECONNREFUSED)
	expect(t, "no ring for this sender", sv(s, any, to(4), []iov{{pad: 1}}, 1), -ECONNREFUSED)
	expect(t, "no ring on that port", sv(s, any, Addr{Port: 10, Domain: 2}, one, 1), -ECONNREFUSED)
	expect(t, "iov pad", sv(s, any, to(2), []iov{{addr: bad, len: MaxMessageSize + 1}, {pad: 1}}, 2), -EINVAL)
	expect(t, "iov too long", sv(s, any, to(2), []iov{{addr: bad, len: MaxMessageSize + 1}}, 1), -EINVAL)
	expect(t, "total too long", sv(s, any, to(2), []iov{{addr: bad, len: MaxMessageSize}, {addr: bad, len: 16}}, 2), -EMSGSIZE)
	expect(t, "never fits the ring", sv(s, any, to(2), []iov{{addr: bad, len: 256 - 16 - 15}}, 1), -EMSGSIZE)
	expect(t, "largest payload fits", sv(s, any, to(2), []iov{{addr: data, len: MaxPayload(256) - 16}, {addr: data, len: 16}}, 2), int64(MaxPayload(256)))
	// The ring now holds one message; the next large one needs space.
	expect(t, "no space", sv(s, any, to(2), []iov{{addr: bad, len: 64}}, 1), -EAGAIN)
	r.recv(t)
	w.sig.Reset()
	tx := r.tx()
	expect(t, "iov buffer unreadable", sv(s, any, to(2), []iov{{addr: data, len: 4}, {addr: bad, len: 8}}, 2), -EFAULT)
	if r.tx() != tx {
		t.Error("a faulting send moved tx")
	}
	if _, err := r.tryRecv(); err != Errno(EAGAIN) {
		t.Errorf("a faulting send left a message: %v", err)
	}
	if w.sig.Count(2) != 0 {
		t.Error("a failed send signalled")
	}
	expect(t, "zero iovs", sv(s, any, to(2), nil, 0), 0)
	expect(t, "zero-length iov", sv(s, any, to(2), []iov{{addr: bad, len: 0}, {addr: data, len: 3}}, 2), 3)
	if w.sig.Count(2) != 2 {
		t.Errorf("signals to the receiver = %d, want one per successful send", w.sig.Count(2))
	}
	if m := r.recv(t); len(m.Data) != 0 || m.Source != (Addr{Domain: 1}) {
		t.Errorf("header-only message = %+v", m)
	}
	if m := r.recv(t); string(m.Data) != "xxx" {
		t.Errorf("got %q", m.Data)
	}
	// The error counter splits by errno: the four refused sends above are
	// told apart from the faults.
	st, _ := w.a.Stats(s.id)
	if by := st.ErrorsByErrno; by[ECONNREFUSED] != 4 || by[EFAULT] != 3 || by[EMSGSIZE] != 2 || by.Total() != st.Errors {
		t.Errorf("errors by errno %s, total %d", by.String(), st.Errors)
	}
}

func TestNotifyErrnoOrder(t *testing.T) {
	w := newWorld(t)
	d1 := w.add(1, Policy{Enabled: true, SendTo: []DomainID{2, 3}})
	w.add(2, permissive)
	w.add(4, permissive)
	dead := w.add(3, permissive)
	w.a.Teardown(3)
	n := func(d *fakeDomain, a1, a2, a3, a4 uint64) int64 { return w.a.Op(d, OpNotify, a1, a2, a3, a4) }
	expect(t, "arg2", n(d1, bad, 1, 0, 0), -EINVAL)
	expect(t, "arg3", n(d1, bad, 0, 1, 0), -EINVAL)
	expect(t, "arg4", n(d1, bad, 0, 0, 1), -EINVAL)
	expect(t, "no state", n(dead, bad, 0, 0, 0), -ENODEV)
	expect(t, "NULL", n(d1, 0, 0, 0, 0), 0)
	expect(t, "header unreadable", n(d1, bad, 0, 0, 0), -EFAULT)
	hdr := make([]byte, 8)
	le.PutUint32(hdr, MaxNotifyCount+1)
	expect(t, "too many entries", n(d1, d1.put(hdr), 0, 0, 0), -EACCES)
	le.PutUint32(hdr, 3)
	end := uint64(len(d1.ram)) - 8 // header fits, entries run off RAM
	copy(d1.ram[end:], hdr)
	expect(t, "entries unreadable", n(d1, end, 0, 0, 0), -EFAULT)

	w.mustRegister(w.dom[2], 256, 5, 1)
	ents := []notifyEnt{
		{ring: Addr{Port: 5, Domain: 2}},
		{ring: Addr{Port: 5, Domain: 77}, mms: 1234}, // no such domain: flags 0, mms echoed
		{ring: Addr{Port: 5, Domain: 3}, mms: 99},    // no Argo state
		{ring: Addr{Port: 5, Domain: 4}},             // not allowed: EACCES for the call
		{ring: Addr{Port: 5, Domain: 2}},             // never reached
	}
	expect(t, "disallowed entry", w.notify(d1, ents), -EACCES)
	if ents[0].flags&RingExists == 0 || ents[1].flags != 0 || ents[1].mms != 1234 || ents[2].flags != 0 || ents[2].mms != 99 {
		t.Errorf("entries before the failure: %+v", ents[:3])
	}
	if ents[4].flags != 0xFFFF {
		t.Errorf("entry after the failure was written: %+v", ents[4])
	}
}
