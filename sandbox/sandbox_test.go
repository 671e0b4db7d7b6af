package sandbox

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi/linux"
	"gvisor.dev/gvisor/pkg/bpf"
	"gvisor.dev/gvisor/pkg/seccomp"
)

func TestParseMode(t *testing.T) {
	for s, want := range map[string]Mode{"on": SeccompOn, "log": SeccompLog, "off": SeccompOff} {
		got, err := ParseMode(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "ON", "kill", "true"} {
		if _, err := ParseMode(s); err == nil || !strings.Contains(err.Error(), "want on, log or off") {
			t.Errorf("ParseMode(%q): %v, want an error listing the modes", s, err)
		}
	}
	var zero Config
	if zero.Seccomp != SeccompOn {
		t.Errorf("the zero Config has seccomp %v, want on", zero.Seccomp)
	}
}

func TestParseUser(t *testing.T) {
	good := map[string]Cred{"65534:65534": {65534, 65534}, "1000:100": {1000, 100}, "4294967294:1": {4294967294, 1}}
	for s, want := range good {
		if got, err := ParseUser(s); err != nil || got != want {
			t.Errorf("ParseUser(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for s, want := range map[string]string{
		"":             "want UID:GID",
		"nobody":       "want UID:GID",
		"1000":         "want UID:GID",
		"1000:":        "gid",
		":1000":        "uid",
		"nobody:1000":  "uid",
		"-1:1000":      "uid",
		"+5:1000":      "uid",
		"1000:0x10":    "gid",
		"4294967296:1": "below 2^32",
		"4294967295:1": "reserved",
		"0:1000":       "drops nothing",
		"1000:0":       "drops nothing",
		"1:2:3":        "gid",
	} {
		if _, err := ParseUser(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseUser(%q): %v, want an error mentioning %q", s, err, want)
		}
	}
}

func TestPlanFileLimit(t *testing.T) {
	for _, tc := range []struct {
		cur        unix.Rlimit
		need       uint64
		privileged bool
		want       unix.Rlimit
		err        string
	}{
		{unix.Rlimit{Cur: 1024, Max: 4096}, 100, false, unix.Rlimit{Cur: 1024, Max: 4096}, ""},
		{unix.Rlimit{Cur: 1024, Max: 4096}, 1024, false, unix.Rlimit{Cur: 1024, Max: 4096}, ""},
		{unix.Rlimit{Cur: 1024, Max: 4096}, 2000, false, unix.Rlimit{Cur: 2000, Max: 4096}, ""},
		{unix.Rlimit{Cur: 1024, Max: 4096}, 4096, false, unix.Rlimit{Cur: 4096, Max: 4096}, ""},
		{unix.Rlimit{Cur: 1024, Max: 4096}, 5000, true, unix.Rlimit{Cur: 5000, Max: 5000}, ""},
		{unix.Rlimit{Cur: 1024, Max: 4096}, 5000, false, unix.Rlimit{}, "hard limit 4096 is below the 5000"},
	} {
		got, err := planFileLimit(tc.cur, tc.need, tc.privileged)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("plan(%v, %d, %v): %v, want error %q", tc.cur, tc.need, tc.privileged, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("plan(%v, %d, %v) = %v, %v; want %v", tc.cur, tc.need, tc.privileged, got, err, tc.want)
		}
	}
}

// verdicts runs the filter program in gVisor's BPF interpreter.
type verdicts struct {
	t    *testing.T
	prog bpf.Program
}

func compile(t *testing.T, needs Needs, deny seccomp.Action, logOnly bool) verdicts {
	t.Helper()
	raw, err := program(needs, testPID, deny, logOnly)
	if err != nil {
		t.Fatal(err)
	}
	insns := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		insns[i] = bpf.Instruction{OpCode: r.Code, JumpIfTrue: r.Jt, JumpIfFalse: r.Jf, K: r.K}
	}
	p, err := bpf.Compile(insns, false)
	if err != nil {
		t.Fatal(err)
	}
	return verdicts{t, p}
}

const testPID = 4242

func (v verdicts) of(arch uint32, nr uintptr, args ...uint64) uint32 {
	v.t.Helper()
	d := linux.SeccompData{Nr: int32(nr), Arch: arch}
	copy(d.Args[:], args)
	buf := make([]byte, d.SizeBytes())
	r, err := bpf.Exec[bpf.NativeEndian](v.prog, seccomp.DataAsBPFInput(&d, buf))
	if err != nil {
		v.t.Fatalf("filter on syscall %d: %v", nr, err)
	}
	return r
}

func (v verdicts) call(nr uintptr, args ...uint64) uint32 {
	v.t.Helper()
	return v.of(linux.AUDIT_ARCH_X86_64, nr, args...)
}

const (
	allow = uint32(unix.SECCOMP_RET_ALLOW)
	kill  = uint32(unix.SECCOMP_RET_KILL_PROCESS)
	logIt = uint32(unix.SECCOMP_RET_LOG)
)

// TestFilterVerdicts checks the filter program itself, call by call,
// without installing it: what is allowed, what only with which arguments,
// and that other architectures and the x32 ABI are refused.
func TestFilterVerdicts(t *testing.T) {
	needs := runNeeds()
	v := compile(t, needs, seccomp.KillProcess, false)
	kvmRun, kvmCreateVM := uint64(0xae80), uint64(0xae01)
	for _, tc := range []struct {
		name string
		nr   uintptr
		args []uint64
		want uint32
	}{
		{"ioctl KVM_RUN", unix.SYS_IOCTL, []uint64{7, kvmRun}, allow},
		{"ioctl KVM_RUN, high bits set", unix.SYS_IOCTL, []uint64{7, 1<<32 | kvmRun}, kill},
		{"ioctl KVM_CREATE_VM (setup only)", unix.SYS_IOCTL, []uint64{7, kvmCreateVM}, kill},
		{"ioctl TCGETS", unix.SYS_IOCTL, []uint64{0, unix.TCGETS}, kill},
		{"futex", unix.SYS_FUTEX, nil, allow},
		{"write", unix.SYS_WRITE, []uint64{1}, allow},
		{"mmap MAP_FIXED|MAP_SHARED rw", unix.SYS_MMAP, []uint64{0x7f0000000000, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_FIXED | unix.MAP_SHARED, 9, 0}, allow},
		{"mmap PROT_EXEC", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ | unix.PROT_EXEC, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS}, kill},
		{"mprotect PROT_NONE", unix.SYS_MPROTECT, []uint64{0, 4096, unix.PROT_NONE}, allow},
		{"mprotect PROT_EXEC", unix.SYS_MPROTECT, []uint64{0, 4096, unix.PROT_EXEC}, kill},
		{"clone thread", unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_SYSVSEM | unix.CLONE_THREAD | unix.CLONE_SETTLS}, allow},
		{"clone process (fork)", unix.SYS_CLONE, []uint64{uint64(unix.SIGCHLD)}, kill},
		{"clone3", unix.SYS_CLONE3, nil, uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.ENOSYS)},
		{"tgkill own", unix.SYS_TGKILL, []uint64{testPID, 17, uint64(unix.SIGURG)}, allow},
		{"tgkill other", unix.SYS_TGKILL, []uint64{1, 1, uint64(unix.SIGURG)}, kill},
		{"kill own", unix.SYS_KILL, []uint64{testPID, uint64(unix.SIGABRT)}, allow},
		{"kill other", unix.SYS_KILL, []uint64{1, uint64(unix.SIGKILL)}, kill},
		{"kill process group", unix.SYS_KILL, []uint64{0, uint64(unix.SIGKILL)}, kill},
		{"prctl PR_SET_VMA", unix.SYS_PRCTL, []uint64{unix.PR_SET_VMA}, allow},
		{"prctl PR_SET_DUMPABLE", unix.SYS_PRCTL, []uint64{unix.PR_SET_DUMPABLE, 1}, kill},
		{"arch_prctl ARCH_SET_FS", unix.SYS_ARCH_PRCTL, []uint64{archSetFS}, allow},
		{"arch_prctl ARCH_GET_FS", unix.SYS_ARCH_PRCTL, []uint64{0x1003}, kill},
		{"fcntl F_GETFL", unix.SYS_FCNTL, []uint64{3, unix.F_GETFL}, allow},
		{"fcntl F_DUPFD", unix.SYS_FCNTL, []uint64{3, unix.F_DUPFD}, kill},
		{"fallocate punch hole", unix.SYS_FALLOCATE, []uint64{3, unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, 0, 4096}, allow},
		{"fallocate allocate", unix.SYS_FALLOCATE, []uint64{3, 0, 0, 1 << 30}, kill},
		{"execve", unix.SYS_EXECVE, nil, kill},
		{"execveat", unix.SYS_EXECVEAT, nil, kill},
		{"openat", unix.SYS_OPENAT, nil, kill},
		{"open", unix.SYS_OPEN, nil, kill},
		{"socket", unix.SYS_SOCKET, nil, kill},
		{"connect", unix.SYS_CONNECT, nil, kill},
		{"accept4 (not a feature here)", unix.SYS_ACCEPT4, nil, kill},
		{"ptrace", unix.SYS_PTRACE, nil, kill},
		{"process_vm_writev", unix.SYS_PROCESS_VM_WRITEV, nil, kill},
		{"mount", unix.SYS_MOUNT, nil, kill},
		{"bpf", unix.SYS_BPF, nil, kill},
		{"keyctl", unix.SYS_KEYCTL, nil, kill},
		{"setresuid", unix.SYS_SETRESUID, nil, kill},
		{"prlimit64", unix.SYS_PRLIMIT64, nil, kill},
		{"memfd_create (setup only)", unix.SYS_MEMFD_CREATE, nil, kill},
		{"ftruncate (setup only)", unix.SYS_FTRUNCATE, nil, kill},
		{"unshare", unix.SYS_UNSHARE, nil, kill},
		{"seccomp", unix.SYS_SECCOMP, nil, kill},
		{"x32 read", 0x40000000 | unix.SYS_READ, nil, kill},
	} {
		if got := v.call(tc.nr, tc.args...); got != tc.want {
			t.Errorf("%s: filter returns %#x, want %#x", tc.name, got, tc.want)
		}
	}
	// Every call the runtime and the VMM declare, with arguments that pass
	// the restrictions (zeros, except where a restriction wants more).
	fits := map[uintptr][]uint64{
		unix.SYS_IOCTL: {0, kvmRun}, unix.SYS_CLONE: {unix.CLONE_THREAD},
		unix.SYS_KILL: {testPID}, unix.SYS_TGKILL: {testPID}, unix.SYS_PRCTL: {unix.PR_SET_VMA},
		unix.SYS_ARCH_PRCTL: {archSetFS}, unix.SYS_FCNTL: {0, unix.F_GETFD},
		unix.SYS_FALLOCATE: {0, unix.FALLOC_FL_PUNCH_HOLE},
	}
	for _, nr := range needs.Add(Needs{Syscalls: RuntimeSyscalls()}).Syscalls {
		if got := v.call(nr, fits[nr]...); got != allow {
			t.Errorf("declared syscall %d: filter returns %#x, want allow", nr, got)
		}
	}
	// Another architecture's numbers mean other calls: 11 is execve on
	// i386 and munmap on x86-64.
	if got := v.of(unix.AUDIT_ARCH_I386, 11); got != kill {
		t.Errorf("i386 syscall 11: filter returns %#x, want kill", got)
	}
}

