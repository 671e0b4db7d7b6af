package vmm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/argovisor/argovisor/internal/testutil"
	"github.com/argovisor/argovisor/kvm"
	"github.com/argovisor/argovisor/sandbox"
	"golang.org/x/sys/unix"
)

// setupOnly are the requests the kvm package can issue that no domain
// needs once the sandbox is on, each with the reason.
var setupOnly = map[kvm.Request]string{
	kvm.ReqGetAPIVersion:     "kvm.OpenSystem checks the API version once, before any domain",
	kvm.ReqCheckExtension:    "kvm.OpenSystem probes the capabilities once",
	kvm.ReqGetVCPUMmapSize:   "kvm.OpenSystem reads it once; VM.CreateVCPU uses the stored size",
	kvm.ReqGetSupportedCPUID: "kvm.OpenSystem reads it once; newInstance uses System.SupportedCPUID's copy",
	kvm.ReqIRQLine:           "not used by the VMM: interrupts are MSIs (SignalMSI)",
	kvm.ReqIRQFD:             "not used by the VMM",
	kvm.ReqIOEventFD:         "not used by the VMM",
	kvm.ReqEnableCap:         "not used by the VMM",
	kvm.ReqGetLAPIC:          "Domain.DebugVCPUs only: a diagnosis for tests, never made by a confined process",
	kvm.ReqGetMPState:        "Domain.DebugVCPUs only",
	kvm.ReqGetVCPUEvents:     "Domain.DebugVCPUs only",
}

// TestRequestsClassified: every request the kvm package can issue is
// needed by running domains, by building them, or only at set-up (with a
// reason) — never unaccounted for, never both needed and set-up only —
// and the needs name nothing the kvm package does not issue.
func TestRequestsClassified(t *testing.T) {
	run, create := RunningNeeds(), CreationNeeds()
	all := kvm.Requests()
	for _, r := range all {
		needed := slices.Contains(run.Ioctls, r) || slices.Contains(create.Ioctls, r)
		why, setup := setupOnly[r]
		switch {
		case needed && setup:
			t.Errorf("%v is needed after set-up but also listed as set-up only (%s)", r, why)
		case !needed && !setup:
			t.Errorf("%v is not classified: add it to RunningNeeds or CreationNeeds where a domain uses it, or to setupOnly with the reason", r)
		case setup && why == "":
			t.Errorf("%v is set-up only without a reason", r)
		}
	}
	for name, n := range map[string]HostNeeds{"RunningNeeds": run, "CreationNeeds": create} {
		for i, r := range n.Ioctls {
			if !slices.Contains(all, r) {
				t.Errorf("%s lists %v, which the kvm package never issues", name, r)
			}
			if slices.Contains(n.Ioctls[:i], r) {
				t.Errorf("%s lists %v twice", name, r)
			}
		}
		if len(n.Ioctls) > 0 && !slices.Contains(n.Syscalls, unix.SYS_IOCTL) {
			t.Errorf("%s lists requests without ioctl", name)
		}
	}
	for r := range setupOnly {
		if !slices.Contains(all, r) {
			t.Errorf("setupOnly lists %v, which the kvm package never issues", r)
		}
	}
	// Creating never opens a file.
	for _, nr := range []uintptr{unix.SYS_OPEN, unix.SYS_OPENAT, unix.SYS_OPENAT2, unix.SYS_EXECVE, unix.SYS_EXECVEAT, unix.SYS_NEWFSTATAT, unix.SYS_GETCWD} {
		if slices.Contains(create.Syscalls, nr) || slices.Contains(run.Syscalls, nr) {
			t.Errorf("system call %d is on a VMM allowlist", nr)
		}
	}
}

func TestHostNeedsAdd(t *testing.T) {
	n := RunningNeeds().Add(CreationNeeds())
	for _, want := range [][]uintptr{RunningNeeds().Syscalls, CreationNeeds().Syscalls} {
		for _, s := range want {
			if c := countOf(n.Syscalls, s); c != 1 {
				t.Errorf("system call %d appears %d times", s, c)
			}
		}
	}
	for _, want := range [][]kvm.Request{RunningNeeds().Ioctls, CreationNeeds().Ioctls} {
		for _, r := range want {
			if c := countOf(n.Ioctls, r); c != 1 {
				t.Errorf("%v appears %d times", r, c)
			}
		}
	}
	if len(RunningNeeds().Syscalls) != len(RunningNeeds().Add(HostNeeds{}).Syscalls) {
		t.Error("Add changed what it was given")
	}
}

func countOf[T comparable](s []T, v T) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// A seccomp filter cannot be taken off, so the tests that install one run
// the test binary again as a child (see package sandbox's tests) with
// childEnv naming what to do.
const childEnv = "ARGOVISOR_VMM_CHILD"

