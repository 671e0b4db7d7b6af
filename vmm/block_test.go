package vmm

import (
	"testing"
	"time"

	"github.com/argovisor/argovisor/hcall"
)

var _ hcall.Blocker = caller{}

// block without polling: the behaviour every window keeps.
func block(wake, intr <-chan struct{}, timeout time.Duration) hcall.BlockResult {
	var p waitPoll
	return p.block(wake, intr, timeout, time.Now)
}

func TestBlock(t *testing.T) {
	intr := make(chan struct{}, 1)
	wake := make(chan struct{})
	v := &vcpu{intr: intr}

	// A token already there (an interrupt or kick during this hypercall)
	// wins over sleeping, and is used up.
	v.interrupt()
	v.interrupt() // coalesces, never blocks
	if r := block(wake, intr, -1); r != hcall.Interrupted {
		t.Fatalf("pending token: %v", r)
	}
	if len(intr) != 0 {
		t.Fatal("token not consumed")
	}
	if r := block(wake, intr, time.Millisecond); r != hcall.TimedOut {
		t.Fatalf("timeout: %v", r)
	}
	if r := block(wake, intr, 0); r != hcall.TimedOut {
		t.Fatalf("zero timeout: %v", r)
	}
	// A token that arrives while sleeping interrupts; so does a wake.
	for _, tc := range []struct {
		name string
		do   func()
		want hcall.BlockResult
	}{
		{"interrupt while blocked", v.interrupt, hcall.Interrupted},
		{"wake while blocked", func() { close(wake) }, hcall.Woken},
	} {
		done := make(chan hcall.BlockResult)
		go func() { done <- block(wake, intr, -1) }()
		tc.do()
		if r := <-done; r != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, r, tc.want)
		}
	}
}

// The caller finds its vCPU's token channel through the hypercall.
func TestCallerBlockUsesItsVCPU(t *testing.T) {
	d := &Domain{instance: &instance{}}
	d.vcpus = []*vcpu{{intr: make(chan struct{}, 1)}, {intr: make(chan struct{}, 1)}}
	h := &Hypercall{VCPUContext: &VCPUContext{Domain: d, Index: 1}}
	d.vcpus[0].interrupt() // another vCPU's interrupt does not end this wait
	if r := (caller{h}).Block(make(chan struct{}), time.Millisecond); r != hcall.TimedOut {
		t.Fatalf("vCPU 0's token ended vCPU 1's wait: %v", r)
	}
	d.vcpus[1].interrupt()
	if r := (caller{h}).Block(make(chan struct{}), -1); r != hcall.Interrupted {
		t.Fatalf("own token: %v", r)
	}
}

// The window grows (from waitPollStart, doubling, up to max) after each
// wait that slept and was woken within twice max, and halves after one
// that took longer, timed out or was interrupted, down to nothing under
// waitPollStart; a zero max never polls.
func TestWaitPollAdapts(t *testing.T) {
	p := waitPoll{max: 100 * time.Microsecond}
	us := time.Microsecond
	for _, step := range []struct {
		r    hcall.BlockResult
		took time.Duration
		want time.Duration
	}{
		{hcall.Woken, 50 * us, 10 * us},
		{hcall.Woken, 50 * us, 20 * us},
		{hcall.Woken, 200 * us, 40 * us}, // twice max still counts
		{hcall.Woken, 10 * us, 80 * us},
		{hcall.Woken, 10 * us, 100 * us}, // capped at max
		{hcall.Woken, 10 * us, 100 * us},
		{hcall.Woken, 201 * us, 50 * us}, // too late: halved
		{hcall.TimedOut, 1 * us, 25 * us},
		{hcall.Interrupted, 1 * us, 12500 * time.Nanosecond},
		{hcall.Interrupted, 1 * us, 0}, // under waitPollStart
		{hcall.Woken, 1 * us, 10 * us},
	} {
		p.adapt(step.r, step.took)
		if p.window != step.want {
			t.Fatalf("after %v in %v: window %v, want %v", step.r, step.took, p.window, step.want)
		}
	}
	off := waitPoll{}
	off.adapt(hcall.Woken, time.Microsecond)
	if off.window != 0 {
		t.Fatalf("max 0 polls: window %v", off.window)
	}
}

// A wake that comes while the vCPU polls ends the wait without sleeping
// and keeps the window; one that does not come in the window ends the
// poll by the clock, and the wait then sleeps until it comes.
func TestWaitPollBlock(t *testing.T) {
	intr := make(chan struct{}, 1)
	now := func() time.Time { return time.Unix(0, 0) }

	// The wake comes during the poll (at its third reading of the clock,
	// which never passes the window): no sleep, window unchanged.
	p := waitPoll{max: time.Millisecond, window: 500 * time.Microsecond}
	wake := make(chan struct{})
	looks := 0
	tick := func() time.Time {
		looks++
		if looks == 3 {
			close(wake)
		}
		return now()
	}
	if r := p.block(wake, intr, -1, tick); r != hcall.Woken || p.window != 500*time.Microsecond || !p.polled {
		t.Fatalf("wake while polling: %v, window %v, polled %v", r, p.window, p.polled)
	}

	// No wake in the window: the poll ends when the clock passes it, the
	// wait sleeps, and a wake long after (beyond twice max) halves the
	// window.
	p = waitPoll{max: 500 * time.Microsecond, window: 100 * time.Microsecond}
	wake = make(chan struct{})
	var reads int
	slow := func() time.Time {
		// Each reading 400µs later: the first check ends the poll, and
		// the whole wait has taken more than max when it adapts.
		reads++
		if reads == 3 { // the poll has ended: the wait is about to sleep
			go close(wake)
		}
		return time.Unix(0, 0).Add(time.Duration(reads) * 400 * time.Microsecond)
	}
	if r := p.block(wake, intr, -1, slow); r != hcall.Woken || p.window != 50*time.Microsecond || p.polled {
		t.Fatalf("wake after the window: %v, window %v (clock read %d times)", r, p.window, reads)
	}

	// An interrupt while polling ends the wait at once.
	p = waitPoll{max: time.Millisecond, window: time.Millisecond}
	intr <- struct{}{}
	if r := p.block(make(chan struct{}), intr, -1, now); r != hcall.Interrupted {
		t.Fatalf("interrupt: %v", r)
	}
	// A timeout no longer than the window skips polling.
	p = waitPoll{max: time.Millisecond, window: time.Millisecond}
	if r := p.block(make(chan struct{}), intr, time.Millisecond, time.Now); r != hcall.TimedOut {
		t.Fatalf("timeout inside the window: %v", r)
	}
}
