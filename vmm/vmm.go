package vmm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/hostsock"
	"github.com/argovisor/argovisor/kvm"
	"github.com/argovisor/argovisor/memop"
	"golang.org/x/sys/unix"
)

// Options configure a VMM.
type Options struct {
	// KVMPath is the KVM device; default /dev/kvm.
	KVMPath string
	// Console receives every console line of every domain. Default: write
	// "[name] line" to standard output.
	Console func(d *Domain, line string)
	// TraceHypercalls, if set, receives one line per hypercall: domain,
	// vCPU, name with sub-operation, arguments, result (errno names for
	// errors) and the time the handler took.
	TraceHypercalls io.Writer
	// TraceDomains, if non-empty, limits the trace to the domains named.
	TraceDomains []string
	// Logger receives the VMM's messages (domain started, ended, crashed,
	// restarted, removed). Default: none.
	Logger *slog.Logger
	// Budget divides the process's limits among the domains
	// (docs/limits.md). Default: a new one over ReadHostLimits. VMMs
	// sharing a process should share one.
	Budget *Budget
	// WaitPoll is the longest a vCPU polls for its answer before it
	// sleeps in an Argo wait (block.go: adaptive, like KVM's halt
	// polling). 0 means DefaultWaitPoll; a negative value never polls.
	WaitPoll time.Duration
	// Doorbell says whether guests are told to prefer the doorbell page
	// to the hypercall port (CPUID leaf 0x40000002). Default: auto.
	Doorbell DoorbellPolicy
}

// waitPoll is the polling limit of the vCPUs' waits.
func (v *VMM) waitPoll() time.Duration {
	switch p := v.opts.WaitPoll; {
	case p == 0:
		return DefaultWaitPoll
	case p < 0:
		return 0
	default:
		return p
	}
}

// waitPoll is the polling limit of this domain's vCPUs: none where they
// can run on one CPU only, since a poll there holds the CPU the answer
// needs.
func (d *Domain) waitPoll() time.Duration {
	if len(d.cfg.CPUs) == 1 {
		return 0
	}
	var set unix.CPUSet
	if len(d.cfg.CPUs) == 0 && (unix.SchedGetaffinity(0, &set) != nil || set.Count() < 2) {
		return 0
	}
	return d.vmm.waitPoll()
}

// VMM runs many domains in one process.
type VMM struct {
	sys    *kvm.System
	opts   Options
	log    *slog.Logger
	argo   *argo.Argo
	gnttab *gnttab.GrantTables
	memop  *memop.Memop
	budget *Budget

	// hypercalls is filled by New and SetHypercall before any domain
	// starts, and read without locks by vCPU goroutines afterwards.
	hypercalls [maxHypercall]HypercallHandler

	// preferDoorbell is opts.Doorbell resolved for this host, fixed by
	// New: the DoorbellPreferred flag every domain's CPUID carries.
	preferDoorbell bool

	// mu guards domains, byID, nextID, spareIDs, creating, onStop and
	// statm. It is taken for reading on every VIRQ and grant-window
	// lookup by id. Lock order: before Domain.resultMu.
	mu      sync.RWMutex
	domains []*Domain
	byID    map[uint16]*Domain
	// Domain ids are unique for the VMM's life: an id a domain had is
	// never given again. nextID is the next id never given out; spareIDs
	// (sorted) holds ids taken by creates that failed before anything
	// outside CreateDomain saw them, and the next create takes the
	// lowest, so a failed create uses up no id (giveBackID).
	nextID   uint16
	spareIDs []uint16
	creating []string // names of domains being built
	onStop   []func(*Domain)
	statm    *os.File // /proc/self/statm, opened for the first report_memory domain

	// outMu serialises console and trace output. Leaf lock.
	outMu sync.Mutex

	// streamMu guards bridge and keepSocketFiles. Lock order: before the
	// bridge's locks.
	streamMu sync.Mutex
	// bridge is the host's stream endpoint, made for the first domain
	// with a stream socket (it owns Argo's host endpoint).
	bridge *hostsock.Bridge
	// keepSocketFiles: stream sockets made from now on stay as files at
	// close (KeepSocketFiles).
	keepSocketFiles bool

	// restartHook, set only by tests before any domain starts, runs in a
	// restart once the new instance has replaced the old one, before it
	// is registered with Argo and the grant tables and its vCPUs start:
	// the window in which the domain must still be listed as restarting.
	restartHook func(*Domain)
}

