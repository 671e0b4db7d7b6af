package vmm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/memop"
	"golang.org/x/sys/unix"
)

// Resource budgets (docs/limits.md). Everything a domain costs the VMM
// process in kernel objects — memory mappings, file descriptors, threads,
// memory — is reserved from one Budget when the domain is created and
// given back when it is released, so that no number of domains, and
// nothing a guest does, can push the process past a host limit. The grant
// window, the one such cost a guest drives at run time, gets a fixed share
// of mappings that its own accounting enforces (grantWindow).

// ErrOverBudget marks a CreateDomain refused because what is left of a
// process limit cannot hold the new domain. It comes wrapped together
// with ErrBadConfig: the fix is in the configuration.
var ErrOverBudget = errors.New("over the VMM's resource budget")

// HostLimits are the process limits a Budget divides among domains. Zero
// means unlimited (or unknown).
type HostLimits struct {
	// MaxMapCount is vm.max_map_count: how many memory mappings (VMAs) the
	// process may have. Past it mmap fails, and so does the Go runtime's
	// next heap growth, fatally.
	MaxMapCount uint64
	// OpenFiles is the soft RLIMIT_NOFILE.
	OpenFiles uint64
	// Threads is the least of the Go runtime's thread limit (past which
	// the process dies), the soft RLIMIT_NPROC and kernel.threads-max.
	Threads uint64
	// Memory is the least of the host's MemTotal and the memory.max of the
	// process's cgroup and its ancestors (cgroup v2), in bytes.
	Memory uint64
}

// HostSources are where ReadHostLimits looks; nil fields take the real
// host's. Unit tests replace them.
type HostSources struct {
	ReadFile     func(name string) ([]byte, error)        // default os.ReadFile
	Getrlimit    func(resource int, r *unix.Rlimit) error // default unix.Getrlimit
	GoMaxThreads func() uint64                            // default: debug.SetMaxThreads's value
}

// ReadHostLimits reads the process limits from the host. vm.max_map_count,
// RLIMIT_NOFILE and MemTotal are required; the thread limits other than
// Go's and the cgroup's memory.max are used when they can be read.
func ReadHostLimits(src HostSources) (HostLimits, error) {
	if src.ReadFile == nil {
		src.ReadFile = os.ReadFile
	}
	if src.Getrlimit == nil {
		src.Getrlimit = unix.Getrlimit
	}
	if src.GoMaxThreads == nil {
		src.GoMaxThreads = goMaxThreads
	}
	var h HostLimits
	var err error
	if h.MaxMapCount, err = readUintFile(src.ReadFile, "/proc/sys/vm/max_map_count"); err != nil {
		return h, fmt.Errorf("read host limits: %w", err)
	}
	if h.OpenFiles, err = rlimit(src.Getrlimit, unix.RLIMIT_NOFILE); err != nil {
		return h, fmt.Errorf("read host limits: RLIMIT_NOFILE: %w", err)
	}
	h.Threads = src.GoMaxThreads()
	if n, err := rlimit(src.Getrlimit, unix.RLIMIT_NPROC); err == nil {
		h.Threads = minLimit(h.Threads, n)
	}
	if n, err := readUintFile(src.ReadFile, "/proc/sys/kernel/threads-max"); err == nil {
		h.Threads = minLimit(h.Threads, n)
	}
	if h.Memory, err = memTotal(src.ReadFile); err != nil {
		return h, fmt.Errorf("read host limits: %w", err)
	}
	h.Memory = minLimit(h.Memory, cgroupMemoryMax(src.ReadFile))
	return h, nil
}

// goMaxThreads reads the Go runtime's thread limit. The runtime has no
// getter: set a limit it cannot reach and put the old one back.
func goMaxThreads() uint64 {
	n := debug.SetMaxThreads(math.MaxInt32)
	debug.SetMaxThreads(n)
	return uint64(n)
}

