package vmm

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/argovisor/argovisor/gnttab"
)

// Issue 8's reproducer without KVM: the real grant tables over the real
// grant windows (grantWindows, newGrantWindow, memfd RAM), driven through
// gnttab.Op as the hypercall would, with guest-virtual addresses equal to
// guest-physical ones.

// ramCaller is a hypercall context whose addresses are its RAM's.
type ramCaller struct {
	id  gnttab.DomainID
	ram *RAM
}

func (c ramCaller) Domain() gnttab.DomainID { return c.id }

func (c ramCaller) ReadGuest(addr uint64, p []byte) error {
	b, err := c.ram.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

func (c ramCaller) WriteGuest(addr uint64, p []byte) error {
	b, err := c.ram.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// stormVMM is a VMM without KVM: domains with RAM, grant-table frames and
// a grant window, known to its grant tables.
func stormVMM(t *testing.T, names ...string) (*VMM, []*Domain) {
	t.Helper()
	v := &VMM{byID: map[uint16]*Domain{}}
	v.gnttab = gnttab.New(grantWindows{v}, nil)
	var ds []*Domain
	for i, name := range names {
		d := &Domain{vmm: v, id: uint16(i + 1), cfg: DomainConfig{Name: name, Memory: 16 << 20}, instance: &instance{}}
		var err error
		if d.ram, err = NewRAM(name, d.cfg.Memory); err != nil {
			t.Fatal(err)
		}
		if d.gtab, err = NewRAM(name+":gnttab", uint64(d.cfg.Gnttab.maxFrames())*PageSize); err != nil {
			t.Fatal(err)
		}
		if d.window, err = newGrantWindow(int(d.cfg.Gnttab.windowVMAs())); err != nil {
			t.Fatal(err)
		}
		if err := v.gnttab.AddDomain(gnttab.DomainID(d.id), d.ram, d.gtab.Bytes(), GrantTableGPA, d.cfg.Gnttab.gnttab()); err != nil {
			t.Fatal(err)
		}
		v.byID[d.id] = d
		ds = append(ds, d)
		t.Cleanup(func() {
			d.window.close()
			d.gtab.Close()
			d.ram.Close()
		})
	}
	return v, ds
}

// grantSelf grants page gfn of d to d itself under refs [0, n), after
// growing its table to hold them.
func grantSelf(t *testing.T, v *VMM, d *Domain, gfn uint64, n uint32) {
	t.Helper()
	le := binary.LittleEndian
	const setup, list = 0x10000, 0x11000
	b := d.ram.Bytes()
	le.PutUint16(b[setup:], uint16(gnttab.DomainSelf))
	le.PutUint32(b[setup+4:], (n+511)/512)
	le.PutUint64(b[setup+16:], list)
	if ret := v.gnttab.Op(ramCaller{gnttab.DomainID(d.id), d.ram}, gnttab.OpSetupTable, setup, 1); ret != 0 || le.Uint16(b[setup+8:]) != 0 {
		t.Fatalf("setup_table: %d, status %d", ret, int16(le.Uint16(b[setup+8:])))
	}
	tab := d.gtab.Bytes()
	for ref := range n {
		le.PutUint32(tab[ref*8+4:], uint32(gfn))
		le.PutUint32(tab[ref*8:], gnttab.GTFPermitAccess|uint32(d.id)<<16)
	}
}

// mapCall runs one map_grant_ref of the elements at uop and returns their
// statuses and handles.
func mapCall(t *testing.T, v *VMM, d *Domain, uop uint64, elems []uint64, flags func(i int) uint32, ref func(i int) uint32) ([]int16, []uint32) {
	t.Helper()
	le := binary.LittleEndian
	b := d.ram.Bytes()
	for i, gpa := range elems {
		x := b[uop+uint64(i)*32:]
		le.PutUint64(x[0:], gpa)
		le.PutUint32(x[8:], flags(i))
		le.PutUint32(x[12:], ref(i))
		le.PutUint16(x[16:], uint16(gnttab.DomainSelf))
		le.PutUint16(x[18:], 0x7777)
	}
	if ret := v.gnttab.Op(ramCaller{gnttab.DomainID(d.id), d.ram}, gnttab.OpMapGrantRef, uop, uint64(len(elems))); ret != 0 {
		t.Fatalf("map_grant_ref returned %d", ret)
	}
	st, hs := make([]int16, len(elems)), make([]uint32, len(elems))
	for i := range elems {
		x := b[uop+uint64(i)*32:]
		st[i], hs[i] = int16(le.Uint16(x[18:])), le.Uint32(x[20:])
	}
	return st, hs
}

// processVMAs counts the process's memory mappings.
func processVMAs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// A domain grants one page to itself under refs 0..1023 and makes 17
// map_grant_ref calls of 4096 elements with DOMID_SELF, element n taking
// ref n/100 and window page n (read-write half), then, past 65 536,
// page n-65536 of the read-only half read-only. Before the budget each
// element was an mmap and the process ran out of mappings around 65 490
// of them. Now the domain maps what its share allows — 767 contiguous
// pages of the default 768 VMAs — and every other element gets
// GNTST_no_device_space; the process's mappings barely move; another
// domain maps its own pages as before; and once the storm unmaps, it can
// map as much again.
func TestIssue8StormStaysInBudget(t *testing.T) {
	v, ds := stormVMM(t, "storm", "other")
	storm, other := ds[0], ds[1]
	grantSelf(t, v, storm, 0x300, 1024)
	grantSelf(t, v, other, 0x300, 8)
	before := processVMAs(t)

	const uop, calls, batch = 0x200000, 17, 4096
	var handles []uint32
	var gpas []uint64
	counts := map[int16]int{}
	for c := 0; c < calls; c++ {
		elems := make([]uint64, batch)
		for i := range elems {
			n := c*batch + i
			elems[i] = GrantWindowGPA + uint64(n)*PageSize // past 65 536: the read-only half
		}
		st, hs := mapCall(t, v, storm, uop, elems,
			func(i int) uint32 {
				if c*batch+i >= GrantWindowHalf/PageSize {
					return gnttab.GNTMAPHostMap | gnttab.GNTMAPReadonly
				}
				return gnttab.GNTMAPHostMap
			},
			func(i int) uint32 { return uint32((c*batch + i) / 100) })
		for i, s := range st {
			counts[s]++
			if s == gnttab.GNTSTOkay {
				handles = append(handles, hs[i])
				gpas = append(gpas, elems[i])
			}
		}
	}
	const share = DefaultWindowVMAs
	if counts[gnttab.GNTSTOkay] != share-1 || counts[gnttab.GNTSTNoDeviceSpace] != calls*batch-(share-1) || len(counts) != 2 {
		t.Errorf("statuses %v, want %d okay and the rest no_device_space", counts, share-1)
	}
	// The window's share, and some slack for the Go heap.
	during := processVMAs(t)
	if during-before > share+64 {
		t.Errorf("the process went from %d to %d mappings, more than the window's share of %d", before, during, share)
	}
	if n := kernelVMAs(t, storm.window); n > share {
		t.Errorf("the window has %d VMAs, share %d", n, share)
	}
	if ws := storm.GrantWindowStats(); ws.Peak > share || ws.Refused != uint64(counts[gnttab.GNTSTNoDeviceSpace]) {
		t.Errorf("window stats %+v", ws)
	}

	// Another domain keeps its whole share.
	var mine []uint64
	for i := 0; i < 300; i++ {
		mine = append(mine, GrantWindowGPA+uint64(2*i)*PageSize)
	}
	st, _ := mapCall(t, v, other, uop, mine, func(int) uint32 { return gnttab.GNTMAPHostMap }, func(i int) uint32 { return uint32(i / 100) })
	for i, s := range st {
		if s != gnttab.GNTSTOkay {
			t.Fatalf("the other domain's map %d: status %d", i, s)
		}
	}

	// The storm unmaps everything (in calls of 4096) and has its share back.
	le := binary.LittleEndian
	b := storm.ram.Bytes()
	for i := 0; i < len(handles); i += batch {
		end := min(i+batch, len(handles))
		for k := i; k < end; k++ {
			x := b[uop+uint64(k-i)*24:]
			le.PutUint64(x[0:], gpas[k])
			le.PutUint64(x[8:], 0)
			le.PutUint32(x[16:], handles[k])
			le.PutUint16(x[20:], 0x7777)
		}
		if ret := v.gnttab.Op(ramCaller{gnttab.DomainID(storm.id), storm.ram}, gnttab.OpUnmapGrantRef, uop, uint64(end-i)); ret != 0 {
			t.Fatalf("unmap_grant_ref returned %d", ret)
		}
		for k := i; k < end; k++ {
			if s := int16(le.Uint16(b[uop+uint64(k-i)*24+20:])); s != gnttab.GNTSTOkay {
				t.Fatalf("unmap of handle %d: status %d", handles[k], s)
			}
		}
	}
	if ws := storm.GrantWindowStats(); ws.Pages != 0 || ws.Charged != 1 {
		t.Errorf("after the unmaps: %+v", ws)
	}
	again := make([]uint64, share)
	for i := range again {
		again[i] = GrantWindowGPA + uint64(i)*PageSize
	}
	st, _ = mapCall(t, v, storm, uop, again, func(int) uint32 { return gnttab.GNTMAPHostMap }, func(i int) uint32 { return uint32(i / 100) })
	ok := 0
	for _, s := range st {
		if s == gnttab.GNTSTOkay {
			ok++
		}
	}
	if ok != share-1 || st[share-1] != gnttab.GNTSTNoDeviceSpace {
		t.Errorf("after the unmaps %d maps fit, last status %d; want %d and no_device_space", ok, st[share-1], share-1)
	}
	t.Logf("process mappings: %d before, %d during the storm, %d now", before, during, processVMAs(t))
}