// New opens the KVM device and checks its capabilities. Errors wrap
// kvm.ErrNoDevice, kvm.ErrPermission, kvm.ErrMissingExtension, ….
func New(opts Options) (*VMM, error) {
	if opts.KVMPath == "" {
		opts.KVMPath = "/dev/kvm"
	}
	sys, err := kvm.OpenSystem(opts.KVMPath)
	if err != nil {
		return nil, err
	}
	budget := opts.Budget
	if budget == nil {
		h, err := ReadHostLimits(HostSources{})
		if err != nil {
			sys.Close()
			return nil, err
		}
		budget = NewBudget(h)
	}
	v := &VMM{sys: sys, opts: opts, log: opts.Logger, budget: budget, nextID: 1, byID: map[uint16]*Domain{},
		preferDoorbell: doorbellPreferred(opts.Doorbell, hostIsPVM())}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.argo = argo.New(v.argoSignal)
	v.gnttab = gnttab.New(grantWindows{v}, v.gnttabSignal)
	v.memop = memop.New(ramBacking{v.domainRAM}, v.framesInUse)
	v.gnttab.SetFrames(gnttabFrames{v})
	v.hypercalls[HypercallNull] = nullHypercall
	v.hypercalls[HypercallMemoryOp] = v.memopHypercall
	v.hypercalls[HypercallArgoOp] = v.argoHypercall
	v.hypercalls[HypercallGrantTableOp] = v.gnttabHypercall
	return v, nil
}

// Budget is the resource budget the VMM's domains are reserved from.
func (v *VMM) Budget() *Budget { return v.budget }

// SetHypercall installs the handler for hypercall nr. It must be called
// before any domain is started.
func (v *VMM) SetHypercall(nr uint32, h HypercallHandler) error {
	if nr >= maxHypercall {
		return fmt.Errorf("hypercall %d out of range (max %d)", nr, maxHypercall-1)
	}
	v.hypercalls[nr] = h
	return nil
}

// OnDomainStopped registers f to run (on a VMM goroutine) each time a
// domain's vCPUs have all stopped, before Wait returns for it — once per
// instance for a domain that is restarted.
func (v *VMM) OnDomainStopped(f func(*Domain)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.onStop = append(v.onStop, f)
}

// CreateDomain applies cfg's defaults, validates it, builds the domain and
// gives it the next domain id. It does not start it. Errors wrapping
// ErrBadConfig mean cfg is invalid, ErrBadKernel that the kernel is
// unusable.
//
// Ids start at 1 and are never reused, not even after RemoveDomain: each
// created domain gets an id no domain of this VMM had before. A create
// that fails uses none up: its id goes to the next create. (Only if Argo,
// the grant tables or the memory reservation refused to register the
// id — a VMM bug, since the id is new — could a guest have seen it
// registered, and then it is never given again.) When creates do not
// overlap, as through the CLI and the control API, which create one at a
// time, the domains get 1, 2, 3, … in creation order.
func (v *VMM) CreateDomain(cfg DomainConfig) (*Domain, error) {
	cfg = cfg.WithDefaults()
	cfg.CPUs = slices.Clone(cfg.CPUs) // the caller's slice may change later
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v.mu.Lock()
	for _, d := range v.domains {
		if d.cfg.Name == cfg.Name {
			v.mu.Unlock()
			return nil, fmt.Errorf("%w: %w: %q", ErrBadConfig, ErrNameInUse, cfg.Name)
		}
	}
	if slices.Contains(v.creating, cfg.Name) {
		v.mu.Unlock()
		return nil, fmt.Errorf("%w: %w: %q", ErrBadConfig, ErrNameInUse, cfg.Name)
	}
	id, err := v.takeIDLocked()
	if err != nil {
		v.mu.Unlock()
		return nil, fmt.Errorf("create domain %q: %w", cfg.Name, err)
	}
	// Reserve the name while the VM is built.
	v.creating = append(v.creating, cfg.Name)
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.creating = slices.DeleteFunc(v.creating, func(n string) bool { return n == cfg.Name })
		v.mu.Unlock()
	}()

	if cfg.ReportMemory {
		if err := v.openStatm(); err != nil {
			v.giveBackID(id)
			return nil, err
		}
	}
	d, err := v.newDomain(id, cfg)
	if err != nil {
		// Nothing but this call knew the id.
		v.giveBackID(id)
		return nil, err
	}
	if err := v.addInstance(d, d.instance); err != nil {
		// Not given back: whatever registered the id before the
		// failure made it visible to guests for a moment.
		d.release()
		return nil, err
	}
	v.mu.Lock()
	v.domains = append(v.domains, d)
	v.byID[d.id] = d
	v.mu.Unlock()
	v.log.Debug("domain created", "domain", cfg.Name, "id", id)
	return d, nil
}

