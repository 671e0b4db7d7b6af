package memop

// Op performs one memory_op(cmd, arg) hypercall for caller c and returns
// the value for RAX. For increase_reservation, decrease_reservation and
// populate_physmap that is the number of extents done, counted from 0 (so
// a call that does nothing returns the start extent from cmd's high bits),
// never an errno, as in Xen; current_reservation and maximum_reservation
// return a page count or a negated errno. It never panics on guest input.
func (m *Memop) Op(c Caller, cmd, arg uint64) int64 {
	op, start := cmd&cmdMask, cmd>>extentShift
	me := m.domain(c.Domain())
	if me == nil || me.isDead() {
		return -ESRCH // unknown or dead caller
	}
	var ret int64
	switch op {
	case OpIncreaseReservation, OpDecreaseReservation, OpPopulatePhysmap:
		ret = m.reservation(c, me, op, start, arg)
	case OpCurrentReservation, OpMaximumReservation:
		ret = m.queryReservation(c, me, op, start, arg)
	default:
		ret = -ENOSYS
	}
	if ret < 0 {
		me.stats.errors.Add(1)
	}
	return ret
}

// lookup resolves a domid as Xen's rcu_lock_domain_by_any_id does:
// DOMID_SELF and the caller's own id are the caller, anything else must
// exist.
func (m *Memop) lookup(me *Domain, id DomainID) *Domain {
	if id == DomainSelf || id == me.id {
		return me
	}
	return m.domain(id)
}

// reservation is XENMEM_increase_reservation, _decrease_reservation and
// _populate_physmap over struct xen_memory_reservation {u64 extent_start;
// u64 nr_extents; u32 extent_order; u32 mem_flags; u16 domid} (32 bytes).
// Every refusal before the first extent returns start, as in Xen; then
// extents are processed in order and the first that fails (or whose list
// entry cannot be read) ends the call.
func (m *Memop) reservation(c Caller, me *Domain, op, start, arg uint64) int64 {
	var b [sizeofReservation]byte
	if c.ReadGuest(arg, b[:]) != nil {
		return m.short(me, start)
	}
	list, nr, order, flags, domid := le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint32(b[16:]), le.Uint32(b[20:]), DomainID(le.Uint16(b[24:]))
	switch {
	case nr > maxNrExtents: // Xen cannot encode its continuation
		return m.short(me, start)
	case start >= nr:
		return int64(start)
	case m.lookup(me, domid) != me: // none, or another domain (XSM: only one's own)
		return m.short(me, start)
	case flags&memfAddressBitsMask != 0 && flags&memfAddressBitsMask <= pageShift:
		return m.short(me, start)
	case nr-start > MaxExtents: // argovisor: no continuations
		return m.short(me, start)
	case order > MaxOrder:
		return m.short(me, start)
	case op == OpPopulatePhysmap && flags&memfPopulateOnDemand != 0:
		return m.short(me, start) // Xen refuses populate-on-demand on oneself
	}
	n := uint64(1) << order
	if op == OpIncreaseReservation {
		// A translated guest learns nothing about the pages (Xen writes
		// frame numbers back only for PV guests), so they are only
		// counted; extent_start is not read.
		for i := start; i < nr; i++ {
			if !me.increase(n) {
				return m.short(me, i)
			}
			me.stats.increased.Add(n)
		}
		return int64(nr)
	}
	// Decrease and populate: reserve the extents in order until one
	// fails, then do the host work one run of contiguous extents at a
	// time (on the host each call costs a TLB shootdown, whatever its
	// length) and commit. The result is the same as extent by extent.
	var got []uint64 // first frames of the reserved extents, in order
	stopped := false
	for i := start; i < nr; i++ {
		var gb [8]byte
		if a := list + 8*i; a < list || c.ReadGuest(a, gb[:]) != nil {
			stopped = true
			break
		}
		gfn := le.Uint64(gb[:])
		var err error
		if op == OpDecreaseReservation {
			err = m.takeUnused(me, gfn, n)
		} else {
			err = me.reserve(gfn, n)
		}
		if err != nil {
			stopped = true
			break
		}
		got = append(got, gfn)
	}
	done := start
	for j := 0; j < len(got); {
		k := j + 1
		for k < len(got) && got[k] == got[k-1]+n {
			k++
		}
		if err := m.back(me, op, got[j], uint64(k-j)*n); err != nil {
			for _, g := range got[j:] {
				if op == OpDecreaseReservation {
					me.untake(g, n)
				} else {
					me.unreserve(g, n)
				}
			}
			return m.short(me, done)
		}
		for _, g := range got[j:k] {
			if op == OpDecreaseReservation {
				me.commitRemove(g, n)
				me.stats.decreased.Add(n)
			} else {
				me.commitPopulate(g, n)
				me.stats.populated.Add(n)
			}
		}
		done += uint64(k - j)
		j = k
	}
	if stopped {
		return m.short(me, done)
	}
	return int64(done)
}

// short returns done for a call that stopped before its last extent, and
// counts it as an error.
func (m *Memop) short(me *Domain, done uint64) int64 {
	me.stats.errors.Add(1)
	return int64(done)
}

// takeUnused takes populated frames [gfn, gfn+n) of me for a decrease:
// no longer Present, then checked for other users (given back if any).
func (m *Memop) takeUnused(me *Domain, gfn, n uint64) error {
	if err := me.take(gfn, n); err != nil {
		return err
	}
	if m.inUse != nil && m.inUse(me.id, gfn, n) {
		me.untake(gfn, n)
		return ErrInUse
	}
	return nil
}

// back does the host side of a decrease (give the frames back) or a
// populate (fresh zero pages) for frames [gfn, gfn+n).
func (m *Memop) back(me *Domain, op, gfn, n uint64) error {
	if op == OpDecreaseReservation {
		return m.b.Remove(me.id, gfn, n)
	}
	return m.b.Populate(me.id, gfn, n)
}

// queryReservation is XENMEM_current_reservation and
// XENMEM_maximum_reservation: arg points at a domid_t.
func (m *Memop) queryReservation(c Caller, me *Domain, op, start, arg uint64) int64 {
	if start != 0 {
		return -EINVAL
	}
	var b [2]byte
	if c.ReadGuest(arg, b[:]) != nil {
		return -EFAULT
	}
	d := m.lookup(me, DomainID(le.Uint16(b[:])))
	switch {
	case d == nil:
		return -ESRCH
	case d != me:
		return -EPERM // XSM's default: a domain may only ask about itself
	}
	s := d.Stats()
	if op == OpCurrentReservation {
		return int64(s.Current)
	}
	return int64(s.Max)
}
