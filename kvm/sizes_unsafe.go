package kvm

import "unsafe"

// Compile-time checks that every mirrored struct has the kernel's size: each
// line fails to build if the Go size is smaller or larger than the constant.
var (
	_ = [1]struct{}{}[unsafe.Sizeof(Run{})-sizeofRun]
	_ = [1]struct{}{}[unsafe.Sizeof(SyncRegs{})-sizeofSyncRegs]
	_ = [1]struct{}{}[unsafe.Sizeof(Regs{})-sizeofRegs]
	_ = [1]struct{}{}[unsafe.Sizeof(Sregs{})-sizeofSregs]
	_ = [1]struct{}{}[unsafe.Sizeof(irqLevel{})-sizeofIRQLevel]
	_ = [1]struct{}{}[unsafe.Sizeof(msi{})-sizeofMSI]
	_ = [1]struct{}{}[unsafe.Sizeof(irqfd{})-sizeofIRQFD]
	_ = [1]struct{}{}[unsafe.Sizeof(ioeventfd{})-sizeofIOEventFD]
	_ = [1]struct{}{}[unsafe.Sizeof(enableCap{})-sizeofEnableCap]
	_ = [1]struct{}{}[unsafe.Sizeof(runIO{})-16]
	_ = [1]struct{}{}[unsafe.Sizeof(CPUIDEntry{})-40]
	_ = [1]struct{}{}[unsafe.Offsetof(Run{}.ValidRegs)-288]
	_ = [1]struct{}{}[unsafe.Offsetof(Run{}.DirtyRegs)-296]
	_ = [1]struct{}{}[unsafe.Offsetof(Run{}.Sync)-304]
	_ = [1]struct{}{}[unsafe.Sizeof(LAPICState{})-sizeofLAPICState]
	_ = [1]struct{}{}[unsafe.Sizeof(VCPUEvents{})-sizeofVCPUEvents]
	_ = [1]struct{}{}[unsafe.Offsetof(VCPUEvents{}.TripleFaultPending)-28]
	_ = [1]struct{}{}[unsafe.Offsetof(VCPUEvents{}.ExceptionPayload)-56]
)
