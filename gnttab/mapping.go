package gnttab

import "errors"

// mapOp is one decoded gnttab_map_grant_ref.
type mapOp struct {
	hostAddr uint64
	flags    uint32
	ref      uint32
	dom      DomainID
}

// mapGrantRefs is GNTTABOP_map_grant_ref over count elements at uop. Each
// element is read, performed and written back in turn; a fault stops the
// batch with -EFAULT. Better than Xen: if the write-back of a successful
// element faults, that mapping is undone, since the guest never learnt its
// handle.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) mapGrantRefs(c Caller, me *domain, uop, count uint64) int64 {
	var b [sizeofMap]byte
	for i := range count {
		addr := uop + i*sizeofMap
		if c.ReadGuest(addr, b[:]) != nil {
			return -EFAULT
		}
		op := mapOp{hostAddr: le.Uint64(b[0:]), flags: le.Uint32(b[8:]), ref: le.Uint32(b[12:]), dom: DomainID(le.Uint16(b[16:]))}
		st, handle := g.mapOne(me, op)
		le.PutUint16(b[18:], status(st))
		if st == GNTSTOkay {
			le.PutUint32(b[20:], handle)
			le.PutUint64(b[24:], 0) // no device (bus) address: HVM host maps only
		} else {
			me.stats.failStatus(st, 1)
		}
		if c.WriteGuest(addr, b[:]) != nil {
			if st == GNTSTOkay {
				g.undoMap(me, handle, op.hostAddr)
			}
			return -EFAULT
		}
	}
	return 0
}

// mapOne maps one grant for me and returns the status and the handle.
// The order of the checks is Xen's map_grant_ref (reference §1.6); the
// grant window checks come where Xen creates the p2m entry.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) mapOne(me *domain, op mapOp) (int16, uint32) {
	g.l1.AssertRLocked()
	if op.flags&(GNTMAPDeviceMap|GNTMAPHostMap) == 0 {
		return GNTSTBadGntref, 0
	}
	if op.flags&(GNTMAPDeviceMap|GNTMAPApplicationMap|GNTMAPContainsPTE) != 0 {
		return GNTSTGeneralError, 0 // HVM: host maps only
	}
	rd := g.lookup(me, op.dom)
	if rd == nil {
		return GNTSTBadDomain, 0
	}
	if !me.mayUse(rd.id) {
		return GNTSTPermissionDenied, 0
	}
	ro := op.flags&GNTMAPReadonly != 0

	me.maptrackMu.Lock()
	defer me.maptrackMu.Unlock()
	handle, ok := me.allocHandleLocked()
	if !ok {
		return GNTSTNoSpace, 0
	}
	st, gfn, _, cache := rd.pin(op.ref, me.id, ro, true)
	if st != GNTSTOkay {
		me.freeHandleLocked(handle)
		return st, 0
	}
	_, taken := me.byGPA[op.hostAddr]
	st = GNTSTGeneralError
	switch {
	case cache != 0: // HVM mappings take no cache attributes
	case !g.w.Valid(me.id, op.hostAddr, ro): // outside the grant window, or the wrong half
	case taken: // already holds a mapping (live or revoked) of ours
	default:
		err := g.w.Map(me.id, op.hostAddr, rd.id, gfn, ro)
		if err == nil {
			me.recordLocked(handle, mapEntry{state: mapLive, ro: ro, ref: op.ref, granter: rd.id, gpa: op.hostAddr})
			me.stats.maps.Add(1)
			return GNTSTOkay, handle
		}
		if errors.Is(err, ErrNoSpace) {
			// The grantee's share of the host's mappings is spent
			// (Xen: no room in the IOMMU for the mapping).
			st = GNTSTNoDeviceSpace
		}
	}
	rd.unpin(op.ref, ro)
	me.freeHandleLocked(handle)
	return st, 0
}

// allocHandleLocked takes a free maptrack handle, growing the maptrack by
// one frame's worth of handles when none is free.
// Preconditions: d.maptrackMu.
// +checklocks:d.maptrackMu
func (d *domain) allocHandleLocked() (uint32, bool) {
	d.maptrackMu.AssertLocked()
	if len(d.freeHandles) == 0 {
		n := uint32(len(d.maptrack))
		if n >= d.maxHandle {
			return 0, false
		}
		d.maptrack = append(d.maptrack, make([]mapEntry, HandlesPerFrame)...)
		for h := n + HandlesPerFrame; h > n; h-- {
			d.freeHandles = append(d.freeHandles, h-1) // lowest handle on top
		}
	}
	h := d.freeHandles[len(d.freeHandles)-1]
	d.freeHandles = d.freeHandles[:len(d.freeHandles)-1]
	return h, true
}

// freeHandleLocked releases a handle whose mapping is gone.
// Preconditions: d.maptrackMu.
// +checklocks:d.maptrackMu
func (d *domain) freeHandleLocked(h uint32) {
	d.maptrackMu.AssertLocked()
	d.maptrack[h] = mapEntry{}
	d.freeHandles = append(d.freeHandles, h)
}

