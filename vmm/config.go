package vmm

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrBadConfig marks every configuration error.
var ErrBadConfig = errors.New("invalid configuration")

// Config is a parsed configuration file: the domains to run, in order.
type Config struct {
	Path    string
	Domains []DomainConfig
}

// Default values for optional domain keys.
const (
	DefaultVCPUs = 1
)

type fileDomain struct {
	Name   string         `toml:"name"`
	Label  string         `toml:"label"`
	Kernel string         `toml:"kernel"`
	Memory any            `toml:"memory"`
	VCPUs  *int64         `toml:"vcpus"`
	Params map[string]any `toml:"params"`
	Argo   fileArgo       `toml:"argo"`
	Gnttab fileGnttab     `toml:"gnttab"`
	// Memory reservation (docs/grant-tables.md, "Memory reservation").
	MaxMemory    any  `toml:"max_memory"`
	ReportMemory bool `toml:"report_memory"`
}

type fileGnttab struct {
	MaxFrames         *int64   `toml:"max_frames"`
	MaxMaptrackFrames *int64   `toml:"max_maptrack_frames"`
	MaxWindowVMAs     *int64   `toml:"max_window_vmas"`
	MapFrom           []string `toml:"map_from"`
}

type fileArgo struct {
	Enabled  *bool    `toml:"enabled"`
	Wildcard bool     `toml:"wildcard"`
	SendTo   []string `toml:"send_to"`
}

