package testutil

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// RSSShmemKiB is this process's resident shared memory in KiB (RssShmem in
// /proc/self/status): the memfd pages it has mapped, which for the VMM are
// the guests' RAM pages in use.
func RSSShmemKiB(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "RssShmem:"); ok {
			v, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatal("no RssShmem in /proc/self/status")
	return 0
}
