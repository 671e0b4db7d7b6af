package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/argovisor/argovisor/bench"
	"github.com/argovisor/argovisor/control"
	"github.com/argovisor/argovisor/sandbox"
)

func runArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestFlagErrorsSayWhatIsValid(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--timeout", "soon", "x.toml"}, `invalid value "soon" for --timeout: want a duration such as 30s`},
		{[]string{"run", "--timeout=-1s", "x.toml"}, "must not be negative"},
		{[]string{"run", "--bogus"}, "unknown flag --bogus"},
		{[]string{"run", "--log-format", "xml", "x.toml"}, "want one of text, json"},
		{[]string{"run", "--log-level", "loud", "x.toml"}, "want one of debug, info, warn, error"},
		{[]string{"run"}, "want exactly one CONFIG.toml"},
		{[]string{"run", "a.toml", "b.toml"}, "got 2 arguments"},
		{[]string{"run", "--api-sock", "/tmp/x.sock", "--timeout", "1s"}, "--timeout with a control API bounds the domains of CONFIG.toml, and there are none"},
		{[]string{"ctl", "list"}, "--api-sock PATH is required"},
		{[]string{"ctl", "--api-sock", "s", "frob"}, `unknown command "frob"`},
		{[]string{"ctl", "--api-sock", "s", "stats"}, "usage: argovisor ctl --api-sock PATH stats NAME"},
		{[]string{"ctl", "--api-sock", "s"}, "missing command"},
		{[]string{"bench", "--runs", "many"}, `invalid value "many" for --runs`},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		code, out, errs := runArgs(tc.args...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errs, tc.want)
		}
		if strings.Contains(out+errs, "Usage:") {
			t.Errorf("%q: a flag error dumped the help:\n%s%s", tc.args, out, errs)
		}
	}
}

func TestCommandHelp(t *testing.T) {
	for cmd, want := range map[string][]string{
		"run":   {"Usage: argovisor run", "-api-sock PATH", "-timeout DUR", "-trace-domain NAME", "-json", "-log-format", "-log-level"},
		"ctl":   {"Usage: argovisor ctl", "create FILE", "-json"},
		"bench": {"Usage: argovisor bench", "-runs"},
	} {
		for _, args := range [][]string{{cmd, "--help"}, {"help", cmd}} {
			code, out, _ := runArgs(args...)
			for _, w := range want {
				if code != exitOK || !strings.Contains(out, w) {
					t.Errorf("%q: exit %d, want %q in:\n%s", args, code, w, out)
				}
			}
		}
	}
	if code, out, _ := runArgs("--help"); code != 0 || !strings.Contains(out, "130 after SIGINT and 143\nafter SIGTERM") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runArgs("version")
	// go test builds carry the module path and Go version in their build
	// info, but no VCS revision: the line says so.
	if code != 0 || !strings.HasPrefix(out, "argovisor dev (github.com/argovisor/argovisor") || !strings.Contains(out, "go1.") ||
		!strings.Contains(out, "no VCS revision") {
		t.Errorf("version: %d %q", code, out)
	}
}

