package hsync

// Mutex is an exclusive lock with lock-state assertions and a lockdep
// class. The zero value is an unlocked mutex without a class; use Init to
// give it one.
type Mutex struct {
	mu    mutex
	class Class
	dbg   holders
}

// Init sets the lockdep class. It must be called before first use.
func (m *Mutex) Init(c Class) { m.class = c }

// Lock locks m.
// +checklocksignore
func (m *Mutex) Lock() {
	lockdepAcquire(m.class, -1)
	m.mu.Lock()
	m.dbg.addWriter()
}

// NestedLock locks m as the i'th nested instance of its class.
// +checklocksignore
func (m *Mutex) NestedLock(i int) {
	lockdepAcquire(m.class, i)
	m.mu.Lock()
	m.dbg.addWriter()
}

// Unlock unlocks m.
// +checklocksignore
func (m *Mutex) Unlock() {
	m.dbg.delWriter()
	m.mu.Unlock()
	lockdepRelease(m.class, -1)
}

// NestedUnlock unlocks m taken with NestedLock(i).
// +checklocksignore
func (m *Mutex) NestedUnlock(i int) {
	m.dbg.delWriter()
	m.mu.Unlock()
	lockdepRelease(m.class, i)
}

// AssertLocked panics in lockdebug builds if nobody holds m.
func (m *Mutex) AssertLocked() { m.dbg.assertWriter() }

// RWMutex is a reader/writer lock with lock-state assertions and a lockdep
// class.
type RWMutex struct {
	mu    rwMutex
	class Class
	dbg   holders
}

// Init sets the lockdep class. It must be called before first use.
func (m *RWMutex) Init(c Class) { m.class = c }

// Lock locks m for writing.
// +checklocksignore
func (m *RWMutex) Lock() {
	lockdepAcquire(m.class, -1)
	m.mu.Lock()
	m.dbg.addWriter()
}

// Unlock releases a write lock.
// +checklocksignore
func (m *RWMutex) Unlock() {
	m.dbg.delWriter()
	m.mu.Unlock()
	lockdepRelease(m.class, -1)
}

// RLock locks m for reading.
// +checklocksignore
func (m *RWMutex) RLock() {
	lockdepAcquire(m.class, -1)
	m.mu.RLock()
	m.dbg.addReader()
}

// RUnlock releases a read lock.
// +checklocksignore
func (m *RWMutex) RUnlock() {
	m.dbg.delReader()
	m.mu.RUnlock()
	lockdepRelease(m.class, -1)
}

// NestedRLock read-locks m as the i'th nested instance of its class.
// +checklocksignore
func (m *RWMutex) NestedRLock(i int) {
	lockdepAcquire(m.class, i)
	m.mu.RLock()
	m.dbg.addReader()
}

// NestedRUnlock releases NestedRLock(i).
// +checklocksignore
func (m *RWMutex) NestedRUnlock(i int) {
	m.dbg.delReader()
	m.mu.RUnlock()
	lockdepRelease(m.class, i)
}

// AssertLocked panics in lockdebug builds unless m is write-locked.
func (m *RWMutex) AssertLocked() { m.dbg.assertWriter() }

// AssertRLocked panics in lockdebug builds unless m is read- or
// write-locked by someone (Xen's rw_is_locked).
func (m *RWMutex) AssertRLocked() { m.dbg.assertAny() }

// IsLocked reports, in lockdebug builds, whether m is write-locked; it is
// always true otherwise so that composite assertions stay no-ops.
func (m *RWMutex) IsLocked() bool { return m.dbg.isWriter() }

// IsRLocked reports, in lockdebug builds, whether anyone holds m; always
// true otherwise.
func (m *RWMutex) IsRLocked() bool { return m.dbg.isAny() }

// Enabled reports whether lock-state assertions are compiled in.
const Enabled = debugEnabled
