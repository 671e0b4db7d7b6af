package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// KVMDevice is the device the KVM tests open.
const KVMDevice = "/dev/kvm"

// The environment make test (test/run.sh) sets for the KVM tests.
const (
	// EnvRequired set to 1 makes a KVM test that cannot open /dev/kvm
	// fail instead of skipping: under make test and CI every KVM test
	// runs, natively or inside the VM.
	EnvRequired = "ARGOVISOR_KVM_REQUIRED"
	// EnvTally names a directory where every KVM test leaves a line with
	// its outcome, which test/run.sh counts and reports.
	EnvTally = "ARGOVISOR_KVM_TALLY"
	// EnvHostOnly set to 1 marks the host half of the VM path: the
	// packages run there must hold no KVM test (they would run natively,
	// or fail, instead of in the VM), so one that calls RequireKVM fails
	// and names the list to add its package to.
	EnvHostOnly = "ARGOVISOR_KVM_HOST_ONLY"
	// EnvInVM is set inside the VM by tools/vmtest ("qemu-tcg").
	EnvInVM = "ARGOVISOR_IN_VM"
)

// RequireKVM is the one policy for tests that need KVM. When /dev/kvm
// opens, the test runs and its outcome is tallied. When it does not, the
// test fails under make test or CI (ARGOVISOR_KVM_REQUIRED=1 or CI set):
// make test takes the VM path on such hosts, so an unusable device there
// is a defect. A plain `go test` on a host without KVM skips with a message
// that says how to run them.
func RequireKVM(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvHostOnly) == "1" {
		t.Fatalf("KVM test in a package that the VM path runs on the host: add its package to KVM_PKGS in test/run.sh")
	}
	if err := KVMUsable(); err != nil {
		msg := fmt.Sprintf("KVM TEST NOT RUN: %s unusable (%v)", KVMDevice, err)
		if os.Getenv(EnvRequired) == "1" || os.Getenv("CI") != "" {
			t.Fatal(msg + " — make test and CI run every KVM test (natively, or in a VM: docs/testing.md)")
		}
		t.Skip("!!!!! " + msg + "; `make test` runs them inside a VM on such hosts !!!!!")
	}
	tally(t)
}

// KVMUsable opens and closes /dev/kvm read-write.
func KVMUsable() error {
	f, err := os.OpenFile(KVMDevice, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

var tallied sync.Map // test name → true, so a test that asks twice counts once

// tally records the test's outcome when it ends, in a file of this
// process under ARGOVISOR_KVM_TALLY: "PASS|FAIL|SKIP <test name>".
func tally(t testing.TB) {
	dir := os.Getenv(EnvTally)
	if dir == "" {
		return
	}
	if _, dup := tallied.LoadOrStore(t.Name(), true); dup {
		return
	}
	t.Cleanup(func() {
		outcome := "PASS"
		switch {
		case t.Failed():
			outcome = "FAIL"
		case t.Skipped():
			outcome = "SKIP"
		}
		p := filepath.Join(dir, fmt.Sprintf("%s-%d", strings.TrimSuffix(filepath.Base(os.Args[0]), ".test"), os.Getpid()))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Errorf("KVM tally: %v", err)
			return
		}
		defer f.Close()
		if _, err := fmt.Fprintf(f, "%s %s\n", outcome, t.Name()); err != nil {
			t.Errorf("KVM tally: %v", err)
		}
	})
}

// InVM reports whether this process runs inside the tests' VM (tools/vmtest).
func InVM() bool { return os.Getenv(EnvInVM) != "" }

// vmTimeScale is how much longer guests take inside the VM than natively:
// TCG emulates every instruction of the guest, of its KVM and of the VMM
// (a ping-pong round trip measured 3.5 to 8 times the native guest cycles
// on the same host, more when the host is loaded). The workloads that
// would not fit are smaller inside the VM (InVM), so 4 leaves room
// without making a hang cost much more than natively.
const vmTimeScale = 4

// Scaled stretches a limit that only turns a hang into a failure (never a
// measurement) by the VM's slowness: d natively, 4·d inside the VM
// (ARGOVISOR_VM_TIME_SCALE=N sets another factor, for hunting a hang).
func Scaled(d time.Duration) time.Duration {
	if !InVM() {
		return d
	}
	if n, err := strconv.Atoi(os.Getenv("ARGOVISOR_VM_TIME_SCALE")); err == nil && n > 0 {
		return d * time.Duration(n)
	}
	return d * vmTimeScale
}
