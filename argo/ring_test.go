package argo

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
)

// pattern returns n bytes that differ per seed and position.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i*7 + 1)
	}
	return b
}

// guard fills the memory around a ring with canaries and returns a check.
// The guarded bytes are the spare pages on both sides and the part of the
// last ring page past the data area: the guest's memory, not the ring's.
func guard(t *testing.T, r ringAt) func() {
	t.Helper()
	d := r.d
	pages := r.pages()
	tailOff := RingHeaderSize + uint64(r.length) - (r.npages-1)*PageSize
	spans := [][]byte{
		d.ram[r.base-PageSize : r.base],
		d.ram[r.base+r.npages*PageSize : r.base+(r.npages+1)*PageSize],
		pages[r.npages-1][tailOff:],
	}
	for _, s := range spans {
		for i := range s {
			s[i] = 0xC5
		}
	}
	return func() {
		t.Helper()
		for _, s := range spans {
			for i, b := range s {
				if b != 0xC5 {
					t.Fatalf("byte %d of a guarded span outside the ring changed to %#x", i, b)
				}
			}
		}
	}
}

// TestWrapAtEveryOffset starts the ring at every slot offset and sends
// messages of sizes around the wrap point, checking each message and that
// nothing outside the ring changes.
func TestWrapAtEveryOffset(t *testing.T) {
	for _, scatter := range []bool{false, true} {
		for _, length := range []uint32{48, 64, 4096 - 64, 4096 + 512} {
			t.Run(fmt.Sprintf("len%d/scatter=%v", length, scatter), func(t *testing.T) {
				w := newWorld(t)
				s, d := w.add(1, permissive), w.add(2, permissive)
				r := d.layRing(length, scatter)
				check := guard(t, r)
				if ret := w.register(r, 1, 1, 0); ret != 0 {
					t.Fatal(ret)
				}
				maxp := int(MaxPayload(length))
				sizes := []int{0, 1, 15, 16, 17, 31, 33, maxp - 1, maxp}
				for start := uint32(0); start < length; start += MsgSlotSize {
					for _, size := range sizes {
						if size < 0 || size > maxp {
							continue
						}
						// Move both indexes to start: send and consume
						// filler until tx == start.
						for r.tx() != start {
							fill := min(int((start+length-r.tx())%length), maxp+16) - 16
							if fill < 0 || int(roundup16(uint64(fill)))+16 > int(length)-16 {
								fill = 0
							}
							if ret := w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, fill)); ret < 0 {
								t.Fatalf("filler: %d", ret)
							}
							r.recv(t)
						}
						want := pattern(int(start)+size, size)
						// Split the payload over up to three iovs.
						a, b := size/3, 2*size/3
						if ret := w.send(s, Addr{Port: 1, Domain: 2}, 77, 0xABCD, want[:a], want[a:b], want[b:]); ret != int64(size) {
							t.Fatalf("start %d size %d: send = %d", start, size, ret)
						}
						m := r.recv(t)
						if !bytes.Equal(m.Data, want) || m.Type != 0xABCD || m.Source != (Addr{Port: 77, Domain: 1}) {
							t.Fatalf("start %d size %d: got %+v", start, size, m)
						}
						if r.rx() != r.tx() {
							t.Fatalf("start %d size %d: rx %d tx %d after draining", start, size, r.rx(), r.tx())
						}
						check()
					}
				}
			})
		}
	}
}

// TestRingFillsToOneFreeSlot checks the space rule: a ring accepts
// messages until exactly one slot would remain, and rx == tx means empty.
func TestRingFillsToOneFreeSlot(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	r := w.mustRegister(d, 256, 1, 1)
	n := 0
	for w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, 16)) == 16 {
		n++
	}
	// Each message takes 32 bytes; 256/32 = 8 but one slot stays free.
	if n != 7 {
		t.Fatalf("%d 16-byte messages fit in a 256-byte ring, want 7", n)
	}
	if free := (r.rx() + 256 - r.tx()) % 256; free != 32 {
		t.Fatalf("free space %d", free)
	}
	// A header-only message fits in the last 32 bytes? No: it needs 16 plus
	// the free slot, which leaves exactly 16: 16 < 32 is true.
	if ret := w.send(s, Addr{Port: 1, Domain: 2}, 0, 0); ret != 0 {
		t.Fatalf("header-only message in the last slots: %d", ret)
	}
	if ret := w.send(s, Addr{Port: 1, Domain: 2}, 0, 0); ret != -EAGAIN {
		t.Fatalf("ring with one free slot accepted another message: %d", ret)
	}
	for i := 0; i < 8; i++ {
		r.recv(t)
	}
	if _, err := r.tryRecv(); err != Errno(EAGAIN) {
		t.Fatalf("drained ring: %v", err)
	}
}

