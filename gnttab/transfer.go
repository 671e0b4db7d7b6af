package gnttab

import "sync/atomic"

// Frames moves page frames between domains for GNTTABOP_transfer; package
// vmm implements it over package memop and the domains' memory.
// GrantTables calls it with R(l1), and for Reserve, Unreserve and Move
// also the receiver's tableMu, held: an implementation must not call back
// into GrantTables. Errors only need to be non-nil: every failure has one
// status.
type Frames interface {
	// Take takes populated frame gfn away from domain from for a
	// transfer. It fails, leaving the frame as it was, if the frame is
	// not from's populated RAM or if inUse (asked once nothing can start
	// using the frame any more) or another mechanism of the VMM holds it.
	Take(from DomainID, gfn uint64, inUse func() bool) error
	// Drop removes a taken frame for good (the transfer failed).
	Drop(from DomainID, gfn uint64) error
	// Reserve reserves empty frame gfn of domain to, and room for one
	// page in its reservation; it fails if either is missing.
	Reserve(to DomainID, gfn uint64) error
	// Unreserve undoes Reserve.
	Unreserve(to DomainID, gfn uint64)
	// Move puts the contents of from's taken frame gfn at to's reserved
	// frame toGFN, after which from's frame is empty. On error nothing
	// has changed.
	Move(from DomainID, gfn uint64, to DomainID, toGFN uint64) error
}

// SetFrames enables GNTTABOP_transfer with f. Until it is called transfer
// is -EOPNOTSUPP, as in Xen with transfers disabled.
func (g *GrantTables) SetFrames(f Frames) {
	g.l1.Lock()
	defer g.l1.Unlock()
	g.frames = f
}

// FramesInUse reports whether any of frames [gfn, gfn+n) of domain id is
// pinned by a grant: mapped by any domain (itself included) or in a copy
// right now. A domain that is not alive pins nothing.
func (g *GrantTables) FramesInUse(id DomainID, gfn, n uint64) bool {
	g.l1.RLock()
	defer g.l1.RUnlock()
	d := g.alive[id]
	return d != nil && d.framesInUse(gfn, n)
}

// framesInUse is FramesInUse for one domain. A frame is pinned exactly
// while an active entry names it; a pin is taken only after the frame
// was found in the domain's memory, under tableMu, so a frame that has
// left the memory (memop's Present) before this check cannot gain a pin
// afterwards.
// Preconditions: R(l1).
func (d *domain) framesInUse(gfn, n uint64) bool {
	d.tableMu.Lock()
	defer d.tableMu.Unlock()
	if n > uint64(len(d.activeFrames)) {
		for f := range d.activeFrames {
			if f >= gfn && f-gfn < n {
				return true
			}
		}
		return false
	}
	for i := range n {
		if d.activeFrames[gfn+i] > 0 {
			return true
		}
	}
	return false
}

// transfers is GNTTABOP_transfer over count elements of {u64 mfn (the
// caller's GFN); u16 domid; u32 ref @12; i16 status @16}, 24 bytes each.
// Each element is read, performed and its status written in turn; a
// fault stops the call with -EFAULT.
// Preconditions: R(l1), g.frames set.
// +checklocksread:g.l1
func (g *GrantTables) transfers(c Caller, me *domain, uop, count uint64) int64 {
	var b [sizeofTransfer]byte
	for i := range count {
		addr := uop + i*sizeofTransfer
		if c.ReadGuest(addr, b[:]) != nil {
			return -EFAULT
		}
		st := g.transferOne(me, le.Uint64(b[0:]), DomainID(le.Uint16(b[8:])), le.Uint32(b[12:]))
		if st != GNTSTOkay {
			me.stats.errors.Add(1)
		}
		var sb [2]byte
		le.PutUint16(sb[:], status(st))
		if c.WriteGuest(addr+16, sb[:]) != nil {
			return -EFAULT
		}
	}
	return 0
}

