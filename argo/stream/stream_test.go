package stream

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	c, err := ParseConnect(Connect{Port: 5000, RingLen: 4032}.Marshal())
	if err != nil || c != (Connect{Port: 5000, RingLen: 4032}) {
		t.Fatalf("connect %+v %v", c, err)
	}
	a, err := ParseAccept(Accept{RingLen: 262080}.Marshal())
	if err != nil || a.RingLen != 262080 {
		t.Fatalf("accept %+v %v", a, err)
	}
	if f, err := ParseShutdown(Shutdown(ShutFin)); err != nil || f != ShutFin {
		t.Fatalf("shutdown %d %v", f, err)
	}
	if r, err := ParseReset(Reset(ReasonRefused)); err != nil || r != ReasonRefused {
		t.Fatalf("reset %d %v", r, err)
	}
	// A newer peer's longer payload is fine; a shorter one is not.
	if _, err := ParseConnect(append(Connect{}.Marshal(), 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func([]byte) error{
		"connect":  func(p []byte) error { _, err := ParseConnect(p); return err },
		"accept":   func(p []byte) error { _, err := ParseAccept(p); return err },
		"shutdown": func(p []byte) error { _, err := ParseShutdown(p); return err },
		"reset":    func(p []byte) error { _, err := ParseReset(p); return err },
	} {
		if err := f([]byte{1, 2, 3}); err != ErrShort {
			t.Errorf("%s of 3 bytes: %v", name, err)
		}
	}
}

func TestChunkSize(t *testing.T) {
	for _, c := range []struct {
		ring uint32
		want int
	}{{48, 12}, {4032, 1008}, {262080, 65520}, {16<<20 - 64, MaxChunk}, {0, 1}} {
		if got := ChunkSize(c.ring); got != c.want {
			t.Errorf("ChunkSize(%d) = %d, want %d", c.ring, got, c.want)
		}
	}
	for n, ok := range map[uint32]bool{48: true, 4032: true, 16<<20 - 64: true, 16 << 20: true, 32: false, 4033: false, 16<<20 + 16: false} {
		if ValidRingLen(n) != ok {
			t.Errorf("ValidRingLen(%d) = %v", n, !ok)
		}
	}
}

// TestGuestHeaderAgrees: the guest SDK's header has the same numbers as
// this package (the two ends of one wire format).
func TestGuestHeaderAgrees(t *testing.T) {
	h, err := os.ReadFile("../../guest/include/argo_stream.h")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"ARGO_STREAM_CTRL_PORT": uint64(CtrlPort), "ARGO_STREAM_HOST": 0,
		"ARGO_STREAM_MSG_CONNECT": uint64(MsgConnect), "ARGO_STREAM_MSG_ACCEPT": uint64(MsgAccept),
		"ARGO_STREAM_MSG_DATA": uint64(MsgData), "ARGO_STREAM_MSG_CREDIT": uint64(MsgCredit),
		"ARGO_STREAM_MSG_SHUTDOWN": uint64(MsgShutdown), "ARGO_STREAM_MSG_RESET": uint64(MsgReset),
		"ARGO_STREAM_SHUT_FIN": uint64(ShutFin),
	}
	re := regexp.MustCompile(`(?m)^#define\s+(ARGO_STREAM_\w+)\s+(0x[0-9A-Fa-f]+|\d+)u?\b`)
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(h), -1) {
		w, ok := want[m[1]]
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(m[2], 0, 64)
		if err != nil || v != w {
			t.Errorf("%s is %s in the header, %#x here", m[1], m[2], w)
		}
		seen[m[1]] = true
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("%s not defined in argo_stream.h", k)
		}
	}
}
