package vmm

import (
	"encoding/binary"
	"errors"
	"testing"
)

// fakeTables builds page tables in a SliceMemory for walker tests.
type fakeTables struct {
	mem  SliceMemory
	next uint64 // next free table page
}

func newFakeTables(size uint64) *fakeTables {
	return &fakeTables{mem: make(SliceMemory, size), next: 0x1000}
}

func (f *fakeTables) alloc() uint64 {
	p := f.next
	f.next += PageSize
	return p
}

func (f *fakeTables) set(table, idx, val uint64) {
	binary.LittleEndian.PutUint64(f.mem[table+idx*8:], val)
}

var longMode = func(cr3 uint64) PagingState {
	return PagingState{CR0: cr0PG | cr0WP | 1, CR3: cr3, CR4: cr4PAE, EFER: eferLMA | 1<<8}
}

func TestTranslatePageSizes(t *testing.T) {
	f := newFakeTables(64 << 20)
	pml4 := f.alloc()
	pdpt := f.alloc()
	pd := f.alloc()
	pt := f.alloc()
	f.set(pml4, 0, pdpt|pteP|pteRW)
	// 1 GiB page: va 1 GiB → pa 0 (read-only).
	f.set(pdpt, 1, 0|pteP|ptePS)
	// PD for va 0..1 GiB.
	f.set(pdpt, 0, pd|pteP|pteRW)
	// 2 MiB page: va 2 MiB → pa 4 MiB.
	f.set(pd, 1, 4<<20|pteP|pteRW|ptePS)
	// 4 KiB page: va 0x5000 → pa 0x9000 via PT at pd[0].
	f.set(pd, 0, pt|pteP|pteRW)
	f.set(pt, 5, 0x9000|pteP|pteRW)
	// 4 KiB page with PAT bit (bit 7) set: va 0x6000 → pa 0xA000.
	f.set(pt, 6, 0xA000|pteP|ptePS)

	for _, tc := range []struct {
		va, pa, size uint64
		writable     bool
	}{
		{0x5123, 0x9123, 4 << 10, true},
		{0x6008, 0xA008, 4 << 10, false},
		{2<<20 + 0x1234, 4<<20 + 0x1234, 2 << 20, true},
		{1<<30 + 0x12345, 0x12345, 1 << 30, false},
	} {
		tr, err := Translate(f.mem, longMode(pml4), tc.va)
		if err != nil {
			t.Errorf("va %#x: %v", tc.va, err)
			continue
		}
		if tr.GPA != tc.pa || tr.PageSize != tc.size || tr.Writable != tc.writable {
			t.Errorf("va %#x = %+v, want pa %#x size %#x writable %v", tc.va, tr, tc.pa, tc.size, tc.writable)
		}
	}
}

func TestTranslateFaults(t *testing.T) {
	f := newFakeTables(8 << 20)
	pml4 := f.alloc()
	pdpt := f.alloc()
	pd := f.alloc()
	f.set(pml4, 0, pdpt|pteP|pteRW)
	f.set(pdpt, 0, pd|pteP|pteRW)
	f.set(pdpt, 2, 0x40000000|pteP|ptePS|1<<13) // reserved bit in 1 GiB entry
	f.set(pd, 3, 0x200000|pteP|ptePS|1<<20)     // reserved bit in 2 MiB entry
	f.set(pd, 4, 0x7FFF_F000|pteP)              // next table outside RAM
	f.set(pml4, 1, pdpt|pteP|ptePS)             // PS in PML4 is invalid
	for _, tc := range []struct {
		name string
		va   uint64
	}{
		{"hole in PD", 0x0},
		{"hole in PDPT", 3 << 30},
		{"hole in PML4", 1 << 40},
		{"reserved 1G", 2 << 30},
		{"reserved 2M", 3 << 21},
		{"table outside RAM", 4 << 21},
		{"PS in PML4", 1 << 39},
		{"non-canonical", 0x0000_8000_0000_0000},
	} {
		if _, err := Translate(f.mem, longMode(pml4), tc.va); !errors.Is(err, ErrFault) {
			t.Errorf("%s (va %#x): err = %v, want ErrFault", tc.name, tc.va, err)
		}
	}
	// CR3 itself outside RAM.
	if _, err := Translate(f.mem, longMode(1<<40), 0); !errors.Is(err, ErrFault) {
		t.Errorf("CR3 outside RAM: err = %v", err)
	}
	// 32-bit paging is not supported.
	ps := longMode(pml4)
	ps.EFER = 0
	if _, err := Translate(f.mem, ps, 0x1000); !errors.Is(err, ErrFault) {
		t.Errorf("legacy paging: err = %v", err)
	}
}

func TestTranslatePagingOff(t *testing.T) {
	tr, err := Translate(SliceMemory(nil), PagingState{}, 0x1234)
	if err != nil || tr.GPA != 0x1234 {
		t.Fatalf("paging off: %+v, %v", tr, err)
	}
}

func TestGuestViewCrossesPages(t *testing.T) {
	f := newFakeTables(1 << 20)
	pml4, pdpt, pd, pt := f.alloc(), f.alloc(), f.alloc(), f.alloc()
	f.set(pml4, 0, pdpt|pteP|pteRW)
	f.set(pdpt, 0, pd|pteP|pteRW)
	f.set(pd, 0, pt|pteP|pteRW)
	// Two virtually adjacent pages backed by non-adjacent frames; the
	// second is read-only.
	f.set(pt, 0x10, 0x80000|pteP|pteRW)
	f.set(pt, 0x11, 0x40000|pteP)
	v := GuestView{Mem: f.mem, Paging: longMode(pml4)}
	src := []byte("0123456789")
	copy(f.mem[0x80000+PageSize-4:], src[:4])
	copy(f.mem[0x40000:], src[4:])
	buf := make([]byte, 10)
	if err := v.Read(0x11000-4, buf); err != nil || string(buf) != string(src) {
		t.Fatalf("read across pages = %q, %v", buf, err)
	}
	if err := v.Write(0x11000-4, []byte("abcdefghij")); !errors.Is(err, ErrFault) {
		t.Fatalf("write into read-only page: err = %v", err)
	}
	if err := v.Write(0x11000-4, []byte("abcd")); err != nil || string(f.mem[0x80000+PageSize-4:0x80000+PageSize]) != "abcd" {
		t.Fatalf("write to writable page: %v", err)
	}
	if err := v.Read(0x12000-2, buf); !errors.Is(err, ErrFault) {
		t.Fatalf("read running into unmapped page: err = %v", err)
	}
}

func TestBuiltTablesTranslate(t *testing.T) {
	mem := make(SliceMemory, 16<<20)
	if err := writeTables(mem); err != nil {
		t.Fatal(err)
	}
	ps := PagingState{CR0: 0x80050033, CR3: pml4GPA, CR4: 0x6A0, EFER: 0x500}
	for _, va := range []uint64{0x1000, 0x1FFFFF, 0x200000, 0xFEE00000, 0xFFFFFFFF} {
		tr, err := Translate(mem, ps, va)
		if err != nil || tr.GPA != va || !tr.Writable {
			t.Errorf("identity map of %#x: %+v, %v", va, tr, err)
		}
	}
	if _, err := Translate(mem, ps, 0x10); !errors.Is(err, ErrFault) {
		t.Errorf("page 0 should be absent, err = %v", err)
	}
	if _, err := Translate(mem, ps, 4<<30); !errors.Is(err, ErrFault) {
		t.Errorf("4 GiB should be unmapped, err = %v", err)
	}
}
