package vmm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/argovisor/argovisor/internal/testutil"
	"github.com/argovisor/argovisor/memop"
)

// These tests need no KVM: they drive memop over real guest RAM (a memfd
// with the VMM's and the guest's mappings) and measure what the host sees.

// guestPerms returns the permissions (like "rw-s") of the mapping that
// holds host address addr.
func guestPerms(t *testing.T, addr uintptr) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		var lo, hi uintptr
		if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err != nil {
			continue
		}
		if addr >= lo && addr < hi {
			return f[1]
		}
	}
	return "unmapped"
}

// testCaller is a memop.Caller whose arguments live in a byte slice.
type testCaller struct {
	id  memop.DomainID
	mem []byte
}

func (c *testCaller) Domain() memop.DomainID { return c.id }

func (c *testCaller) ReadGuest(addr uint64, p []byte) error {
	if addr+uint64(len(p)) > uint64(len(c.mem)) || addr+uint64(len(p)) < addr {
		return ErrFault
	}
	copy(p, c.mem[addr:])
	return nil
}

func (c *testCaller) WriteGuest(addr uint64, p []byte) error {
	if addr+uint64(len(p)) > uint64(len(c.mem)) || addr+uint64(len(p)) < addr {
		return ErrFault
	}
	copy(c.mem[addr:], p)
	return nil
}

// reservation runs reservation op for c over frames, in calls of at
// most memop.MaxExtents extents, and returns the extents done.
func (c *testCaller) reservation(m *memop.Memop, op uint64, frames []uint64) int64 {
	var done int64
	for len(frames) > 0 {
		n := min(len(frames), memop.MaxExtents)
		r := c.call(m, op, frames[:n])
		done += r
		if r != int64(n) {
			break
		}
		frames = frames[n:]
	}
	return done
}

// call runs one reservation op for c over frames.
func (c *testCaller) call(m *memop.Memop, op uint64, frames []uint64) int64 {
	const list, args = 64, 0
	binary.LittleEndian.PutUint64(c.mem[args:], list)
	binary.LittleEndian.PutUint64(c.mem[args+8:], uint64(len(frames)))
	binary.LittleEndian.PutUint64(c.mem[args+16:], 0) // order 0, no flags
	binary.LittleEndian.PutUint16(c.mem[args+24:], uint16(memop.DomainSelf))
	for i, f := range frames {
		binary.LittleEndian.PutUint64(c.mem[list+8*i:], f)
	}
	return m.Op(c, op, args)
}

func frameRange(first, n uint64) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = first + uint64(i)
	}
	return s
}

// balloonRig is one domain's RAM behind a Memop.
type balloonRig struct {
	ram *RAM
	m   *memop.Memop
	p2m *memop.Domain
	mem physMem
	c   *testCaller
}

