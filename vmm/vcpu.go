package vmm

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/argovisor/argovisor/kvm"
	"golang.org/x/sys/unix"
)

// VCPUContext is what a device or hypercall handler learns about the exit
// it is serving: the domain, the vCPU and its registers. Registers are the
// kvm_run sync registers, valid during the exit; SetRAX marks them dirty so
// KVM loads them on re-entry (no KVM_GET/SET_REGS per exit).
type VCPUContext struct {
	Domain *Domain
	Index  int
	cpu    *kvm.VCPU
}

// Regs are the guest's general registers at the exit. Writes are only
// loaded back into the vCPU after MarkRegsDirty.
func (c *VCPUContext) Regs() *kvm.Regs { return &c.cpu.RunData().Sync.Regs }

// Sregs are the special registers at the exit (read-only).
func (c *VCPUContext) Sregs() *kvm.Sregs { return &c.cpu.RunData().Sync.Sregs }

// SetRAX sets the guest's RAX for re-entry.
func (c *VCPUContext) SetRAX(v uint64) {
	r := c.cpu.RunData()
	r.Sync.Regs.RAX = v
	r.DirtyRegs |= kvm.SyncGPRs
}

// Paging returns the vCPU's paging state at the exit.
func (c *VCPUContext) Paging() PagingState {
	s := c.Sregs()
	return PagingState{CR0: s.CR0, CR3: s.CR3, CR4: s.CR4, EFER: s.EFER}
}

// Guest accesses memory through this vCPU's page tables.
func (c *VCPUContext) Guest() GuestView {
	return GuestView{Mem: domainMemory{c.Domain}, Paging: c.Paging()}
}

// domainMemory is what hypercall pointers may reach: RAM and the grant
// table frames. The grant window is left out on purpose: its pages may be
// inaccessible host memory, which the VMM must never touch.
type domainMemory struct{ d *Domain }

// Slice implements PhysMemory.
func (m domainMemory) Slice(gpa, n uint64) ([]byte, error) {
	if gpa >= GrantTableGPA && m.d.gtab != nil {
		return m.d.gtab.Slice(gpa-GrantTableGPA, n)
	}
	return m.d.phys.Slice(gpa, n)
}

// vcpu is one vCPU and the goroutine that runs it.
type vcpu struct {
	ctx VCPUContext
	hc  Hypercall // reused for every hypercall: no allocation per exit

	// mu guards tid. Lock order: after Domain.resultMu.
	mu sync.Mutex
	// tid is the OS thread running KVM_RUN, 0 when it is not running.
	tid int

	// intr holds one token when the vCPU was kicked or sent an interrupt
	// since its loop last looked: a hypercall blocked in the VMM (Argo's
	// wait) returns for it (block.go).
	intr chan struct{}
	// poll is the polling window of this vCPU's waits (block.go); only
	// its own goroutine uses it.
	poll waitPoll

	// debugReq, when set, asks the loop for a VCPUDebug at its next
	// kick (DebugVCPUs).
	debugReq atomic.Pointer[chan VCPUDebug]
}

// interrupt makes a hypercall blocked on this vCPU return.
func (v *vcpu) interrupt() {
	select {
	case v.intr <- struct{}{}:
	default:
	}
}

// kick forces the vCPU out of KVM_RUN: immediate_exit covers the window
// before it enters the kernel, the signal covers a vCPU already inside
// (including one halted in the in-kernel HLT). SIGURG is ignored by the Go
// runtime when unexpected.
func (v *vcpu) kick() {
	v.interrupt()
	v.ctx.cpu.SetImmediateExit(true)
	v.mu.Lock()
	if v.tid != 0 {
		unix.Tgkill(unix.Getpid(), v.tid, unix.SIGURG)
	}
	v.mu.Unlock()
}

