package vmm

import (
	"time"

	"github.com/argovisor/argovisor/hcall"
)

// Block implements hcall.Blocker: the hypercall's vCPU goroutine sleeps
// in the VMM (Argo's wait operations) until wake is ready, the timeout
// passes, or the vCPU must go back to its loop — it was kicked (a stop
// sets the stop flag before kicking), or an interrupt was sent to it.
func (c caller) Block(wake <-chan struct{}, timeout time.Duration) hcall.BlockResult {
	return block(wake, c.h.Domain.vcpus[c.h.Index].intr, timeout)
}

// block is Block over the vCPU's interrupt token channel. A token already
// there wins over sleeping: it came during this hypercall (the loop drains
// older ones), so whatever it stands for must be seen now.
func block(wake, intr <-chan struct{}, timeout time.Duration) hcall.BlockResult {
	select {
	case <-intr:
		return hcall.Interrupted
	default:
	}
	var expired <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-wake:
		return hcall.Woken
	case <-expired:
		return hcall.TimedOut
	case <-intr:
		return hcall.Interrupted
	}
}