func TestMain(m *testing.M) {
	if call, ok := os.LookupEnv(childEnv); ok {
		if err := buildUnderFilter(call); err != nil {
			fmt.Fprintf(os.Stderr, "child: %v\n", err)
			os.Exit(1)
		}
		fmt.Println("OK")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// creationSandbox is the Lockdown argovisor run applies when domains are
// built after start-up (the control API, restart policies).
func creationSandbox() sandbox.Config {
	n := RunningNeeds().Add(CreationNeeds())
	var reqs []uintptr
	for _, r := range n.Ioctls {
		reqs = append(reqs, uintptr(r))
	}
	return sandbox.Config{Needs: sandbox.Needs{Syscalls: n.Syscalls, Ioctls: reqs}.Add(sandbox.ServeUnixSocket())}
}

// buildUnderFilter installs the creation allowlist (killing on anything
// else), then does what building and freeing an instance does on the host
// side, with the real code: newInstanceMemory (memfd_create, ftruncate,
// mmap; the kernel loaded from bytes), a granted page placed in the grant
// window and taken out again, every creation ioctl (on a memfd, which
// answers ENOTTY: the filter let it through), a failed build cleaned up,
// and instance.free (munmap, close). Then it makes call, which the filter
// must kill it for ("" for none).
func buildUnderFilter(call string) error {
	image := goodELF().build()
	// A max_memory region larger than the RAM: its empty part is made
	// inaccessible in the guest mapping (mprotect).
	cfg := DomainConfig{Name: "filtered", Kernel: "good.elf", Memory: 4 << 20, MaxMemory: 6 << 20, VCPUs: 2,
		Params: map[string]string{"a": "b"}}.WithDefaults()
	if err := sandbox.Lockdown(creationSandbox()); err != nil {
		return err
	}
	d := &Domain{}
	for round := range 2 { // a restart builds again from the same bytes
		inst := &instance{}
		if err := inst.newInstanceMemory(cfg, 1, image, round); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		if inst.kernel.Entry != KernelBase+4 || string(inst.ram.Bytes()[KernelBase:KernelBase+16]) != "codecodecodecode" {
			return fmt.Errorf("round %d: kernel not loaded: %+v", round, inst.kernel)
		}
		if inst.ram.Size() != 6<<20 || inst.ram.guestAddr() == 0 {
			return fmt.Errorf("round %d: RAM region %d bytes, guest mapping %#x", round, inst.ram.Size(), inst.ram.guestAddr())
		}
		if err := inst.window.mapFrame(GrantWindowGPA+PageSize, inst.ram.FD(), 1, false); err != nil {
			return err
		}
		if err := inst.window.replace([]uint64{GrantWindowGPA + PageSize}, false); err != nil {
			return err
		}
		for _, r := range CreationNeeds().Ioctls {
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(inst.gtab.FD()), uintptr(r), 0); e != unix.ENOTTY {
				return fmt.Errorf("%v on a memfd: %v, want ENOTTY", r, e)
			}
		}
		if err := inst.free(d); err != nil {
			return fmt.Errorf("free: %w", err)
		}
		if inst.ram.mem != nil || inst.ram.guest != 0 || inst.ram.fd != -1 || inst.window.base != 0 {
			return errors.New("free left memory mapped")
		}
	}
	// A kernel that does not fit: the partly built instance is freed.
	inst := &instance{}
	small := cfg
	small.Memory = 2 << 20
	big := goodELF()
	big.segs[1].memsz = 4 << 20
	if err := inst.newInstanceMemory(small, 1, big.build(), 0); !errors.Is(err, ErrBadKernel) {
		return fmt.Errorf("oversized kernel: %v, want ErrBadKernel", err)
	}
	if err := inst.free(d); err != nil {
		return fmt.Errorf("free after a failed build: %w", err)
	}
	fmt.Println("BUILT")
	switch call {
	case "":
		return nil
	case "openat":
		f, err := os.Open("/proc/self/status")
		if err == nil {
			f.Close()
		}
		return fmt.Errorf("openat was not stopped (%v)", err)
	case "execve":
		err := syscall.Exec("/bin/true", []string{"true"}, nil)
		return fmt.Errorf("execve was not stopped (%v)", err)
	case "memfd-sealing":
		_, err := unix.MemfdCreate("x", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		return fmt.Errorf("memfd_create with MFD_ALLOW_SEALING was not stopped (%v)", err)
	}
	return fmt.Errorf("unknown call %q", call)
}

func runFilteredChild(t *testing.T, call string) (string, syscall.WaitStatus) {
	t.Helper()
	cmd := exec.Command(testutil.StaticTestBinary(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+call)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatal(err)
	}
	return out.String(), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// TestCreationUnderFilter: with the allowlist of a VMM that builds domains
// after start-up, building and freeing an instance's memory works, and
// opening a file, executing a program or a memfd with other flags still
// kill the process.
func TestCreationUnderFilter(t *testing.T) {
	out, ws := runFilteredChild(t, "")
	if !ws.Exited() || ws.ExitStatus() != 0 || !strings.Contains(out, "BUILT\n") || !strings.HasSuffix(out, "OK\n") {
		t.Fatalf("child: %s, want exit 0 after BUILT and OK:\n%s", describe(ws), out)
	}
	for _, call := range []string{"openat", "execve", "memfd-sealing"} {
		t.Run(call, func(t *testing.T) {
			out, ws := runFilteredChild(t, call)
			if !strings.Contains(out, "BUILT\n") {
				t.Fatalf("the child did not get as far as %s:\n%s", call, out)
			}
			if !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
				t.Fatalf("%s: %s, want killed by SIGSYS:\n%s", call, describe(ws), out)
			}
		})
	}
}

func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}
