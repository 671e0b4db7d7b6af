package vmm

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// same reports whether b starts at the byte at (aliases m from there on).
func same(b, m []byte) bool { return len(b) > 0 && len(m) > 0 && &b[0] == &m[0] }

// Map gives the longest guest-physically contiguous run, across pages of
// every size and across level-1 tables, and stops before a page that is
// absent, read-only (for a write), or outside RAM.
func TestMapRuns(t *testing.T) {
	f := newFakeTables(16 << 20)
	pml4, pdpt, pd := f.alloc(), f.alloc(), f.alloc()
	ptA, ptB := f.alloc(), f.alloc()
	f.set(pml4, 0, pdpt|pteP|pteRW)
	f.set(pdpt, 0, pd|pteP|pteRW)
	// va 0..2 MiB through ptA, va 2..4 MiB through ptB: the last two
	// pages of ptA and the first three of ptB are physically contiguous
	// (pa 0x400000-4 pages ...), then a jump, then a read-only page,
	// then a hole.
	f.set(pd, 0, ptA|pteP|pteRW)
	f.set(pd, 1, ptB|pteP|pteRW)
	base := uint64(0x400000)
	f.set(ptA, 510, base|pteP|pteRW)
	f.set(ptA, 511, base+0x1000|pteP|pteRW)
	f.set(ptB, 0, base+0x2000|pteP|pteRW)
	f.set(ptB, 1, base+0x3000|pteP|pteRW)
	f.set(ptB, 2, base+0x4000|pteP|pteRW)
	f.set(ptB, 3, 0x900000|pteP|pteRW) // not adjacent
	f.set(ptB, 4, 0x901000|pteP)       // read-only, adjacent
	// ptB 5: absent.
	// va 4..6 MiB: a 2 MiB page at pa 6 MiB; va 6..8 MiB: 4 KiB pages
	// continuing it (pa 8 MiB on), through ptC.
	ptC := f.alloc()
	f.set(pd, 2, 6<<20|pteP|pteRW|ptePS)
	f.set(pd, 3, ptC|pteP|pteRW)
	for i := uint64(0); i < 4; i++ {
		f.set(ptC, i, 8<<20+i*PageSize|pteP|pteRW)
	}
	// va 8 MiB..: a 2 MiB page at pa 14 MiB, running past the end of
	// RAM (16 MiB) into a second 2 MiB page at pa 16 MiB.
	f.set(pd, 4, 14<<20|pteP|pteRW|ptePS)
	f.set(pd, 5, 16<<20|pteP|pteRW|ptePS)
	v := GuestView{Mem: f.mem, Paging: longMode(pml4)}

	va := uint64(510 << 12) // ptA[510]
	for _, tc := range []struct {
		name     string
		gva, n   uint64
		write    bool
		wantGPA  uint64
		wantLen  uint64
		wantFail bool
	}{
		{"across two level-1 tables", va + 8, 5 * PageSize, false, base + 8, 5*PageSize - 8, false},
		{"n shorter than the run", va + 8, 100, false, base + 8, 100, false},
		{"stops at a jump", 2<<20 + 0x2000, 1 << 20, false, base + 0x4000, PageSize, false},
		{"read-only page read", 2<<20 + 0x3000, 1 << 20, false, 0x900000, 2 * PageSize, false},
		{"read-only page ends a write run", 2<<20 + 0x3000, 1 << 20, true, 0x900000, PageSize, false},
		{"write into read-only page", 2<<20 + 0x4000, 8, true, 0, 0, true},
		{"hole", 2<<20 + 0x5000, 8, false, 0, 0, true},
		{"2 MiB page then 4 KiB pages", 4<<20 + 0x1000, 2<<20 + 0x2000, false, 6<<20 + 0x1000, 2<<20 + 0x2000, false},
		{"runs out of RAM", 8<<20 + 0x1000, 4 << 20, false, 14<<20 + 0x1000, 2<<20 - 0x1000, false},
		{"starts outside RAM", 10 << 20, 8, false, 0, 0, true},
	} {
		b, err := v.Map(tc.gva, tc.n, tc.write)
		if tc.wantFail {
			if !errors.Is(err, ErrFault) {
				t.Errorf("%s: Map = %d bytes, %v; want ErrFault", tc.name, len(b), err)
			}
			continue
		}
		if err != nil || uint64(len(b)) != tc.wantLen || !same(b, f.mem[tc.wantGPA:]) {
			t.Errorf("%s: Map = %d bytes, %v; want %d bytes at pa %#x", tc.name, len(b), err, tc.wantLen, tc.wantGPA)
		}
	}
	if b, err := v.Map(va, 0, false); b != nil || err != nil {
		t.Errorf("Map of 0 bytes = %v, %v", b, err)
	}
}

// pieces is PhysMemory made of two backings that are adjacent in
// guest-physical space (as RAM and the grant frames can be): a run may not
// cross from one to the other.
type pieces struct {
	a, b  SliceMemory
	split uint64
}

