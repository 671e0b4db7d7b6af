package argo

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
)

// sendEnt is a test batch entry.
type sendEnt struct {
	src, dst Addr
	iovAddr  uint64
	niov     uint32
	msgType  uint32
}

func sendEntBytes(ents []sendEnt) []byte {
	b := make([]byte, len(ents)*sizeofSendEnt)
	for i, e := range ents {
		x := b[i*sizeofSendEnt:]
		encodeAddr(x[0:], e.src)
		encodeAddr(x[8:], e.dst)
		le.PutUint64(x[16:], e.iovAddr)
		le.PutUint32(x[24:], e.niov)
		le.PutUint32(x[28:], e.msgType)
		le.PutUint64(x[32:], 0x5555) // must be overwritten
	}
	return b
}

// batch sends ents from d in one call and returns the call's result and
// each entry's result.
func (w *world) batch(d *fakeDomain, flags uint64, ents []sendEnt) (int64, []int64) {
	a := d.put(sendEntBytes(ents))
	ret := w.a.Op(d, OpSendvBatch, a, 0, uint64(len(ents)), flags)
	res := make([]int64, len(ents))
	for i := range ents {
		res[i] = int64(le.Uint64(d.ram[a+uint64(i)*sizeofSendEnt+sendEntResult:]))
	}
	return ret, res
}

// sendvWorld is the setup of TestSendvErrnoOrder, built the same way each
// time so that two copies can be compared.
func sendvWorld(t *testing.T) (*world, *fakeDomain, *fakeDomain, ringAt) {
	w := newWorld(t)
	s := w.add(1, Policy{Enabled: true, SendTo: []DomainID{2, 3, 4, 5, 1}})
	w.add(2, permissive)
	w.add(3, Policy{Enabled: false})
	w.add(4, permissive)
	w.add(6, permissive)
	dead := w.add(5, permissive)
	w.a.Teardown(5)
	r := w.mustRegister(w.dom[2], 256, 9, 1)
	w.mustRegister(w.dom[4], 256, 9, 2)
	return w, s, dead, r
}

// TestBatchMatchesSendv sends the rows of TestSendvErrnoOrder once as
// sendv calls and once as one batch (with BatchContinue) in two identical
// worlds: every entry must get sendv's result, and the ring the same
// messages.
func TestBatchMatchesSendv(t *testing.T) {
	any := Addr{Domain: DomainAny}
	to := func(d DomainID) Addr { return Addr{Port: 9, Domain: d} }
	type row struct {
		name     string
		src, dst Addr
		iovs     []iov // nil: the iov array address is unreadable
		niov     uint32
	}
	rows := func(data uint64) []row {
		one := []iov{{addr: data, len: 4}}
		return []row{
			{"niov > 8", Addr{Pad: 1}, to(2), nil, 9},
			{"iov array unreadable", Addr{Pad: 1}, to(2), nil, 1},
			{"src pad", Addr{Domain: 99, Pad: 1}, to(2), one, 1},
			{"dst pad", any, Addr{Port: 9, Domain: 2, Pad: 1}, one, 1},
			{"spoofed source", Addr{Domain: 2}, to(77), one, 1},
			{"no such destination", Addr{Domain: 1}, to(77), []iov{{pad: 1}}, 1},
			{"not in allowlist", any, to(6), one, 1},
			{"destination disabled", any, to(3), one, 1},
			{"destination torn down", any, to(5), one, 1},
			{"no ring for this sender", any, to(4), []iov{{pad: 1}}, 1},
			{"no ring on that port", any, Addr{Port: 10, Domain: 2}, one, 1},
			{"iov pad", any, to(2), []iov{{addr: bad, len: MaxMessageSize + 1}, {pad: 1}}, 2},
			{"iov too long", any, to(2), []iov{{addr: bad, len: MaxMessageSize + 1}}, 1},
			{"total too long", any, to(2), []iov{{addr: bad, len: MaxMessageSize}, {addr: bad, len: 16}}, 2},
			{"never fits the ring", any, to(2), []iov{{addr: bad, len: 256 - 16 - 15}}, 1},
			{"largest payload fits", any, to(2), []iov{{addr: data, len: MaxPayload(256) - 16}, {addr: data, len: 16}}, 2},
			{"no space", any, to(2), []iov{{addr: bad, len: 64}}, 1},
			{"iov buffer unreadable", any, to(2), []iov{{addr: data, len: 4}, {addr: bad, len: 8}}, 2},
			{"zero iovs", any, to(2), nil, 0},
		}
	}
	wa, sa, _, ra := sendvWorld(t)
	wb, sb, _, rb := sendvWorld(t)
	dataA := sa.put(bytes.Repeat([]byte("x"), 64))
	dataB := sb.put(bytes.Repeat([]byte("x"), 64))
	if dataA != dataB {
		t.Fatal("worlds differ")
	}
	var want []int64
	var ents []sendEnt
	for _, r := range rows(dataA) {
		ia := uint64(bad)
		if r.iovs != nil {
			ia = sa.put(iovBytes(r.iovs...))
			sb.put(iovBytes(r.iovs...))
		}
		want = append(want, wa.a.Op(sa, OpSendv, sa.put(sendAddrBytes(r.src, r.dst)), ia, uint64(r.niov), 7))
		sb.put(sendAddrBytes(r.src, r.dst))
		ents = append(ents, sendEnt{src: r.src, dst: r.dst, iovAddr: ia, niov: r.niov, msgType: 7})
	}
	sent, got := wb.batch(sb, BatchContinue, ents)
	var ok int64
	for i, r := range rows(dataA) {
		if got[i] != want[i] {
			t.Errorf("%s: batch entry %d = %d, sendv = %d", r.name, i, got[i], want[i])
		}
		if want[i] >= 0 {
			ok++
		}
	}
	expect(t, "batch result: messages sent", sent, ok)
	for {
		ma, errA := ra.tryRecv()
		mb, errB := rb.tryRecv()
		if errA != errB || fmt.Sprint(ma) != fmt.Sprint(mb) {
			t.Fatalf("rings differ: %v %v / %v %v", ma, errA, mb, errB)
		}
		if errA != nil {
			break
		}
	}
	// sendv signals per message, the batch once per destination.
	expect(t, "sendv VIRQs", int64(wa.sig.Count(2)), ok)
	expect(t, "batch VIRQs", int64(wb.sig.Count(2)), 1)
}

