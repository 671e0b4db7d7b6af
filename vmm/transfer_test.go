package vmm

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/memop"
)

// The VMM's glue between gnttab, memop and argo, on real guest RAM and
// without KVM: a VMM value with its three mechanisms wired as vmm.New
// wires them, and domains that have RAM, a physmap and a grant table but
// no VM.

// bareVMM is a VMM without KVM.
func bareVMM() *VMM {
	v := &VMM{nextID: 1, byID: map[uint16]*Domain{}}
	v.argo = argo.New(nil)
	v.gnttab = gnttab.New(grantWindows{v}, nil)
	v.memop = memop.New(ramBacking{v.domainRAM}, v.framesInUse)
	v.gnttab.SetFrames(gnttabFrames{v})
	return v
}

// bareDomain adds a domain with size bytes of RAM (populated bytes of it
// populated) and a one-frame grant table.
func bareDomain(t *testing.T, v *VMM, id uint16, size, populated uint64) *Domain {
	t.Helper()
	d := &Domain{vmm: v, id: id, cfg: DomainConfig{Name: "d", Memory: populated, MaxMemory: size}, instance: &instance{}}
	var err error
	if d.ram, err = NewRAM("transfer-test", size); err != nil {
		t.Fatal(err)
	}
	if d.gtab, err = NewRAM("transfer-test:gnttab", PageSize); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.ram.Close(); d.gtab.Close() })
	if err := d.ram.mapGuest(populated); err != nil {
		t.Fatal(err)
	}
	if d.window, err = newGrantWindow(int(d.cfg.Gnttab.windowVMAs())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.window.close() })
	if d.p2m, err = v.memop.AddDomain(memop.DomainID(id), memop.Config{Pages: populated / PageSize, MaxPages: size / PageSize}); err != nil {
		t.Fatal(err)
	}
	d.phys = physMem{d.ram, d.p2m}
	if err := v.argo.AddDomain(argo.DomainID(id), d.phys, argo.Policy{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := v.gnttab.AddDomain(gnttab.DomainID(id), d.phys, d.gtab.Bytes(), GrantTableGPA, gnttab.Config{MaxFrames: 1}); err != nil {
		t.Fatal(err)
	}
	v.byID[id] = d
	return d
}

// physCaller is a hypercall caller whose guest-virtual addresses are
// guest-physical, through the domain's physMem.
type physCaller[ID ~uint16] struct{ d *Domain }

func (c physCaller[ID]) Domain() ID { return ID(c.d.id) }

func (c physCaller[ID]) ReadGuest(addr uint64, p []byte) error {
	b, err := c.d.phys.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

func (c physCaller[ID]) WriteGuest(addr uint64, p []byte) error {
	b, err := c.d.phys.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// argBuf is where the tests put hypercall arguments: frame 1.
const argBuf = PageSize

// entry returns a pointer to the flags-and-domid word of grant entry ref.
func entryWord(d *Domain, ref uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&d.gtab.Bytes()[ref*8]))
}

func acceptTransfer(d *Domain, ref uint32, from uint16, gfn uint32) {
	binary.LittleEndian.PutUint32(d.gtab.Bytes()[ref*8+4:], gfn)
	atomic.StoreUint32(entryWord(d, ref), gnttab.GTFAcceptTransfer|uint32(from)<<16)
}

// transfer runs one gnttab_transfer element for d and returns its status.
func transfer(t *testing.T, v *VMM, d *Domain, gfn uint64, to uint16, ref uint32) int16 {
	t.Helper()
	b := d.ram.mem[argBuf : argBuf+24]
	binary.LittleEndian.PutUint64(b[0:], gfn)
	binary.LittleEndian.PutUint16(b[8:], to)
	binary.LittleEndian.PutUint32(b[12:], ref)
	binary.LittleEndian.PutUint16(b[16:], 0x7777)
	if ret := v.gnttab.Op(physCaller[gnttab.DomainID]{d}, gnttab.OpTransfer, argBuf, 1); ret != 0 {
		t.Fatalf("transfer: %d", ret)
	}
	return int16(binary.LittleEndian.Uint16(b[16:]))
}

// A transfer moves the page into the receiver's RAM and gives the
// sender's back to the host; the physmaps and reservations follow.
func TestTransferMovesThePage(t *testing.T) {
	v := bareVMM()
	a := bareDomain(t, v, 1, 4<<20, 4<<20)
	b := bareDomain(t, v, 2, 4<<20, 2<<20)
	const gfn, toGFN = 100, 600 // b's frame 600 is in its empty tail
	want := bytes.Repeat([]byte("pagedata"), PageSize/8)
	copy(a.ram.mem[gfn*PageSize:], want)
	a.ram.mem[argBuf] = 1 // the argument page, so that it is counted below
	allocA, _ := a.ram.AllocatedBytes()
	acceptTransfer(b, 8, 1, toGFN)

	if st := transfer(t, v, a, gfn, 2, 8); st != gnttab.GNTSTOkay {
		t.Fatalf("transfer status %d", st)
	}
	if got, err := b.phys.Slice(toGFN*PageSize, PageSize); err != nil || !bytes.Equal(got, want) {
		t.Errorf("receiver's frame: %v, contents match %v", err, bytes.Equal(got, want))
	}
	if _, err := a.phys.Slice(gfn*PageSize, 1); err == nil {
		t.Errorf("sender's frame still reachable")
	}
	if p := guestPerms(t, a.ram.guestAddr()+gfn*PageSize); p != "---s" {
		t.Errorf("sender's guest mapping of the frame is %s", p)
	}
	if allocA1, _ := a.ram.AllocatedBytes(); allocA1 != allocA-PageSize {
		t.Errorf("sender's memfd holds %d bytes, had %d", allocA1, allocA)
	}
	if f := atomic.LoadUint32(entryWord(b, 8)) & 0xFFFF; f != gnttab.GTFAcceptTransfer|gnttab.GTFTransferCommitted|gnttab.GTFTransferCompleted {
		t.Errorf("receiver's entry flags %#x", f)
	}
	sa, sb := a.MemoryStats(), b.MemoryStats()
	if sa.Current != 1023 || sb.Current != 513 || sa.TransfersOut != 1 || sb.TransfersIn != 1 {
		t.Errorf("reservations after the transfer: %+v / %+v", sa.Stats, sb.Stats)
	}
}

// What the VMM adds to gnttab's checks: a frame that is a registered Argo
// ring page cannot be transferred, and a decrease_reservation stops at
// a frame a grant pins or a ring uses.
func TestFramesHeldElsewhere(t *testing.T) {
	v := bareVMM()
	a := bareDomain(t, v, 1, 4<<20, 4<<20)
	b := bareDomain(t, v, 2, 4<<20, 4<<20)
	const ringGFN = 50
	// Register a one-page ring at frame 50 of a, partner b.
	reg := a.ram.mem[argBuf : argBuf+12]
	binary.LittleEndian.PutUint32(reg[0:], 7)
	binary.LittleEndian.PutUint16(reg[4:], 2)
	binary.LittleEndian.PutUint32(reg[8:], PageSize-64)
	binary.LittleEndian.PutUint64(a.ram.mem[argBuf+64:], ringGFN)
	if ret := v.argo.Op(physCaller[argo.DomainID]{a}, argo.OpRegisterRing, argBuf, argBuf+64, 1, 0); ret != 0 {
		t.Fatalf("register_ring: %d", ret)
	}
	// b gives up frame 9 and accepts a transfer from a into it.
	dec := newTestCallerFor(b)
	if got := dec.call(v.memop, memop.OpDecreaseReservation, []uint64{9}); got != 1 {
		t.Fatalf("decrease: %d", got)
	}
	acceptTransfer(b, 8, 1, 9)
	if st := transfer(t, v, a, ringGFN, 2, 8); st != gnttab.GNTSTBadPage {
		t.Errorf("transfer of a ring page: status %d, want bad_page", st)
	}
	if _, err := a.phys.Slice(ringGFN*PageSize, 1); err != nil {
		t.Errorf("the ring page left a: %v", err)
	}
	// a cannot decrease the ring page either.
	da := newTestCallerFor(a)
	if got := da.call(v.memop, memop.OpDecreaseReservation, []uint64{ringGFN}); got != 0 {
		t.Errorf("decrease of a ring page = %d", got)
	}
	// A page a grants to b and b maps (pinned) stays too.
	binary.LittleEndian.PutUint32(a.gtab.Bytes()[10*8+4:], 60)
	atomic.StoreUint32(entryWord(a, 10), gnttab.GTFPermitAccess|2<<16)
	if v.gnttab.FramesInUse(1, 60, 1) {
		t.Errorf("an unpinned grant counts as in use")
	}
	if got := da.call(v.memop, memop.OpDecreaseReservation, []uint64{61}); got != 1 {
		t.Errorf("decrease of an ordinary frame = %d", got)
	}
	if st := transfer(t, v, a, 62, 2, 8); st != gnttab.GNTSTOkay {
		t.Errorf("transfer of an ordinary frame: %d", st)
	}
}

// newTestCallerFor makes a memop caller for d whose arguments live in a
// separate buffer (testCaller, balloon_test.go).
func newTestCallerFor(d *Domain) *testCaller {
	return &testCaller{id: memop.DomainID(d.id), mem: make([]byte, 1<<16)}
}

// gntMap maps grant (dom, ref) for d at gpa and returns status and handle.
func gntMap(t *testing.T, v *VMM, d *Domain, gpa uint64, flags uint32, ref uint32, dom uint16) (int16, uint32) {
	t.Helper()
	b := d.ram.mem[argBuf : argBuf+32]
	binary.LittleEndian.PutUint64(b[0:], gpa)
	binary.LittleEndian.PutUint32(b[8:], flags)
	binary.LittleEndian.PutUint32(b[12:], ref)
	binary.LittleEndian.PutUint16(b[16:], dom)
	if ret := v.gnttab.Op(physCaller[gnttab.DomainID]{d}, gnttab.OpMapGrantRef, argBuf, 1); ret != 0 {
		t.Fatalf("map: %d", ret)
	}
	return int16(binary.LittleEndian.Uint16(b[18:])), binary.LittleEndian.Uint32(b[20:])
}

func grantAccess(d *Domain, ref uint32, to uint16, gfn uint32, ro bool) {
	binary.LittleEndian.PutUint32(d.gtab.Bytes()[ref*8+4:], gfn)
	f := uint32(gnttab.GTFPermitAccess)
	if ro {
		f |= gnttab.GTFReadonly
	}
	atomic.StoreUint32(entryWord(d, ref), f|uint32(to)<<16)
}

// The statuses guest/fixtures/gntxfer.c (mode tester) expects, replayed
// here over real RAM and the real glue, since the KVM test cannot run on
// every machine: frames that are not the caller's to give keep their
// page (bad_page), and every later failure loses it.
func TestTransferStatusesAsGntxferExpects(t *testing.T) {
	v := bareVMM()
	const ram = 1024 // frames
	tt := bareDomain(t, v, 1, ram*PageSize, ram*PageSize)
	pp := bareDomain(t, v, 2, ram*PageSize, ram*PageSize)
	bareDomain(t, v, 3, 512*PageSize, 512*PageSize) // dies below
	expect := int64(ram)
	resv := func() int64 { return int64(tt.MemoryStats().Current) }
	dec := func(d *Domain, gfns ...uint64) int64 {
		return newTestCallerFor(d).call(v.memop, memop.OpDecreaseReservation, gfns)
	}
	want := func(what string, got, want int16) {
		t.Helper()
		if got != want {
			t.Errorf("%s: status %d, want %d", what, got, want)
		}
	}
	const (
		pOK, pPermit, pOther, pPopulated, pFull = 8, 9, 10, 11, 12
	)
	// The peer maps f0, which the tester grants it.
	f := func(i uint64) uint64 { return 100 + i }
	grantAccess(tt, 20, 2, uint32(f(0)), false)
	if st, _ := gntMap(t, v, pp, GrantWindowGPA, gnttab.GNTMAPHostMap, 20, 1); st != gnttab.GNTSTOkay {
		t.Fatalf("peer map: %d", st)
	}
	// The peer's entries.
	if got := dec(pp, 200, 201, 202); got != 3 {
		t.Fatalf("peer holes: %d", got)
	}
	acceptTransfer(pp, pOK, 1, 200)
	grantAccess(pp, pPermit, 1, 203, false)
	acceptTransfer(pp, pOther, 2, 201)
	acceptTransfer(pp, pPopulated, 1, 203)
	acceptTransfer(pp, pFull, 1, 202)

	want("outside region", transfer(t, v, tt, ram+16, 2, pOK), gnttab.GNTSTBadPage)
	want("grant table frame", transfer(t, v, tt, GrantTableGPA/PageSize, 2, pOK), gnttab.GNTSTBadPage)
	if dec(tt, f(1)) != 1 {
		t.Fatal("decrease")
	}
	expect--
	want("empty frame", transfer(t, v, tt, f(1), 2, pOK), gnttab.GNTSTBadPage)
	want("mapped by peer", transfer(t, v, tt, f(0), 2, pOK), gnttab.GNTSTBadPage)
	grantAccess(tt, 21, 1, uint32(f(2)), true)
	st, _ := gntMap(t, v, tt, GrantWindowROGPA, gnttab.GNTMAPHostMap|gnttab.GNTMAPReadonly, 21, uint16(gnttab.DomainSelf))
	want("self map", st, gnttab.GNTSTOkay)
	want("mapped by self", transfer(t, v, tt, f(2), 2, pOK), gnttab.GNTSTBadPage)
	if dec(tt, f(2)) != 0 || dec(tt, f(0)) != 0 {
		t.Errorf("decrease of pinned frames succeeded")
	}
	if resv() != expect {
		t.Errorf("reservation %d after bad_page, want %d", resv(), expect)
	}

	for _, tc := range []struct {
		name string
		dom  uint16
		ref  uint32
		want int16
	}{
		{"missing domain", 999, pOK, gnttab.GNTSTBadDomain},
		{"DOMID_INVALID", 0x7FF4, pOK, gnttab.GNTSTBadDomain},
		{"permit_access entry", 2, pPermit, gnttab.GNTSTGeneralError},
		{"entry names another domain", 2, pOther, gnttab.GNTSTGeneralError},
		{"ref beyond the table", 2, 600, gnttab.GNTSTGeneralError},
		{"receiver's frame populated", 2, pPopulated, gnttab.GNTSTGeneralError},
		{"own invalid entry", uint16(gnttab.DomainSelf), 30, gnttab.GNTSTGeneralError},
	} {
		g := f(uint64(3 + len(tc.name)%5))
		for !tt.p2m.Present(g, 1) {
			g++
		}
		want(tc.name, transfer(t, v, tt, g, tc.dom, tc.ref), tc.want)
		expect--
		if tt.p2m.Present(g, 1) {
			t.Errorf("%s: the frame stayed", tc.name)
		}
	}
	// A domain that has died.
	v.gnttab.DomainDied(3)
	v.memop.DomainDied(3)
	want("dead domain", transfer(t, v, tt, f(10), 3, pOK), gnttab.GNTSTGeneralError)
	expect--
	want("ok", transfer(t, v, tt, f(11), 2, pOK), gnttab.GNTSTOkay)
	expect--
	want("entry used", transfer(t, v, tt, f(12), 2, pOK), gnttab.GNTSTGeneralError)
	expect--
	// Self transfer by DOMID_SELF into one's own entry naming oneself.
	if dec(tt, f(13)) != 1 {
		t.Fatal("decrease")
	}
	expect--
	acceptTransfer(tt, 22, 1, uint32(f(13)))
	want("to self", transfer(t, v, tt, f(14), uint16(gnttab.DomainSelf), 22), gnttab.GNTSTOkay)
	// Fill the peer up: it had 3 holes and received one page.
	pc := newTestCallerFor(pp)
	binary.LittleEndian.PutUint64(pc.mem[8:], 2) // nr_extents
	binary.LittleEndian.PutUint16(pc.mem[24:], uint16(memop.DomainSelf))
	if got := v.memop.Op(pc, memop.OpIncreaseReservation, 0); got != 2 {
		t.Fatalf("peer increase: %d", got)
	}
	want("receiver full", transfer(t, v, tt, f(18), 2, pFull), gnttab.GNTSTGeneralError)
	expect--
	if resv() != expect {
		t.Errorf("reservation %d at the end, want %d", resv(), expect)
	}
	if fl := atomic.LoadUint32(entryWord(pp, pFull)) & 0xFFFF; fl != gnttab.GTFAcceptTransfer {
		t.Errorf("the full receiver's entry changed: %#x", fl)
	}
}
