package vmm

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"testing"
)

type testSeg struct {
	typ          elf.ProgType
	flags        elf.ProgFlag
	paddr, memsz uint64
	data         []byte
	off          uint64 // 0: placed after the headers
}

type testELF struct {
	class   elf.Class
	machine elf.Machine
	typ     elf.Type
	entry   uint64
	segs    []testSeg
	syms    []testSym // if any: a .symtab, .strtab and section headers
}

type testSym struct {
	name       string
	addr, size uint64
	typ        elf.SymType
}

// build writes a minimal ELF64 file: header, program headers, segment data.
func (e testELF) build() []byte {
	le := binary.LittleEndian
	const ehsize, phsize = 64, 56
	var b bytes.Buffer
	hdr := make([]byte, ehsize)
	copy(hdr, "\x7fELF")
	hdr[4] = byte(e.class)
	hdr[5] = byte(elf.ELFDATA2LSB)
	hdr[6] = byte(elf.EV_CURRENT)
	le.PutUint16(hdr[16:], uint16(e.typ))
	le.PutUint16(hdr[18:], uint16(e.machine))
	le.PutUint32(hdr[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(hdr[24:], e.entry)
	le.PutUint64(hdr[32:], ehsize) // phoff
	le.PutUint16(hdr[52:], ehsize)
	le.PutUint16(hdr[54:], phsize)
	le.PutUint16(hdr[56:], uint16(len(e.segs)))
	b.Write(hdr)
	dataOff := uint64(ehsize + phsize*len(e.segs))
	var data bytes.Buffer
	for _, s := range e.segs {
		ph := make([]byte, phsize)
		off := s.off
		if off == 0 {
			off = dataOff + uint64(data.Len())
			data.Write(s.data)
		}
		le.PutUint32(ph[0:], uint32(s.typ))
		le.PutUint32(ph[4:], uint32(s.flags))
		le.PutUint64(ph[8:], off)
		le.PutUint64(ph[16:], s.paddr) // vaddr == paddr
		le.PutUint64(ph[24:], s.paddr)
		le.PutUint64(ph[32:], uint64(len(s.data)))
		le.PutUint64(ph[40:], s.memsz)
		le.PutUint64(ph[48:], PageSize)
		b.Write(ph)
	}
	b.Write(data.Bytes())
	if len(e.syms) > 0 {
		appendSymtab(&b, e.syms)
	}
	return b.Bytes()
}

// appendSymtab adds a symbol table, its string table, the section name
// table and the section headers (null, .text, .symtab, .strtab,
// .shstrtab), and points the ELF header at them.
func appendSymtab(b *bytes.Buffer, syms []testSym) {
	le := binary.LittleEndian
	strtab := []byte{0}
	symtab := make([]byte, 24) // the null symbol
	for _, s := range syms {
		ent := make([]byte, 24)
		le.PutUint32(ent[0:], uint32(len(strtab)))
		ent[4] = byte(elf.STB_GLOBAL)<<4 | byte(s.typ)
		le.PutUint16(ent[6:], 1) // .text
		le.PutUint64(ent[8:], s.addr)
		le.PutUint64(ent[16:], s.size)
		symtab = append(symtab, ent...)
		strtab = append(append(strtab, s.name...), 0)
	}
	shstr := []byte("\x00.text\x00.symtab\x00.strtab\x00.shstrtab\x00")
	symOff := uint64(b.Len())
	b.Write(symtab)
	strOff := uint64(b.Len())
	b.Write(strtab)
	shstrOff := uint64(b.Len())
	b.Write(shstr)
	for b.Len()%8 != 0 {
		b.WriteByte(0)
	}
	shoff := uint64(b.Len())
	sh := func(name uint32, typ elf.SectionType, flags elf.SectionFlag, addr, off, size uint64, link, info uint32, entsize uint64) {
		h := make([]byte, 64)
		le.PutUint32(h[0:], name)
		le.PutUint32(h[4:], uint32(typ))
		le.PutUint64(h[8:], uint64(flags))
		le.PutUint64(h[16:], addr)
		le.PutUint64(h[24:], off)
		le.PutUint64(h[32:], size)
		le.PutUint32(h[40:], link)
		le.PutUint32(h[44:], info)
		le.PutUint64(h[48:], 1)
		le.PutUint64(h[56:], entsize)
		b.Write(h)
	}
	sh(0, elf.SHT_NULL, 0, 0, 0, 0, 0, 0, 0)
	sh(1, elf.SHT_NOBITS, elf.SHF_ALLOC|elf.SHF_EXECINSTR, KernelBase, 0, 0x1000, 0, 0, 0)
	sh(7, elf.SHT_SYMTAB, 0, 0, symOff, uint64(len(symtab)), 3, 1, 24)
	sh(15, elf.SHT_STRTAB, 0, 0, strOff, uint64(len(strtab)), 0, 0, 0)
	sh(23, elf.SHT_STRTAB, 0, 0, shstrOff, uint64(len(shstr)), 0, 0, 0)
	out := b.Bytes()
	le.PutUint64(out[40:], shoff) // e_shoff
	le.PutUint16(out[58:], 64)    // e_shentsize
	le.PutUint16(out[60:], 5)     // e_shnum
	le.PutUint16(out[62:], 4)     // e_shstrndx
}

func TestLoadELFSymbols(t *testing.T) {
	e := goodELF()
	e.syms = []testSym{
		{"_start", KernelBase, 4, elf.STT_FUNC},
		{"guest_main", KernelBase + 4, 8, elf.STT_FUNC},
		{"ud2_here", KernelBase + 8, 0, elf.STT_NOTYPE}, // a label inside guest_main
		{"table", KernelBase + 0x1000, 0x10, elf.STT_OBJECT},
		{"file.c", 0, 0, elf.STT_FILE}, // not an address
	}
	img, err := LoadELF(bytes.NewReader(e.build()), make(SliceMemory, 4<<20), KernelBase, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Symbols) != 4 {
		t.Fatalf("symbols = %+v, want the 4 address symbols", img.Symbols)
	}
	for addr, want := range map[uint64]string{
		KernelBase:          "_start+0x0",
		KernelBase + 3:      "_start+0x3",
		KernelBase + 6:      "guest_main+0x2",
		KernelBase + 8:      "ud2_here+0x0", // the nearest symbol: the label inside guest_main
		KernelBase + 0xB:    "ud2_here+0x3",
		KernelBase + 0xC:    "ud2_here+0x4", // past guest_main: the nearest label
		KernelBase + 0x1008: "table+0x8",
		KernelBase + 0x1010: "", // past the object, no label at its address
		KernelBase - 1:      "",
	} {
		if got := img.Symbolize(addr); got != want {
			t.Errorf("Symbolize(%#x) = %q, want %q", addr, got, want)
		}
	}
	// A stripped kernel loads and symbolizes nothing.
	img, err = LoadELF(bytes.NewReader(goodELF().build()), make(SliceMemory, 4<<20), KernelBase, 4<<20)
	if err != nil || len(img.Symbols) != 0 || img.Symbolize(KernelBase) != "" {
		t.Errorf("stripped: %+v, %v", img, err)
	}
	f := Fault{Vector: 6, RIP: KernelBase + 8, Symbol: "guest_main+0x4"}
	if got := f.String(); got != "#UD (vector 6) at rip=0x100008 <guest_main+0x4> on vcpu 0 error=0x0" {
		t.Errorf("Fault.String() = %q", got)
	}
}

func goodELF() testELF {
	return testELF{
		class: elf.ELFCLASS64, machine: elf.EM_X86_64, typ: elf.ET_EXEC, entry: KernelBase + 4,
		segs: []testSeg{
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X, paddr: KernelBase, memsz: 16, data: []byte("codecodecodecode")},
			{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_W, paddr: KernelBase + 0x1000, memsz: 0x2000, data: []byte("data")},
			{typ: elf.PT_NOTE, paddr: 0, memsz: 4, data: []byte("note")},
		},
	}
}

func TestLoadELF(t *testing.T) {
	mem := make(SliceMemory, 4<<20)
	// Dirty the bss area to check it is zeroed.
	for i := range mem[KernelBase+0x1000 : KernelBase+0x3000] {
		mem[KernelBase+0x1000+i] = 0xAA
	}
	img, err := LoadELF(bytes.NewReader(goodELF().build()), mem, KernelBase, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	if img.Entry != KernelBase+4 || img.End != KernelBase+0x3000 {
		t.Errorf("image = %+v", img)
	}
	if string(mem[KernelBase:KernelBase+16]) != "codecodecodecode" || string(mem[KernelBase+0x1000:KernelBase+0x1004]) != "data" {
		t.Error("segment contents not copied")
	}
	for i := KernelBase + 0x1004; i < KernelBase+0x3000; i++ {
		if mem[i] != 0 {
			t.Fatalf("bss byte %#x = %#x, want 0", i, mem[i])
		}
	}
}

func TestLoadELFMalformed(t *testing.T) {
	const ram = 4 << 20
	mutate := func(f func(*testELF)) []byte {
		e := goodELF()
		f(&e)
		return e.build()
	}
	good := goodELF().build()
	for _, tc := range []struct {
		name string
		file []byte
	}{
		{"empty file", nil},
		{"not ELF", []byte("#!/bin/sh\necho hello\n")},
		{"truncated header", good[:40]},
		{"32-bit", mutate(func(e *testELF) { e.class = elf.ELFCLASS32 })},
		{"wrong machine", mutate(func(e *testELF) { e.machine = elf.EM_AARCH64 })},
		{"shared object", mutate(func(e *testELF) { e.typ = elf.ET_DYN })},
		{"segment below kernel base", mutate(func(e *testELF) { e.segs[0].paddr = 0x1000; e.entry = 0x1004 })},
		{"segment beyond RAM", mutate(func(e *testELF) { e.segs[1].memsz = ram })},
		{"segment address overflow", mutate(func(e *testELF) { e.segs[1].paddr = ^uint64(0) - 8 })},
		{"file size above memory size", mutate(func(e *testELF) { e.segs[1].memsz = 2 })},
		{"data past end of file", mutate(func(e *testELF) { e.segs[1].off = 1 << 20 })},
		{"entry outside executable segment", mutate(func(e *testELF) { e.entry = KernelBase + 0x1000 })},
		{"no loadable segment", mutate(func(e *testELF) { e.segs = e.segs[2:] })},
	} {
		mem := make(SliceMemory, ram)
		_, err := LoadELF(bytes.NewReader(tc.file), mem, KernelBase, ram)
		if !errors.Is(err, ErrBadKernel) {
			t.Errorf("%s: err = %v, want ErrBadKernel", tc.name, err)
		}
	}
}
