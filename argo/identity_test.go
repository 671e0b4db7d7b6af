package argo

import (
	"bytes"
	"fmt"
	"testing"
)

// originDomain is a fake caller that also says which vCPU it is and its
// CR3, as the VMM's caller does from the exit.
type originDomain struct {
	*fakeDomain
	vcpu uint32
	cr3  uint64
}

func (o originDomain) VCPU() uint32         { return o.vcpu }
func (o originDomain) AddressSpace() uint64 { return o.cr3 }

// sendFrom is world.send with c as the caller (c's domain is d).
func (w *world) sendFrom(c Caller, d *fakeDomain, dst Addr, msgType uint32, payload []byte) int64 {
	addr := d.put(sendAddrBytes(Addr{Port: 7, Domain: DomainAny}, dst))
	ia := d.put(iovBytes(iov{addr: d.put(payload), len: uint32(len(payload))}))
	return w.a.Op(c, OpSendv, addr, ia, 1, uint64(msgType))
}

func (w *world) domainInfo(d *fakeDomain, c Caller, domid uint64) (int64, []byte) {
	buf := d.alloc(DomainInfoSize, false)
	ret := w.a.Op(c, OpDomainInfo, domid, buf, 0, 0)
	return ret, d.ram[buf : buf+DomainInfoSize]
}

func TestDomainInfo(t *testing.T) {
	w := newWorld(t)
	a := w.add(1, Policy{Enabled: true, Name: "alpha", Label: "tier=web zone=dmz"})
	w.add(2, Policy{Enabled: true, Name: "beta"})
	w.add(3, Policy{Name: "off", Label: "no argo"}) // Argo disabled
	long := bytes.Repeat([]byte("n"), MaxNameLen+10)
	w.add(4, Policy{Enabled: true, Name: string(long), Label: string(bytes.Repeat([]byte("l"), 100))})

	check := func(what string, domid uint64, id DomainID, state uint16, name, label string) {
		t.Helper()
		ret, b := w.domainInfo(a, a, domid)
		if ret != 0 {
			t.Fatalf("%s: ret %d", what, ret)
		}
		nl, ll := le.Uint16(b[4:]), le.Uint16(b[6:])
		got := fmt.Sprintf("id=%d state=%d name=%q label=%q", le.Uint16(b[0:]), le.Uint16(b[2:]), b[72:72+nl], b[8:8+ll])
		want := fmt.Sprintf("id=%d state=%d name=%q label=%q", id, state, name, label)
		if got != want {
			t.Errorf("%s: %s, want %s", what, got, want)
		}
		// Everything past the used bytes is zero: no stale guest data
		// and no VMM memory leaks into the reply.
		if bytes.Count(b[8+ll:8+MaxLabelLen], []byte{0}) != MaxLabelLen-int(ll) ||
			bytes.Count(b[72+nl:], []byte{0}) != MaxNameLen-int(nl) {
			t.Errorf("%s: padding not zero", what)
		}
	}
	check("self", uint64(DomainSelf), 1, DomainRunning, "alpha", "tier=web zone=dmz")
	check("self by id", 1, 1, DomainRunning, "alpha", "tier=web zone=dmz")
	check("other", 2, 2, DomainRunning, "beta", "")
	check("Argo disabled", 3, 3, DomainRunning, "off", "no argo")
	check("truncated", 4, 4, DomainRunning, string(long[:MaxNameLen]), string(bytes.Repeat([]byte("l"), MaxLabelLen)))

	w.a.Teardown(2)
	check("dead", 2, 2, DomainEnded, "beta", "")
	if info, ok := w.a.Info(2); !ok || !info.Ended || info.Name != "beta" {
		t.Errorf("Info(2) = %+v, %v", info, ok)
	}
	w.a.RemoveDomain(2)
	ret, _ := w.domainInfo(a, a, 2)
	expect(t, "removed", ret, -ESRCH)
	ret, _ = w.domainInfo(a, a, 99)
	expect(t, "unknown", ret, -ESRCH)
	ret, _ = w.domainInfo(a, a, 1<<16|1)
	expect(t, "domid above 16 bits", ret, -EINVAL)
	expect(t, "arg3", w.a.Op(a, OpDomainInfo, 1, a.alloc(DomainInfoSize, false), 1, 0), -EINVAL)
	expect(t, "arg4", w.a.Op(a, OpDomainInfo, 1, a.alloc(DomainInfoSize, false), 0, 1), -EINVAL)
	expect(t, "unwritable buffer", w.a.Op(a, OpDomainInfo, 1, 0, 0, 0), -EFAULT)
	expect(t, "buffer past RAM", w.a.Op(a, OpDomainInfo, 1, uint64(len(a.ram))-DomainInfoSize+1, 0, 0), -EFAULT)
	off := w.dom[3]
	expect(t, "caller without Argo", w.a.Op(off, OpDomainInfo, 1, off.alloc(DomainInfoSize, false), 0, 0), -EOPNOTSUPP)

	// The host endpoint is domain 0 and always running.
	if _, err := w.a.NewHost(0, Policy{Enabled: true, Name: "host", Label: "dom0"}); err != nil {
		t.Fatal(err)
	}
	check("host", 0, 0, DomainRunning, "host", "dom0")
}

