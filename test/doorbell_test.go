package test

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/argovisor/argovisor/vmm"
)

// TestDoorbell: hypercalls through the doorbell page give what the port
// gives (null, unknown numbers, Argo and memory_op, including what the VMM
// writes into guest memory), and every other access to the page — reads,
// 1-, 2- and 8-byte writes, writes at other offsets — is ignored as
// documented (reads all-ones, RAX untouched, counted in DoorbellBad),
// while the domain goes on and a neighbour is not disturbed.
func TestDoorbell(t *testing.T) {
	c := &console{}
	v := newVMM(t, c)
	// The neighbour: Argo traffic through guest_hypercall (whichever way
	// this host prefers) at the same time.
	// A fresh VMM numbers domains 1, 2, … in creation order.
	ping := boot(t, v, vmm.DomainConfig{Name: "ping", Kernel: guest("pingpong"), Params: map[string]string{"role": "ping", "peer": "2", "count": "50"}})
	pong := boot(t, v, vmm.DomainConfig{Name: "pong", Kernel: guest("pingpong"), Params: map[string]string{"role": "pong", "peer": "1", "count": "50"}})
	d := boot(t, v, vmm.DomainConfig{Name: "db", Kernel: guest("doorbell")})
	if res := waitResult(t, d, 60*time.Second); !res.OK() {
		t.Fatalf("doorbell: %v\n%s", res, c.dump())
	}
	if !c.has("db", "doorbell: all ") {
		t.Fatalf("doorbell checks:\n%s", c.dump())
	}
	m := regexp.MustCompile(`bad accesses (\d+)`).FindStringSubmatch(c.dump())
	if m == nil {
		t.Fatalf("no bad-access count:\n%s", c.dump())
	}
	want, _ := strconv.ParseUint(m[1], 10, 64)
	st := d.Stats()
	if st.DoorbellBad != want || want == 0 {
		t.Errorf("DoorbellBad = %d, the guest made %d bad accesses", st.DoorbellBad, want)
	}
	if st.Doorbells < 9 {
		t.Errorf("Doorbells = %d, want at least the guest's 9 explicit rings", st.Doorbells)
	}
	for _, dd := range []*vmm.Domain{ping, pong} {
		if res := waitResult(t, dd, 120*time.Second); !res.OK() {
			t.Errorf("%s: %v\n%s", dd.Name(), res, c.dump())
		}
	}
}
