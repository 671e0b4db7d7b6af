package argo

import "testing"

// HasRingPage follows registration, re-registration, unregistration and
// teardown, page by page.
func TestHasRingPage(t *testing.T) {
	w := newWorld(t)
	a, b := w.add(1, Policy{Enabled: true}), w.add(2, Policy{Enabled: true})
	r := w.mustRegister(a, 3*PageSize-64, 5, 2)
	first := r.base / PageSize
	for i := range r.npages {
		if !w.a.HasRingPage(1, first+i, 1) {
			t.Errorf("ring page %d (frame %#x) not reported", i, first+i)
		}
	}
	for _, q := range []struct{ gfn, n uint64 }{{first - 1, 1}, {first + r.npages, 1}, {0, first}} {
		if w.a.HasRingPage(1, q.gfn, q.n) {
			t.Errorf("HasRingPage(%#x, %d) true outside the ring", q.gfn, q.n)
		}
	}
	if !w.a.HasRingPage(1, 0, first+1) || !w.a.HasRingPage(1, first+r.npages-1, 1<<40) {
		t.Errorf("ranges overlapping the ring not reported")
	}
	if w.a.HasRingPage(2, first, 1) || w.a.HasRingPage(9, first, 1) {
		t.Errorf("another domain's frames reported")
	}
	// Re-registration on other pages moves the answer.
	r2 := a.layRing(r.length, true)
	if ret := w.register(r2, 5, 2, 0); ret != 0 {
		t.Fatalf("re-register: %d", ret)
	}
	if w.a.HasRingPage(1, first, r.npages) || !w.a.HasRingPage(1, r2.base/PageSize, 1) {
		t.Errorf("after re-registration: old pages %v, new pages %v",
			w.a.HasRingPage(1, first, r.npages), w.a.HasRingPage(1, r2.base/PageSize, 1))
	}
	if ret := w.a.Op(a, OpUnregisterRing, a.put(unregBytes(5, 2)), 0, 0, 0); ret != 0 {
		t.Fatalf("unregister: %d", ret)
	}
	if w.a.HasRingPage(1, 0, 1<<40) {
		t.Errorf("ring pages reported after unregistration")
	}
	rb := w.mustRegister(b, 2*PageSize-64, 6, 1)
	w.a.Teardown(2)
	if w.a.HasRingPage(2, rb.base/PageSize, 2) {
		t.Errorf("ring pages reported after teardown")
	}
}
