package vmm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/kvm"
	"github.com/argovisor/argovisor/memop"
)

// Options configure a VMM.
type Options struct {
	// KVMPath is the KVM device; default /dev/kvm.
	KVMPath string
	// Console receives every console line of every domain. Default: write
	// "[name] line" to standard output.
	Console func(d *Domain, line string)
	// TraceHypercalls, if set, receives one line per hypercall.
	TraceHypercalls io.Writer
	// Budget divides the process's limits among the domains
	// (docs/limits.md). Default: a new one over ReadHostLimits. VMMs
	// sharing a process should share one.
	Budget *Budget
}

// VMM runs many domains in one process.
type VMM struct {
	sys    *kvm.System
	opts   Options
	argo   *argo.Argo
	gnttab *gnttab.GrantTables
	memop  *memop.Memop
	budget *Budget

	// hypercalls is filled by New and SetHypercall before any domain
	// starts, and read without locks by vCPU goroutines afterwards.
	hypercalls [maxHypercall]HypercallHandler

	// mu guards domains, byID, nextID, onStop and statm. It is taken for reading
	// on every VIRQ and grant-window lookup by id. Lock order: before
	// Domain.resultMu.
	mu      sync.RWMutex
	domains []*Domain
	byID    map[uint16]*Domain
	nextID  uint16
	onStop  []func(*Domain)
	statm   *os.File // /proc/self/statm, opened for the first report_memory domain

	// outMu serialises console and trace output. Leaf lock.
	outMu sync.Mutex
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
	v := &VMM{sys: sys, opts: opts, budget: budget, nextID: 1, byID: map[uint16]*Domain{}}
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
// domain's vCPUs have all stopped, before Wait returns for it.
func (v *VMM) OnDomainStopped(f func(*Domain)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.onStop = append(v.onStop, f)
}

// CreateDomain builds a domain and gives it the next domain id. It does not
// start it. Errors wrapping ErrBadKernel mean the kernel file is unusable.
func (v *VMM) CreateDomain(cfg DomainConfig) (*Domain, error) {
	v.mu.Lock()
	for _, d := range v.domains {
		if d.cfg.Name == cfg.Name {
			v.mu.Unlock()
			return nil, fmt.Errorf("domain name %q already in use", cfg.Name)
		}
	}
	if v.nextID >= 0x7FF0 {
		v.mu.Unlock()
		return nil, errors.New("out of domain ids")
	}
	id := v.nextID
	v.nextID++
	v.mu.Unlock()
	if cfg.ReportMemory {
		if err := v.openStatm(); err != nil {
			return nil, err
		}
	}

	d, err := v.newDomain(id, cfg)
	if err != nil {
		return nil, err
	}
	if d.p2m, err = v.memop.AddDomain(memop.DomainID(id), memop.Config{Pages: cfg.Memory / PageSize, MaxPages: cfg.region() / PageSize}); err != nil {
		d.release()
		return nil, err
	}
	d.phys = physMem{ram: d.ram, p2m: d.p2m}
	pol := cfg.Argo.argo()
	pol.Name, pol.Label = cfg.Name, cfg.Label
	if err := v.argo.AddDomain(argo.DomainID(id), d.phys, pol); err != nil {
		d.release()
		return nil, err
	}
	if err := v.gnttab.AddDomain(gnttab.DomainID(id), d.phys, d.gtab.Bytes(), GrantTableGPA, cfg.Gnttab.gnttab()); err != nil {
		d.release()
		return nil, err
	}
	v.mu.Lock()
	v.domains = append(v.domains, d)
	v.byID[d.id] = d
	v.mu.Unlock()
	return d, nil
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

func (v *VMM) domainStopped(d *Domain) {
	// Its rings, its requests and other domains' rings partnered with it
	// go now, while the others keep running; so do its mappings of others'
	// pages and others' mappings of its pages (revoked, mappers told).
	v.argo.Teardown(argo.DomainID(d.id))
	v.gnttab.DomainDied(gnttab.DomainID(d.id))
	v.memop.DomainDied(memop.DomainID(d.id))
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
	for _, d := range ds {
		if d.started.Load() {
			d.Stop("VMM shutting down")
		}
	}
	// Every domain stops before any is released: a running domain's send
	// could otherwise signal one whose VM is already closed.
	for _, d := range ds {
		if d.started.Load() {
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
	if err := v.sys.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// console delivers one line; calls are serialised so lines never interleave.
func (v *VMM) console(d *Domain, line string) {
	v.outMu.Lock()
	defer v.outMu.Unlock()
	if v.opts.Console != nil {
		v.opts.Console(d, line)
		return
	}
	fmt.Fprintf(os.Stdout, "[%s] %s\n", d.cfg.Name, line)
}

func (v *VMM) traceHypercall(w io.Writer, h *Hypercall, ret int64) {
	v.outMu.Lock()
	defer v.outMu.Unlock()
	a := h.Args
	fmt.Fprintf(w, "[%s] vcpu%d %s(%#x, %#x, %#x, %#x, %#x) = %d\n",
		h.Domain.cfg.Name, h.Index, hypercallName(h.Nr), a[0], a[1], a[2], a[3], a[4], ret)
}
