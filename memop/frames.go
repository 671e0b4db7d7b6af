package memop

// The frame moves of GNTTABOP_transfer (package gnttab calls them, through
// package vmm, with its own locks held; memop's locks are innermost). A
// transfer takes the sender's frame (Take), then either gives it back
// (Untake: the frame was not the sender's to give), loses it (Drop: Xen's
// rule once a frame is taken) or moves it into a frame the receiver has
// reserved (Reserve, then Move or Unreserve).

// Take takes populated frame gfn of domain id for a transfer. It fails if
// the frame is outside the region, empty, or busy in another operation
// (ErrNotPopulated), or if inUse (may be nil), asked once the frame is no
// longer Present, reports another user (ErrInUse); the frame is then
// unchanged.
func (m *Memop) Take(id DomainID, gfn uint64, inUse func() bool) error {
	d := m.domain(id)
	if d == nil {
		return ErrNoDomain
	}
	if err := d.take(gfn, 1); err != nil {
		return err
	}
	if inUse != nil && inUse() {
		d.untake(gfn, 1)
		return ErrInUse
	}
	return nil
}

// Untake gives a frame taken by Take back unchanged.
func (m *Memop) Untake(id DomainID, gfn uint64) {
	if d := m.domain(id); d != nil {
		d.untake(gfn, 1)
	}
}

// Drop removes a frame taken by Take for good: the transfer failed after
// the frame left its owner, and as in Xen the page is lost. If the host
// memory cannot be released the frame is given back instead.
func (m *Memop) Drop(id DomainID, gfn uint64) error {
	d := m.domain(id)
	if d == nil {
		return ErrNoDomain
	}
	if err := m.b.Remove(id, gfn, 1); err != nil {
		d.untake(gfn, 1)
		return err
	}
	d.commitRemove(gfn, 1)
	d.stats.transfersOut.Add(1)
	return nil
}

// Reserve reserves empty frame gfn of domain id, and one page of its
// reservation, for an incoming transfer. It fails if the domain is dead
// (ErrDead), the frame is outside its region, populated or busy
// (ErrNotEmpty), the domain is at its maximum reservation (ErrNoRoom) or
// the frame would split an empty run beyond the limit (ErrTooManyHoles).
func (m *Memop) Reserve(id DomainID, gfn uint64) error {
	d := m.domain(id)
	if d == nil {
		return ErrNoDomain
	}
	return d.reserve(gfn, 1)
}

// Unreserve undoes Reserve.
func (m *Memop) Unreserve(id DomainID, gfn uint64) {
	if d := m.domain(id); d != nil {
		d.unreserve(gfn, 1)
	}
}

// Move completes a transfer: the contents of from's frame gfn (taken by
// Take) appear at to's frame toGFN (reserved by Reserve), and from's
// frame is empty. On error nothing has changed and the caller still holds
// both frames (Drop and Unreserve release them).
func (m *Memop) Move(from DomainID, gfn uint64, to DomainID, toGFN uint64) error {
	fd, td := m.domain(from), m.domain(to)
	if fd == nil || td == nil {
		return ErrNoDomain
	}
	if err := m.b.Move(from, gfn, to, toGFN); err != nil {
		return err
	}
	fd.commitRemove(gfn, 1)
	td.commitPopulate(toGFN, 1)
	fd.stats.transfersOut.Add(1)
	td.stats.transfersIn.Add(1)
	return nil
}
