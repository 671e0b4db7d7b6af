package kvm

import "fmt"

// Exit is a decoded KVM_RUN exit. Reason selects which of the other fields
// are meaningful. Slices point into the vCPU's kvm_run page and are valid
// only until the next Run.
type Exit struct {
	Reason ExitReason

	// IO is set for ExitIO.
	IO IOExit
	// MMIO is set for ExitMMIO; for ExitMemoryFault only MMIO.Addr (the
	// guest-physical address) is.
	MMIO MMIOExit
	// Suberror and Data are set for ExitInternalError (KVM_INTERNAL_ERROR_*)
	// and ExitSystemEvent (event type in Suberror).
	Suberror uint32
	Data     []uint64
	// HardwareReason is set for ExitFailEntry.
	HardwareReason uint64
}

// IOExit describes a port I/O exit. For OUT, Data holds Size*Count bytes the
// guest wrote; for IN, the handler fills Data before the next Run.
type IOExit struct {
	Port  uint16
	Dir   uint8 // IODirIn or IODirOut
	Size  uint8 // 1, 2 or 4
	Count uint32
	Data  []byte
}

// MMIOExit describes an access to a guest-physical address without memory.
type MMIOExit struct {
	Addr    uint64
	Data    []byte // len bytes; fill it for reads
	IsWrite bool
}

// Internal error sub-codes (KVM_INTERNAL_ERROR_*).
const (
	InternalErrorEmulation      = 1
	InternalErrorSimulEx        = 2
	InternalErrorDeliveryEv     = 3
	InternalErrorUnexpectedExit = 4
)

func (e Exit) String() string {
	switch e.Reason {
	case ExitIO:
		dir := "in"
		if e.IO.Dir == IODirOut {
			dir = "out"
		}
		return fmt.Sprintf("%v %s port=%#x size=%d count=%d", e.Reason, dir, e.IO.Port, e.IO.Size, e.IO.Count)
	case ExitMMIO:
		return fmt.Sprintf("%v addr=%#x len=%d write=%v", e.Reason, e.MMIO.Addr, len(e.MMIO.Data), e.MMIO.IsWrite)
	case ExitInternalError:
		return fmt.Sprintf("%v suberror=%d data=%#x", e.Reason, e.Suberror, e.Data)
	case ExitFailEntry:
		return fmt.Sprintf("%v hardware_entry_failure_reason=%#x", e.Reason, e.HardwareReason)
	case ExitSystemEvent:
		return fmt.Sprintf("%v type=%d", e.Reason, e.Suberror)
	case ExitMemoryFault:
		return fmt.Sprintf("%v gpa=%#x", e.Reason, e.MMIO.Addr)
	}
	return e.Reason.String()
}
