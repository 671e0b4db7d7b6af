package sandbox

import "fmt"

// Mode is what the seccomp filter does with a system call outside the
// allowlist (--seccomp).
type Mode int

const (
	// SeccompOn kills the whole process (SECCOMP_RET_KILL_PROCESS). The
	// default.
	SeccompOn Mode = iota
	// SeccompLog lets the call through and has the kernel log it
	// (SECCOMP_RET_LOG), for finding what an allowlist lacks.
	SeccompLog
	// SeccompOff installs no filter; the other hardening still applies.
	SeccompOff
)

var modeNames = [...]string{SeccompOn: "on", SeccompLog: "log", SeccompOff: "off"}

func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "on", "log" or "off".
func ParseMode(s string) (Mode, error) {
	for m, n := range modeNames {
		if s == n {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("seccomp mode %q: want on, log or off", s)
}
