// Package testutil holds small helpers shared by the unit tests of several
// packages.
package testutil

import "sync"

// Counter counts events per key, safely from many goroutines: the Argo and
// grant-table tests use it to record which domains were signalled.
type Counter[K comparable] struct {
	mu  sync.Mutex
	got map[K]int
}

// Add records one event for k (its signature fits a signal callback).
func (c *Counter[K]) Add(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[K]int{}
	}
	c.got[k]++
}

// Count is the number of events recorded for k.
func (c *Counter[K]) Count(k K) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[k]
}

// Reset forgets every event.
func (c *Counter[K]) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = nil
}

// Snapshot copies the counts, for error messages.
func (c *Counter[K]) Snapshot() map[K]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[K]int, len(c.got))
	for k, v := range c.got {
		m[k] = v
	}
	return m
}
