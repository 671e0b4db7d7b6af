package test

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/argovisor/argovisor/internal/testutil"
	"golang.org/x/sys/unix"
)

// pingPongPairs renders n ping-pong pairs (domains 2i+1 and 2i+2) with
// vcpus vCPUs each.
func pingPongPairs(n, vcpus, count int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		ping, pong := 2*i+1, 2*i+2
		b.WriteString(domainTOML(fmt.Sprintf("ping%d", i), guest("pingpong"), "8M", vcpus,
			map[string]string{"role": "ping", "peer": strconv.Itoa(pong), "count": strconv.Itoa(count)}))
		b.WriteString(domainTOML(fmt.Sprintf("pong%d", i), guest("pingpong"), "8M", vcpus,
			map[string]string{"role": "pong", "peer": strconv.Itoa(ping), "count": strconv.Itoa(count)}))
	}
	return b.String()
}

// Issue 15: the cgo build of argovisor died by SIGSYS in most
// configurations of four domains and more, when a thread made after the
// lockdown first used glibc's malloc. The static build users get runs 16
// domains of 2 vCPUs (every vCPU thread made after the filter) and 64
// domains under the default, killing filter.
func TestManyDomainsUnderFilter(t *testing.T) {
	requireKVM(t)
	dir := t.TempDir()
	count := 2000
	if testutil.InVM() {
		count = 500 // 32 vCPUs on TCG's two: the point is the threads, not the traffic
	}
	t.Run("16x2vcpus", func(t *testing.T) {
		r := runCLI(t, "run", "--timeout", timeoutArg(120*time.Second), writeFile(t, dir, "pairs.toml", pingPongPairs(8, 2, count)))
		if r.code != 0 {
			t.Fatalf("want exit 0:\n%v", r)
		}
		for i := 0; i < 8; i++ {
			if !strings.Contains(r.stdout, fmt.Sprintf("[ping%d] pingpong: %d round trips ok", i, count)) {
				t.Errorf("ping%d did not finish its round trips:\n%v", i, r)
			}
		}
	})
	t.Run("64domains", func(t *testing.T) {
		var b strings.Builder
		for i := 1; i <= 64; i++ {
			b.WriteString(domainTOML(fmt.Sprintf("hello-%d", i), guest("hello"), "8M", 1, nil))
		}
		r := runCLI(t, "run", "--timeout", timeoutArg(120*time.Second), writeFile(t, dir, "64.toml", b.String()))
		if r.code != 0 {
			t.Fatalf("want exit 0:\n%v", r)
		}
		if n := strings.Count(r.stderr, "exited with status 0"); n < 64 {
			t.Errorf("%d of 64 domains report exit status 0:\n%v", n, r)
		}
	})
}