func readUintFile(read func(string) ([]byte, error), name string) (uint64, error) {
	b, err := read(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// rlimit returns the soft limit of resource, 0 for unlimited.
func rlimit(get func(int, *unix.Rlimit) error, resource int) (uint64, error) {
	var r unix.Rlimit
	if err := get(resource, &r); err != nil {
		return 0, err
	}
	if r.Cur == unix.RLIM_INFINITY {
		return 0, nil
	}
	return r.Cur, nil
}

// memTotal is /proc/meminfo's MemTotal in bytes.
func memTotal(read func(string) ([]byte, error)) (uint64, error) {
	b, err := read("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil || n > math.MaxUint64>>10 {
				break
			}
			return n << 10, nil
		}
	}
	return 0, errors.New("/proc/meminfo: no MemTotal line in kB")
}

// cgroupMemoryMax is the least memory.max of the process's cgroup v2 and
// its ancestors, 0 if there is none (no cgroup v2, or "max" all the way).
func cgroupMemoryMax(read func(string) ([]byte, error)) uint64 {
	b, err := read("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	var dir string
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			dir = path.Clean("/" + p)
		}
	}
	if dir == "" {
		return 0
	}
	var least uint64
	for {
		if n, err := readUintFile(read, path.Join("/sys/fs/cgroup", dir, "memory.max")); err == nil {
			least = minLimit(least, n)
		}
		if dir == "/" {
			return least
		}
		dir = path.Dir(dir)
	}
}

// minLimit is the tighter of two limits, where 0 means none.
func minLimit(a, b uint64) uint64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// resource indexes the budgeted resources.
type resource int

const (
	resMaps resource = iota
	resFiles
	resThreads
	resMemory
	numResources
)

// resourceInfo names a resource and says how much of its limit the
// budget keeps back for the VMM itself and the Go runtime (heap arenas
// and their mappings, the threads of goroutines blocked in system calls,
// standard streams, config and kernel files, the heap behind Argo and the
// grant tables): the larger of a floor and a fraction of the limit.
var resourceInfo = [numResources]struct {
	what, source, hint string
	floor, divisor     uint64
}{
	resMaps: {"memory mappings", "vm.max_map_count",
		"lower [domain.gnttab] max_window_vmas or vcpus, run fewer domains, or raise vm.max_map_count", 2048, 16},
	resFiles: {"file descriptors", "RLIMIT_NOFILE",
		"lower vcpus, run fewer domains, or raise the open-files limit (ulimit -n)", 64, 16},
	resThreads: {"threads", "the thread limit",
		"lower vcpus or run fewer domains", 64, 16},
	resMemory: {"bytes of memory", "host memory",
		"lower memory or [domain.gnttab] max_window_vmas, disable Argo where unused, or run fewer domains", 256 << 20, 8},
}

// usage is an amount of each resource.
type usage [numResources]uint64

// What a domain costs besides its grant window (docs/limits.md).
const (
	// Memory mappings: guest RAM (the VMM's mapping and KVM's, balloon.go),
	// the grant-table frames, and up to three private memory slots KVM maps
	// into the process itself (TSS, identity page table, APIC access page
	// on Intel).
	mapsPerDomain = 6
	// mapsForHoles: each separate run of empty frames in the RAM region
	// splits KVM's mapping of it, into at most two more mappings, and memop
	// allows memop.DefaultMaxHoles of them.
	mapsForHoles = 2 * memop.DefaultMaxHoles
	// Per vCPU: its kvm_run mapping and, in a cgo build (-race), its
	// thread's stack and guard page.
	mapsPerVCPU = 3
	// Threads: one per vCPU, and one per VM for the kernel's KVM worker
	// (huge-page recovery), which runs as a thread of the VMM process.
	threadsPerDomain = 1
	// argoHeapPerDomain bounds the VMM heap behind one domain's Argo
	// rings: MaxRingsPerDomain rings of at most MaxRingPages page slices.
	argoHeapPerDomain = argo.MaxRingsPerDomain * argo.MaxRingPages * 24
)