// ctxMsg is what a receiver of a sender-context ring should see.
type ctxMsg struct {
	vcpu  uint32
	flags uint32
	cr3   uint64
	data  []byte
}

func TestSenderContextStamped(t *testing.T) {
	w := newWorld(t)
	rcv := w.add(1, permissive)
	snd := w.add(2, permissive)
	const length = 4096
	r := rcv.layRing(length, true) // scattered pages
	dst := Addr{Port: 9, Domain: 1}

	// Two vCPUs, and one of them in two address spaces.
	senders := []originDomain{{snd, 0, 0x4000}, {snd, 1, 0x4000}, {snd, 0, 0x7000}}
	// Start the ring at every slot offset (re-registration keeps a sane
	// tx_ptr from ring memory), so that the 32-byte header lands across
	// the page boundary (data offset 4016) and across the ring's end
	// (4080) as well as everywhere else.
	for off := uint32(0); off < length; off += MsgSlotSize {
		r.setRx(off)
		r.pages().publishTx(off)
		expect(t, "register", w.register(r, 9, 2, RegisterSenderContext), 0)
		var want []ctxMsg
		for k, o := range senders {
			p := bytes.Repeat([]byte{byte(off), byte(k)}, int(off/16)%40)
			// The payload lies about its origin; only the stamp counts.
			copy(p, fmt.Sprintf("vcpu 7 cr3 %x", 0xdead000))
			if ret := w.sendFrom(o, snd, dst, uint32(k), p); ret != int64(len(p)) {
				t.Fatalf("offset %d sender %d: send %d", off, k, ret)
			}
			want = append(want, ctxMsg{o.vcpu, CtxAddressSpace, o.cr3, p})
		}
		for k, wm := range want {
			m, err := r.tryRecvCtx()
			c := m.Context
			if err != nil || c == nil || c.VCPU != wm.vcpu || c.Flags != wm.flags || c.CR3 != wm.cr3 ||
				!bytes.Equal(m.Data, wm.data) || m.Source != (Addr{Port: 7, Domain: 2}) || m.Type != uint32(k) {
				t.Fatalf("offset %d message %d: %+v ctx %+v err %v, want %+v", off, k, m, c, err, wm)
			}
		}
		if _, err := r.tryRecvCtx(); err != Errno(EAGAIN) {
			t.Fatalf("offset %d: ring not empty after the messages: %v", off, err)
		}
	}
}

