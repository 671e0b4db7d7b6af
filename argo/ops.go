package argo

import (
	"math"

	"github.com/argovisor/argovisor/hcall"
)

// Op performs one argo_op hypercall for caller c: cmd in arg0 position,
// then arg1..arg4 (Xen's order). It returns the value for RAX: 0 or a byte
// count on success, a negated errno on failure. It never panics on guest
// input.
func (a *Argo) Op(c Caller, cmd, arg1, arg2, arg3, arg4 uint64) int64 {
	// Common entry checks (reference §5.0), in order.
	if arg3 > math.MaxUint32 || arg4 > math.MaxUint32 {
		return -EINVAL
	}
	if cmd == OpWait || cmd == OpSendWait {
		return a.waitOp(c, cmd, arg1, arg2, arg3, arg4) // may sleep: no L1 held across
	}
	if cmd == OpSendvBatch && arg4&BatchWaitSpace != 0 {
		return a.batchWaitOp(c, arg1, arg2, arg3, arg4) // the same
	}
	a.l1.RLock()
	defer a.l1.RUnlock()
	me := a.callerState(c)
	if me == nil {
		return -EOPNOTSUPP
	}
	var ret int64
	switch cmd {
	case OpRegisterRing:
		ret = a.registerRing(c, me, arg1, arg2, arg3, arg4)
		me.stats.registers.Add(1)
	case OpUnregisterRing:
		ret = a.unregisterRing(c, me, arg1, arg2, arg3, arg4)
	case OpSendv:
		ret = a.sendv(c, me, arg1, arg2, arg3, arg4)
	case OpNotify:
		ret = a.notify(c, me, arg1, arg2, arg3, arg4)
		me.stats.notifies.Add(1)
	case OpSendvBatch:
		ret = a.sendvBatch(c, me, arg1, arg2, arg3, arg4)
	case OpDomainInfo:
		ret = a.domainInfoOp(c, me, arg1, arg2, arg3, arg4)
	default:
		return -EOPNOTSUPP
	}
	if ret < 0 {
		me.stats.errors.Add(1)
		me.stats.errnos.Add(ret)
	}
	return ret
}

// callerState is the calling domain's Argo state, or nil when the domain
// is unknown to Argo or has it disabled (every op is then -EOPNOTSUPP).
// Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) callerState(c Caller) *domainInfo {
	a.assertReadL1()
	if me := a.known[c.Domain()]; me != nil && me.enabled {
		return me
	}
	return nil
}

// registerRing is XEN_ARGO_OP_register_ring (reference §5.1).
// Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) registerRing(c Caller, me *domainInfo, regAddr, gfnAddr, npages, flags uint64) int64 {
	a.assertReadL1()
	if npages > MaxRingPages {
		return -EINVAL
	}
	gfnBytes := make([]byte, npages*8)
	if npages > 0 && readGuest(c, gfnAddr, gfnBytes) != nil {
		return -EFAULT
	}
	if flags&^registerFlags != 0 {
		return -EINVAL
	}
	var rb [sizeofRegisterRing]byte
	if readGuest(c, regAddr, rb[:]) != nil {
		return -EFAULT
	}
	port, partner, pad, length := le.Uint32(rb[0:]), DomainID(le.Uint16(rb[4:])), le.Uint16(rb[6:]), le.Uint32(rb[8:])
	if length < MinRingSize || length > MaxRingSize || length%MsgSlotSize != 0 ||
		npages != uint64(RingPages(length)) || pad != 0 {
		return -EINVAL
	}
	if partner == DomainAny {
		if !me.wildcard {
			return -EPERM
		}
	} else if a.known[partner] == nil {
		return -ESRCH
	}
	st := a.state[me.id]
	if st == nil {
		return -ENODEV
	}
	var pst *domainArgo
	if partner != DomainAny {
		if pst = a.state[partner]; pst == nil {
			return -ECONNREFUSED
		}
	}
	return a.registerLocked(st, pst, ringKey{port: port, partner: partner}, length, flags, gfnBytes)
}

