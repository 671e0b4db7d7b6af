package vmm

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/argovisor/argovisor/kvm"
)

// Guest-physical layout; docs/memory-layout.md is the reference.
const (
	bootInfoGPA  = 0x1000
	bootInfoSize = 0x2000
	gdtGPA       = 0x3000
	tssGPA       = 0x3800
	pml4GPA      = 0x4000
	pdptGPA      = 0x5000
	pdGPA        = 0x6000 // four page directories, 0x6000-0x9FFF
	ptLowGPA     = 0xA000 // 4 KiB page table for the first 2 MiB
	tssAddrKVM   = 0xFFFBD000

	// KernelBase is the lowest address an ELF segment may load at.
	KernelBase = 0x100000
	// StackSize is the stack each vCPU gets at the top of RAM.
	StackSize = 32 << 10
	// MinMemory and MaxMemory bound a domain's RAM.
	MinMemory = 2 << 20
	MaxMemory = 3 << 30
	// MaxVCPUs is the most vCPUs a domain may have (the firmware's per-CPU
	// table has this many entries).
	MaxVCPUs = 64

	bootInfoMagic   = 0x544F4F424F475241 // "ARGOBOOT"
	bootInfoVersion = 1
	paramsOffset    = 64
	// MaxParamsBytes is the room for key\0value\0 pairs plus the final \0.
	MaxParamsBytes = bootInfoSize - paramsOffset
)

// Port map (docs/memory-layout.md).
const (
	PortSerial    = 0x3F8
	PortExit      = 0xF4
	PortCrash     = 0xF5
	PortHypercall = 0xF6
	// VIRQVector is the interrupt vector of the domain's VIRQ.
	VIRQVector = 0x30
	// ABIVersion is reported in CPUID leaf 0x40000001 EDX.
	ABIVersion = 1
)

// Selectors in the GDT the VMM builds.
const (
	selCode = 0x08
	selData = 0x10
	selTSS  = 0x18
)

// bootInfo is what the VMM writes at bootInfoGPA.
type bootInfo struct {
	domid     uint16
	vcpus     uint32
	memSize   uint64
	heapStart uint64
	heapEnd   uint64
	restarts  uint32 // how many times the domain has been restarted
	params    []byte
}

// encodeParams turns params into sorted key\0value\0 pairs ended by \0.
func encodeParams(params map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b []byte
	for _, k := range keys {
		v := params[k]
		for _, s := range []string{k, v} {
			for i := 0; i < len(s); i++ {
				if s[i] == 0 {
					return nil, fmt.Errorf("param %q contains a NUL byte", k)
				}
			}
		}
		b = append(append(append(append(b, k...), 0), v...), 0)
	}
	b = append(b, 0)
	if len(b) > MaxParamsBytes {
		return nil, fmt.Errorf("params take %d bytes, more than the %d the boot info holds", len(b), MaxParamsBytes)
	}
	return b, nil
}

func writeBootInfo(mem PhysMemory, bi bootInfo) error {
	b, err := mem.Slice(bootInfoGPA, bootInfoSize)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	le.PutUint64(b[0:], bootInfoMagic)
	le.PutUint32(b[8:], bootInfoVersion)
	le.PutUint16(b[12:], bi.domid)
	le.PutUint32(b[16:], bi.vcpus)
	le.PutUint32(b[20:], VIRQVector)
	le.PutUint64(b[24:], bi.memSize)
	le.PutUint64(b[32:], bi.heapStart)
	le.PutUint64(b[40:], bi.heapEnd)
	le.PutUint16(b[48:], PortSerial)
	le.PutUint16(b[50:], PortExit)
	le.PutUint16(b[52:], PortCrash)
	le.PutUint16(b[54:], PortHypercall)
	le.PutUint32(b[56:], uint32(len(bi.params)))
	le.PutUint32(b[60:], bi.restarts)
	copy(b[paramsOffset:], bi.params)
	return nil
}

