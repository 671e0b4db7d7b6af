package argo

import (
	"bytes"
	"testing"
)

func TestTeardown(t *testing.T) {
	w := newWorld(t)
	a, b, c := w.add(1, permissive), w.add(2, permissive), w.add(3, permissive)
	// b owns: a unicast ring for a, a wildcard ring.
	bUni := w.mustRegister(b, 128, 1, 1)
	w.mustRegister(b, 256, 2, DomainAny)
	// a owns a unicast ring for b (partner b dies → removed) and one for c.
	w.mustRegister(a, 128, 5, 2)
	aForC := w.mustRegister(a, 128, 6, 3)
	// c owns a wildcard ring on which b waits.
	cWild := w.mustRegister(c, 64, 9, DomainAny)
	w.send(a, Addr{Port: 9, Domain: 3}, 0, 0, make([]byte, 16))
	if ret := w.send(b, Addr{Port: 9, Domain: 3}, 0, 0, make([]byte, 16)); ret != -EAGAIN {
		t.Fatal(ret)
	}
	// a waits on b's unicast ring.
	w.send(a, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, 80))
	if ret := w.send(a, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, 80)); ret != -EAGAIN {
		t.Fatal(ret)
	}
	_ = bUni

	w.sig.Reset()
	w.a.Teardown(2)
	w.a.Teardown(2) // idempotent
	// a was waiting for space on b's ring: it is woken (once), not left
	// asleep; b itself is not signalled.
	if w.sig.Count(1) != 1 || w.sig.Count(2) != 0 {
		t.Errorf("signals at teardown: a %d, b %d; want 1, 0", w.sig.Count(1), w.sig.Count(2))
	}

	expect(t, "send to the dead domain's ring", w.send(a, Addr{Port: 1, Domain: 2}, 0, 0, []byte("x")), -ECONNREFUSED)
	expect(t, "send to its wildcard ring", w.send(c, Addr{Port: 2, Domain: 2}, 0, 0, []byte("x")), -ECONNREFUSED)
	expect(t, "the dead domain's own calls", w.notify(b, nil), -ENODEV)
	expect(t, "a's ring partnered with b is gone", w.a.Op(a, OpUnregisterRing, a.put(unregBytes(5, 2)), 0, 0, 0), -ENOENT)
	expect(t, "register a ring for the dead partner", w.register(a.layRing(64, false), 7, 2, 0), -ECONNREFUSED)
	// Others are untouched: a's ring for c still works.
	expect(t, "c sends to a", w.send(c, Addr{Port: 6, Domain: 1}, 3, 0, []byte("fine")), 4)
	if m := aForC.recv(t); !bytes.Equal(m.Data, []byte("fine")) {
		t.Errorf("%+v", m)
	}
	if s, _ := w.a.Stats(1); s.Rings != 1 {
		t.Errorf("a has %d rings, want 1", s.Rings)
	}
	// b's pending request on c's wildcard ring is gone: draining and
	// notifying signals nobody.
	cWild.recv(t)
	w.sig.Reset()
	w.notify(c, nil)
	if w.sig.Count(2) != 0 {
		t.Error("the dead domain was signalled")
	}
	st := w.stateOf(3)
	st.ringsL2.RLock()
	r := st.rings[ringKey{port: 9, partner: DomainAny}]
	st.ringsL2.RUnlock()
	r.l3.Lock()
	n := len(r.pending)
	r.l3.Unlock()
	if n != 0 {
		t.Errorf("%d pending entries left on c's ring", n)
	}
	// The partner's record of b's unicast ring was removed too (better
	// than Xen): a's send_info is empty.
	sa := w.stateOf(1)
	sa.sendL2.Lock()
	left := len(sa.sendInfo)
	sa.sendL2.Unlock()
	if left != 0 {
		t.Errorf("a keeps %d stale send_info records", left)
	}
	// RemoveDomain: the id no longer exists.
	w.a.RemoveDomain(2)
	expect(t, "send to a removed domain", w.send(a, Addr{Port: 1, Domain: 2}, 0, 0, []byte("x")), -ESRCH)
	if err := w.a.AddDomain(2, newFakeDomain(2, 1<<20), permissive); err != nil {
		t.Errorf("re-adding a removed id: %v", err)
	}
	if err := w.a.AddDomain(2, newFakeDomain(2, 1<<20), permissive); err == nil {
		t.Error("adding an existing id succeeded")
	}
}

func TestHostEndpoint(t *testing.T) {
	w := newWorld(t)
	g := w.add(1, Policy{Enabled: true})
	h, err := w.a.NewHost(0, Policy{Enabled: true, Wildcard: true})
	if err != nil {
		t.Fatal(err)
	}
	hr, err := h.RegisterRing(100, DomainAny, 4096-64)
	if err != nil {
		t.Fatal(err)
	}
	gr := w.mustRegister(g, 4096-64, 200, HostDomain)
	// Guest → host.
	expect(t, "guest sends to host", w.send(g, Addr{Port: 100, Domain: 0}, 7, 3, []byte("ping")), 4)
	select {
	case <-h.Signals():
	default:
		t.Error("host not signalled")
	}
	m, err := hr.Recv()
	if err != nil || string(m.Data) != "ping" || m.Source != (Addr{Port: 7, Domain: 1}) || m.Type != 3 {
		t.Fatalf("host got %+v, %v", m, err)
	}
	if _, err := hr.Recv(); err != Errno(EAGAIN) {
		t.Errorf("empty host ring: %v", err)
	}
	// Host → guest, stamped domain 0.
	if n, err := h.Send(Addr{Port: 200, Domain: 1}, 100, 4, []byte("po"), []byte("ng")); n != 4 || err != nil {
		t.Fatalf("host send: %d, %v", n, err)
	}
	if w.sig.Count(1) != 1 {
		t.Error("guest not signalled")
	}
	if m := gr.recv(t); string(m.Data) != "pong" || m.Source != (Addr{Port: 100, Domain: 0}) {
		t.Errorf("guest got %+v", m)
	}
	// Host queries and errors.
	ents := []NotifyEntry{{Ring: Addr{Port: 200, Domain: 1}, SpaceRequired: 10}, {Ring: Addr{Port: 1, Domain: 1}}}
	if err := h.Notify(ents); err != nil || ents[0].Flags != RingExists|RingSufficient|RingEmpty || ents[1].Flags != 0 {
		t.Errorf("host notify: %+v, %v", ents, err)
	}
	if _, err := h.Send(Addr{Port: 1, Domain: 1}, 0, 0, []byte("x")); err != Errno(ECONNREFUSED) {
		t.Errorf("send to no ring: %v", err)
	}
	if _, err := h.Send(Addr{Port: 1, Domain: 55}, 0, 0); err != Errno(ESRCH) {
		t.Errorf("send to no domain: %v", err)
	}
	if err := hr.Unregister(); err != nil {
		t.Error(err)
	}
	expect(t, "send to the unregistered host ring", w.send(g, Addr{Port: 100, Domain: 0}, 7, 3, []byte("x")), -ECONNREFUSED)
	if _, err := h.RegisterRing(1, 99, 64); err != Errno(ESRCH) {
		t.Errorf("host ring for a missing partner: %v", err)
	}
	if _, err := w.a.NewHost(0, permissive); err == nil {
		t.Error("second host endpoint accepted")
	}
}