// TestBatchRandomMatchesSendv drives two identical worlds with the same
// random stream of messages (good and bad), one with sendv, one in batches
// of random size, draining the receivers at the same points.
func TestBatchRandomMatchesSendv(t *testing.T) {
	build := func() (*world, *fakeDomain, []ringAt) {
		w := newWorld(t)
		s := w.add(1, permissive)
		var rs []ringAt
		for id := DomainID(2); id <= 3; id++ {
			d := w.add(id, permissive)
			rs = append(rs, w.mustRegister(d, 512, 1, 1), w.mustRegisterExt(d, 1024, 2, DomainAny))
		}
		return w, s, rs
	}
	wa, sa, ra := build()
	wb, sb, rb := build()
	rng := rand.New(rand.NewSource(9))
	data := sa.put(bytes.Repeat([]byte("0123456789abcdef"), 64))
	if sb.put(bytes.Repeat([]byte("0123456789abcdef"), 64)) != data {
		t.Fatal("worlds differ")
	}
	// Each entry is laid out in both worlds; their memory diverges (only
	// the batch world writes entry arrays), so addresses are per world.
	type pair struct{ a, b sendEnt }
	randEnt := func() pair {
		e := sendEnt{src: Addr{Port: rng.Uint32() % 4, Domain: DomainAny}, dst: Addr{Port: 1 + rng.Uint32()%3, Domain: DomainID(1 + rng.Intn(4))}, msgType: rng.Uint32()}
		if rng.Intn(20) == 0 {
			e.src.Domain = DomainID(rng.Intn(4))
		}
		if rng.Intn(30) == 0 {
			e.dst.Pad = 1
		}
		e.niov = uint32(rng.Intn(4))
		if rng.Intn(30) == 0 {
			e.niov = 9
		}
		var iovs []iov
		for range min(e.niov, MaxIOV) {
			v := iov{addr: data + uint64(rng.Intn(512)), len: uint32(rng.Intn(200))}
			switch rng.Intn(40) {
			case 0:
				v.pad = 1
			case 1:
				v.addr = bad
			}
			iovs = append(iovs, v)
		}
		e.iovAddr = bad
		eb := e
		if len(iovs) > 0 || rng.Intn(2) == 0 {
			e.iovAddr = sa.put(iovBytes(iovs...))
			eb.iovAddr = sb.put(iovBytes(iovs...))
		}
		return pair{e, eb}
	}
	for round := 0; round < 300; round++ {
		var ents []sendEnt
		var want []int64
		for range 1 + rng.Intn(MaxBatch) {
			p := randEnt()
			ents = append(ents, p.b)
			e := p.a
			want = append(want, wa.a.Op(sa, OpSendv, sa.put(sendAddrBytes(e.src, e.dst)), e.iovAddr, uint64(e.niov), uint64(e.msgType)))
		}
		_, got := wb.batch(sb, BatchContinue, ents)
		for i := range ents {
			if got[i] != want[i] {
				t.Fatalf("round %d entry %d %+v: batch %d, sendv %d", round, i, ents[i], got[i], want[i])
			}
		}
		// Drain a random subset of rings the same way in both worlds.
		for i := range ra {
			for n := rng.Intn(8); n > 0; n-- {
				ma, errA := ra[i].tryRecv()
				mb, errB := rb[i].tryRecv()
				if errA != errB || fmt.Sprint(ma) != fmt.Sprint(mb) {
					t.Fatalf("round %d ring %d: %v %v / %v %v", round, i, ma, errA, mb, errB)
				}
			}
		}
		wa.notify(wa.dom[2], nil)
		wa.notify(wa.dom[3], nil)
		wb.notify(wb.dom[2], nil)
		wb.notify(wb.dom[3], nil)
		if max(sa.brk, sb.brk) > 30<<20 {
			break // the fake domain's bump allocator is nearly full
		}
	}
	sta, _ := wa.a.Stats(1)
	stb, _ := wb.a.Stats(1)
	if sta.MsgsOut != stb.MsgsOut || sta.BytesOut != stb.BytesOut || sta.EAGAINs != stb.EAGAINs || sta.MsgsOut == 0 || sta.EAGAINs == 0 {
		t.Errorf("stats differ or too little happened: sendv %+v, batch %+v", sta, stb)
	}
}