// The race build links the C library, so it refuses the killing filter
// and runs under --seccomp=log, where the kernel logs (rather than kills
// for) each call off the allowlist. Four domains of 2 vCPUs run to the end
// without a data race; every call the kernel logged for the process is
// reported, with whether it came from the binary's own code or from
// outside it (the C library). The static build runs the same
// configurations under the killing filter in the other CLI tests, so a
// call of Go code off the allowlist fails there, never passes here.
func TestRaceBuildUnderLogFilter(t *testing.T) {
	requireKVM(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "pairs.toml", pingPongPairs(2, 2, 2000))

	refused := exec.Command(raceCLIPath, "run", cfg)
	out, err := refused.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !bytes.Contains(out, []byte("--seccomp=log")) {
		t.Errorf("the race build under the default --seccomp=on: %v, want exit 2 naming --seccomp=log:\n%s", err, out)
	}

	cmd := exec.Command(raceCLIPath, "run", "--seccomp=log", "--timeout", timeoutArg(120*time.Second), cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err != nil || strings.Contains(stderr.String(), "DATA RACE") {
		t.Fatalf("race build under --seccomp=log: %v\n--- stdout\n%s--- stderr\n%s", err, stdout.String(), stderr.String())
	}
	for i := 0; i < 2; i++ {
		if !strings.Contains(stdout.String(), fmt.Sprintf("[ping%d] pingpong: 2000 round trips ok", i)) {
			t.Errorf("ping%d did not finish:\n%s", i, stdout.String())
		}
	}
	calls, err := loggedSyscalls(cmd.Process.Pid)
	if err != nil {
		t.Fatalf("reading the kernel's seccomp log: %v", err)
	}
	lo, hi, err := textRange(raceCLIPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		where := "outside the binary (the C library)"
		if c.ip >= lo && c.ip < hi {
			where = "in the binary's own code"
		}
		t.Logf("logged by the filter: syscall %d (%s) at ip %#x, %s", c.nr, syscallName(c.nr), c.ip, where)
	}
	t.Logf("%d calls logged (the kernel rate-limits these lines, so repeats may be missing)", len(calls))
}

type loggedCall struct {
	nr int
	ip uint64
}

// loggedSyscalls reads the kernel log for the seccomp records (audit type
// 1326) of process pid.
func loggedSyscalls(pid int) ([]loggedCall, error) {
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	re := regexp.MustCompile(`type=1326 .* pid=` + strconv.Itoa(pid) + ` .* syscall=(\d+) .* ip=0x([0-9a-f]+)`)
	var calls []loggedCall
	buf := make([]byte, 8192)
	for {
		n, err := syscall.Read(fd, buf)
		if errors.Is(err, syscall.EPIPE) {
			continue // records overwritten while reading: go on with the next
		}
		if errors.Is(err, syscall.EAGAIN) {
			return calls, nil
		}
		if err != nil {
			return calls, err
		}
		if m := re.FindSubmatch(buf[:n]); m != nil {
			nr, _ := strconv.Atoi(string(m[1]))
			ip, _ := strconv.ParseUint(string(m[2]), 16, 64)
			calls = append(calls, loggedCall{nr, ip})
		}
	}
}

// textRange is the address range of a non-PIE executable's code.
func textRange(path string) (lo, hi uint64, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			return p.Vaddr, p.Vaddr + p.Memsz, nil
		}
	}
	return 0, 0, fmt.Errorf("%s: no executable segment", path)
}

func syscallName(nr int) string {
	names := map[int]string{0: "read", 2: "open", 4: "stat", 5: "fstat", 9: "mmap", 89: "readlink",
		204: "sched_getaffinity", 257: "openat", 262: "newfstatat"}
	if n, ok := names[nr]; ok {
		return n
	}
	return "see ausyscall " + strconv.Itoa(nr)
}

// A domain's cpus key pins its vCPU threads (sched_setaffinity of the
// calling thread, allowed by the default filter): a pinned ping-pong pair
// of 2 vCPUs each, both on one CPU, runs to the end under the filter; a
// CPU the process may not use is a configuration error (exit 2).
func TestPinnedDomainsUnderFilter(t *testing.T) {
	requireKVM(t)
	dir := t.TempDir()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	first := 0
	for !set.IsSet(first) {
		first++
	}
	count := 2000
	if testutil.InVM() {
		count = 500
	}
	pair := strings.ReplaceAll(pingPongPairs(1, 2, count), "vcpus = 2\n", fmt.Sprintf("vcpus = 2\ncpus = [%d]\n", first))
	r := runCLI(t, "run", "--timeout", timeoutArg(120*time.Second), writeFile(t, dir, "pinned.toml", pair))
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("[ping0] pingpong: %d round trips ok", count)) {
		t.Fatalf("want exit 0 and every round trip:\n%v", r)
	}
	bad := domainTOML("nowhere", guest("hello"), "8M", 1, nil) + "cpus = [1023]\n"
	r = runCLI(t, "run", "--timeout", timeoutArg(60*time.Second), writeFile(t, dir, "bad.toml", bad))
	if r.code != 2 || !strings.Contains(r.stderr, "CPU 1023 is not one this process may use") {
		t.Fatalf("cpus = [1023]: want exit 2 naming the CPU:\n%v", r)
	}
}
