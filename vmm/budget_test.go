package vmm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/memop"
	"golang.org/x/sys/unix"
)

// fakeHost serves files and rlimits to ReadHostLimits.
type fakeHost struct {
	files   map[string]string
	rlimits map[int]uint64
	threads uint64
}

func (h fakeHost) sources() HostSources {
	return HostSources{
		ReadFile: func(name string) ([]byte, error) {
			if s, ok := h.files[name]; ok {
				return []byte(s), nil
			}
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		},
		Getrlimit: func(res int, r *unix.Rlimit) error {
			n, ok := h.rlimits[res]
			if !ok {
				return unix.EINVAL
			}
			r.Cur, r.Max = n, n
			return nil
		},
		GoMaxThreads: func() uint64 { return h.threads },
	}
}

func typicalHost() fakeHost {
	return fakeHost{
		files: map[string]string{
			"/proc/sys/vm/max_map_count":                     "65530\n",
			"/proc/sys/kernel/threads-max":                   "192724\n",
			"/proc/meminfo":                                  "MemFree:  100 kB\nMemTotal:       8388608 kB\nSwapTotal: 0 kB\n",
			"/proc/self/cgroup":                              "0::/user.slice/app.scope\n",
			"/sys/fs/cgroup/user.slice/app.scope/memory.max": "max\n",
			"/sys/fs/cgroup/user.slice/memory.max":           "4294967296\n",
		},
		rlimits: map[int]uint64{unix.RLIMIT_NOFILE: 1024, unix.RLIMIT_NPROC: unix.RLIM_INFINITY},
		threads: 10000,
	}
}

func TestReadHostLimits(t *testing.T) {
	h, err := ReadHostLimits(typicalHost().sources())
	if err != nil {
		t.Fatal(err)
	}
	want := HostLimits{MaxMapCount: 65530, OpenFiles: 1024, Threads: 10000, Memory: 4 << 30}
	if h != want {
		t.Errorf("got %+v, want %+v (the cgroup's parent limits memory; RLIMIT_NPROC is unlimited)", h, want)
	}

	fh := typicalHost()
	fh.rlimits[unix.RLIMIT_NPROC] = 500
	delete(fh.files, "/proc/self/cgroup")
	if h, err = ReadHostLimits(fh.sources()); err != nil {
		t.Fatal(err)
	}
	if h.Threads != 500 || h.Memory != 8<<30 {
		t.Errorf("got %+v, want 500 threads (RLIMIT_NPROC) and MemTotal without a cgroup", h)
	}

	for _, tc := range []struct {
		name  string
		spoil func(*fakeHost)
		want  string
	}{
		{"no max_map_count", func(h *fakeHost) { delete(h.files, "/proc/sys/vm/max_map_count") }, "max_map_count"},
		{"garbage max_map_count", func(h *fakeHost) { h.files["/proc/sys/vm/max_map_count"] = "lots" }, "max_map_count"},
		{"no RLIMIT_NOFILE", func(h *fakeHost) { delete(h.rlimits, unix.RLIMIT_NOFILE) }, "RLIMIT_NOFILE"},
		{"no MemTotal", func(h *fakeHost) { h.files["/proc/meminfo"] = "MemFree: 1 kB\n" }, "MemTotal"},
	} {
		fh := typicalHost()
		tc.spoil(&fh)
		if _, err := ReadHostLimits(fh.sources()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.want)
		}
	}
}

// The real host's limits can be read and leave room for domains.
func TestReadHostLimitsHere(t *testing.T) {
	h, err := ReadHostLimits(HostSources{})
	if err != nil {
		t.Fatal(err)
	}
	if h.MaxMapCount == 0 || h.OpenFiles == 0 || h.Threads == 0 || h.Memory == 0 {
		t.Errorf("host limits %+v: each should be known on Linux", h)
	}
	t.Logf("host limits: %+v", h)
}

func defaultDomain(name string) DomainConfig {
	return DomainConfig{Name: name, Memory: 16 << 20, VCPUs: 1}
}

func TestBudgetReserves(t *testing.T) {
	b := NewBudget(HostLimits{MaxMapCount: 65530, OpenFiles: 1024, Threads: 10000, Memory: 8 << 30})
	lines := b.Lines()
	for i, want := range []struct{ limit, reserved uint64 }{
		{65530, 4095},      // 1/16
		{1024, 64},         // the floor
		{10000, 625},       // 1/16
		{8 << 30, 1 << 30}, // 1/8
	} {
		l := lines[i]
		if l.Limit != want.limit || l.Reserved != want.reserved || l.Available != want.limit-want.reserved || l.Used != 0 {
			t.Errorf("%s: %+v, want limit %d reserved %d", l.What, l, want.limit, want.reserved)
		}
	}
	// An unlimited resource is never the reason for a refusal; a limit
	// below the reserve leaves nothing for domains.
	b = NewBudget(HostLimits{MaxMapCount: 65530, OpenFiles: 100, Memory: 0, Threads: 0})
	if l := b.Lines(); l[resMemory].Reserved != 0 || l[resFiles].Available != 36 {
		t.Errorf("lines %+v", l)
	}
	b = NewBudget(HostLimits{MaxMapCount: 1000, OpenFiles: 1024, Threads: 10000, Memory: 8 << 30})
	err := b.take("d", domainUsage(defaultDomain("d")), DefaultWindowVMAs)
	if !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), "only 0 of 0 are left") {
		t.Errorf("max_map_count below the reserve: %v", err)
	}
}