// writeTables builds the GDT, TSS and identity page tables (0-4 GiB, 2 MiB
// pages, with the first 2 MiB in 4 KiB pages and page 0 absent).
func writeTables(mem PhysMemory) error {
	gdt, err := mem.Slice(gdtGPA, 5*8)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	le.PutUint64(gdt[selCode:], 0x00AF9A000000FFFF) // 64-bit code, DPL 0
	le.PutUint64(gdt[selData:], 0x00CF92000000FFFF) // data, DPL 0
	// 64-bit TSS descriptor (busy, type 0xB), limit 103, base tssGPA.
	tss := uint64(103) | uint64(tssGPA&0xFFFFFF)<<16 | uint64(0x8B)<<40 | uint64(tssGPA>>24&0xFF)<<56
	le.PutUint64(gdt[selTSS:], tss)
	le.PutUint64(gdt[selTSS+8:], uint64(tssGPA)>>32)

	pml4, err := mem.Slice(pml4GPA, 0x7000)
	if err != nil {
		return err
	}
	clear(pml4)
	// User-accessible everywhere: guest programs run at CPL 3 (see
	// docs/memory-layout.md, "Guest privilege").
	const rwp = pteP | pteRW | pteUS
	le.PutUint64(pml4[0:], pdptGPA|rwp)
	pdpt := pml4[pdptGPA-pml4GPA:]
	for i := uint64(0); i < 4; i++ {
		le.PutUint64(pdpt[i*8:], (pdGPA+i*PageSize)|rwp)
		pd := pml4[pdGPA-pml4GPA+i*PageSize:]
		for j := uint64(0); j < 512; j++ {
			le.PutUint64(pd[j*8:], (i<<30|j<<21)|rwp|ptePS)
		}
	}
	// First 2 MiB through a page table so that page 0 can be absent.
	le.PutUint64(pml4[pdGPA-pml4GPA:], ptLowGPA|rwp)
	pt := pml4[ptLowGPA-pml4GPA:]
	for j := uint64(1); j < 512; j++ {
		le.PutUint64(pt[j*8:], j*PageSize|rwp)
	}
	return nil
}

// initialSregs returns the long-mode special registers every vCPU starts
// with.
func initialSregs(s *kvm.Sregs) {
	code := kvm.Segment{Base: 0, Limit: 0xFFFFFFFF, Selector: selCode, Typ: 0xB, Present: 1, S: 1, L: 1, G: 1}
	data := kvm.Segment{Base: 0, Limit: 0xFFFFFFFF, Selector: selData, Typ: 0x3, Present: 1, S: 1, DB: 1, G: 1}
	s.CS = code
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.TR = kvm.Segment{Base: tssGPA, Limit: 103, Selector: selTSS, Typ: 0xB, Present: 1}
	s.LDT = kvm.Segment{Unusable: 1, Typ: 0x2, Present: 1}
	s.GDT = kvm.Descriptor{Base: gdtGPA, Limit: 5*8 - 1}
	s.IDT = kvm.Descriptor{Base: 0, Limit: 0}
	s.CR0 = 0x80050033
	s.CR3 = pml4GPA
	s.CR4 = 0x6A0
	s.EFER = 0x500
}

// stackTop is vCPU i's initial RSP.
func stackTop(memSize uint64, i int) uint64 { return memSize - uint64(i)*StackSize }

// hypervisorCPUID returns the hypervisor leaves argovisor advertises:
// the signature, the ports, and the doorbell (leaf 0x40000002: its GPA in
// EAX/EBX and the DoorbellPresent/DoorbellPreferred flags in ECX).
func hypervisorCPUID(preferDoorbell bool) []kvm.CPUIDEntry {
	sig := []byte("argovisorKVM")
	le := binary.LittleEndian
	flags := uint32(DoorbellPresent)
	if preferDoorbell {
		flags |= DoorbellPreferred
	}
	return []kvm.CPUIDEntry{
		{Function: 0x40000000, Eax: 0x40000002, Ebx: le.Uint32(sig[0:]), Ecx: le.Uint32(sig[4:]), Edx: le.Uint32(sig[8:])},
		{Function: 0x40000001, Eax: PortHypercall, Ebx: PortExit, Ecx: VIRQVector, Edx: ABIVersion},
		{Function: 0x40000002, Eax: uint32(DoorbellGPA), Ebx: uint32(uint64(DoorbellGPA) >> 32), Ecx: flags},
	}
}

// guestCPUID is the host-supported table with KVM's own hypervisor leaves
// replaced by argovisor's and the hypervisor-present bit set.
func guestCPUID(supported []kvm.CPUIDEntry, preferDoorbell bool) []kvm.CPUIDEntry {
	out := make([]kvm.CPUIDEntry, 0, len(supported)+3)
	for _, e := range supported {
		if e.Function >= 0x40000000 && e.Function < 0x40000100 {
			continue
		}
		if e.Function == 1 {
			e.Ecx |= 1 << 31 // hypervisor present
		}
		out = append(out, e)
	}
	return append(out, hypervisorCPUID(preferDoorbell)...)
}
