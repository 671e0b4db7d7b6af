package gnttab

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// span is a byte range [lo, hi).
type span struct{ lo, hi uint64 }

func (s span) has(a uint64) bool { return a >= s.lo && a < s.hi }

// recorder wraps a fake domain as Caller and Memory and records every
// range gnttab writes through the Caller and every range it takes from
// Memory.
type recorder struct {
	*fakeDomain
	mu     sync.Mutex
	writes []span
	slices []span
}

func (r *recorder) WriteGuest(addr uint64, p []byte) error {
	r.mu.Lock()
	r.writes = append(r.writes, span{addr, addr + uint64(len(p))})
	r.mu.Unlock()
	return r.fakeDomain.WriteGuest(addr, p)
}

func (r *recorder) Slice(gpa, n uint64) ([]byte, error) {
	b, err := r.fakeDomain.Slice(gpa, n)
	if err == nil {
		r.mu.Lock()
		r.slices = append(r.slices, span{gpa, gpa + n})
		r.mu.Unlock()
	}
	return b, err
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.writes, r.slices = nil, nil
	r.mu.Unlock()
}

// elemSize is each op's argument size (the whole array is uop..+count*size).
var elemSize = map[uint64]uint64{
	OpMapGrantRef: sizeofMap, OpUnmapGrantRef: sizeofUnmap, OpSetupTable: sizeofSetupTable,
	OpCopy: sizeofCopy, OpQuerySize: sizeofQuerySize, OpUnmapAndReplace: sizeofUnmapReplace,
	OpSetVersion: sizeofSetVersion, OpGetStatusFrames: sizeofGetStatusFrame, OpGetVersion: sizeofGetVersion,
	OpSwapGrantRef: sizeofSwap, OpQueryRevoked: sizeofQueryRevoked, OpTransfer: sizeofTransfer,
}

// allowedWrites is where an op may write in the caller's memory: its
// argument array, plus setup_table's frame list and query_revoked's handle
// array as they were given before the call.
func allowedWrites(ram []byte, cmd, uop, count uint64) []span {
	size, ok := elemSize[cmd]
	if !ok {
		return nil
	}
	n := count
	if cmd != OpMapGrantRef && cmd != OpUnmapGrantRef && cmd != OpUnmapAndReplace && cmd != OpCopy && cmd != OpSwapGrantRef && cmd != OpTransfer {
		n = 1
	}
	sp := []span{{uop, uop + n*size}}
	arg := func(off, w uint64) uint64 {
		if uop+off+w > uint64(len(ram)) || uop+off+w < uop {
			return 0
		}
		if w == 4 {
			return uint64(le.Uint32(ram[uop+off:]))
		}
		return le.Uint64(ram[uop+off:])
	}
	switch cmd {
	case OpSetupTable:
		sp = append(sp, span{arg(16, 8), arg(16, 8) + 8*arg(4, 4)})
	case OpQueryRevoked:
		sp = append(sp, span{arg(8, 8), arg(8, 8) + 4*arg(0, 4)})
	}
	return sp
}

const (
	fzRAM      = 64 << 10
	fzFrames   = 2
	fzArgLo    = 0x1000 // A's argument area: pages 1-3
	fzArgHi    = 0x4000
	fzVictimLo = 4 // V's grantable frames 4..7
	fzVictimHi = 8
	fzAccept   = 24 // entries 24-31: accept-transfer entries the script writes
)

// errnos is every value Op may return.
var errnos = []int64{0, -EPERM, -ESRCH, -EFAULT, -EINVAL, -ENOSYS, -EOPNOTSUPP}