// versionFrom over the build infos the Go command writes (issue 15: a go
// install from a clone must name the revision, and a build without one
// must say why instead of a bare "dev").
func TestVersionFrom(t *testing.T) {
	const rev = "889ef5fd88cc3e18b7a2a502d9c99c604dd461af"
	stamped := func(version string, modified bool) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/argovisor/argovisor", Version: version},
			Settings: []debug.BuildSetting{{Key: "-buildmode", Value: "exe"}, {Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
				{Key: "vcs.time", Value: "2026-12-06T21:37:00Z"}, {Key: "vcs.modified", Value: fmt.Sprint(modified)}}}
	}
	plain := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/argovisor/argovisor", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "-buildmode", Value: "exe"}, {Key: "CGO_ENABLED", Value: "0"}}}
	for _, tc := range []struct {
		name, version string
		bi            *debug.BuildInfo
		want          string
	}{
		{"go install in a clone", "dev", stamped("v0.0.0-20261206213700-889ef5fd88cc", false),
			"argovisor v0.0.0-20261206213700-889ef5fd88cc (github.com/argovisor/argovisor, revision " + rev + ", go1.26.8)"},
		{"go install in a modified clone", "dev", stamped("v0.0.0-20261206213700-889ef5fd88cc+dirty", true),
			"argovisor v0.0.0-20261206213700-889ef5fd88cc+dirty (github.com/argovisor/argovisor, revision " + rev + "-dirty, go1.26.8)"},
		{"stamped, no module version (Go before 1.24)", "dev", stamped("(devel)", false),
			"argovisor dev (github.com/argovisor/argovisor, revision " + rev + ", go1.26.8)"},
		{"make build", "889ef5f-dirty", plain, "argovisor 889ef5f-dirty (github.com/argovisor/argovisor, go1.26.8)"},
		{"go install module@version", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/argovisor/argovisor", Version: "v1.2.3"}},
			"argovisor v1.2.3 (github.com/argovisor/argovisor, go1.26.8)"},
		{"-buildvcs=false", "dev", plain, "argovisor dev (github.com/argovisor/argovisor, go1.26.8, " + noRevision + ")"},
		{"no build info", "dev", nil, "argovisor dev"},
	} {
		if got := versionFrom(tc.version, tc.bi); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// TestVersionOfARealBuild builds the CLI as a user's go build does, with
// VCS stamping on, and checks that version names the checkout's revision.
// Go finds no checkout in a linked git worktree (its .git is a file,
// golang/go#58218), so there it skips; CI runs in a fresh clone.
func TestVersionOfARealBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(root, ".git")); err != nil || !fi.IsDir() {
		t.Skipf("%s is not a git clone (a linked worktree, or no git): the Go command stamps no revision there", root)
	}
	git := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
		if err != nil {
			t.Skipf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	rev := git("rev-parse", "HEAD")
	bin := filepath.Join(t.TempDir(), "argovisor")
	// -buildvcs=true, not the default auto: the Go environment may set
	// GOFLAGS=-buildvcs=false, and the flag on the command line wins.
	cmd := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/argovisor")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	if !strings.Contains(string(out), "revision "+rev) || strings.Contains(string(out), "no VCS revision") {
		t.Errorf("version of a build in a clone at %s:\n%s", rev, out)
	}
	t.Logf("%s", out)
}

type fakeVMM struct{ created []byte }

func (f *fakeVMM) List() []control.DomainInfo {
	return []control.DomainInfo{
		{ID: 1, Name: "ping", State: "running", VCPUs: 1, Memory: 16 << 20, UptimeSeconds: 2.5},
		{ID: 2, Name: "crashy", State: "crashed", VCPUs: 2, Memory: 32 << 20, Restarts: 2,
			Result: &control.ResultInfo{Kind: "crashed", Text: "crashed: #UD (vector 6) at rip=0x100008 <ud2_here+0x0> on vcpu 0 error=0x0"}},
	}
}

func (f *fakeVMM) Stats(name string) (control.DomainStats, error) {
	if name != "ping" {
		return control.DomainStats{}, fmt.Errorf("%w: %q", control.ErrNotFound, name)
	}
	return control.DomainStats{DomainInfo: f.List()[0], Exits: map[string]uint64{"io": 12}, Hypercalls: 3,
		HypercallsByOp:  map[string]uint64{"argo_op.sendv": 3},
		HypercallErrors: map[string]uint64{"ECONNREFUSED": 2},
		Argo:            control.ArgoStats{MsgsOut: 1, ErrorsByErrno: map[string]uint64{"ECONNREFUSED": 2}}}, nil
}

func (f *fakeVMM) AllStats() []control.DomainStats {
	s, _ := f.Stats("ping")
	return []control.DomainStats{s}
}