// TestLogFilterVerdicts: in log mode what would be killed is logged and
// allowed; the allowlist and clone3's ENOSYS are unchanged.
func TestLogFilterVerdicts(t *testing.T) {
	v := compile(t, runNeeds(), seccomp.KillProcess, true)
	for _, tc := range []struct {
		name string
		nr   uintptr
		args []uint64
		want uint32
	}{
		{"execve", unix.SYS_EXECVE, nil, logIt},
		{"mmap PROT_EXEC", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_EXEC}, logIt},
		{"ioctl KVM_RUN", unix.SYS_IOCTL, []uint64{7, 0xae80}, allow},
		{"write", unix.SYS_WRITE, nil, allow},
		{"clone3", unix.SYS_CLONE3, nil, uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.ENOSYS)},
	} {
		if got := v.call(tc.nr, tc.args...); got != tc.want {
			t.Errorf("%s: filter returns %#x, want %#x", tc.name, got, tc.want)
		}
	}
	if got := v.of(unix.AUDIT_ARCH_I386, 11); got != logIt {
		t.Errorf("i386 syscall: filter returns %#x, want log", got)
	}
}

// TestNeedsExtend: a feature's Needs and Rules open exactly what they
// name.
func TestNeedsExtend(t *testing.T) {
	base := compile(t, runNeeds(), seccomp.KillProcess, false)
	more := compile(t, runNeeds().Add(ServeUnixSocket()).Add(Needs{Rules: []Rule{
		{Syscall: unix.SYS_FCNTL, Args: []Arg{Eq(1, unix.F_DUPFD_CLOEXEC)}},
		{Syscall: unix.SYS_SOCKET, Args: []Arg{Eq(0, unix.AF_UNIX), BitsSet(1, unix.SOCK_STREAM)}},
	}}), seccomp.KillProcess, false)
	for _, nr := range ServeUnixSocket().Syscalls {
		if base.call(nr) != kill || more.call(nr) != allow {
			t.Errorf("syscall %d: base %#x, with ServeUnixSocket %#x; want kill, allow", nr, base.call(nr), more.call(nr))
		}
	}
	if more.call(unix.SYS_FCNTL, 3, unix.F_DUPFD_CLOEXEC) != allow || more.call(unix.SYS_FCNTL, 3, unix.F_GETFL) != allow ||
		more.call(unix.SYS_FCNTL, 3, unix.F_SETOWN) != kill {
		t.Error("a fcntl rule did not add to the restricted fcntl alternatives")
	}
	if more.call(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC) != allow ||
		more.call(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM) != kill {
		t.Error("a socket rule with two conditions is not their conjunction")
	}
	if more.call(unix.SYS_CONNECT) != kill {
		t.Error("ServeUnixSocket allows connect")
	}
}

func TestBadNeeds(t *testing.T) {
	for name, n := range map[string]Needs{
		"ioctl without requests": {Syscalls: []uintptr{unix.SYS_IOCTL}},
		"requests without ioctl": {Ioctls: []uintptr{0xae80}},
		"argument 6":             {Rules: []Rule{{Syscall: unix.SYS_READ, Args: []Arg{Eq(6, 0)}}}},
	} {
		if err := (Config{Needs: n}).Check(); err == nil {
			t.Errorf("%s: Check accepted it", name)
		}
	}
	if err := (Config{Needs: runNeeds()}).Check(); err != nil {
		t.Errorf("Check of argovisor's needs: %v", err)
	}
	if err := (Config{Seccomp: Mode(7)}).Check(); err == nil {
		t.Error("Check accepted an unknown mode")
	}
}