// recordLocked stores a new live mapping under handle h.
// Preconditions: d.maptrackMu.
// +checklocks:d.maptrackMu
func (d *domain) recordLocked(h uint32, e mapEntry) {
	d.maptrackMu.AssertLocked()
	d.maptrack[h] = e
	d.byGPA[e.gpa] = h
	hs := d.byGranter[e.granter]
	if hs == nil {
		hs = map[uint32]struct{}{}
		d.byGranter[e.granter] = hs
	}
	hs[h] = struct{}{}
	d.stats.mapped.Add(1)
}

// releaseLocked forgets mapping h after its GPA has been unmapped: a live
// mapping drops its pin (clearing the granter's status bits when it was
// the last), a revoked one only leaves the not-yet-reported set. The
// handle becomes free.
// Preconditions: R(l1), me.maptrackMu.
// +checklocksread:g.l1
// +checklocks:me.maptrackMu
func (g *GrantTables) releaseLocked(me *domain, h uint32) {
	g.l1.AssertRLocked()
	me.maptrackMu.AssertLocked()
	e := me.maptrack[h]
	switch e.state {
	case mapLive:
		if rd := g.alive[e.granter]; rd != nil { // always: revocation precedes a granter's death
			rd.unpin(e.ref, e.ro)
		}
		hs := me.byGranter[e.granter]
		delete(hs, h)
		if len(hs) == 0 {
			delete(me.byGranter, e.granter)
		}
		me.stats.mapped.Add(-1)
	case mapRevoked:
		delete(me.unreported, h)
	default:
		return
	}
	delete(me.byGPA, e.gpa)
	me.freeHandleLocked(h)
}

// undoMap removes a mapping that was just made (its handle could not be
// reported), if it is still there.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) undoMap(me *domain, h uint32, gpa uint64) {
	me.maptrackMu.Lock()
	defer me.maptrackMu.Unlock()
	if int(h) >= len(me.maptrack) || me.maptrack[h].state != mapLive || me.maptrack[h].gpa != gpa {
		return // another vCPU guessed the handle and unmapped it already
	}
	if g.w.Unmap(me.id, []uint64{gpa}) != nil {
		return // keep it: the mapping may still be in place
	}
	g.releaseLocked(me, h)
}

// unmapGrantRefs is GNTTABOP_unmap_grant_ref (replace false) and the HVM
// form of GNTTABOP_unmap_and_replace (replace true); both elements are 24
// bytes with the handle at 16 and the status at 20. Every element is
// checked and its status written as in Xen; then the GPAs of all accepted
// elements are unmapped with one Window.Unmap, and only after that are
// the pins dropped (Xen does the same per 32 elements, with a TLB flush).
// If Window.Unmap fails nothing is released and the accepted elements are
// rewritten with GNTST_general_error.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) unmapGrantRefs(c Caller, me *domain, uop, count uint64, replace bool) int64 {
	g.l1.AssertRLocked()
	me.maptrackMu.Lock()
	defer me.maptrackMu.Unlock()
	var (
		b       [sizeofUnmap]byte
		ret     int64
		handles []uint32
		addrs   []uint64
		gpas    []uint64
		taken   = map[uint32]bool{}
	)
	for i := range count {
		addr := uop + i*sizeofUnmap
		if c.ReadGuest(addr, b[:]) != nil {
			ret = -EFAULT
			break
		}
		hostAddr, second, h := le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint32(b[16:])
		st := me.checkUnmapLocked(h, hostAddr, second, replace)
		if st == GNTSTOkay && taken[h] {
			st = GNTSTBadHandle // the same handle twice in one call
		}
		if st == GNTSTOkay {
			taken[h] = true
			handles = append(handles, h)
			addrs = append(addrs, addr)
			gpas = append(gpas, me.maptrack[h].gpa)
		} else {
			me.stats.failStatus(st, 1)
		}
		var sb [2]byte
		le.PutUint16(sb[:], status(st))
		if c.WriteGuest(addr+20, sb[:]) != nil {
			ret = -EFAULT // this element still completes, as in Xen
			break
		}
	}
	if len(gpas) == 0 {
		return ret
	}
	if g.w.Unmap(me.id, gpas) != nil {
		var sb [2]byte
		le.PutUint16(sb[:], status(GNTSTGeneralError))
		for _, a := range addrs {
			_ = c.WriteGuest(a+20, sb[:]) // best effort: it was writable a moment ago
		}
		me.stats.failStatus(GNTSTGeneralError, uint64(len(addrs)))
		return ret
	}
	for _, h := range handles {
		g.releaseLocked(me, h)
	}
	me.stats.unmaps.Add(uint64(len(handles)))
	return ret
}

// checkUnmapLocked validates one unmap element. second is dev_bus_addr for
// unmap and new_addr for unmap_and_replace. A host_addr of 0 skips the
// address check (the handle alone names the mapping).
// Preconditions: d.maptrackMu.
// +checklocks:d.maptrackMu
func (d *domain) checkUnmapLocked(h uint32, hostAddr, second uint64, replace bool) int16 {
	d.maptrackMu.AssertLocked()
	if int(h) >= len(d.maptrack) || d.maptrack[h].state == mapFree {
		return GNTSTBadHandle
	}
	if !replace && second != 0 {
		return GNTSTBadDevAddr // there are no device mappings
	}
	if hostAddr != 0 && hostAddr != d.maptrack[h].gpa {
		return GNTSTGeneralError
	}
	if replace && second != 0 {
		return GNTSTGeneralError // HVM cannot replace with another mapping
	}
	return GNTSTOkay
}