func (f *fakeVMM) Create(body []byte) (control.DomainInfo, error) {
	f.created = body
	return control.DomainInfo{ID: 3, Name: "new", State: "running"}, nil
}

func (f *fakeVMM) Stop(_ context.Context, name string) (control.DomainInfo, error) {
	return control.DomainInfo{ID: 1, Name: name, State: "stopped", Result: &control.ResultInfo{Text: "stopped: stopped through the control API"}}, nil
}

func (f *fakeVMM) Destroy(name string) (control.DomainInfo, error) {
	return control.DomainInfo{ID: 1, Name: name, State: "stopped"}, nil
}

func TestCtlAgainstAServer(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeVMM{}
	srv := control.NewServer(f, nil)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(context.Background()) })

	ctl := func(args ...string) (int, string, string) {
		return runArgs(append([]string{"ctl", "--api-sock", sock}, args...)...)
	}
	code, out, errs := ctl("list")
	if code != 0 || !strings.Contains(out, "ID  NAME") || !strings.Contains(out, "crashy  crashed") ||
		!strings.Contains(out, "<ud2_here+0x0>") || !strings.Contains(out, "32M") || !strings.Contains(out, "2.5s") {
		t.Errorf("list: %d\n%s%s", code, out, errs)
	}
	code, out, _ = ctl("--json", "list")
	var list []control.DomainInfo
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[1].Restarts != 2 {
		t.Errorf("list --json: %d %q", code, out)
	}
	code, out, _ = ctl("stats", "ping")
	if code != 0 || !strings.Contains(out, "argo_op.sendv=3") || !strings.Contains(out, "ECONNREFUSED=2") {
		t.Errorf("stats: %d\n%s", code, out)
	}
	code, _, errs = ctl("stats", "nope")
	if code != exitFailure || !strings.Contains(errs, `no such domain: "nope" (HTTP 404)`) {
		t.Errorf("stats of a missing domain: %d %q", code, errs)
	}
	if code, out, _ = ctl("stop", "ping"); code != 0 || !strings.Contains(out, "stopped ping (domain 1): stopped: stopped through the control API") {
		t.Errorf("stop: %d %q", code, out)
	}
	if code, out, _ = ctl("destroy", "ping"); code != 0 || !strings.HasPrefix(out, "destroyed ping (domain 1)") {
		t.Errorf("destroy: %d %q", code, out)
	}
	if code, out, _ = ctl("metrics"); code != 0 || !strings.Contains(out, `argovisor_hypercalls_total{domain="ping",op="argo_op.sendv"} 3`) {
		t.Errorf("metrics: %d\n%s", code, out)
	}

	// create: TOML with one [[domain]], relative paths made absolute
	// against the file's directory, the kernel file's contents sent.
	kernel := []byte("\x7fELF and the rest of a kernel")
	os.WriteFile(filepath.Join(dir, "k.elf"), kernel, 0o644)
	sub := filepath.Join(dir, "cfg")
	os.Mkdir(sub, 0o755)
	toml := filepath.Join(sub, "d.toml")
	os.WriteFile(toml, []byte("[[domain]]\nname = \"new\"\nkernel = \"../k.elf\"\nmemory = \"16M\"\nconsole_log = \"new.log\"\n[domain.params]\nn = 3\n[domain.stream]\nsocket = \"new.sock\"\n"), 0o644)
	if code, out, errs = ctl("create", toml); code != 0 || !strings.HasPrefix(out, "created new (domain 3)") {
		t.Fatalf("create: %d %q %q", code, out, errs)
	}
	var body map[string]any
	if err := json.Unmarshal(f.created, &body); err != nil {
		t.Fatal(err)
	}
	params, _ := body["params"].(map[string]any)
	stream, _ := body["stream"].(map[string]any)
	if body["kernel"] != filepath.Join(dir, "k.elf") || body["console_log"] != filepath.Join(sub, "new.log") || stream["socket"] != filepath.Join(sub, "new.sock") ||
		body["memory"] != "16M" || params["n"] != float64(3) || body["kernel_image"] != base64.StdEncoding.EncodeToString(kernel) {
		t.Errorf("create sent %s", f.created)
	}
	// JSON file, and a TOML file with two domains (refused).
	abs := filepath.Join(dir, "k.elf")
	js := filepath.Join(sub, "d.json")
	os.WriteFile(js, []byte(fmt.Sprintf(`{"name": "new", "kernel": %q, "memory": 4194304}`, abs)), 0o644)
	if code, _, errs = ctl("create", js); code != 0 || !strings.Contains(string(f.created), fmt.Sprintf("%q", abs)) ||
		!strings.Contains(string(f.created), "4194304") || !strings.Contains(string(f.created), base64.StdEncoding.EncodeToString(kernel)) {
		t.Errorf("create from JSON: %d %q %s", code, errs, f.created)
	}
	// A kernel ctl cannot read is its own error: nothing is sent.
	f.created = nil
	missing := filepath.Join(sub, "missing.json")
	os.WriteFile(missing, []byte(`{"name": "m", "kernel": "nope.elf", "memory": "16M"}`), 0o644)
	if code, _, errs = ctl("create", missing); code != exitUsage || !strings.Contains(errs, filepath.Join(sub, "nope.elf")) || f.created != nil {
		t.Errorf("create with a missing kernel: %d %q, sent %s", code, errs, f.created)
	}
	two := filepath.Join(sub, "two.toml")
	os.WriteFile(two, []byte("[[domain]]\nname = \"a\"\n[[domain]]\nname = \"b\"\n"), 0o644)
	if code, _, errs = ctl("create", two); code != exitUsage || !strings.Contains(errs, "exactly one [[domain]]") {
		t.Errorf("create with two domains: %d %q", code, errs)
	}
	if code, out, _ = ctl("shutdown"); code != 0 || out != "VMM shutting down\n" {
		t.Errorf("shutdown: %d %q", code, out)
	}
	<-srv.ShutdownRequested()
}

