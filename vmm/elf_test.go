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
	return b.Bytes()
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
