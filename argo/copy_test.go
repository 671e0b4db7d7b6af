package argo

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/argovisor/argovisor/internal/hsync"
)

// The send copy path: runs of the sender's memory (hcall.Mapper) into runs
// of the ring (dataRuns), against the ReadGuest path and byte-exact
// references.

// pagedDomain is a fakeDomain whose virtual pages map to arbitrary frames
// (pages not in remap are identity mapped; pages in holes are absent), as
// a guest's page tables can. Its ReadGuest and WriteGuest translate page by
// page; mappedDomain adds MapGuest over the same translation.
type pagedDomain struct {
	*fakeDomain
	remap map[uint64]uint64 // virtual page → frame
	holes map[uint64]bool
	// runCap, if set, cuts every MapGuest run at that many bytes (a
	// mapper may always give less than the contiguous run).
	runCap uint64
}

func newPagedDomain(d *fakeDomain) *pagedDomain {
	return &pagedDomain{fakeDomain: d, remap: map[uint64]uint64{}, holes: map[uint64]bool{}}
}

func (d *pagedDomain) translate(va uint64) (uint64, bool) {
	p := va / PageSize
	if d.holes[p] {
		return 0, false
	}
	if f, ok := d.remap[p]; ok {
		return f*PageSize + va%PageSize, true
	}
	return va, true
}

func (d *pagedDomain) access(addr uint64, p []byte, write bool) error {
	for len(p) > 0 {
		pa, ok := d.translate(addr)
		if !ok {
			return errFault
		}
		n := min(uint64(len(p)), PageSize-addr%PageSize)
		b, err := d.Slice(pa, n)
		if err != nil {
			return err
		}
		if write {
			copy(b, p)
		} else {
			copy(p, b)
		}
		p, addr = p[n:], addr+n
	}
	return nil
}

func (d *pagedDomain) ReadGuest(addr uint64, p []byte) error  { return d.access(addr, p, false) }
func (d *pagedDomain) WriteGuest(addr uint64, p []byte) error { return d.access(addr, p, true) }

// virtBytes writes b at virtual address va (through the mapping).
func (d *pagedDomain) virtBytes(va uint64, b []byte) {
	if err := d.WriteGuest(va, b); err != nil {
		panic(err)
	}
}

// MapGuest here is not hcall.Mapper's: it hides the identity-mapping one
// of fakeDomain, which would not agree with the page map.
func (d *pagedDomain) MapGuest() {}

// pagedReader has no MapGuest: Argo reads it with ReadGuest.
type pagedReader struct{ *pagedDomain }

type mappedDomain struct{ *pagedDomain }

func (d mappedDomain) MapGuest(addr, n uint64, _ bool) ([]byte, error) {
	pa, ok := d.translate(addr)
	if !ok {
		return nil, errFault
	}
	length := min(n, PageSize-addr%PageSize)
	for length < n {
		q, ok := d.translate(addr + length)
		if !ok || q != pa+length {
			break
		}
		length += min(n-length, PageSize)
	}
	if d.runCap > 0 {
		length = min(length, d.runCap)
	}
	return d.Slice(pa, length)
}

// copyWorld is one sender (domain 1, paged) and one receiver (domain 2)
// whose ring is laid out contiguously or page-scattered.
type copyWorld struct {
	*world
	s    *pagedDomain
	ring ringAt
}

func newCopyWorld(t *testing.T, ringLen uint32, scatter bool, ext bool) *copyWorld {
	w := newWorld(t)
	sd := newFakeDomain(1, 40<<20)
	if err := w.a.AddDomain(1, sd, permissive); err != nil {
		t.Fatal(err)
	}
	w.dom[1] = sd
	d := w.add(2, permissive)
	r := d.layRing(ringLen, scatter)
	flags := uint64(0)
	if ext {
		flags = RegisterExtHeader
	}
	if ret := w.register(r, 1, 1, flags); ret != 0 {
		t.Fatalf("register: %d", ret)
	}
	return &copyWorld{world: w, s: newPagedDomain(sd), ring: r}
}

