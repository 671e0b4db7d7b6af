//go:build lockdebug

package hsync

import "testing"

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}

func TestAssertions(t *testing.T) {
	var m Mutex
	var rw RWMutex
	if !panics(m.AssertLocked) || !panics(rw.AssertLocked) || !panics(rw.AssertRLocked) {
		t.Fatal("assertions pass on unlocked mutexes")
	}
	m.Lock()
	rw.RLock()
	if panics(m.AssertLocked) || panics(rw.AssertRLocked) {
		t.Fatal("assertions fail on locked mutexes")
	}
	if !panics(rw.AssertLocked) {
		t.Fatal("a read lock passes a write-lock assertion")
	}
	rw.RUnlock()
	rw.Lock()
	if panics(rw.AssertLocked) || panics(rw.AssertRLocked) {
		t.Fatal("write lock fails assertions")
	}
	rw.Unlock()
	m.Unlock()
	if !panics(func() { Assert(false, "x") }) {
		t.Fatal("Assert(false) passed")
	}
}
