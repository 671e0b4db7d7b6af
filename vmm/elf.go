package vmm

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
)

// ErrBadKernel marks every problem with a kernel file: unreadable, not an
// x86-64 ELF executable, or segments that do not fit the domain's RAM.
var ErrBadKernel = errors.New("invalid kernel")

// KernelImage is a loaded kernel: its entry point and the first free byte
// after its highest segment.
type KernelImage struct {
	Entry uint64
	End   uint64
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
	return img, nil
}
