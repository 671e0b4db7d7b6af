//go:build lockdebug

package argo

import "testing"

// With lockdebug, functions that document a lock precondition assert it.
func TestPreconditionsAsserted(t *testing.T) {
	w := newWorld(t)
	w.add(1, permissive)
	st := w.stateOf(1)
	for name, f := range map[string]func(){
		"lookupRing without rings_L2": func() { w.a.lookupRing(st, 1, 2) },
		"registerRing without L1":     func() { w.a.registerRing(nil, nil, 0, 0, 0, 0) },
		"teardown without W(L1)":      func() { w.a.teardownLocked(1, &signals{}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no assertion failure", name)
				}
			}()
			f()
		}()
	}
}
