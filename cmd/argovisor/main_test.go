package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/argovisor/argovisor/control"
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
		{[]string{"run", "--api-sock", "/tmp/x.sock", "--timeout", "1s"}, "--timeout does not go with a control API"},
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
	// info; -ldflags or go install add the version itself.
	if code != 0 || !strings.HasPrefix(out, "argovisor dev (github.com/argovisor/argovisor") || !strings.Contains(out, "go1.") {
		t.Errorf("version: %d %q", code, out)
	}
}

// fakeVMM is a control.Backend with two fixed domains.
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
	// against the file's directory.
	sub := filepath.Join(dir, "cfg")
	os.Mkdir(sub, 0o755)
	toml := filepath.Join(sub, "d.toml")
	os.WriteFile(toml, []byte("[[domain]]\nname = \"new\"\nkernel = \"../k.elf\"\nmemory = \"16M\"\nconsole_log = \"new.log\"\n[domain.params]\nn = 3\n"), 0o644)
	if code, out, errs = ctl("create", toml); code != 0 || !strings.HasPrefix(out, "created new (domain 3)") {
		t.Fatalf("create: %d %q %q", code, out, errs)
	}
	var body map[string]any
	if err := json.Unmarshal(f.created, &body); err != nil {
		t.Fatal(err)
	}
	params, _ := body["params"].(map[string]any)
	if body["kernel"] != filepath.Join(dir, "k.elf") || body["console_log"] != filepath.Join(sub, "new.log") ||
		body["memory"] != "16M" || params["n"] != float64(3) {
		t.Errorf("create sent %s", f.created)
	}
	// JSON file, and a TOML file with two domains (refused).
	js := filepath.Join(sub, "d.json")
	os.WriteFile(js, []byte(`{"name": "new", "kernel": "/abs/k.elf", "memory": 4194304}`), 0o644)
	if code, _, errs = ctl("create", js); code != 0 || !strings.Contains(string(f.created), `"/abs/k.elf"`) || !strings.Contains(string(f.created), "4194304") {
		t.Errorf("create from JSON: %d %q %s", code, errs, f.created)
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

// Building domains after start-up is off the seccomp allowlist: the API and
// restart policies are refused with the default --seccomp=on, before
// anything is opened or confined.
func TestLateCreationNeedsSeccompOff(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k.elf"), []byte("x"), 0o644)
	restart := filepath.Join(dir, "r.toml")
	os.WriteFile(restart, []byte("[[domain]]\nname = \"r\"\nkernel = \"k.elf\"\nmemory = \"16M\"\non_crash = \"restart\"\n"), 0o644)
	for _, args := range [][]string{
		{"run", "--api-sock", filepath.Join(dir, "a.sock")},
		{"run", restart},
	} {
		code, _, errs := runArgs(args...)
		if code != exitUsage || !strings.Contains(errs, "builds domains after start-up") || !strings.Contains(errs, "--seccomp=off") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
}
