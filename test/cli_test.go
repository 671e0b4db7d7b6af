package test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/argovisor/argovisor/vmm"
)

// hugeBSSELF is a valid x86-64 executable whose one segment needs 64 MiB at
// the kernel base, more than a 16 MiB domain has.
func hugeBSSELF() []byte {
	le := binary.LittleEndian
	b := make([]byte, 64+56+16)
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], 2)  // ET_EXEC
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], 0x100000)
	le.PutUint64(b[32:], 64)
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], 1)
	ph := b[64:]
	le.PutUint32(ph[0:], 1)   // PT_LOAD
	le.PutUint32(ph[4:], 5)   // R+X
	le.PutUint64(ph[8:], 120) // offset
	le.PutUint64(ph[16:], 0x100000)
	le.PutUint64(ph[24:], 0x100000)
	le.PutUint64(ph[32:], 16)
	le.PutUint64(ph[40:], 64<<20)
	return b
}

func TestCLIBadInputs(t *testing.T) {
	requireKVM(t)
	dir := t.TempDir()
	notELF := writeFile(t, dir, "notelf.elf", "#!/bin/sh\necho I am not a kernel\n")
	huge := filepath.Join(dir, "huge.elf")
	if err := os.WriteFile(huge, hugeBSSELF(), 0o644); err != nil {
		t.Fatal(err)
	}
	hello := guest("hello")
	for _, tc := range []struct {
		name   string
		args   []string
		config string
		want   string
	}{
		{"no arguments", nil, "", "Usage"},
		{"unknown command", []string{"frobnicate"}, "", "unknown command"},
		{"run without config", []string{"run"}, "", "exactly one CONFIG"},
		{"bad flag", []string{"run", "--bogus"}, "", "bogus"},
		{"bad timeout", []string{"run", "--timeout", "soon"}, "", "invalid value"},
		{"missing config", []string{"run", filepath.Join(dir, "nope.toml")}, "", "no such file"},
		{"missing kernel", nil, domainTOML("a", filepath.Join(dir, "missing.elf"), "16M", 1, nil), "missing.elf"},
		{"not ELF", nil, domainTOML("a", notELF, "16M", 1, nil), "not an ELF file"},
		{"segment outside RAM", nil, domainTOML("a", huge, "16M", 1, nil), "outside guest RAM"},
		{"duplicate names", nil, domainTOML("a", hello, "16M", 1, nil) + domainTOML("a", hello, "16M", 1, nil), "duplicate domain name"},
		{"zero memory", nil, domainTOML("a", hello, "0", 1, nil), "memory is zero"},
		{"bad TOML", nil, "[[domain]\n", "invalid configuration"},
		{"single [domain]", nil, "[domain]\nname = \"a\"\n", "write [[domain]]"},
		{"string for an integer", nil, strings.Replace(domainTOML("a", hello, "16M", 1, nil), "vcpus = 1", "vcpus = \"1\"", 1), "domain.vcpus must be an integer, not a string (e.g. vcpus = 2)"},
		{"memory 1T", nil, domainTOML("a", hello, "1T", 1, nil), "1T is too large"},
		{"name too long for memfd", nil, domainTOML(strings.Repeat("n", 240), hello, "16M", 1, nil), "at most 232 allowed"},
	} {
		args := tc.args
		if tc.config != "" {
			args = []string{"run", writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".toml", tc.config)}
		}
		r := runCLI(t, args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: want exit 2 and stderr mentioning %q, got:\n%v", tc.name, tc.want, r)
		}
	}
}

// Domains whose grant-window shares cannot all fit under the host's
// vm.max_map_count: the one that does not fit is refused as a bad config
// (exit 2) naming the limit and the key, before anything runs.
func TestCLIOverBudget(t *testing.T) {
	requireKVM(t)
	b, err := os.ReadFile("/proc/sys/vm/max_map_count")
	if err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	const share = vmm.MaxWindowVMAs
	if limit > 8*share {
		t.Skipf("vm.max_map_count is %d: too many domains would be needed to exceed it", limit)
	}
	var cfg strings.Builder
	for i := uint64(0); i <= limit/share; i++ {
		cfg.WriteString(domainTOML("d"+strconv.FormatUint(i, 10), guest("hello"), "16M", 1, nil))
		cfg.WriteString("[domain.gnttab]\nmax_window_vmas = " + strconv.Itoa(share) + "\n")
	}
	r := runCLI(t, "run", writeFile(t, t.TempDir(), "over.toml", cfg.String()))
	for _, want := range []string{"over the VMM's resource budget", "max_window_vmas", "vm.max_map_count " + strconv.FormatUint(limit, 10)} {
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("want exit 2 and stderr mentioning %q, got:\n%v", want, r)
		}
	}
	if strings.Contains(r.stdout, "[d0]") {
		t.Errorf("a domain ran although the config does not fit:\n%v", r)
	}
}

