package vmm

import "fmt"

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
	if ps.CR0&cr0PG == 0 {
		return Translation{GPA: gva, PageSize: PageSize, Writable: true}, nil
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
		e, err := readU64(mem, table+idx*8)
		if err != nil {
			return Translation{}, fmt.Errorf("%w: level-%d table at %#x is outside RAM", ErrFault, level, table)
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

// Read copies len(buf) bytes from guest-virtual address gva, page by page.
func (v GuestView) Read(gva uint64, buf []byte) error {
	return v.access(gva, buf, false)
}

// Write copies buf to guest-virtual address gva; every page must be mapped
// writable.
func (v GuestView) Write(gva uint64, buf []byte) error {
	return v.access(gva, buf, true)
}

func (v GuestView) access(gva uint64, buf []byte, write bool) error {
	for len(buf) > 0 {
		t, err := Translate(v.Mem, v.Paging, gva)
		if err != nil {
			return err
		}
		if write && !t.Writable && v.Paging.CR0&cr0WP != 0 {
			return fmt.Errorf("%w: %#x is read-only", ErrFault, gva)
		}
		n := min(t.Remaining(), uint64(len(buf)))
		host, err := v.Mem.Slice(t.GPA, n)
		if err != nil {
			return fmt.Errorf("%w: %#x maps to %#x outside RAM", ErrFault, gva, t.GPA)
		}
		if write {
			copy(host, buf[:n])
		} else {
			copy(buf[:n], host)
		}
		buf = buf[n:]
		gva += n
	}
	return nil
}
