package vmm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/hostsock"
)

// ErrBadConfig marks every configuration error.
var ErrBadConfig = errors.New("invalid configuration")

// Config is a parsed configuration file: the domains to run, in order.
type Config struct {
	Path string
	// APISock is the control API socket (top-level api_sock key,
	// relative to the file's directory); "" for none.
	APISock string
	Domains []DomainConfig
}

// Default values for optional domain keys.
const (
	DefaultVCPUs = 1
	// DefaultMemory is the RAM of a domain created through the Go API
	// without Memory (a config file must say how much).
	DefaultMemory = 16 << 20
)

// MaxNameLen is the longest domain name: memfd_create takes names of at
// most 249 bytes, and the VMM's memfds are "argovisor:NAME" and
// "argovisor:NAME:gnttab".
const MaxNameLen = 249 - len("argovisor:") - len(":gnttab")

type fileDomain struct {
	Name           string         `toml:"name" json:"name"`
	Label          string         `toml:"label" json:"label"`
	Kernel         string         `toml:"kernel" json:"kernel"`
	KernelImage    []byte         `toml:"-" json:"kernel_image"` // JSON only: base64
	Memory         any            `toml:"memory" json:"memory"`
	VCPUs          *int64         `toml:"vcpus" json:"vcpus"`
	Params         map[string]any `toml:"params" json:"params"`
	Argo           fileArgo       `toml:"argo" json:"argo"`
	Gnttab         fileGnttab     `toml:"gnttab" json:"gnttab"`
	OnExit         string         `toml:"on_exit" json:"on_exit"`
	OnCrash        string         `toml:"on_crash" json:"on_crash"`
	RestartLimit   *int64         `toml:"restart_limit" json:"restart_limit"`
	RestartBackoff string         `toml:"restart_backoff" json:"restart_backoff"`
	ConsoleLog     string         `toml:"console_log" json:"console_log"`
	// Memory reservation (docs/grant-tables.md, "Memory reservation").
	MaxMemory    any        `toml:"max_memory" json:"max_memory"`
	ReportMemory bool       `toml:"report_memory" json:"report_memory"`
	CPUs         []int64    `toml:"cpus" json:"cpus"`
	Stream       fileStream `toml:"stream" json:"stream"`
}

// fileStream is [domain.stream] (docs/streams.md).
type fileStream struct {
	Socket           string `toml:"socket" json:"socket"`
	MaxConnections   *int64 `toml:"max_connections" json:"max_connections"`
	Ring             any    `toml:"ring" json:"ring"`
	HandshakeTimeout string `toml:"handshake_timeout" json:"handshake_timeout"`
}

// toConfig turns [domain.stream] into the socket's configuration; a
// relative path is relative to dir, as kernel paths are.
func (fs fileStream) toConfig(dir string) (hostsock.Config, error) {
	var c hostsock.Config
	if fs.Socket == "" {
		if fs.MaxConnections != nil || fs.Ring != nil || fs.HandshakeTimeout != "" {
			return c, errors.New("stream: socket is required with the other stream keys")
		}
		return c, nil
	}
	c.Path = fs.Socket
	if !filepath.IsAbs(c.Path) {
		c.Path = filepath.Join(dir, c.Path)
	}
	if v := fs.MaxConnections; v != nil {
		if *v < 1 || *v > hostsock.MaxMaxConns {
			return c, fmt.Errorf("stream.max_connections = %d, want 1..%d", *v, hostsock.MaxMaxConns)
		}
		c.MaxConns = int(*v)
	}
	if fs.Ring != nil {
		n, err := parseMemory(fs.Ring)
		if err != nil {
			return c, fmt.Errorf("stream.ring: %v", err)
		}
		// A ring of n bytes of memory holds n-64 bytes of data.
		if n%argo.PageSize != 0 || n < argo.PageSize || n > 16<<20 {
			return c, fmt.Errorf("stream.ring = %d, want whole pages from 4K to 16M (e.g. \"256K\")", n)
		}
		c.Ring = uint32(n - 64)
	}
	if fs.HandshakeTimeout != "" {
		d, err := time.ParseDuration(fs.HandshakeTimeout)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("stream.handshake_timeout = %q, want a positive duration such as \"5s\"", fs.HandshakeTimeout)
		}
		c.Handshake = d
	}
	return c, nil
}

