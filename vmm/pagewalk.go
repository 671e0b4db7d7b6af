package vmm

import (
	"encoding/binary"
	"fmt"
)

// x86-64 paging bits used by the walker.
const (
	pteP    = 1 << 0 // present
	pteRW   = 1 << 1 // writable
	pteUS   = 1 << 2 // user accessible
	ptePS   = 1 << 7 // page size (in PDPTE and PDE)
	cr0PG   = 1 << 31
	cr0WP   = 1 << 16
	cr4PAE  = 1 << 5
	eferLMA = 1 << 10

	// Physical-address bits of a table entry: 12..51.
	pteAddrMask = 0x000F_FFFF_FFFF_F000
)

// PagingState is the part of a vCPU's control state that translation needs.
type PagingState struct {
	CR0, CR3, CR4, EFER uint64
}

// Translation is the result of walking the page tables for one address.
type Translation struct {
	GPA      uint64 // guest-physical address of the byte
	PageSize uint64 // 4 KiB, 2 MiB or 1 GiB
	Writable bool   // every level allows writes
}

// Remaining returns how many bytes from GPA to the end of its page.
func (t Translation) Remaining() uint64 { return t.PageSize - t.GPA&(t.PageSize-1) }

// Translate walks the 4-level page tables rooted at ps.CR3 in mem to
// translate a guest-virtual address. With paging off (CR0.PG clear) virtual
// equals physical. Paging modes other than 4-level long mode are rejected.
// Any absent entry, entry with reserved bits, table outside RAM or
// non-canonical address gives an error wrapping ErrFault.
func Translate(mem PhysMemory, ps PagingState, gva uint64) (Translation, error) {
	var w walker
	return w.translate(mem, ps, gva)
}

// walker is Translate with a cache of the last walk that ended in a 4 KiB
// page: the level-1 table it went through, and whether the levels above
// allowed writes. A later address in the same 2 MiB of virtual space then
// costs one entry read instead of four (a paging-structure cache, as a CPU
// keeps one). Only the upper levels are cached — every PTE is read afresh
// — and the cached table is the guest's own memory, so a guest that
// changes its tables during the walk can get no more than a translation
// it could have had a moment earlier, always into its own memory. Use a
// walker for one hypercall's accesses only: the tables may change between
// exits.
type walker struct {
	ptValid    bool
	ptRegion   uint64 // gva >> 21 of the cached table
	pt         []byte // the level-1 table's host bytes (4 KiB)
	ptWritable bool   // every level above allowed writes
}

func (w *walker) translate(mem PhysMemory, ps PagingState, gva uint64) (Translation, error) {
	if ps.CR0&cr0PG == 0 {
		return Translation{GPA: gva, PageSize: PageSize, Writable: true}, nil
	}
	if w.ptValid && gva>>21 == w.ptRegion {
		e := binary.LittleEndian.Uint64(w.pt[(gva>>12&0x1FF)*8:])
		if e&pteP == 0 {
			return Translation{}, fmt.Errorf("%w: %#x not mapped (level-1 entry %#x)", ErrFault, gva, e)
		}
		return Translation{GPA: e&pteAddrMask | gva&(PageSize-1), PageSize: PageSize, Writable: w.ptWritable && e&pteRW != 0}, nil
	}
	if ps.CR4&cr4PAE == 0 || ps.EFER&eferLMA == 0 {
		return Translation{}, fmt.Errorf("%w: paging mode is not 4-level long mode (cr0=%#x cr4=%#x efer=%#x)", ErrFault, ps.CR0, ps.CR4, ps.EFER)
	}
	// Canonical: bits 63..47 all equal.
	if top := int64(gva) >> 47; top != 0 && top != -1 {
		return Translation{}, fmt.Errorf("%w: non-canonical address %#x", ErrFault, gva)
	}
	table := ps.CR3 & pteAddrMask
	writable := true
	for level := 4; level >= 1; level-- {
		shift := uint(12 + 9*(level-1))
		idx := (gva >> shift) & 0x1FF
		var e uint64
		if level == 1 {
			// The whole table, to cache it (page aligned: in RAM iff
			// its entry is).
			pt, err := mem.Slice(table, PageSize)
			if err != nil {
				return Translation{}, fmt.Errorf("%w: level-%d table at %#x is outside RAM", ErrFault, level, table)
			}
			w.ptValid, w.ptRegion, w.pt, w.ptWritable = true, gva>>21, pt, writable
			e = binary.LittleEndian.Uint64(pt[idx*8:])
		} else {
			var err error
			if e, err = readU64(mem, table+idx*8); err != nil {
				return Translation{}, fmt.Errorf("%w: level-%d table at %#x is outside RAM", ErrFault, level, table)
			}
		}
		if e&pteP == 0 {
			return Translation{}, fmt.Errorf("%w: %#x not mapped (level-%d entry %#x)", ErrFault, gva, level, e)
		}
		writable = writable && e&pteRW != 0
		if e&ptePS != 0 {
			switch level {
			case 3, 2:
				size := uint64(1) << shift
				// Bits 12..shift-1 other than PAT (bit 12) must be zero.
				if rsv := e & pteAddrMask & (size - 1) &^ (1 << 12); rsv != 0 {
					return Translation{}, fmt.Errorf("%w: reserved bits set in level-%d large-page entry %#x", ErrFault, level, e)
				}
				base := e & pteAddrMask &^ (size - 1)
				return Translation{GPA: base | gva&(size-1), PageSize: size, Writable: writable}, nil
			case 4:
				return Translation{}, fmt.Errorf("%w: PS bit set in PML4 entry %#x", ErrFault, e)
			}
			// Level 1: bit 7 is PAT, not a size bit.
		}
		table = e & pteAddrMask
	}
	return Translation{GPA: table | gva&(PageSize-1), PageSize: PageSize, Writable: writable}, nil
}