// registerLocked finishes a registration once the arguments are valid.
// Better than Xen: an existing ring does not count against the limit
// again, and nothing changes until every page is known good, so a failed
// re-registration leaves the old ring intact.
// Preconditions: R(L1); st and pst (nil for a wildcard ring) have state.
// +checklocksread:a.l1
func (a *Argo) registerLocked(st, pst *domainArgo, key ringKey, length uint32, flags uint64, gfnBytes []byte) int64 {
	st.ringsL2.Lock()
	defer st.ringsL2.Unlock()
	old := st.rings[key]
	if old == nil && len(st.rings) >= MaxRingsPerDomain {
		return -ENOSPC
	}
	if old != nil {
		if flags&RegisterFailExist != 0 {
			return -EEXIST
		}
		old.l3.Lock()
		oldLen := old.len
		old.l3.Unlock()
		if oldLen != length {
			return -EEXIST
		}
	}
	mem := make(ringMem, len(gfnBytes)/8)
	gfns := make([]uint64, len(mem))
	for i := range mem {
		gfn := le.Uint64(gfnBytes[i*8:])
		gfns[i] = gfn
		if gfn > math.MaxUint64>>pageShift {
			return -EFAULT
		}
		p, err := st.mem.Slice(gfn<<pageShift, PageSize)
		if err != nil {
			return -EFAULT
		}
		mem[i] = p
	}
	data := dataRuns(st.mem, gfns, mem, length)
	populate(st.mem, gfns)
	// tx_ptr: keep the one in ring memory if it is sane (re-registration
	// after resume relies on it), else restart at the sanitized rx.
	tx := mem.txPtr()
	if tx >= length || tx%MsgSlotSize != 0 {
		rx := roundup16(uint64(mem.rxPtr()))
		if rx >= uint64(length) {
			rx = 0
		}
		tx = uint32(rx)
		mem.publishTx(tx)
	}
	if old != nil {
		old.l3.Lock()
		old.mem, old.data, old.gfns, old.tx = mem, data, gfns, tx
		old.ext, old.ctx = flags&RegisterExtHeader != 0, flags&RegisterSenderContext != 0
		old.syncWanted()
		old.l3.Unlock()
		return 0
	}
	a.insertRingLocked(st, newRing(st.id, key, length, tx, mem, data, gfns, flags))
	if pst != nil {
		pst.sendL2.Lock()
		pst.sendInfo[ringRef{owner: st.id, port: key.port}] = struct{}{}
		pst.sendL2.Unlock()
	}
	return 0
}

// insertRingLocked adds r to its owner's table. Preconditions: W(rings_L2).
// +checklocks:st.ringsL2
func (a *Argo) insertRingLocked(st *domainArgo, r *ring) {
	a.assertWriteRingsL2(st)
	st.rings[r.key] = r
	st.info.stats.rings.Add(1)
}

// removeRingLocked deletes r from its owner's table and drops its pending
// space requests. Better than Xen, which drops them silently: every waiter
// is added to sig, so a sender halted after -EAGAIN wakes, retries and
// learns the ring is gone (-ECONNREFUSED) instead of sleeping forever.
// Preconditions: R(L1) (or W), W(st.ringsL2).
// +checklocks:st.ringsL2
func (a *Argo) removeRingLocked(st *domainArgo, r *ring, sig *signals) {
	a.assertWriteRingsL2(st)
	delete(st.rings, r.key)
	st.info.stats.rings.Add(-1)
	r.l3.Lock()
	for _, p := range r.pending {
		if r.wildcard() {
			a.forgetWildcardPending(p.dom, ringRef{owner: st.id, port: r.key.port})
		}
		p.signal(sig) // a batch sleeping for space retries: -ECONNREFUSED
	}
	r.pending = nil
	// Last look at the memory: a message delivered and not yet read is
	// still the owner's to read, and a wait already on this ring must
	// report it rather than -ENOENT (wait.go).
	r.unreadAtRemoval = r.tx != r.sanitizedRx()
	r.mem, r.data, r.gfns = nil, nil, nil
	r.l3.Unlock()
	sig.wake(st.info.wq) // a vCPU waiting on this ring looks again
}