type fileGnttab struct {
	MaxFrames         *int64   `toml:"max_frames" json:"max_frames"`
	MaxMaptrackFrames *int64   `toml:"max_maptrack_frames" json:"max_maptrack_frames"`
	MaxWindowVMAs     *int64   `toml:"max_window_vmas" json:"max_window_vmas"`
	MapFrom           []string `toml:"map_from" json:"map_from"`
}

type fileArgo struct {
	Enabled  *bool    `toml:"enabled" json:"enabled"`
	Wildcard bool     `toml:"wildcard" json:"wildcard"`
	SendTo   []string `toml:"send_to" json:"send_to"`
}

type fileConfig struct {
	APISock string       `toml:"api_sock" json:"api_sock"`
	Domain  []fileDomain `toml:"domain" json:"domain"`
}

// LoadConfig reads and validates a TOML configuration file. Relative kernel
// paths are resolved against the directory holding the file. Every error
// wraps ErrBadConfig and names the file, and the domain when there is one.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	return ParseConfig(path, data)
}

// ParseConfig is LoadConfig for data already read from path.
func ParseConfig(path string, data []byte) (*Config, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrBadConfig, path, fmt.Sprintf(format, a...))
	}
	var fc fileConfig
	md, err := toml.Decode(string(data), &fc)
	if err != nil {
		return nil, bad("%s", explainTOML(err))
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, bad("unknown key(s): %s", strings.Join(keys, ", "))
	}
	if len(fc.Domain) == 0 {
		return nil, bad("no [[domain]] tables")
	}
	dir := filepath.Dir(path)
	cfg := &Config{Path: path}
	if fc.APISock != "" {
		cfg.APISock = fc.APISock
		if !filepath.IsAbs(cfg.APISock) {
			cfg.APISock = filepath.Join(dir, cfg.APISock)
		}
	}
	seen := map[string]bool{}
	for i, fd := range fc.Domain {
		where := fmt.Sprintf("domain %d", i+1)
		if fd.Name != "" {
			where = fmt.Sprintf("domain %q", fd.Name)
		}
		if fd.Name == "" {
			return nil, bad("%s: missing name", where)
		}
		if err := checkName(fd.Name); err != nil {
			return nil, bad("%s: %v", where, err)
		}
		if seen[fd.Name] {
			return nil, bad("%s: duplicate domain name", where)
		}
		seen[fd.Name] = true
		dc, err := fd.toConfig(dir)
		if err != nil {
			return nil, bad("%s: %v", where, err)
		}
		cfg.Domains = append(cfg.Domains, dc)
	}
	// send_to and map_from name domains; ids are given in config order
	// from 1.
	ids := func(fd fileDomain, key string, names []string) ([]uint16, error) {
		if names == nil {
			return nil, nil
		}
		out := []uint16{}
		for _, name := range names {
			j := slices.IndexFunc(fc.Domain, func(o fileDomain) bool { return o.Name == name })
			if j < 0 {
				return nil, bad("domain %q: %s names unknown domain %q", fd.Name, key, name)
			}
			out = append(out, uint16(j+1))
		}
		return out, nil
	}
	for i, fd := range fc.Domain {
		var err error
		if cfg.Domains[i].Argo.SendTo, err = ids(fd, "argo.send_to", fd.Argo.SendTo); err != nil {
			return nil, err
		}
		if cfg.Domains[i].Gnttab.MapFrom, err = ids(fd, "gnttab.map_from", fd.Gnttab.MapFrom); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// toConfig checks one domain table (file or JSON) and turns it into a
// DomainConfig; dir anchors relative paths. Names in send_to and map_from
// are resolved by the caller.
func (fd fileDomain) toConfig(dir string) (DomainConfig, error) {
	if err := checkLabel(fd.Label); err != nil {
		return DomainConfig{}, err
	}
	kernel := fd.Kernel
	switch {
	case fd.KernelImage != nil:
		// The image itself: kernel, if given, only names it.
		if kernel == "" {
			kernel = "kernel_image"
		}
		// Its size is bounded where every image is read (readKernel).
		if len(fd.KernelImage) == 0 {
			return DomainConfig{}, errors.New("kernel_image is empty")
		}
	case kernel == "":
		return DomainConfig{}, errors.New("missing kernel")
	default:
		if !filepath.IsAbs(kernel) {
			kernel = filepath.Join(dir, kernel)
		}
		if st, err := os.Stat(kernel); err != nil {
			return DomainConfig{}, fmt.Errorf("kernel %s: %v", kernel, errors.Unwrap(err))
		} else if !st.Mode().IsRegular() {
			return DomainConfig{}, fmt.Errorf("kernel %s is not a regular file", kernel)
		}
	}
	if fd.Memory == nil {
		return DomainConfig{}, errors.New("missing memory (e.g. memory = \"16M\")")
	}
	mem, err := parseMemory(fd.Memory)
	if err != nil {
		return DomainConfig{}, fmt.Errorf("memory: %v", err)
	}
	if mem == 0 {
		return DomainConfig{}, errors.New("memory is zero")
	}
	if err := checkMemory(mem); err != nil {
		return DomainConfig{}, err
	}
	vcpus := int64(DefaultVCPUs)
	if fd.VCPUs != nil {
		vcpus = *fd.VCPUs
	}
	if vcpus < 1 || vcpus > MaxVCPUs {
		return DomainConfig{}, fmt.Errorf("vcpus = %d, want 1..%d", vcpus, MaxVCPUs)
	}
	if mem < KernelBase+uint64(vcpus)*StackSize+PageSize {
		return DomainConfig{}, fmt.Errorf("memory %s is too small for %d vCPUs", formatSize(mem), vcpus)
	}
	params := map[string]string{}
	for k, v := range fd.Params {
		switch v := v.(type) {
		case string:
			params[k] = v
		case int64, bool, float64, json.Number:
			params[k] = fmt.Sprint(v)
		default:
			return DomainConfig{}, fmt.Errorf("param %q must be a string, number or boolean", k)
		}
	}
	if _, err := encodeParams(params); err != nil {
		return DomainConfig{}, err
	}
	pol := ArgoPolicy{Disabled: fd.Argo.Enabled != nil && !*fd.Argo.Enabled, Wildcard: fd.Argo.Wildcard}
	var gt GnttabConfig
	if v := fd.Gnttab.MaxFrames; v != nil {
		if *v < 1 || *v > MaxGrantFrames {
			return DomainConfig{}, fmt.Errorf("gnttab.max_frames = %d, want 1..%d", *v, MaxGrantFrames)
		}
		gt.MaxFrames = uint32(*v)
	}
	if v := fd.Gnttab.MaxMaptrackFrames; v != nil {
		if *v < 1 || *v > 1<<16 {
			return DomainConfig{}, fmt.Errorf("gnttab.max_maptrack_frames = %d, want 1..65536", *v)
		}
		gt.MaxMaptrackFrames = uint32(*v)
	}
	if v := fd.Gnttab.MaxWindowVMAs; v != nil {
		if *v < MinWindowVMAs || *v > MaxWindowVMAs {
			return DomainConfig{}, fmt.Errorf("gnttab.max_window_vmas = %d, want %d..%d", *v, MinWindowVMAs, MaxWindowVMAs)
		}
		gt.MaxWindowVMAs = uint32(*v)
	}
	maxMem, err := parseMaxMemory(fd.MaxMemory, mem)
	if err != nil {
		return DomainConfig{}, fmt.Errorf("max_memory: %v", err)
	}
	cpus, err := parseCPUs(fd.CPUs)
	if err != nil {
		return DomainConfig{}, err
	}
	sc, err := fd.Stream.toConfig(dir)
	if err != nil {
		return DomainConfig{}, err
	}
	if sc.Path != "" && pol.Disabled {
		return DomainConfig{}, errors.New("a stream socket needs Argo (argo.enabled = false)")
	}
	dc := DomainConfig{Stream: sc, Name: fd.Name, Label: fd.Label, Kernel: kernel, Memory: mem, VCPUs: int(vcpus), Params: params, Argo: pol, Gnttab: gt,
		OnExit: Action(fd.OnExit), OnCrash: Action(fd.OnCrash), MaxMemory: maxMem, ReportMemory: fd.ReportMemory, CPUs: cpus}
	if fd.KernelImage != nil {
		dc.KernelData = bytes.NewReader(fd.KernelImage)
	}
	for _, a := range []struct{ key, val string }{{"on_exit", fd.OnExit}, {"on_crash", fd.OnCrash}} {
		if a.val != "" && !Action(a.val).valid() {
			return DomainConfig{}, fmt.Errorf("%s = %q, want \"destroy\", \"restart\" or \"preserve\"", a.key, a.val)
		}
	}
	if v := fd.RestartLimit; v != nil {
		if *v < 1 || *v > 1<<20 {
			return DomainConfig{}, fmt.Errorf("restart_limit = %d, want 1..%d", *v, 1<<20)
		}
		dc.RestartLimit = int(*v)
	}
	if fd.RestartBackoff != "" {
		b, err := time.ParseDuration(fd.RestartBackoff)
		if err != nil || b <= 0 {
			return DomainConfig{}, fmt.Errorf("restart_backoff = %q, want a positive duration such as \"500ms\" or \"2s\"", fd.RestartBackoff)
		}
		dc.RestartBackoff = b
	}
	if fd.ConsoleLog != "" {
		dc.ConsoleLog = fd.ConsoleLog
		if !filepath.IsAbs(dc.ConsoleLog) {
			dc.ConsoleLog = filepath.Join(dir, dc.ConsoleLog)
		}
	}
	return dc, nil
}

// DomainJSONOptions say how DecodeDomainJSON resolves what a domain table
// names.
type DomainJSONOptions struct {
	// Dir anchors relative kernel and console_log paths.
	Dir string
	// Lookup finds the id of an existing domain by name, for send_to and
	// map_from; nil knows none.
	Lookup func(name string) (uint16, bool)
	// NoFiles refuses every key that would make the VMM look up or open a
	// file: a kernel given by its path alone (its bytes must come in
	// kernel_image) and console_log. A VMM under its seccomp filter sets
	// it: it can open no file, and trying would kill it.
	NoFiles bool
}

// DecodeDomainJSON reads one domain from a JSON object with the keys of a
// [[domain]] table ("name", "kernel", "memory", "vcpus", "params", "argo",
// "gnttab", "on_exit", …) and "kernel_image", the kernel's bytes in
// base64, as the control API's create takes it. With kernel_image, kernel
// only names the image and no file is read. Errors wrap ErrBadConfig.
func DecodeDomainJSON(data []byte, o DomainJSONOptions) (DomainConfig, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, a...))
	}
	lookup := o.Lookup
	if lookup == nil {
		lookup = func(string) (uint16, bool) { return 0, false }
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var fd fileDomain
	if err := dec.Decode(&fd); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			want := tomlTypeName(te.Type.String())
			if te.Field == "kernel_image" {
				want = "a string (the kernel's bytes in base64)"
			}
			return DomainConfig{}, bad("%s must be %s, not %s", te.Field, want, te.Value)
		}
		return DomainConfig{}, bad("domain JSON: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return DomainConfig{}, bad("domain JSON: more than one value")
	}
	where := "domain"
	if fd.Name != "" {
		where = fmt.Sprintf("domain %q", fd.Name)
	}
	if err := checkName(fd.Name); err != nil {
		return DomainConfig{}, bad("%s: %v", where, err)
	}
	if o.NoFiles {
		// Checked before toConfig, which would look the kernel file up.
		if fd.KernelImage == nil {
			return DomainConfig{}, bad("%s: the kernel must be sent in kernel_image (its bytes, base64): this VMM runs under its seccomp filter (--seccomp=on) and cannot open %q; argovisor ctl create sends the file's contents", where, fd.Kernel)
		}
		if fd.ConsoleLog != "" {
			return DomainConfig{}, bad("%s: console_log is not available: this VMM runs under its seccomp filter (--seccomp=on) and cannot open %q", where, fd.ConsoleLog)
		}
		if fd.Stream.Socket != "" {
			return DomainConfig{}, bad("%s: stream.socket is not available: this VMM runs under its seccomp filter (--seccomp=on) and cannot make the socket file %q; give the domain in the config file the VMM starts with", where, fd.Stream.Socket)
		}
	}
	dc, err := fd.toConfig(o.Dir)
	if err != nil {
		return DomainConfig{}, bad("%s: %v", where, err)
	}
	ids := func(key string, names []string) ([]uint16, error) {
		if names == nil {
			return nil, nil
		}
		out := []uint16{}
		for _, n := range names {
			id, ok := lookup(n)
			if !ok {
				return nil, bad("%s: %s names unknown domain %q", where, key, n)
			}
			out = append(out, id)
		}
		return out, nil
	}
	if dc.Argo.SendTo, err = ids("argo.send_to", fd.Argo.SendTo); err != nil {
		return DomainConfig{}, err
	}
	if dc.Gnttab.MapFrom, err = ids("gnttab.map_from", fd.Gnttab.MapFrom); err != nil {
		return DomainConfig{}, err
	}
	return dc, nil
}