func newBalloonRig(t *testing.T, size, populated uint64) *balloonRig {
	t.Helper()
	ram, err := NewRAM("balloon-test", size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ram.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := ram.mapGuest(populated); err != nil {
		t.Fatal(err)
	}
	m := memop.New(ramBacking{func(memop.DomainID) *RAM { return ram }}, nil)
	p2m, err := m.AddDomain(1, memop.Config{Pages: populated / PageSize, MaxPages: size / PageSize})
	if err != nil {
		t.Fatal(err)
	}
	return &balloonRig{ram: ram, m: m, p2m: p2m, mem: physMem{ram, p2m}, c: &testCaller{id: 1, mem: make([]byte, 1<<20)}}
}

// decrease_reservation of half the RAM gives its memory back: the memfd's
// allocated blocks and the process's resident memory drop by that much,
// the guest mapping of those frames is inaccessible and the VMM's
// accessors refuse them. populate_physmap brings fresh zero pages back.
func TestBalloonGivesMemoryBack(t *testing.T) {
	const size = 64 << 20
	const half = size / 2 / PageSize // frames
	r := newBalloonRig(t, size, size)
	for off := 0; off < size; off += PageSize {
		r.ram.mem[off] = 0xA5 // touch every page through the VMM's mapping
	}
	alloc0, err := r.ram.AllocatedBytes()
	if err != nil {
		t.Fatal(err)
	}
	rss0 := testutil.RSSShmemKiB(t)
	if alloc0 < size {
		t.Fatalf("memfd holds %d bytes after touching %d", alloc0, size)
	}

	if got := r.c.reservation(r.m, memop.OpDecreaseReservation, frameRange(half, half)); got != half {
		t.Fatalf("decrease_reservation of %d frames = %d", half, got)
	}
	alloc1, _ := r.ram.AllocatedBytes()
	rss1 := testutil.RSSShmemKiB(t)
	t.Logf("memfd allocated %d -> %d KiB, RssShmem %d -> %d KiB", alloc0>>10, alloc1>>10, rss0, rss1)
	if alloc0-alloc1 != size/2 {
		t.Errorf("memfd allocated blocks dropped by %d bytes, want %d", alloc0-alloc1, size/2)
	}
	if want := int64(size/2>>10) * 9 / 10; rss0-rss1 < want {
		t.Errorf("resident shared memory dropped by %d KiB, want at least %d", rss0-rss1, want)
	}
	for _, gfn := range []uint64{half, half + 17, 2*half - 1} {
		if p := guestPerms(t, r.ram.guestAddr()+uintptr(gfn*PageSize)); p != "---s" {
			t.Errorf("guest mapping of empty frame %#x is %s, want ---s", gfn, p)
		}
		if _, err := r.mem.Slice(gfn*PageSize, 8); !errors.Is(err, ErrFault) {
			t.Errorf("VMM access to empty frame %#x: %v, want ErrFault", gfn, err)
		}
	}
	if p := guestPerms(t, r.ram.guestAddr()); p != "rw-s" {
		t.Errorf("guest mapping of a populated frame is %s", p)
	}
	if _, err := r.mem.Slice(half*PageSize-8, 16); !errors.Is(err, ErrFault) {
		t.Errorf("a VMM access across into an empty frame is allowed")
	}
	if s := r.p2m.Stats(); s.Current != half || s.Holes != 1 {
		t.Errorf("reservation %+v, want %d pages and one hole", s, half)
	}

	if got := r.c.reservation(r.m, memop.OpPopulatePhysmap, frameRange(half, half)); got != half {
		t.Fatalf("populate_physmap of %d frames = %d", half, got)
	}
	if p := guestPerms(t, r.ram.guestAddr()+uintptr(half*PageSize)); p != "rw-s" {
		t.Errorf("guest mapping of a populated frame is %s, want rw-s", p)
	}
	alloc2, _ := r.ram.AllocatedBytes()
	if alloc2 != alloc1 {
		t.Errorf("populate allocated %d bytes before any touch", alloc2-alloc1)
	}
	b, err := r.mem.Slice(half*PageSize, size/2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, make([]byte, size/2)) {
		t.Errorf("populated frames are not zero")
	}
	if r.ram.mem[0] != 0xA5 {
		t.Errorf("a frame that stayed lost its contents")
	}
}

// Frames above the initial memory start empty, and the region's size is
// the limit.
func TestBalloonRegionTail(t *testing.T) {
	const size, populated = 8 << 20, 4 << 20
	r := newBalloonRig(t, size, populated)
	if p := guestPerms(t, r.ram.guestAddr()+populated); p != "---s" {
		t.Errorf("tail of the region is %s, want ---s", p)
	}
	if _, err := r.mem.Slice(populated, 1); !errors.Is(err, ErrFault) {
		t.Errorf("VMM access to the empty tail allowed")
	}
	if got := r.c.reservation(r.m, memop.OpPopulatePhysmap, frameRange(populated/PageSize, populated/PageSize)); got != populated/PageSize {
		t.Errorf("populate of the tail = %d", got)
	}
	if got := r.c.reservation(r.m, memop.OpPopulatePhysmap, []uint64{size / PageSize}); got != 0 {
		t.Errorf("populate beyond the region = %d", got)
	}
	if _, err := r.mem.Slice(size-8, 8); err != nil {
		t.Errorf("last frame after populate: %v", err)
	}
}

// moveFrame copies a page into another RAM's empty frame and gives the
// sender's page back.
func TestMoveFrame(t *testing.T) {
	a := newBalloonRig(t, 4<<20, 4<<20)
	b := newBalloonRig(t, 4<<20, 2<<20)
	want := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, PageSize/8)
	copy(a.ram.mem[5*PageSize:], want)
	allocA, _ := a.ram.AllocatedBytes()
	const to = (2 << 20) / PageSize // b's first empty frame
	if err := moveFrame(a.ram, 5, b.ram, to); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.ram.mem[to*PageSize:(to+1)*PageSize], want) {
		t.Errorf("the page did not arrive")
	}
	if p := guestPerms(t, b.ram.guestAddr()+to*PageSize); p != "rw-s" {
		t.Errorf("receiver's frame is %s", p)
	}
	if p := guestPerms(t, a.ram.guestAddr()+5*PageSize); p != "---s" {
		t.Errorf("sender's frame is %s", p)
	}
	if allocA1, _ := a.ram.AllocatedBytes(); allocA-allocA1 != PageSize {
		t.Errorf("sender's memfd went from %d to %d bytes", allocA, allocA1)
	}
	if err := moveFrame(a.ram, 5, b.ram, 1<<20); err == nil {
		t.Errorf("move to a frame outside the RAM succeeded")
	}
}