// ErrOutOfIDs is returned by CreateDomain when every domain id below
// Xen's first reserved one (DOMID_FIRST_RESERVED, 0x7FF0) has been given.
var ErrOutOfIDs = errors.New("out of domain ids")

// firstReservedID is Xen's DOMID_FIRST_RESERVED: ids from here up name
// no domain (DOMID_SELF is 0x7FF0).
const firstReservedID = 0x7FF0

// takeIDLocked gives out the lowest spare id, else the next new one.
// Preconditions: v.mu held.
func (v *VMM) takeIDLocked() (uint16, error) {
	if len(v.spareIDs) > 0 {
		id := v.spareIDs[0]
		v.spareIDs = v.spareIDs[1:]
		return id, nil
	}
	if v.nextID >= firstReservedID {
		return 0, ErrOutOfIDs
	}
	id := v.nextID
	v.nextID++
	return id, nil
}

// giveBackID returns an id taken by a create that failed before anything
// outside CreateDomain saw it, so the next create gets it. The last id
// given out goes back into nextID (and any spare ones just below it with
// it), so that without overlapping creates spareIDs stays empty.
func (v *VMM) giveBackID(id uint16) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if id != v.nextID-1 {
		i, _ := slices.BinarySearch(v.spareIDs, id)
		v.spareIDs = slices.Insert(v.spareIDs, i, id)
		return
	}
	v.nextID--
	for n := len(v.spareIDs); n > 0 && v.spareIDs[n-1] == v.nextID-1; n-- {
		v.spareIDs = v.spareIDs[:n-1]
		v.nextID--
	}
}

// RemoveDomain destroys domain id now: it stops it if it is still running
// (no restart follows), waits for its vCPUs, tears down its Argo and
// grant-table state as on any death, frees its VM, memory and file
// descriptors, and forgets it, so that its name can be used again. Its id
// is not reused.
func (v *VMM) RemoveDomain(id uint16) error {
	d := v.Domain(id)
	if d == nil {
		return fmt.Errorf("remove domain %d: %w", id, ErrNoDomain)
	}
	if d.markRemoved() {
		d.Stop("destroyed")
		<-d.done
	}
	v.mu.Lock()
	if v.byID[id] != d {
		v.mu.Unlock()
		return fmt.Errorf("remove domain %d: %w", id, ErrNoDomain)
	}
	v.domains = slices.DeleteFunc(v.domains, func(o *Domain) bool { return o == d })
	delete(v.byID, id)
	v.mu.Unlock()
	err := d.release()
	v.log.Info("domain removed", "domain", d.cfg.Name, "id", id)
	if err != nil {
		return fmt.Errorf("remove domain %q: %w", d.cfg.Name, err)
	}
	return nil
}

// ErrNoDomain is returned for a domain id or name that does not exist.
var ErrNoDomain = errors.New("no such domain")

// ErrNameInUse is returned by CreateDomain for a name another domain has
// (it also wraps ErrBadConfig).
var ErrNameInUse = errors.New("domain name already in use")

