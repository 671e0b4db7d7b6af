package argo

// HasRingPage reports whether any of frames [gfn, gfn+n) of domain id is
// a page of one of its registered rings. The VMM asks before a frame
// leaves a domain (decrease_reservation, a grant-table transfer): Argo
// writes into ring pages at any time, so they must stay. A registration
// takes its pages from the domain's memory and records them in one
// W(rings_L2) section, so once the VMM has made a frame unreachable
// through that memory, a check that finds no ring on it stays true.
func (a *Argo) HasRingPage(id DomainID, gfn, n uint64) bool {
	a.l1.RLock()
	defer a.l1.RUnlock()
	st := a.state[id]
	if st == nil {
		return false
	}
	st.ringsL2.RLock()
	defer st.ringsL2.RUnlock()
	for _, r := range st.rings {
		if r.hasPage(gfn, n) {
			return true
		}
	}
	return false
}

// hasPage reports whether one of the ring's pages is in [gfn, gfn+n).
func (r *ring) hasPage(gfn, n uint64) bool {
	r.l3.Lock()
	defer r.l3.Unlock()
	for _, g := range r.gfns {
		if g >= gfn && g-gfn < n {
			return true
		}
	}
	return false
}
