package vmm

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/argovisor/argovisor/kvm"
)

// MeasureBareExits is the floor for exit benchmarks: it runs vCPU 0 of a
// domain that has not been started in a minimal KVM_RUN loop on the
// calling goroutine — no decoding beyond the exit reason, no sync
// registers, no devices, no result written back — until the guest's first
// hypercall, then times n more KVM_RUN round trips. The guest must trap to
// the hypercall port in a loop (the benchloop program). Interrupted runs
// (the Go runtime's preemption signal) are retried and not counted.
func (d *Domain) MeasureBareExits(n int) (time.Duration, error) {
	if d.started.Load() {
		return 0, errors.New("MeasureBareExits: domain already started")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := d.vcpus[0].ctx.cpu
	cpu.RunData().ValidRegs = 0
	for first := true; ; first = false {
		e, err := cpu.Run()
		if errors.Is(err, kvm.ErrInterrupted) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if e.Reason == kvm.ExitIO && e.IO.Port == PortHypercall {
			break
		}
		if e.Reason != kvm.ExitIO || first && e.IO.Port == PortExit {
			return 0, fmt.Errorf("MeasureBareExits: unexpected exit %v before the first hypercall", e)
		}
	}
	start := time.Now()
	for i := 0; i < n; {
		e, err := cpu.Run()
		if errors.Is(err, kvm.ErrInterrupted) {
			continue
		}
		if err != nil || e.Reason != kvm.ExitIO {
			return 0, fmt.Errorf("MeasureBareExits: exit %v, %v", e, err)
		}
		i++
	}
	return time.Since(start), nil
}
