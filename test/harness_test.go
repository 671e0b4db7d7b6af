package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/argovisor/argovisor/internal/testutil"
	"github.com/argovisor/argovisor/vmm"
)

var (
	repoRoot string // the repository root
	cliPath  string // the argovisor binary users get (make build: static, no cgo)
	// raceCLIPath is the same CLI built with the race detector (cgo).
	raceCLIPath string
)

func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	repoRoot = filepath.Dir(wd)
	// The tests run the CLI users get: bin/argovisor as `make build` makes
	// it (static, no cgo). make test passes its path in ARGOVISOR_CLI, and
	// so does the VM runner, inside which nothing is compiled; a plain
	// `go test ./test/` builds it (and the guests) through make first.
	cliPath = os.Getenv("ARGOVISOR_CLI")
	if testutil.InVM() && (cliPath == "" || os.Getenv("ARGOVISOR_CLI_RACE") == "") {
		fmt.Fprintln(os.Stderr, "inside the VM nothing is compiled: set ARGOVISOR_CLI and ARGOVISOR_CLI_RACE to the binaries built on the host (test/run.sh does)")
		os.Exit(2)
	}
	if cliPath == "" {
		if out, err := exec.Command("make", "-C", repoRoot, "build", "guests").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "make build guests: %v\n%s", err, out)
			os.Exit(2)
		}
		cliPath = filepath.Join(repoRoot, "bin", "argovisor")
	}
	// The race build, for the one test that runs it (under
	// --seccomp=log: it links the C library, TestRaceBuildUnderLogFilter).
	raceCLIPath = os.Getenv("ARGOVISOR_CLI_RACE")
	if raceCLIPath == "" {
		if out, err := exec.Command("make", "-C", repoRoot, "build-race").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "make build-race: %v\n%s", err, out)
			os.Exit(2)
		}
		raceCLIPath = filepath.Join(repoRoot, "bin", "argovisor-race")
	}
	for _, p := range []string{cliPath, raceCLIPath} {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(os.Stderr, "the argovisor CLI: %v\n", err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

// requireKVM applies the project's one KVM-test policy
// (testutil.RequireKVM).
func requireKVM(t testing.TB) { t.Helper(); testutil.RequireKVM(t) }

// guest returns the path of a built guest program.
func guest(name string) string {
	return filepath.Join(repoRoot, "build", "guests", name+".elf")
}

// console collects console lines per domain.
type console struct {
	mu    sync.Mutex
	lines map[string][]string
	all   []string
}

func (c *console) sink(d *vmm.Domain, line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lines == nil {
		c.lines = map[string][]string{}
	}
	c.lines[d.Name()] = append(c.lines[d.Name()], line)
	c.all = append(c.all, "["+d.Name()+"] "+line)
}

func (c *console) of(name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines[name]...)
}

func (c *console) has(name, sub string) bool {
	for _, l := range c.of(name) {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func (c *console) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.all, "\n")
}

// newVMM makes a VMM whose console lines go to c; it is closed with the
// test.
func newVMM(t testing.TB, c *console) *vmm.VMM {
	t.Helper()
	return newVMMWith(t, c, vmm.Options{})
}

// newVMMWith is newVMM with options (the console is c's).
func newVMMWith(t testing.TB, c *console, opts vmm.Options) *vmm.VMM {
	t.Helper()
	requireKVM(t)
	opts.Console = c.sink
	v, err := vmm.New(opts)
	if err != nil {
		t.Fatalf("vmm.New: %v", err)
	}
	liveVMMs.Store(v, true)
	t.Cleanup(func() {
		liveVMMs.Delete(v)
		if err := v.Close(); err != nil {
			t.Errorf("VMM.Close: %v", err)
		}
	})
	return v
}

// boot creates and starts one domain.
func boot(t testing.TB, v *vmm.VMM, cfg vmm.DomainConfig) *vmm.Domain {
	t.Helper()
	if cfg.Memory == 0 {
		cfg.Memory = 16 << 20
	}
	if cfg.VCPUs == 0 {
		cfg.VCPUs = 1
	}
	d, err := v.CreateDomain(cfg)
	if err != nil {
		t.Fatalf("CreateDomain(%s): %v", cfg.Name, err)
	}
	if err := d.Start(); err != nil {
		t.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	return d
}

// liveVMMs are the VMMs of the running test (newVMM), for debugDump.
var liveVMMs sync.Map

// debugDump describes every vCPU of every domain still running in the
// test's VMMs (vmm.Domain.DebugVCPUs): what a hang is diagnosed by.
func debugDump() string {
	var b strings.Builder
	liveVMMs.Range(func(k, _ any) bool {
		for _, d := range k.(*vmm.VMM).Domains() {
			select {
			case <-d.Done():
				fmt.Fprintf(&b, "  %s (domain %d): %v\n", d.Name(), d.ID(), d.Result())
				continue
			default:
			}
			st := d.Stats()
			fmt.Fprintf(&b, "  %s (domain %d): running; %d hypercalls, %d VIRQs injected\n", d.Name(), d.ID(), st.Hypercalls, st.VIRQs)
			for _, s := range d.DebugVCPUs(5 * time.Second) {
				fmt.Fprintf(&b, "    %v\n", s)
			}
		}
		return true
	})
	return b.String()
}

// waitResult waits for a domain to end, failing the test after limit.
func waitResult(t testing.TB, d *vmm.Domain, limit time.Duration) vmm.Result {
	t.Helper()
	limit = testutil.Scaled(limit)
	select {
	case <-d.Done():
		return d.Result()
	case <-time.After(limit):
		dump := debugDump()
		d.Stop("test deadline")
		<-d.Done()
		t.Fatalf("domain %s still running after %v; the vCPUs of every domain then:\n%s", d.Name(), limit, dump)
	}
	return vmm.Result{}
}

// cliResult is one run of the argovisor binary.
type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the argovisor binary.
func runCLI(t testing.TB, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(cliPath, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// -1; SIGSYS here means the seccomp filter killed it.
			errb.WriteString("(killed by " + ws.Signal().String() + ")\n")
		}
	} else if err != nil {
		t.Fatalf("run argovisor: %v", err)
	}
	r := cliResult{code: code, stdout: out.String(), stderr: errb.String()}
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "DATA RACE") {
		t.Fatalf("argovisor panicked or raced:\n%v", r)
	}
	return r
}