func TestCountsText(t *testing.T) {
	if got := countsText(0, nil); got != "0" {
		t.Errorf("countsText(0) = %q", got)
	}
	if got := countsText(12, map[string]uint64{"EINVAL": 3, "ECONNREFUSED": 9}); got != "12 (ECONNREFUSED=9 EINVAL=3)" {
		t.Errorf("countsText = %q", got)
	}
}

// Building domains after start-up (the API, restart policies) goes with
// the default --seccomp=on: nothing is refused at flag time, and without
// KVM run fails on the device, not on the sandbox.
func TestLateCreationUnderSeccomp(t *testing.T) {
	dir := t.TempDir()
	// No KVM device at this path: run stops there, also on a host with
	// KVM, before anything serves or is confined.
	t.Setenv("ARGOVISOR_KVM_DEVICE", filepath.Join(dir, "kvm"))
	os.WriteFile(filepath.Join(dir, "k.elf"), []byte("x"), 0o644)
	restart := filepath.Join(dir, "r.toml")
	os.WriteFile(restart, []byte("[[domain]]\nname = \"r\"\nkernel = \"k.elf\"\nmemory = \"16M\"\non_crash = \"restart\"\n"), 0o644)
	for _, args := range [][]string{
		{"run", "--api-sock", filepath.Join(dir, "a.sock")},
		{"run", "--api-sock", filepath.Join(dir, "a.sock"), "--seccomp=on"},
		{"run", restart},
		{"run", "--seccomp=log", restart},
	} {
		code, _, errs := runArgs(args...)
		if code != exitUsage || !strings.Contains(errs, "no usable KVM") || !strings.Contains(errs, filepath.Join(dir, "kvm")) ||
			strings.Contains(errs, "seccomp") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 about the KVM device and nothing about seccomp", args, code, errs)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "a.sock")); err == nil {
		t.Error("a socket was created although run could not start")
	}
}

