package vmm

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argovisor/argovisor/internal/testutil"
)

// testGuest returns a built guest program or skips (fails under CI).
func testGuest(t *testing.T, name string) string {
	p, _ := filepath.Abs("../build/guests/" + name + ".elf")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" || os.Getenv(testutil.EnvRequired) == "1" {
			t.Fatalf("%s missing under make test or CI: run make guests", p)
		}
		t.Skipf("!!!!! %s missing: run make guests !!!!!", p)
	}
	return p
}

func testVMM(t *testing.T) (*VMM, func(string) []string) {
	testutil.RequireKVM(t)
	var mu sync.Mutex
	lines := map[string][]string{}
	v, err := New(Options{Console: func(d *Domain, l string) {
		mu.Lock()
		lines[d.Name()] = append(lines[d.Name()], l)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, func(n string) []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines[n]...)
	}
}

// TestGrantWindowMapsForeignFrame checks the mechanism grant maps rest on:
// a page of domain A's memfd placed into B's window with mmap(MAP_FIXED)
// is visible to B's guest, B's writes reach A's memory, a read-only mapping
// in the read-only half drops B's writes, and an unmapped window page is
// inaccessible.
func TestGrantWindowMapsForeignFrame(t *testing.T) {
	v, console := testVMM(t)
	peek := testGuest(t, "peek")
	a, err := v.CreateDomain(DomainConfig{Name: "a", Kernel: peek, Memory: 4 << 20, VCPUs: 1, Params: map[string]string{"addr": "0x1000"}})
	if err != nil {
		t.Fatal(err)
	}
	const gfn = 0x300 // a page of A's RAM
	binary.LittleEndian.PutUint64(a.ram.Bytes()[gfn*PageSize:], 0x1122334455667788)
	run := func(name string, cfg map[string]string, setup func(*Domain)) (*Domain, Result) {
		d, err := v.CreateDomain(DomainConfig{Name: name, Kernel: peek, Memory: 4 << 20, VCPUs: 1, Params: cfg})
		if err != nil {
			t.Fatal(err)
		}
		setup(d)
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-d.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not finish", name)
		}
		return d, d.Result()
	}
	const rw = GrantWindowGPA + 5*PageSize
	_, res := run("rw", map[string]string{"addr": "0xc8005000", "write": "0xabcdef", "reread": "1"}, func(d *Domain) {
		if err := d.window.mapFrame(rw, a.ram.FD(), gfn, false); err != nil {
			t.Fatal(err)
		}
	})
	if !res.OK() || !has(console("rw"), "peek 0xc8005000 = 1122334455667788") || !has(console("rw"), "reread 0xc8005000 = abcdef") {
		t.Fatalf("rw: %v %q", res, console("rw"))
	}
	if got := binary.LittleEndian.Uint64(a.ram.Bytes()[gfn*PageSize:]); got != 0xabcdef {
		t.Fatalf("A's page = %#x after B's write through the window", got)
	}
	const ro = GrantWindowROGPA + 7*PageSize
	_, res = run("ro", map[string]string{"addr": "0xd8007000", "write": "0x5555", "reread": "1"}, func(d *Domain) {
		if err := d.window.mapFrame(ro, a.ram.FD(), gfn, true); err != nil {
			t.Fatal(err)
		}
	})
	if !res.OK() || !has(console("ro"), "reread 0xd8007000 = abcdef") {
		t.Fatalf("ro: %v %q", res, console("ro"))
	}
	if got := binary.LittleEndian.Uint64(a.ram.Bytes()[gfn*PageSize:]); got != 0xabcdef {
		t.Fatalf("a read-only mapping let B write A's page: %#x", got)
	}
	// Unmapped: the page is inaccessible; touching it stops the domain.
	d, res := run("gone", map[string]string{"addr": "0xc8005000"}, func(d *Domain) {
		if err := d.window.mapFrame(rw, a.ram.FD(), gfn, false); err != nil {
			t.Fatal(err)
		}
		if err := d.window.replace([]uint64{rw}, false); err != nil {
			t.Fatal(err)
		}
	})
	if res.Kind != Crashed || !strings.Contains(res.Reason, "no accessible backing") {
		t.Fatalf("touching an unmapped window page: %v %q", res, console("gone"))
	}
	_ = d
	// Revoked: a dead page reads zeros and takes writes privately.
	_, res = run("dead", map[string]string{"addr": "0xc8005000", "write": "0x77", "reread": "1"}, func(d *Domain) {
		if err := d.window.mapFrame(rw, a.ram.FD(), gfn, false); err != nil {
			t.Fatal(err)
		}
		if err := d.window.replace([]uint64{rw}, true); err != nil {
			t.Fatal(err)
		}
	})
	if !res.OK() || !has(console("dead"), "peek 0xc8005000 = 0") {
		t.Fatalf("dead page: %v %q", res, console("dead"))
	}
	if got := binary.LittleEndian.Uint64(a.ram.Bytes()[gfn*PageSize:]); got != 0xabcdef {
		t.Fatalf("a write to a revoked mapping reached the granter: %#x", got)
	}
}

func has(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}
