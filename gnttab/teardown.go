package gnttab

import "slices"

// DomainDied releases everything a stopping domain holds and everything
// others hold of it. As a grantee (Xen's gnttab_release_mappings) its
// mappings are unmapped with one Window.Unmap, their pins dropped and the
// granters' GTF_writing/GTF_reading cleared when pins reach 0, so the
// granters can reuse those entries. As a granter — better than Xen, where
// the domain would linger as a zombie while mapped — every mapping of its
// pages in other domains is revoked: Window.Revoke puts a dead page at the
// mapper's GPA, the pins are dropped, the mapper's maptrack entries are
// marked revoked (they stay allocated until the mapper unmaps them; see
// query_revoked), and each such mapper is signalled once, after the locks
// are dropped. From then on the domain's table memory is never touched and
// operations naming the domain get GNTST_bad_domain (its own calls get
// -ESRCH). DomainDied is idempotent.
func (g *GrantTables) DomainDied(id DomainID) {
	var sig signals
	g.l1.Lock()
	g.diedLocked(id, &sig)
	g.l1.Unlock()
	g.raise(&sig)
}

// RemoveDomain runs DomainDied and forgets the domain: Stats no longer
// knows it and its id may be added again.
func (g *GrantTables) RemoveDomain(id DomainID) {
	var sig signals
	g.l1.Lock()
	g.diedLocked(id, &sig)
	delete(g.known, id)
	g.l1.Unlock()
	g.raise(&sig)
}

// Revoke revokes every mapping mapper holds of granter's grants, as if the
// granter had died but only for this pair: the mapper's GPAs get the dead
// page, its handles become revoked (reported by query_revoked), the pins
// are dropped and the granter's entries' status bits cleared, and the
// mapper is signalled. Later maps are not prevented (that is what
// Config.MapFrom is for). Nothing happens if either domain is not alive.
func (g *GrantTables) Revoke(granter, mapper DomainID) {
	var sig signals
	g.l1.Lock()
	rd, m := g.alive[granter], g.alive[mapper]
	if rd != nil && m != nil {
		g.revokeLocked(rd, m, &sig)
	}
	g.l1.Unlock()
	g.raise(&sig)
}

// diedLocked does the work of DomainDied. Every lower lock is uncontended
// under W(l1); they are still taken so that the checkers see one
// discipline everywhere (maptrack before table).
// Preconditions: W(l1).
// +checklocks:g.l1
func (g *GrantTables) diedLocked(id DomainID, sig *signals) {
	g.l1.AssertLocked()
	d := g.alive[id]
	if d == nil {
		return
	}
	// The table belongs to the dead guest: from now on it is not touched
	// (releasing pins of d's grants below skips the status bits).
	d.tableMu.Lock()
	d.table = nil
	d.tableMu.Unlock()

	// 1. As a grantee: release every mapping, live or revoked.
	d.maptrackMu.Lock()
	var gpas []uint64
	for h := range d.maptrack {
		if d.maptrack[h].state != mapFree {
			gpas = append(gpas, d.maptrack[h].gpa)
		}
	}
	if len(gpas) > 0 {
		_ = g.w.Unmap(id, gpas) // the domain is gone: nothing to do on failure
	}
	for h := range d.maptrack {
		g.releaseLocked(d, uint32(h))
	}
	d.maptrack, d.freeHandles = nil, nil
	d.maptrackMu.Unlock()

	// 2. As a granter: revoke the mappings others hold of its pages.
	ids := make([]DomainID, 0, len(g.alive))
	for mid := range g.alive {
		if mid != id {
			ids = append(ids, mid)
		}
	}
	slices.Sort(ids)
	for _, mid := range ids {
		g.revokeLocked(d, g.alive[mid], sig)
	}

	d.tableMu.Lock()
	clear(d.active) // already empty: every pin was a mapping, and copies cannot run under W(l1)
	clear(d.activeFrames)
	d.tableMu.Unlock()
	delete(g.alive, id)
}

// revokeLocked revokes all of m's live mappings of rd's grants and adds m
// to sig if there were any. If Window.Revoke fails the old pages may stay
// visible at those GPAs; that is still memory-safe (the mapping keeps the
// granter's memory alive) and the next map or unmap there replaces it.
// Preconditions: W(l1).
// +checklocks:g.l1
func (g *GrantTables) revokeLocked(rd, m *domain, sig *signals) {
	g.l1.AssertLocked()
	m.maptrackMu.Lock()
	defer m.maptrackMu.Unlock()
	hs := m.byGranter[rd.id]
	if len(hs) == 0 {
		return
	}
	handles := make([]uint32, 0, len(hs))
	for h := range hs {
		handles = append(handles, h)
	}
	slices.Sort(handles)
	gpas := make([]uint64, len(handles))
	for i, h := range handles {
		gpas[i] = m.maptrack[h].gpa
	}
	_ = g.w.Revoke(m.id, gpas)
	rd.tableMu.Lock()
	for _, h := range handles {
		e := &m.maptrack[h]
		rd.releaseLocked(e.ref, e.ro)
		e.state = mapRevoked
		m.unreported[h] = struct{}{}
	}
	rd.tableMu.Unlock()
	delete(m.byGranter, rd.id)
	m.stats.revoked.Add(uint64(len(handles)))
	m.stats.mapped.Add(-int64(len(handles)))
	sig.add(m.id)
}
