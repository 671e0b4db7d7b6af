package kvm

import gokvm "github.com/bobuhiro11/gokvm/kvm"

// ioctl request numbers this package issues itself. The values match
// linux/kvm.h on x86-64; ioctl_test.go checks them against the kernel's.
var (
	ioctlCheckExtension = gokvm.IIO(0x03)                    // KVM_CHECK_EXTENSION
	ioctlRun            = gokvm.IIO(0x80)                    // KVM_RUN
	ioctlIRQLine        = gokvm.IIOW(0x61, sizeofIRQLevel)   // KVM_IRQ_LINE
	ioctlIRQFD          = gokvm.IIOW(0x76, sizeofIRQFD)      // KVM_IRQFD
	ioctlIOEventFD      = gokvm.IIOW(0x79, sizeofIOEventFD)  // KVM_IOEVENTFD
	ioctlSignalMSI      = gokvm.IIOW(0xa5, sizeofMSI)        // KVM_SIGNAL_MSI
	ioctlEnableCap      = gokvm.IIOW(0xa3, sizeofEnableCap)  // KVM_ENABLE_CAP
	ioctlGetLAPIC       = gokvm.IIOR(0x8e, sizeofLAPICState) // KVM_GET_LAPIC
	ioctlGetMPState     = gokvm.IIOR(0x98, sizeofMPState)    // KVM_GET_MP_STATE
	ioctlGetVCPUEvents  = gokvm.IIOR(0x9f, sizeofVCPUEvents) // KVM_GET_VCPU_EVENTS
)

// Struct sizes from linux/kvm.h (x86-64); sizes_unsafe.go asserts that the Go
// mirrors have exactly these sizes.
const (
	sizeofIRQLevel         = 8
	sizeofIRQFD            = 32
	sizeofIOEventFD        = 64
	sizeofMSI              = 32
	sizeofEnableCap        = 104
	sizeofRegs             = 144
	sizeofSregs            = 312
	sizeofUserMemoryRegion = 32
	sizeofSyncRegs         = 520
	sizeofRun              = 2352
	sizeofLAPICState       = 1024
	sizeofMPState          = 4
	sizeofVCPUEvents       = 64
)

// Capability numbers (KVM_CAP_*) probed at VM creation.
type Capability uint32

// Capabilities argovisor relies on.
const (
	CapIRQChip       Capability = 0
	CapUserMemory    Capability = 3
	CapSetTSSAddr    Capability = 4
	CapExtCPUID      Capability = 7
	CapIRQRouting    Capability = 25
	CapIRQFD         Capability = 32
	CapIOEventFD     Capability = 36
	CapSyncRegs      Capability = 74
	CapSignalMSI     Capability = 77
	CapImmediateExit Capability = 136
)

var capNames = map[Capability]string{
	CapIRQChip:       "KVM_CAP_IRQCHIP",
	CapUserMemory:    "KVM_CAP_USER_MEMORY",
	CapSetTSSAddr:    "KVM_CAP_SET_TSS_ADDR",
	CapExtCPUID:      "KVM_CAP_EXT_CPUID",
	CapIRQRouting:    "KVM_CAP_IRQ_ROUTING",
	CapIRQFD:         "KVM_CAP_IRQFD",
	CapIOEventFD:     "KVM_CAP_IOEVENTFD",
	CapSyncRegs:      "KVM_CAP_SYNC_REGS",
	CapSignalMSI:     "KVM_CAP_SIGNAL_MSI",
	CapImmediateExit: "KVM_CAP_IMMEDIATE_EXIT",
}

func (c Capability) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return "KVM_CAP_" + itoa(uint64(c))
}

// RequiredCapabilities are probed by OpenSystem; a missing one is an error
// naming it.
var RequiredCapabilities = []Capability{
	CapIRQChip, CapUserMemory, CapSetTSSAddr, CapExtCPUID, CapIRQFD,
	CapIOEventFD, CapSyncRegs, CapSignalMSI, CapImmediateExit,
}

// Sync-register selectors for kvm_run.kvm_valid_regs / kvm_dirty_regs.
const (
	SyncGPRs   = 1 << 0 // KVM_SYNC_X86_REGS
	SyncSregs  = 1 << 1 // KVM_SYNC_X86_SREGS
	SyncEvents = 1 << 2 // KVM_SYNC_X86_EVENTS
)

// ExitReason is kvm_run.exit_reason.
type ExitReason uint32

// Exit reasons (KVM_EXIT_*) this package decodes.
const (
	ExitUnknown       ExitReason = 0
	ExitException     ExitReason = 1
	ExitIO            ExitReason = 2
	ExitHypercall     ExitReason = 3
	ExitDebug         ExitReason = 4
	ExitHLT           ExitReason = 5
	ExitMMIO          ExitReason = 6
	ExitShutdown      ExitReason = 8
	ExitFailEntry     ExitReason = 9
	ExitIntr          ExitReason = 10
	ExitInternalError ExitReason = 17
	ExitSystemEvent   ExitReason = 24
	ExitMemoryFault   ExitReason = 39
)

var exitNames = map[ExitReason]string{
	ExitUnknown: "UNKNOWN", ExitException: "EXCEPTION", ExitIO: "IO",
	ExitHypercall: "HYPERCALL", ExitDebug: "DEBUG", ExitHLT: "HLT",
	ExitMMIO: "MMIO", ExitShutdown: "SHUTDOWN", ExitFailEntry: "FAIL_ENTRY",
	ExitIntr: "INTR", ExitInternalError: "INTERNAL_ERROR",
	ExitSystemEvent: "SYSTEM_EVENT", ExitMemoryFault: "MEMORY_FAULT",
}

func (r ExitReason) String() string {
	if n, ok := exitNames[r]; ok {
		return "KVM_EXIT_" + n
	}
	return "KVM_EXIT_" + itoa(uint64(r))
}

// Port I/O directions in kvm_run.io.direction.
const (
	IODirIn  = 0
	IODirOut = 1
)

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
