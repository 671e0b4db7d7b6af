package vmm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
api_sock = "run/api.sock"

[[domain]]
name = "ping"
label = "tier=web zone=dmz"
kernel = "k.elf"
memory = "16M"
vcpus = 2
cpus = [0]
on_exit = "restart"
on_crash = "preserve"
restart_limit = 3
restart_backoff = "250ms"
console_log = "logs/ping.log"
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
	if cfg.APISock != filepath.Join(filepath.Dir(p), "run/api.sock") {
		t.Errorf("api_sock = %q", cfg.APISock)
	}
	if len(cfg.Domains) != 2 {
		t.Fatalf("%d domains", len(cfg.Domains))
	}
	d0, d1 := cfg.Domains[0], cfg.Domains[1]
	if d0.Name != "ping" || d0.Label != "tier=web zone=dmz" || d1.Label != "" || d0.Memory != 16<<20 || d0.VCPUs != 2 || d0.Kernel != filepath.Join(filepath.Dir(p), "k.elf") {
		t.Errorf("domain 0 = %+v", d0)
	}
	if !slices.Equal(d0.CPUs, []int{0}) || d1.CPUs != nil {
		t.Errorf("cpus = %v, %v; want [0] and none", d0.CPUs, d1.CPUs)
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
	if d0.OnExit != ActionRestart || d0.OnCrash != ActionPreserve || d0.RestartLimit != 3 || d0.RestartBackoff != 250*time.Millisecond ||
		d0.ConsoleLog != filepath.Join(filepath.Dir(p), "logs/ping.log") {
		t.Errorf("domain 0 lifecycle = %q %q %d %v %q", d0.OnExit, d0.OnCrash, d0.RestartLimit, d0.RestartBackoff, d0.ConsoleLog)
	}
	// Unset keys stay zero in the file's config; CreateDomain's defaults
	// fill them.
	if d1.OnExit != "" || d1.RestartLimit != 0 || d1.ConsoleLog != "" {
		t.Errorf("domain 1 lifecycle = %+v", d1)
	}
	def := d1.WithDefaults()
	if def.OnExit != ActionDestroy || def.OnCrash != ActionDestroy || def.RestartLimit != DefaultRestartLimit ||
		def.RestartBackoff != DefaultRestartBackoff || def.Gnttab.MaxFrames != 8 || def.Gnttab.MaxMaptrackFrames != 2 {
		t.Errorf("domain 1 with defaults = %+v", def)
	}
	if err := def.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestDomainConfigDefaultsAndValidate(t *testing.T) {
	c := DomainConfig{Name: "api", Kernel: "k.elf"}.WithDefaults()
	if c.VCPUs != DefaultVCPUs || c.Memory != DefaultMemory || c.OnExit != ActionDestroy || c.OnCrash != ActionDestroy ||
		c.RestartLimit != DefaultRestartLimit || c.RestartBackoff != DefaultRestartBackoff ||
		c.Gnttab.MaxFrames != DefaultGrantFrames || c.Gnttab.MaxMaptrackFrames != DefaultMaptrackFrames {
		t.Fatalf("defaults = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate(defaults) = %v", err)
	}
	for name, mut := range map[string]func(*DomainConfig){
		"no name":          func(c *DomainConfig) { c.Name = "" },
		"name with space":  func(c *DomainConfig) { c.Name = "a b" },
		"name too long":    func(c *DomainConfig) { c.Name = strings.Repeat("x", MaxNameLen+1) },
		"no kernel":        func(c *DomainConfig) { c.Kernel = "" },
		"memory unaligned": func(c *DomainConfig) { c.Memory = 3<<20 + 1 },
		"memory too large": func(c *DomainConfig) { c.Memory = 1 << 40 },
		"vcpus":            func(c *DomainConfig) { c.VCPUs = 65 },
		"stacks":           func(c *DomainConfig) { c.Memory = 2 << 20; c.VCPUs = 64 },
		"action":           func(c *DomainConfig) { c.OnCrash = "reboot" },
		"restart limit":    func(c *DomainConfig) { c.RestartLimit = -1 },
		"backoff":          func(c *DomainConfig) { c.RestartBackoff = -time.Second },
		"max frames":       func(c *DomainConfig) { c.Gnttab.MaxFrames = MaxGrantFrames + 1 },
		"params":           func(c *DomainConfig) { c.Params = map[string]string{"a\x00": "b"} },
		"cpu twice":        func(c *DomainConfig) { c.CPUs = []int{0, 0} },
		"cpu not allowed":  func(c *DomainConfig) { c.CPUs = []int{maxCPU} },
		"cpu negative":     func(c *DomainConfig) { c.CPUs = []int{-1} },
	} {
		bad := c
		mut(&bad)
		if err := bad.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: Validate = %v, want ErrBadConfig", name, err)
		}
	}
	// A name of exactly MaxNameLen bytes still makes both memfds.
	r, err := NewRAM(strings.Repeat("n", MaxNameLen)+":gnttab", PageSize)
	if err != nil {
		t.Fatalf("memfd with the longest name: %v", err)
	}
	r.Close()
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
		{"memory too small", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"1M\"\n", "too small (at least 2M)"},
		{"memory too large", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"4G\"\n", "too large (at most 3G)"},
		{"memory 1T", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"1T\"\n", "1T is too large (at most 3G)"},
		{"memory beyond 64 bits", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"99999999999999999999G\"\n", "too large"},
		{"memory boolean", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = true\n", "got a boolean"},
		{"single [domain] table", "[domain]\nname = \"a\"\n" + ok, "write [[domain]]"},
		{"string for an integer", "[[domain]]\nname = \"a\"\nvcpus = \"2\"\n" + ok, "domain.vcpus must be an integer, not a string (e.g. vcpus = 2)"},
		{"integer for a string", "[[domain]]\nname = 7\n" + ok, "domain.name must be a string, not an integer"},
		{"name too long for memfd", "[[domain]]\nname = \"" + strings.Repeat("n", MaxNameLen+1) + "\"\n" + ok, "at most 232 allowed"},
		{"bad on_exit", "[[domain]]\nname = \"a\"\non_exit = \"reboot\"\n" + ok, "on_exit = \"reboot\", want"},
		{"bad on_crash", "[[domain]]\nname = \"a\"\non_crash = \"\"\non_crash = \"x\"\n" + ok, "toml"},
		{"restart_limit 0", "[[domain]]\nname = \"a\"\nrestart_limit = 0\n" + ok, "restart_limit = 0"},
		{"bad restart_backoff", "[[domain]]\nname = \"a\"\nrestart_backoff = \"soon\"\n" + ok, "restart_backoff = \"soon\", want a positive duration"},
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
		{"empty cpus", "[[domain]]\nname = \"a\"\ncpus = []\n" + ok, "cpus = []"},
		{"negative cpu", "[[domain]]\nname = \"a\"\ncpus = [-1]\n" + ok, "-1 is not a CPU number"},
		{"cpu too large", "[[domain]]\nname = \"a\"\ncpus = [1024]\n" + ok, "1024 is not a CPU number"},
		{"cpus not a list", "[[domain]]\nname = \"a\"\ncpus = 1\n" + ok, "cpus"},
		{"stacks do not fit", "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"2M\"\nvcpus = 64\n", "too small"},
		{"unknown send_to", "[[domain]]\nname = \"a\"\n" + ok + "[domain.argo]\nsend_to = [\"b\"]\n", "unknown domain \"b\""},
		{"unknown argo key", "[[domain]]\nname = \"a\"\n" + ok + "[domain.argo]\nwildcards = true\n", "wildcards"},
		{"argo type", "[[domain]]\nname = \"a\"\n" + ok + "[domain.argo]\nenabled = \"yes\"\n", "domain.argo.enabled must be a boolean, not a string (e.g. enabled = true)"},
		{"gnttab max_frames 0", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmax_frames = 0\n", "max_frames = 0"},
		{"gnttab max_frames too large", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmax_frames = 5000\n", "max_frames = 5000"},
		{"gnttab maptrack 0", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmax_maptrack_frames = 0\n", "max_maptrack_frames = 0"},
		{"gnttab window 1", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmax_window_vmas = 1\n", "max_window_vmas = 1, want 2..262144"},
		{"gnttab window too large", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmax_window_vmas = 300000\n", "max_window_vmas = 300000"},
		{"gnttab unknown map_from", "[[domain]]\nname = \"a\"\n" + ok + "[domain.gnttab]\nmap_from = [\"zz\"]\n", "unknown domain \"zz\""},
		{"param type", "[[domain]]\nname = \"a\"\n" + ok + "[domain.params]\nx = [1, 2]\n", "param \"x\""},
		{"param too large", "[[domain]]\nname = \"a\"\n" + ok + "[domain.params]\nx = \"" + strings.Repeat("y", 9000) + "\"\n", "params take"},
		{"stream keys without a socket", "[[domain]]\nname = \"a\"\n" + ok + "[domain.stream]\nmax_connections = 4\n", "socket is required"},
		{"stream max_connections 0", "[[domain]]\nname = \"a\"\n" + ok + "[domain.stream]\nsocket = \"s\"\nmax_connections = 0\n", "max_connections = 0, want 1..126"},
		{"stream max_connections too many", "[[domain]]\nname = \"a\"\n" + ok + "[domain.stream]\nsocket = \"s\"\nmax_connections = 127\n", "max_connections = 127"},
		{"stream ring not pages", "[[domain]]\nname = \"a\"\n" + ok + "[domain.stream]\nsocket = \"s\"\nring = 5000\n", "whole pages from 4K to 16M"},
		{"stream ring too large", "[[domain]]\nname = \"a\"\n" + ok + "[domain.stream]\nsocket = \"s\"\nring = \"32M\"\n", "stream.ring"},
		{"stream handshake", "[[domain]]\nname = \"a\"\n" + ok + "[domain.stream]\nsocket = \"s\"\nhandshake_timeout = \"soon\"\n", "handshake_timeout = \"soon\""},
		{"stream unknown key", "[[domain]]\nname = \"a\"\n" + ok + "[domain.stream]\nsocket = \"s\"\nports = [1]\n", "ports"},
		{"stream without argo", "[[domain]]\nname = \"a\"\n" + ok + "[domain.argo]\nenabled = false\n[domain.stream]\nsocket = \"s\"\n", "a stream socket needs Argo"},
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

func TestDecodeDomainJSON(t *testing.T) {
	dir := filepath.Dir(writeConfig(t, ""))
	lookup := func(name string) (uint16, bool) {
		if name == "pong" {
			return 7, true
		}
		return 0, false
	}
	dc, err := DecodeDomainJSON([]byte(`{"name": "ping", "kernel": "k.elf", "memory": "16M", "vcpus": 2,
		"params": {"peer": 7, "size": "64", "fast": true},
		"argo": {"send_to": ["pong"]}, "gnttab": {"map_from": ["pong"], "max_frames": 4},
		"on_crash": "restart", "restart_limit": 3, "restart_backoff": "10ms", "console_log": "ping.log"}`), DomainJSONOptions{Dir: dir, Lookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if dc.Name != "ping" || dc.Kernel != filepath.Join(dir, "k.elf") || dc.Memory != 16<<20 || dc.VCPUs != 2 ||
		dc.Params["peer"] != "7" || dc.Params["size"] != "64" || dc.Params["fast"] != "true" ||
		len(dc.Argo.SendTo) != 1 || dc.Argo.SendTo[0] != 7 || dc.Gnttab.MapFrom[0] != 7 || dc.Gnttab.MaxFrames != 4 ||
		dc.OnCrash != ActionRestart || dc.RestartLimit != 3 || dc.RestartBackoff != 10*time.Millisecond ||
		dc.ConsoleLog != filepath.Join(dir, "ping.log") {
		t.Errorf("decoded %+v", dc)
	}
	if dc, err := DecodeDomainJSON([]byte(`{"name": "m", "kernel": "k.elf", "memory": 4194304}`), DomainJSONOptions{Dir: dir, Lookup: lookup}); err != nil || dc.Memory != 4<<20 {
		t.Errorf("integer memory: %+v, %v", dc, err)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"name": "a", "kernel": "k.elf", "memory": "16M", "vcpu": 1}`, `unknown field "vcpu"`},
		{`{"name": "a", "kernel": "k.elf", "memory": "16M", "vcpus": "2"}`, "vcpus must be an integer, not string"},
		{`{"name": "a", "kernel": "k.elf", "memory": 1.5}`, "not a whole number"},
		{`{"name": "a", "kernel": "k.elf", "memory": "1T"}`, "too large"},
		{`{"name": "a b", "kernel": "k.elf", "memory": "16M"}`, "may not contain"},
		{`{"kernel": "k.elf", "memory": "16M"}`, "missing name"},
		{`{"name": "a", "kernel": "nope.elf", "memory": "16M"}`, "nope.elf"},
		{`{"name": "a", "kernel": "k.elf", "memory": "16M", "argo": {"send_to": ["zz"]}}`, `unknown domain "zz"`},
		{`{"name": "a", "kernel": "k.elf", "memory": "16M", "on_exit": "reboot"}`, "on_exit"},
		{`{"name": "a"} {"name": "b"}`, "more than one"},
		{`[1, 2]`, "domain JSON"},
		{`{"name": `, "domain JSON"},
	} {
		if _, err := DecodeDomainJSON([]byte(tc.body), DomainJSONOptions{Dir: dir, Lookup: lookup}); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrBadConfig mentioning %q", tc.body, err, tc.want)
		}
	}
}

// TestDecodeDomainJSONImage: a kernel sent as bytes (kernel_image, base64)
// is used as is, with kernel only naming it; with NoFiles, what would
// open or look up a file is refused before anything is looked up.
func TestDecodeDomainJSONImage(t *testing.T) {
	img := goodELF().build()
	body := func(extra string) []byte {
		b, err := json.Marshal(map[string]any{"name": "m", "memory": "16M", "kernel_image": img})
		if err != nil {
			t.Fatal(err)
		}
		return append(b[:len(b)-1], []byte(extra+"}")...)
	}
	// A directory that does not exist: nothing may be looked up in it.
	none := filepath.Join(t.TempDir(), "gone")
	for name, o := range map[string]DomainJSONOptions{"files allowed": {Dir: none}, "no files": {Dir: none, NoFiles: true}} {
		for _, extra := range []string{"", `, "kernel": "relative/k.elf"`} {
			dc, err := DecodeDomainJSON(body(extra), o)
			if err != nil {
				t.Fatalf("%s %s: %v", name, extra, err)
			}
			if dc.KernelData == nil {
				t.Fatalf("%s: no KernelData", name)
			}
			got, err := readKernel(dc, MaxKernelImage)
			if err != nil || !bytes.Equal(got, img) {
				t.Errorf("%s: image %d bytes, %v; want the %d sent", name, len(got), err, len(img))
			}
			want := "kernel_image"
			if extra != "" {
				want = "relative/k.elf" // a name only: not resolved, not looked up
			}
			if dc.Kernel != want {
				t.Errorf("%s: kernel named %q, want %q", name, dc.Kernel, want)
			}
		}
	}
	k := filepath.Join(t.TempDir(), "k.elf")
	if err := os.WriteFile(k, img, 0o644); err != nil {
		t.Fatal(err)
	}
	pathOnly := []byte(fmt.Sprintf(`{"name": "p", "kernel": %q, "memory": "16M"}`, k))
	if dc, err := DecodeDomainJSON(pathOnly, DomainJSONOptions{}); err != nil || dc.Kernel != k || dc.KernelData != nil {
		t.Errorf("a path without NoFiles: %+v, %v", dc, err)
	}
	for _, tc := range []struct {
		body []byte
		o    DomainJSONOptions
		want string
	}{
		{pathOnly, DomainJSONOptions{NoFiles: true}, "the kernel must be sent in kernel_image"},
		{[]byte(`{"name": "p", "memory": "16M"}`), DomainJSONOptions{NoFiles: true}, "kernel_image"},
		{body(`, "console_log": "/tmp/p.log"`), DomainJSONOptions{NoFiles: true}, "console_log is not available"},
		{body(`, "stream": {"socket": "/tmp/p.sock"}`), DomainJSONOptions{NoFiles: true}, "stream.socket is not available"},
		{[]byte(`{"name": "p", "memory": "16M", "kernel_image": ""}`), DomainJSONOptions{}, "kernel_image is empty"},
		{[]byte(`{"name": "p", "memory": "16M", "kernel_image": "not base64!"}`), DomainJSONOptions{}, "base64"},
		{[]byte(`{"name": "p", "memory": "16M", "kernel_image": 5}`), DomainJSONOptions{}, "kernel_image must be a string (the kernel's bytes in base64)"},
	} {
		if _, err := DecodeDomainJSON(tc.body, tc.o); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s…: %v, want ErrBadConfig mentioning %q", tc.body, err, tc.want)
		}
	}
	// kernel_image is not a config file key.
	if _, err := ParseConfig("c.toml", []byte("[[domain]]\nname = \"a\"\nkernel_image = \"AAAA\"\nmemory = \"16M\"\n")); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Errorf("kernel_image in a config file: %v", err)
	}
}

func TestParseStreamConfig(t *testing.T) {
	p := writeConfig(t, "[[domain]]\nname = \"a\"\nkernel = \"k.elf\"\nmemory = \"16M\"\n"+
		"[domain.stream]\nsocket = \"run/a.sock\"\nmax_connections = 8\nring = \"1M\"\nhandshake_timeout = \"2s\"\n")
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Domains[0].Stream
	if want := filepath.Join(filepath.Dir(p), "run/a.sock"); s.Path != want || s.MaxConns != 8 || s.Ring != 1<<20-64 || s.Handshake != 2*time.Second {
		t.Fatalf("stream %+v, want %s, 8 connections, a 1 MiB ring, 2s", s, want)
	}
	// The budget counts the socket: its descriptors and its memory.
	plain := cfg.Domains[0]
	plain.Stream.Path = ""
	with, without := domainUsage(cfg.Domains[0].WithDefaults()), domainUsage(plain.WithDefaults())
	if d := with[resFiles] - without[resFiles]; d != 1+2*8 {
		t.Errorf("a stream socket of 8 connections reserves %d more descriptors, want 17", d)
	}
	if d := with[resMemory] - without[resMemory]; d != s.Memory() || d < 8*(1<<20) {
		t.Errorf("a stream socket reserves %d more bytes, want %d", d, s.Memory())
	}
}