// scatter maps the sender's virtual pages [va/PageSize, +n) to distinct
// frames: stretches of 1 to 4 adjacent frames, in shuffled order, so runs
// of several lengths occur and none continues into the next stretch.
func (cw *copyWorld) scatter(rng *rand.Rand, va uint64, n uint64) {
	var chunks [][2]uint64 // first virtual page offset, length
	for i := uint64(0); i < n; {
		k := min(n-i, uint64(1+rng.Intn(4)))
		chunks = append(chunks, [2]uint64{i, k})
		i += k
	}
	rng.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
	// One spare frame between stretches keeps them from touching.
	base := cw.s.alloc((2*n+1)*PageSize, true) / PageSize
	f := base
	for _, c := range chunks {
		for j := range c[1] {
			cw.s.remap[va/PageSize+c[0]+j] = f
			f++
		}
		f++
	}
}

// sendIovs sends the iovs (virtual address, length) from caller c; the
// send_addr and iov array are put in identity-mapped memory.
func (cw *copyWorld) sendIovs(c Caller, iovs ...iov) int64 {
	addr := cw.s.put(sendAddrBytes(Addr{Port: 1, Domain: DomainAny}, Addr{Port: 1, Domain: 2}))
	ia := cw.s.put(iovBytes(iovs...))
	return cw.a.Op(c, OpSendv, addr, ia, uint64(len(iovs)), 5)
}

// Sends from scattered pages, through the mapped path and through the
// ReadGuest path, leave byte-identical rings and return the same results,
// for iovs of every shape (crossing pages, one byte, several per page,
// the largest message), into contiguous and scattered rings.
func TestSendMappedMatchesReader(t *testing.T) {
	for _, scatterRing := range []bool{false, true} {
		for _, ringLen := range []uint32{256, 3*PageSize + 96, 64 << 10} {
			rng := rand.New(rand.NewSource(int64(ringLen)))
			a := newCopyWorld(t, ringLen, scatterRing, false)
			b := newCopyWorld(t, ringLen, scatterRing, false)
			const va, vpages = 0x1000000, 40
			// Same mapping and contents in both.
			srng := rand.New(rand.NewSource(7))
			a.scatter(srng, va, vpages)
			srng = rand.New(rand.NewSource(7))
			b.scatter(srng, va, vpages)
			content := make([]byte, vpages*PageSize)
			rng.Read(content)
			a.s.virtBytes(va, content)
			b.s.virtBytes(va, content)
			for i := range 300 {
				var iovs []iov
				left := MaxPayload(ringLen)
				for k := rng.Intn(MaxIOV) + 1; k > 0 && left > 0; k-- {
					n := uint32(rng.Intn(int(min(left, 3*PageSize)) + 1))
					if rng.Intn(4) == 0 {
						n = 0
					}
					off := uint64(rng.Intn(vpages*PageSize - int(n)))
					iovs = append(iovs, iov{addr: va + off, len: n})
					left -= n
				}
				ra := a.sendIovs(mappedDomain{a.s}, iovs...)
				rb := b.sendIovs(pagedReader{b.s}, iovs...)
				if ra != rb {
					t.Fatalf("len %d scatter %v send %d: mapped %d, reader %d", ringLen, scatterRing, i, ra, rb)
				}
				if ra >= 0 {
					ma, mb := a.ring.recv(t), b.ring.recv(t)
					var want []byte
					for _, v := range iovs {
						want = append(want, content[v.addr-va:v.addr-va+uint64(v.len)]...)
					}
					if !bytes.Equal(ma.Data, want) || !bytes.Equal(mb.Data, want) {
						t.Fatalf("len %d scatter %v send %d: payload differs", ringLen, scatterRing, i)
					}
				}
				// The ring pages and the spare page on each side.
				lo, hi := a.ring.base-PageSize, a.ring.base+(a.ring.npages+1)*PageSize
				if !bytes.Equal(a.ring.d.ram[lo:hi], b.ring.d.ram[lo:hi]) {
					t.Fatalf("len %d scatter %v send %d: receiver memory differs", ringLen, scatterRing, i)
				}
			}
		}
	}
}

