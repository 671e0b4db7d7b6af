package gnttab

import "sync/atomic"

// entryOff is the byte offset of ref's v1 entry in the table.
func entryOff(ref uint32) uint64 { return uint64(ref) * EntrySize }

// nrEntriesLocked is the current number of usable refs.
// Preconditions: d.tableMu.
// +checklocks:d.tableMu
func (d *domain) nrEntriesLocked() uint32 {
	d.tableMu.AssertLocked()
	return d.nrFrames * EntriesPerFrame
}

// setStatusLocked validates ref's shared entry for grantee who and sets
// GTF_reading (and GTF_writing unless ro) with a compare-and-exchange over
// flags and domid together, as Xen's _set_status_v1 does. The type and
// domid are checked only when the entry is not pinned yet (pinned);
// the read-only bit always when writing. The guest may race us, so at most
// five exchanges are tried before the entry is declared unstable.
// mapping adds GTF_sub_page to the type mask (sub-page grants cannot be
// mapped). Preconditions: d.tableMu, d alive.
// +checklocks:d.tableMu
func (d *domain) setStatusLocked(ref uint32, who DomainID, ro, mapping, pinned bool) int16 {
	d.tableMu.AssertLocked()
	mask := uint32(GTFTypeMask)
	if mapping {
		mask |= GTFSubPage
	}
	w := word32(d.table, entryOff(ref))
	for tries := 0; ; tries++ {
		old := atomic.LoadUint32(w)
		flags, domid := old&0xFFFF, DomainID(old>>16)
		if !pinned && (flags&mask != GTFPermitAccess || domid != who) {
			return GNTSTGeneralError
		}
		nw := old | GTFReading
		if !ro {
			if flags&GTFReadonly != 0 {
				return GNTSTGeneralError
			}
			nw |= GTFWriting
		}
		if atomic.CompareAndSwapUint32(w, old, nw) {
			return GNTSTOkay
		}
		if tries == 4 {
			return GNTSTGeneralError // unstable entry
		}
	}
}

// clearFlagsLocked clears status bits in ref's shared entry: GTF_writing
// first, then GTF_reading, each with an atomic AND (which, unlike a
// compare-and-exchange loop, a guest cannot make fail). Nothing is touched
// once the domain is dead. Preconditions: d.tableMu.
// +checklocks:d.tableMu
func (d *domain) clearFlagsLocked(ref uint32, clear uint32) {
	d.tableMu.AssertLocked()
	if d.table == nil || clear == 0 {
		return
	}
	w := word32(d.table, entryOff(ref))
	if clear&GTFWriting != 0 {
		atomic.AndUint32(w, ^uint32(GTFWriting))
	}
	if clear&GTFReading != 0 {
		atomic.AndUint32(w, ^uint32(GTFReading))
	}
}

// acquireLocked pins ref for host access by grantee who: read-only if ro,
// else writable. It follows Xen's map and copy acquisition in order:
// bounds (GNTST_bad_gntref); an existing pin must belong to who and have
// no counter at its limit (GNTST_general_error); on the first pin, or
// when the first writable pin is added, the shared entry is validated and
// marked (setStatusLocked); on the first pin the frame must be in the
// granter's RAM (GNTST_bad_page). On failure nothing stays pinned and the
// shared flags are back to what the pins imply.
// Preconditions: d.tableMu, d alive.
// +checklocks:d.tableMu
func (d *domain) acquireLocked(ref uint32, who DomainID, ro, mapping bool) (*activeEntry, int16) {
	d.tableMu.AssertLocked()
	if ref >= d.nrEntriesLocked() {
		return nil, GNTSTBadGntref
	}
	act := d.active[ref]
	if act != nil && (act.grantee != who || act.pin&pinOverflowBits != 0) {
		return nil, GNTSTGeneralError
	}
	if act == nil || (!ro && act.pin&pinWriteMask == 0) {
		if st := d.setStatusLocked(ref, who, ro, mapping, act != nil); st != GNTSTOkay {
			return nil, st
		}
		if act == nil {
			gfn := uint64(atomic.LoadUint32(word32(d.table, entryOff(ref)+4)))
			page, err := d.mem.Slice(gfn<<pageShift, PageSize)
			if err != nil || len(page) != PageSize {
				clear := uint32(GTFReading)
				if !ro {
					clear |= GTFWriting
				}
				d.clearFlagsLocked(ref, clear)
				return nil, GNTSTBadPage
			}
			act = &activeEntry{grantee: who, gfn: gfn, page: page}
			d.active[ref] = act
			d.activeFrames[gfn]++
		}
	}
	if ro {
		act.pin += pinHostR
	} else {
		act.pin += pinHostW
	}
	return act, GNTSTOkay
}

// releaseLocked drops one host pin of ref taken by acquireLocked. When
// the last writable pin goes GTF_writing is cleared, and when the last pin
// goes GTF_reading too, which tells the granter the entry is unused.
// Preconditions: d.tableMu; ref is pinned that way.
// +checklocks:d.tableMu
func (d *domain) releaseLocked(ref uint32, ro bool) {
	d.tableMu.AssertLocked()
	act := d.active[ref]
	if act == nil {
		return // cannot happen: pins are accounted exactly
	}
	if ro {
		act.pin -= pinHostR
	} else {
		act.pin -= pinHostW
	}
	var clear uint32
	if !ro && act.pin&pinWriteMask == 0 {
		clear |= GTFWriting
	}
	if act.pin == 0 {
		clear |= GTFReading
		delete(d.active, ref)
		if d.activeFrames[act.gfn]--; d.activeFrames[act.gfn] == 0 {
			delete(d.activeFrames, act.gfn)
		}
	}
	d.clearFlagsLocked(ref, clear)
}

// pin takes a host pin on one of d's grants for grantee who (see
// acquireLocked) and returns the frame and its host memory. For a mapping
// it also returns the entry's cache-attribute bits.
// Preconditions: R(l1), d alive.
func (d *domain) pin(ref uint32, who DomainID, ro, mapping bool) (st int16, gfn uint64, page []byte, cache uint32) {
	d.tableMu.Lock()
	defer d.tableMu.Unlock()
	act, st := d.acquireLocked(ref, who, ro, mapping)
	if st != GNTSTOkay {
		return st, 0, nil, 0
	}
	if mapping {
		cache = atomic.LoadUint32(word32(d.table, entryOff(ref))) & gtfCacheMask
	}
	return GNTSTOkay, act.gfn, act.page, cache
}

// unpin drops a pin taken by pin.
// Preconditions: R(l1).
func (d *domain) unpin(ref uint32, ro bool) {
	d.tableMu.Lock()
	d.releaseLocked(ref, ro)
	d.tableMu.Unlock()
}

// swapEntries exchanges the 8-byte entries at offsets a and b, each loaded
// and stored atomically.
func swapEntries(table []byte, a, b uint64) {
	pa, pb := word64(table, a), word64(table, b)
	va, vb := atomic.LoadUint64(pa), atomic.LoadUint64(pb)
	atomic.StoreUint64(pa, vb)
	atomic.StoreUint64(pb, va)
}