// forgetWildcardPending drops a waiter's reference to a wildcard ring it
// no longer waits on. Preconditions: R(L1) (or W); the ring's L3 may be
// held (wildcard_L2 is a leaf).
// +checklocksignore: reads a.state under the caller's L1 (read or write).
func (a *Argo) forgetWildcardPending(waiter DomainID, ref ringRef) {
	ws := a.state[waiter]
	if ws == nil {
		return
	}
	ws.wildcardL2.Lock()
	delete(ws.wildcardPending, ref)
	ws.wildcardL2.Unlock()
}

// unregisterRing is XEN_ARGO_OP_unregister_ring (reference §5.2).
// Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) unregisterRing(c Caller, me *domainInfo, arg1, arg2, arg3, arg4 uint64) int64 {
	a.assertReadL1()
	if arg2 != 0 || arg3 != 0 || arg4 != 0 {
		return -EINVAL
	}
	var ub [sizeofUnregister]byte
	if readGuest(c, arg1, ub[:]) != nil {
		return -EFAULT
	}
	port, partner, pad := le.Uint32(ub[0:]), DomainID(le.Uint16(ub[4:])), le.Uint16(ub[6:])
	if pad != 0 {
		return -EINVAL
	}
	st := a.state[me.id]
	if st == nil {
		return -ENODEV
	}
	var sig signals
	defer a.raise(&sig) // deferred calls run last-in first-out: after the unlock
	st.ringsL2.Lock()
	defer st.ringsL2.Unlock()
	r := st.rings[ringKey{port: port, partner: partner}]
	if r == nil {
		return -ENOENT
	}
	a.removeRingLocked(st, r, &sig)
	if partner != DomainAny {
		if pst := a.state[partner]; pst != nil {
			pst.sendL2.Lock()
			delete(pst.sendInfo, ringRef{owner: st.id, port: port})
			pst.sendL2.Unlock()
		}
	}
	return 0
}

// lookupRing finds the most specific ring of dst for sender src: the
// unicast ring (port, src) first, then the wildcard ring (port, ANY).
// Preconditions: R(dst.ringsL2).
// +checklocksread:dst.ringsL2
func (a *Argo) lookupRing(dst *domainArgo, port uint32, src DomainID) *ring {
	a.assertReadRingsL2(dst)
	if r := dst.rings[ringKey{port: port, partner: src}]; r != nil {
		return r
	}
	return dst.rings[ringKey{port: port, partner: DomainAny}]
}

// iov is one decoded xen_argo_iov.
type iov struct {
	addr uint64
	len  uint32
	pad  uint32
}

// sendv is XEN_ARGO_OP_sendv (reference §5.3). It returns the payload
// length on success.
// Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) sendv(c Caller, me *domainInfo, addrAddr, iovAddr, niov, msgType uint64) int64 {
	a.assertReadL1()
	var ab [sizeofSendAddr]byte
	if readGuest(c, addrAddr, ab[:]) != nil {
		return -EFAULT
	}
	var sig signals
	ret := a.sendOne(c, me, &ab, iovAddr, niov, uint32(msgType), spaceVIRQ, &sig)
	a.raise(&sig)
	return ret
}

// spaceReq says what a send that finds its ring full leaves behind.
type spaceReq uint8

const (
	// spaceVIRQ: a space request whose VIRQ comes when the message fits
	// (Xen's sendv; the send returns -EAGAIN).
	spaceVIRQ spaceReq = iota
	// spaceWake: a request that wakes the sender's wait queue instead of
	// raising its VIRQ: the sender is a batch that will sleep in the VMM
	// until the message fits (BatchWaitSpace). It is announced in
	// tx_wanted like any other.
	spaceWake
)