// run is the vCPU goroutine. It owns its OS thread for its whole life so the
// kick signal reaches the thread in KVM_RUN.
func (v *vcpu) run(wg *sync.WaitGroup) {
	defer wg.Done()
	runtime.LockOSThread()
	// The thread is discarded when the goroutine ends still locked: a
	// later goroutine never inherits its signal state.
	d := v.ctx.Domain
	inst := d.instance // set before this goroutine started
	cpu := v.ctx.cpu
	v.mu.Lock()
	v.tid = unix.Gettid()
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.tid = 0
		v.mu.Unlock()
	}()
	if err := pinThread(d.cfg.CPUs); err != nil {
		d.crash(v, err.Error(), -1)
		return
	}
	rd := cpu.RunData()
	rd.ValidRegs = kvm.SyncGPRs | kvm.SyncSregs
	for {
		// A token left from before this point has done its work: the
		// flags it stands for are checked next.
		select {
		case <-v.intr:
		default:
		}
		if inst.stopping.Load() {
			break
		}
		exit, err := cpu.Run()
		if err != nil {
			if errors.Is(err, kvm.ErrInterrupted) {
				// A kick or a stray signal. Clear the request before
				// looking at the stop flag (set before the kick), so a
				// kick is never lost.
				cpu.SetImmediateExit(false)
				if ch := v.debugReq.Swap(nil); ch != nil {
					*ch <- v.debugState()
				}
				d.stats.kicks.Add(1)
				d.stats.exits[exitKick].Add(1)
				continue
			}
			if errors.Is(err, unix.EFAULT) {
				where := "an address"
				if exit.Reason == kvm.ExitMemoryFault {
					where = fmt.Sprintf("gpa %#x", exit.MMIO.Addr)
				}
				d.crash(v, fmt.Sprintf("guest touched %s with no accessible backing (an unmapped grant-window page, or an empty frame?): %v", where, err), -1)
				return
			}
			d.crash(v, fmt.Sprintf("KVM_RUN failed: %v", err), -1)
			return
		}
		v.handle(exit)
	}
}

// handle dispatches one decoded exit.
func (v *vcpu) handle(exit kvm.Exit) {
	d := v.ctx.Domain
	d.stats.exits[exitKind(exit.Reason)].Add(1)
	switch exit.Reason {
	case kvm.ExitIO:
		d.stats.pioExits.Add(1)
		io := exit.IO
		if io.Port-PortSerial < 8 { // the UART's eight registers
			d.stats.consoleExits.Add(1)
		}
		if !d.bus.Dispatch(&v.ctx, io.Port, io.Dir == kvm.IODirIn, int(io.Size), io.Data) {
			d.stats.unknownPorts.Add(1)
		}
	case kvm.ExitMMIO:
		d.stats.mmioExits.Add(1)
		m := exit.MMIO
		switch classifyMMIO(m.Addr, len(m.Data), m.IsWrite) {
		case mmioDoorbell:
			d.stats.doorbells.Add(1)
			dispatchHypercall(&v.ctx, le32(m.Data))
			return
		case mmioDoorbellRead, mmioDoorbellBad:
			// A hostile or buggy guest's access: the page reads as
			// all-ones (below), writes are ignored, RAX is left alone,
			// and the domain runs on. Only the count tells.
			d.stats.doorbellBad.Add(1)
		}
		// No MMIO devices outside the in-kernel irqchip: reads see
		// all-ones, writes vanish. A write to the read-only half of the
		// grant window comes here too (KVM_MEM_READONLY): dropped when a
		// page is mapped there, a fault when none is.
		if a := exit.MMIO.Addr; exit.MMIO.IsWrite && inReadOnlyWindow(a) && !d.window.roWriteDropped(a) {
			d.crash(v, fmt.Sprintf("guest wrote to gpa %#x, an unmapped page of the read-only grant window", a), -1)
			return
		}
		if !exit.MMIO.IsWrite {
			for i := range exit.MMIO.Data {
				exit.MMIO.Data[i] = 0xFF
			}
		}
	case kvm.ExitIntr, kvm.ExitHLT:
		// Nothing to do; the loop re-checks the stop flag.
	case kvm.ExitShutdown:
		d.crash(v, "triple fault (KVM_EXIT_SHUTDOWN)", -1)
	case kvm.ExitInternalError:
		d.crash(v, fmt.Sprintf("KVM internal error: %v", exit), -1)
	case kvm.ExitFailEntry:
		d.crash(v, fmt.Sprintf("VM entry failed: %v", exit), -1)
	case kvm.ExitSystemEvent:
		d.finish(Result{Kind: Stopped, Reason: fmt.Sprintf("guest system event %d", exit.Suberror)})
	default:
		d.crash(v, fmt.Sprintf("unexpected exit %v", exit), -1)
	}
}
