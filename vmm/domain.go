package vmm

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/kvm"
	"github.com/argovisor/argovisor/memop"
)

// DomainConfig describes one domain.
type DomainConfig struct {
	Name string
	// Label is what the VMM vouches for about the domain beyond its id and
	// name: printable ASCII, at most argo.MaxLabelLen bytes. Guests read it
	// with Argo's domain_info op (docs/argo.md).
	Label  string
	Kernel string // path of an ELF64 x86-64 kernel
	Memory uint64 // bytes of RAM
	VCPUs  int
	Params map[string]string
	Argo   ArgoPolicy
	Gnttab GnttabConfig
	// MaxMemory is the domain's maximum reservation and the size of its
	// RAM region in bytes (config: max_memory); 0 means Memory. Frames
	// above Memory start empty (docs/memory-layout.md).
	MaxMemory uint64
	// ReportMemory prints a line with the reservation, the RAM's host
	// memory and the VMM's RSS before and after each reservation change
	// (config: report_memory).
	ReportMemory bool
}

// GnttabConfig is a domain's [domain.gnttab] configuration.
type GnttabConfig struct {
	// MaxFrames is the most grant table frames (512 entries each);
	// default DefaultGrantFrames.
	MaxFrames uint32
	// MaxMaptrackFrames bounds the domain's simultaneous mappings (256
	// per frame); default DefaultMaptrackFrames.
	MaxMaptrackFrames uint32
	// MapFrom, if non-nil, lists the only domain ids this domain may map
	// or copy grants from.
	MapFrom []uint16
	// MaxWindowVMAs is the domain's share of the process's memory
	// mappings for its grant window ([domain.gnttab] max_window_vmas);
	// default DefaultWindowVMAs. A map that would need more gets
	// GNTST_no_device_space (docs/limits.md).
	MaxWindowVMAs uint32
}

// Grant-table defaults (Xen's).
const (
	DefaultGrantFrames    = 64
	DefaultMaptrackFrames = 1024
)

// Grant-window VMA shares. With the default, 79 default domains (one vCPU)
// fit under the kernel's default vm.max_map_count of 65530
// (docs/limits.md); 768 VMAs hold at least 383 mapped pages, and up to
// 766 in one contiguous run.
const (
	DefaultWindowVMAs = 768
	// MinWindowVMAs is the smallest share: the window's own reservation
	// and one mapped page at its edge.
	MinWindowVMAs = 2
	// MaxWindowVMAs bounds max_window_vmas: about twice the most a window
	// can ever need (every other page mapped: 131 073).
	MaxWindowVMAs = 1 << 18
)

func (g GnttabConfig) maxFrames() uint32 {
	if g.MaxFrames == 0 {
		return DefaultGrantFrames
	}
	return g.MaxFrames
}

func (g GnttabConfig) windowVMAs() uint32 {
	if g.MaxWindowVMAs == 0 {
		return DefaultWindowVMAs
	}
	return g.MaxWindowVMAs
}

// Domain is one guest: a KVM VM with its RAM, vCPUs and devices.
type Domain struct {
	vmm    *VMM
	id     uint16
	cfg    DomainConfig
	vm     *kvm.VM
	ram    *RAM
	p2m    *memop.Domain // which frames of ram are populated (memop)
	phys   physMem       // ram as hypercalls, Argo and grants may reach it
	gtab   *RAM          // grant table frames, at GrantTableGPA
	window *grantWindow  // grant window, at GrantWindowGPA
	vcpus  []*vcpu
	bus    PIOBus
	serial *serial
	kernel KernelImage

	// stopping is set once, before the vCPUs are kicked; vCPU loops check
	// it after every exit.
	stopping atomic.Bool
	started  atomic.Bool
	wg       sync.WaitGroup
	done     chan struct{} // closed when every vCPU goroutine has returned

	// resultMu guards result. Lock order: before vcpu.mu.
	resultMu sync.Mutex
	result   Result

	firstLine     chan struct{}
	firstLineOnce sync.Once
	stats         stats

	// reserved is what the domain took from the VMM's Budget (zero until
	// it did); release gives it back.
	reserved usage

	destroyOnce sync.Once

	// releaseMu guards released. Interrupt injection holds it for reading
	// so that the VM descriptor cannot be closed (and its number reused by
	// another VM) under a signal raised by another domain's send. Leaf.
	releaseMu sync.RWMutex
	released  bool
}

// stats are per-domain counters, updated atomically from vCPU goroutines.
type stats struct {
	pioExits, mmioExits, unknownPorts, hypercalls, kicks atomic.Uint64
	virqs                                                atomic.Uint64
}

// Stats is a snapshot of a domain's counters.
type Stats struct {
	PIOExits, MMIOExits, UnknownPorts, Hypercalls, Kicks uint64
	// VIRQs counts VIRQs the domain's local APIC accepted (several may
	// merge into one delivery to the guest).
	VIRQs uint64
}

