package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/argovisor/argovisor/internal/testutil"
	"github.com/argovisor/argovisor/vmm"
)

// A filter cannot be taken off again, so every test that installs one does
// it in a child: the test binary run again with childEnv naming a
// scenario, which TestMain runs instead of the tests (as os/exec's own
// tests do).
const childEnv = "ARGOVISOR_SANDBOX_CHILD"

func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		if err := runScenario(name); err != nil {
			fmt.Fprintf(os.Stderr, "scenario %s: %v\n", name, err)
			os.Exit(1)
		}
		fmt.Println("OK")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runNeeds is what `argovisor run` gives Lockdown (cmd/argovisor does the
// same conversion).
func runNeeds() Needs {
	n := vmm.RunningNeeds()
	var reqs []uintptr
	for _, r := range n.Ioctls {
		reqs = append(reqs, uintptr(r))
	}
	return Needs{Syscalls: n.Syscalls, Ioctls: reqs}
}

// createNeeds is what `argovisor run` gives Lockdown when it builds
// domains after start-up: the control API, restart policies.
func createNeeds() Needs {
	n := vmm.RunningNeeds().Add(vmm.CreationNeeds())
	var reqs []uintptr
	for _, r := range n.Ioctls {
		reqs = append(reqs, uintptr(r))
	}
	return Needs{Syscalls: n.Syscalls, Ioctls: reqs}.Add(ServeUnixSocket())
}

// child is a running scenario.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	out    bytes.Buffer // stdout lines read so far
	stderr bytes.Buffer
}

func startChild(t *testing.T, scenario string, env ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(testutil.StaticTestBinary(t), "-test.run=^$")}
	c.cmd.Env = append(append(os.Environ(), childEnv+"="+scenario), env...)
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdout = bufio.NewReader(out)
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// waitFor reads stdout up to a line equal to want.
func (c *child) waitFor(t *testing.T, want string) {
	t.Helper()
	for {
		line, err := c.stdout.ReadString('\n')
		c.out.WriteString(line)
		if strings.TrimSuffix(line, "\n") == want {
			return
		}
		if err != nil {
			c.stdin.Close()
			c.cmd.Wait()
			t.Fatalf("child ended before printing %q: %v\nstdout:\n%s\nstderr:\n%s", want, c.cmd.ProcessState, c.out.String(), c.stderr.String())
		}
	}
}

// finish closes stdin, reads the rest of stdout and waits.
func (c *child) finish() (stdout string, ws syscall.WaitStatus) {
	c.stdin.Close()
	rest, _ := io.ReadAll(c.stdout)
	c.out.Write(rest)
	c.cmd.Wait()
	return c.out.String(), c.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func runChild(t *testing.T, scenario string, env ...string) (stdout, stderr string, ws syscall.WaitStatus) {
	t.Helper()
	c := startChild(t, scenario, env...)
	out, ws := c.finish()
	return out, c.stderr.String(), ws
}

// wantOK fails unless the scenario exited 0 after printing OK.
func wantOK(t *testing.T, scenario, stdout, stderr string, ws syscall.WaitStatus) {
	t.Helper()
	if !ws.Exited() || ws.ExitStatus() != 0 || !strings.Contains(stdout, "OK\n") {
		t.Fatalf("scenario %s: %v, want exit 0 and OK\nstdout:\n%s\nstderr:\n%s", scenario, describe(ws), stdout, stderr)
	}
}

func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// threadStatus reads /proc/PID/task/*/status: one map of fields per thread.
func threadStatus(t *testing.T, pid int) []map[string]string {
	t.Helper()
	paths, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no threads of %d: %v", pid, err)
	}
	var all []map[string]string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, parseStatus(string(data)))
	}
	return all
}

func parseStatus(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func ownStatus(t *testing.T) map[string]string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	return parseStatus(string(data))
}

// TestFilterAllowsWhatTheVMMDoes runs, under the filter argovisor run
// installs (killing on anything else), what a VMM does once its domains
// run: threads started before and after the filter, kicks with tgkill, a
// memfd page placed with mmap(MAP_FIXED) and replaced, a hole punched, an
// allowed ioctl, timers, GC, lock contention, randomness, output. Every
// thread must carry the filter and no_new_privs.
func TestFilterAllowsWhatTheVMMDoes(t *testing.T) {
	parent, err := strconv.Atoi(ownStatus(t)["Seccomp_filters"])
	if err != nil {
		t.Fatalf("Seccomp_filters: %v", err)
	}
	c := startChild(t, "vmm-workload")
	c.waitFor(t, "READY")
	threads := threadStatus(t, c.cmd.Process.Pid)
	if len(threads) < workloadThreads {
		t.Errorf("child has %d threads, want at least %d", len(threads), workloadThreads)
	}
	for _, th := range threads {
		n, _ := strconv.Atoi(th["Seccomp_filters"])
		if th["Seccomp"] != "2" || n <= parent || th["NoNewPrivs"] != "1" {
			t.Errorf("thread %s: Seccomp %s, Seccomp_filters %s (parent %d), NoNewPrivs %s; want 2, more, 1",
				th["Pid"], th["Seccomp"], th["Seccomp_filters"], parent, th["NoNewPrivs"])
		}
	}
	out, ws := c.finish()
	wantOK(t, "vmm-workload", out, c.stderr.String(), ws)
}