// sendOne is sendv once its send_addr has been read: every later check in
// Xen's order, then the copy. sendv and the batched send share it, so a
// message in a batch gets exactly the result sendv would give it. Domains
// to signal are added to sig; how says what a full ring leaves behind.
// Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) sendOne(c Caller, me *domainInfo, ab *[sizeofSendAddr]byte, iovAddr, niov uint64, msgType uint32, how spaceReq, sig *signals) int64 {
	a.assertReadL1()
	if niov > MaxIOV {
		return -EINVAL
	}
	var ib [MaxIOV * sizeofIOV]byte
	if niov > 0 && readGuest(c, iovAddr, ib[:niov*sizeofIOV]) != nil {
		return -EFAULT
	}
	src, dst := decodeAddr(ab[0:]), decodeAddr(ab[8:])
	if src.Pad != 0 || dst.Pad != 0 {
		return -EINVAL
	}
	if src.Domain == DomainAny {
		src.Domain = me.id
	} else if src.Domain != me.id {
		return -EPERM
	}
	dinfo := a.known[dst.Domain]
	if dinfo == nil {
		return -ESRCH
	}
	if !me.maySendTo(dst.Domain) {
		return -EACCES
	}
	st := a.state[me.id]
	if st == nil {
		return -ENODEV
	}
	dst2 := a.state[dst.Domain]
	if dst2 == nil {
		return -ECONNREFUSED
	}
	var iovs [MaxIOV]iov
	for i := range niov {
		b := ib[i*sizeofIOV:]
		iovs[i] = iov{addr: le.Uint64(b), len: le.Uint32(b[8:]), pad: le.Uint32(b[12:])}
	}
	return a.sendLocked(c, st, dst2, src, dst.Port, iovs[:niov], msgType, how, sig)
}

// sendLocked looks up the ring, checks the iovs and space, and copies the
// message. Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) sendLocked(c Caller, st, dst *domainArgo, src Addr, port uint32, iovs []iov, msgType uint32, how spaceReq, sig *signals) int64 {
	dst.ringsL2.RLock()
	defer dst.ringsL2.RUnlock()
	r := a.lookupRing(dst, port, st.id)
	if r == nil {
		return -ECONNREFUSED
	}
	var total uint64
	for _, v := range iovs {
		if v.pad != 0 {
			return -EINVAL
		}
		if v.len > MaxMessageSize {
			return -EINVAL
		}
		total += uint64(v.len)
		if total > MaxMessageSize {
			return -EMSGSIZE
		}
	}
	r.l3.Lock()
	defer r.l3.Unlock()
	a.assertL3(dst, r)
	hdrLen := uint64(r.hdrSize())
	if uint64(r.len) <= hdrLen+roundup16(total) {
		return -EMSGSIZE
	}
	slot := roundup16(total) + hdrLen
	rx := r.sanitizedRx()
	if slot >= uint64(r.freeSpace(rx)) && r.ext {
		if a.raceHook != nil {
			a.raceHook()
		}
		// Extended header: tell the reader a sender waits, then look at
		// rx_ptr again. The reader stores rx_ptr and then reads
		// tx_wanted, so either it sees the announcement (and notifies)
		// or this second read sees the space it freed.
		r.announceWanted(uint32(slot))
		if rx = r.sanitizedRx(); slot < uint64(r.freeSpace(rx)) {
			r.syncWanted()
		}
	}
	if slot >= uint64(r.freeSpace(rx)) {
		if how == spaceVIRQ {
			st.info.stats.eagains.Add(1) // a wait for space is no -EAGAIN
		}
		ret := a.queuePendingLocked(st, r, uint32(total), how)
		if r.ext {
			a.wakeFittingLocked(dst, r, sig)
		}
		return ret
	}
	// Header, then the payload; nothing is visible until tx_ptr moves.
	oldTx := r.tx
	tx := r.tx
	var hdr [CtxMsgHeaderSize]byte
	le.PutUint32(hdr[0:], uint32(total+hdrLen))
	encodeAddr(hdr[4:], Addr{Port: src.Port, Domain: st.id})
	le.PutUint32(hdr[12:], msgType)
	if r.ctx {
		o := originOf(c) // from the exit: the sender cannot choose it
		le.PutUint32(hdr[16:], o.vcpu)
		le.PutUint32(hdr[20:], o.flags)
		le.PutUint64(hdr[24:], o.cr3)
	}
	// The header (a 16-byte one never crosses the ring's end, as tx is
	// slot aligned; the 32-byte one may), then each iov.
	r.writeBytes(&tx, hdr[:hdrLen])
	if !r.copyIovs(c, &tx, iovs) {
		return -EFAULT
	}
	tx = uint32(roundup16(uint64(tx)))
	if tx >= r.len {
		tx -= r.len
	}
	r.tx = tx
	r.mem.publishTx(tx)
	st.info.stats.msgsOut.Add(1)
	st.info.stats.bytesOut.Add(total)
	dst.info.stats.msgsIn.Add(1)
	dst.info.stats.bytesIn.Add(total)
	sig.wake(dst.info.wq)
	if r.wantIRQ(oldTx, tx) {
		sig.add(dst.id)
	} else {
		dst.info.stats.suppressed.Add(1)
	}
	if r.ext {
		// The VMM sees rx_ptr on every send: wake space waiters
		// without waiting for the reader's notify.
		a.wakeFittingLocked(dst, r, sig)
	}
	return int64(total)
}