// A message written from every slot of the ring — so the header and the
// payload wrap at every place they can, across every page seam of a
// scattered ring — arrives intact, for payloads from one byte to the
// largest, from scattered sender pages, with runs cut short or not.
func TestSendWrapsAtEveryOffset(t *testing.T) {
	const ringLen = 2*PageSize + 48 // 3 pages of ring memory
	for _, scatterRing := range []bool{false, true} {
		for _, runCap := range []uint64{0, 37, PageSize} {
			for _, size := range []uint32{1, 15, 16, 17, PageSize - 1, PageSize + 1, MaxPayload(ringLen)} {
				cw := newCopyWorld(t, ringLen, scatterRing, false)
				cw.s.runCap = runCap
				const va = 0x1000000
				cw.scatter(rand.New(rand.NewSource(int64(size))), va, 4)
				payload := make([]byte, size)
				for i := range payload {
					payload[i] = byte(i*31 + int(size))
				}
				for off := uint32(0); off < ringLen; off += MsgSlotSize {
					// Empty ring with both pointers at off: re-register
					// (tx_ptr in memory is kept when sane).
					pages := cw.ring.pages()
					pages.publishTx(off)
					pages.publishRx(off)
					if ret := cw.register(cw.ring, 1, 1, 0); ret != 0 {
						t.Fatalf("re-register: %d", ret)
					}
					cw.s.virtBytes(va+PageSize-3, payload)
					ret := cw.sendIovs(mappedDomain{cw.s}, iov{addr: va + PageSize - 3, len: size})
					if ret != int64(size) {
						t.Fatalf("cap %d size %d off %d: sendv = %d", runCap, size, off, ret)
					}
					m := cw.ring.recv(t)
					if !bytes.Equal(m.Data, payload) || m.Source != (Addr{Port: 1, Domain: 1}) || m.Type != 5 {
						t.Fatalf("cap %d size %d off %d: message %+v differs", runCap, size, off, m.Source)
					}
					wantTx := (off + uint32(roundup16(uint64(size))) + MsgHeaderSize) % ringLen
					if cw.ring.tx() != wantTx {
						t.Fatalf("cap %d size %d off %d: tx_ptr %d, want %d", runCap, size, off, cw.ring.tx(), wantTx)
					}
				}
			}
		}
	}
}

// An iov that runs into an unmapped page fails with -EFAULT and publishes
// nothing: tx_ptr stays, no message is readable, nobody is signalled, and
// the next send lands where the failed one would have. Also when the fault
// is in a later iov, and through the ReadGuest path.
func TestSendFaultPublishesNothing(t *testing.T) {
	for _, mapped := range []bool{true, false} {
		cw := newCopyWorld(t, 64<<10, true, true)
		const va = 0x1000000
		cw.scatter(rand.New(rand.NewSource(3)), va, 8)
		cw.s.holes[va/PageSize+5] = true
		var c Caller = mappedDomain{cw.s}
		if !mapped {
			c = pagedReader{cw.s}
		}
		good := iov{addr: va, len: 3 * PageSize}
		for _, iovs := range [][]iov{
			{{addr: va + 4*PageSize, len: 2 * PageSize}},  // runs into the hole
			{good, {addr: va + 5*PageSize + 100, len: 1}}, // a later iov starts in it
			{{addr: va + 5*PageSize - 1, len: 1}, good, {addr: va + 4*PageSize, len: PageSize + 1}},
			{{addr: 40 << 20, len: 10}},       // outside RAM
			{{addr: (40 << 20) - 5, len: 10}}, // runs off RAM
		} {
			tx, sig := cw.ring.tx(), cw.sig.Count(2)
			if ret := cw.sendIovs(c, iovs...); ret != -EFAULT {
				t.Fatalf("mapped %v %v: sendv = %d, want -EFAULT", mapped, iovs, ret)
			}
			if cw.ring.tx() != tx || cw.sig.Count(2) != sig {
				t.Fatalf("mapped %v %v: tx_ptr %d→%d, signals %d→%d", mapped, iovs, tx, cw.ring.tx(), sig, cw.sig.Count(2))
			}
			if _, err := cw.ring.tryRecv(); err != Errno(EAGAIN) {
				t.Fatalf("mapped %v %v: a message is readable: %v", mapped, iovs, err)
			}
		}
		want := []byte("after the faults")
		cw.s.virtBytes(va+100, want)
		tx := cw.ring.tx()
		if ret := cw.sendIovs(c, iov{addr: va + 100, len: uint32(len(want))}); ret != int64(len(want)) {
			t.Fatalf("good send: %d", ret)
		}
		if m := cw.ring.recv(t); !bytes.Equal(m.Data, want) || tx != 0 {
			t.Fatalf("good send after faults: %q at tx %d", m.Data, tx)
		}
	}
}

