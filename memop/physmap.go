package memop

// The physmap transitions. Every change of a frame's state goes through
// a reservation (take or reserve) that marks it busy, the Backing call
// made with no lock held, and a commit (or an undo) under mu.
//
//	populated --take--> busy, not Present --commitRemove--> empty
//	                                      \--untake-------> populated
//	empty --reserve (tot += n)--> busy --commitPopulate--> populated, Present
//	                                   \--unreserve------> empty
//
// holes counts the maximal runs of empty frames, which is what the VMM's
// memory mappings pay for. It is updated exactly at each commit; the limit
// is checked at reservation time against the effect the change would
// have on the committed state then. Operations in flight on neighbouring
// frames can make the final count differ from that estimate by at most
// one per operation in flight, so the bound is soft by that much.

// neighboursEmptyLocked reports whether the frames just before and just
// after [gfn, gfn+n) exist and are empty (committed state).
// Preconditions: d.mu.
// +checklocks:d.mu
func (d *Domain) neighboursEmptyLocked(gfn, n uint64) (left, right bool) {
	d.mu.AssertLocked()
	left = gfn > 0 && !bit(d.mapped, gfn-1)
	right = gfn+n < d.pages && !bit(d.mapped, gfn+n)
	return left, right
}

// emptyingDeltaLocked is the change in holes if populated [gfn, gfn+n)
// became empty now; fillingDeltaLocked if empty [gfn, gfn+n) became
// populated.
// Preconditions: d.mu.
// +checklocks:d.mu
func (d *Domain) emptyingDeltaLocked(gfn, n uint64) int {
	l, r := d.neighboursEmptyLocked(gfn, n)
	return 1 - b2i(l) - b2i(r)
}

// +checklocks:d.mu
func (d *Domain) fillingDeltaLocked(gfn, n uint64) int {
	l, r := d.neighboursEmptyLocked(gfn, n)
	return -1 + b2i(l) + b2i(r)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// take reserves populated, idle frames [gfn, gfn+n) for removal. They stop
// being Present at once.
func (d *Domain) take(gfn, n uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.dead:
		return ErrDead
	case !d.inRegion(gfn, n) || !allSet(d.mapped, gfn, n) || anySet(d.busy, gfn, n):
		return ErrNotPopulated
	case d.holes+d.emptyingDeltaLocked(gfn, n) > d.maxHoles:
		return ErrTooManyHoles
	}
	setBits(d.busy, gfn, n)
	d.setPresentLocked(gfn, n, false)
	return nil
}

// untake gives frames taken by take back to the domain unchanged.
func (d *Domain) untake(gfn, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	clearBits(d.busy, gfn, n)
	d.setPresentLocked(gfn, n, true)
}

// commitRemove records that frames taken by take are gone.
func (d *Domain) commitRemove(gfn, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.holes += d.emptyingDeltaLocked(gfn, n)
	clearBits(d.busy, gfn, n)
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
	case !d.inRegion(gfn, n) || anySet(d.mapped, gfn, n) || anySet(d.busy, gfn, n):
		return ErrNotEmpty
	case d.tot+n > d.max:
		return ErrNoRoom
	case d.holes+d.fillingDeltaLocked(gfn, n) > d.maxHoles:
		return ErrTooManyHoles
	}
	setBits(d.busy, gfn, n)
	d.tot += n
	return nil
}

// unreserve undoes reserve.
func (d *Domain) unreserve(gfn, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	clearBits(d.busy, gfn, n)
	d.tot -= n
}

// commitPopulate records that reserved frames now hold pages.
func (d *Domain) commitPopulate(gfn, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.holes += d.fillingDeltaLocked(gfn, n)
	clearBits(d.busy, gfn, n)
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