// FuzzOps lets a hostile domain A issue arbitrary grant-table operations
// — arbitrary commands, counts and argument bytes, some of them fixed up to
// aim at real grants — against a granter V that rewrites its first eight
// entries from another goroutine all the while, swaps other entries, and
// has A's mappings revoked by policy now and then. Transfers run over a
// fake physmap: the script has V (and A, for transfers to itself) empty
// frames and write accept-transfer entries, and the racing granter writes
// accept-transfer entries naming frames V may have emptied. Nothing may
// panic and every call returns 0 or a negative errno; A's memory may
// change only in an op's argument array (plus setup_table's frame list
// and query_revoked's handle array), in frames gnttab took from A's RAM,
// and in frames whose page left (now empty and zero) or arrived (holding
// exactly the page that left); V's memory only in the frames it grants,
// where V's own swap calls write their status and in frames that received
// A's page; V's table only in the status bits and, for an accept-transfer
// entry naming A, in committed and completed (with the frame where A's
// page arrived). After every call no page is in two frames, no frame
// mapped or pinned has left its domain, and A's pages are conserved: what
// it had is what it has plus what it moved to V plus what it lost. At the
// end, after A unmaps every handle it holds, nothing is pinned, no status
// bit is set, and the window shows nothing for A.
func FuzzOps(f *testing.F) {
	rec := func(sel, cmd, count byte, uop uint16, p ...byte) []byte {
		b := make([]byte, 13)
		b[0], b[1], b[2] = sel, cmd, count
		le.PutUint16(b[3:], uop)
		copy(b[5:], p)
		return b
	}
	join := func(rs ...[]byte) []byte { return slices.Concat(rs...) }
	f.Add([]byte{}, join(rec(3, 0, 1, 0x0, 0, 16, 0, 0), rec(3, 5, 1, 0x100, 1, 0, 0, 0, 0, 0x10, 64, 0), rec(3, 1, 1, 0x200, 0, 0)))
	f.Add([]byte{}, join(rec(3, 0, 1, 0x0, 0, 17, 1, 3), rec(2, 0, 0, 0), rec(3, 13, 1, 0x300, 4), rec(3, 1, 1, 0x200, 0, 0)))
	f.Add(make([]byte, 64), join(rec(3, 2, 1, 0x0, 3, 2), rec(3, 6, 1, 0x100), rec(1, 0, 0, 0, 0, 1), rec(0, 8, 1, 0x40)))
	f.Add([]byte{1, 2, 3}, join(rec(3, 11, 2, 0x0, 8, 9), rec(3, 5, 3, 0x400, 3, 0, 20, 4, 4, 0xFF, 0x0F), rec(0, 9, 255, 0xFFFF)))
	// Transfers: V empties frame 12 and accepts A's page in entry 24; A
	// gives frame 4; A accepts its own page into the emptied frame 4 and
	// gives frame 5 to itself; A gives frame 6 to a missing domain (lost).
	f.Add([]byte{}, join(rec(10, 0, 0, 0, 4, 1, 0, 0, 0, 0), rec(3, 4, 1, 0x0, 0, 0, 0),
		rec(26, 0, 0, 0, 0, 0, 0, 0, 4), rec(3, 4, 1, 0x0, 1, 3, 0), rec(3, 4, 1, 0x0, 2, 6, 0)))
	// A maps the frame it grants itself (10) and tries to give it to V,
	// which accepts in entry 24: bad_page, the frame stays.
	f.Add([]byte{}, join(rec(10, 0, 0, 0, 4, 1, 0, 0, 0, 0), rec(3, 0, 1, 0x0, 3, 0x88, 0, 0), rec(3, 4, 1, 0x100, 6, 0, 0)))
	f.Fuzz(func(t *testing.T, mem []byte, script []byte) {
		win := newFakeWindow()
		var sigs sigRecorder
		g := New(win, sigs.Add)
		a := &recorder{fakeDomain: newFakeDomain(1, fzRAM, fzFrames)}
		v := newFakeDomain(2, fzRAM, fzFrames)
		if err := g.AddDomain(1, a, a.table, testTableGPA, Config{MaxFrames: fzFrames, MaxMaptrackFrames: 1}); err != nil {
			t.Fatal(err)
		}
		if err := g.AddDomain(2, v, v.table, testTableGPA, Config{MaxFrames: fzFrames}); err != nil {
			t.Fatal(err)
		}
		frames := newFakeFrames(g, map[DomainID]*fakeDomain{1: a.fakeDomain, 2: v})
		frames.attach(a.fakeDomain, 0)
		frames.attach(v, 0)
		aHad, vHad, vEmptied := frames.pages(1), frames.pages(2), 0
		vReceived := map[uint64]bool{} // V's frames that received a page from A
		for i := range a.ram {
			a.ram[i] = byte(i*11 + 3)
		}
		copy(a.ram[fzArgLo:fzArgHi], mem)
		for i := range v.ram {
			v.ram[i] = byte(i*13 + 5)
		}
		vBefore := slices.Clone(v.ram)
		// Stable entries: V grants frames to A (16-23), A grants itself
		// frame 10.
		model := map[uint32][2]uint32{} // ref → {header, frame}
		for i, e := range []struct {
			to    DomainID
			frame uint64
			flags uint16
		}{{1, 4, GTFPermitAccess}, {1, 5, GTFPermitAccess | GTFReadonly}, {1, 6, GTFPermitAccess}, {3, 7, GTFPermitAccess},
			{1, 7, GTFPermitAccess}, {1, 200, GTFPermitAccess}, {1, 4, GTFAcceptTransfer}, {1, 5, GTFPermitAccess | GTFSubPage}} {
			ref := uint32(16 + i)
			v.grant(ref, e.to, e.frame, e.flags)
			model[ref] = [2]uint32{uint32(e.flags) | uint32(e.to)<<16, uint32(e.frame)}
		}
		a.grant(8, 1, 10, GTFPermitAccess)

		// The racing granter: rewrites entries 0-7 continuously.
		var stop atomic.Bool
		var wg sync.WaitGroup
		var last [8][2]uint32
		seed := uint64(len(script))<<32 | uint64(len(mem))
		if len(script) > 0 {
			seed ^= uint64(script[0])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			for i := 0; !stop.Load(); i++ {
				ref := uint32(i % 8)
				types := []uint32{GTFPermitAccess, GTFPermitAccess, GTFPermitAccess, GTFInvalid, GTFAcceptTransfer, GTFTransitive}
				// A hostile guest, but one that never sets the VMM's
				// status bits itself.
				typ := types[rng.IntN(len(types))]
				flags := typ | rng.Uint32()&rng.Uint32()&(GTFReadonly|GTFSubPage|GTFPWT|0xFE00)
				dom := []uint32{1, 1, 1, 2, 3}[rng.IntN(5)]
				frs := []uint32{4, 5, 6, 7, 4, 5, 6, 7, 200}
				if typ == GTFAcceptTransfer {
					// Frames the script may have emptied; grants
					// never name them, so only transfers write them.
					frs = []uint32{4, 12, 13, 200}
				}
				fr := frs[rng.IntN(len(frs))]
				atomic.StoreUint32(word32(v.table, entryOff(ref)+4), fr)
				atomic.StoreUint32(v.hdr(ref), flags|dom<<16)
				last[ref] = [2]uint32{flags | dom<<16, fr}
			}
		}()
		defer func() {
			stop.Store(true)
			wg.Wait()
		}()

		vArgs := uint64(PageSize) // V's page 1: its swap arguments
		for len(script) >= 13 {
			r := script[:13]
			script = script[13:]
			p := r[5:]
			switch r[0] & 3 {
			case 1: // V swaps two stable entries
				b := make([]byte, sizeofSwap)
				ra, rb := 16+uint32(p[0]%8), 16+uint32(p[1]%8)
				le.PutUint32(b[0:], ra)
				le.PutUint32(b[4:], rb)
				copy(v.ram[vArgs:], b)
				if ret := g.Op(v, OpSwapGrantRef, vArgs, 1); ret != 0 {
					t.Fatalf("V's swap: %d", ret)
				}
				if int16(le.Uint16(v.ram[vArgs+8:])) == GNTSTOkay {
					model[ra], model[rb] = model[rb], model[ra]
				}
				copy(vBefore[vArgs:vArgs+sizeofSwap], v.ram[vArgs:])
				continue
			case 2:
				if r[0]&8 == 0 {
					g.Revoke(2, 1)
					continue
				}
				// A domain empties a frame and writes an accept-transfer
				// entry: V for A (or another domain), or A for itself.
				ref := fzAccept + uint32(p[2]%8)
				flags := []uint16{GTFAcceptTransfer, GTFAcceptTransfer, GTFAcceptTransfer, GTFAcceptTransfer | GTFSubPage, GTFInvalid}[p[5]%5]
				if r[0]&16 != 0 {
					// A accepts into any of its frames: only ones its
					// transfers emptied can receive.
					a.grant(ref, []DomainID{1, 1, 2}[p[3]%3], []uint64{uint64(p[4] % 16), 0xFFFFF}[p[1]&1], flags)
					continue
				}
				x := 8 + uint64(p[0]%8)
				if p[1]&1 != 0 && !frames.isEmpty(2, x) {
					frames.makeEmpty(v, x)
					clear(vBefore[x*PageSize : (x+1)*PageSize])
					vEmptied++
					if p[1]&2 != 0 {
						// V spends the room elsewhere: at its maximum.
						frames.mu.Lock()
						frames.room[2]--
						frames.mu.Unlock()
					}
				}
				to := []DomainID{1, 1, 1, 3, 2}[p[3]%5]
				fr := []uint64{x, x, x, 4, 200, 0xFFFFF}[p[4]%6]
				v.grant(ref, to, fr, flags)
				model[ref] = [2]uint32{uint32(flags) | uint32(to)<<16, uint32(fr)}
				continue
			}
			cmds := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 64, 13, uint64(r[1])}
			cmd := cmds[r[1]%16]
			count := uint64(r[2] % 8)
			if r[2] >= 250 {
				count = uint64(r[2]) * 20
			}
			uop := fzArgLo + uint64(le.Uint16(r[3:]))%(fzArgHi-fzArgLo)
			if r[0]&4 != 0 {
				uop = uint64(le.Uint16(r[3:])) << 4 // anywhere, page 0 and past RAM included
			}
			if r[0]&3 == 3 && uop+64 <= fzArgHi {
				fixup(a.ram[uop:uop+64], cmd, p)
			}
			before := slices.Clone(a.ram)
			allowed := allowedWrites(before, cmd, uop, count)
			a.reset()
			ret := g.Op(a, cmd, uop, count)
			if !slices.Contains(errnos, ret) {
				t.Fatalf("op %d returned %d", cmd, ret)
			}
			// Pages that left or arrived in this call.
			left, arrived := map[uint64]bool{}, map[uint64][]byte{}
			for _, e := range frames.takeEvents() {
				if e.from != 1 || (e.moved && e.to != 1 && e.to != 2) {
					t.Fatalf("op %d: page event %+v", cmd, e)
				}
				if cmd != OpTransfer {
					t.Fatalf("op %d moved or dropped a page: %+v", cmd, e)
				}
				left[e.gfn] = true
				// The page that left is A's page as it was, but for
				// this call's status writes (or a page that arrived
				// earlier in the call).
				if arrived[e.gfn] == nil {
					for i, c := range e.fromBytes {
						u := e.gfn*PageSize + uint64(i)
						if c != before[u] && !slices.ContainsFunc(a.writes, func(s span) bool { return s.has(u) }) {
							t.Fatalf("transfer: A's frame %#x left with byte %d changed", e.gfn, i)
						}
					}
				}
				delete(arrived, e.gfn)
				if !e.moved {
					continue
				}
				if e.to == 1 {
					arrived[e.toGFN] = e.fromBytes
					continue
				}
				// Nobody else writes V's RAM during A's call.
				if !slices.Equal(v.ram[e.toGFN*PageSize:(e.toGFN+1)*PageSize], e.fromBytes) {
					t.Fatalf("transfer: V's frame %#x does not hold A's page", e.toGFN)
				}
				vReceived[e.toGFN] = true
				copy(vBefore[e.toGFN*PageSize:(e.toGFN+1)*PageSize], e.fromBytes)
			}
			for gfn := range left {
				if _, ok := arrived[gfn]; ok {
					continue
				}
				if !frames.isEmpty(1, gfn) || slices.ContainsFunc(a.ram[gfn*PageSize:(gfn+1)*PageSize], func(c byte) bool { return c != 0 }) {
					t.Fatalf("transfer: A's frame %#x is not empty and zero after its page left", gfn)
				}
			}
			for gfn, pg := range arrived {
				for i, c := range a.ram[gfn*PageSize : (gfn+1)*PageSize] {
					u := gfn*PageSize + uint64(i)
					if c != pg[i] && !slices.ContainsFunc(a.writes, func(s span) bool { return s.has(u) }) {
						t.Fatalf("transfer: A's frame %#x does not hold the page that arrived (byte %d)", gfn, i)
					}
				}
			}
			if cmd == OpTransfer && ret == 0 && r[0]&3 == 3 && uop+64 <= fzArgHi {
				for i := range min(count, 2) {
					at := uop + i*sizeofTransfer + 16
					if frames.isEmpty(1, at/PageSize) {
						continue
					}
					if st := int16(le.Uint16(a.ram[at:])); !slices.Contains([]int16{GNTSTOkay, GNTSTBadPage, GNTSTBadDomain, GNTSTGeneralError}, st) {
						t.Fatalf("transfer element %d: status %d", i, st)
					}
				}
			}
			checkFrames(t, g, win, frames, aHad, vHad, vEmptied)
			a.mu.Lock()
			for _, w := range a.writes {
				if !slices.ContainsFunc(allowed, func(s span) bool { return w.lo >= s.lo && w.hi <= s.hi }) {
					t.Fatalf("op %d (uop %#x count %d) wrote [%#x,%#x) outside %v", cmd, uop, count, w.lo, w.hi, allowed)
				}
			}
			for i := range a.ram {
				if a.ram[i] == before[i] {
					continue
				}
				u := uint64(i)
				in := func(s span) bool { return s.has(u) }
				if _, ok := arrived[u/PageSize]; ok || left[u/PageSize] {
					continue // checked above
				}
				if !slices.ContainsFunc(a.writes, in) && !slices.ContainsFunc(a.slices, in) {
					t.Fatalf("op %d changed A's byte %#x outside its writes and frames", cmd, i)
				}
			}
			a.mu.Unlock()
		}
		stop.Store(true)
		wg.Wait()

		frames.check(t)
		frames.mu.Lock()
		t.Logf("pages: A to V %d, A to A %d, A lost %d", frames.moved[[2]DomainID{1, 2}], frames.moved[[2]DomainID{1, 1}], frames.lost[1])
		frames.mu.Unlock()
		// Unmap everything A holds, from argument pages it may have given
		// away.
		for gfn := uint64(fzArgLo / PageSize); gfn < fzArgHi/PageSize; gfn++ {
			frames.populate(a.fakeDomain, gfn)
		}
		hs := handlesOf(g, 1)
		if len(hs) > 0 {
			b := make([]byte, len(hs)*sizeofUnmap)
			for i, h := range hs {
				le.PutUint32(b[i*sizeofUnmap+16:], h)
			}
			if uint64(len(b)) > fzArgHi-fzArgLo {
				t.Fatalf("%d handles", len(hs))
			}
			copy(a.ram[fzArgLo:], b)
			if ret := g.Op(a, OpUnmapGrantRef, fzArgLo, uint64(len(hs))); ret != 0 {
				t.Fatalf("final unmap: %d", ret)
			}
			for i := range hs {
				if st := int16(le.Uint16(a.ram[fzArgLo+uint64(i)*sizeofUnmap+20:])); st != GNTSTOkay {
					t.Fatalf("final unmap of handle %d: %d", hs[i], st)
				}
			}
		}
		if n := len(handlesOf(g, 1)); n != 0 {
			t.Fatalf("%d handles left", n)
		}
		for _, d := range []*fakeDomain{a.fakeDomain, v} {
			if n := pinnedOf(g, d.id); n != 0 {
				t.Errorf("dom%d: %d entries still pinned", d.id, n)
			}
			for ref := uint32(0); ref < fzFrames*EntriesPerFrame; ref++ {
				st := uint16(GTFReading | GTFWriting)
				if d.flags(ref)&3 == GTFAcceptTransfer || (d == v && ref < 8 && vReceived[uint64(d.frameOf(ref))]) {
					// Bit 3 is transfer_completed, set by a transfer
					// into the entry (or, for the racing entries,
					// into one the guest rewrote after the commit).
					st = GTFWriting
				}
				if d.flags(ref)&st != 0 {
					t.Errorf("dom%d ref %d: status bits left %#x", d.id, ref, d.flags(ref))
				}
			}
		}
		if s, _ := g.Stats(1); s.Mapped != 0 {
			t.Errorf("stats: %+v", s)
		} else {
			t.Logf("A's counters: %+v", s)
		}
		if win.mapped(1) != 0 {
			t.Errorf("window still shows %d pages for A", win.mapped(1))
		}
		win.check(t)
		// V's memory: only the granted frames may differ.
		for i := range v.ram {
			if f := uint64(i) / PageSize; f >= fzVictimLo && f < fzVictimHi {
				continue
			}
			if v.ram[i] != vBefore[i] {
				t.Fatalf("V's byte %#x changed", i)
			}
		}
		// V's table: what the guest last wrote, status bits aside; an
		// accept-transfer entry naming A may also be committed and
		// completed, with a frame that received A's page.
		const done = GTFTransferCommitted | GTFTransferCompleted
		for ref := uint32(0); ref < fzFrames*EntriesPerFrame; ref++ {
			want := model[ref]
			got := [2]uint32{atomic.LoadUint32(v.hdr(ref)), atomic.LoadUint32(word32(v.table, entryOff(ref)+4))}
			if ref < 8 {
				// The racing granter may rewrite an entry between a
				// transfer's commit and its completion (which the
				// protocol forbids): the completion then lands on
				// whatever it wrote, with the frame where the page
				// went.
				want = last[ref]
				m := uint32(GTFReadonly | GTFReading | GTFWriting)
				if got[0]&^m != want[0]&^m || (got[1] != want[1] && !vReceived[uint64(got[1])]) {
					t.Fatalf("V's racing entry %d: %#x, want %#x", ref, got, want)
				}
				continue
			}
			if got == want || (got[0]&^(GTFReading|GTFWriting) == want[0] && got[1] == want[1] && want[0]&3 != GTFAcceptTransfer) {
				continue
			}
			if !acceptsFrom(want[0], 1) || got != [2]uint32{want[0] | done, want[1]} || !vReceived[uint64(got[1])] {
				t.Fatalf("V's entry %d: %#x, want %#x", ref, got, want)
			}
		}
	})
}

