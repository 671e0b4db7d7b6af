package gnttab

import "slices"

// Op performs one grant_table_op(cmd, uop, count) hypercall for caller c.
// It returns 0 or a negated errno; array operations report per element in
// each element's status field. It never panics on guest input.
func (g *GrantTables) Op(c Caller, cmd, uop, count uint64) int64 {
	// Entry checks. Xen refuses a negative count and continuation bits in
	// cmd; argovisor never creates continuations and bounds the batch.
	if count > MaxBatch {
		return -EINVAL
	}
	if cmd > opCmdMask {
		if cmd&opCmdMask == OpCacheFlush {
			return -ENOSYS
		}
		return -EINVAL
	}
	g.l1.RLock()
	defer g.l1.RUnlock()
	me := g.alive[c.Domain()]
	if me == nil {
		return -ESRCH // unknown or dead caller
	}
	var ret int64
	switch cmd {
	case OpMapGrantRef:
		ret = -EFAULT
		if arrayOK(uop, count, sizeofMap) {
			ret = g.mapGrantRefs(c, me, uop, count)
		}
	case OpUnmapGrantRef, OpUnmapAndReplace:
		ret = -EFAULT
		if arrayOK(uop, count, sizeofUnmap) {
			ret = g.unmapGrantRefs(c, me, uop, count, cmd == OpUnmapAndReplace)
		}
	case OpSetupTable:
		ret = g.setupTable(c, me, uop, count)
	case OpDumpTable:
		ret = -ENOSYS // no longer dispatched by Xen either
	case OpTransfer:
		ret = -EOPNOTSUPP // as Xen with transfer disabled, when no Frames are set
		if g.frames != nil {
			ret = -EFAULT
			if arrayOK(uop, count, sizeofTransfer) {
				ret = g.transfers(c, me, uop, count)
			}
		}
	case OpCopy:
		ret = -EFAULT
		if arrayOK(uop, count, sizeofCopy) {
			ret = g.copyOps(c, me, uop, count)
		}
	case OpQuerySize:
		ret = g.querySize(c, me, uop, count)
	case OpSetVersion:
		ret = setVersion(c, uop, count)
	case OpGetStatusFrames:
		ret = g.getStatusFrames(c, me, uop, count)
	case OpGetVersion:
		ret = g.getVersion(c, me, uop, count)
	case OpSwapGrantRef:
		ret = -EFAULT
		if arrayOK(uop, count, sizeofSwap) {
			ret = swapGrantRefs(c, me, uop, count)
		}
	case OpQueryRevoked:
		ret = queryRevoked(c, me, uop, count)
	default: // includes cache_flush (Arm only)
		ret = -ENOSYS
	}
	if ret < 0 {
		me.stats.failErrno(ret)
	}
	return ret
}

// arrayOK reports whether an array of count elements of size bytes at
// uop stays clear of the top of the address space.
func arrayOK(uop, count, size uint64) bool {
	return uop+count*size >= uop
}

// setupTable is GNTTABOP_setup_table: grow the caller's table to
// nr_frames and report the frames' GFNs.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) setupTable(c Caller, me *domain, uop, count uint64) int64 {
	if count != 1 {
		return -EINVAL
	}
	var b [sizeofSetupTable]byte
	if c.ReadGuest(uop, b[:]) != nil {
		return -EFAULT
	}
	dom, nr, list := DomainID(le.Uint16(b[0:])), le.Uint32(b[4:]), le.Uint64(b[16:])
	var st int16
	d := g.lookup(me, dom)
	switch {
	case d == nil:
		st = GNTSTBadDomain
	case d != me:
		st = GNTSTPermissionDenied // another domain's table needs privilege
	case nr > me.maxFrames:
		st = GNTSTGeneralError
	default:
		me.tableMu.Lock()
		me.nrFrames = max(me.nrFrames, nr)
		me.tableMu.Unlock()
		if nr > 0 {
			frames := make([]byte, 8*uint64(nr))
			for i := range uint64(nr) {
				le.PutUint64(frames[8*i:], me.tableGPA>>pageShift+i)
			}
			if c.WriteGuest(list, frames) != nil {
				st = GNTSTBadVirtAddr
			}
		}
	}
	if st != GNTSTOkay {
		me.stats.failStatus(st, 1)
	}
	var sb [2]byte
	le.PutUint16(sb[:], status(st))
	if c.WriteGuest(uop+8, sb[:]) != nil {
		return -EFAULT
	}
	return 0
}

// querySize is GNTTABOP_query_size.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) querySize(c Caller, me *domain, uop, count uint64) int64 {
	if count != 1 {
		return -EINVAL
	}
	var b [sizeofQuerySize]byte
	if c.ReadGuest(uop, b[:]) != nil {
		return -EFAULT
	}
	var st int16
	d := g.lookup(me, DomainID(le.Uint16(b[0:])))
	switch {
	case d == nil:
		st = GNTSTBadDomain
	case d != me:
		st = GNTSTPermissionDenied
	default:
		me.tableMu.Lock()
		le.PutUint32(b[4:], me.nrFrames)
		me.tableMu.Unlock()
		le.PutUint32(b[8:], me.maxFrames)
	}
	if st != GNTSTOkay {
		me.stats.failStatus(st, 1)
	}
	le.PutUint16(b[12:], status(st))
	if c.WriteGuest(uop, b[:]) != nil {
		return -EFAULT
	}
	return 0
}

