package vmm

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/argovisor/argovisor/kvm"
)

// VCPUDebug is a snapshot of one vCPU for diagnosing a hang: where it
// stopped, whether it halted, what its local APIC holds and what KVM has
// pending for it.
type VCPUDebug struct {
	Index   int
	Err     error // set when the vCPU could not be asked (not running)
	MPState uint32
	RIP     uint64
	RFLAGS  uint64
	RSP     uint64
	CS      uint16
	CR3     uint64
	GSBase  uint64
	// PerCPU is the first 32 bytes at GS base, read through the vCPU's
	// page tables: in the argovisor firmware, the vCPU's per-CPU block
	// (cpu, self, VIRQs not yet handled, wake count, early wake-ups;
	// memory-layout.md). Empty if unreadable.
	PerCPU         []byte
	TPR, PPR, SVR  uint32
	IRR, ISR       []int
	Events         kvm.VCPUEvents
	TripleFault    bool
	InterruptShown bool // Events was read
}

func (s VCPUDebug) String() string {
	if s.Err != nil {
		return fmt.Sprintf("vcpu %d: %v", s.Index, s.Err)
	}
	state := "runnable"
	if s.MPState == kvm.MPStateHalted {
		state = "halted"
	} else if s.MPState != kvm.MPStateRunnable {
		state = fmt.Sprintf("mp_state %d", s.MPState)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "vcpu %d: %s at rip=%#x cs=%#x (CPL %d) rflags=%#x (IF=%d) rsp=%#x cr3=%#x; LAPIC tpr=%#x ppr=%#x svr=%#x irr=%v isr=%v",
		s.Index, state, s.RIP, s.CS, s.CS&3, s.RFLAGS, s.RFLAGS>>9&1, s.RSP, s.CR3, s.TPR, s.PPR, s.SVR, s.IRR, s.ISR)
	if s.InterruptShown {
		e := s.Events
		fmt.Fprintf(&b, "; pending interrupt injected=%d nr=%#x shadow=%d, exception pending=%d injected=%d nr=%d, nmi pending=%d",
			e.Interrupt.Injected, e.Interrupt.Nr, e.Interrupt.Shadow, e.Exception.Pending, e.Exception.Injected, e.Exception.Nr, e.NMI.Pending)
	}
	if len(s.PerCPU) >= 28 {
		le := binary.LittleEndian
		fmt.Fprintf(&b, "; firmware per-CPU: VIRQs unhandled=%d wakes=%d early wake-ups=%d",
			le.Uint32(s.PerCPU[16:]), le.Uint32(s.PerCPU[20:]), le.Uint32(s.PerCPU[24:]))
	}
	return b.String()
}

// DebugVCPUs kicks every vCPU of the domain's current instance out of
// KVM_RUN and has each report its state from its own thread (vCPU ioctls
// wait for a running KVM_RUN), waiting at most limit for each. The kick
// itself is a wake-up: a vCPU that resumes after it was stuck for want of
// an event its halt should have ended on.
//
// It is for diagnosis — the test harness calls it when a domain outlives
// its limit — and uses KVM_GET_LAPIC, KVM_GET_MP_STATE and
// KVM_GET_VCPU_EVENTS, which the running seccomp allowlist does not hold:
// never call it from a confined process.
func (d *Domain) DebugVCPUs(limit time.Duration) []VCPUDebug {
	d.releaseMu.RLock()
	inst := d.instance
	if inst == nil || inst.freed {
		d.releaseMu.RUnlock()
		return nil
	}
	chans := make([]chan VCPUDebug, len(inst.vcpus))
	for i, vc := range inst.vcpus {
		ch := make(chan VCPUDebug, 1)
		chans[i] = ch
		vc.debugReq.Store(&ch)
		vc.kick()
	}
	d.releaseMu.RUnlock()
	out := make([]VCPUDebug, len(chans))
	deadline := time.After(limit)
	for i, ch := range chans {
		select {
		case out[i] = <-ch:
		case <-deadline:
			out[i] = VCPUDebug{Index: i, Err: fmt.Errorf("no answer within %v (not in its run loop)", limit)}
		}
	}
	return out
}

// debugState reads the vCPU's state between two runs, on its own thread.
func (v *vcpu) debugState() VCPUDebug {
	cpu := v.ctx.cpu
	rd := cpu.RunData()
	s := VCPUDebug{
		Index: v.ctx.Index, RIP: rd.Sync.Regs.RIP, RFLAGS: rd.Sync.Regs.RFLAGS, RSP: rd.Sync.Regs.RSP,
		CS: rd.Sync.Sregs.CS.Selector, CR3: rd.Sync.Sregs.CR3, GSBase: rd.Sync.Sregs.GS.Base,
	}
	var err error
	if s.MPState, err = cpu.MPState(); err != nil {
		s.Err = err
		return s
	}
	if l, err := cpu.LAPIC(); err == nil {
		s.TPR, s.PPR, s.SVR = l.Reg(0x80), l.Reg(0xA0), l.Reg(0xF0)
		s.IRR, s.ISR = l.Vectors(0x200), l.Vectors(0x100)
	}
	if e, err := cpu.Events(); err == nil {
		s.Events, s.InterruptShown = *e, true
	}
	buf := make([]byte, 32)
	if v.ctx.Guest().Read(s.GSBase, buf) == nil {
		s.PerCPU = buf
	}
	return s
}