// copyIovs copies the payload from the sender's iovs into the data area at
// *tx, wrapping, and advances *tx. A caller that can map its memory
// (hcall.Mapper, every guest's) is copied one contiguous run at a time:
// each run of the source is translated once (one page walk per page of
// the guest's page size at most) and copied with one copy() per piece of
// the ring it meets. Others are read with ReadGuest per ring piece. It
// reports false (-EFAULT) if any byte cannot be read; the bytes written
// by then lie in free ring space that tx_ptr does not cover, so nothing is
// published. Preconditions: r.l3 held; the iovs fit.
// +checklocks:r.l3
func (r *ring) copyIovs(c Caller, tx *uint32, iovs []iov) bool {
	m, mapped := c.(hcall.Mapper)
	for _, v := range iovs {
		addr, left := v.addr, uint64(v.len)
		if !mapped {
			err := r.write(tx, left, func(dst []byte) error {
				if err := c.ReadGuest(addr, dst); err != nil {
					return err
				}
				addr += uint64(len(dst))
				return nil
			})
			if err != nil {
				return false
			}
			continue
		}
		for left > 0 {
			src, err := m.MapGuest(addr, left, false)
			if err != nil || len(src) == 0 || uint64(len(src)) > left {
				return false
			}
			r.writeBytes(tx, src)
			addr += uint64(len(src))
			left -= uint64(len(src))
		}
	}
	return true
}

// queuePendingLocked records that st wants need payload bytes in r and
// returns -EAGAIN, or -EBUSY when the ring already has the most waiters.
// how says how st is to be told: a repeated request keeps the larger size
// and adds its way to the entry's. Preconditions: L3(r).
// +checklocks:r.l3
func (a *Argo) queuePendingLocked(st *domainArgo, r *ring, need uint32, how spaceReq) int64 {
	if i := r.findPending(st.id); i >= 0 {
		p := &r.pending[i]
		p.need = max(p.need, need)
		p.setWay(st, how)
		r.syncWanted()
		return -EAGAIN
	}
	if len(r.pending) >= MaxPendingPerRing {
		r.syncWanted() // undo a sender's announcement (sendLocked)
		return -EBUSY
	}
	p := pendingEnt{dom: st.id, need: need}
	p.setWay(st, how)
	r.pending = append(r.pending, p)
	r.syncWanted()
	if r.wildcard() {
		st.wildcardL2.Lock()
		st.wildcardPending[ringRef{owner: r.owner, port: r.key.port}] = struct{}{}
		st.wildcardL2.Unlock()
	}
	return -EAGAIN
}

