package vmm

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// cpusAllowed reads a thread's Cpus_allowed_list from /proc.
func cpusAllowed(t *testing.T, tid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list for thread %d", tid)
	return ""
}

// A domain with cpus runs every vCPU thread on those CPUs only; one
// without keeps the process's affinity.
func TestDomainCPUsPinVCPUThreads(t *testing.T) {
	v, console := testVMM(t)
	spin := testGuest(t, "spin")
	allowed, last := allowedCPUs(t)
	pinned, err := v.CreateDomain(DomainConfig{Name: "pinned", Kernel: spin, Memory: 4 << 20, VCPUs: 2, CPUs: []int{last}})
	if err != nil {
		t.Fatal(err)
	}
	free, err := v.CreateDomain(DomainConfig{Name: "free", Kernel: spin, Memory: 4 << 20, VCPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Domain{pinned, free} {
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
	}
	tids := func(d *Domain) []int {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var ts []int
			for _, vc := range d.vcpus {
				vc.mu.Lock()
				if vc.tid != 0 {
					ts = append(ts, vc.tid)
				}
				vc.mu.Unlock()
			}
			if len(ts) == len(d.vcpus) {
				return ts
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: vCPU threads not running after 30s (console %q, result %v)", d.Name(), console(d.Name()), d.Result())
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, tid := range tids(pinned) {
		if got := cpusAllowed(t, tid); got != fmt.Sprint(last) {
			t.Errorf("pinned vCPU thread %d may run on %q, want %d", tid, got, last)
		}
	}
	for _, tid := range tids(free) {
		if got := cpusAllowed(t, tid); got != formatCPUs(allowed) {
			t.Errorf("unpinned vCPU thread %d may run on %q, want the process's %q", tid, got, formatCPUs(allowed))
		}
	}
	for _, d := range []*Domain{pinned, free} {
		d.Stop("test done")
		<-d.Done()
	}
	// Creation refuses a CPU the process may not use, naming the set.
	_, err = v.CreateDomain(DomainConfig{Name: "nowhere", Kernel: spin, Memory: 4 << 20, CPUs: []int{maxCPU}})
	if err == nil || !strings.Contains(err.Error(), "allowed: "+formatCPUs(allowed)) {
		t.Errorf("create with cpus=[%d]: %v", maxCPU, err)
	}
}