// dataRuns covers the data area in order, without gaps, and each run
// aliases the ring pages the gfns name.
func TestDataRuns(t *testing.T) {
	d := newFakeDomain(1, 4<<20)
	for _, tc := range []struct {
		name   string
		length uint32
		gfns   []uint64
		runs   int
	}{
		{"contiguous", 5*PageSize - 64, []uint64{100, 101, 102, 103, 104}, 1},
		{"reversed", 5*PageSize - 64, []uint64{104, 103, 102, 101, 100}, 5},
		{"two stretches", 5*PageSize - 64, []uint64{10, 11, 12, 200, 201}, 2},
		{"header page alone", 2*PageSize - 64, []uint64{7, 9}, 2},
		{"short last page", PageSize, []uint64{50, 51}, 1},
		{"one page", 256, []uint64{3}, 1},
		{"stretch leaves RAM", 2*PageSize - 64, []uint64{1023, 1024}, 2},
	} {
		var pages ringMem
		for _, g := range tc.gfns {
			p, err := d.Slice(g*PageSize, PageSize)
			if err != nil && g < 1024 {
				t.Fatal(err)
			}
			if err != nil { // the fake's RAM ends: use a stand-in page
				p = make([]byte, PageSize)
			}
			pages = append(pages, p)
		}
		runs := dataRuns(d, tc.gfns, pages, tc.length)
		if len(runs) != tc.runs {
			t.Errorf("%s: %d runs, want %d", tc.name, len(runs), tc.runs)
		}
		var off uint32
		for _, r := range runs {
			if r.off != off || len(r.b) == 0 {
				t.Fatalf("%s: run at %d, want %d (%d bytes)", tc.name, r.off, off, len(r.b))
			}
			for i := range r.b {
				ringOff := uint64(r.off) + uint64(i) + RingHeaderSize
				if &r.b[i] != &pages[ringOff/PageSize][ringOff%PageSize] {
					t.Fatalf("%s: data byte %d is not ring byte %d", tc.name, uint64(r.off)+uint64(i), ringOff)
				}
			}
			off += uint32(len(r.b))
		}
		if off != tc.length {
			t.Errorf("%s: runs cover %d bytes, want %d", tc.name, off, tc.length)
		}
		for o := uint32(0); o < tc.length; o += 97 {
			s := runs.span(o, 1<<30)
			ringOff := uint64(o) + RingHeaderSize
			if &s[0] != &pages[ringOff/PageSize][ringOff%PageSize] {
				t.Fatalf("%s: span(%d) starts at the wrong byte", tc.name, o)
			}
		}
	}
}

// A mapper that breaks its contract (an empty run, or more than asked)
// cannot make the VMM copy what it was not asked to: -EFAULT.
type badMapper struct {
	*fakeDomain
	empty bool
}

func (b badMapper) MapGuest(addr, n uint64, _ bool) ([]byte, error) {
	if addr < 0x1000000 { // arguments: honest
		return b.Slice(addr, n)
	}
	if b.empty {
		return nil, nil
	}
	return b.Slice(addr, n+PageSize)
}

func TestSendBadMapper(t *testing.T) {
	for _, empty := range []bool{true, false} {
		cw := newCopyWorld(t, 64<<10, false, false)
		tx := cw.ring.tx()
		if ret := cw.sendIovs(badMapper{cw.s.fakeDomain, empty}, iov{addr: 0x1000000, len: 100}); ret != -EFAULT {
			t.Fatalf("empty %v: sendv = %d, want -EFAULT", empty, ret)
		}
		if cw.ring.tx() != tx {
			t.Fatal("tx_ptr moved")
		}
	}
}