// Exits is the number of transitions the guest made into the VMM: port
// I/O (hypercalls, console, exit) and MMIO exits. Kicks and other exits
// the VMM caused itself are not counted.
func (s Stats) Exits() uint64 { return s.PIOExits + s.MMIOExits }

// ID is the domain id (1, 2, … in creation order).
func (d *Domain) ID() uint16 { return d.id }

// Name is the domain's configured name.
func (d *Domain) Name() string { return d.cfg.Name }

// Config returns the domain's configuration.
func (d *Domain) Config() DomainConfig { return d.cfg }

// RAM is the domain's guest memory.
func (d *Domain) RAM() *RAM { return d.ram }

// Stats returns the current counters.
func (d *Domain) Stats() Stats {
	return Stats{
		PIOExits: d.stats.pioExits.Load(), MMIOExits: d.stats.mmioExits.Load(),
		UnknownPorts: d.stats.unknownPorts.Load(), Hypercalls: d.stats.hypercalls.Load(),
		Kicks: d.stats.kicks.Load(), VIRQs: d.stats.virqs.Load(),
	}
}

// FirstOutput is closed when the domain prints its first console line.
func (d *Domain) FirstOutput() <-chan struct{} { return d.firstLine }

// Done is closed when every vCPU has stopped.
func (d *Domain) Done() <-chan struct{} { return d.done }

// newDomain builds the VM: RAM, tables, kernel, irqchip, vCPUs and devices.
// Errors wrapping ErrBadKernel are the kernel file's fault.
func (v *VMM) newDomain(id uint16, cfg DomainConfig) (_ *Domain, err error) {
	if cfg.VCPUs < 1 || cfg.VCPUs > MaxVCPUs {
		return nil, fmt.Errorf("domain %q: vcpus = %d, want 1..%d", cfg.Name, cfg.VCPUs, MaxVCPUs)
	}
	if cfg.Memory < MinMemory || cfg.Memory > MaxMemory || cfg.Memory%PageSize != 0 {
		return nil, fmt.Errorf("domain %q: memory = %d bytes, want a multiple of 4 KiB in [%d, %d]", cfg.Name, cfg.Memory, MinMemory, MaxMemory)
	}
	if m := cfg.MaxMemory; m != 0 && (m < cfg.Memory || m > MaxMemory || m%PageSize != 0) {
		return nil, fmt.Errorf("domain %q: max_memory = %d bytes, want a multiple of 4 KiB in [memory, %d]", cfg.Name, m, MaxMemory)
	}
	stacks := uint64(cfg.VCPUs) * StackSize
	if cfg.Memory < KernelBase+stacks+PageSize {
		return nil, fmt.Errorf("domain %q: memory %d bytes is too small for %d vCPU stacks", cfg.Name, cfg.Memory, cfg.VCPUs)
	}
	if w := cfg.Gnttab.windowVMAs(); w < MinWindowVMAs || w > MaxWindowVMAs {
		return nil, fmt.Errorf("%w: domain %q: gnttab max_window_vmas = %d, want %d..%d", ErrBadConfig, cfg.Name, w, MinWindowVMAs, MaxWindowVMAs)
	}
	if err := checkLabel(cfg.Label); err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	params, err := encodeParams(cfg.Params)
	if err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	kf, err := os.Open(cfg.Kernel)
	if err != nil {
		return nil, fmt.Errorf("domain %q: %w: %v", cfg.Name, ErrBadKernel, err)
	}
	defer kf.Close()

	d := &Domain{vmm: v, id: id, cfg: cfg, done: make(chan struct{}), firstLine: make(chan struct{})}
	defer func() {
		if err != nil {
			d.release()
		}
	}()
	// Everything below costs the process kernel objects: reserve them all
	// before making any.
	u := domainUsage(cfg)
	if err := v.budget.take(cfg.Name, u, cfg.Gnttab.windowVMAs()); err != nil {
		return nil, err
	}
	d.reserved = u
	if d.ram, err = NewRAM(cfg.Name, cfg.region()); err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	if err := d.ram.mapGuest(cfg.Memory); err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	heapEnd := cfg.Memory - stacks
	if d.kernel, err = LoadELF(kf, d.ram, KernelBase, heapEnd); err != nil {
		return nil, fmt.Errorf("domain %q: kernel %s: %w", cfg.Name, cfg.Kernel, err)
	}
	heapStart := (d.kernel.End + PageSize - 1) &^ (PageSize - 1)
	if err := writeTables(d.ram); err != nil {
		return nil, fmt.Errorf("domain %q: page tables: %w", cfg.Name, err)
	}
	bi := bootInfo{domid: id, vcpus: uint32(cfg.VCPUs), memSize: cfg.Memory, heapStart: heapStart, heapEnd: heapEnd, params: params}
	if err := writeBootInfo(d.ram, bi); err != nil {
		return nil, fmt.Errorf("domain %q: boot info: %w", cfg.Name, err)
	}
	d.ram.dropVMMPages()

	if d.vm, err = v.sys.CreateVM(); err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	if err := d.vm.SetTSSAddr(tssAddrKVM); err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	if err := d.vm.CreateIRQChip(); err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	if err := d.vm.SetUserMemoryRegion(slotRAM, 0, 0, d.ram.Size(), d.ram.guestAddr()); err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	if err := d.setupGrantMemory(); err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	cpuid := guestCPUID(v.sys.SupportedCPUID())
	for i := 0; i < cfg.VCPUs; i++ {
		cpu, err := d.vm.CreateVCPU(i)
		if err != nil {
			return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
		}
		vc := &vcpu{ctx: VCPUContext{Domain: d, Index: i, cpu: cpu}, intr: make(chan struct{}, 1)}
		vc.hc.VCPUContext = &vc.ctx
		d.vcpus = append(d.vcpus, vc)
		if err := d.initVCPU(cpu, i, cpuid); err != nil {
			return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
		}
	}
	d.serial = &serial{d: d}
	for _, dev := range []struct {
		base, size uint16
		dev        PIODevice
	}{
		{PortSerial, 8, d.serial},
		{PortExit, 1, exitPort{}},
		{PortCrash, 1, crashPort{}},
		{PortHypercall, 1, hypercallPort{}},
	} {
		if err := d.bus.Insert(dev.base, dev.size, dev.dev); err != nil {
			return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
		}
	}
	return d, nil
}

