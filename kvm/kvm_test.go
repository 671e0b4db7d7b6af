package kvm

import (
	"errors"
	"os"
	"testing"
	"unsafe"

	"github.com/argovisor/argovisor/internal/testutil"
	"golang.org/x/sys/unix"
)

// The expected values come from linux/kvm.h (6.1 UAPI, x86-64), computed
// with the kernel's _IOW/_IOR macros by a C compiler.
func TestIoctlNumbers(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"KVM_RUN", ioctlRun, 0xae80},
		{"KVM_IRQ_LINE", ioctlIRQLine, 0x4008ae61},
		{"KVM_IRQFD", ioctlIRQFD, 0x4020ae76},
		{"KVM_IOEVENTFD", ioctlIOEventFD, 0x4040ae79},
		{"KVM_SIGNAL_MSI", ioctlSignalMSI, 0x4020aea5},
		{"KVM_ENABLE_CAP", ioctlEnableCap, 0x4068aea3},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}

func TestStructLayout(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(kvm_run)", unsafe.Sizeof(Run{}), 2352},
		{"offsetof(kvm_run, kvm_valid_regs)", unsafe.Offsetof(Run{}.ValidRegs), 288},
		{"offsetof(kvm_run, s)", unsafe.Offsetof(Run{}.Sync), 304},
		{"offsetof(kvm_sync_regs, sregs)", unsafe.Offsetof(SyncRegs{}.Sregs), 144},
		{"sizeof(kvm_regs)", unsafe.Sizeof(Regs{}), 144},
		{"sizeof(kvm_sregs)", unsafe.Sizeof(Sregs{}), 312},
		{"sizeof(kvm_msi)", unsafe.Sizeof(msi{}), 32},
		{"sizeof(kvm_irqfd)", unsafe.Sizeof(irqfd{}), 32},
		{"sizeof(kvm_ioeventfd)", unsafe.Sizeof(ioeventfd{}), 64},
		{"sizeof(kvm_enable_cap)", unsafe.Sizeof(enableCap{}), 104},
		{"offsetof(kvm_run.mmio, len)", unsafe.Offsetof(runMMIO{}.Len), 16},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

func TestOpenSystemErrors(t *testing.T) {
	_, err := OpenSystem("/nonexistent/kvm")
	if !errors.Is(err, ErrNoDevice) {
		t.Errorf("missing device: got %v, want ErrNoDevice", err)
	}
	// A regular file is not a KVM device: the version ioctl fails.
	f, err := os.CreateTemp(t.TempDir(), "notkvm")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := OpenSystem(f.Name()); err == nil {
		t.Error("a regular file was accepted as /dev/kvm")
	}
}

func TestNames(t *testing.T) {
	if got := CapSyncRegs.String(); got != "KVM_CAP_SYNC_REGS" {
		t.Errorf("CapSyncRegs = %q", got)
	}
	if got := Capability(999).String(); got != "KVM_CAP_999" {
		t.Errorf("Capability(999) = %q", got)
	}
	if got := ExitShutdown.String(); got != "KVM_EXIT_SHUTDOWN" {
		t.Errorf("ExitShutdown = %q", got)
	}
}

// openKVM opens /dev/kvm, or skips or fails by testutil.RequireKVM.
func openKVM(t *testing.T) *System {
	t.Helper()
	testutil.RequireKVM(t)
	s, err := OpenSystem(testutil.KVMDevice)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestVMIoctls exercises the ioctls this package adds over gokvm on a real
// VM: they must be accepted by the kernel with the struct sizes declared.
func TestVMIoctls(t *testing.T) {
	s := openKVM(t)
	vm, err := s.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.CreateIRQChip(); err != nil {
		t.Fatal(err)
	}
	if err := vm.IRQLine(4, 1); err != nil {
		t.Error(err)
	}
	if err := vm.IRQLine(4, 0); err != nil {
		t.Error(err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := vm.IRQFD(efd, 5); err != nil {
		t.Error(err)
	}
	if err := vm.RemoveIRQFD(efd, 5); err != nil {
		t.Error(err)
	}
	if err := vm.IOEventFD(efd, 0x600, 4, 0, IOEventFDPIO); err != nil {
		t.Error(err)
	}
	if err := vm.IOEventFD(efd, 0x600, 4, 0, IOEventFDPIO|IOEventFDDeassign); err != nil {
		t.Error(err)
	}
	// No vCPU yet: no APIC matches, which is "not delivered", not an error.
	if ok, err := vm.SignalMSI(MSIAddress(0), 0x30); ok || err != nil {
		t.Errorf("MSI without vCPUs = %v, %v; want false, nil", ok, err)
	}
	// KVM_CAP_IRQ_ROUTING is not enable-able: the ioctl reaches the kernel
	// and is refused with EINVAL, not EFAULT or ENOTTY (which would mean a
	// wrong size or number).
	if err := vm.EnableCap(CapIRQRouting); !errors.Is(err, unix.EINVAL) {
		t.Errorf("KVM_ENABLE_CAP(IRQ_ROUTING) = %v, want EINVAL", err)
	}
	c, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetRunnable(); err != nil {
		t.Error(err)
	}
	c.SetImmediateExit(true)
	if _, err := c.Run(); !errors.Is(err, ErrInterrupted) {
		t.Errorf("Run with immediate_exit = %v, want ErrInterrupted", err)
	}
	c.SetImmediateExit(false)
	if c.RunData().ImmediateExit != 0 {
		t.Error("immediate_exit not cleared")
	}
}

func TestRetryEINTR(t *testing.T) {
	n := 0
	err := retry(func() error {
		n++
		if n < 3 {
			return unix.EINTR
		}
		return unix.EBADF
	})
	if n != 3 || !errors.Is(err, unix.EBADF) {
		t.Errorf("retry: %d calls, %v", n, err)
	}
	v, err := retryVal(func() (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Errorf("retryVal = %d, %v", v, err)
	}
}