func TestBatchStopsAtFirstFailure(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	r := w.mustRegister(d, 256, 1, 1)
	data := s.put([]byte("0123456789"))
	one := s.put(iovBytes(iov{addr: data, len: 10}))
	to := Addr{Port: 1, Domain: 2}
	ents := []sendEnt{
		{dst: to, iovAddr: one, niov: 1, msgType: 1},
		{dst: to, iovAddr: one, niov: 1, msgType: 2},
		{dst: Addr{Port: 5, Domain: 2}, iovAddr: one, niov: 1}, // no ring
		{dst: to, iovAddr: one, niov: 1, msgType: 4},
	}
	for i := range ents {
		ents[i].src.Domain = DomainAny
	}
	sent, res := w.batch(s, 0, ents)
	expect(t, "sent", sent, 2)
	want := []int64{10, 10, -ECONNREFUSED, -ECANCELED}
	for i := range want {
		expect(t, fmt.Sprintf("entry %d", i), res[i], want[i])
	}
	for _, typ := range []uint32{1, 2} {
		if m := r.recv(t); m.Type != typ {
			t.Fatalf("message type %d, want %d", m.Type, typ)
		}
	}
	if _, err := r.tryRecv(); err != Errno(EAGAIN) {
		t.Fatal("a cancelled entry was sent")
	}
	// Stopping at -EAGAIN keeps the order: the rest waits for space.
	var many []sendEnt
	for i := range 10 {
		many = append(many, sendEnt{src: Addr{Domain: DomainAny}, dst: to, iovAddr: one, niov: 1, msgType: uint32(i)})
	}
	sent, res = w.batch(s, 0, many)
	// 256-byte ring, 32-byte slots: 7 fit, the 8th waits.
	expect(t, "sent until full", sent, 7)
	expect(t, "the 8th", res[7], -EAGAIN)
	expect(t, "the 9th", res[8], -ECANCELED)
	st, _ := w.a.Stats(1)
	expect(t, "errors counted per failed entry", int64(st.Errors), 2)
}

// readOnlyAt fails writes in [lo, hi) of its domain's memory.
type readOnlyAt struct {
	*fakeDomain
	lo, hi uint64
}

func (r readOnlyAt) WriteGuest(addr uint64, p []byte) error {
	if addr < r.hi && addr+uint64(len(p)) > r.lo {
		return errFault
	}
	return r.fakeDomain.WriteGuest(addr, p)
}