// GuestView accesses one vCPU's virtual address space.
type GuestView struct {
	Mem    PhysMemory
	Paging PagingState
}

// Read copies len(buf) bytes from guest-virtual address gva, one
// contiguous run (Map) at a time.
func (v GuestView) Read(gva uint64, buf []byte) error {
	return v.access(gva, buf, false)
}

// Write copies buf to guest-virtual address gva; every page must be mapped
// writable.
func (v GuestView) Write(gva uint64, buf []byte) error {
	return v.access(gva, buf, true)
}

func (v GuestView) access(gva uint64, buf []byte, write bool) error {
	var w walker
	for len(buf) > 0 {
		host, err := v.mapRun(&w, gva, uint64(len(buf)), write)
		if err != nil {
			return err
		}
		if write {
			copy(host, buf)
		} else {
			copy(buf, host)
		}
		buf = buf[len(host):]
		gva += uint64(len(host))
	}
	return nil
}

// Map returns the host bytes behind the longest run of [gva, gva+n) that
// starts at gva and is contiguous in guest-physical memory — across as
// many pages as are mapped in a row, whatever their sizes — and lies in
// one piece of the domain's memory: at least one byte and at most n when
// n > 0. It fails (ErrFault) only if gva itself cannot be accessed
// (for writing, when write is set); a run stops before the first page
// that cannot. Walks: one per page of the guest's page size at most, and
// one entry read per 4 KiB page after the first of each 2 MiB (walker).
// The bytes alias guest memory, which the guest may change concurrently.
func (v GuestView) Map(gva, n uint64, write bool) ([]byte, error) {
	var w walker
	return v.mapRun(&w, gva, n, write)
}

func (v GuestView) mapRun(w *walker, gva, n uint64, write bool) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	t, err := w.translate(v.Mem, v.Paging, gva)
	if err != nil {
		return nil, err
	}
	if write && !v.writable(t) {
		return nil, fmt.Errorf("%w: %#x is read-only", ErrFault, gva)
	}
	gpa := t.GPA
	length := min(t.Remaining(), n)
	for length < n {
		t, err := w.translate(v.Mem, v.Paging, gva+length)
		if err != nil || t.GPA != gpa+length || write && !v.writable(t) {
			break
		}
		length += min(t.Remaining(), n-length)
	}
	if host, err := v.Mem.Slice(gpa, length); err == nil {
		return host, nil
	}
	// Some page of the run is not the domain's memory, or the run
	// crosses from one piece of it to another (RAM, grant frames): give
	// the longest prefix that slices, ending on a page boundary. A prefix
	// of a run that slices also slices, so a binary search over the page
	// ends finds it with O(log pages) calls.
	head := min(length, PageSize-gpa&(PageSize-1))                           // to the first 4 KiB boundary
	end := func(j uint64) uint64 { return min(head+(j-1)*PageSize, length) } // j ≥ 1
	m := 1 + (length-head+PageSize-1)/PageSize
	if _, err := v.Mem.Slice(gpa, end(1)); err != nil {
		return nil, fmt.Errorf("%w: %#x maps to %#x outside RAM", ErrFault, gva, gpa)
	}
	lo, hi := uint64(1), m // Slice(end(lo)) works; end(hi+1) is beyond the run
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if _, err := v.Mem.Slice(gpa, end(mid)); err == nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return v.Mem.Slice(gpa, end(lo))
}

// writable reports whether a write through translation t is allowed: the
// guest's write-protect rule (CR0.WP clear lets supervisor writes through
// read-only entries, and hypercalls act for the guest's kernel).
func (v GuestView) writable(t Translation) bool {
	return t.Writable || v.Paging.CR0&cr0WP == 0
}
