package testutil

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

// KVMDevice is the device the KVM tests open.
const KVMDevice = "/dev/kvm"

// RequireKVM is the one policy for tests that need KVM: they run when
// /dev/kvm opens; otherwise they skip with a message nobody can miss —
// except under CI (CI set) on a host whose kernel does provide KVM, where
// an unusable device is a misconfiguration and the test fails.
//
// A host whose kernel registers no KVM device at all (no "kvm" line in
// /proc/misc and no /dev/kvm; for example a machine that is itself a PVM
// guest, where kvm_pvm declines to bind) cannot run these tests anywhere,
// CI included: there they skip loudly, and .ci/run prints a banner saying
// so at the start and the end of the run.
func RequireKVM(t testing.TB) {
	t.Helper()
	err := KVMUsable()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("KVM TEST NOT RUN: %s unusable (%v)", KVMDevice, err)
	if os.Getenv("CI") != "" && HostHasKVM() {
		t.Fatal(msg + " — this host's kernel provides KVM, so CI must be able to use it")
	}
	t.Skip("!!!!! " + msg + " !!!!!")
}

// KVMUsable opens and closes /dev/kvm read-write.
func KVMUsable() error {
	f, err := os.OpenFile(KVMDevice, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// HostHasKVM reports whether the running kernel provides KVM: the device
// node is a character device, or a KVM driver registered its misc device
// ("kvm" in /proc/misc) even though the node is missing.
func HostHasKVM() bool {
	if fi, err := os.Stat(KVMDevice); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return true
	}
	f, err := os.Open("/proc/misc")
	if err != nil {
		return true // cannot tell: keep the strict CI rule
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && fields[1] == "kvm" {
			return true
		}
	}
	return false
}
