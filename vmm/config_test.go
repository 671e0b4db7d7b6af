package vmm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfig writes a config and a dummy kernel file next to it.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k.elf"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseConfig(t *testing.T) {
	p := writeConfig(t, `
[[domain]]
name = "ping"
label = "tier=web zone=dmz"
kernel = "k.elf"
memory = "16M"
vcpus = 2
[domain.params]
peer = "2"
count = 5
verbose = true

[domain.argo]
wildcard = true
send_to = ["pong", "ping"]

[[domain]]
name = "pong"
kernel = "k.elf"
memory = 33554432
max_memory = "64M"
report_memory = true
[domain.argo]
enabled = false
[domain.gnttab]
max_frames = 8
max_maptrack_frames = 2
max_window_vmas = 100
map_from = ["ping"]
`)
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Domains) != 2 {
		t.Fatalf("%d domains", len(cfg.Domains))
	}
	d0, d1 := cfg.Domains[0], cfg.Domains[1]
	if d0.Name != "ping" || d0.Label != "tier=web zone=dmz" || d1.Label != "" || d0.Memory != 16<<20 || d0.VCPUs != 2 || d0.Kernel != filepath.Join(filepath.Dir(p), "k.elf") {
		t.Errorf("domain 0 = %+v", d0)
	}
	if d0.Params["peer"] != "2" || d0.Params["count"] != "5" || d0.Params["verbose"] != "true" {
		t.Errorf("params = %v", d0.Params)
	}
	if d1.Memory != 32<<20 || d1.VCPUs != DefaultVCPUs || len(d1.Params) != 0 {
		t.Errorf("domain 1 = %+v", d1)
	}
	if d0.MaxMemory != d0.Memory || d0.ReportMemory || d1.MaxMemory != 64<<20 || !d1.ReportMemory {
		t.Errorf("max_memory/report_memory: domain 0 %d %v (default: memory, false), domain 1 %d %v",
			d0.MaxMemory, d0.ReportMemory, d1.MaxMemory, d1.ReportMemory)
	}
	if !d0.Argo.Wildcard || d0.Argo.Disabled || len(d0.Argo.SendTo) != 2 || d0.Argo.SendTo[0] != 2 || d0.Argo.SendTo[1] != 1 {
		t.Errorf("domain 0 argo = %+v", d0.Argo)
	}
	if d1.Gnttab.MaxFrames != 8 || d1.Gnttab.MaxMaptrackFrames != 2 || d1.Gnttab.MaxWindowVMAs != 100 || len(d1.Gnttab.MapFrom) != 1 || d1.Gnttab.MapFrom[0] != 1 {
		t.Errorf("domain 1 gnttab = %+v", d1.Gnttab)
	}
	if d0.Gnttab.MaxFrames != 0 || d0.Gnttab.MaxWindowVMAs != 0 || d0.Gnttab.MapFrom != nil {
		t.Errorf("domain 0 gnttab = %+v (defaults: 0 = Xen's default, nil = any)", d0.Gnttab)
	}
	if !d1.Argo.Disabled || d1.Argo.Wildcard || d1.Argo.SendTo != nil {
		t.Errorf("domain 1 argo = %+v (default: enabled, no wildcard, send anywhere)", d1.Argo)
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[any]uint64{
		"16M": 16 << 20, "16MiB": 16 << 20, "16mb": 16 << 20, "1G": 1 << 30, "512K": 512 << 10,
		"4096": 4096, " 8 M ": 8 << 20, int64(4 << 20): 4 << 20,
	} {
		got, err := parseMemory(in)
		if err != nil || got != want {
			t.Errorf("parseMemory(%v) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []any{"", "M", "16X", "1.5G", "-1M", "99999999999999999999G", int64(-5), 1.5, true} {
		if _, err := parseMemory(in); err == nil {
			t.Errorf("parseMemory(%v) accepted", in)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	const ok = "kernel = \"k.elf\"\nmemory = \"16M\"\n"
	for _, tc := range []struct {
		name, body, want string
	}{
		{"syntax", "[[domain]\nname=", "toml"},
		{"no domains", "", "no [[domain]]"},
		{"unknown top-level key", "colour = 1\n[[domain]]\nname = \"a\"\n" + ok, "unknown key"},
		{"unknown domain key", "[[domain]]\nname = \"a\"\nmemroy = \"1M\"\n" + ok, "memroy"},
		{"missing name", "[[domain]]\n" + ok, "missing name"},
		{"bad name", "[[domain]]\nname = \"a b\"\n" + ok, "name may not"},
		{"duplicate name", "[[domain]]\nname = \"a\"\n" + ok + "[[domain]]\nname = \"a\"\n" + ok, "duplicate domain name"},
		{"missing kernel", "[[domain]]\nname = \"a\"\nmemory = \"16M\"\n", "missing kernel"},
		{"kernel not found", "[[domain]]\nname = \"a\"\nkernel = \"nope.elf\"\nmemory = \"16M\"\n", "nope.elf"},
		{"kernel is a directory", "[[domain]]\nname = \"a\"\nkernel = \"adir\"\nmemory = \"16M\"\n", "not a regular file"},
		{"missing memory", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\n", "missing memory"},
		{"zero memory", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"0\"\n", "memory is zero"},
		{"zero memory int", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = 0\n", "memory is zero"},
		{"bad memory", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"lots\"\n", "memory"},
		{"memory type", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = [1]\n", "memory"},
		{"memory too small", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"1M\"\n", "between 2M and 3G"},
		{"memory too large", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"4G\"\n", "between 2M and 3G"},
		{"memory unaligned", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = 3000000\n", "multiple of 4K"},
		{"max_memory below memory", "[[domain]]\nname = \"a\"\nmax_memory = \"8M\"\n" + ok, "less than memory"},
		{"max_memory too large", "[[domain]]\nname = \"a\"\nmax_memory = \"4G\"\n" + ok, "between 2M and 3G"},
		{"max_memory unaligned", "[[domain]]\nname = \"a\"\nmax_memory = 16781313\n" + ok, "multiple of 4K"},
		{"max_memory bad", "[[domain]]\nname = \"a\"\nmax_memory = \"more\"\n" + ok, "max_memory"},
		{"report_memory type", "[[domain]]\nname = \"a\"\nreport_memory = 1\n" + ok, "toml"},
		{"zero vcpus", "[[domain]]\nname = \"a\"\nvcpus = 0\n" + ok, "vcpus = 0"},
		{"label too long", "[[domain]]\nname = \"a\"\nlabel = \"" + strings.Repeat("x", 65) + "\"\n" + ok, "at most 64"},
		{"label with a newline", "[[domain]]\nname = \"a\"\nlabel = \"a\\nb\"\n" + ok, "printable ASCII"},
		{"label not ASCII", "[[domain]]\nname = \"a\"\nlabel = \"caf\u00e9\"\n" + ok, "printable ASCII"},
		{"too many vcpus", "[[domain]]\nname = \"a\"\nvcpus = 65\n" + ok, "vcpus = 65"},
		{"stacks do not fit", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"2M\"\nvcpus = 64\n", "too small"},
		{"unknown send_to", "[[domain]]\nname = \"a\"\n" + ok + "[domain.argo]\nsend_to = [\"b\"]\n", "unknown domain \"b\""},
		{"unknown argo key", "[[domain]]\nname = \"a\"\n" + ok + "[domain.argo]\nwildcards = true\n", "wildcards"},
		{"argo type", "[[domain]]\nname = \"a\"\n" + ok + "[domain.argo]\nenabled = \"yes\"\n", "toml"},
		{"gnttab max_frames 0", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmax_frames = 0\n", "max_frames = 0"},
		{"gnttab max_frames too large", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmax_frames = 5000\n", "max_frames = 5000"},
		{"gnttab maptrack 0", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmax_maptrack_frames = 0\n", "max_maptrack_frames = 0"},
		{"gnttab window 1", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmax_window_vmas = 1\n", "max_window_vmas = 1, want 2..262144"},
		{"gnttab window too large", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmax_window_vmas = 300000\n", "max_window_vmas = 300000"},
		{"gnttab unknown map_from", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmap_from = [\"zz\"]\n", "unknown domain \"zz\""},
		{"param type", "[[domain]]\nname = \"a\"\n" + ok + "[domain.params]\nx = [1, 2]\n", "param \"x\""},
		{"param too large", "[[domain]]\nname = \"a\"\n" + ok + "[domain.params]\nx = \"" + strings.Repeat("y", 9000) + "\"\n", "params take"},
	} {
		_, err := LoadConfig(writeConfig(t, tc.body))
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrBadConfig mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, ErrBadConfig) {
		t.Errorf("missing file: err = %v", err)
	}
}
