//go:build lockdebug

package gnttab

import "testing"

// With lockdebug, functions that document a lock precondition assert it.
func TestPreconditionsAsserted(t *testing.T) {
	w := newWorld(t)
	w.add(1, Config{})
	d := w.domainOf(1)
	for name, f := range map[string]func(){
		"acquireLocked without tableMu":  func() { d.acquireLocked(0, 1, true, true) },
		"releaseLocked without tableMu":  func() { d.releaseLocked(0, true) },
		"allocHandle without maptrackMu": func() { d.allocHandleLocked() },
		"mapOne without l1":              func() { w.g.mapOne(d, mapOp{}) },
		"revokeLocked without W(l1)":     func() { w.g.revokeLocked(d, d, &signals{}) },
		"diedLocked without W(l1)":       func() { w.g.diedLocked(1, &signals{}) },
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