// setVersion is GNTTABOP_set_version: only version 1 exists. The current
// version is written back whatever the outcome, as in Xen.
func setVersion(c Caller, uop, count uint64) int64 {
	if count != 1 {
		return -EINVAL
	}
	var b [sizeofSetVersion]byte
	if c.ReadGuest(uop, b[:]) != nil {
		return -EFAULT
	}
	var ret int64
	switch le.Uint32(b[0:]) {
	case 1:
	case 2:
		ret = -ENOSYS // v2 is not implemented (as with Xen's max-ver:1)
	default:
		ret = -EINVAL
	}
	le.PutUint32(b[0:], 1)
	if c.WriteGuest(uop, b[:]) != nil {
		return -EFAULT
	}
	return ret
}

// getVersion is GNTTABOP_get_version.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) getVersion(c Caller, me *domain, uop, count uint64) int64 {
	if count != 1 {
		return -EINVAL
	}
	var b [sizeofGetVersion]byte
	if c.ReadGuest(uop, b[:]) != nil {
		return -EFAULT
	}
	d := g.lookup(me, DomainID(le.Uint16(b[0:])))
	if d == nil {
		return -ESRCH
	}
	if d != me {
		return -EPERM
	}
	le.PutUint32(b[4:], 1)
	if c.WriteGuest(uop+4, b[4:8]) != nil {
		return -EFAULT
	}
	return 0
}

// getStatusFrames is GNTTABOP_get_status_frames. A v1 table has no status
// frames, so, as in Xen, asking for any is GNTST_general_error and asking
// for none succeeds.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) getStatusFrames(c Caller, me *domain, uop, count uint64) int64 {
	if count != 1 {
		return -EINVAL
	}
	var b [sizeofGetStatusFrame]byte
	if c.ReadGuest(uop, b[:]) != nil {
		return -EFAULT
	}
	var st int16
	d := g.lookup(me, DomainID(le.Uint16(b[4:])))
	switch {
	case d == nil:
		st = GNTSTBadDomain
	case d != me:
		st = GNTSTPermissionDenied
	case le.Uint32(b[0:]) > 0:
		st = GNTSTGeneralError
	}
	if st != GNTSTOkay {
		me.stats.failStatus(st, 1)
	}
	var sb [2]byte
	le.PutUint16(sb[:], status(st))
	if c.WriteGuest(uop+6, sb[:]) != nil {
		return -EFAULT
	}
	return 0
}

// swapGrantRefs is GNTTABOP_swap_grant_ref over count 12-byte elements.
func swapGrantRefs(c Caller, me *domain, uop, count uint64) int64 {
	var b [sizeofSwap]byte
	for i := range count {
		addr := uop + i*sizeofSwap
		if c.ReadGuest(addr, b[:]) != nil {
			return -EFAULT
		}
		st := me.swap(le.Uint32(b[0:]), le.Uint32(b[4:]))
		if st != GNTSTOkay {
			me.stats.failStatus(st, 1)
		}
		var sb [2]byte
		le.PutUint16(sb[:], status(st))
		if c.WriteGuest(addr+8, sb[:]) != nil {
			return -EFAULT
		}
	}
	return 0
}

// swap exchanges two of the domain's own entries. Neither may be pinned.
// Each 8-byte entry is loaded and stored atomically; the VMM changes
// entries only under tableMu and never touches an unpinned one, so the
// swap is atomic with respect to the VMM (the guest's own concurrent
// writes are its business).
// Preconditions: R(l1).
func (d *domain) swap(a, b uint32) int16 {
	d.tableMu.Lock()
	defer d.tableMu.Unlock()
	n := d.nrEntriesLocked()
	switch {
	case a >= n || b >= n:
		return GNTSTBadGntref
	case a == b:
		return GNTSTOkay
	case d.active[a] != nil || d.active[b] != nil:
		return GNTSTEagain
	}
	swapEntries(d.table, entryOff(a), entryOff(b))
	return GNTSTOkay
}

// queryRevoked is argovisor's GNTTABOP 64: report handles of the caller's
// mappings that were revoked since the last call. The argument is {u32 nr
// (in: capacity of the array, out: handles written); u32 pad; u64
// handles}. Handles are reported in ascending order; they leave the
// unreported set only when both the handles and nr were written, and stay
// allocated until unmapped.
// Preconditions: R(l1).
func queryRevoked(c Caller, me *domain, uop, count uint64) int64 {
	if count != 1 {
		return -EINVAL
	}
	var b [sizeofQueryRevoked]byte
	if c.ReadGuest(uop, b[:]) != nil {
		return -EFAULT
	}
	capacity, pad, arr := le.Uint32(b[0:]), le.Uint32(b[4:]), le.Uint64(b[8:])
	if pad != 0 {
		return -EINVAL
	}
	me.maptrackMu.Lock()
	defer me.maptrackMu.Unlock()
	handles := make([]uint32, 0, len(me.unreported))
	for h := range me.unreported {
		handles = append(handles, h)
	}
	slices.Sort(handles)
	handles = handles[:min(uint64(capacity), uint64(len(handles)))]
	if n := uint64(len(handles)); n > 0 {
		if arr+4*n < arr {
			return -EFAULT
		}
		out := make([]byte, 4*n)
		for i, h := range handles {
			le.PutUint32(out[4*i:], h)
		}
		if c.WriteGuest(arr, out) != nil {
			return -EFAULT
		}
	}
	var nb [4]byte
	le.PutUint32(nb[:], uint32(len(handles)))
	if c.WriteGuest(uop, nb[:]) != nil {
		return -EFAULT
	}
	for _, h := range handles {
		delete(me.unreported, h)
	}
	return 0
}
