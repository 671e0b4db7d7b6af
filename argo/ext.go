package argo

// The extended ring header: argovisor's opt-in use of the 56 reserved bytes
// of xen_argo_ring (docs/argo.md, "Beyond Xen: fewer transitions"). A ring
// registered with RegisterExtHeader gets, next to Xen's rx_ptr and tx_ptr:
//
//	offset  8  rx_flags   receiver-written: RxFlagEvent, RxFlagPolling
//	offset 12  rx_event   receiver-written: VIRQ only when tx moves past it
//	offset 16  tx_wanted  VMM-written: ring bytes the smallest waiting
//	                      sender's message needs, 0 when nobody waits
//
// The receiver-written words are read like rx_ptr: atomically, once per
// decision, and sanitised, so a guest's garbage only affects the VIRQs of
// its own ring and never makes the VMM fault or loop. Rings registered
// without the flag behave exactly as in Xen.

// RegisterExtHeader (XEN_ARGO_REGISTER_FLAG_EXT_HEADER in argo.h) opts a
// ring into the extended header. Xen rejects the bit with -EINVAL.
const RegisterExtHeader = 0x10000

// registerFlags are the register_ring flags argovisor accepts.
const registerFlags = RegisterFailExist | RegisterExtHeader | RegisterSenderContext

// Header offsets of the extension.
const (
	hdrRxFlags  = 8
	hdrRxEvent  = 12
	hdrTxWanted = 16
)

// rx_flags bits; other bits are ignored.
const (
	// RxFlagEvent: raise the VIRQ only for a send that moves tx_ptr off
	// or over rx_event (virtio's event index, in ring offsets).
	RxFlagEvent = 0x1
	// RxFlagPolling: never raise the VIRQ for data on this ring (the
	// receiver polls or waits in the VMM). Wins over RxFlagEvent.
	RxFlagPolling = 0x2
)

// load32 and store32 access a 32-bit header word shared with the guest.
func (m ringMem) load32(off int) uint32     { return atomicLoad32(m[0][off : off+4]) }
func (m ringMem) store32(off int, v uint32) { atomicStore32(m[0][off:off+4], v) }

// wantIRQ decides whether a send that moved tx from old to new raises the
// receiver's VIRQ. It must run after tx_ptr is published: the receiver
// publishes rx_flags/rx_event and then re-reads tx_ptr, the VMM publishes
// tx_ptr and then reads rx_flags/rx_event, both with sequentially
// consistent accesses, so at least one of the two sees the other's store
// and a wake-up is never lost (docs/argo.md, "The race-free order").
// Each word is read once, so flags flipping mid-send give the answer of
// one consistent reading. Preconditions: r.l3 held.
// +checklocks:r.l3
func (r *ring) wantIRQ(old, new uint32) bool {
	r.l3.AssertLocked()
	if !r.ext {
		return true
	}
	flags := r.mem.load32(hdrRxFlags)
	if flags&RxFlagPolling != 0 {
		return false
	}
	if flags&RxFlagEvent == 0 {
		return true
	}
	return eventCrossed(r.mem.load32(hdrRxEvent), old, new, r.len)
}

// eventCrossed reports whether a move of tx from old to new (forward,
// modulo length) leaves ev behind: ev lies in [old, new). An event index
// that is not a slot offset inside the ring (guest garbage) counts as
// crossed by every send, which is Xen's behaviour, so no value of it can
// suppress a VIRQ that a correct index would have raised.
func eventCrossed(ev, old, new, length uint32) bool {
	if length == 0 || ev >= length || ev%MsgSlotSize != 0 {
		return true
	}
	moved := (uint64(new) + uint64(length) - uint64(old)) % uint64(length)
	if moved == 0 {
		return true // a send always moves tx; be safe if it did not
	}
	return (uint64(ev)+uint64(length)-uint64(old))%uint64(length) < moved
}

// syncWanted publishes tx_wanted from the pending requests: the ring bytes
// (header plus padded payload) of the smallest waiting message, or 0. A
// reader that has freed more than that many bytes calls notify; otherwise
// a notify would wake nobody. It is called whenever the pending list
// changes. Preconditions: r.l3 held.
// +checklocks:r.l3
func (r *ring) syncWanted() {
	r.l3.AssertLocked()
	if !r.ext || r.mem == nil {
		return
	}
	r.mem.store32(hdrTxWanted, wantedBytes(r.pending, r.hdrSize()))
}

// wantedBytes is tx_wanted for a pending list, with message headers of
// hdr bytes.
func wantedBytes(pending []pendingEnt, hdr uint32) uint32 {
	var w uint64
	for _, p := range pending {
		s := roundup16(uint64(p.need)) + uint64(hdr)
		if w == 0 || s < w {
			w = s
		}
	}
	return uint32(min(w, MaxRingSize))
}

// wakeFittingLocked signals, once, every domain whose space request on r
// now fits, and drops those requests (the body of notify's first step for
// one ring). Preconditions: R(L1), L3(r) of owner st's ring.
// +checklocks:r.l3
func (a *Argo) wakeFittingLocked(st *domainArgo, r *ring, sig *signals) {
	a.assertL3(st, r)
	if len(r.pending) == 0 {
		return
	}
	space := r.payloadSpace()
	for i := 0; i < len(r.pending); {
		p := r.pending[i]
		if p.need > space {
			i++
			continue
		}
		r.removePending(i)
		if r.wildcard() {
			a.forgetWildcardPending(p.dom, ringRef{owner: st.id, port: r.key.port})
		}
		p.signal(sig)
		st.info.stats.signals.Add(1)
	}
}

// signal adds the ways p asked to be told to sig: its VIRQ, its wait
// queue (a batch sleeping for space), or both.
func (p pendingEnt) signal(sig *signals) {
	if p.virq {
		sig.add(p.dom)
	}
	if p.wq != nil {
		sig.wake(p.wq)
	}
}

// announceWanted publishes, before a sender's second look at rx_ptr, that
// a message of slot ring bytes waits: the smaller of that and what the
// pending requests already want. queuePendingLocked or syncWanted then
// publish the exact value. Preconditions: r.l3 held; r.ext.
// +checklocks:r.l3
func (r *ring) announceWanted(slot uint32) {
	r.l3.AssertLocked()
	w := wantedBytes(r.pending, r.hdrSize())
	if w == 0 || slot < w {
		w = slot
	}
	r.mem.store32(hdrTxWanted, w)
}