// parseMemory accepts an integer number of bytes or a string with an
// optional binary suffix: "16M", "16MiB", "1G", "512K", "4096", "1T".
// Range checks are checkMemory's.
func parseMemory(v any) (uint64, error) {
	if n, ok := v.(json.Number); ok {
		i, err := n.Int64()
		if err != nil {
			return 0, fmt.Errorf("%s is not a whole number of bytes (e.g. \"16M\")", n)
		}
		v = i
	}
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return 0, fmt.Errorf("negative size %d", v)
		}
		return uint64(v), nil
	case string:
		s := strings.TrimSpace(v)
		num := strings.TrimRight(s, "KMGTPEiBkmgtpeib")
		suffix := strings.ToUpper(strings.TrimSpace(s[len(num):]))
		suffix = strings.TrimSuffix(strings.TrimSuffix(suffix, "B"), "I")
		shift, ok := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}[suffix]
		if !ok {
			return 0, fmt.Errorf("unknown suffix in %q (use K, M or G, e.g. \"16M\")", v)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%q is too large (at most 3G)", v)
		}
		if err != nil {
			return 0, fmt.Errorf("%q is not a size (e.g. \"16M\")", v)
		}
		if n > math.MaxUint64>>shift {
			return 0, fmt.Errorf("%q is too large (at most 3G)", v)
		}
		return n << shift, nil
	}
	return 0, fmt.Errorf("want a string like \"16M\" or an integer, got %s", tomlTypeName(fmt.Sprintf("%T", v)))
}