// DomainByName finds a domain by name.
func (v *VMM) DomainByName(name string) *Domain {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, d := range v.domains {
		if d.cfg.Name == name {
			return d
		}
	}
	return nil
}

// Domains lists the domains in creation order.
func (v *VMM) Domains() []*Domain {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return append([]*Domain(nil), v.domains...)
}

// Domain finds a domain by id.
func (v *VMM) Domain(id uint16) *Domain {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.byID[id]
}

// domainStopped runs on the supervisor each time an instance of d has
// stopped: r is how it ended.
func (v *VMM) domainStopped(d *Domain, r Result) {
	// Its rings, its requests and other domains' rings partnered with it
	// go now, while the others keep running; so do its mappings of others'
	// pages and others' mappings of its pages (revoked, mappers told).
	v.argo.Teardown(argo.DomainID(d.id))
	v.gnttab.DomainDied(gnttab.DomainID(d.id))
	v.memop.DomainDied(memop.DomainID(d.id))
	if d.stream != nil {
		// Its connections close: the host side sees them end.
		d.stream.Down()
	}
	// Reported when it happens, not when the last domain ends.
	attrs := []any{"domain", d.cfg.Name, "id", d.id, "result", r.String()}
	switch {
	case r.Kind == Crashed:
		if r.Fault != nil && r.Fault.Symbol != "" {
			attrs = append(attrs, "symbol", r.Fault.Symbol)
		}
		v.log.Error("domain crashed", attrs...)
	case r.OK():
		v.log.Info("domain ended", attrs...)
	default:
		v.log.Warn("domain ended", attrs...)
	}
	v.mu.Lock()
	hooks := append(([]func(*Domain))(nil), v.onStop...)
	v.mu.Unlock()
	for _, f := range hooks {
		f(d)
	}
}

// Close stops every domain, waits for them and frees all resources.
func (v *VMM) Close() error {
	ds := v.Domains()
	started := make([]bool, len(ds))
	for i, d := range ds {
		if started[i] = d.markRemoved(); started[i] {
			d.Stop("VMM shutting down")
		}
	}
	// Every domain stops before any is released: a running domain's send
	// could otherwise signal one whose VM is already closed.
	for i, d := range ds {
		if started[i] {
			<-d.done
		}
	}
	var errs []error
	for _, d := range ds {
		if err := d.release(); err != nil {
			errs = append(errs, err)
		}
	}
	v.mu.Lock()
	v.domains = nil
	clear(v.byID)
	statm := v.statm
	v.statm = nil
	v.mu.Unlock()
	if statm != nil {
		statm.Close()
	}
	v.streamMu.Lock()
	if v.bridge != nil {
		v.bridge.Close()
		v.bridge = nil
	}
	v.streamMu.Unlock()
	if err := v.sys.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// console delivers one line; calls are serialised so lines never interleave.
func (v *VMM) console(d *Domain, line string) {
	v.outMu.Lock()
	defer v.outMu.Unlock()
	if d.consoleLog != nil {
		fmt.Fprintf(d.consoleLog, "[%s] %s\n", d.cfg.Name, line)
		return
	}
	if v.opts.Console != nil {
		v.opts.Console(d, line)
		return
	}
	fmt.Fprintf(os.Stdout, "[%s] %s\n", d.cfg.Name, line)
}

// traced reports whether d's hypercalls are traced.
func (v *VMM) traced(d *Domain) bool {
	return len(v.opts.TraceDomains) == 0 || slices.Contains(v.opts.TraceDomains, d.cfg.Name)
}

func (v *VMM) traceHypercall(w io.Writer, h *Hypercall, ret int64, took time.Duration) {
	v.outMu.Lock()
	defer v.outMu.Unlock()
	a := h.Args
	fmt.Fprintf(w, "[%s] vcpu%d %s(%#x, %#x, %#x, %#x, %#x) = %s %v\n",
		h.Domain.cfg.Name, h.Index, HypercallOpName(h.Nr, a[0]), a[0], a[1], a[2], a[3], a[4], FormatHypercallResult(ret), took)
}
