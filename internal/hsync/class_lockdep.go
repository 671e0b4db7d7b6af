//go:build lockdep

package hsync

import (
	"reflect"

	gsync "gvisor.dev/gvisor/pkg/sync"
	"gvisor.dev/gvisor/pkg/sync/locking"
)

// With the lockdep tag the mutexes are gVisor's and every class is known
// to gVisor's lock validator, which panics on an order inversion or on
// two locks of one class taken without a nesting name.
type (
	mutex   = gsync.Mutex
	rwMutex = gsync.RWMutex
)

// Class is a lock class for the lockdep build: all mutexes in one role (for
// example every domain's rings_L2) share a class, and the validator learns
// the order between classes.
type Class struct {
	c *locking.MutexClass
}

// NewClass makes a lock class. v names it; nested names the extra
// instances of the class that may be held together with the first one
// (Xen's peer-domain cases); pass none when a class is never nested.
func NewClass(v any, nested ...string) Class {
	return Class{c: locking.NewMutexClass(reflect.TypeOf(v), nested)}
}

func lockdepAcquire(c Class, nested int) {
	if c.c != nil {
		locking.AddGLock(c.c, nested)
	}
}

func lockdepRelease(c Class, nested int) {
	if c.c != nil {
		locking.DelGLock(c.c, nested)
	}
}