// checkMemory checks a RAM size against the domain limits.
// parseMaxMemory reads max_memory: absent means memory; otherwise the
// same sizes as memory, and at least memory.
func parseMaxMemory(v any, mem uint64) (uint64, error) {
	if v == nil {
		return mem, nil
	}
	m, err := parseMemory(v)
	if err != nil {
		return 0, err
	}
	if err := checkMaxMemory(m, mem); err != nil {
		return 0, err
	}
	return m, nil
}

// checkMaxMemory checks a maximum reservation against the domain's memory.
func checkMaxMemory(m, mem uint64) error {
	if m < MinMemory || m > MaxMemory || m%PageSize != 0 {
		return fmt.Errorf("%s must be a multiple of 4K between 2M and 3G", formatSize(m))
	}
	if m < mem {
		return fmt.Errorf("%s is less than memory (%s)", formatSize(m), formatSize(mem))
	}
	return nil
}

func checkMemory(mem uint64) error {
	switch {
	case mem == 0:
		return errors.New("memory is zero")
	case mem > MaxMemory:
		return fmt.Errorf("memory %s is too large (at most 3G)", formatSize(mem))
	case mem < MinMemory:
		return fmt.Errorf("memory %s is too small (at least 2M)", formatSize(mem))
	case mem%PageSize != 0:
		return fmt.Errorf("memory %s must be a multiple of 4K between 2M and 3G", formatSize(mem))
	}
	return nil
}

