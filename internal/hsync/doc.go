// Package hsync provides the mutexes the lock hierarchies of Argo and the
// grant tables are built from: shared infrastructure, so it belongs to
// neither. Normal builds use the standard library's mutexes; the lockdep
// build uses gvisor.dev/gvisor/pkg/sync and its lock validator.
//
// Three build tags add checking without changing the code that uses them:
//
//   - lockdebug: every mutex counts its holders so that AssertLocked and
//     AssertRLocked can check the lock state a function documents in its
//     "Preconditions:" (Xen's LOCKING_* macros). Without the tag the asserts
//     compile to nothing and the mutexes carry no counters.
//   - lockdep: every mutex belongs to a Class, and gVisor's lock validator
//     (pkg/sync/locking) panics on an order inversion or on taking two locks
//     of one class without a nesting name.
//   - checklocks (with lockdep): gVisor's own ownership checks (double
//     lock, unlock by a goroutine that does not hold it).
//
// The static side is the checklocks analyzer: fields carry "+checklocks"
// annotations naming the mutex that guards them, and functions carry
// "+checklocks" / "+checklocksread" for the locks they need on entry.
package hsync