// transferOne moves the caller's frame gfn to domain dom, into the frame
// dom named in its accept-transfer entry ref, in the order of Xen's
// gnttab_transfer:
//
//  1. the frame must be the caller's populated RAM and have no other
//     user (no grant pins it: mapped by anyone or in a copy; no Argo ring
//     uses it); else GNTST_bad_page and the frame stays. From here the
//     frame has left the caller, and any failure loses it, as in Xen.
//  2. dom must exist (GNTST_bad_domain); a domain that has died is
//     GNTST_general_error (Xen's dying domain).
//  3. receiveLocked: the entry, the receiving frame and the receiver's
//     reservation (GNTST_general_error).
//
// Preconditions: R(l1), g.frames set.
// +checklocksread:g.l1
func (g *GrantTables) transferOne(me *domain, gfn uint64, dom DomainID, ref uint32) int16 {
	g.l1.AssertRLocked()
	if g.frames.Take(me.id, gfn, func() bool { return me.framesInUse(gfn, 1) }) != nil {
		return GNTSTBadPage
	}
	e := g.lookup(me, dom)
	var st int16
	switch {
	case e == nil && g.known[dom] != nil:
		st = GNTSTGeneralError
	case e == nil:
		st = GNTSTBadDomain
	default:
		e.tableMu.Lock()
		st = g.receiveLocked(me, e, gfn, ref)
		e.tableMu.Unlock()
	}
	if st != GNTSTOkay {
		_ = g.frames.Drop(me.id, gfn) // if even this fails, the frame stays the caller's
	}
	return st
}

// receiveLocked completes a transfer of me's taken frame gfn into e's
// entry ref. As in Xen's gnttab_prepare_for_transfer the entry must be
// in the table and be exactly GTF_accept_transfer naming the sender;
// argovisor also needs its frame to be an empty frame of e's RAM and e to
// have room in its reservation (Xen: max_pages), checked here before the
// entry is touched. The entry is then committed with a bounded
// compare-and-exchange over flags and domid (5 attempts), the page moved,
// the frame written back (the GFN where the page now is) and, after it,
// GTF_transfer_completed set. Every failure is GNTST_general_error; one
// after the commit (the move itself failed) takes the commit back.
// Preconditions: R(l1), e.tableMu, e alive.
// +checklocks:e.tableMu
// +checklocksread:g.l1
func (g *GrantTables) receiveLocked(me, e *domain, gfn uint64, ref uint32) int16 {
	e.tableMu.AssertLocked()
	if ref >= e.nrEntriesLocked() {
		return GNTSTGeneralError
	}
	w := word32(e.table, entryOff(ref))
	old := atomic.LoadUint32(w)
	if !acceptsFrom(old, me.id) {
		return GNTSTGeneralError
	}
	frame := uint64(atomic.LoadUint32(word32(e.table, entryOff(ref)+4)))
	if g.frames.Reserve(e.id, frame) != nil {
		return GNTSTGeneralError
	}
	for tries := 0; ; tries++ {
		if !acceptsFrom(old, me.id) {
			g.frames.Unreserve(e.id, frame)
			return GNTSTGeneralError
		}
		if atomic.CompareAndSwapUint32(w, old, old|GTFTransferCommitted) {
			break
		}
		if tries == 4 {
			g.frames.Unreserve(e.id, frame)
			return GNTSTGeneralError // unstable entry
		}
		old = atomic.LoadUint32(w)
	}
	if g.frames.Move(me.id, gfn, e.id, frame) != nil {
		atomic.AndUint32(w, ^uint32(GTFTransferCommitted))
		g.frames.Unreserve(e.id, frame)
		return GNTSTGeneralError
	}
	// The guest reads frame only after seeing completed (the two stores
	// are ordered).
	atomic.StoreUint32(word32(e.table, entryOff(ref)+4), uint32(frame))
	atomic.OrUint32(w, GTFTransferCompleted)
	return GNTSTOkay
}

// acceptsFrom reports whether an entry's flags-and-domid word is an unused
// accept-transfer entry naming domain from: flags exactly
// GTF_accept_transfer, so one already committed or completed never is.
func acceptsFrom(v uint32, from DomainID) bool {
	return v&0xFFFF == GTFAcceptTransfer && DomainID(v>>16) == from
}
