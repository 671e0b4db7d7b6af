package kvm

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Run mirrors struct kvm_run on x86-64 up to and including the sync
// register area (offset 304, padded to 2048 bytes in the kernel's union).
type Run struct {
	RequestInterruptWindow     uint8
	ImmediateExit              uint8
	_                          [6]uint8
	ExitReason                 uint32
	ReadyForInterruptInjection uint8
	IfFlag                     uint8
	Flags                      uint16
	CR8                        uint64
	APICBase                   uint64
	exit                       [256]byte // the exit-reason union
	ValidRegs                  uint64    // kvm_valid_regs
	DirtyRegs                  uint64    // kvm_dirty_regs
	Sync                       SyncRegs
	_                          [2048 - sizeofSyncRegs]byte
}

// SyncRegs mirrors struct kvm_sync_regs.
type SyncRegs struct {
	Regs   Regs
	Sregs  Sregs
	Events [64]byte // struct kvm_vcpu_events, unused here
}

// kvm_run union members.
type runIO struct {
	Direction  uint8
	Size       uint8
	Port       uint16
	Count      uint32
	DataOffset uint64
}

type runMMIO struct {
	PhysAddr uint64
	Data     [8]byte
	Len      uint32
	IsWrite  uint8
}

type runInternal struct {
	Suberror uint32
	NData    uint32
	Data     [16]uint64
}

func (c *VCPU) mapRun(size int) error {
	mem, err := unix.Mmap(int(c.fd), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap kvm_run vcpu=%d: %w", c.id, err)
	}
	c.runMem = mem
	c.run = (*Run)(unsafe.Pointer(&mem[0]))
	return nil
}

// SetImmediateExit sets or clears kvm_run.immediate_exit. It is safe to call
// from any goroutine: the first 32-bit word of kvm_run holds
// request_interrupt_window (always 0 here), immediate_exit and padding, so a
// 32-bit atomic store publishes the byte without tearing.
func (c *VCPU) SetImmediateExit(on bool) {
	var v uint32
	if on {
		v = 1 << 8
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(c.run)), v)
}

// decodeExit reads the exit union for the current exit reason.
func (c *VCPU) decodeExit() Exit {
	r := c.run
	e := Exit{Reason: ExitReason(r.ExitReason)}
	u := unsafe.Pointer(&r.exit[0])
	switch e.Reason {
	case ExitIO:
		io := (*runIO)(u)
		n := int(io.Size) * int(io.Count)
		off := int(io.DataOffset)
		if off < 0 || off+n > len(c.runMem) || off+n < off {
			// A kernel bug would be needed for this; report an empty buffer
			// rather than slicing out of the mapping.
			n, off = 0, 0
		}
		e.IO = IOExit{Port: io.Port, Dir: io.Direction, Size: io.Size, Count: io.Count, Data: c.runMem[off : off+n : off+n]}
	case ExitMMIO:
		m := (*runMMIO)(u)
		l := min(int(m.Len), len(m.Data))
		e.MMIO = MMIOExit{Addr: m.PhysAddr, Data: m.Data[:l:l], IsWrite: m.IsWrite != 0}
	case ExitInternalError, ExitSystemEvent:
		in := (*runInternal)(u)
		e.Suberror = in.Suberror
		e.Data = in.Data[:min(int(in.NData), len(in.Data))]
	case ExitFailEntry:
		e.HardwareReason = *(*uint64)(u)
	case ExitMemoryFault:
		// struct { u64 flags; u64 gpa; u64 size; } memory_fault
		e.MMIO.Addr = *(*uint64)(unsafe.Add(u, 8))
	}
	return e
}
