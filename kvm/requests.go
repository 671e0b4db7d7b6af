package kvm

import (
	"fmt"
	"slices"
)

// Request is an ioctl request number this package issues, itself or through
// gokvm. They are listed so that a seccomp allowlist can name exactly the
// ioctls the process makes; which of them a VMM still needs after setup is
// the caller's policy (vmm.RunningNeeds, vmm.CreationNeeds), not this
// package's.
type Request uintptr

// The values are linux/kvm.h's on x86-64; TestRequestNumbers computes each
// again with the _IO/_IOR/_IOW/_IOWR encoding and the struct sizes.
const (
	ReqGetAPIVersion       Request = 0xae00     // KVM_GET_API_VERSION
	ReqCreateVM            Request = 0xae01     // KVM_CREATE_VM
	ReqCheckExtension      Request = 0xae03     // KVM_CHECK_EXTENSION
	ReqGetVCPUMmapSize     Request = 0xae04     // KVM_GET_VCPU_MMAP_SIZE
	ReqGetSupportedCPUID   Request = 0xc008ae05 // KVM_GET_SUPPORTED_CPUID
	ReqCreateVCPU          Request = 0xae41     // KVM_CREATE_VCPU
	ReqSetUserMemoryRegion Request = 0x4020ae46 // KVM_SET_USER_MEMORY_REGION
	ReqSetTSSAddr          Request = 0xae47     // KVM_SET_TSS_ADDR
	ReqCreateIRQChip       Request = 0xae60     // KVM_CREATE_IRQCHIP
	ReqIRQLine             Request = 0x4008ae61 // KVM_IRQ_LINE
	ReqIRQFD               Request = 0x4020ae76 // KVM_IRQFD
	ReqIOEventFD           Request = 0x4040ae79 // KVM_IOEVENTFD
	ReqRun                 Request = 0xae80     // KVM_RUN
	ReqGetRegs             Request = 0x8090ae81 // KVM_GET_REGS
	ReqSetRegs             Request = 0x4090ae82 // KVM_SET_REGS
	ReqGetSregs            Request = 0x8138ae83 // KVM_GET_SREGS
	ReqSetSregs            Request = 0x4138ae84 // KVM_SET_SREGS
	ReqSetCPUID2           Request = 0x4008ae90 // KVM_SET_CPUID2
	ReqSetMPState          Request = 0x4004ae99 // KVM_SET_MP_STATE
	ReqEnableCap           Request = 0x4068aea3 // KVM_ENABLE_CAP
	ReqGetTSCKHz           Request = 0xaea3     // KVM_GET_TSC_KHZ
	ReqSignalMSI           Request = 0x4020aea5 // KVM_SIGNAL_MSI
	ReqGetLAPIC            Request = 0x8400ae8e // KVM_GET_LAPIC
	ReqGetMPState          Request = 0x8004ae98 // KVM_GET_MP_STATE
	ReqGetVCPUEvents       Request = 0x8040ae9f // KVM_GET_VCPU_EVENTS
)

var requestNames = map[Request]string{
	ReqGetAPIVersion: "KVM_GET_API_VERSION", ReqCreateVM: "KVM_CREATE_VM",
	ReqCheckExtension: "KVM_CHECK_EXTENSION", ReqGetVCPUMmapSize: "KVM_GET_VCPU_MMAP_SIZE",
	ReqGetSupportedCPUID: "KVM_GET_SUPPORTED_CPUID", ReqCreateVCPU: "KVM_CREATE_VCPU",
	ReqSetUserMemoryRegion: "KVM_SET_USER_MEMORY_REGION", ReqSetTSSAddr: "KVM_SET_TSS_ADDR",
	ReqCreateIRQChip: "KVM_CREATE_IRQCHIP", ReqIRQLine: "KVM_IRQ_LINE", ReqIRQFD: "KVM_IRQFD",
	ReqIOEventFD: "KVM_IOEVENTFD", ReqRun: "KVM_RUN", ReqGetRegs: "KVM_GET_REGS",
	ReqSetRegs: "KVM_SET_REGS", ReqGetSregs: "KVM_GET_SREGS", ReqSetSregs: "KVM_SET_SREGS",
	ReqSetCPUID2: "KVM_SET_CPUID2", ReqSetMPState: "KVM_SET_MP_STATE",
	ReqEnableCap: "KVM_ENABLE_CAP", ReqGetTSCKHz: "KVM_GET_TSC_KHZ", ReqSignalMSI: "KVM_SIGNAL_MSI",
	ReqGetLAPIC: "KVM_GET_LAPIC", ReqGetMPState: "KVM_GET_MP_STATE", ReqGetVCPUEvents: "KVM_GET_VCPU_EVENTS",
}

// Requests lists every request this package can issue, in numeric order.
// TestIoctlCallsAreRequests checks the package's source against it, so a
// caller classifying them (vmm's allowlists) sees every one.
func Requests() []Request {
	out := make([]Request, 0, len(requestNames))
	for r := range requestNames {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

func (r Request) String() string {
	if n, ok := requestNames[r]; ok {
		return n
	}
	return fmt.Sprintf("ioctl %#x", uintptr(r))
}
