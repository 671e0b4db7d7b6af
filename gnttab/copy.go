package gnttab

// copyPtr is one side of a gnttab_copy: {union {u32 ref; u64 gmfn}; u16
// domid; u16 offset}, 16 bytes with padding.
type copyPtr struct {
	refOrGmfn uint64
	dom       DomainID
	offset    uint16
}

func decodeCopyPtr(b []byte) copyPtr {
	return copyPtr{refOrGmfn: le.Uint64(b[0:]), dom: DomainID(le.Uint16(b[8:])), offset: le.Uint16(b[10:])}
}

// copyBuf is one side of a copy once claimed: the page and, for a grant,
// what to release afterwards.
type copyBuf struct {
	page  []byte
	owner *domain // non-nil: a pinned grant of owner
	ref   uint32
	ro    bool
}

func (b *copyBuf) release() {
	if b.owner != nil {
		b.owner.unpin(b.ref, b.ro)
		b.owner = nil
	}
}

// copyOps is GNTTABOP_copy over count 40-byte elements at uop.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) copyOps(c Caller, me *domain, uop, count uint64) int64 {
	var b [sizeofCopy]byte
	for i := range count {
		addr := uop + i*sizeofCopy
		if c.ReadGuest(addr, b[:]) != nil {
			return -EFAULT
		}
		src, dst := decodeCopyPtr(b[0:]), decodeCopyPtr(b[16:])
		n, flags := le.Uint16(b[32:]), le.Uint16(b[34:])
		st := g.copyOne(me, src, dst, n, flags)
		if st == GNTSTOkay {
			me.stats.copies.Add(1)
			me.stats.copyBytes.Add(uint64(n))
		} else {
			me.stats.failStatus(st, 1)
		}
		var sb [2]byte
		le.PutUint16(sb[:], status(st))
		if c.WriteGuest(addr+36, sb[:]) != nil {
			return -EFAULT
		}
	}
	return 0
}

// copyOne performs one copy in Xen's order (gnttab_copy_one): source
// domain, destination domain, access policy, claim the source (pinned
// read-only for the copy), claim the destination (pinned writable), then
// the bounds check, then the copy itself.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) copyOne(me *domain, src, dst copyPtr, n, flags uint16) int16 {
	g.l1.AssertRLocked()
	srcGref, dstGref := flags&GNTCOPYSourceGref != 0, flags&GNTCOPYDestGref != 0
	sd, st := g.copyDomain(me, src.dom, srcGref)
	if st != GNTSTOkay {
		return st
	}
	dd, st := g.copyDomain(me, dst.dom, dstGref)
	if st != GNTSTOkay {
		return st
	}
	if !me.mayUse(sd.id) || !me.mayUse(dd.id) {
		return GNTSTPermissionDenied
	}
	sb, st := claimCopyBuf(me, sd, src, srcGref, true)
	if st != GNTSTOkay {
		return st
	}
	defer sb.release()
	db, st := claimCopyBuf(me, dd, dst, dstGref, false)
	if st != GNTSTOkay {
		return st
	}
	defer db.release()
	if uint32(src.offset)+uint32(n) > PageSize || uint32(dst.offset)+uint32(n) > PageSize {
		return GNTSTBadCopyArg
	}
	// copy is memmove: an overlapping copy within one page is exact.
	copy(db.page[dst.offset:uint32(dst.offset)+uint32(n)], sb.page[src.offset:uint32(src.offset)+uint32(n)])
	return GNTSTOkay
}

// copyDomain resolves one side's domain: a raw frame (gmfn) may only be
// the caller's own; then the domain must exist.
// Preconditions: R(l1).
// +checklocksread:g.l1
func (g *GrantTables) copyDomain(me *domain, id DomainID, gref bool) (*domain, int16) {
	if !gref && !me.isSelf(id) {
		return nil, GNTSTPermissionDenied
	}
	d := g.lookup(me, id)
	if d == nil {
		return nil, GNTSTBadDomain
	}
	return d, GNTSTOkay
}

// claimCopyBuf gets one side's page: a grant of d pinned for me, or the
// caller's own frame.
// Preconditions: R(l1), d alive.
func claimCopyBuf(me, d *domain, p copyPtr, gref, ro bool) (copyBuf, int16) {
	if gref {
		ref := uint32(p.refOrGmfn) // the union's grant_ref_t is its low 32 bits
		st, _, page, _ := d.pin(ref, me.id, ro, false)
		if st != GNTSTOkay {
			return copyBuf{}, st
		}
		return copyBuf{page: page, owner: d, ref: ref, ro: ro}, GNTSTOkay
	}
	if p.refOrGmfn > (^uint64(0))>>pageShift {
		return copyBuf{}, GNTSTBadPage
	}
	page, err := d.mem.Slice(p.refOrGmfn<<pageShift, PageSize)
	if err != nil || len(page) != PageSize {
		return copyBuf{}, GNTSTBadPage
	}
	return copyBuf{page: page}, GNTSTOkay
}
