package vmm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/hostsock"
	"github.com/argovisor/argovisor/kvm"
	"github.com/argovisor/argovisor/memop"
)

// DomainConfig describes one domain. CreateDomain applies the defaults
// (WithDefaults) and validates it (Validate), so a zero field means "the
// default" through the Go API as through a config file.
type DomainConfig struct {
	Name string
	// Label is what the VMM vouches for about the domain beyond its id and
	// name: printable ASCII, at most argo.MaxLabelLen bytes. Guests read it
	// with Argo's domain_info op (docs/argo.md).
	Label string
	// Kernel is the path of an ELF64 x86-64 kernel. When KernelData is
	// set, the image is read from it instead and Kernel only names it in
	// messages. Either way the image (at most MaxKernelImage bytes) is
	// read once, when the domain is created: its restarts boot that copy.
	Kernel     string
	KernelData io.ReaderAt
	Memory     uint64 // bytes of RAM; default DefaultMemory
	VCPUs      int    // default DefaultVCPUs
	Params     map[string]string
	Argo       ArgoPolicy
	Gnttab     GnttabConfig

	// OnExit and OnCrash say what happens when the guest exits or
	// crashes (docs/design.md, "Lifecycle"); default ActionDestroy. A
	// domain stopped by the host is never restarted.
	OnExit, OnCrash Action
	// RestartLimit is the most restarts in the domain's life (default
	// DefaultRestartLimit); RestartBackoff the delay before the first,
	// doubled for each next one up to MaxRestartBackoff (default
	// DefaultRestartBackoff).
	RestartLimit   int
	RestartBackoff time.Duration
	// ConsoleLog, if set, is a file the domain's console lines are
	// appended to ("[name] line") instead of going to Options.Console.
	ConsoleLog string
	// MaxMemory is the domain's maximum reservation and the size of its
	// RAM region in bytes (config: max_memory); 0 means Memory. Frames
	// above Memory start empty (docs/memory-layout.md).
	MaxMemory uint64
	// ReportMemory prints a line with the reservation, the RAM's host
	// memory and the VMM's RSS before and after each reservation change
	// (config: report_memory).
	ReportMemory bool
	// CPUs, if not empty, are the host CPUs the domain's vCPU threads may
	// run on (config: cpus; Xen's hard affinity). Each must be one this
	// process may use (sched_getaffinity). Empty: wherever the host
	// scheduler puts them. Domains that take turns — a request and its
	// reply — run faster on one CPU (docs/performance.md, "CPU
	// placement"); a domain that must not slow others down goes on CPUs
	// of its own.
	CPUs []int
	// Stream, if Stream.Path is set, gives the domain a Unix socket that
	// speaks Firecracker's vsock convention to Argo streams
	// (docs/streams.md; config: [domain.stream]). Such a domain may
	// always send to the host (domain 0), even with a SendTo list.
	Stream hostsock.Config
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

// Domain is one guest: a KVM VM with its RAM, vCPUs and devices. The VM
// and everything built with it form the domain's instance; a restart
// replaces the instance and keeps the Domain, its id and its name.
type Domain struct {
	vmm *VMM
	id  uint16
	cfg DomainConfig // defaults applied; immutable
	// image is the kernel file's contents, read by newDomain; every
	// instance is loaded from it. Immutable.
	image []byte

	// The current instance. Its fields are read without a lock by the
	// instance's own vCPU goroutines (started after it is set) and by the
	// supervisor (the only writer); every other reader holds releaseMu or
	// resultMu, and a restart swaps it holding both.
	*instance

	started atomic.Bool
	done    chan struct{} // closed when the domain has ended for good

	// hostStop is set by Stop: the domain is never restarted after it.
	hostStop atomic.Bool
	// restartReq is set by Restart and taken by the supervisor.
	restartReq atomic.Bool
	// wake is closed by Stop to cut a restart back-off short.
	wake     chan struct{}
	wakeOnce sync.Once

	// resultMu guards result, restarts, restarting, startedAt and endedAt
	// (and, with releaseMu, the instance pointer). Lock order: before
	// releaseMu and vcpu.mu.
	resultMu sync.Mutex
	// +checklocks:resultMu
	result Result
	// +checklocks:resultMu
	restarts int
	// +checklocks:resultMu
	restarting bool
	// +checklocks:resultMu
	startedAt time.Time // start of the current instance
	// +checklocks:resultMu
	endedAt time.Time

	firstLine     chan struct{}
	firstLineOnce sync.Once
	stats         stats

	// reserved is what the domain took from the VMM's Budget (zero until
	// it did, and again once given back). It covers one instance at a
	// time: a restart frees the old instance before building the new one.
	// Written by newDomain, then by the supervisor or release, which
	// never run at once (release waits for done).
	reserved usage

	destroyOnce sync.Once
	// consoleLog is the open ConsoleLog file, nil without one. Its writes
	// are serialised by VMM.outMu.
	consoleLog *os.File
	// stream is the domain's stream socket, nil without one. Set by
	// newDomain, closed by release.
	stream *hostsock.Socket

	// releaseMu guards the instance pointer against a restart's swap and
	// the instance's freed flag. Interrupt injection holds it for reading
	// so that the VM descriptor cannot be closed (and its number reused by
	// another VM) under a signal raised by another domain's send. Lock
	// order: after resultMu, before grantWindow.mu.
	releaseMu sync.RWMutex
	// removed is set (under releaseMu) by RemoveDomain and Close before
	// they free the domain, so that a Start racing with them (the control
	// API lists a domain before it starts it) either starts it first, and
	// is then stopped and waited for, or fails.
	removed bool
}

// instance is one incarnation of a domain: the KVM VM, its memory, vCPUs
// and devices.
type instance struct {
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
	tscKHz uint64 // read once at creation: the vCPUs may be gone later
	tscErr error

	// stopping is set once, before the vCPUs are kicked; vCPU loops check
	// it after every exit.
	stopping atomic.Bool
	wg       sync.WaitGroup // the vCPU goroutines
	// freed is set (under Domain.releaseMu) when the VM, vCPUs and memory
	// have been closed.
	freed bool
}

// ID is the domain id (1, 2, … in creation order; kept across restarts).
func (d *Domain) ID() uint16 { return d.id }

// Name is the domain's configured name.
func (d *Domain) Name() string { return d.cfg.Name }

// Config returns the domain's configuration, defaults applied.
func (d *Domain) Config() DomainConfig { return d.cfg }

// RAM is the current instance's guest memory; nil once it has been freed
// (a destroyed or removed domain).
func (d *Domain) RAM() *RAM {
	d.releaseMu.RLock()
	defer d.releaseMu.RUnlock()
	if d.instance.freed {
		return nil
	}
	return d.ram
}

// FirstOutput is closed when the domain prints its first console line.
func (d *Domain) FirstOutput() <-chan struct{} { return d.firstLine }

// Done is closed when the domain has ended for good: every vCPU has
// stopped and no restart follows.
func (d *Domain) Done() <-chan struct{} { return d.done }

// newDomain builds the domain and its first instance. Errors wrapping
// ErrBadKernel are the kernel's fault. cfg has its defaults applied and is
// valid.
func (v *VMM) newDomain(id uint16, cfg DomainConfig) (_ *Domain, err error) {
	d := &Domain{vmm: v, id: id, cfg: cfg, done: make(chan struct{}), firstLine: make(chan struct{}), wake: make(chan struct{})}
	// Read once: every instance is built from these bytes, so a restart
	// opens no file (CreationNeeds) and boots the kernel the domain was
	// created with.
	if d.image, err = readKernel(cfg, MaxKernelImage); err != nil {
		return nil, err
	}
	// Everything an instance is made of costs the process kernel objects:
	// reserve them all before making any. The image stays on the heap.
	u := domainUsage(cfg)
	u[resMemory] += uint64(len(d.image))
	if err := v.budget.take(cfg.Name, u, cfg.Gnttab.windowVMAs()); err != nil {
		return nil, err
	}
	d.reserved = u
	if d.instance, err = v.newInstance(d, 0); err != nil {
		d.giveBudget()
		return nil, err
	}
	if cfg.ConsoleLog != "" {
		if d.consoleLog, err = os.OpenFile(cfg.ConsoleLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			d.instance.free(d)
			d.giveBudget()
			return nil, fmt.Errorf("domain %q: console log: %w", cfg.Name, err)
		}
	}
	if cfg.Stream.Path != "" {
		if d.stream, err = v.listenStream(argo.DomainID(id), cfg.Stream); err != nil {
			if d.consoleLog != nil {
				d.consoleLog.Close()
			}
			d.instance.free(d)
			d.giveBudget()
			return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
		}
	}
	return d, nil
}

// MaxKernelImage bounds a kernel image, read from a file or from
// DomainConfig.KernelData: a domain keeps its image in memory for its
// restarts, and the control API takes images in request bodies.
const MaxKernelImage = 64 << 20

// readKernel reads the whole kernel image of cfg, at most limit bytes
// (MaxKernelImage but in tests): from KernelData if set, else from the
// file Kernel.
func readKernel(cfg DomainConfig, limit int) ([]byte, error) {
	bad := func(err error) error {
		return fmt.Errorf("domain %q: kernel %s: %w: %v", cfg.Name, cfg.Kernel, ErrBadKernel, err)
	}
	r := cfg.KernelData
	size := int64(-1) // unknown
	if s, ok := r.(interface{ Size() int64 }); ok {
		size = s.Size() // bytes.Reader, strings.Reader, io.SectionReader
	}
	if r == nil {
		f, err := os.Open(cfg.Kernel)
		if err != nil {
			return nil, fmt.Errorf("domain %q: %w: %v", cfg.Name, ErrBadKernel, err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		r = f
	}
	var img []byte
	var err error
	switch {
	case size > int64(limit):
		return nil, bad(fmt.Errorf("%d bytes, more than the %d allowed", size, limit))
	case size >= 0:
		img = make([]byte, size)
		var n int
		if n, err = r.ReadAt(img, 0); n == len(img) {
			err = nil // io.EOF may come with the last byte
		}
	default:
		// One byte more than allowed tells an image at the limit from a
		// larger one.
		img, err = io.ReadAll(io.NewSectionReader(r, 0, int64(limit)+1))
	}
	switch {
	case err != nil:
		return nil, bad(err)
	case len(img) > limit:
		return nil, bad(fmt.Errorf("more than the %d bytes allowed", limit))
	case len(img) == 0:
		return nil, bad(errors.New("empty image"))
	}
	return img, nil
}

// newInstance builds a VM for d from its kernel image: memory, irqchip,
// vCPUs and devices. restarts is written to the boot info.
func (v *VMM) newInstance(d *Domain, restarts int) (_ *instance, err error) {
	cfg := d.cfg
	inst := &instance{}
	defer func() {
		if err != nil {
			inst.free(d)
		}
	}()
	if err := inst.newInstanceMemory(cfg, d.id, d.image, restarts); err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	if err := inst.setupVM(v.sys, cfg); err != nil {
		return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
	}
	cpuid := guestCPUID(v.sys.SupportedCPUID(), v.preferDoorbell)
	for i := 0; i < cfg.VCPUs; i++ {
		cpu, err := inst.vm.CreateVCPU(i)
		if err != nil {
			return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
		}
		vc := &vcpu{ctx: VCPUContext{Domain: d, Index: i, cpu: cpu}, intr: make(chan struct{}, 1), poll: waitPoll{max: d.waitPoll()}}
		vc.hc.VCPUContext = &vc.ctx
		inst.vcpus = append(inst.vcpus, vc)
		if err := inst.initVCPU(cfg, cpu, i, cpuid); err != nil {
			return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
		}
	}
	inst.tscKHz, inst.tscErr = inst.vcpus[0].ctx.cpu.TSCKHz()
	inst.serial = &serial{d: d}
	for _, dev := range []struct {
		base, size uint16
		dev        PIODevice
	}{
		{PortSerial, 8, inst.serial},
		{PortExit, 1, exitPort{}},
		{PortCrash, 1, crashPort{}},
		{PortHypercall, 1, hypercallPort{}},
	} {
		if err := inst.bus.Insert(dev.base, dev.size, dev.dev); err != nil {
			return nil, fmt.Errorf("domain %q: %w", cfg.Name, err)
		}
	}
	return inst, nil
}

// newInstanceMemory makes the instance's host memory, with no KVM call:
// RAM holding the kernel, page tables and boot info; the grant table
// frames; the grant window's reservation (docs/memory-layout.md). On an
// error, what was made is left for instance.free.
func (inst *instance) newInstanceMemory(cfg DomainConfig, domid uint16, image []byte, restarts int) error {
	params, err := encodeParams(cfg.Params)
	if err != nil {
		return err
	}
	frames := cfg.Gnttab.maxFrames()
	if frames > MaxGrantFrames {
		return fmt.Errorf("gnttab max_frames %d above %d", frames, MaxGrantFrames)
	}
	if inst.ram, err = NewRAM(cfg.Name, cfg.region()); err != nil {
		return err
	}
	if err := inst.ram.mapGuest(cfg.Memory); err != nil {
		return err
	}
	heapEnd := cfg.Memory - uint64(cfg.VCPUs)*StackSize
	if inst.kernel, err = LoadELF(bytes.NewReader(image), inst.ram, KernelBase, heapEnd); err != nil {
		return fmt.Errorf("kernel %s: %w", cfg.Kernel, err)
	}
	heapStart := (inst.kernel.End + PageSize - 1) &^ (PageSize - 1)
	if err := writeTables(inst.ram); err != nil {
		return fmt.Errorf("page tables: %w", err)
	}
	bi := bootInfo{domid: domid, vcpus: uint32(cfg.VCPUs), memSize: cfg.Memory, heapStart: heapStart, heapEnd: heapEnd,
		restarts: uint32(restarts), params: params}
	if err := writeBootInfo(inst.ram, bi); err != nil {
		return fmt.Errorf("boot info: %w", err)
	}
	inst.ram.dropVMMPages()
	if inst.gtab, err = NewRAM(cfg.Name+":gnttab", uint64(frames)*PageSize); err != nil {
		return err
	}
	if inst.window, err = newGrantWindow(int(cfg.Gnttab.windowVMAs())); err != nil {
		return err
	}
	return nil
}

// setupVM creates the instance's VM with its irqchip and registers its
// memory with KVM: RAM at 0, the grant table frames and the two halves of
// the grant window (docs/memory-layout.md).
func (inst *instance) setupVM(sys *kvm.System, cfg DomainConfig) error {
	var err error
	if inst.vm, err = sys.CreateVM(); err != nil {
		return err
	}
	if err := inst.vm.SetTSSAddr(tssAddrKVM); err != nil {
		return err
	}
	if err := inst.vm.CreateIRQChip(); err != nil {
		return err
	}
	if err := inst.vm.SetUserMemoryRegion(slotRAM, 0, 0, inst.ram.Size(), inst.ram.guestAddr()); err != nil {
		return err
	}
	if err := inst.vm.SetUserMemoryRegion(slotGrantTab, 0, GrantTableGPA, inst.gtab.Size(), ramAddr(inst.gtab)); err != nil {
		return err
	}
	if err := inst.vm.SetUserMemoryRegion(slotWindowRW, 0, GrantWindowGPA, GrantWindowHalf, inst.window.base); err != nil {
		return err
	}
	return inst.vm.SetUserMemoryRegion(slotWindowRO, kvm.MemReadonly, GrantWindowROGPA, GrantWindowHalf, inst.window.base+GrantWindowHalf)
}

func (inst *instance) initVCPU(cfg DomainConfig, cpu *kvm.VCPU, i int, cpuid []kvm.CPUIDEntry) error {
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
		RIP:    inst.kernel.Entry,
		RDI:    uint64(i),
		RSI:    bootInfoGPA,
		RSP:    stackTop(cfg.Memory, i),
		RFLAGS: 0x2,
	}); err != nil {
		return err
	}
	return cpu.SetRunnable()
}

// Start starts every vCPU. It returns at once; use Wait or Done.
func (d *Domain) Start() error {
	now := time.Now()
	d.releaseMu.RLock()
	if d.removed || d.instance.freed {
		d.releaseMu.RUnlock()
		return fmt.Errorf("start %q: %w (removed)", d.cfg.Name, ErrEnded)
	}
	if !d.started.CompareAndSwap(false, true) {
		d.releaseMu.RUnlock()
		return errors.New("domain already started")
	}
	d.instance.startVCPUs()
	d.releaseMu.RUnlock()
	d.resultMu.Lock()
	if d.startedAt.IsZero() {
		d.startedAt = now
	}
	d.resultMu.Unlock()
	d.vmm.log.Info("domain started", "domain", d.cfg.Name, "id", d.id, "vcpus", d.cfg.VCPUs, "memory", d.cfg.Memory)
	go d.supervise()
	return nil
}

// markRemoved sets removed and reports whether the domain was started:
// after it, Start fails, so a domain it reports as not started never
// runs.
func (d *Domain) markRemoved() (started bool) {
	d.releaseMu.Lock()
	defer d.releaseMu.Unlock()
	d.removed = true
	return d.started.Load()
}

// startVCPUs starts one goroutine per vCPU.
func (inst *instance) startVCPUs() {
	inst.wg.Add(len(inst.vcpus))
	for _, vc := range inst.vcpus {
		go vc.run(&inst.wg)
	}
}

// Stop ends the domain from the host side with the given reason; it is
// not restarted, whatever its policy, and a pending restart is cancelled.
// It returns without waiting; use Wait.
func (d *Domain) Stop(reason string) {
	d.hostStop.Store(true)
	d.wakeOnce.Do(func() { close(d.wake) })
	d.finish(Result{Kind: Stopped, Reason: reason})
}

// Kick forces every vCPU out of KVM_RUN once; the domain keeps running.
// Tests use it to stress the kick path.
func (d *Domain) Kick() {
	d.releaseMu.RLock()
	defer d.releaseMu.RUnlock()
	d.instance.kickLocked()
}

// kickLocked kicks every vCPU of a live instance. Preconditions:
// Domain.releaseMu held (for reading or writing).
func (inst *instance) kickLocked() {
	if inst.freed {
		return
	}
	for _, vc := range inst.vcpus {
		vc.kick()
	}
}

// Wait blocks until the domain has ended for good and returns the result.
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

// finish records the first result of the current instance and stops its
// vCPUs.
func (d *Domain) finish(r Result) {
	d.resultMu.Lock()
	if d.result.Kind == Running {
		d.result = r
	}
	inst := d.instance
	d.resultMu.Unlock()
	inst.stopping.Store(true)
	d.releaseMu.RLock()
	inst.kickLocked()
	d.releaseMu.RUnlock()
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
	f.Symbol = d.kernel.Symbolize(f.RIP)
	d.finish(Result{Kind: Crashed, Reason: reason, Fault: f})
}

// InjectInterrupt sends vector to the local APIC of vCPU cpu as a fixed,
// edge-triggered MSI. It is safe from any goroutine. delivered is false if
// the APIC dropped it (for example, not yet software-enabled by the guest)
// or the domain's VM is gone.
func (d *Domain) InjectInterrupt(cpu int, vector uint8) (delivered bool, err error) {
	if cpu < 0 || cpu >= d.cfg.VCPUs {
		return false, fmt.Errorf("inject vector %#x: domain %q has no vCPU %d", vector, d.cfg.Name, cpu)
	}
	d.releaseMu.RLock()
	defer d.releaseMu.RUnlock()
	if d.instance.freed {
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
// cycles to time. It is read when the VM is built, so it stays available
// after the domain has ended.
func (d *Domain) TSCKHz() (uint64, error) {
	d.releaseMu.RLock()
	defer d.releaseMu.RUnlock()
	return d.tscKHz, d.tscErr
}

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

// free closes the instance's vCPUs, VM and memory. The vCPUs must not be
// running. It is idempotent.
func (inst *instance) free(d *Domain) error {
	d.releaseMu.Lock()
	if inst.freed {
		d.releaseMu.Unlock()
		return nil
	}
	inst.freed = true
	d.releaseMu.Unlock()
	var errs []error
	for _, vc := range inst.vcpus {
		if err := vc.ctx.cpu.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if inst.vm != nil {
		if err := inst.vm.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if inst.ram != nil {
		if err := inst.ram.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if inst.gtab != nil {
		if err := inst.gtab.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := inst.window.close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// giveBudget returns the domain's reservation to the VMM's budget.
func (d *Domain) giveBudget() {
	d.vmm.budget.give(d.reserved)
	d.reserved = usage{}
}

// release forgets the domain in Argo and the grant tables and frees its
// instance and console log. The vCPUs must not be running.
func (d *Domain) release() error {
	var err error
	d.destroyOnce.Do(func() {
		// Forget the domain in Argo before its RAM goes: no ring may
		// point into unmapped memory.
		d.vmm.argo.RemoveDomain(argo.DomainID(d.id))
		d.vmm.gnttab.RemoveDomain(gnttab.DomainID(d.id))
		d.vmm.memop.RemoveDomain(memop.DomainID(d.id))
		err = d.instance.free(d)
		if d.stream != nil {
			if serr := d.stream.Close(); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		d.giveBudget()
		if d.consoleLog != nil {
			d.vmm.outMu.Lock()
			if cerr := d.consoleLog.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			d.consoleLog = nil
			d.vmm.outMu.Unlock()
		}
		d.vmm.budget.give(d.reserved)
		d.reserved = usage{}
	})
	return err
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