// TestRxGarbage: whatever the guest writes in rx_ptr, the VMM writes only
// inside the ring and never crashes.
func TestRxGarbage(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	r := d.layRing(512, false)
	check := guard(t, r)
	if ret := w.register(r, 1, 1, 0); ret != 0 {
		t.Fatal(ret)
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 5000; i++ {
		var rx uint32
		switch rng.Intn(4) {
		case 0:
			rx = rng.Uint32()
		case 1:
			rx = uint32(rng.Intn(600))
		case 2:
			rx = 512 - uint32(rng.Intn(16))
		default:
			rx = r.tx() + uint32(rng.Intn(40))
		}
		r.setRx(rx)
		ret := w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, pattern(i, rng.Intn(int(MaxPayload(512))+1)))
		if ret < 0 && ret != -EAGAIN {
			t.Fatalf("send with rx=%#x: %d", rx, ret)
		}
		if tx := r.tx(); tx >= 512 || tx%16 != 0 {
			t.Fatalf("tx_ptr %d after rx=%#x", tx, rx)
		}
		check()
		// notify must not crash either.
		w.notify(d, nil)
	}
}

func TestNotifyFlags(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	uni := w.mustRegister(d, 256, 1, 1)
	w.mustRegister(d, 512, 2, DomainAny)
	w.mustRegister(d, 1024, 1, DomainAny) // shadowed by the unicast ring for domain 1
	q := func(port uint32, need uint32) notifyEnt {
		e := []notifyEnt{{ring: Addr{Port: port, Domain: 2}, need: need}}
		if ret := w.notify(s, e); ret != 0 {
			t.Fatalf("notify: %d", ret)
		}
		return e[0]
	}
	if e := q(1, 0); e.flags != RingExists|RingSufficient|RingEmpty || e.mms != 224 {
		t.Errorf("empty unicast ring: %+v", e)
	}
	if e := q(2, 10); e.flags != RingExists|RingShared|RingSufficient|RingEmpty || e.mms != 480 {
		t.Errorf("empty wildcard ring: %+v", e)
	}
	if e := q(3, 0); e.flags != 0 {
		t.Errorf("no ring: %+v", e)
	}
	if e := q(1, 225); e.flags != RingExists|RingEMsgSize|RingEmpty {
		t.Errorf("too large: %+v", e)
	}
	w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, 100)) // takes 128
	if e := q(1, 96); e.flags != RingExists|RingSufficient {
		t.Errorf("space 96 for 96: %+v", e)
	}
	if e := q(1, 97); e.flags != RingExists {
		t.Errorf("space 96 for 97 (queued): %+v", e)
	}
	// The query queued a request: the owner's notify after reading wakes 1.
	w.sig.Reset()
	uni.recv(t)
	w.notify(d, nil)
	if w.sig.Count(1) != 1 {
		t.Errorf("waiter signalled %d times", w.sig.Count(1))
	}
	w.notify(d, nil)
	if w.sig.Count(1) != 1 {
		t.Error("pending entry was not one-shot")
	}
	// SUFFICIENT cancels a pending request.
	w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, 150))
	if ret := w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, 100)); ret != -EAGAIN {
		t.Fatal(ret)
	}
	if e := q(1, 10); e.flags&RingSufficient == 0 {
		t.Fatalf("%+v", e)
	}
	uni.recv(t)
	w.sig.Reset()
	w.notify(d, nil)
	if w.sig.Count(1) != 0 {
		t.Error("a cancelled request was signalled")
	}
}

func TestPendingLimits(t *testing.T) {
	w := newWorld(t)
	d := w.add(100, permissive)
	r := w.mustRegister(d, 128, 1, DomainAny)
	var senders []*fakeDomain
	for i := 1; i <= MaxPendingPerRing+1; i++ {
		senders = append(senders, w.add(DomainID(i), permissive))
	}
	dst := Addr{Port: 1, Domain: 100}
	if ret := w.send(senders[0], dst, 0, 0, make([]byte, 80)); ret != 80 {
		t.Fatal(ret)
	}
	for i, s := range senders[:MaxPendingPerRing] {
		if ret := w.send(s, dst, 0, 0, make([]byte, 16+i)); ret != -EAGAIN {
			t.Fatalf("sender %d: %d", i, ret)
		}
	}
	last := senders[MaxPendingPerRing]
	if ret := w.send(last, dst, 0, 0, make([]byte, 16)); ret != -EBUSY {
		t.Fatalf("33rd waiter: %d, want -EBUSY", ret)
	}
	e := []notifyEnt{{ring: dst, need: 50}}
	w.notify(last, e)
	if e[0].flags != RingExists|RingShared|RingEBusy {
		t.Fatalf("notify for the 33rd waiter: %+v", e[0])
	}
	// A repeated request by a waiter raises, never lowers, its size.
	if ret := w.send(senders[0], dst, 0, 0, make([]byte, 90)); ret != -EAGAIN {
		t.Fatal(ret)
	}
	if ret := w.send(senders[0], dst, 0, 0, make([]byte, 10)); ret != -EAGAIN {
		t.Fatal(ret)
	}
	// Draining gives 96 bytes of payload space: every waiter fits (the
	// largest asks 90), each is signalled once.
	r.recv(t)
	w.sig.Reset()
	w.notify(d, nil)
	for i, s := range senders[:MaxPendingPerRing] {
		if w.sig.Count(s.id) != 1 {
			t.Errorf("sender %d signalled %d times", i, w.sig.Count(s.id))
		}
	}
	if w.sig.Count(last.id) != 0 {
		t.Error("the refused waiter was signalled")
	}
	// Unregistering drops pending requests and, better than Xen, signals
	// the waiters so that they retry and learn the ring is gone.
	w.send(senders[0], dst, 0, 0, make([]byte, 90))
	if ret := w.send(senders[1], dst, 0, 0, make([]byte, 90)); ret != -EAGAIN {
		t.Fatal(ret)
	}
	w.sig.Reset()
	if ret := w.a.Op(d, OpUnregisterRing, d.put(unregBytes(1, DomainAny)), 0, 0, 0); ret != 0 {
		t.Fatal(ret)
	}
	if w.sig.Count(senders[1].id) != 1 {
		t.Errorf("waiter signalled %d times on unregister, want 1", w.sig.Count(senders[1].id))
	}
	expect(t, "retry after the wake-up", w.send(senders[1], dst, 0, 0, make([]byte, 90)), -ECONNREFUSED)
	st := w.stateOf(senders[1].id)
	st.wildcardL2.Lock()
	n := len(st.wildcardPending)
	st.wildcardL2.Unlock()
	if n != 0 {
		t.Errorf("waiter still references the unregistered ring (%d)", n)
	}
}

