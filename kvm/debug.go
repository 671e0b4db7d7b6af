package kvm

import (
	"encoding/binary"
	"fmt"
)

// The state a hung vCPU is diagnosed by: what KVM_GET_LAPIC,
// KVM_GET_MP_STATE and KVM_GET_VCPU_EVENTS return. These requests are for
// diagnosis (a test that waited too long); like every vCPU ioctl they wait
// for a running KVM_RUN to return, so call them from the vCPU's own thread
// between runs.

// LAPICState mirrors struct kvm_lapic_state: the local APIC's register
// page, each 32-bit register at its architectural offset.
type LAPICState struct {
	Regs [1024]byte
}

// Reg reads the 32-bit register at offset off (0x80 TPR, 0xA0 PPR, 0xF0
// SVR, 0x100 ISR, 0x180 TMR, 0x200 IRR, ...).
func (s *LAPICState) Reg(off int) uint32 { return binary.LittleEndian.Uint32(s.Regs[off:]) }

// Vectors lists the vectors set in the 256-bit register starting at off
// (ISR 0x100, TMR 0x180, IRR 0x200: eight 32-bit words, 16 bytes apart).
func (s *LAPICState) Vectors(off int) []int {
	var v []int
	for w := 0; w < 8; w++ {
		bits := s.Reg(off + 0x10*w)
		for b := 0; b < 32; b++ {
			if bits&(1<<b) != 0 {
				v = append(v, 32*w+b)
			}
		}
	}
	return v
}

// MP states (KVM_MP_STATE_*).
const (
	MPStateRunnable = 0
	MPStateHalted   = 3
)

// VCPUEvents mirrors struct kvm_vcpu_events (pending and injected events,
// the interrupt shadow).
type VCPUEvents struct {
	Exception struct {
		Injected, Nr, HasErrorCode, Pending uint8
		ErrorCode                           uint32
	}
	Interrupt struct {
		Injected, Nr, Soft, Shadow uint8
	}
	NMI struct {
		Injected, Pending, Masked, Pad uint8
	}
	SIPIVector uint32
	Flags      uint32
	SMI        struct {
		SMM, Pending, SMMInsideNMI, LatchedInit uint8
	}
	TripleFaultPending  uint8
	Reserved            [26]uint8
	ExceptionHasPayload uint8
	ExceptionPayload    uint64
}

// LAPIC reads the local APIC's state (KVM_GET_LAPIC).
func (c *VCPU) LAPIC() (*LAPICState, error) {
	var s LAPICState
	if err := retry(func() error { _, err := ioctlPtr(c.fd, ioctlGetLAPIC, ptr(&s)); return err }); err != nil {
		return nil, fmt.Errorf("KVM_GET_LAPIC vcpu=%d: %w", c.id, err)
	}
	return &s, nil
}

// MPState reads the vCPU's multiprocessing state (KVM_GET_MP_STATE).
func (c *VCPU) MPState() (uint32, error) {
	var s uint32
	if err := retry(func() error { _, err := ioctlPtr(c.fd, ioctlGetMPState, ptr(&s)); return err }); err != nil {
		return 0, fmt.Errorf("KVM_GET_MP_STATE vcpu=%d: %w", c.id, err)
	}
	return s, nil
}

// Events reads the vCPU's pending and injected events (KVM_GET_VCPU_EVENTS).
func (c *VCPU) Events() (*VCPUEvents, error) {
	var e VCPUEvents
	if err := retry(func() error { _, err := ioctlPtr(c.fd, ioctlGetVCPUEvents, ptr(&e)); return err }); err != nil {
		return nil, fmt.Errorf("KVM_GET_VCPU_EVENTS vcpu=%d: %w", c.id, err)
	}
	return &e, nil
}
