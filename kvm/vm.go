package kvm

import (
	"errors"
	"fmt"

	gokvm "github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"
)

// VM is one KVM virtual machine. It owns its file descriptor.
type VM struct {
	fd  uintptr
	sys *System
}

// Close closes the VM descriptor. vCPUs must be closed first.
func (vm *VM) Close() error {
	if err := unix.Close(int(vm.fd)); err != nil {
		return fmt.Errorf("close VM fd: %w", err)
	}
	return nil
}

// Memory slot flags (KVM_MEM_*).
const (
	MemLogDirtyPages = 1 << 0
	MemReadonly      = 1 << 1
)

// SetUserMemoryRegion installs, moves or (size 0) deletes memory slot slot.
func (vm *VM) SetUserMemoryRegion(slot, flags uint32, gpa, size uint64, host uintptr) error {
	r := gokvm.UserspaceMemoryRegion{Slot: slot, Flags: flags, GuestPhysAddr: gpa, MemorySize: size, UserspaceAddr: uint64(host)}
	if err := retry(func() error { return gokvm.SetUserMemoryRegion(vm.fd, &r) }); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot=%d gpa=%#x size=%#x: %w", slot, gpa, size, err)
	}
	return nil
}

// SetTSSAddr places the three pages KVM needs for real-mode emulation on
// Intel hosts.
func (vm *VM) SetTSSAddr(addr uint32) error {
	if err := retry(func() error { return gokvm.SetTSSAddr(vm.fd, addr) }); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR %#x: %w", addr, err)
	}
	return nil
}

// CreateIRQChip creates the in-kernel PIC, IOAPIC and local APICs. It must be
// called before any vCPU is created.
func (vm *VM) CreateIRQChip() error {
	if err := retry(func() error { return gokvm.CreateIRQChip(vm.fd) }); err != nil {
		return fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
	}
	return nil
}

// IRQLine sets the level of an in-kernel irqchip input (GSI).
func (vm *VM) IRQLine(gsi, level uint32) error {
	l := irqLevel{IRQ: gsi, Level: level}
	if err := retry(func() error { _, err := ioctlPtr(vm.fd, ioctlIRQLine, ptr(&l)); return err }); err != nil {
		return fmt.Errorf("KVM_IRQ_LINE gsi=%d level=%d: %w", gsi, level, err)
	}
	return nil
}

// MSIAddress returns the x86 MSI address that targets the local APIC with
// the given ID in physical destination mode.
func MSIAddress(apicID uint8) uint64 { return 0xFEE00000 | uint64(apicID)<<12 }

// SignalMSI injects one message-signalled interrupt. It returns whether the
// interrupt was delivered (false: no APIC matched, or the target APIC
// dropped it, e.g. because it is software-disabled). Safe to call from any goroutine.
func (vm *VM) SignalMSI(addr uint64, data uint32) (bool, error) {
	m := msi{AddressLo: uint32(addr), AddressHi: uint32(addr >> 32), Data: data}
	n, err := retryVal(func() (uintptr, error) { return ioctlPtr(vm.fd, ioctlSignalMSI, ptr(&m)) })
	if errors.Is(err, unix.EPERM) {
		// The kernel's -1: no local APIC matched the destination.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("KVM_SIGNAL_MSI addr=%#x data=%#x: %w", addr, data, err)
	}
	return n > 0, nil
}

// IRQFD makes a write to eventfd efd raise GSI gsi (resample disabled).
func (vm *VM) IRQFD(efd int, gsi uint32) error {
	r := irqfd{FD: uint32(efd), GSI: gsi}
	if err := retry(func() error { _, err := ioctlPtr(vm.fd, ioctlIRQFD, ptr(&r)); return err }); err != nil {
		return fmt.Errorf("KVM_IRQFD fd=%d gsi=%d: %w", efd, gsi, err)
	}
	return nil
}

// RemoveIRQFD undoes IRQFD.
func (vm *VM) RemoveIRQFD(efd int, gsi uint32) error {
	r := irqfd{FD: uint32(efd), GSI: gsi, Flags: 1 /* KVM_IRQFD_FLAG_DEASSIGN */}
	if err := retry(func() error { _, err := ioctlPtr(vm.fd, ioctlIRQFD, ptr(&r)); return err }); err != nil {
		return fmt.Errorf("KVM_IRQFD deassign fd=%d gsi=%d: %w", efd, gsi, err)
	}
	return nil
}

// IOEventFD flags.
const (
	IOEventFDDatamatch = 1 << 0
	IOEventFDPIO       = 1 << 1
	IOEventFDDeassign  = 1 << 2
)

// IOEventFD makes guest writes of length len to addr signal efd inside the
// kernel instead of exiting to userspace. flags is a mask of IOEventFD*.
func (vm *VM) IOEventFD(efd int, addr uint64, length uint32, datamatch uint64, flags uint32) error {
	r := ioeventfd{Datamatch: datamatch, Addr: addr, Len: length, FD: int32(efd), Flags: flags}
	if err := retry(func() error { _, err := ioctlPtr(vm.fd, ioctlIOEventFD, ptr(&r)); return err }); err != nil {
		return fmt.Errorf("KVM_IOEVENTFD addr=%#x len=%d: %w", addr, length, err)
	}
	return nil
}

// EnableCap enables a VM capability with KVM_ENABLE_CAP.
func (vm *VM) EnableCap(c Capability, args ...uint64) error {
	e := enableCap{Cap: uint32(c)}
	copy(e.Args[:], args)
	if err := retry(func() error { _, err := ioctlPtr(vm.fd, ioctlEnableCap, ptr(&e)); return err }); err != nil {
		return fmt.Errorf("KVM_ENABLE_CAP %v: %w", c, err)
	}
	return nil
}

// CreateVCPU creates vCPU id and maps its kvm_run area.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := retryVal(func() (uintptr, error) { return gokvm.CreateVCPU(vm.fd, id) })
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, err)
	}
	c := &VCPU{fd: fd, id: id}
	if err := c.mapRun(vm.sys.mmapSize); err != nil {
		unix.Close(int(fd))
		return nil, err
	}
	return c, nil
}

// irqLevel mirrors struct kvm_irq_level.
type irqLevel struct {
	IRQ   uint32
	Level uint32
}

// msi mirrors struct kvm_msi.
type msi struct {
	AddressLo uint32
	AddressHi uint32
	Data      uint32
	Flags     uint32
	DevID     uint32
	_         [12]uint8
}

// irqfd mirrors struct kvm_irqfd.
type irqfd struct {
	FD         uint32
	GSI        uint32
	Flags      uint32
	ResampleFD uint32
	_          [16]uint8
}

// ioeventfd mirrors struct kvm_ioeventfd.
type ioeventfd struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	FD        int32
	Flags     uint32
	_         [36]uint8
}

// enableCap mirrors struct kvm_enable_cap.
type enableCap struct {
	Cap   uint32
	Flags uint32
	Args  [4]uint64
	_     [64]uint8
}