func (p pieces) Slice(gpa, n uint64) ([]byte, error) {
	if gpa < p.split {
		return p.a.Slice(gpa, n)
	}
	return p.b.Slice(gpa-p.split, n)
}

func TestMapStopsAtBackingBoundary(t *testing.T) {
	f := newFakeTables(4 << 20)
	pml4, pdpt, pd := f.alloc(), f.alloc(), f.alloc()
	f.set(pml4, 0, pdpt|pteP|pteRW)
	f.set(pdpt, 0, pd|pteP|pteRW)
	f.set(pd, 0, 0|pteP|pteRW|ptePS) // va 0..2 MiB → pa 0..2 MiB
	other := make(SliceMemory, 2<<20)
	mem := pieces{a: f.mem[:1<<20], b: other, split: 1 << 20}
	v := GuestView{Mem: mem, Paging: longMode(pml4)}
	b, err := v.Map(1<<20-0x1800, 0x3000, false)
	if err != nil || len(b) != 0x1800 || !same(b, f.mem[1<<20-0x1800:]) {
		t.Fatalf("run up to the boundary: %d bytes, %v", len(b), err)
	}
	b, err = v.Map(1<<20, 0x1800, false)
	if err != nil || len(b) != 0x1800 || !same(b, other) {
		t.Fatalf("run after the boundary: %d bytes, %v", len(b), err)
	}
	// Read across it gets both pieces.
	copy(f.mem[1<<20-4:], "abcd")
	copy(other, "efgh")
	buf := make([]byte, 8)
	if err := v.Read(1<<20-4, buf); err != nil || string(buf) != "abcdefgh" {
		t.Fatalf("read across the boundary = %q, %v", buf, err)
	}
}

// On random page tables (4 KiB pages, some adjacent, some read-only, some
// absent, under several level-1 tables), every Map run is the one a
// page-by-page Translate says, and Read/Write agree with a byte-by-byte
// reference.
func TestMapMatchesTranslate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		f := newFakeTables(8 << 20)
		pml4, pdpt, pd := f.alloc(), f.alloc(), f.alloc()
		f.set(pml4, 0, pdpt|pteP|pteRW)
		f.set(pdpt, 0, pd|pteP|pteRW)
		const vpages = 3 * 512 // va 0..6 MiB through three level-1 tables
		pts := []uint64{f.alloc(), f.alloc(), f.alloc()}
		for i, pt := range pts {
			f.set(pd, uint64(i), pt|pteP|pteRW)
		}
		frame := uint64(1 << 20)
		for p := uint64(0); p < vpages; p++ {
			switch x := rng.IntN(10); {
			case x == 0: // absent
				continue
			case x < 3: // jump
				frame = (1<<20 + rng.Uint64N(6<<20)) &^ (PageSize - 1)
			}
			e := frame | pteP
			if rng.IntN(8) != 0 {
				e |= pteRW
			}
			f.set(pts[p/512], p%512, e)
			frame += PageSize
			if frame >= 8<<20 {
				frame = 1 << 20
			}
		}
		ps := longMode(pml4)
		v := GuestView{Mem: f.mem, Paging: ps}
		for range 200 {
			gva := rng.Uint64N(vpages * PageSize)
			n := 1 + rng.Uint64N(64*PageSize)
			write := rng.IntN(2) == 0
			// Reference: page by page.
			var want uint64
			t0, err0 := Translate(f.mem, ps, gva)
			for want < n {
				tr, err := Translate(f.mem, ps, gva+want)
				if err != nil || tr.GPA != t0.GPA+want || write && !tr.Writable {
					break
				}
				want += min(tr.Remaining(), n-want)
			}
			b, err := v.Map(gva, n, write)
			if want == 0 || err0 != nil {
				if err == nil {
					t.Fatalf("round %d: Map(%#x, %d, %v) = %d bytes, want a fault", round, gva, n, write, len(b))
				}
				continue
			}
			if err != nil || uint64(len(b)) != want || !same(b, f.mem[t0.GPA:]) {
				t.Fatalf("round %d: Map(%#x, %d, %v) = %d bytes, %v; want %d at pa %#x", round, gva, n, write, len(b), err, want, t0.GPA)
			}
		}
		// Read and Write against a byte-by-byte reference.
		for range 50 {
			gva := rng.Uint64N(vpages * PageSize)
			n := 1 + rng.Uint64N(16*PageSize)
			got := make([]byte, n)
			rerr := v.Read(gva, got)
			var want []byte
			var werr error
			for i := uint64(0); i < n; i++ {
				tr, err := Translate(f.mem, ps, gva+i)
				if err != nil {
					werr = err
					break
				}
				want = append(want, f.mem[tr.GPA])
			}
			if (rerr == nil) != (werr == nil) || !bytes.Equal(got[:len(want)], want) {
				t.Fatalf("round %d: Read(%#x, %d): %v, reference %v, bytes equal %v", round, gva, n, rerr, werr, bytes.Equal(got[:len(want)], want))
			}
		}
	}
}
