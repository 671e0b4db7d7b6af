package vmm

import (
	"time"

	"github.com/argovisor/argovisor/hcall"
)

// Block implements hcall.Blocker: the hypercall's vCPU goroutine sleeps
// in the VMM (Argo's wait operations) until wake is ready, the timeout
// passes, or the vCPU must go back to its loop — it was kicked (a stop
// sets the stop flag before kicking), or an interrupt was sent to it.
// Before it sleeps it may poll for a while (waitPoll).
func (c caller) Block(wake <-chan struct{}, timeout time.Duration) hcall.BlockResult {
	d := c.h.Domain
	v := d.vcpus[c.h.Index]
	r := v.poll.block(wake, v.intr, timeout, time.Now)
	if v.poll.polled {
		d.stats.waitsPolled.Add(1)
	} else {
		d.stats.waitsSlept.Add(1)
	}
	return r
}

// DefaultWaitPoll is the longest a vCPU polls before it sleeps in a wait
// (Options.WaitPoll): KVM's own default for halt polling on x86, and on
// these hosts about what a partner takes to answer (two exits).
const DefaultWaitPoll = 200 * time.Microsecond

// waitPollStart is the first window after a wait that would have been
// served by polling; each such wait doubles it up to the maximum.
const waitPollStart = 10 * time.Microsecond

// waitPoll is a vCPU's adaptive polling window for waits in the VMM, the
// same idea as KVM's halt polling. A thread that sleeps in a wait and is
// woken from another CPU costs, on a host that is itself a VM, about one
// more exit each way: its CPU went idle, and waking it takes the host's
// hypervisor. When the answer tends to come within max, polling for it
// instead saves that; when it does not, polling only burns CPU, so the
// window shrinks to nothing after a wait that polling could not have
// served, and grows again (from waitPollStart, doubling) after each that
// it could have. Only the vCPU's own goroutine touches it.
type waitPoll struct {
	max    time.Duration // 0: never poll
	window time.Duration
	// polled says whether the last block ended while polling.
	polled bool
}

// block is Block over the vCPU's interrupt token channel. A token already
// there wins over sleeping: it came during this hypercall (the loop drains
// older ones), so whatever it stands for must be seen now.
func (p *waitPoll) block(wake, intr <-chan struct{}, timeout time.Duration, now func() time.Time) hcall.BlockResult {
	p.polled = false
	select {
	case <-intr:
		return hcall.Interrupted
	default:
	}
	start := now()
	if w := p.window; w > 0 && (timeout < 0 || timeout > w) {
		for i := 0; ; i++ {
			select {
			case <-wake:
				p.polled = true
				return hcall.Woken
			case <-intr:
				p.polled = true
				return hcall.Interrupted
			default:
			}
			// Reading the clock costs more than a look at the channels.
			if i%16 == 15 && now().Sub(start) >= w {
				break
			}
		}
	}
	r := sleep(wake, intr, timeout-now().Sub(start), timeout < 0)
	p.adapt(r, now().Sub(start))
	return r
}

// adapt sets the next window from how long a wait that slept took. The
// time includes waking up, which is what polling saves, so an answer
// that came within twice the limit counts as one a full window could
// have caught once both sides poll.
func (p *waitPoll) adapt(r hcall.BlockResult, took time.Duration) {
	switch {
	case p.max <= 0:
		p.window = 0
	case r == hcall.Woken && took <= 2*p.max:
		p.window = min(max(2*p.window, waitPollStart), p.max)
	default:
		// Too late, timed out or interrupted: polling burnt the window
		// for nothing. Halving (not dropping it) rides out one slow
		// answer among fast ones; a few in a row stop polling.
		if p.window /= 2; p.window < waitPollStart {
			p.window = 0
		}
	}
}

// sleep waits for wake, intr or the timeout (none when forever).
func sleep(wake, intr <-chan struct{}, timeout time.Duration, forever bool) hcall.BlockResult {
	var expired <-chan time.Time
	if !forever {
		if timeout <= 0 {
			select {
			case <-wake:
				return hcall.Woken
			case <-intr:
				return hcall.Interrupted
			default:
				return hcall.TimedOut
			}
		}
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