// TestFilterKillsForbiddenCalls: with --seccomp=on a call off the list
// kills the whole process with SIGSYS, before the call does anything —
// also with the larger list of a VMM that builds domains after start-up.
func TestFilterKillsForbiddenCalls(t *testing.T) {
	calls := []string{"execve", "openat", "socket", "ptrace", "ioctl-tty", "mmap-exec", "prctl-dumpable", "kill-other", "fork"}
	for _, call := range calls {
		t.Run(call, func(t *testing.T) { wantKilled(t, "CALL="+call) })
	}
	for _, call := range append(calls, "memfd-exec", "connect") {
		t.Run("create/"+call, func(t *testing.T) { wantKilled(t, "CALL="+call, "NEEDS=create") })
	}
}

func wantKilled(t *testing.T, env ...string) {
	t.Helper()
	call := strings.TrimPrefix(env[0], "CALL=")
	out, errOut, ws := runChild(t, "deny", env...)
	if !strings.Contains(out, "LOCKED\n") {
		t.Fatalf("lockdown did not finish: %v\nstdout:\n%s\nstderr:\n%s", describe(ws), out, errOut)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Fatalf("%s: %v, want killed by SIGSYS\nstdout:\n%s\nstderr:\n%s", call, describe(ws), out, errOut)
	}
}

// TestFilterRefusals makes each forbidden call, and each allowed call that
// has argument conditions, in one child whose filter answers EPERM
// instead of killing, so that every verdict is seen separately.
func TestFilterRefusals(t *testing.T) {
	out, errOut, ws := runChild(t, "refusals")
	wantOK(t, "refusals", out, errOut, ws)
}

// TestCreationRefusals: the same with the allowlist of a VMM that builds
// domains after start-up: memfds, their sizing and the KVM set-up
// requests are allowed, memfds only close-on-exec, and files, programs
// and other ioctls stay refused.
func TestCreationRefusals(t *testing.T) {
	out, errOut, ws := runChild(t, "refusals-create")
	wantOK(t, "refusals-create", out, errOut, ws)
}

// TestLogModeAllows: --seccomp=log installs the filter but lets calls off
// the list through (the kernel logs them).
func TestLogModeAllows(t *testing.T) {
	out, errOut, ws := runChild(t, "log")
	wantOK(t, "log", out, errOut, ws)
}

// TestOffModeHardens: --seccomp=off installs no filter, but no_new_privs
// (on every thread), no core dumps and the pinned descriptor limit still
// apply.
func TestOffModeHardens(t *testing.T) {
	s := ownStatus(t)
	out, errOut, ws := runChild(t, "off", "PARENT_SECCOMP="+s["Seccomp"], "PARENT_FILTERS="+s["Seccomp_filters"])
	wantOK(t, "off", out, errOut, ws)
}

// TestDropPrivileges drops a root child to 65534:65534 (nobody) with the
// filter on: every thread, including those started before the drop, has
// the new ids in all four slots, no supplementary group and no capability,
// and the process is not dumpable (after the drop, which resets it): its
// /proc files then belong to root, not to its own uid.
func TestDropPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dropping privileges needs root")
	}
	c := startChild(t, "user")
	c.waitFor(t, "READY")
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 0 {
		t.Errorf("/proc/PID/status belongs to uid %d: the process is dumpable", st.Uid)
	}
	threads := threadStatus(t, c.cmd.Process.Pid)
	if len(threads) < workloadThreads {
		t.Errorf("child has %d threads, want at least %d", len(threads), workloadThreads)
	}
	for _, th := range threads {
		for k, want := range map[string]string{
			"Uid": "65534\t65534\t65534\t65534", "Gid": "65534\t65534\t65534\t65534",
			"Groups": "", "CapEff": "0000000000000000", "CapPrm": "0000000000000000",
			"Seccomp": "2", "NoNewPrivs": "1",
		} {
			if th[k] != want {
				t.Errorf("thread %s: %s = %q, want %q", th["Pid"], k, th[k], want)
			}
		}
	}
	out, ws := c.finish()
	wantOK(t, "user", out, c.stderr.String(), ws)
}

// TestUserNeedsRoot: asking for a drop without root is refused before
// anything changes.
func TestUserNeedsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		err := Config{User: &Cred{UID: 65534, GID: 65534}, Seccomp: SeccompOff}.Check()
		if err == nil || !strings.Contains(err.Error(), "needs root") {
			t.Fatalf("Check as uid %d: %v, want a needs-root error", os.Geteuid(), err)
		}
		return
	}
	out, errOut, ws := runChild(t, "user-not-root")
	wantOK(t, "user-not-root", out, errOut, ws)
}

// TestEnsureFileLimit raises RLIMIT_NOFILE in a child, within the hard
// limit and (as root) beyond it, and pins it.
func TestEnsureFileLimit(t *testing.T) {
	out, errOut, ws := runChild(t, "nofile")
	wantOK(t, "nofile", out, errOut, ws)
}

// TestServeUnixSocket: a feature's Needs extend the allowlist — a child
// with ServeUnixSocket added accepts a connection on a socket it listened
// on before Lockdown and answers over it, with the filter killing on
// anything else.
func TestServeUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	c := startChild(t, "serve", "SOCK="+sock)
	c.waitFor(t, "READY")
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || reply != "PING\n" {
		t.Errorf("reply %q (%v), want PING", reply, err)
	}
	out, ws := c.finish()
	wantOK(t, "serve", out, c.stderr.String(), ws)
}
