package vmm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/memop"
)

// Domain ids are unique for the VMM's life, and a create that fails uses
// none up (issue 15: the control API's failed create of a non-ELF image
// took an id, so the next domain got 5 instead of 4). The failures here
// (a kernel that is not ELF, a name being built) show before KVM is
// needed.
func TestDomainIDs(t *testing.T) {
	v := &VMM{budget: NewBudget(HostLimits{MaxMapCount: 1 << 20, OpenFiles: 1 << 16, Threads: 10000, Memory: 64 << 30}),
		nextID: 1, byID: map[uint16]*Domain{}}
	v.argo = argo.New(nil)
	v.gnttab = gnttab.New(grantWindows{v}, nil)
	v.memop = memop.New(ramBacking{v.domainRAM}, v.framesInUse)
	kernel := filepath.Join(t.TempDir(), "k.elf")
	if err := os.WriteFile(kernel, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := v.CreateDomain(DomainConfig{Name: "junk", Kernel: kernel}); !errors.Is(err, ErrBadKernel) {
			t.Fatalf("create %d with a bad kernel: %v", i, err)
		}
	}
	v.creating = []string{"busy"}
	if _, err := v.CreateDomain(DomainConfig{Name: "busy", Kernel: kernel}); !errors.Is(err, ErrNameInUse) {
		t.Fatalf("create of a name being built: %v", err)
	}
	v.creating = nil
	if v.nextID != 1 || len(v.spareIDs) != 0 {
		t.Fatalf("after four failed creates: next id %d, spare %v; want 1 and none", v.nextID, v.spareIDs)
	}

	take := func() uint16 {
		t.Helper()
		v.mu.Lock()
		defer v.mu.Unlock()
		id, err := v.takeIDLocked()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Overlapping creates: the one that fails gives its id to the next.
	a, b := take(), take()
	v.giveBackID(a)
	if c, d := take(), take(); a != 1 || b != 2 || c != 1 || d != 3 {
		t.Errorf("ids %d %d, then after giving back %d: %d %d; want 1 2, 1 3", a, b, a, c, d)
	}
	// The spare ids go lowest first; the last one given out and the
	// spare ones below it go back to the counter.
	v.giveBackID(1)
	v.giveBackID(3)
	if x, y, z := take(), take(), take(); x != 1 || y != 3 || z != 4 {
		t.Errorf("after giving back 1 and 3: %d %d %d, want 1 3 4", x, y, z)
	}
	e := take() // 5; 1 and 2 stay given out
	v.giveBackID(3)
	v.giveBackID(4)
	if len(v.spareIDs) != 2 {
		t.Errorf("after giving back 3 and 4 below 5: spare %v, want [3 4]", v.spareIDs)
	}
	v.giveBackID(e)
	if v.nextID != 3 || len(v.spareIDs) != 0 {
		t.Errorf("after giving back 3, 4 and then 5: next id %d, spare %v; want 3, none", v.nextID, v.spareIDs)
	}
	v.nextID, v.spareIDs = 1, nil
	// Ids end below Xen's reserved ones.
	v.nextID = firstReservedID - 1
	if id := take(); id != firstReservedID-1 {
		t.Errorf("last id %#x, want %#x", id, firstReservedID-1)
	}
	v.mu.Lock()
	_, err := v.takeIDLocked()
	v.mu.Unlock()
	if !errors.Is(err, ErrOutOfIDs) {
		t.Errorf("beyond the last id: %v, want ErrOutOfIDs", err)
	}
	v.giveBackID(firstReservedID - 1)
	if id := take(); id != firstReservedID-1 {
		t.Errorf("a given back id after the last: %#x", id)
	}
}
