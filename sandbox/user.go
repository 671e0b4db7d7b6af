package sandbox

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Cred is the user and group the process drops to (--user UID:GID).
type Cred struct {
	UID, GID uint32
}

func (c Cred) String() string { return fmt.Sprintf("%d:%d", c.UID, c.GID) }

// ParseUser parses "UID:GID", both decimal numbers. Names are not looked up:
// that would read /etc/passwd through the C library or a parser of its own,
// for little gain on the command line of a service.
func ParseUser(s string) (Cred, error) {
	u, g, ok := strings.Cut(s, ":")
	if !ok {
		return Cred{}, fmt.Errorf("user %q: want UID:GID (numbers)", s)
	}
	uid, err := parseID(u)
	if err != nil {
		return Cred{}, fmt.Errorf("user %q: uid: %w", s, err)
	}
	gid, err := parseID(g)
	if err != nil {
		return Cred{}, fmt.Errorf("user %q: gid: %w", s, err)
	}
	if uid == 0 || gid == 0 {
		return Cred{}, fmt.Errorf("user %q: dropping to uid or gid 0 drops nothing", s)
	}
	return Cred{UID: uid, GID: gid}, nil
}

func parseID(s string) (uint32, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number below 2^32", s)
	}
	// (uid_t)-1 means "unchanged" to setresuid.
	if n == math.MaxUint32 {
		return 0, fmt.Errorf("%d is reserved", n)
	}
	return uint32(n), nil
}

// dropPrivileges makes c the real, effective and saved user and group of
// every thread and clears the supplementary groups. Go's syscall package
// applies these to all threads (as the C library does). It then checks that
// the change took and cannot be undone.
func dropPrivileges(c Cred) error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(int(c.GID), int(c.GID), int(c.GID)); err != nil {
		return fmt.Errorf("setresgid %d: %w", c.GID, err)
	}
	if err := syscall.Setresuid(int(c.UID), int(c.UID), int(c.UID)); err != nil {
		return fmt.Errorf("setresuid %d: %w", c.UID, err)
	}
	return checkDropped(c)
}

// checkDropped verifies the calling thread's credentials after a drop.
func checkDropped(c Cred) error {
	r, e, s := unix.Getresuid()
	if r != int(c.UID) || e != int(c.UID) || s != int(c.UID) {
		return fmt.Errorf("uids are %d/%d/%d after the drop, want %d", r, e, s, c.UID)
	}
	r, e, s = unix.Getresgid()
	if r != int(c.GID) || e != int(c.GID) || s != int(c.GID) {
		return fmt.Errorf("gids are %d/%d/%d after the drop, want %d", r, e, s, c.GID)
	}
	if gs, err := unix.Getgroups(); err != nil || len(gs) != 0 {
		return fmt.Errorf("supplementary groups %v (%v) after the drop, want none", gs, err)
	}
	// Regaining root must fail. Setresuid changes nothing when it fails.
	if err := syscall.Setresuid(-1, 0, -1); !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("could set euid 0 again after the drop (%v)", err)
	}
	caps, err := capabilities()
	if err != nil {
		return err
	}
	for _, d := range caps {
		if d.Effective != 0 || d.Permitted != 0 {
			return fmt.Errorf("capabilities left after the drop: effective %#x permitted %#x", d.Effective, d.Permitted)
		}
	}
	return nil
}

// capabilities are the calling thread's capability sets (two words each).
func capabilities() ([2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return caps, fmt.Errorf("capget: %w", err)
	}
	return caps, nil
}

// hasCapability reports whether capability c is effective (root is not
// always enough: a container may withhold some).
func hasCapability(c int) bool {
	if c < 0 || c >= 64 {
		return false
	}
	caps, err := capabilities()
	return err == nil && caps[c/32].Effective&(1<<(c%32)) != 0
}
