package control

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/argovisor/argovisor/vmm"
)

// VMMBackend is the Backend over a running *vmm.VMM.
type VMMBackend struct {
	V *vmm.VMM
	// Dir anchors relative paths in created domains (kernel,
	// console_log); default the working directory. The ctl client sends
	// absolute paths.
	Dir string
	// NoFiles is set when the process cannot open files (its seccomp
	// filter kills it if it tries): a create must then carry the kernel's
	// bytes in kernel_image, and console_log is refused, both with a 400
	// before anything is looked up.
	NoFiles bool
}

// Info describes a domain for the API.
func Info(d *vmm.Domain) DomainInfo {
	cfg := d.Config()
	info := DomainInfo{
		ID: d.ID(), Name: d.Name(), State: string(d.State()), VCPUs: cfg.VCPUs, Memory: cfg.Memory,
		UptimeSeconds: d.Uptime().Seconds(), Restarts: d.Restarts(),
	}
	if r := d.Result(); r.Kind != vmm.Running {
		info.Result = resultInfo(r)
	}
	return info
}

func resultInfo(r vmm.Result) *ResultInfo {
	ri := &ResultInfo{Kind: r.Kind.String(), Status: r.Status, Reason: r.Reason, Text: r.String()}
	if f := r.Fault; f != nil {
		ri.Fault = &FaultInfo{VCPU: f.VCPU, Vector: f.Vector, ErrorCode: f.ErrorCode, RIP: f.RIP, Symbol: f.Symbol, CR2: f.CR2}
		if f.Vector >= 0 {
			ri.Fault.Exception = vmm.ExceptionName(f.Vector)
		}
	}
	return ri
}

// Stats gathers a domain's counters for the API.
func Stats(d *vmm.Domain) DomainStats {
	st := d.Stats()
	a := d.ArgoStats()
	g := d.GnttabStats()
	m := d.MemoryStats()
	var ss *StreamStats
	if s, ok := d.StreamStats(); ok {
		ss = &StreamStats{Socket: d.StreamSocket(), Stats: s}
	}
	return DomainStats{
		Stream:     ss,
		DomainInfo: Info(d), Exits: st.ExitsByKind, Hypercalls: st.Hypercalls, HypercallsByOp: st.HypercallsByOp,
		HypercallErrors: st.HypercallErrors, UnknownPorts: st.UnknownPorts, VIRQs: st.VIRQs,
		WaitsPolled: st.WaitsPolled, WaitsSlept: st.WaitsSlept, Doorbells: st.Doorbells, DoorbellBad: st.DoorbellBad,
		Argo: ArgoStats{
			Rings: a.Rings, Registers: a.Registers, MsgsOut: a.MsgsOut, BytesOut: a.BytesOut, MsgsIn: a.MsgsIn,
			BytesIn: a.BytesIn, EAGAINs: a.EAGAINs, Notifies: a.Notifies, SpaceWakeups: a.Signals, Errors: a.Errors,
			ErrorsByErrno: a.ErrorsByErrno.ByName(), Suppressed: a.Suppressed, Waits: a.Waits, WaitsBlocked: a.WaitsBlocked, SpaceWaits: a.SpaceWaits,
		},
		Reservation: MemoryStats{
			CurrentPages: m.Current, MaxPages: m.Max, BackingBytes: m.Backing, Decreased: m.Decreased,
			Populated: m.Populated, TransfersOut: m.TransfersOut, TransfersIn: m.TransfersIn, MemopErrors: m.Errors,
		},
		Gnttab: GnttabStats{
			Maps: g.Maps, Unmaps: g.Unmaps, Copies: g.Copies, CopyBytes: g.CopyBytes, Revoked: g.Revoked,
			Mapped: g.Mapped, Errors: g.Errors, ErrorsByStatus: g.ErrorsByStatus.ByName(), ErrorsByErrno: g.ErrorsByErrno.ByName(),
		},
	}
}

func (b *VMMBackend) find(name string) (*vmm.Domain, error) {
	if d := b.V.DomainByName(name); d != nil {
		return d, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
}

// List implements Backend.
func (b *VMMBackend) List() []DomainInfo {
	out := []DomainInfo{}
	for _, d := range b.V.Domains() {
		out = append(out, Info(d))
	}
	return out
}

// Stats implements Backend.
func (b *VMMBackend) Stats(name string) (DomainStats, error) {
	d, err := b.find(name)
	if err != nil {
		return DomainStats{}, err
	}
	return Stats(d), nil
}

// AllStats implements Backend.
func (b *VMMBackend) AllStats() []DomainStats {
	var out []DomainStats
	for _, d := range b.V.Domains() {
		out = append(out, Stats(d))
	}
	return out
}

// Create implements Backend: the domain is built and started.
func (b *VMMBackend) Create(body []byte) (DomainInfo, error) {
	cfg, err := b.decode(body)
	if err != nil {
		return DomainInfo{}, err
	}
	d, err := b.V.CreateDomain(cfg)
	switch {
	case errors.Is(err, vmm.ErrNameInUse):
		return DomainInfo{}, fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, vmm.ErrBadConfig), errors.Is(err, vmm.ErrBadKernel):
		return DomainInfo{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	case err != nil:
		return DomainInfo{}, err
	}
	if err := d.Start(); err != nil {
		b.V.RemoveDomain(d.ID())
		return DomainInfo{}, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	return Info(d), nil
}

// decode turns a create body into a domain configuration; its errors wrap
// ErrBadRequest. With NoFiles it looks nothing up in the file system.
func (b *VMMBackend) decode(body []byte) (vmm.DomainConfig, error) {
	o := vmm.DomainJSONOptions{Dir: b.Dir, NoFiles: b.NoFiles, Lookup: func(name string) (uint16, bool) {
		if d := b.V.DomainByName(name); d != nil {
			return d.ID(), true
		}
		return 0, false
	}}
	if o.Dir == "" && !o.NoFiles {
		var err error
		if o.Dir, err = os.Getwd(); err != nil {
			return vmm.DomainConfig{}, err
		}
	}
	cfg, err := vmm.DecodeDomainJSON(body, o)
	if err != nil {
		return vmm.DomainConfig{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return cfg, nil
}

// Stop implements Backend.
func (b *VMMBackend) Stop(ctx context.Context, name string) (DomainInfo, error) {
	d, err := b.find(name)
	if err != nil {
		return DomainInfo{}, err
	}
	if d.State() == vmm.StateCreated {
		return DomainInfo{}, fmt.Errorf("%w: domain %q was never started", ErrConflict, name)
	}
	d.Stop("stopped through the control API")
	select {
	case <-d.Done():
	case <-ctx.Done():
		return DomainInfo{}, fmt.Errorf("waiting for %q to stop: %w", name, ctx.Err())
	}
	return Info(d), nil
}

// Destroy implements Backend.
func (b *VMMBackend) Destroy(name string) (DomainInfo, error) {
	d, err := b.find(name)
	if err != nil {
		return DomainInfo{}, err
	}
	if d.State() != vmm.StateCreated {
		d.Stop("destroyed through the control API")
		<-d.Done()
	}
	info := Info(d)
	if err := b.V.RemoveDomain(d.ID()); err != nil {
		if errors.Is(err, vmm.ErrNoDomain) {
			return DomainInfo{}, fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		return info, err
	}
	return info, nil
}
