package sandbox

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/seccomp"
)

// Config is what Lockdown applies.
type Config struct {
	// Seccomp is the filter's mode; the zero value is SeccompOn.
	Seccomp Mode
	// User, if set, is the user and group to drop to. The process must
	// be root.
	User *Cred
	// Needs are the system calls the process makes after Lockdown beyond
	// the Go runtime's.
	Needs Needs
	// MaxFiles, if not 0, becomes both the soft and the hard
	// RLIMIT_NOFILE (normally the budget EnsureFileLimit raised the limit
	// to before setup); otherwise the hard limit is lowered to the soft.
	MaxFiles uint64
}

// Check reports whether c can be applied here, so that a caller can refuse
// before doing any setup: --user needs root, the seccomp modes need the
// kernel's support, and the allowlist must assemble.
func (c Config) Check() error {
	_, err := c.check(seccomp.KillProcess)
	return err
}

// check is Check; it returns the filter to install (nil for SeccompOff),
// with deny for calls off the list in SeccompOn mode.
func (c Config) check(deny seccomp.Action) ([]unix.SockFilter, error) {
	if c.User != nil && unix.Geteuid() != 0 {
		return nil, fmt.Errorf("dropping to user %v needs root (running as uid %d)", *c.User, unix.Geteuid())
	}
	switch c.Seccomp {
	case SeccompOff:
		return nil, nil
	case SeccompLog:
		if err := actionAvailable(unix.SECCOMP_RET_LOG, "SECCOMP_RET_LOG"); err != nil {
			return nil, fmt.Errorf("--seccomp=log: %w", err)
		}
	case SeccompOn:
		if err := actionAvailable(unix.SECCOMP_RET_KILL_PROCESS, "SECCOMP_RET_KILL_PROCESS"); err != nil {
			return nil, fmt.Errorf("--seccomp=on: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown seccomp mode %v", c.Seccomp)
	}
	prog, err := program(c.Needs, os.Getpid(), deny, c.Seccomp == SeccompLog)
	if err != nil {
		return nil, fmt.Errorf("seccomp allowlist: %w", err)
	}
	return prog, nil
}

// Lockdown confines the whole process, in this order, checking each step:
//
//  1. RLIMIT_NOFILE is pinned: soft and hard both MaxFiles, or the hard
//     one lowered to the soft one; it cannot go up again without
//     CAP_SYS_RESOURCE (gone after a drop to User) and setrlimit (not on
//     the allowlist);
//  2. with User, the supplementary groups are cleared and every thread
//     takes User's uid and gid (real, effective and saved), and it is
//     checked that root cannot be regained and no capability is left;
//  3. RLIMIT_CORE is 0 and the process is not dumpable (after the drop,
//     which resets dumpability);
//  4. no_new_privs is set on every thread;
//  5. unless Seccomp is SeccompOff, the allowlist filter is installed on
//     every thread.
//
// Call it after everything that needs privileges or opens files, and
// before any untrusted input is handled. An error leaves the process
// partly confined: the caller should exit.
func Lockdown(c Config) error { return lockdown(c, seccomp.KillProcess) }

// lockdown is Lockdown with deny for calls off the list in SeccompOn mode
// (tests use an errno to see each refusal).
func lockdown(c Config, deny seccomp.Action) error {
	// Everything that can fail without changing the process comes first.
	prog, err := c.check(deny)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := pinFileLimit(c.MaxFiles); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if c.User != nil {
		if err := dropPrivileges(*c.User); err != nil {
			return fmt.Errorf("sandbox: drop privileges to %v: %w", *c.User, err)
		}
	}
	if err := disableCoreDumps(); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if prog == nil {
		err = setNoNewPrivs()
	} else {
		err = loadFilter(prog)
	}
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}
