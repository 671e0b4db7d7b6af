//go:build !lockdep

package hsync

import "sync"

// Without the lockdep tag the mutexes are the standard library's and
// classes cost nothing: normal builds (and programs embedding argovisor's
// packages) never link gVisor's lock validator.
type (
	mutex   = sync.Mutex
	rwMutex = sync.RWMutex
)

// Class is a lock class; it only has content in the lockdep build.
type Class struct{}

// NewClass makes a lock class (see the lockdep build's NewClass).
func NewClass(any, ...string) Class { return Class{} }

func lockdepAcquire(Class, int) {}
func lockdepRelease(Class, int) {}
