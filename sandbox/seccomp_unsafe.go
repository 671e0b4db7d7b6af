package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/bpf"
)

// loadFilter sets no_new_privs and installs prog on every thread of the
// process. The calling goroutine stays on one thread throughout: the
// kernel wants no_new_privs on the thread that installs the filter, and
// SECCOMP_FILTER_FLAG_TSYNC then gives both the filter and no_new_privs to
// every other thread (and threads inherit them when created).
func loadFilter(prog []unix.SockFilter) error {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS: %w", err)
	}
	// Checked now: the filter does not let prctl read it back.
	if err := checkNoNewPrivs(); err != nil {
		return err
	}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	switch {
	case e == unix.ENOSYS || e == unix.EINVAL:
		return fmt.Errorf("install seccomp filter: the kernel does not support seccomp filters (CONFIG_SECCOMP_FILTER): %w", e)
	case e != 0:
		return fmt.Errorf("install seccomp filter: %w", e)
	case r != 0:
		// With TSYNC a positive result names a thread that could not
		// take the filter; then no thread has it.
		return fmt.Errorf("install seccomp filter: thread %d could not be synchronised", r)
	}
	return nil
}

// actionAvailable asks the kernel whether it knows a filter action
// (SECCOMP_GET_ACTION_AVAIL, Linux 4.14), named name for errors.
func actionAvailable(action uint32, name string) error {
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action)))
	switch {
	case e == 0:
		return nil
	case e == unix.ENOSYS:
		return fmt.Errorf("the kernel has no seccomp (CONFIG_SECCOMP): %w", e)
	case e == unix.EINVAL:
		return fmt.Errorf("the kernel is older than Linux 4.14 (no SECCOMP_GET_ACTION_AVAIL, no %s): %w", name, e)
	default:
		return fmt.Errorf("the kernel lacks the seccomp action %s: %w", name, e)
	}
}

// setNoNewPrivs sets no_new_privs on every thread without a filter
// (--seccomp=off). A binary that links the C library (cgo; the race
// detector brings it in) cannot make one system call on all threads from
// Go, so there an allow-everything filter carries the bit to every thread
// through TSYNC.
func setNoNewPrivs() error {
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0)
	if e == 0 {
		return checkNoNewPrivs()
	}
	if !errors.Is(e, unix.ENOTSUP) {
		return fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS on all threads: %w", e)
	}
	allowAll := []unix.SockFilter{{Code: bpf.Ret | bpf.K, K: unix.SECCOMP_RET_ALLOW}}
	return loadFilter(allowAll)
}

// checkNoNewPrivs checks the bit on the calling thread.
func checkNoNewPrivs() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("prctl PR_GET_NO_NEW_PRIVS: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("no_new_privs is %d after setting it", n)
	}
	return nil
}