// How many default domains fit under the kernel's default
// vm.max_map_count, as docs/limits.md says; one more is refused with a
// config error naming the limit and the key to change, and releasing one
// makes room for exactly one again.
func TestBudgetDefaultDomainsFit(t *testing.T) {
	b := NewBudget(HostLimits{MaxMapCount: 65530, OpenFiles: 4096, Threads: 10000, Memory: 64 << 30})
	u := domainUsage(defaultDomain("d"))
	if u[resMaps] != 841 || u[resFiles] != 5 || u[resThreads] != 2 {
		t.Errorf("default domain usage %v, want 841 mappings, 5 fds, 2 threads", u)
	}
	n := 0
	for ; n < 1000; n++ {
		if err := b.take("d", u, DefaultWindowVMAs); err != nil {
			msg := err.Error()
			if !errors.Is(err, ErrBadConfig) || !errors.Is(err, ErrOverBudget) ||
				!strings.Contains(msg, "max_window_vmas") || !strings.Contains(msg, "vm.max_map_count 65530") ||
				!strings.Contains(msg, "768 of them for its grant window") {
				t.Errorf("refusal: %v", err)
			}
			break
		}
	}
	if n != 73 {
		t.Errorf("%d default domains fit, want 73 (docs/limits.md)", n)
	}
	b.give(u)
	if err := b.take("again", u, DefaultWindowVMAs); err != nil {
		t.Errorf("after one domain went: %v", err)
	}
	if err := b.take("more", u, DefaultWindowVMAs); err == nil {
		t.Error("a second domain fit in the room one left")
	}
	if got := b.Lines()[resMaps].Used; got != 73*841 {
		t.Errorf("used %d mappings, want %d", got, 73*841)
	}
}

// Each resource refuses with its own explanation.
func TestBudgetEachResource(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    HostLimits
		cfg  DomainConfig
		want string
	}{
		{"files", HostLimits{OpenFiles: 64 + 10}, DomainConfig{Name: "x", Memory: 16 << 20, VCPUs: 8}, "12 file descriptors"},
		{"threads", HostLimits{Threads: 64 + 8}, DomainConfig{Name: "x", Memory: 16 << 20, VCPUs: 8}, "9 threads"},
		{"memory", HostLimits{Memory: 1 << 30}, DomainConfig{Name: "x", Memory: 1 << 30, VCPUs: 1}, "bytes of memory"},
		{"window", HostLimits{MaxMapCount: 2048 + 1000}, DomainConfig{Name: "x", Memory: 16 << 20, VCPUs: 1,
			Gnttab: GnttabConfig{MaxWindowVMAs: 1000}}, "1073 memory mappings (1000 of them for its grant window)"},
	} {
		b := NewBudget(tc.h)
		err := b.take(tc.cfg.Name, domainUsage(tc.cfg), tc.cfg.Gnttab.windowVMAs())
		if !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal mentioning %q", tc.name, err, tc.want)
		}
	}
	// Argo's bookkeeping counts only for domains that use it.
	on, off := defaultDomain("on"), defaultDomain("off")
	off.Argo.Disabled = true
	if d := domainUsage(on)[resMemory] - domainUsage(off)[resMemory]; d != argoHeapPerDomain {
		t.Errorf("Argo adds %d bytes, want %d", d, argoHeapPerDomain)
	}
}

// newDomain reserves a domain's budget before it makes anything, refuses
// one that does not fit before any kernel object exists, and gives the
// reservation back when building the domain fails later (here: a kernel
// file that is not ELF, which shows before KVM is needed).
func TestNewDomainReservesAndReleases(t *testing.T) {
	// 900 mappings for domains: one default domain (841) fits.
	v := &VMM{budget: NewBudget(HostLimits{MaxMapCount: 2048 + 900, OpenFiles: 4096, Threads: 10000, Memory: 64 << 30}),
		byID: map[uint16]*Domain{}}
	v.argo = argo.New(nil)
	v.gnttab = gnttab.New(grantWindows{v}, nil)
	v.memop = memop.New(ramBacking{v.domainRAM}, v.framesInUse)
	kernel := filepath.Join(t.TempDir(), "k.elf")
	if err := os.WriteFile(kernel, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	fds0 := fds()
	cfg := DomainConfig{Name: "d", Kernel: kernel, Memory: 16 << 20, VCPUs: 1}
	if _, err := v.newDomain(1, cfg); !errors.Is(err, ErrBadKernel) {
		t.Fatalf("newDomain with a bad kernel: %v", err)
	}
	for _, l := range v.budget.Lines() {
		if l.Used != 0 {
			t.Errorf("%s: %d still reserved after the failed domain", l.What, l.Used)
		}
	}
	cfg.Gnttab.MaxWindowVMAs = 1000
	if _, err := v.newDomain(2, cfg); !errors.Is(err, ErrOverBudget) || !errors.Is(err, ErrBadConfig) {
		t.Fatalf("newDomain over the budget: %v", err)
	}
	if n := fds(); n != fds0 {
		t.Errorf("open descriptors went from %d to %d", fds0, n)
	}
}