func TestSenderContextHostAndPlainRings(t *testing.T) {
	w := newWorld(t)
	rcv := w.add(1, permissive)
	snd := w.add(2, permissive)
	ctxRing := rcv.layRing(1024, false)
	plain := rcv.layRing(1024, false)
	expect(t, "register ctx", w.register(ctxRing, 9, DomainAny, RegisterSenderContext), 0)
	expect(t, "register plain", w.register(plain, 10, 2, 0), 0)

	// A caller without an origin (the host endpoint) gets NoVCPU.
	h, err := w.a.NewHost(0, Policy{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Send(Addr{Port: 9, Domain: 1}, 3, 5, []byte("from the host")); err != nil {
		t.Fatal(err)
	}
	m, err := ctxRing.tryRecvCtx()
	if err != nil || m.Context == nil || m.Context.VCPU != NoVCPU || m.Context.Flags != 0 || m.Context.CR3 != 0 ||
		string(m.Data) != "from the host" || m.Source.Domain != HostDomain {
		t.Fatalf("host message: %+v %+v %v", m, m.Context, err)
	}

	// A ring registered without the flag keeps Xen's 16-byte header even
	// when the sender has an origin.
	o := originDomain{snd, 3, 0x9000}
	if ret := w.sendFrom(o, snd, Addr{Port: 10, Domain: 1}, 1, []byte("plain")); ret != 5 {
		t.Fatalf("send: %d", ret)
	}
	if m, err := plain.tryRecv(); err != nil || string(m.Data) != "plain" || m.Context != nil {
		t.Fatalf("plain ring: %+v %v", m, err)
	}
	if hdr := plain.d.ram[plain.base+RingHeaderSize:]; le.Uint32(hdr) != MsgHeaderSize+5 {
		t.Errorf("plain header len = %d, want %d", le.Uint32(hdr), MsgHeaderSize+5)
	}
}

func TestSenderContextSizes(t *testing.T) {
	w := newWorld(t)
	rcv := w.add(1, permissive)
	snd := w.add(2, permissive)
	const length = 256
	r := rcv.layRing(length, false)
	expect(t, "register", w.register(r, 9, 2, RegisterSenderContext), 0)
	dst := Addr{Port: 9, Domain: 1}
	// The largest message: ring length less the 32-byte header and the
	// reserve slot; one byte more does not fit the ring at all.
	maxp := length - CtxMsgHeaderSize - MsgSlotSize
	expect(t, "one too many", w.send(snd, dst, 1, 0, make([]byte, maxp+1)), -EMSGSIZE)
	expect(t, "largest", w.send(snd, dst, 1, 0, make([]byte, maxp)), int64(maxp))
	ents := []notifyEnt{{ring: dst, need: 1}}
	expect(t, "notify", w.notify(snd, ents), 0)
	if ents[0].mms != uint32(maxp) || ents[0].flags&RingSufficient != 0 {
		t.Errorf("notify on a full ring: mms %d flags %#x, want mms %d and not sufficient", ents[0].mms, ents[0].flags, maxp)
	}
	if _, err := r.tryRecvCtx(); err != nil {
		t.Fatal(err)
	}
	ents = []notifyEnt{{ring: dst, need: uint32(maxp)}}
	expect(t, "notify", w.notify(snd, ents), 0)
	if ents[0].flags&(RingSufficient|RingEmpty) != RingSufficient|RingEmpty {
		t.Errorf("notify on an empty ring: flags %#x", ents[0].flags)
	}

	// Re-registering without the flag goes back to Xen's header for the
	// messages sent after it.
	expect(t, "re-register plain", w.register(r, 9, 2, 0), 0)
	expect(t, "plain largest", w.send(snd, dst, 1, 0, make([]byte, MaxPayload(length))), int64(MaxPayload(length)))
	if m, err := r.tryRecv(); err != nil || len(m.Data) != int(MaxPayload(length)) {
		t.Fatalf("after re-registration: %d bytes, %v", len(m.Data), err)
	}
}
