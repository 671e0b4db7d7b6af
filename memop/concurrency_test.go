package memop

import (
	"math/rand"
	"sync"
	"testing"
)

// Several vCPUs of two domains balloon random frames in and out while
// frames are transferred between the domains and Present is polled. With
// -race this checks the locking; afterwards every invariant must hold:
// the host holds exactly the populated frames, the reservation matches,
// the hole count is exact, nothing is left busy, and no reservation ever
// went above its maximum.
func TestConcurrentOps(t *testing.T) {
	w := newWorld(t)
	const pages = 256
	ga := w.add(dA, Config{Pages: pages, MaxPages: pages + 64, MaxHoles: 1000})
	gb := w.add(dB, Config{Pages: pages, MaxPages: pages + 64, MaxHoles: 1000})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i, g := range []*guest{ga, gb, ga, gb} {
		// Each worker needs its own argument memory.
		g := &guest{id: g.id, mem: make([]byte, 1<<16)}
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for range 3000 {
				op := uint64(OpDecreaseReservation)
				if r.Intn(2) == 0 {
					op = OpPopulatePhysmap
				}
				w.call(g, op, resv{list: []uint64{uint64(r.Intn(pages + 64))}, order: uint32(r.Intn(2))})
			}
		}(int64(i))
	}
	wg.Add(1)
	go func() { // transfers both ways
		defer wg.Done()
		r := rand.New(rand.NewSource(99))
		for range 3000 {
			from, to := dA, dB
			if r.Intn(2) == 0 {
				from, to = to, from
			}
			gfn, toGFN := uint64(r.Intn(pages+64)), uint64(r.Intn(pages+64))
			if w.m.Take(from, gfn, nil) != nil {
				continue
			}
			if w.m.Reserve(to, toGFN) != nil {
				if r.Intn(2) == 0 {
					w.m.Untake(from, gfn)
				} else if err := w.m.Drop(from, gfn); err != nil {
					t.Error(err)
				}
				continue
			}
			if err := w.m.Move(from, gfn, to, toGFN); err != nil {
				t.Error(err)
			}
		}
	}()
	var readers sync.WaitGroup
	readers.Add(1)
	go func() { // readers, until the writers are done
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, id := range []DomainID{dA, dB} {
				w.dom[id].Present(0, pages)
				if s := w.dom[id].Stats(); s.Current > s.Max {
					t.Errorf("dom%d: reservation %d above maximum %d", id, s.Current, s.Max)
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	w.recount(dA)
	w.recount(dB)
	a, b := w.stats(dA), w.stats(dB)
	if a.TransfersOut+b.TransfersOut == 0 || a.Decreased+b.Decreased == 0 || a.Populated+b.Populated == 0 {
		t.Errorf("the workload did nothing: %+v / %+v", a, b)
	}
	t.Logf("dom%d %+v; dom%d %+v", dA, a, dB, b)
}