// checkName checks a domain name: printable, no separators, short enough
// for the memfd names built from it.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("missing name")
	case strings.ContainsAny(name, " \t\n\r\x00[]\"'/"):
		return errors.New("name may not contain spaces, quotes, brackets or slashes")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name is %d bytes long, at most %d allowed", len(name), MaxNameLen)
	}
	return nil
}

func (a Action) valid() bool {
	return a == ActionDestroy || a == ActionRestart || a == ActionPreserve
}

// WithDefaults returns c with every unset optional field at its default.
func (c DomainConfig) WithDefaults() DomainConfig {
	if c.VCPUs == 0 {
		c.VCPUs = DefaultVCPUs
	}
	if c.Memory == 0 {
		c.Memory = DefaultMemory
	}
	if c.OnExit == "" {
		c.OnExit = ActionDestroy
	}
	if c.OnCrash == "" {
		c.OnCrash = ActionDestroy
	}
	if c.RestartLimit == 0 {
		c.RestartLimit = DefaultRestartLimit
	}
	if c.RestartBackoff == 0 {
		c.RestartBackoff = DefaultRestartBackoff
	}
	if c.Gnttab.MaxFrames == 0 {
		c.Gnttab.MaxFrames = DefaultGrantFrames
	}
	if c.Gnttab.MaxMaptrackFrames == 0 {
		c.Gnttab.MaxMaptrackFrames = DefaultMaptrackFrames
	}
	return c
}