// setWay adds how to the ways p's domain (st) is told that it fits.
func (p *pendingEnt) setWay(st *domainArgo, how spaceReq) {
	if how == spaceWake {
		p.wq = st.info.wq
	} else {
		p.virq = true
	}
}

// notify is XEN_ARGO_OP_notify (reference §5.4).
// Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) notify(c Caller, me *domainInfo, dataAddr, arg2, arg3, arg4 uint64) int64 {
	a.assertReadL1()
	if arg2 != 0 || arg3 != 0 || arg4 != 0 {
		return -EINVAL
	}
	st := a.state[me.id]
	if st == nil {
		return -ENODEV
	}
	var sig signals
	defer a.raise(&sig)
	a.wakeWaitersOn(st, &sig)
	if dataAddr == 0 {
		return 0
	}
	var hb [sizeofRingData]byte
	if readGuest(c, dataAddr, hb[:]) != nil {
		return -EFAULT
	}
	nent := le.Uint32(hb[0:])
	if nent > MaxNotifyCount {
		return -EACCES
	}
	ents := make([]byte, int(nent)*sizeofRingDataEnt)
	if nent > 0 && readGuest(c, dataAddr+sizeofRingData, ents) != nil {
		return -EFAULT
	}
	for i := range int(nent) {
		e := ents[i*sizeofRingDataEnt : (i+1)*sizeofRingDataEnt]
		ringAddr := decodeAddr(e[0:])
		need := le.Uint32(e[12:])
		flags, mms := uint16(0), le.Uint32(e[16:])
		if dst := a.state[ringAddr.Domain]; dst != nil {
			if !me.maySendTo(ringAddr.Domain) {
				return -EACCES
			}
			flags, mms = a.queryRing(st, dst, ringAddr.Port, need, mms, &sig)
		}
		le.PutUint16(e[8:], flags)
		le.PutUint32(e[16:], mms)
		if writeGuest(c, dataAddr+sizeofRingData+uint64(i)*sizeofRingDataEnt, e) != nil {
			return -EFAULT
		}
	}
	return 0
}

// wakeWaitersOn signals, once, every domain whose space request on one of
// st's rings now fits. Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) wakeWaitersOn(st *domainArgo, sig *signals) {
	st.ringsL2.RLock()
	defer st.ringsL2.RUnlock()
	for _, r := range st.rings {
		r.l3.Lock()
		a.wakeFittingLocked(st, r, sig)
		r.l3.Unlock()
	}
}

// queryRing fills one notify entry for sender st about dst's ring at port.
// Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) queryRing(st, dst *domainArgo, port, need, mms uint32, sig *signals) (uint16, uint32) {
	dst.ringsL2.RLock()
	defer dst.ringsL2.RUnlock()
	r := a.lookupRing(dst, port, st.id)
	if r == nil {
		return 0, mms
	}
	r.l3.Lock()
	defer r.l3.Unlock()
	flags := uint16(RingExists)
	mms = r.maxPayload()
	if r.wildcard() {
		flags |= RingShared
	}
	space := r.payloadSpace()
	if need <= mms && space < need && r.ext {
		// As in sendLocked: announce in tx_wanted, then look again.
		r.announceWanted(uint32(roundup16(uint64(need))) + r.hdrSize())
		if space = r.payloadSpace(); space >= need {
			r.syncWanted()
		}
	}
	switch {
	case need > mms:
		flags |= RingEMsgSize
	case space >= need:
		flags |= RingSufficient
		if i := r.findPending(st.id); i >= 0 {
			p := r.pending[i]
			r.removePending(i)
			if r.wildcard() {
				a.forgetWildcardPending(st.id, ringRef{owner: dst.id, port: port})
			}
			if p.wq != nil {
				// Another vCPU of st sleeps in a batch for this
				// space: the request it shared ends here, so wake it.
				sig.wake(p.wq)
			}
		}
	default:
		if a.queuePendingLocked(st, r, need, spaceVIRQ) == -EBUSY {
			flags |= RingEBusy
		}
	}
	if space == mms {
		flags |= RingEmpty
	}
	return flags, mms
}