type fileConfig struct {
	Domain []fileDomain `toml:"domain"`
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
		return nil, bad("%v", err)
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
	seen := map[string]bool{}
	for i, fd := range fc.Domain {
		where := fmt.Sprintf("domain %d", i+1)
		if fd.Name != "" {
			where = fmt.Sprintf("domain %q", fd.Name)
		}
		switch {
		case fd.Name == "":
			return nil, bad("%s: missing name", where)
		case strings.ContainsAny(fd.Name, " \t\n[]\"'/"):
			return nil, bad("%s: name may not contain spaces, quotes, brackets or slashes", where)
		case seen[fd.Name]:
			return nil, bad("%s: duplicate domain name", where)
		}
		seen[fd.Name] = true
		if err := checkLabel(fd.Label); err != nil {
			return nil, bad("%s: %v", where, err)
		}
		if fd.Kernel == "" {
			return nil, bad("%s: missing kernel", where)
		}
		kernel := fd.Kernel
		if !filepath.IsAbs(kernel) {
			kernel = filepath.Join(dir, kernel)
		}
		if st, err := os.Stat(kernel); err != nil {
			return nil, bad("%s: kernel %s: %v", where, kernel, errors.Unwrap(err))
		} else if !st.Mode().IsRegular() {
			return nil, bad("%s: kernel %s is not a regular file", where, kernel)
		}
		if fd.Memory == nil {
			return nil, bad("%s: missing memory (e.g. memory = \"16M\")", where)
		}
		mem, err := parseMemory(fd.Memory)
		if err != nil {
			return nil, bad("%s: memory: %v", where, err)
		}
		if mem == 0 {
			return nil, bad("%s: memory is zero", where)
		}
		if mem < MinMemory || mem > MaxMemory || mem%PageSize != 0 {
			return nil, bad("%s: memory %s must be a multiple of 4K between 2M and 3G", where, formatSize(mem))
		}
		vcpus := int64(DefaultVCPUs)
		if fd.VCPUs != nil {
			vcpus = *fd.VCPUs
		}
		if vcpus < 1 || vcpus > MaxVCPUs {
			return nil, bad("%s: vcpus = %d, want 1..%d", where, vcpus, MaxVCPUs)
		}
		if mem < KernelBase+uint64(vcpus)*StackSize+PageSize {
			return nil, bad("%s: memory %s is too small for %d vCPUs", where, formatSize(mem), vcpus)
		}
		params := map[string]string{}
		for k, v := range fd.Params {
			switch v := v.(type) {
			case string:
				params[k] = v
			case int64, bool, float64:
				params[k] = fmt.Sprint(v)
			default:
				return nil, bad("%s: param %q must be a string, number or boolean", where, k)
			}
		}
		if _, err := encodeParams(params); err != nil {
			return nil, bad("%s: %v", where, err)
		}
		pol := ArgoPolicy{Disabled: fd.Argo.Enabled != nil && !*fd.Argo.Enabled, Wildcard: fd.Argo.Wildcard}
		var gt GnttabConfig
		if v := fd.Gnttab.MaxFrames; v != nil {
			if *v < 1 || *v > MaxGrantFrames {
				return nil, bad("%s: gnttab.max_frames = %d, want 1..%d", where, *v, MaxGrantFrames)
			}
			gt.MaxFrames = uint32(*v)
		}
		if v := fd.Gnttab.MaxMaptrackFrames; v != nil {
			if *v < 1 || *v > 1<<16 {
				return nil, bad("%s: gnttab.max_maptrack_frames = %d, want 1..65536", where, *v)
			}
			gt.MaxMaptrackFrames = uint32(*v)
		}
		if v := fd.Gnttab.MaxWindowVMAs; v != nil {
			if *v < MinWindowVMAs || *v > MaxWindowVMAs {
				return nil, bad("%s: gnttab.max_window_vmas = %d, want %d..%d", where, *v, MinWindowVMAs, MaxWindowVMAs)
			}
			gt.MaxWindowVMAs = uint32(*v)
		}
		maxMem, err := parseMaxMemory(fd.MaxMemory, mem)
		if err != nil {
			return nil, bad("%s: max_memory: %v", where, err)
		}
		cfg.Domains = append(cfg.Domains, DomainConfig{Name: fd.Name, Label: fd.Label, Kernel: kernel, Memory: mem, VCPUs: int(vcpus), Params: params, Argo: pol, Gnttab: gt,
			MaxMemory: maxMem, ReportMemory: fd.ReportMemory})
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
	if m < MinMemory || m > MaxMemory || m%PageSize != 0 {
		return 0, fmt.Errorf("%s must be a multiple of 4K between 2M and 3G", formatSize(m))
	}
	if m < mem {
		return 0, fmt.Errorf("%s is less than memory (%s)", formatSize(m), formatSize(mem))
	}
	return m, nil
}

// parseMemory accepts an integer number of bytes or a string with an
// optional binary suffix: "16M", "16MiB", "1G", "512K", "4096".
func parseMemory(v any) (uint64, error) {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return 0, fmt.Errorf("negative size %d", v)
		}
		return uint64(v), nil
	case string:
		s := strings.TrimSpace(v)
		num := strings.TrimRight(s, "KMGiBkmgib")
		suffix := strings.ToUpper(strings.TrimSpace(s[len(num):]))
		var mul uint64
		switch suffix {
		case "", "B":
			mul = 1
		case "K", "KB", "KIB":
			mul = 1 << 10
		case "M", "MB", "MIB":
			mul = 1 << 20
		case "G", "GB", "GIB":
			mul = 1 << 30
		default:
			return 0, fmt.Errorf("unknown suffix %q in %q (use K, M or G)", suffix, v)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a size (e.g. \"16M\")", v)
		}
		if n > math.MaxUint64/mul {
			return 0, fmt.Errorf("%q is too large", v)
		}
		return n * mul, nil
	}
	return 0, fmt.Errorf("want a string like \"16M\" or an integer, got %T", v)
}

func formatSize(n uint64) string {
	switch {
	case n%(1<<30) == 0 && n > 0:
		return fmt.Sprintf("%dG", n>>30)
	case n%(1<<20) == 0 && n > 0:
		return fmt.Sprintf("%dM", n>>20)
	case n%(1<<10) == 0 && n > 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%d", n)
}
