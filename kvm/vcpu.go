package kvm

import (
	"errors"
	"fmt"

	gokvm "github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"
)

// ErrInterrupted is returned by VCPU.Run when KVM_RUN returned EINTR: a
// signal arrived or immediate_exit was set. It is never retried here; the
// caller decides whether it was a kick.
var ErrInterrupted = errors.New("KVM_RUN interrupted")

// Regs mirrors struct kvm_regs.
type Regs = gokvm.Regs

// Sregs mirrors struct kvm_sregs.
type Sregs = gokvm.Sregs

// Segment mirrors struct kvm_segment.
type Segment = gokvm.Segment

// Descriptor mirrors struct kvm_dtable.
type Descriptor = gokvm.Descriptor

// VCPU is one virtual CPU: its descriptor and its mapped kvm_run area.
// Run must be called from one goroutine at a time (normally a goroutine
// locked to its OS thread); SetImmediateExit may be called from any.
type VCPU struct {
	fd     uintptr
	id     int
	runMem []byte
	run    *Run
}

// ID is the vCPU index given to CreateVCPU (also its APIC ID).
func (c *VCPU) ID() int { return c.id }

// Close unmaps kvm_run and closes the descriptor.
func (c *VCPU) Close() error {
	var errs []error
	if c.runMem != nil {
		if err := unix.Munmap(c.runMem); err != nil {
			errs = append(errs, fmt.Errorf("munmap kvm_run: %w", err))
		}
		c.runMem, c.run = nil, nil
	}
	if err := unix.Close(int(c.fd)); err != nil {
		errs = append(errs, fmt.Errorf("close vCPU fd: %w", err))
	}
	return errors.Join(errs...)
}

// RunData gives direct access to the shared kvm_run structure.
func (c *VCPU) RunData() *Run { return c.run }

// Regs reads the general registers with KVM_GET_REGS.
func (c *VCPU) Regs() (*Regs, error) {
	r, err := retryVal(func() (*Regs, error) { return gokvm.GetRegs(c.fd) })
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_REGS vcpu=%d: %w", c.id, err)
	}
	return r, nil
}

// SetRegs writes the general registers with KVM_SET_REGS.
func (c *VCPU) SetRegs(r *Regs) error {
	if err := retry(func() error { return gokvm.SetRegs(c.fd, r) }); err != nil {
		return fmt.Errorf("KVM_SET_REGS vcpu=%d: %w", c.id, err)
	}
	return nil
}

// Sregs reads the special registers with KVM_GET_SREGS.
func (c *VCPU) Sregs() (*Sregs, error) {
	s, err := retryVal(func() (*Sregs, error) { return gokvm.GetSregs(c.fd) })
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_SREGS vcpu=%d: %w", c.id, err)
	}
	return s, nil
}

// SetSregs writes the special registers with KVM_SET_SREGS.
func (c *VCPU) SetSregs(s *Sregs) error {
	if err := retry(func() error { return gokvm.SetSregs(c.fd, s) }); err != nil {
		return fmt.Errorf("KVM_SET_SREGS vcpu=%d: %w", c.id, err)
	}
	return nil
}

// SetCPUID installs the CPUID table with KVM_SET_CPUID2.
func (c *VCPU) SetCPUID(entries []CPUIDEntry) error {
	t := &gokvm.CPUID{Nent: uint32(len(entries)), Entries: entries}
	if err := retry(func() error { return gokvm.SetCPUID2(c.fd, t) }); err != nil {
		return fmt.Errorf("KVM_SET_CPUID2 vcpu=%d (%d entries): %w", c.id, len(entries), err)
	}
	return nil
}

// Run enters the guest once with KVM_RUN and decodes why it came back.
// EINTR is returned as ErrInterrupted with the exit reason KVM_EXIT_INTR; any
// other error is returned as is. It does not allocate.
func (c *VCPU) Run() (Exit, error) {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, c.fd, ioctlRun, 0)
	if e != 0 {
		if e == unix.EINTR {
			return Exit{Reason: ExitIntr}, ErrInterrupted
		}
		// With KVM_CAP_MEMORY_FAULT_INFO an EFAULT comes with
		// KVM_EXIT_MEMORY_FAULT naming the guest-physical address.
		return c.decodeExit(), kvmRunError{vcpu: c.id, errno: e}
	}
	return c.decodeExit(), nil
}

// kvmRunError names the failing ioctl without allocating on the EINTR path.
type kvmRunError struct {
	vcpu  int
	errno unix.Errno
}

func (e kvmRunError) Error() string {
	return fmt.Sprintf("KVM_RUN vcpu=%d: %v", e.vcpu, e.errno)
}

func (e kvmRunError) Unwrap() error { return e.errno }

// SetRunnable puts the vCPU in KVM_MP_STATE_RUNNABLE. With the in-kernel
// irqchip every vCPU but 0 starts waiting for INIT/SIPI; argovisor starts
// them all directly in long mode instead.
func (c *VCPU) SetRunnable() error {
	if err := retry(func() error { return gokvm.SetMPState(c.fd, &gokvm.MPState{State: gokvm.MPStateRunnable}) }); err != nil {
		return fmt.Errorf("KVM_SET_MP_STATE runnable vcpu=%d: %w", c.id, err)
	}
	return nil
}

// TSCKHz returns the guest TSC frequency (KVM_GET_TSC_KHZ), to turn
// guest-measured cycles into time.
func (c *VCPU) TSCKHz() (uint64, error) {
	khz, err := retryVal(func() (uint64, error) { return gokvm.GetTSCKHz(c.fd) })
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_TSC_KHZ vcpu=%d: %w", c.id, err)
	}
	return khz, nil
}
