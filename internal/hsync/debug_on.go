//go:build lockdebug

package hsync

import (
	"fmt"
	"sync/atomic"
)

const debugEnabled = true

// holders counts who holds a mutex, for assertions only.
type holders struct {
	writers atomic.Int32
	readers atomic.Int32
}

func (h *holders) addWriter() { h.writers.Add(1) }
func (h *holders) delWriter() {
	if h.writers.Add(-1) < 0 {
		panic("hsync: unlock of an unlocked mutex")
	}
}
func (h *holders) addReader() { h.readers.Add(1) }
func (h *holders) delReader() {
	if h.readers.Add(-1) < 0 {
		panic("hsync: runlock of an unlocked mutex")
	}
}
func (h *holders) isWriter() bool { return h.writers.Load() > 0 }
func (h *holders) isAny() bool    { return h.writers.Load() > 0 || h.readers.Load() > 0 }

func (h *holders) assertWriter() {
	if !h.isWriter() {
		panic(fmt.Sprintf("hsync: lock assertion failed: mutex %p not write-locked", h))
	}
}

func (h *holders) assertAny() {
	if !h.isAny() {
		panic(fmt.Sprintf("hsync: lock assertion failed: mutex %p not locked", h))
	}
}

// Assert panics with msg if cond is false (lockdebug builds only).
func Assert(cond bool, msg string) {
	if !cond {
		panic("hsync: lock assertion failed: " + msg)
	}
}