// MapGuest agrees with WriteGuest: a write run stops before [lo, hi) and
// one starting in it faults.
func (r readOnlyAt) MapGuest(addr, n uint64, write bool) ([]byte, error) {
	if write && addr < r.hi && addr+n > r.lo {
		if addr >= r.lo {
			return nil, errFault
		}
		n = r.lo - addr
	}
	return r.fakeDomain.MapGuest(addr, n, write)
}

func TestBatchCallErrors(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	r := w.mustRegister(d, 256, 1, 1)
	one := s.put(iovBytes(iov{addr: s.put([]byte("x")), len: 1}))
	ent := sendEnt{src: Addr{Domain: DomainAny}, dst: Addr{Port: 1, Domain: 2}, iovAddr: one, niov: 1}
	ents := s.put(sendEntBytes([]sendEnt{ent, ent}))
	expect(t, "arg2", w.a.Op(s, OpSendvBatch, ents, 1, 2, 0), -EINVAL)
	expect(t, "flags", w.a.Op(s, OpSendvBatch, ents, 0, 2, 4), -EINVAL)
	expect(t, "flags with BatchWaitSpace", w.a.Op(s, OpSendvBatch, ents, 0, 2, BatchWaitSpace|4), -EINVAL)
	expect(t, "too many", w.a.Op(s, OpSendvBatch, bad, 0, MaxBatch+1, 0), -EINVAL)
	expect(t, "nent > 32 bits", w.a.Op(s, OpSendvBatch, ents, 0, 1<<32, 0), -EINVAL)
	expect(t, "none", w.a.Op(s, OpSendvBatch, bad, 0, 0, 0), 0)
	expect(t, "array unreadable", w.a.Op(s, OpSendvBatch, bad, 0, 1, 0), -EFAULT)
	expect(t, "array runs off RAM", w.a.Op(s, OpSendvBatch, uint64(len(s.ram))-sizeofSendEnt, 0, 2, 0), -EFAULT)
	ro := readOnlyAt{s, ents + sizeofSendEnt + sendEntResult, ents + 2*sizeofSendEnt}
	expect(t, "second result unwritable", w.a.Op(ro, OpSendvBatch, ents, 0, 2, 0), -EFAULT)
	if _, err := r.tryRecv(); err != Errno(EAGAIN) || w.sig.Count(2) != 0 {
		t.Fatal("a batch that failed up front sent something")
	}
	off := w.add(3, Policy{})
	expect(t, "disabled domain", w.a.Op(off, OpSendvBatch, ents, 0, 2, 0), -EOPNOTSUPP)
	expect(t, "good", w.a.Op(s, OpSendvBatch, ents, 0, 2, 0), 2)
}

// One batch raises the VIRQ once per destination domain, and not at all
// for a destination whose extended-header ring suppresses it.
func TestBatchVIRQs(t *testing.T) {
	w := newWorld(t)
	s := w.add(1, permissive)
	d2, d3, d4 := w.add(2, permissive), w.add(3, permissive), w.add(4, permissive)
	w.mustRegister(d2, 4096-64, 1, 1)
	w.mustRegister(d2, 4096-64, 2, 1)
	w.mustRegister(d3, 4096-64, 1, 1)
	r4 := w.mustRegisterExt(d4, 4096-64, 1, 1)
	r4.setFlags(RxFlagPolling)
	one := s.put(iovBytes(iov{addr: s.put([]byte("abc")), len: 3}))
	var ents []sendEnt
	for i := range 30 {
		dst := Addr{Port: 1 + uint32(i%2), Domain: DomainID(2 + i%3)}
		if dst.Domain != 2 {
			dst.Port = 1
		}
		ents = append(ents, sendEnt{src: Addr{Domain: DomainAny}, dst: dst, iovAddr: one, niov: 1})
	}
	sent, _ := w.batch(s, 0, ents)
	expect(t, "sent", sent, 30)
	for id, want := range map[DomainID]int{2: 1, 3: 1, 4: 0} {
		expect(t, fmt.Sprintf("VIRQs to %d", id), int64(w.sig.Count(id)), int64(want))
	}
	for i := range 10 {
		if m := r4.recv(t); string(m.Data) != "abc" {
			t.Fatalf("message %d: %q", i, m.Data)
		}
	}
}
