package vmm

import (
	"slices"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/hcall"
)

// ArgoPolicy is a domain's [domain.argo] configuration.
type ArgoPolicy struct {
	// Disabled turns Argo off for the domain (config: enabled = false).
	Disabled bool
	// Wildcard allows registering rings any domain may send to.
	Wildcard bool
	// SendTo, if non-nil, lists the only domain ids the domain may send
	// to (config: send_to, by name).
	SendTo []uint16
}

func (p ArgoPolicy) argo() argo.Policy {
	pol := argo.Policy{Enabled: !p.Disabled, Wildcard: p.Wildcard}
	if p.SendTo != nil {
		pol.SendTo = make([]argo.DomainID, len(p.SendTo))
		for i, id := range p.SendTo {
			pol.SendTo[i] = argo.DomainID(id)
		}
	}
	return pol
}

// argoPolicy is the domain's Argo policy with the name and label Argo
// vouches for (domain_info); a restart adds the domain with the same.
func (c DomainConfig) argoPolicy() argo.Policy {
	pol := c.Argo.argo()
	if c.Stream.Path != "" && pol.SendTo != nil && !slices.Contains(pol.SendTo, argo.HostDomain) {
		// A stream socket's domain talks to the host's bridge.
		pol.SendTo = append(pol.SendTo, argo.HostDomain)
	}
	pol.Name, pol.Label = c.Name, c.Label
	return pol
}

// Argo is the VMM's Argo instance (for the host endpoint and statistics).
func (v *VMM) Argo() *argo.Argo { return v.argo }

// caller adapts a hypercall to hcall.Caller, the context argo and gnttab
// take: the calling domain and its address space as seen by the calling
// vCPU. It is one pointer wide, so converting it to the interface does not
// allocate.
type caller struct{ h *Hypercall }

func (c caller) Domain() hcall.DomainID { return hcall.DomainID(c.h.Domain.id) }

func (c caller) ReadGuest(addr uint64, p []byte) error { return c.h.Guest().Read(addr, p) }

func (c caller) WriteGuest(addr uint64, p []byte) error { return c.h.Guest().Write(addr, p) }

// MapGuest implements hcall.Mapper: the host bytes of the longest
// contiguous run at addr (GuestView.Map).
func (c caller) MapGuest(addr, n uint64, write bool) ([]byte, error) {
	return c.h.Guest().Map(addr, n, write)
}

// VCPU implements hcall.Origin: the index of the calling vCPU.
func (c caller) VCPU() uint32 { return uint32(c.h.Index) }

// AddressSpace implements hcall.Origin: CR3 at the exit, from the sync
// registers.
func (c caller) AddressSpace() uint64 { return c.h.Sregs().CR3 }

// argoHypercall serves hypercall 39: argo_op(cmd, arg1, arg2, arg3, arg4).
func (v *VMM) argoHypercall(h *Hypercall) int64 {
	a := &h.Args
	return v.argo.Op(caller{h}, a[0], a[1], a[2], a[3], a[4])
}

// argoSignal raises the VIRQ of domain id (Argo calls it with no ring
// lock held).
func (v *VMM) argoSignal(id argo.DomainID) {
	if d := v.Domain(uint16(id)); d != nil {
		d.InjectVIRQ()
	}
}

// ArgoStats returns the domain's Argo counters.
func (d *Domain) ArgoStats() argo.Stats {
	s, _ := d.vmm.argo.Stats(argo.DomainID(d.id))
	return s
}
