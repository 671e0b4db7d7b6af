package argo

import (
	"bytes"
	"testing"
)

// TestHostSendParts: a host send reads its parts where the caller has them
// (no copy into the host's memory first), in order, empty parts included.
func TestHostSendParts(t *testing.T) {
	a := New(nil)
	h, err := a.NewHost(1<<20, Policy{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := a.NewEndpoint(1, 1<<20, Policy{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := g.RegisterRing(7, HostDomain, 64<<10-64)
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{[]byte("one "), nil, bytes.Repeat([]byte("x"), 5000), []byte(" three")}
	n, err := h.Send(Addr{Domain: 1, Port: 7}, 9, 42, parts...)
	if want := len(bytes.Join(parts, nil)); err != nil || n != want {
		t.Fatalf("send: %d, %v; want %d", n, err, want)
	}
	m, err := r.Recv()
	if err != nil || m.Type != 42 || m.Source != (Addr{Domain: HostDomain, Port: 9}) || !bytes.Equal(m.Data, bytes.Join(parts, nil)) {
		t.Fatalf("received %+v, %v", m, err)
	}
	if _, err := h.Send(Addr{Domain: 1, Port: 7}, 9, 42, make([][]byte, MaxIOV+1)...); err != Errno(EINVAL) {
		t.Errorf("%d parts: %v, want EINVAL", MaxIOV+1, err)
	}
	if _, err := h.Send(Addr{Domain: 1, Port: 7}, 9, 42, make([]byte, MaxMessageSize+1)); err != Errno(EMSGSIZE) {
		t.Errorf("a part over the largest message: %v, want EMSGSIZE", err)
	}
	// A part address outside the parts is a fault, never a read of
	// something else.
	c := hostCaller{h: h, parts: parts}
	for _, addr := range []uint64{partAddr(4), partAddr(0) + 5, partAddr(2) + 4999, partAddr(1)} {
		if _, err := c.MapGuest(addr, 2, false); err == nil {
			t.Errorf("MapGuest(%#x, 2) succeeded", addr)
		}
	}
	if _, err := c.MapGuest(partAddr(2), 10, true); err == nil {
		t.Error("a part mapped for writing")
	}
}