// fixup aims the first element of an op at real grants, from fuzz bytes p.
func fixup(b []byte, cmd uint64, p []byte) {
	switch cmd {
	case OpMapGrantRef:
		doms := []DomainID{2, 2, 2, 1, DomainSelf, 9}
		flags := []uint32{hostRW, hostRO, hostRW, 0, GNTMAPDeviceMap | hostRW, hostRO | 1<<20}
		fl := flags[p[2]%6]
		gpa := rw(int(p[3] % 16))
		if fl&GNTMAPReadonly != 0 {
			gpa = ro(int(p[3] % 16))
		}
		ref := 16 + uint32(p[1]%8)
		if p[1]&0x80 != 0 {
			ref = uint32(p[1] % 16)
		}
		copy(b, mapBytes(mapArgs{dom: doms[p[0]%6], ref: ref, flags: fl, gpa: gpa}))
	case OpUnmapGrantRef, OpUnmapAndReplace:
		le.PutUint64(b[0:], 0)
		le.PutUint64(b[8:], uint64(p[0]&1))
		le.PutUint32(b[16:], uint32(p[1]%12))
	case OpCopy:
		side := func(isGref bool, d, r, off byte) copyPtr {
			if isGref {
				return gref([]DomainID{2, 2, 1, DomainSelf}[d%4], []uint32{16, 17, 18, 19, 20, 21, 0, 1, 2, 3, 8}[r%11], uint16(off)*16)
			}
			return gmfn([]DomainID{DomainSelf, 1, 2}[d%3], 4+uint64(r%16), uint16(off)*16)
		}
		fl := uint16(p[0] & 3)
		n := uint16(p[6]) | uint16(p[7]&0x1F)<<8
		copy(b, copyBytes(copyArgs{src: side(fl&1 != 0, p[1], p[2], p[3]), dst: side(fl&2 != 0, p[1]>>4, p[4], p[5]), len: n, flags: fl}))
	case OpSetupTable:
		le.PutUint16(b[0:], uint16(DomainSelf))
		le.PutUint32(b[4:], uint32(p[0]%4))
		le.PutUint64(b[16:], 0x4000+uint64(p[1])*8)
	case OpQueryRevoked:
		le.PutUint32(b[0:], uint32(p[0]%8))
		le.PutUint32(b[4:], 0)
		le.PutUint64(b[8:], 0x5000+uint64(p[1])*4)
	case OpSwapGrantRef:
		le.PutUint32(b[0:], uint32(p[0]%16))
		le.PutUint32(b[4:], uint32(p[1]%16))
	case OpSetVersion:
		le.PutUint32(b[0:], uint32(p[0]%3))
	case OpTransfer:
		// Two elements: A's frames in and out of its RAM (10 is the one
		// it grants itself), V, itself, a missing domain, a domain id
		// past the table of domains; the script's accept entries, the
		// racing ones, the stable ones, refs past the table.
		for k := range 2 {
			q := p[4*k:]
			x := b[k*sizeofTransfer:]
			le.PutUint64(x[0:], []uint64{4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1, 0, 16, 1 << 40}[q[0]%16])
			le.PutUint16(x[8:], uint16([]DomainID{2, 2, 2, DomainSelf, 1, 3, 9, 0x7FF4}[q[1]%8]))
			ref := []uint32{fzAccept, fzAccept, fzAccept, fzAccept, 0, 0, 16, 512}[q[2]>>5] + uint32(q[2]&7)
			le.PutUint32(x[12:], ref)
			le.PutUint16(x[16:], 0x7777)
		}
	}
}