// timeoutArg is the value of a CLI --timeout that only bounds a run (a
// hang fails the test instead of blocking it), stretched inside the VM.
func timeoutArg(d time.Duration) string { return testutil.Scaled(d).String() }

// writeFile writes a file in dir and returns its path.
func writeFile(t testing.TB, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// domainTOML renders one [[domain]] table.
func domainTOML(name, kernel, memory string, vcpus int, params map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[[domain]]\nname = %q\nkernel = %q\nmemory = %q\nvcpus = %d\n", name, kernel, memory, vcpus)
	if len(params) > 0 {
		b.WriteString("[domain.params]\n")
		for k, v := range params {
			fmt.Fprintf(&b, "%s = %q\n", k, v)
		}
	}
	return b.String()
}

// runExample runs examples/NAME.toml through the CLI and checks that it
// exits 0 and prints every line in want.
func runExample(t *testing.T, name string, want ...string) {
	t.Helper()
	requireKVM(t)
	r := runCLI(t, "run", "--timeout", timeoutArg(120*time.Second), filepath.Join(repoRoot, "examples", name+".toml"))
	if r.code != 0 {
		t.Fatalf("want exit 0, got:\n%v", r)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout lacks %q:\n%v", w, r)
		}
	}
}

// waitFor waits until domain d prints a line matching re; it fails the
// test if d ends first or the limit passes.
func waitFor(tb testing.TB, c *console, d *vmm.Domain, re *regexp.Regexp, limit time.Duration) []string {
	tb.Helper()
	limit = testutil.Scaled(limit)
	deadline := time.Now().Add(limit)
	for {
		if m := c.match(d.Name(), re); m != nil {
			return m
		}
		select {
		case <-d.Done():
			if m := c.match(d.Name(), re); m != nil {
				return m
			}
			tb.Fatalf("%s ended (%v) without printing /%v/\n%s", d.Name(), d.Result(), re, c.dump())
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not print /%v/ within %v\n%s", d.Name(), re, limit, c.dump())
		}
	}
}

// runChecks runs a checking guest's config through the CLI (120 s at
// most) and wants exit status 0, no line with FAIL, and each of want,
// after prefix, somewhere in standard output.
func runChecks(t *testing.T, cfgPath, prefix string, want ...string) cliResult {
	t.Helper()
	r := runCLI(t, "run", "--timeout", timeoutArg(120*time.Second), cfgPath)
	if r.code != 0 || strings.Contains(r.stdout, "FAIL") {
		t.Fatalf("want exit 0 and no FAIL:\n%v", r)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, prefix+w) {
			t.Errorf("stdout lacks %q", prefix+w)
		}
	}
	return r
}
