package vmm

import (
	"testing"
	"time"

	"github.com/argovisor/argovisor/hcall"
)

var _ hcall.Blocker = caller{}

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
