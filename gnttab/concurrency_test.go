package gnttab

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentGrantees runs several grantees mapping, unmapping and
// copying the same granter's grants while the granter rewrites its entries
// (changing their grantee and read-only bit, ending access) and finally
// dies, with the race detector watching. Every status must be one the
// situation allows; at the end every grantee has unmapped everything, the
// window is empty and nothing is pinned.
func TestConcurrentGrantees(t *testing.T) {
	w := newWorld(t)
	const (
		grantees = 4
		refs     = 32
	)
	v := w.add(100, Config{})
	var frames [refs]uint64
	for i := range frames {
		frames[i] = v.page()
	}
	ids := make([]DomainID, grantees)
	gs := make([]*fakeDomain, grantees)
	for i := range gs {
		ids[i] = DomainID(i + 1)
		gs[i] = w.add(ids[i], Config{})
	}
	for r := range uint32(refs) {
		v.grant(r, ids[r%grantees], frames[r], GTFPermitAccess)
	}

	var (
		wg        sync.WaitGroup
		stop      atomic.Bool
		dying     atomic.Bool // set before DomainDied
		dead      atomic.Bool // set after it returned
		mapsOK    atomic.Int64
		copiesOK  atomic.Int64
		badStatus atomic.Value
	)
	fail := func(s string) { badStatus.CompareAndSwap(nil, s) }

	// The granter.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for !stop.Load() {
			r := uint32(rng.IntN(refs))
			switch rng.IntN(4) {
			case 0: // end access if unused, then re-grant to someone
				if v.endAccess(r) {
					v.grant(r, ids[rng.IntN(grantees)], frames[r], GTFPermitAccess)
				}
			case 1: // toggle read-only (only allowed while not written)
				h := v.hdr(r)
				old := atomic.LoadUint32(h)
				if old&GTFWriting == 0 {
					atomic.CompareAndSwapUint32(h, old, old^GTFReadonly)
				}
			default:
				time.Sleep(time.Microsecond)
			}
		}
	}()

	// The grantees. Each owns a scratch page and a few argument buffers;
	// it maps, copies in both directions and unmaps until the granter is
	// gone, then unmaps whatever it still holds.
	for i, d := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			mine := d.page()
			mapArg := d.alloc(sizeofMap, true)
			unmapArg := d.alloc(PageSize, true)
			copyArg := d.alloc(sizeofCopy, true)
			type mapping struct {
				h   uint32
				gpa uint64
			}
			var held []mapping
			unmapAll := func() {
				for j, m := range held {
					x := d.ram[unmapArg+uint64(j)*sizeofUnmap:]
					le.PutUint64(x[0:], m.gpa)
					le.PutUint64(x[8:], 0)
					le.PutUint32(x[16:], m.h)
				}
				if ret := w.g.Op(d, OpUnmapGrantRef, unmapArg, uint64(len(held))); ret != 0 {
					fail("unmap returned an error")
				}
				for j := range held {
					if st := int16(le.Uint16(d.ram[unmapArg+uint64(j)*sizeofUnmap+20:])); st != GNTSTOkay {
						fail("unmap status not okay")
					}
				}
				held = held[:0]
			}
			for !stop.Load() {
				r := uint32(rng.IntN(refs))
				roMap := rng.IntN(2) == 0
				flags, gpa := uint32(hostRW), rw(len(held))
				if roMap {
					flags, gpa = hostRO, ro(len(held))
				}
				copy(d.ram[mapArg:], mapBytes(mapArgs{dom: 100, ref: r, flags: flags, gpa: gpa}))
				wasDead := dead.Load()
				if ret := w.g.Op(d, OpMapGrantRef, mapArg, 1); ret != 0 {
					fail("map returned an error")
				}
				switch st := int16(le.Uint16(d.ram[mapArg+18:])); st {
				case GNTSTOkay:
					if wasDead {
						fail("map of a dead granter's grant succeeded")
					}
					held = append(held, mapping{le.Uint32(d.ram[mapArg+20:]), gpa})
					mapsOK.Add(1)
				case GNTSTGeneralError: // not ours now, read-only, or pinned by another
				case GNTSTBadDomain:
					if !dying.Load() {
						fail("bad_domain while the granter lives")
					}
					unmapAll()
					return
				default:
					fail("unexpected map status")
				}
				// A copy, one way or the other, of part of the grant.
				off := uint16(rng.IntN(PageSize / 2))
				op := copyArgs{src: gref(100, r, off), dst: gmfn(DomainSelf, mine, off), len: 256, flags: GNTCOPYSourceGref}
				if rng.IntN(2) == 0 {
					op = copyArgs{src: gmfn(d.id, mine, off), dst: gref(100, r, off), len: 256, flags: GNTCOPYDestGref}
				}
				copy(d.ram[copyArg:], copyBytes(op))
				if ret := w.g.Op(d, OpCopy, copyArg, 1); ret != 0 {
					fail("copy returned an error")
				}
				switch int16(le.Uint16(d.ram[copyArg+36:])) {
				case GNTSTOkay:
					copiesOK.Add(1)
				case GNTSTGeneralError, GNTSTBadDomain:
				default:
					fail("unexpected copy status")
				}
				if len(held) >= 16 || rng.IntN(4) == 0 {
					unmapAll()
				}
			}
			unmapAll()
		}()
	}

	time.Sleep(300 * time.Millisecond)
	dying.Store(true)
	w.g.DomainDied(100)
	dead.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		done := true
		for _, id := range ids {
			if len(w.handles(id)) != 0 {
				done = false
			}
		}
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Grantees stop by themselves on bad_domain; make sure they do.
	time.Sleep(50 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if s := badStatus.Load(); s != nil {
		t.Fatal(s)
	}
	t.Logf("%d maps, %d copies succeeded", mapsOK.Load(), copiesOK.Load())
	if mapsOK.Load() == 0 || copiesOK.Load() == 0 {
		t.Error("the test did not exercise maps and copies")
	}
	for _, id := range ids {
		if n := w.win.mapped(id); n != 0 {
			t.Errorf("dom%d: %d window pages left", id, n)
		}
		if hs := w.handles(id); len(hs) != 0 {
			t.Errorf("dom%d: handles %v left", id, hs)
		}
		if s, _ := w.g.Stats(id); s.Mapped != 0 {
			t.Errorf("dom%d: %+v", id, s)
		}
		if w.sig.Count(id) > 1 {
			t.Errorf("dom%d signalled %d times", id, w.sig.Count(id))
		}
	}
}