// A bench run with a failed figure still prints and writes every figure,
// the failed one marked, then the failure in full, and exits 1; a run
// without failures exits 0 (issue 15).
func TestReportBench(t *testing.T) {
	dir := t.TempDir()
	r := &bench.Report{Machine: "m", When: "now", Figures: []bench.Figure{
		{Name: "floor.exit_rtt", Unit: "us", Median: 40, Min: 39, Max: 41, Runs: 5},
		{Name: "argo.pingpong.wait.64B", Unit: "us", Size: 64, Failed: "guest failed: ping: exited with status 1"},
		{Name: "floor.memcpy.64B", Unit: "MB/s", Size: 64, Median: 9000, Runs: 5},
	}}
	runErr := fmt.Errorf("argo.pingpong.wait.64B: guest failed: ping: exited with status 1\npingpong: send 999 failed: -2")
	var out, errb bytes.Buffer
	js, svg := filepath.Join(dir, "latest.json"), filepath.Join(dir, "t.svg")
	if code := reportBench(r, runErr, js, svg, &out, &errb); code != exitFailure {
		t.Errorf("exit %d with a failed figure, want %d", code, exitFailure)
	}
	if !strings.Contains(out.String(), "argo.pingpong.wait.64B") || !strings.Contains(out.String(), "FAILED") || !strings.Contains(out.String(), "floor.memcpy.64B") {
		t.Errorf("table:\n%s", out.String())
	}
	if e := errb.String(); !strings.Contains(e, "1 figures failed (argo.pingpong.wait.64B)") || !strings.Contains(e, "send 999 failed: -2") {
		t.Errorf("stderr:\n%s", e)
	}
	b, err := os.ReadFile(js)
	if err != nil || !strings.Contains(string(b), `"failed": "guest failed: ping: exited with status 1"`) {
		t.Errorf("JSON (%v):\n%s", err, b)
	}
	if _, err := os.Stat(svg); err != nil {
		t.Errorf("no plot: %v", err)
	}
	r.Figures = slices.Delete(r.Figures, 1, 2)
	out.Reset()
	errb.Reset()
	if code := reportBench(r, nil, js, svg, &out, &errb); code != exitOK || errb.Len() != 0 {
		t.Errorf("exit %d, stderr %q without failures", code, errb.String())
	}
	if code := reportBench(&bench.Report{}, errors.New("no KVM"), js, svg, &out, &errb); code != exitFailure {
		t.Errorf("exit %d with nothing measured", code)
	}
}

// A cgo or race build refuses the killing filter (its C library would make
// system calls behind it) and names the remedies; log and off run, and so
// does a static build under the filter.
func TestFilterNeedsStaticBuild(t *testing.T) {
	set := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, c := range []struct {
		mode     sandbox.Mode
		settings []debug.BuildSetting
		want     string // "" = accepted
	}{
		{sandbox.SeccompOn, set("CGO_ENABLED", "0"), ""},
		{sandbox.SeccompOn, nil, ""},
		{sandbox.SeccompOn, set("CGO_ENABLED", "1"), "built with cgo"},
		{sandbox.SeccompOn, set("-race", "true", "CGO_ENABLED", "1"), "race detector"},
		{sandbox.SeccompLog, set("-race", "true", "CGO_ENABLED", "1"), ""},
		{sandbox.SeccompOff, set("CGO_ENABLED", "1"), ""},
	} {
		err := filterNeedsStaticBuild(c.mode, c.settings)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v %v: refused: %v", c.mode, c.settings, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "CGO_ENABLED=0") || !strings.Contains(err.Error(), "--seccomp=log")):
			t.Errorf("%v %v: got %v, want an error naming %q, CGO_ENABLED=0 and --seccomp=log", c.mode, c.settings, err, c.want)
		}
	}
}
