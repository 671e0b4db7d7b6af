package argosync

import (
	"reflect"

	"gvisor.dev/gvisor/pkg/sync/locking"
)

func typeOf(v any) reflect.Type { return reflect.TypeOf(v) }

// lockdepAcquire records the lock with gVisor's validator. Without the
// lockdep tag locking.AddGLock is an empty function.
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