// checkFrames checks, between calls, that no page is in two frames or
// left taken or reserved, that no frame a window shows or a grant pins
// has left its domain, and that A's pages are all accounted for.
func checkFrames(t *testing.T, g *GrantTables, win *fakeWindow, f *fakeFrames, aHad, vHad, vEmptied int) {
	t.Helper()
	f.check(t)
	win.mu.Lock()
	for grantee, m := range win.m {
		for gpa, w := range m {
			if !w.dead && f.dom[w.granter] != nil && f.isEmpty(w.granter, w.gfn) {
				t.Errorf("dom%d's window shows dom%d's frame %#x at %#x, which has left it", grantee, w.granter, w.gfn, gpa)
			}
		}
	}
	win.mu.Unlock()
	for id := range f.dom {
		d := domainIn(g, id)
		d.tableMu.Lock()
		for gfn := range d.activeFrames {
			if f.isEmpty(id, gfn) {
				t.Errorf("dom%d's frame %#x is pinned but has left it", id, gfn)
			}
		}
		d.tableMu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	has, toV, lost := len(f.page[1]), f.moved[[2]DomainID{1, 2}], f.lost[1]
	if aHad != has+toV+lost {
		t.Fatalf("A had %d pages, has %d, moved %d to V, lost %d", aHad, has, toV, lost)
	}
	if vHas := len(f.page[2]); vHas != vHad-vEmptied+toV || f.lost[2] != 0 || f.moved[[2]DomainID{2, 1}] != 0 {
		t.Fatalf("V had %d pages, emptied %d, received %d, has %d (lost %d, gave A %d)", vHad, vEmptied, toV, vHas, f.lost[2], f.moved[[2]DomainID{2, 1}])
	}
}

// domainIn returns a domain's state for white-box checks.
func domainIn(g *GrantTables, id DomainID) *domain {
	g.l1.RLock()
	defer g.l1.RUnlock()
	return g.known[id]
}

// pinnedOf counts a domain's pinned entries.
func pinnedOf(g *GrantTables, id DomainID) int {
	d := domainIn(g, id)
	d.tableMu.Lock()
	defer d.tableMu.Unlock()
	return len(d.active)
}

// handlesOf lists a domain's allocated handles.
func handlesOf(g *GrantTables, id DomainID) []uint32 {
	d := domainIn(g, id)
	d.maptrackMu.Lock()
	defer d.maptrackMu.Unlock()
	var hs []uint32
	for h, e := range d.maptrack {
		if e.state != mapFree {
			hs = append(hs, uint32(h))
		}
	}
	return hs
}
