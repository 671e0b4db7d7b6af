package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// EnsureFileLimit raises RLIMIT_NOFILE so that need descriptors fit, before
// they are opened: the soft limit up to need, and the hard limit too when
// the process may (CAP_SYS_RESOURCE). It fails, saying how to fix it, when the hard
// limit is below need and cannot be raised (raising it takes
// CAP_SYS_RESOURCE), and returns the limit it set.
func EnsureFileLimit(need uint64) (unix.Rlimit, error) {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		return cur, fmt.Errorf("getrlimit RLIMIT_NOFILE: %w", err)
	}
	want, err := planFileLimit(cur, need, hasCapability(unix.CAP_SYS_RESOURCE))
	if err != nil {
		return cur, err
	}
	if want != cur {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			return cur, fmt.Errorf("raise RLIMIT_NOFILE from %d/%d to %d/%d for %d descriptors: %w", cur.Cur, cur.Max, want.Cur, want.Max, need, err)
		}
	}
	return want, checkLimit(unix.RLIMIT_NOFILE, "RLIMIT_NOFILE", func(got unix.Rlimit) bool {
		return got.Cur >= need && got.Cur <= got.Max
	})
}

// planFileLimit is the RLIMIT_NOFILE to set for need descriptors given the
// current one: cur if it suffices, else a soft limit of need (and a hard
// limit of need if the hard one is lower and privileged says it may be
// raised).
func planFileLimit(cur unix.Rlimit, need uint64, privileged bool) (unix.Rlimit, error) {
	if cur.Cur >= need {
		return cur, nil
	}
	if cur.Max >= need {
		return unix.Rlimit{Cur: need, Max: cur.Max}, nil
	}
	if privileged {
		return unix.Rlimit{Cur: need, Max: need}, nil
	}
	return cur, fmt.Errorf("RLIMIT_NOFILE hard limit %d is below the %d descriptors the domains need (raise it, e.g. ulimit -Hn %d, or run fewer or smaller domains)", cur.Max, need, need)
}

// pinFileLimit sets the soft and hard RLIMIT_NOFILE to max, or with max 0
// lowers the hard one to the soft one, so that the process never gets more
// descriptors than it was given at setup, even without a seccomp filter.
func pinFileLimit(max uint64) error {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		return fmt.Errorf("getrlimit RLIMIT_NOFILE: %w", err)
	}
	if max == 0 {
		max = cur.Cur
	}
	want := unix.Rlimit{Cur: max, Max: max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("pin RLIMIT_NOFILE to %d (it is %d/%d): %w", max, cur.Cur, cur.Max, err)
	}
	return checkLimit(unix.RLIMIT_NOFILE, "RLIMIT_NOFILE", func(got unix.Rlimit) bool { return got == want })
}

// disableCoreDumps sets RLIMIT_CORE to 0 and makes the process
// non-dumpable. The limit alone is not enough: a core_pattern that pipes to
// a program (systemd-coredump, apport) ignores it, while a non-dumpable
// process is never dumped. Non-dumpable also keeps other processes of the
// same user from attaching with ptrace or reading /proc/PID/mem.
// Preconditions: credentials are final (a credential change resets
// dumpable to the fs.suid_dumpable sysctl).
func disableCoreDumps() error {
	zero := unix.Rlimit{}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &zero); err != nil {
		return fmt.Errorf("setrlimit RLIMIT_CORE 0: %w", err)
	}
	if err := checkLimit(unix.RLIMIT_CORE, "RLIMIT_CORE", func(got unix.Rlimit) bool { return got == zero }); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_DUMPABLE 0: %w", err)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		return fmt.Errorf("prctl PR_GET_DUMPABLE = %d (%v), want 0", d, err)
	}
	return nil
}

func checkLimit(res int, name string, ok func(unix.Rlimit) bool) error {
	var got unix.Rlimit
	if err := unix.Getrlimit(res, &got); err != nil {
		return fmt.Errorf("getrlimit %s: %w", name, err)
	}
	if !ok(got) {
		return fmt.Errorf("%s is %d/%d after setting it", name, got.Cur, got.Max)
	}
	return nil
}