func TestCLIUnusableKVM(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.toml", domainTOML("a", guest("hello"), "16M", 1, nil))
	t.Setenv("ARGOVISOR_KVM_DEVICE", filepath.Join(dir, "no-kvm"))
	r := runCLI(t, "run", cfg)
	if r.code != 2 || !strings.Contains(r.stderr, "KVM device not found") {
		t.Errorf("missing device: want exit 2 naming it, got:\n%v", r)
	}
	// A file we may not open: permission denied (unless running as root,
	// which bypasses file modes).
	if os.Geteuid() != 0 {
		locked := writeFile(t, dir, "locked", "")
		os.Chmod(locked, 0)
		t.Setenv("ARGOVISOR_KVM_DEVICE", locked)
		if r := runCLI(t, "run", cfg); r.code != 2 || !strings.Contains(r.stderr, "permission denied") {
			t.Errorf("unreadable device: want exit 2 naming permission, got:\n%v", r)
		}
	}
	// Not a KVM device at all.
	t.Setenv("ARGOVISOR_KVM_DEVICE", cfg)
	if r := runCLI(t, "run", cfg); r.code != 2 || !strings.Contains(r.stderr, "no usable KVM") {
		t.Errorf("regular file as device: want exit 2, got:\n%v", r)
	}
}

func TestCLIVersionAndHelp(t *testing.T) {
	r := runCLI(t, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "argovisor ") {
		t.Errorf("version: %v", r)
	}
	r = runCLI(t, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
		t.Errorf("--help: %v", r)
	}
}

func TestCLITraceHypercalls(t *testing.T) {
	requireKVM(t)
	cfg := writeFile(t, t.TempDir(), "c.toml", domainTOML("hc", guest("hypercall"), "16M", 1, nil)+
		domainTOML("pp", guest("exitcode"), "16M", 1, nil))
	r := runCLI(t, "run", "--trace-hypercalls", "--timeout", timeoutArg(60*time.Second), cfg)
	// Op names, arguments, errno names and the time each call took.
	null := regexp.MustCompile(`\[hc\] vcpu0 null\(0x1, 0x2, 0x3, 0x4, 0x5\) = 0 [0-9.]+(ns|µs|ms|s)\n`)
	if r.code != 0 || !null.MatchString(r.stderr) ||
		!strings.Contains(r.stderr, "[hc] vcpu0 hypercall_99(0x0, 0x0, 0x0, 0x0, 0x0) = -ENOSYS ") ||
		!strings.Contains(r.stderr, "hypercall_4294967295(") {
		t.Fatalf("trace missing:\n%v", r)
	}
	if !bytes.Contains([]byte(r.stdout), []byte("null=0 unknown=-38")) {
		t.Fatalf("guest output missing:\n%v", r)
	}
	// The domain filter: only the named domain is traced.
	r = runCLI(t, "run", "--trace-hypercalls", "--trace-domain", "pp", "--timeout", timeoutArg(60*time.Second), cfg)
	if r.code != 0 || strings.Contains(r.stderr, "[hc] vcpu0") {
		t.Fatalf("--trace-domain pp traced hc:\n%v", r)
	}
}

// TestCLISandbox runs examples under each --seccomp mode (the other CLI
// tests run with the default, on). The grant-table example maps pages into
// grant windows with mmap(MAP_FIXED) and revokes them under the filter; as
// root it also runs with privileges dropped to nobody after setup.
func TestCLISandbox(t *testing.T) {
	requireKVM(t)
	hello := filepath.Join(repoRoot, "examples", "hello.toml")
	shared := filepath.Join(repoRoot, "examples", "sharedpage.toml")
	cases := [][]string{
		{"--seccomp=on", shared},
		{"--seccomp=log", hello},
		{"--seccomp", "off", hello},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, []string{"--seccomp=on", "--user", "65534:65534", shared})
	}
	for _, args := range cases {
		r := runCLI(t, append([]string{"run", "--timeout", timeoutArg(120 * time.Second)}, args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "(domain 2): exited with status 0") {
			t.Errorf("argovisor run %q: want exit 0 with both domains exited 0, got:\n%v", args, r)
		}
		if args[0] == "--seccomp=log" && !strings.Contains(r.stderr, "logged by the kernel") {
			t.Errorf("--seccomp=log does not say so on stderr:\n%v", r)
		}
	}
}
