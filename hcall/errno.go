package hcall

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// MaxErrno bounds the errno values counted one by one; a larger value (never
// returned by this project's mechanisms) is counted in the last slot.
const MaxErrno = 134

// ErrnoName is the symbolic name of a Linux errno ("ECONNREFUSED"); e may
// be given negated, as hypercalls return it.
func ErrnoName(e int64) string {
	if e < 0 {
		e = -e
	}
	if e == 95 {
		return "EOPNOTSUPP" // Linux's ENOTSUP is the same number; Xen's docs say EOPNOTSUPP
	}
	if n := unix.ErrnoName(syscall.Errno(e)); n != "" {
		return n
	}
	return fmt.Sprintf("errno%d", e)
}

// ErrnoCounts counts failures by errno: index e holds the count of -e
// results. It is a plain array so that statistics holding it stay
// comparable with ==.
type ErrnoCounts [MaxErrno]uint64

// Total is the sum of every count.
func (c *ErrnoCounts) Total() uint64 {
	var t uint64
	for _, n := range c {
		t += n
	}
	return t
}

// ByName returns the non-zero counts keyed by errno name.
func (c *ErrnoCounts) ByName() map[string]uint64 {
	m := map[string]uint64{}
	for e, n := range c {
		if n != 0 {
			m[ErrnoName(int64(e))] += n
		}
	}
	return m
}

// String lists the non-zero counts as "ECONNREFUSED=12 EINVAL=1", sorted by
// name; "" when there are none.
func (c *ErrnoCounts) String() string { return FormatCounts(c.ByName()) }

// FormatCounts renders name→count as "A=1 B=2" sorted by name.
func FormatCounts(m map[string]uint64) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// ErrnoCounter is the live, concurrently updated form of ErrnoCounts.
type ErrnoCounter struct{ n [MaxErrno]atomic.Uint64 }

// Add counts one failure with errno e (positive or negated).
func (c *ErrnoCounter) Add(e int64) {
	if e < 0 {
		e = -e
	}
	if e >= MaxErrno {
		e = MaxErrno - 1
	}
	c.n[e].Add(1)
}

// Snapshot reads every count.
func (c *ErrnoCounter) Snapshot() (s ErrnoCounts) {
	for i := range c.n {
		s[i] = c.n[i].Load()
	}
	return s
}
