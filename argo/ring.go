package argo

import (
	"github.com/argovisor/argovisor/hcall"
	"github.com/argovisor/argovisor/internal/hsync"
)

// pendingEnt is one domain waiting for space in a ring (Xen's
// pending_ent): it is signalled once when `need` payload bytes fit. A
// domain has at most one entry per ring, which says how to signal it: a
// VIRQ (Xen's way: a send or notify query that got -EAGAIN), a wake of
// its wait queue (a batch sleeping in the VMM, BatchWaitSpace), or both.
type pendingEnt struct {
	dom  DomainID
	need uint32
	// virq: raise the domain's VIRQ when the request fits.
	virq bool
	// wq, if not nil, is the domain's wait queue, woken when the request
	// fits: one of its vCPUs sleeps in a batch waiting for space.
	wq *waitq
}

// ring is one registered ring (Xen's argo_ring_info).
type ring struct {
	owner DomainID
	key   ringKey

	// l3 guards the ring's state. Requires R(owner rings_L2). Lock
	// order: after rings_L2, before any wildcard_L2.
	l3 hsync.Mutex
	// len is the data length in bytes (fixed for the ring's life).
	// +checklocks:l3
	len uint32
	// tx is the VMM's private copy of tx_ptr; the header copy is only
	// ever written from it.
	// +checklocks:l3
	tx uint32
	// mem is the ring memory: header then data, one host slice per page.
	// +checklocks:l3
	mem ringMem
	// data is the data area as runs of host-contiguous memory (the same
	// bytes as mem), so that a send copies a run at a time.
	// +checklocks:l3
	data ringRuns
	// gfns are the owner's frames behind mem, in the same order.
	// +checklocks:l3
	gfns []uint64
	// pending are the space requests, at most MaxPendingPerRing.
	// +checklocks:l3
	pending []pendingEnt
	// ext is set for a ring registered with RegisterExtHeader: the VMM
	// then honours the receiver's rx_flags and rx_event and publishes
	// tx_wanted (ext.go). Without it the reserved bytes are never touched.
	// +checklocks:l3
	ext bool
	// ctx is set for a ring registered with RegisterSenderContext:
	// messages get the 32-byte header with the sending context
	// (identity.go).
	// +checklocks:l3
	ctx bool
	// unreadAtRemoval is set when the ring is removed (unregistered, or
	// its partner died) while it still held a message its owner had not
	// read. The message stays in the owner's memory — removal does not
	// retract it, in Xen either — so a wait that saw this ring before
	// the removal reports it as data (wait.go).
	// +checklocks:l3
	unreadAtRemoval bool
}

func newRing(owner DomainID, key ringKey, length, tx uint32, mem ringMem, data ringRuns, gfns []uint64, flags uint64) *ring {
	r := &ring{owner: owner, key: key}
	r.l3.Init(classL3)
	r.l3.Lock()
	r.len, r.tx, r.mem, r.data, r.gfns = length, tx, mem, data, gfns
	r.ext, r.ctx = flags&RegisterExtHeader != 0, flags&RegisterSenderContext != 0
	r.syncWanted()
	r.l3.Unlock()
	return r
}

func (r *ring) wildcard() bool { return r.key.partner == DomainAny }

// ringMem is ring memory spread over pages in order: byte i of the ring
// (header included) is pages[i/PageSize][i%PageSize].
type ringMem [][]byte

// span returns the host bytes for ring memory [off, off+n) that lie in one
// page: at most n bytes, fewer if the page ends first.
func (m ringMem) span(off, n uint64) []byte {
	p := m[off>>pageShift]
	o := off & (PageSize - 1)
	return p[o:min(o+n, PageSize)]
}

// ringRun is a piece of a ring's data area that is contiguous in host
// memory: data offsets [off, off+len(b)).
type ringRun struct {
	off uint32
	b   []byte
}

// ringRuns is a ring's whole data area as runs, in order, without gaps.
type ringRuns []ringRun

// dataRuns cuts the data area (ring bytes [RingHeaderSize,
// RingHeaderSize+length)) of a ring on frames gfns into host-contiguous
// runs: each stretch of consecutive frames is one Slice of mem, or, if mem
// will not give it as one piece, its pages (from pages, which the caller
// has already sliced, one per gfn). A ring laid out contiguously — the
// usual case — is one run.
func dataRuns(mem Memory, gfns []uint64, pages ringMem, length uint32) ringRuns {
	var runs ringRuns
	add := func(ringOff uint64, b []byte) { // b holds ring bytes [ringOff, ringOff+len(b))
		lo, hi := max(ringOff, RingHeaderSize), min(ringOff+uint64(len(b)), RingHeaderSize+uint64(length))
		if lo < hi {
			runs = append(runs, ringRun{off: uint32(lo - RingHeaderSize), b: b[lo-ringOff : hi-ringOff : hi-ringOff]})
		}
	}
	for i := 0; i < len(gfns); {
		j := i + 1
		for j < len(gfns) && gfns[j] == gfns[j-1]+1 {
			j++
		}
		if b, err := mem.Slice(gfns[i]<<pageShift, uint64(j-i)*PageSize); err == nil {
			add(uint64(i)*PageSize, b)
		} else {
			for k := i; k < j; k++ {
				add(uint64(k)*PageSize, pages[k])
			}
		}
		i = j
	}
	return runs
}

