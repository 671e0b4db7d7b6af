package memop

// The physmap transitions. Every change of a frame's state goes through
// a reservation (take or reserve) that marks it busy, the Backing call
// made with no lock held, and a commit (or an undo) under mu.
//
//	populated --take--> taking, not Present --commitRemove--> empty
//	                                        \--untake-------> populated
//	empty --reserve (tot += n)--> filling --commitPopulate--> populated, Present
//	                                      \--unreserve------> empty
//
// holes counts the maximal runs of empty frames, which is what the VMM's
// memory mappings pay for; it is updated exactly at each commit. The
// limit is checked when an operation reserves its frames, against an
// estimate made on the state as it will be once every operation in flight
// has committed (frames being taken count as empty, frames being filled as
// populated): an operation that may add a hole adds its estimate to
// pending until it commits or is undone. So a run of neighbouring frames
// taken one by one costs one hole, and an operation that fills or shrinks
// a hole is never refused.

// futureEmptyLocked reports whether frame g exists and will be empty once
// the operations in flight have committed.
// Preconditions: d.mu.
// +checklocks:d.mu
func (d *Domain) futureEmptyLocked(g uint64) bool {
	d.mu.AssertLocked()
	if g >= d.pages {
		return false
	}
	populated := bit(d.mapped, g) && !bit(d.taking, g) || bit(d.filling, g)
	return !populated
}

// committedEmptyLocked reports whether frame g exists and is empty now.
// Preconditions: d.mu.
// +checklocks:d.mu
func (d *Domain) committedEmptyLocked(g uint64) bool {
	d.mu.AssertLocked()
	return g < d.pages && !bit(d.mapped, g)
}

// holeDeltaLocked is the change in the number of empty runs when frames
// [gfn, gfn+n), all in one state, change state (emptying: populated to
// empty; else empty to populated), given which neighbours are empty.
func holeDeltaLocked(emptying, left, right bool) int {
	if emptying {
		return 1 - b2i(left) - b2i(right)
	}
	return -1 + b2i(left) + b2i(right)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reserveHolesLocked checks the hole limit for an operation on [gfn,
// gfn+n) starting now and records its estimate.
// Preconditions: d.mu.
// +checklocks:d.mu
func (d *Domain) reserveHolesLocked(gfn, n uint64, emptying bool) error {
	d.mu.AssertLocked()
	est := holeDeltaLocked(emptying, gfn > 0 && d.futureEmptyLocked(gfn-1), d.futureEmptyLocked(gfn+n))
	if est <= 0 {
		return nil
	}
	if d.holes+d.pending+est > d.maxHoles {
		return ErrTooManyHoles
	}
	d.pending += est
	d.est[gfn] = est
	return nil
}

// settleHolesLocked drops the estimate of the operation on [gfn, gfn+n)
// and, if it committed, applies the exact change.
// Preconditions: d.mu, the frames still in their old committed state.
// +checklocks:d.mu
func (d *Domain) settleHolesLocked(gfn, n uint64, emptying, committed bool) {
	d.mu.AssertLocked()
	d.pending -= d.est[gfn]
	delete(d.est, gfn)
	if committed {
		d.holes += holeDeltaLocked(emptying, gfn > 0 && d.committedEmptyLocked(gfn-1), d.committedEmptyLocked(gfn+n))
	}
}

// take reserves populated, idle frames [gfn, gfn+n) for removal. They stop
// being Present at once.
func (d *Domain) take(gfn, n uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.dead:
		return ErrDead
	case !d.inRegion(gfn, n) || !allSet(d.mapped, gfn, n) || anySet(d.taking, gfn, n):
		return ErrNotPopulated
	}
	if err := d.reserveHolesLocked(gfn, n, true); err != nil {
		return err
	}
	setBits(d.taking, gfn, n)
	d.setPresentLocked(gfn, n, false)
	return nil
}

// untake gives frames taken by take back to the domain unchanged.
func (d *Domain) untake(gfn, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settleHolesLocked(gfn, n, true, false)
	clearBits(d.taking, gfn, n)
	d.setPresentLocked(gfn, n, true)
}

// commitRemove records that frames taken by take are gone.
func (d *Domain) commitRemove(gfn, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settleHolesLocked(gfn, n, true, true)
	clearBits(d.taking, gfn, n)
	clearBits(d.mapped, gfn, n)
	d.tot -= n
}

// reserve reserves empty, idle frames [gfn, gfn+n) inside the region to be
// populated, and the reservation for them.
func (d *Domain) reserve(gfn, n uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.dead:
		return ErrDead
	case !d.inRegion(gfn, n) || anySet(d.mapped, gfn, n) || anySet(d.filling, gfn, n):
		return ErrNotEmpty
	case d.tot+n > d.max:
		return ErrNoRoom
	}
	if err := d.reserveHolesLocked(gfn, n, false); err != nil {
		return err
	}
	setBits(d.filling, gfn, n)
	d.tot += n
	return nil
}

// unreserve undoes reserve.
func (d *Domain) unreserve(gfn, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settleHolesLocked(gfn, n, false, false)
	clearBits(d.filling, gfn, n)
	d.tot -= n
}

// commitPopulate records that reserved frames now hold pages.
func (d *Domain) commitPopulate(gfn, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.settleHolesLocked(gfn, n, false, true)
	clearBits(d.filling, gfn, n)
	setBits(d.mapped, gfn, n)
	d.setPresentLocked(gfn, n, true)
}

// increase adds n pages to the reservation without placing them anywhere
// (increase_reservation for a translated guest), if the maximum allows.
func (d *Domain) increase(n uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead || d.tot+n > d.max {
		return false
	}
	d.tot += n
	return true
}

// isDead reports whether the domain has died.
func (d *Domain) isDead() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dead
}
