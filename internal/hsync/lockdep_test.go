//go:build lockdep

package hsync

import (
	"strings"
	"testing"
)

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil || !strings.Contains(r.(string), want) {
			t.Fatalf("panic = %v, want one containing %q", r, want)
		}
	}()
	f()
}

// The validator must see an order inversion between two classes.
func TestLockdepCatchesInversion(t *testing.T) {
	var a, b Mutex
	a.Init(NewClass("test-a"))
	b.Init(NewClass("test-b"))
	a.Lock()
	b.Lock()
	b.Unlock()
	a.Unlock()
	b.Lock()
	mustPanic(t, "circular locking", func() { a.Lock() })
}

// Two locks of one class need a nesting name.
func TestLockdepCatchesNesting(t *testing.T) {
	c := NewClass("test-c", "peer")
	var x, y RWMutex
	x.Init(c)
	y.Init(c)
	x.RLock()
	y.NestedRLock(0) // allowed: named nesting
	y.NestedRUnlock(0)
	mustPanic(t, "nested locking", func() { y.RLock() })
}