// setupGrantMemory creates the grant table frames and the grant window and
// registers them with KVM (docs/memory-layout.md).
func (d *Domain) setupGrantMemory() error {
	frames := d.cfg.Gnttab.maxFrames()
	if frames > MaxGrantFrames {
		return fmt.Errorf("gnttab max_frames %d above %d", frames, MaxGrantFrames)
	}
	var err error
	if d.gtab, err = NewRAM(d.cfg.Name+":gnttab", uint64(frames)*PageSize); err != nil {
		return err
	}
	if err := d.vm.SetUserMemoryRegion(slotGrantTab, 0, GrantTableGPA, d.gtab.Size(), ramAddr(d.gtab)); err != nil {
		return err
	}
	if d.window, err = newGrantWindow(int(d.cfg.Gnttab.windowVMAs())); err != nil {
		return err
	}
	if err := d.vm.SetUserMemoryRegion(slotWindowRW, 0, GrantWindowGPA, GrantWindowHalf, d.window.base); err != nil {
		return err
	}
	return d.vm.SetUserMemoryRegion(slotWindowRO, kvm.MemReadonly, GrantWindowROGPA, GrantWindowHalf, d.window.base+GrantWindowHalf)
}

func (d *Domain) initVCPU(cpu *kvm.VCPU, i int, cpuid []kvm.CPUIDEntry) error {
	// Each vCPU reports its own APIC ID in leaf 1 EBX[31:24] and leaf 0xB.
	own := make([]kvm.CPUIDEntry, len(cpuid))
	copy(own, cpuid)
	for j := range own {
		switch own[j].Function {
		case 1:
			own[j].Ebx = own[j].Ebx&0x00FFFFFF | uint32(i)<<24
		case 0xB, 0x1F:
			own[j].Edx = uint32(i)
		}
	}
	if err := cpu.SetCPUID(own); err != nil {
		return err
	}
	s, err := cpu.Sregs()
	if err != nil {
		return err
	}
	initialSregs(s)
	if err := cpu.SetSregs(s); err != nil {
		return err
	}
	if err := cpu.SetRegs(&kvm.Regs{
		RIP:    d.kernel.Entry,
		RDI:    uint64(i),
		RSI:    bootInfoGPA,
		RSP:    stackTop(d.cfg.Memory, i),
		RFLAGS: 0x2,
	}); err != nil {
		return err
	}
	return cpu.SetRunnable()
}

// Start starts every vCPU. It returns at once; use Wait or Done.
func (d *Domain) Start() error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("domain already started")
	}
	d.wg.Add(len(d.vcpus))
	for _, vc := range d.vcpus {
		go vc.run(&d.wg)
	}
	go func() {
		d.wg.Wait()
		d.serial.flush()
		d.resultMu.Lock()
		if d.result.Kind == Running {
			d.result = Result{Kind: Stopped, Reason: "all vCPUs stopped"}
		}
		d.resultMu.Unlock()
		d.vmm.domainStopped(d)
		close(d.done)
	}()
	return nil
}

// Stop ends the domain from the host side with the given reason. It returns
// without waiting; use Wait.
func (d *Domain) Stop(reason string) {
	d.finish(Result{Kind: Stopped, Reason: reason})
}

