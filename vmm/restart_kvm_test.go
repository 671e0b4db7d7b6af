package vmm

import (
	"sync"
	"testing"
	"time"

	"github.com/argovisor/argovisor/gnttab"
)

// A restarted domain is listed as restarting until its new instance is
// registered and its vCPUs start, as Restart promises, and running once
// they have (issue 15: it was listed as running from the moment the new
// instance replaced the old one, before Argo and the grant tables knew it
// and before any vCPU ran). The hook looks in that window.
func TestRestartListedUntilStarted(t *testing.T) {
	v, lines := testVMM(t)
	var mu sync.Mutex
	var seen []State
	var known []bool
	v.restartHook = func(d *Domain) {
		_, ok := v.gnttab.Stats(gnttab.DomainID(d.id))
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, d.State())
		known = append(known, ok)
	}
	d, err := v.CreateDomain(DomainConfig{Name: "spin", Kernel: testGuest(t, "spin")})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	waitLines := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); len(lines("spin")) < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("spin printed %v, want %d lines", lines("spin"), n)
			}
		}
	}
	waitLines(1)
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); d.Restarts() != 1 || d.State() != StateRunning; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not restarted: %d restarts, %s", d.Restarts(), d.State())
		}
	}
	mu.Lock()
	if len(seen) != 1 || seen[0] != StateRestarting || known[0] {
		t.Errorf("between the instance swap and its start: states %v, known to the grant tables %v; want [restarting], [false]", seen, known)
	}
	mu.Unlock()
	if _, ok := v.gnttab.Stats(gnttab.DomainID(d.id)); !ok {
		t.Error("running, but unknown to the grant tables")
	}
	waitLines(2) // the new instance ran
	d.Stop("test")
	if r := d.Wait(); r.Kind != Stopped || r.Reason != "test" {
		t.Errorf("result %v, want stopped: test", r)
	}
}
