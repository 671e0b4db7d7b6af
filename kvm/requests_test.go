package kvm

import (
	"testing"

	gokvm "github.com/bobuhiro11/gokvm/kvm"
)

// TestRequestNumbers encodes every request again, with gokvm's _IO* helpers
// (which gokvm itself issues) and the struct sizes checked in
// TestStructLayout, so the seccomp allowlist names the numbers actually used.
func TestRequestNumbers(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want uintptr
	}{
		{ReqGetAPIVersion, gokvm.IIO(0x00)},
		{ReqCreateVM, gokvm.IIO(0x01)},
		{ReqCheckExtension, gokvm.IIO(0x03)},
		{ReqGetVCPUMmapSize, gokvm.IIO(0x04)},
		{ReqGetSupportedCPUID, gokvm.IIOWR(0x05, 8)}, // sizeof(struct kvm_cpuid2)
		{ReqCreateVCPU, gokvm.IIO(0x41)},
		{ReqSetUserMemoryRegion, gokvm.IIOW(0x46, sizeofUserMemoryRegion)},
		{ReqSetTSSAddr, gokvm.IIO(0x47)},
		{ReqCreateIRQChip, gokvm.IIO(0x60)},
		{ReqIRQLine, ioctlIRQLine},
		{ReqIRQFD, ioctlIRQFD},
		{ReqIOEventFD, ioctlIOEventFD},
		{ReqRun, ioctlRun},
		{ReqGetRegs, gokvm.IIOR(0x81, sizeofRegs)},
		{ReqSetRegs, gokvm.IIOW(0x82, sizeofRegs)},
		{ReqGetSregs, gokvm.IIOR(0x83, sizeofSregs)},
		{ReqSetSregs, gokvm.IIOW(0x84, sizeofSregs)},
		{ReqSetCPUID2, gokvm.IIOW(0x90, 8)},
		{ReqSetMPState, gokvm.IIOW(0x99, 4)}, // sizeof(struct kvm_mp_state)
		{ReqEnableCap, ioctlEnableCap},
		{ReqGetTSCKHz, gokvm.IIO(0xa3)},
		{ReqSignalMSI, ioctlSignalMSI},
	} {
		if uintptr(tc.req) != tc.want {
			t.Errorf("%v = %#x, encoded %#x", tc.req, uintptr(tc.req), tc.want)
		}
	}
	if got := Request(0x1234).String(); got != "ioctl 0x1234" {
		t.Errorf("unknown request prints %q", got)
	}
}