// TestUnicastBeatsWildcard: the most specific ring wins, and the source
// domain in the header is the real sender.
func TestUnicastBeatsWildcard(t *testing.T) {
	w := newWorld(t)
	a, b, d := w.add(1, permissive), w.add(2, permissive), w.add(3, permissive)
	wild := w.mustRegister(d, 256, 5, DomainAny)
	uni := w.mustRegister(d, 256, 5, 1)
	w.send(a, Addr{Port: 5, Domain: 3}, 11, 0, []byte("from a"))
	w.send(b, Addr{Port: 5, Domain: 3}, 12, 0, []byte("from b"))
	if m := uni.recv(t); string(m.Data) != "from a" || m.Source != (Addr{Port: 11, Domain: 1}) {
		t.Errorf("unicast ring got %+v", m)
	}
	if m := wild.recv(t); string(m.Data) != "from b" || m.Source != (Addr{Port: 12, Domain: 2}) {
		t.Errorf("wildcard ring got %+v", m)
	}
	// Sending to oneself is legal.
	self := w.mustRegister(a, 64, 9, 1)
	if ret := w.send(a, Addr{Port: 9, Domain: 1}, 0, 0, []byte("me")); ret != 2 {
		t.Fatal(ret)
	}
	if m := self.recv(t); m.Source.Domain != 1 {
		t.Errorf("%+v", m)
	}
}

// TestXTFConformance replays the checks of XTF's tests/argo (reference §15).
func TestXTFConformance(t *testing.T) {
	w := newWorld(t)
	d := w.add(1, permissive)
	expect(t, "probe", w.a.Op(d, OpRegisterRing, d.put(regBytes(1, 1, 0, 1)), 0, 0, 0), -EINVAL)
	e := []notifyEnt{{ring: Addr{Port: 1, Domain: 1}}}
	expect(t, "notify before registering", w.notify(d, e), 0)
	if e[0].flags != 0 {
		t.Errorf("flags %#x", e[0].flags)
	}
	expect(t, "unregister before registering", w.a.Op(d, OpUnregisterRing, d.put(unregBytes(1, 1)), 0, 0, 0), -ENOENT)
	const length = 130992 // roundup16(32*4096 - 80)
	r := d.layRing(length, false)
	if r.npages != 32 {
		t.Fatalf("npages %d", r.npages)
	}
	expect(t, "register", w.register(r, 1, 1, RegisterFailExist), 0)
	expect(t, "notify", w.notify(d, e), 0)
	if e[0].flags&RingExists == 0 {
		t.Errorf("flags %#x", e[0].flags)
	}
	expect(t, "unregister", w.a.Op(d, OpUnregisterRing, d.put(unregBytes(1, 1)), 0, 0, 0), 0)
	expect(t, "notify after", w.notify(d, e), 0)
	if e[0].flags != 0 {
		t.Errorf("flags %#x", e[0].flags)
	}
	expect(t, "register again", w.register(r, 1, 1, RegisterFailExist), 0)
	payload := pattern(3, 23)
	expect(t, "sendv", w.send(d, Addr{Port: 1, Domain: 1}, 1, 0x12345678, payload), 23)
	if r.rx() != 0 || r.tx() != 48 {
		t.Errorf("rx %d tx %d, want 0 48", r.rx(), r.tx())
	}
	hdr := d.ram[r.base+RingHeaderSize:]
	if le.Uint32(hdr) != 39 || decodeAddr(hdr[4:]) != (Addr{Port: 1, Domain: 1}) || le.Uint32(hdr[12:]) != 0x12345678 || !bytes.Equal(hdr[16:16+23], payload) {
		t.Errorf("header % x", hdr[:16])
	}
}