// Kick forces every vCPU out of KVM_RUN once; the domain keeps running.
// Tests use it to stress the kick path.
func (d *Domain) Kick() {
	for _, vc := range d.vcpus {
		vc.kick()
	}
}

// Wait blocks until every vCPU has stopped and returns the result.
func (d *Domain) Wait() Result {
	if !d.started.Load() {
		return Result{Kind: Stopped, Reason: "never started"}
	}
	<-d.done
	return d.Result()
}

// Result is the domain's result so far (Running until it ends).
func (d *Domain) Result() Result {
	d.resultMu.Lock()
	defer d.resultMu.Unlock()
	return d.result
}

// finish records the first result and stops every vCPU.
func (d *Domain) finish(r Result) {
	d.resultMu.Lock()
	if d.result.Kind == Running {
		d.result = r
	}
	d.resultMu.Unlock()
	d.stopping.Store(true)
	for _, vc := range d.vcpus {
		vc.kick()
	}
}

// crash stops the domain as crashed, with the registers of vCPU v.
func (d *Domain) crash(v *vcpu, reason string, vector int) {
	f := &Fault{Reason: reason, VCPU: v.ctx.Index, Vector: vector}
	if r, err := v.ctx.cpu.Regs(); err == nil {
		f.Regs = *r
		f.RIP = r.RIP
	}
	if s, err := v.ctx.cpu.Sregs(); err == nil {
		f.CR2 = s.CR2
	}
	d.finish(Result{Kind: Crashed, Reason: reason, Fault: f})
}

// InjectInterrupt sends vector to the local APIC of vCPU cpu as a fixed,
// edge-triggered MSI. It is safe from any goroutine. delivered is false if
// the APIC dropped it (for example, not yet software-enabled by the guest).
func (d *Domain) InjectInterrupt(cpu int, vector uint8) (delivered bool, err error) {
	if cpu < 0 || cpu >= len(d.vcpus) {
		return false, fmt.Errorf("inject vector %#x: domain %q has no vCPU %d", vector, d.cfg.Name, cpu)
	}
	d.releaseMu.RLock()
	defer d.releaseMu.RUnlock()
	if d.released {
		return false, nil
	}
	delivered, err = d.vm.SignalMSI(kvm.MSIAddress(uint8(cpu)), uint32(vector))
	if delivered {
		// A hypercall blocked on that vCPU returns, so the guest can
		// take the interrupt.
		d.vcpus[cpu].interrupt()
	}
	return delivered, err
}

// TSCKHz is the guest TSC frequency in kHz, for converting guest-measured
// cycles to time.
func (d *Domain) TSCKHz() (uint64, error) { return d.vcpus[0].ctx.cpu.TSCKHz() }

// InjectVIRQ raises the domain's VIRQ on vCPU 0.
func (d *Domain) InjectVIRQ() (bool, error) {
	delivered, err := d.InjectInterrupt(0, VIRQVector)
	if delivered {
		d.stats.virqs.Add(1)
	}
	return delivered, err
}

func (d *Domain) emitLine(line string) {
	d.firstLineOnce.Do(func() { close(d.firstLine) })
	d.vmm.console(d, line)
}

// release frees the VM, vCPUs and RAM. The vCPUs must not be running.
func (d *Domain) release() error {
	var errs []error
	d.destroyOnce.Do(func() {
		// Forget the domain in Argo before its RAM goes: no ring may
		// point into unmapped memory.
		d.vmm.argo.RemoveDomain(argo.DomainID(d.id))
		d.vmm.gnttab.RemoveDomain(gnttab.DomainID(d.id))
		d.vmm.memop.RemoveDomain(memop.DomainID(d.id))
		d.releaseMu.Lock()
		d.released = true
		d.releaseMu.Unlock()
		for _, vc := range d.vcpus {
			if err := vc.ctx.cpu.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.vm != nil {
			if err := d.vm.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.ram != nil {
			if err := d.ram.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.gtab != nil {
			if err := d.gtab.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := d.window.close(); err != nil {
			errs = append(errs, err)
		}
		d.vmm.budget.give(d.reserved)
		d.reserved = usage{}
	})
	return errors.Join(errs...)
}

// checkLabel accepts a label of printable ASCII, at most argo.MaxLabelLen
// bytes: it is shown to other guests, so no control characters.
func checkLabel(l string) error {
	if len(l) > argo.MaxLabelLen {
		return fmt.Errorf("label is %d bytes, at most %d", len(l), argo.MaxLabelLen)
	}
	for i := 0; i < len(l); i++ {
		if l[i] < 0x20 || l[i] > 0x7E {
			return fmt.Errorf("label may hold only printable ASCII (byte %d is %#x)", i, l[i])
		}
	}
	return nil
}
