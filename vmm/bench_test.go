package vmm

import (
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/argovisor/argovisor/kvm"
)

// benchGuest returns the benchloop guest, skipping when it is not built or
// KVM is unusable (benchmarks are not part of make test).
func benchGuest(b *testing.B) string {
	p, _ := filepath.Abs("../build/guests/benchloop.elf")
	if _, err := os.Stat(p); err != nil {
		b.Skip("build/guests/benchloop.elf missing: run make guests")
	}
	return p
}

func benchVMM(b *testing.B) *VMM {
	v, err := New(Options{Console: func(*Domain, string) {}})
	if err != nil {
		b.Skipf("no KVM: %v", err)
	}
	b.Cleanup(func() { v.Close() })
	return v
}

// BenchmarkExitBare is the floor: a minimal KVM_RUN loop on the benchloop
// guest (one OUT per iteration), with no decoding beyond the exit reason,
// no sync registers and no result written back.
func BenchmarkExitBare(b *testing.B) {
	for _, tc := range []struct {
		name  string
		valid uint64
	}{{"nosync", 0}, {"regs", kvm.SyncGPRs}, {"regs+sregs", kvm.SyncGPRs | kvm.SyncSregs}} {
		b.Run(tc.name, func(b *testing.B) { benchExitBare(b, tc.valid) })
	}
}

func benchExitBare(b *testing.B, valid uint64) {
	v := benchVMM(b)
	d, err := v.CreateDomain(DomainConfig{Name: "bare", Kernel: benchGuest(b), Memory: 16 << 20, VCPUs: 1})
	if err != nil {
		b.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := d.vcpus[0].ctx.cpu
	// Run up to the first hypercall (past the console output).
	for {
		e, err := cpu.Run()
		if err != nil {
			b.Fatal(err)
		}
		if e.Reason == kvm.ExitIO && e.IO.Port == PortHypercall {
			break
		}
	}
	cpu.RunData().ValidRegs = valid
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, err := cpu.Run()
		if err == kvm.ErrInterrupted {
			// The Go runtime's preemption signal can land in KVM_RUN.
			i--
			continue
		}
		if err != nil || e.Reason != kvm.ExitIO {
			b.Fatalf("exit %v, %v", e, err)
		}
	}
}

// BenchmarkExitDispatcher is the same guest loop through the real vCPU
// goroutine: exit decoding, bus lookup, hypercall decode from sync
// registers, handler dispatch and RAX written back.
func BenchmarkExitDispatcher(b *testing.B) {
	v := benchVMM(b)
	var n atomic.Int64
	target := int64(b.N)
	done := make(chan struct{})
	v.SetHypercall(HypercallNull, func(*Hypercall) int64 {
		if n.Add(1) == target {
			close(done)
		}
		return 0
	})
	d, err := v.CreateDomain(DomainConfig{Name: "disp", Kernel: benchGuest(b), Memory: 16 << 20, VCPUs: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	<-d.FirstOutput()
	b.ResetTimer()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("benchmark guest stalled")
	}
	b.StopTimer()
	d.Stop("benchmark done")
	d.Wait()
}