// populate asks mem (if it can, hcall.Populator) to make the pages of a
// ring on frames gfns present in the VMM's mapping now, one call per
// stretch of consecutive frames: every send writes them, and a fault per
// page there would be paid under the ring's lock. The caller holds
// W(rings_L2), so the frames cannot leave the domain meanwhile
// (HasRingPage).
func populate(mem Memory, gfns []uint64) {
	p, ok := mem.(hcall.Populator)
	if !ok {
		return
	}
	for i := 0; i < len(gfns); {
		j := i + 1
		for j < len(gfns) && gfns[j] == gfns[j-1]+1 {
			j++
		}
		p.Populate(gfns[i]<<pageShift, uint64(j-i)*PageSize)
		i = j
	}
}

// span returns the host bytes for data offsets [off, off+n) that lie in
// one run: at most n bytes, fewer if the run (or the data area) ends
// first. off must be inside the data area.
func (rs ringRuns) span(off uint32, n uint64) []byte {
	lo, hi := 0, len(rs)-1 // rs[lo].off <= off; find the last run starting at or before off
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if rs[mid].off <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	b := rs[lo].b[off-rs[lo].off:]
	return b[:min(uint64(len(b)), n)]
}

// rxPtr loads the guest-written rx_ptr (atomic: the guest writes it
// concurrently).
func (m ringMem) rxPtr() uint32 { return atomicLoad32(m[0][0:4]) }

// txPtr loads the header's tx_ptr.
func (m ringMem) txPtr() uint32 { return atomicLoad32(m[0][4:8]) }

// publishTx stores tx_ptr with release ordering after the data writes.
func (m ringMem) publishTx(v uint32) { atomicStore32(m[0][4:8], v) }

// sanitizedRx reads rx_ptr and makes it safe: rounded up to a slot and 0
// if out of range. Guest garbage in rx_ptr therefore only harms its own
// ring. Preconditions: r.l3 held.
// +checklocks:r.l3
func (r *ring) sanitizedRx() uint32 {
	rx := uint64(r.mem.rxPtr())
	rx = roundup16(rx)
	if rx >= uint64(r.len) {
		rx = 0
	}
	return uint32(rx)
}

// freeSpace is the free byte count between tx and rx (len when empty).
// Preconditions: r.l3 held.
// +checklocks:r.l3
func (r *ring) freeSpace(rx uint32) uint32 {
	if rx == r.tx {
		return r.len
	}
	return (rx + r.len - r.tx) % r.len
}

// payloadSpace is the largest payload that fits now: free space less the
// message header and the always-free reserve slot. Preconditions: r.l3.
// +checklocks:r.l3
func (r *ring) payloadSpace() uint32 {
	sp := r.freeSpace(r.sanitizedRx())
	if sp <= MsgSlotSize+r.hdrSize() {
		return 0
	}
	return sp - MsgSlotSize - r.hdrSize()
}

// maxPayload is the largest message this ring can ever take (MaxPayload,
// less what a longer header takes). Preconditions: r.l3.
// +checklocks:r.l3
func (r *ring) maxPayload() uint32 {
	return MaxPayload(r.len) - (r.hdrSize() - MsgHeaderSize)
}

// write copies n bytes into the data area at data offset *tx, wrapping at
// the ring end, and advances *tx (not rounded). fill produces the bytes for
// each destination piece; an error from it aborts the write. Preconditions:
// r.l3 held; n ≤ len.
// +checklocks:r.l3
func (r *ring) write(tx *uint32, n uint64, fill func(dst []byte) error) error {
	for n > 0 {
		chunk := min(n, uint64(r.len-*tx)) // up to the end of the data area
		for done := uint64(0); done < chunk; {
			dst := r.data.span(*tx+uint32(done), chunk-done)
			if err := fill(dst); err != nil {
				return err
			}
			done += uint64(len(dst))
		}
		*tx += uint32(chunk)
		if *tx == r.len {
			*tx = 0
		}
		n -= chunk
	}
	return nil
}

// writeBytes copies p into the data area at data offset *tx, wrapping at
// the ring end, one copy() per run, and advances *tx (not rounded).
// Preconditions: r.l3 held; len(p) ≤ len.
// +checklocks:r.l3
func (r *ring) writeBytes(tx *uint32, p []byte) {
	for len(p) > 0 {
		k := copy(r.data.span(*tx, uint64(len(p))), p)
		p = p[k:]
		*tx += uint32(k)
		if *tx == r.len {
			*tx = 0
		}
	}
}

// findPending returns the index of dom's pending entry or -1.
// +checklocks:r.l3
func (r *ring) findPending(dom DomainID) int {
	for i := range r.pending {
		if r.pending[i].dom == dom {
			return i
		}
	}
	return -1
}

// removePending drops entry i (order does not matter).
// +checklocks:r.l3
func (r *ring) removePending(i int) {
	last := len(r.pending) - 1
	r.pending[i] = r.pending[last]
	r.pending = r.pending[:last]
	r.syncWanted()
}
