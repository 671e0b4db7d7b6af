package kvm

import (
	"errors"
	"fmt"
	"os"

	gokvm "github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"
)

// APIVersion is the only KVM API version this package speaks.
const APIVersion = 12

// Sentinel errors for an unusable /dev/kvm, so callers can tell the user
// which of the usual problems they have.
var (
	ErrNoDevice         = errors.New("KVM device not found (is the kvm module loaded?)")
	ErrPermission       = errors.New("permission denied opening the KVM device (add the user to group kvm or run as root)")
	ErrAPIVersion       = errors.New("unsupported KVM API version")
	ErrMissingExtension = errors.New("required KVM capability missing")
)

// System is an open /dev/kvm.
type System struct {
	f        *os.File // kept so the descriptor is not closed by a finaliser
	fd       uintptr
	mmapSize int
	cpuid    []CPUIDEntry
}

// OpenSystem opens the KVM device at path (normally /dev/kvm), checks the API
// version and every capability in RequiredCapabilities.
func OpenSystem(path string) (*System, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("open %s: %w", path, ErrNoDevice)
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("open %s: %w", path, ErrPermission)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &System{f: f, fd: f.Fd()}
	v, err := retryVal(func() (uintptr, error) { return gokvm.GetAPIVersion(s.fd) })
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	if v != APIVersion {
		s.Close()
		return nil, fmt.Errorf("%w: %d (want %d)", ErrAPIVersion, v, APIVersion)
	}
	for _, c := range RequiredCapabilities {
		n, err := s.CheckExtension(c)
		if err != nil {
			s.Close()
			return nil, err
		}
		if n == 0 {
			s.Close()
			return nil, fmt.Errorf("%w: %v", ErrMissingExtension, c)
		}
	}
	if n, _ := s.CheckExtension(CapSyncRegs); n&(SyncGPRs|SyncSregs) != SyncGPRs|SyncSregs {
		s.Close()
		return nil, fmt.Errorf("%w: %v lacks REGS|SREGS (has %#x)", ErrMissingExtension, CapSyncRegs, n)
	}
	sz, err := retryVal(func() (uintptr, error) { return gokvm.GetVCPUMMmapSize(s.fd) })
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	if sz < sizeofRun {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %d is smaller than struct kvm_run (%d)", sz, sizeofRun)
	}
	s.mmapSize = int(sz)
	if s.cpuid, err = supportedCPUID(s.fd); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// CheckExtension returns KVM_CHECK_EXTENSION's answer for c (0 = absent).
func (s *System) CheckExtension(c Capability) (int, error) {
	n, err := retryVal(func() (uintptr, error) { return gokvm.Ioctl(s.fd, ioctlCheckExtension, uintptr(c)) })
	if err != nil {
		return 0, fmt.Errorf("KVM_CHECK_EXTENSION %v: %w", c, err)
	}
	return int(n), nil
}

// SupportedCPUID returns a copy of KVM_GET_SUPPORTED_CPUID.
func (s *System) SupportedCPUID() []CPUIDEntry {
	return append([]CPUIDEntry(nil), s.cpuid...)
}

// Close closes /dev/kvm. VMs created from it stay valid.
func (s *System) Close() error { return s.f.Close() }

// CreateVM creates a VM with no memory, vCPUs or devices.
func (s *System) CreateVM() (*VM, error) {
	fd, err := retryVal(func() (uintptr, error) { return gokvm.CreateVM(s.fd) })
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	return &VM{fd: fd, sys: s}, nil
}

// CPUIDEntry mirrors struct kvm_cpuid_entry2.
type CPUIDEntry = gokvm.CPUIDEntry2

func supportedCPUID(fd uintptr) ([]CPUIDEntry, error) {
	for n := 128; n <= 4096; n *= 2 {
		c := &gokvm.CPUID{Nent: uint32(n), Entries: make([]CPUIDEntry, n)}
		err := retry(func() error { return gokvm.GetSupportedCPUID(fd, c) })
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
		}
		return c.Entries[:c.Nent], nil
	}
	return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", unix.E2BIG)
}
