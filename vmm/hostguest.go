package vmm

import (
	"fmt"

	"github.com/argovisor/argovisor/hcall"
	"github.com/argovisor/argovisor/kvm"
	"github.com/argovisor/argovisor/memop"
)

// HostGuest is a domain's memory without a VM: the memfd-backed RAM, the
// identity page tables and the physmap a domain boots with, and a Caller
// that reaches that memory exactly as a vCPU's hypercall does — the same
// page walk (GuestView, with the boot paging state), the same bounds and
// physmap checks (physMem). It runs no guest and needs no /dev/kvm, so the
// hypercall copy paths can be measured and tested on any host, the tests'
// VM included (bench's argo.copy figures).
type HostGuest struct {
	id  uint16
	ram *RAM
	p2m *memop.Domain
	mem physMem
}

// NewHostGuest makes size bytes of guest RAM (a multiple of 4 KiB, at
// least MinMemory) for domain id, all of it populated, with the page
// tables the VMM writes at boot: 0–4 GiB identity mapped, 2 MiB pages
// except for the first 2 MiB (4 KiB pages, page 0 absent).
func NewHostGuest(id uint16, size uint64) (*HostGuest, error) {
	if size < MinMemory || size > MaxMemory || size%PageSize != 0 {
		return nil, fmt.Errorf("host guest memory %#x: want a multiple of 4 KiB in [%#x, %#x]", size, MinMemory, MaxMemory)
	}
	ram, err := NewRAM(fmt.Sprintf("hostguest%d", id), size)
	if err != nil {
		return nil, err
	}
	if err := writeTables(ram); err != nil {
		ram.Close()
		return nil, err
	}
	p2m, err := memop.New(nil, nil).AddDomain(memop.DomainID(id), memop.Config{Pages: size / PageSize})
	if err != nil {
		ram.Close()
		return nil, err
	}
	return &HostGuest{id: id, ram: ram, p2m: p2m, mem: physMem{ram: ram, p2m: p2m}}, nil
}

// Memory is the guest-physical memory as hypercalls, Argo and the grant
// tables reach it (what the VMM gives argo.AddDomain).
func (g *HostGuest) Memory() hcall.Memory { return g.mem }

// Bytes is the whole RAM as the VMM maps it (GPA 0 at index 0).
func (g *HostGuest) Bytes() []byte { return g.ram.Bytes() }

// Caller is the context of a hypercall from vCPU 0 of this guest, in the
// boot paging state: guest-virtual addresses go through the page walk.
func (g *HostGuest) Caller() hcall.Caller {
	var s kvm.Sregs
	initialSregs(&s)
	return &hostGuestCaller{id: hcall.DomainID(g.id), view: GuestView{Mem: g.mem, Paging: PagingState{CR0: s.CR0, CR3: s.CR3, CR4: s.CR4, EFER: s.EFER}}}
}

// Close frees the RAM.
func (g *HostGuest) Close() error { return g.ram.Close() }

// hostGuestCaller is HostGuest's Caller: the same GuestView accessors as a
// vCPU's hypercall (caller in argo.go).
type hostGuestCaller struct {
	id   hcall.DomainID
	view GuestView
}

func (c *hostGuestCaller) Domain() hcall.DomainID { return c.id }

func (c *hostGuestCaller) ReadGuest(addr uint64, p []byte) error { return c.view.Read(addr, p) }

func (c *hostGuestCaller) WriteGuest(addr uint64, p []byte) error { return c.view.Write(addr, p) }

func (c *hostGuestCaller) MapGuest(addr, n uint64, write bool) ([]byte, error) {
	return c.view.Map(addr, n, write)
}
