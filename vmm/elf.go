package vmm

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"sort"
)

// ErrBadKernel marks every problem with a kernel file: unreadable, not an
// x86-64 ELF executable, or segments that do not fit the domain's RAM.
var ErrBadKernel = errors.New("invalid kernel")

// KernelImage is a loaded kernel: its entry point, the first free byte
// after its highest segment, and its symbols (for crash reports).
type KernelImage struct {
	Entry uint64
	End   uint64
	// Symbols are the kernel's function and object symbols (and labels
	// such as ud2_here), sorted by address; empty for a stripped kernel.
	Symbols []Symbol
}

// Symbol is one entry of the kernel's symbol table.
type Symbol struct {
	Name       string
	Addr, Size uint64
}

// Symbolize turns an address into "symbol+0xoffset" using the nearest
// symbol at or below it: a label (size zero, such as an assembler label
// inside a function) at the nearest address, else a sized symbol that
// covers the address. It returns "" when no symbol fits.
func (k *KernelImage) Symbolize(addr uint64) string {
	i := sort.Search(len(k.Symbols), func(i int) bool { return k.Symbols[i].Addr > addr }) - 1
	if i < 0 {
		return ""
	}
	top := k.Symbols[i].Addr
	for ; i >= 0; i-- {
		s := k.Symbols[i]
		if s.Size > 0 && addr < s.Addr+s.Size || s.Size == 0 && s.Addr == top {
			return fmt.Sprintf("%s+%#x", s.Name, addr-s.Addr)
		}
	}
	return ""
}

// symbols reads the symbol table; a kernel without one has none.
func symbols(f *elf.File) []Symbol {
	syms, err := f.Symbols()
	if err != nil {
		return nil
	}
	var out []Symbol
	for _, s := range syms {
		t := elf.ST_TYPE(s.Info)
		if s.Name == "" || s.Section == elf.SHN_UNDEF || s.Section >= elf.SHN_LORESERVE ||
			(t != elf.STT_FUNC && t != elf.STT_NOTYPE && t != elf.STT_OBJECT) {
			continue
		}
		out = append(out, Symbol{Name: s.Name, Addr: s.Value, Size: s.Size})
	}
	// By address; at one address, labels (size 0) before sized symbols so
	// that the sized one, found first by the search from above, wins.
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Addr != out[j].Addr {
			return out[i].Addr < out[j].Addr
		}
		return out[i].Size < out[j].Size
	})
	return out
}

// LoadELF copies the PT_LOAD segments of an ELF64 x86-64 executable into
// mem. Every segment must lie inside [lo, hi) by physical address, the file
// part must be inside the file, and the entry point must be inside an
// executable segment. Errors wrap ErrBadKernel.
func LoadELF(r io.ReaderAt, mem PhysMemory, lo, hi uint64) (KernelImage, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return KernelImage{}, fmt.Errorf("%w: not an ELF file: %v", ErrBadKernel, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return KernelImage{}, fmt.Errorf("%w: %v %v, want ELFCLASS64 EM_X86_64", ErrBadKernel, f.Class, f.Machine)
	}
	if f.Type != elf.ET_EXEC {
		return KernelImage{}, fmt.Errorf("%w: ELF type %v, want ET_EXEC (a static, non-PIE kernel)", ErrBadKernel, f.Type)
	}
	var img KernelImage
	entryOK := false
	loads := 0
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		loads++
		end := p.Paddr + p.Memsz
		if end < p.Paddr || p.Paddr < lo || end > hi {
			return KernelImage{}, fmt.Errorf("%w: segment %d [%#x, %#x) is outside guest RAM available for the kernel [%#x, %#x)",
				ErrBadKernel, i, p.Paddr, end, lo, hi)
		}
		if p.Filesz > p.Memsz {
			return KernelImage{}, fmt.Errorf("%w: segment %d file size %#x exceeds memory size %#x", ErrBadKernel, i, p.Filesz, p.Memsz)
		}
		dst, err := mem.Slice(p.Paddr, p.Memsz)
		if err != nil {
			return KernelImage{}, fmt.Errorf("%w: segment %d [%#x, %#x) is outside guest RAM", ErrBadKernel, i, p.Paddr, end)
		}
		n, err := p.ReadAt(dst[:p.Filesz], 0)
		if uint64(n) != p.Filesz {
			return KernelImage{}, fmt.Errorf("%w: segment %d: reading %d bytes at file offset %#x: %v", ErrBadKernel, i, p.Filesz, p.Off, err)
		}
		clear(dst[p.Filesz:])
		img.End = max(img.End, end)
		if p.Flags&elf.PF_X != 0 && f.Entry >= p.Vaddr && f.Entry < p.Vaddr+p.Memsz {
			// Identity mapped: the entry is a physical address too.
			img.Entry = f.Entry - p.Vaddr + p.Paddr
			entryOK = true
		}
	}
	if loads == 0 {
		return KernelImage{}, fmt.Errorf("%w: no loadable segments", ErrBadKernel)
	}
	if !entryOK {
		return KernelImage{}, fmt.Errorf("%w: entry point %#x is not inside an executable segment", ErrBadKernel, f.Entry)
	}
	img.Symbols = symbols(f)
	return img, nil
}