// domainUsage is what a domain of this configuration reserves.
func domainUsage(cfg DomainConfig) usage {
	var u usage
	vcpus := uint64(cfg.VCPUs)
	win := uint64(cfg.Gnttab.windowVMAs())
	u[resMaps] = mapsPerDomain + mapsForHoles + mapsPerVCPU*vcpus + win
	u[resFiles] = cfg.Descriptors() + 1 // and the kernel file while the domain is built
	u[resThreads] = threadsPerDomain + vcpus
	// RAM up to its maximum reservation, the grant table, and the dead
	// pages the window may hold after a revocation (private pages the
	// guest can write; at most one per window VMA it is allowed).
	u[resMemory] = cfg.region() + uint64(cfg.Gnttab.maxFrames())*PageSize + win*PageSize
	if !cfg.Argo.Disabled {
		u[resMemory] += argoHeapPerDomain
	}
	if cfg.Stream.Path != "" {
		// Host rings and what each connection may hold beside them.
		u[resMemory] += cfg.Stream.WithDefaults().Memory()
	}
	return u
}

// Budget divides the process's limits among domains. One Budget belongs
// to a process: VMMs in the same process should share it
// (Options.Budget), or each believes it has the whole process.
type Budget struct {
	host HostLimits
	// avail is what domains may use of each resource: the limit less the
	// reserve; math.MaxUint64 for an unlimited resource.
	avail, reserve usage

	// mu guards used. Leaf lock.
	mu   sync.Mutex
	used usage
}

// NewBudget makes a budget over the given limits.
func NewBudget(h HostLimits) *Budget {
	b := &Budget{host: h}
	for r, limit := range b.limits() {
		info := resourceInfo[r]
		switch {
		case limit == 0:
			b.avail[r] = math.MaxUint64
		default:
			b.reserve[r] = min(limit, max(info.floor, limit/info.divisor))
			b.avail[r] = limit - b.reserve[r]
		}
	}
	return b
}

func (b *Budget) limits() usage {
	return usage{resMaps: b.host.MaxMapCount, resFiles: b.host.OpenFiles, resThreads: b.host.Threads, resMemory: b.host.Memory}
}

// Host returns the limits the budget was made from.
func (b *Budget) Host() HostLimits { return b.host }

// BudgetLine is one resource of a Budget, for reports.
type BudgetLine struct {
	What, Source string
	// Limit is the host's limit (0: unlimited); Reserved is kept for the
	// VMM itself; Available is what domains may use (Limit - Reserved);
	// Used is what the live domains have reserved.
	Limit, Reserved, Available, Used uint64
}

// Lines reports every resource: memory mappings, file descriptors,
// threads, memory.
func (b *Budget) Lines() []BudgetLine {
	b.mu.Lock()
	used := b.used
	b.mu.Unlock()
	out := make([]BudgetLine, numResources)
	for r, limit := range b.limits() {
		out[r] = BudgetLine{What: resourceInfo[r].what, Source: resourceInfo[r].source,
			Limit: limit, Reserved: b.reserve[r], Available: b.avail[r], Used: used[r]}
	}
	return out
}

// take reserves u for the domain named name, or fails naming the first
// resource that cannot hold it. The error wraps ErrBadConfig and
// ErrOverBudget.
func (b *Budget) take(name string, u usage, windowVMAs uint32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for r := range numResources {
		if u[r] <= b.avail[r]-b.used[r] {
			continue
		}
		info := resourceInfo[r]
		need := fmt.Sprintf("%d %s", u[r], info.what)
		if r == resMaps {
			need += fmt.Sprintf(" (%d of them for its grant window)", windowVMAs)
		}
		return fmt.Errorf("%w: domain %q: %w: it needs %s but only %d of %d are left (%s %d, %d kept for the VMM itself); %s",
			ErrBadConfig, name, ErrOverBudget, need, b.avail[r]-b.used[r], b.avail[r], info.source,
			b.limits()[r], b.reserve[r], info.hint)
	}
	for r := range numResources {
		b.used[r] += u[r]
	}
	return nil
}

// give returns what take reserved.
func (b *Budget) give(u usage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for r := range numResources {
		b.used[r] -= u[r]
	}
}