// TestOpsDoNotBlockOnOtherDomains: while one mapper holds its maptrack
// lock, other domains' maps and copies go through.
func TestOpsDoNotBlockOnOtherDomains(t *testing.T) {
	w := newWorld(t)
	a, b, c := w.add(1, Config{}), w.add(2, Config{}), w.add(3, Config{})
	b.grant(8, 1, b.page(), GTFPermitAccess)
	b.grant(9, 3, b.page(), GTFPermitAccess)
	da := w.domainOf(1)
	da.maptrackMu.Lock()
	done := make(chan int16, 1)
	go func() {
		st, h := w.mapOne(c, 2, 9, hostRW, rw(0))
		w.unmapOne(c, h, 0)
		done <- st
	}()
	select {
	case st := <-done:
		expectSt(t, "c's map", st, GNTSTOkay)
	case <-time.After(10 * time.Second):
		da.maptrackMu.Unlock()
		t.Fatal("c's map waited for a's maptrack lock")
	}
	go func() { st, _ := w.mapOne(a, 2, 8, hostRW, rw(0)); done <- st }()
	select {
	case <-done:
		t.Error("a's map did not wait for its own maptrack lock")
	case <-time.After(50 * time.Millisecond):
	}
	da.maptrackMu.Unlock()
	expectSt(t, "a's map", <-done, GNTSTOkay)
}