// Validate checks a configuration with its defaults applied. Errors wrap
// ErrBadConfig and name the domain.
func (c DomainConfig) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: domain %q: %s", ErrBadConfig, c.Name, fmt.Sprintf(format, a...))
	}
	if err := checkName(c.Name); err != nil {
		return bad("%v", err)
	}
	if err := checkLabel(c.Label); err != nil {
		return bad("%v", err)
	}
	if c.Kernel == "" && c.KernelData == nil {
		return bad("missing kernel")
	}
	if err := checkMemory(c.Memory); err != nil {
		return bad("%v", err)
	}
	if c.MaxMemory != 0 {
		if err := checkMaxMemory(c.MaxMemory, c.Memory); err != nil {
			return bad("max_memory: %v", err)
		}
	}
	if c.VCPUs < 1 || c.VCPUs > MaxVCPUs {
		return bad("vcpus = %d, want 1..%d", c.VCPUs, MaxVCPUs)
	}
	if c.Memory < KernelBase+uint64(c.VCPUs)*StackSize+PageSize {
		return bad("memory %s is too small for %d vCPUs", formatSize(c.Memory), c.VCPUs)
	}
	if _, err := encodeParams(c.Params); err != nil {
		return bad("%v", err)
	}
	if !c.OnExit.valid() || !c.OnCrash.valid() {
		return bad("on_exit = %q, on_crash = %q: want destroy, restart or preserve", c.OnExit, c.OnCrash)
	}
	if c.RestartLimit < 1 {
		return bad("restart limit %d, want at least 1", c.RestartLimit)
	}
	if c.RestartBackoff <= 0 {
		return bad("restart back-off %v, want a positive duration", c.RestartBackoff)
	}
	if c.Gnttab.MaxFrames > MaxGrantFrames {
		return bad("gnttab max_frames = %d, want 1..%d", c.Gnttab.MaxFrames, MaxGrantFrames)
	}
	if c.Gnttab.MaxMaptrackFrames > 1<<16 {
		return bad("gnttab max_maptrack_frames = %d, want 1..65536", c.Gnttab.MaxMaptrackFrames)
	}
	if w := c.Gnttab.windowVMAs(); w < MinWindowVMAs || w > MaxWindowVMAs {
		return bad("gnttab max_window_vmas = %d, want %d..%d", w, MinWindowVMAs, MaxWindowVMAs)
	}
	if err := checkCPUs(c.CPUs); err != nil {
		return bad("%v", err)
	}
	if c.Stream.Path != "" {
		if c.Argo.Disabled {
			return bad("a stream socket needs Argo (argo.enabled = false)")
		}
		if err := c.Stream.WithDefaults().Validate(); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// tomlTypeError matches BurntSushi/toml's type mismatch message.
var tomlTypeError = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): incompatible types: TOML value has type ([^;]+); destination has type (.+)$`)

// keyExamples show a valid value for each key, for error hints.
var keyExamples = map[string]string{
	"name": `name = "ping"`, "kernel": `kernel = "../build/guests/hello.elf"`, "memory": `memory = "16M"`,
	"vcpus": "vcpus = 2", "enabled": "enabled = true", "wildcard": "wildcard = false",
	"send_to": `send_to = ["pong"]`, "map_from": `map_from = ["owner"]`, "max_frames": "max_frames = 64",
	"max_maptrack_frames": "max_maptrack_frames = 1024", "on_exit": `on_exit = "restart"`,
	"on_crash": `on_crash = "preserve"`, "restart_limit": "restart_limit = 5",
	"restart_backoff": `restart_backoff = "2s"`, "console_log": `console_log = "ping.log"`,
	"params": `[domain.params] with key = "value" lines`, "cpus": "cpus = [0, 1]", "argo": "[domain.argo]", "gnttab": "[domain.gnttab]",
	"stream": "[domain.stream]", "socket": `socket = "/tmp/echo.sock"`, "max_connections": "max_connections = 64",
	"ring": `ring = "256K"`, "handshake_timeout": `handshake_timeout = "5s"`,
}

// explainTOML turns the TOML decoder's type errors, which name Go types,
// into a hint about what the key wants.
func explainTOML(err error) string {
	m := tomlTypeError.FindStringSubmatch(err.Error())
	if m == nil {
		return err.Error()
	}
	line, key, got, want := m[1], m[2], tomlTypeName(m[3]), tomlTypeName(m[4])
	if key == "domain" && got == "a table" {
		return fmt.Sprintf("line %s: [domain] is a single table; write [[domain]] (double brackets: one table per domain)", line)
	}
	msg := fmt.Sprintf("line %s: %s must be %s, not %s", line, key, want, got)
	parts := strings.Split(key, ".")
	if ex, ok := keyExamples[parts[len(parts)-1]]; ok {
		msg += " (e.g. " + ex + ")"
	}
	return msg
}

// tomlTypeName describes a type named in a decoder message in TOML terms.
func tomlTypeName(t string) string {
	switch {
	case strings.HasPrefix(t, "map"), t == "struct":
		return "a table"
	case strings.HasPrefix(t, "[]"), t == "slice", t == "array":
		return "an array"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), t == "integer":
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number with a fraction"
	case t == "bool", t == "boolean":
		return "a boolean"
	case strings.Contains(t, "time"):
		return "a date or time"
	}
	return t
}

func formatSize(n uint64) string {
	switch {
	case n%(1<<40) == 0 && n > 0:
		return fmt.Sprintf("%dT", n>>40)
	case n%(1<<30) == 0 && n > 0:
		return fmt.Sprintf("%dG", n>>30)
	case n%(1<<20) == 0 && n > 0:
		return fmt.Sprintf("%dM", n>>20)
	case n%(1<<10) == 0 && n > 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%d", n)
}