// dropVMMPages unmaps the VMM's view of the pages it wrote while setting a
// domain up; the memfd keeps their contents (a shared mapping).
func TestDropVMMPagesKeepsContents(t *testing.T) {
	r := newBalloonRig(t, 4<<20, 4<<20)
	for off := 0; off < 4<<20; off += PageSize {
		r.ram.mem[off] = byte(off >> 12)
	}
	alloc0, _ := r.ram.AllocatedBytes()
	rss0 := testutil.RSSShmemKiB(t)
	r.ram.dropVMMPages()
	if rss1 := testutil.RSSShmemKiB(t); rss0-rss1 < (4<<10)*9/10 {
		t.Errorf("resident shared memory went from %d to %d KiB", rss0, rss1)
	}
	if alloc1, _ := r.ram.AllocatedBytes(); alloc1 != alloc0 {
		t.Errorf("the memfd went from %d to %d bytes", alloc0, alloc1)
	}
	for off := 0; off < 4<<20; off += PageSize {
		if r.ram.mem[off] != byte(off>>12) {
			t.Fatalf("page %#x lost its contents", off)
		}
	}
}

// The RSS in memory reports comes from /proc/self/statm opened before any
// sandbox, read with pread.
func TestProcessRSSFromOpenStatm(t *testing.T) {
	v := &VMM{byID: map[uint16]*Domain{}}
	if got := v.processRSSKiB(); got != 0 {
		t.Errorf("RSS %d KiB without an open statm, want 0", got)
	}
	if err := v.openStatm(); err != nil {
		t.Fatal(err)
	}
	defer v.statm.Close()
	if got := v.processRSSKiB(); got == 0 {
		t.Errorf("RSS 0 KiB")
	}
}

// A library caller's MaxMemory is checked like the config key.
func TestValidateMaxMemory(t *testing.T) {
	base := DomainConfig{Name: "m", Kernel: "k.elf", Memory: 16 << 20}.WithDefaults()
	for _, tc := range []struct {
		max uint64
		ok  bool
	}{{0, true}, {16 << 20, true}, {32 << 20, true}, {8 << 20, false}, {4 << 30, false}, {16<<20 + 1, false}} {
		c := base
		c.MaxMemory = tc.max
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("MaxMemory %d: %v, want ok %v", tc.max, err, tc.ok)
		} else if err != nil && !errors.Is(err, ErrBadConfig) {
			t.Errorf("MaxMemory %d: %v does not wrap ErrBadConfig", tc.max, err)
		}
	}
	if r := base.region(); r != 16<<20 {
		t.Errorf("region of a domain without max_memory: %d", r)
	}
}
