package vmm

import (
	"fmt"

	"github.com/argovisor/argovisor/gnttab"
)

// GrantTables is the VMM's grant-table state.
func (v *VMM) GrantTables() *gnttab.GrantTables { return v.gnttab }

// gnttabHypercall serves hypercall 20: grant_table_op(cmd, uop, count).
func (v *VMM) gnttabHypercall(h *Hypercall) int64 {
	a := &h.Args
	return v.gnttab.Op(caller{h}, a[0], a[1], a[2])
}

// grantWindows implements gnttab.Window over the domains' grant windows.
type grantWindows struct{ v *VMM }

func (w grantWindows) domain(id gnttab.DomainID) (*Domain, error) {
	d := w.v.Domain(uint16(id))
	if d == nil {
		return nil, fmt.Errorf("grant window: no domain %d", id)
	}
	return d, nil
}

func (w grantWindows) Map(grantee gnttab.DomainID, gpa uint64, granter gnttab.DomainID, gfn uint64, ro bool) error {
	gd, err := w.domain(grantee)
	if err != nil {
		return err
	}
	src, err := w.domain(granter)
	if err != nil {
		return err
	}
	if gfn >= src.ram.Size()/PageSize {
		return fmt.Errorf("grant window: frame %#x outside domain %d's RAM", gfn, granter)
	}
	return gd.window.mapFrame(gpa, src.ram.FD(), gfn, ro)
}

func (w grantWindows) Unmap(grantee gnttab.DomainID, gpas []uint64) error {
	gd, err := w.domain(grantee)
	if err != nil {
		return err
	}
	return gd.window.replace(gpas, false)
}

func (w grantWindows) Revoke(grantee gnttab.DomainID, gpas []uint64) error {
	gd, err := w.domain(grantee)
	if err != nil {
		return err
	}
	return gd.window.replace(gpas, true)
}

func (w grantWindows) Valid(_ gnttab.DomainID, gpa uint64, ro bool) bool { return windowValid(gpa, ro) }

// gnttabSignal tells a mapper its mappings were revoked (the domain's VIRQ;
// the guest asks query_revoked which ones).
func (v *VMM) gnttabSignal(id gnttab.DomainID) {
	if d := v.Domain(uint16(id)); d != nil {
		d.InjectVIRQ()
	}
}

func (g GnttabConfig) gnttab() gnttab.Config {
	c := gnttab.Config{MaxFrames: g.maxFrames(), MaxMaptrackFrames: g.MaxMaptrackFrames}
	if g.MapFrom != nil {
		c.MapFrom = make([]gnttab.DomainID, len(g.MapFrom))
		for i, id := range g.MapFrom {
			c.MapFrom[i] = gnttab.DomainID(id)
		}
	}
	return c
}

// GnttabStats returns the domain's grant-table counters.
func (d *Domain) GnttabStats() gnttab.Stats {
	s, _ := d.vmm.gnttab.Stats(gnttab.DomainID(d.id))
	return s
}

// GrantWindowStats returns the domain's grant-window budget counters.
func (d *Domain) GrantWindowStats() WindowStats {
	d.releaseMu.RLock() // the instance may be swapped by a restart
	defer d.releaseMu.RUnlock()
	return d.window.stats()
}