// A send, and a batch of sends, from a caller that maps its memory (every
// guest's) allocates nothing: not per page, not per message.
func TestSendAllocatesNothing(t *testing.T) {
	if hsync.Enabled {
		t.Skip("lock assertions (and the lock validator built with them) allocate")
	}
	cw := newCopyWorld(t, 1<<20, false, true)
	const va = 0x1000000
	cw.scatter(rand.New(rand.NewSource(1)), va, 20)
	c := mappedDomain{cw.s}
	addr := cw.s.put(sendAddrBytes(Addr{Port: 1, Domain: DomainAny}, Addr{Port: 1, Domain: 2}))
	ia := cw.s.put(iovBytes(iov{addr: va + 5, len: 16 * PageSize}, iov{addr: va + 17*PageSize, len: 100}))
	ent := sendEnt{src: Addr{Domain: DomainAny}, dst: Addr{Port: 1, Domain: 2}, iovAddr: ia, niov: 2}
	ents := cw.s.put(sendEntBytes([]sendEnt{ent, ent, ent, ent}))
	pg := cw.ring.pages()
	consume := func() { pg.publishRx(pg.txPtr()) }
	for _, tc := range []struct {
		name string
		op   func() int64
		want int64
	}{
		{"sendv", func() int64 { return cw.a.Op(c, OpSendv, addr, ia, 2, 5) }, 16*PageSize + 100},
		{"sendv_batch", func() int64 { return cw.a.Op(c, OpSendvBatch, ents, 0, 4, 0) }, 4},
	} {
		var bad int64
		allocs := testing.AllocsPerRun(50, func() {
			if r := tc.op(); r != tc.want {
				bad = r
			}
			consume()
		})
		if bad != 0 {
			t.Fatalf("%s returned %d", tc.name, bad)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, allocs)
		}
	}
}

func (v iov) String() string { return fmt.Sprintf("{%#x %d}", v.addr, v.len) }

// populating is a fake domain memory that records Populate calls.
type populating struct {
	*fakeDomain
	calls [][2]uint64
}

func (p *populating) Populate(gpa, n uint64) { p.calls = append(p.calls, [2]uint64{gpa, n}) }

// Registering a ring populates its pages, one call per stretch of
// consecutive frames, and only once every page is known good.
func TestRegisterPopulates(t *testing.T) {
	w := newWorld(t)
	d := newFakeDomain(1, 4<<20)
	p := &populating{fakeDomain: d}
	if err := w.a.AddDomain(1, p, permissive); err != nil {
		t.Fatal(err)
	}
	w.add(2, permissive)
	for i, tc := range []struct {
		scatter bool
		want    int
	}{{false, 1}, {true, 4}} {
		p.calls = nil
		r := d.layRing(3*PageSize, tc.scatter) // 4 pages
		if ret := w.a.Op(d, OpRegisterRing, d.put(regBytes(uint32(10+i), 2, 0, r.length)), r.gfns, r.npages, 0); ret != 0 {
			t.Fatalf("register: %d", ret)
		}
		if len(p.calls) != tc.want {
			t.Fatalf("scatter %v: %d Populate calls %v, want %d", tc.scatter, len(p.calls), p.calls, tc.want)
		}
		var total uint64
		for _, c := range p.calls {
			if c[0] < r.base || c[0]+c[1] > r.base+r.npages*PageSize {
				t.Fatalf("populated %#x+%#x outside the ring", c[0], c[1])
			}
			total += c[1]
		}
		if total != r.npages*PageSize {
			t.Fatalf("populated %d bytes, want %d", total, r.npages*PageSize)
		}
	}
	// A bad gfn: -EFAULT, nothing populated.
	p.calls = nil
	r := d.layRing(3*PageSize, false)
	le.PutUint64(d.ram[r.gfns+2*8:], 1<<40)
	if ret := w.a.Op(d, OpRegisterRing, d.put(regBytes(99, 2, 0, r.length)), r.gfns, r.npages, 0); ret != -EFAULT || len(p.calls) != 0 {
		t.Fatalf("bad gfn: %d, %d Populate calls", ret, len(p.calls))
	}
}

// signals keeps every domain once, in any number, and remove drops one.
func TestSignalsSet(t *testing.T) {
	var s signals
	for _, id := range []DomainID{1, 2, 1, 3, 4, 5, 6, 2, 7} {
		s.add(id)
	}
	s.remove(2)
	s.remove(6)
	s.remove(9)
	var got []DomainID
	for _, id := range append(s.ids.buf[:s.ids.n:s.ids.n], s.ids.more...) {
		got = append(got, id)
	}
	want := map[DomainID]bool{1: true, 3: true, 4: true, 5: true, 7: true}
	if len(got) != len(want) {
		t.Fatalf("signals %v, want %v", got, want)
	}
	for _, id := range got {
		if !want[id] || !s.has(id) {
			t.Fatalf("signals %v, want %v", got, want)
		}
	}
	if s.has(2) || s.has(6) {
		t.Fatal("removed ids still there")
	}
}
