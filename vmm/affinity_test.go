package vmm

import (
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCPUSetHoldsMaxCPU(t *testing.T) {
	if n := len(unix.CPUSet{}) * 64; n != maxCPU+1 {
		t.Fatalf("unix.CPUSet has %d bits, maxCPU is %d", n, maxCPU)
	}
}

func TestFormatCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, "none"}, {[]int{0}, "0"}, {[]int{3, 0, 1, 2}, "0-3"}, {[]int{0, 2, 3, 7}, "0,2-3,7"},
	} {
		if got := formatCPUList(tc.in); got != tc.want {
			t.Errorf("formatCPUList(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// pinThread moves the calling thread onto the CPUs named, and the error
// for a CPU the process may not use names it.
func TestPinThread(t *testing.T) {
	allowed, last := allowedCPUs(t)
	done := make(chan error)
	go func() {
		// The thread is thrown away at the end (still locked): its
		// narrowed affinity never reaches another goroutine.
		runtime.LockOSThread()
		if err := pinThread([]int{last}); err != nil {
			done <- err
			return
		}
		var got unix.CPUSet
		if err := unix.SchedGetaffinity(0, &got); err != nil {
			done <- err
			return
		}
		if got.Count() != 1 || !got.IsSet(last) {
			t.Errorf("affinity after pinning to %d: %s", last, formatCPUs(got))
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := checkCPUs([]int{last}); err != nil {
		t.Errorf("checkCPUs(%d) = %v", last, err)
	}
	err := checkCPUs([]int{maxCPU})
	if err == nil || !strings.Contains(err.Error(), "allowed: "+formatCPUs(allowed)) {
		t.Errorf("checkCPUs(%d) = %v, want it to name the allowed set", maxCPU, err)
	}
}

// allowedCPUs is the process's CPU set and the highest CPU in it.
func allowedCPUs(t *testing.T) (unix.CPUSet, int) {
	t.Helper()
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	ids := cpuList(allowed)
	if len(ids) == 0 {
		t.Fatal("the process may run on no CPU")
	}
	return allowed, ids[len(ids)-1]
}
