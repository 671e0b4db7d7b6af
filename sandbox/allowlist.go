package sandbox

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/seccomp"
)

// Needs is what a process does after Lockdown beyond the Go runtime's own
// system calls (RuntimeSyscalls). Each feature declares its own and they
// are merged with Add. System calls are numbers (unix.SYS_*).
type Needs struct {
	// Syscalls are allowed with any arguments, except the calls this
	// package always restricts, which keep their restriction whoever asks
	// for them: mmap and mprotect without PROT_EXEC, clone only for
	// threads, kill and tgkill only to this process, prctl only
	// PR_SET_VMA, arch_prctl only ARCH_SET_FS, fcntl only
	// F_GETFD/F_SETFD/F_GETFL/F_SETFL, fallocate only to punch holes,
	// memfd_create only with MFD_CLOEXEC, and ioctl only for the Ioctls.
	Syscalls []uintptr
	// Ioctls are the only ioctl requests allowed (with SYS_IOCTL in
	// Syscalls).
	Ioctls []uintptr
	// Rules allow a call when all of a rule's argument conditions hold.
	// Rules for the same call are alternatives; a rule with no Args allows
	// the call outright, restriction or not.
	Rules []Rule
}

// Add returns n with o's needs added.
func (n Needs) Add(o Needs) Needs {
	return Needs{
		Syscalls: append(slices.Clip(n.Syscalls), o.Syscalls...),
		Ioctls:   append(slices.Clip(n.Ioctls), o.Ioctls...),
		Rules:    append(slices.Clip(n.Rules), o.Rules...),
	}
}

// Rule allows one system call when every one of its Args holds.
type Rule struct {
	Syscall uintptr
	Args    []Arg
}

// Arg is a condition on one argument: arg & Mask == Value.
type Arg struct {
	Index int // 0 … 5
	Mask  uint64
	Value uint64
}

// Eq is the condition that argument i equals v.
func Eq(i int, v uint64) Arg { return Arg{Index: i, Mask: ^uint64(0), Value: v} }

// BitsClear is the condition that argument i has none of the bits of mask.
func BitsClear(i int, mask uint64) Arg { return Arg{Index: i, Mask: mask, Value: 0} }

// BitsSet is the condition that argument i has every bit of mask.
func BitsSet(i int, mask uint64) Arg { return Arg{Index: i, Mask: mask, Value: mask} }

// ServeUnixSocket is what serving an already listening Unix socket needs:
// accepting connections and talking over them. Creating, binding and
// listening happen before Lockdown; connecting out is not allowed.
func ServeUnixSocket() Needs {
	return Needs{Syscalls: []uintptr{
		unix.SYS_ACCEPT4, unix.SYS_GETSOCKNAME, unix.SYS_GETPEERNAME, unix.SYS_SHUTDOWN,
		unix.SYS_RECVFROM, unix.SYS_SENDTO, unix.SYS_RECVMSG, unix.SYS_SENDMSG,
	}}
}

// DialUnixSocket is what connecting out to Unix sockets needs (a domain's
// stream socket dials PATH_port for a guest): socket only for AF_UNIX,
// connect, and the calls Go's dialer makes on the new socket. Which paths
// it reaches is not the filter's to say (seccomp cannot read the path);
// the VMM dials only the paths its configuration names.
func DialUnixSocket() Needs {
	return Needs{
		Syscalls: []uintptr{unix.SYS_CONNECT, unix.SYS_GETSOCKOPT, unix.SYS_GETSOCKNAME, unix.SYS_GETPEERNAME},
		Rules:    []Rule{{Syscall: unix.SYS_SOCKET, Args: []Arg{Eq(0, unix.AF_UNIX)}}},
	}
}

// RuntimeSyscalls are the system calls the Go runtime and the parts of the
// standard library argovisor uses may make at any time: scheduling and
// threads, memory, signals (preemption is SIGURG by tgkill), timers, the
// network poller, and the C library's thread start in cgo-linked builds
// (the race detector links it). Read from $GOROOT/src/runtime (the
// sys_linux_amd64.s wrappers, internal/runtime/syscall, the cgroup CPU-limit
// reader) and checked by running a race-enabled workload under the filter.
func RuntimeSyscalls() []uintptr {
	return []uintptr{
		// Threads and scheduling.
		unix.SYS_FUTEX, unix.SYS_CLONE, unix.SYS_EXIT, unix.SYS_EXIT_GROUP,
		unix.SYS_SCHED_YIELD, unix.SYS_SCHED_GETAFFINITY, unix.SYS_GETTID,
		unix.SYS_GETPID, unix.SYS_TGKILL, unix.SYS_KILL, unix.SYS_ARCH_PRCTL,
		unix.SYS_PRCTL, unix.SYS_RESTART_SYSCALL,
		// Time.
		unix.SYS_NANOSLEEP, unix.SYS_CLOCK_NANOSLEEP, unix.SYS_CLOCK_GETTIME,
		unix.SYS_GETTIMEOFDAY, unix.SYS_SETITIMER, unix.SYS_TIMER_CREATE,
		unix.SYS_TIMER_SETTIME, unix.SYS_TIMER_DELETE,
		// Memory.
		unix.SYS_MMAP, unix.SYS_MUNMAP, unix.SYS_MADVISE, unix.SYS_MPROTECT,
		unix.SYS_MREMAP, unix.SYS_MINCORE, unix.SYS_BRK,
		// Signals.
		unix.SYS_RT_SIGACTION, unix.SYS_RT_SIGPROCMASK, unix.SYS_RT_SIGRETURN,
		unix.SYS_SIGALTSTACK,
		// Descriptors already open (cgroup CPU limits are re-read with
		// pread64), and the poller's own.
		unix.SYS_READ, unix.SYS_WRITE, unix.SYS_WRITEV, unix.SYS_PREAD64,
		unix.SYS_CLOSE, unix.SYS_FSTAT, unix.SYS_FCNTL, unix.SYS_EPOLL_CREATE1,
		unix.SYS_EPOLL_CTL, unix.SYS_EPOLL_WAIT, unix.SYS_EPOLL_PWAIT,
		unix.SYS_EPOLL_PWAIT2, unix.SYS_EVENTFD2, unix.SYS_PIPE2,
		// Harmless queries.
		unix.SYS_GETRANDOM, unix.SYS_UNAME, unix.SYS_GETUID, unix.SYS_GETEUID,
		unix.SYS_GETGID, unix.SYS_GETEGID,
		// The C library's thread start (cgo-linked builds).
		unix.SYS_SET_ROBUST_LIST, unix.SYS_RSEQ,
	}
}

// archSetFS is ARCH_SET_FS (asm/prctl.h): the runtime sets the first
// thread's TLS base with it.
const archSetFS = 0x1002

// restrictions are the argument conditions always applied to some calls,
// as alternatives: a call is allowed if any one holds in full.
func restrictions(pid int) map[uintptr][][]Arg {
	one := func(a ...Arg) [][]Arg { return [][]Arg{a} }
	eq := func(i int, vs ...uint64) [][]Arg {
		var alts [][]Arg
		for _, v := range vs {
			alts = append(alts, []Arg{Eq(i, v)})
		}
		return alts
	}
	return map[uintptr][][]Arg{
		// No new executable memory (the runtime never makes any).
		unix.SYS_MMAP:     one(BitsClear(2, unix.PROT_EXEC)),
		unix.SYS_MPROTECT: one(BitsClear(2, unix.PROT_EXEC)),
		// New threads only, never a new process.
		unix.SYS_CLONE: one(BitsSet(0, unix.CLONE_THREAD)),
		// Signals only to this process (preemption, kicks, dying from a
		// signal).
		unix.SYS_KILL:   eq(0, uint64(pid)),
		unix.SYS_TGKILL: eq(0, uint64(pid)),
		// Naming anonymous mappings; nothing else prctl can change.
		unix.SYS_PRCTL:      eq(0, unix.PR_SET_VMA),
		unix.SYS_ARCH_PRCTL: eq(0, archSetFS),
		unix.SYS_FCNTL:      eq(1, unix.F_GETFD, unix.F_SETFD, unix.F_GETFL, unix.F_SETFL),
		// Affinity of the calling thread only (a pinned vCPU's own).
		unix.SYS_SCHED_SETAFFINITY: eq(0, 0),
		// Punching holes frees memory; nothing else is needed.
		unix.SYS_FALLOCATE: one(BitsSet(1, unix.FALLOC_FL_PUNCH_HOLE)),
		// Guest memory is a close-on-exec memfd and nothing more: no
		// MFD_EXEC (an executable memfd), no sealing, no huge pages.
		unix.SYS_MEMFD_CREATE: eq(1, unix.MFD_CLOEXEC),
	}
}

// rules builds the allowlist for needs. pid is this process, the only
// target signals may have.
func rules(needs Needs, pid int) (seccomp.SyscallRules, error) {
	all := needs.Add(Needs{Syscalls: RuntimeSyscalls()})
	restrict := restrictions(pid)
	switch ioctl := slices.Contains(all.Syscalls, unix.SYS_IOCTL); {
	case ioctl && len(all.Ioctls) == 0:
		return seccomp.SyscallRules{}, fmt.Errorf("ioctl is needed but no ioctl request is listed")
	case !ioctl && len(all.Ioctls) > 0:
		return seccomp.SyscallRules{}, fmt.Errorf("ioctl requests are listed but ioctl is not")
	}
	for _, r := range all.Ioctls {
		restrict[unix.SYS_IOCTL] = append(restrict[unix.SYS_IOCTL], []Arg{Eq(1, uint64(r))})
	}

	// alts[nr] == nil: allowed outright; otherwise the alternatives.
	alts := map[uintptr][][]Arg{}
	allow := func(nr uintptr, cond [][]Arg) {
		prev, seen := alts[nr]
		switch {
		case !seen:
			alts[nr] = cond
		case prev == nil || cond == nil:
			alts[nr] = nil
		default:
			alts[nr] = slices.Concat(prev, cond)
		}
	}
	for _, nr := range all.Syscalls {
		if _, seen := alts[nr]; !seen {
			allow(nr, restrict[nr])
		}
	}
	for _, r := range all.Rules {
		for _, a := range r.Args {
			if a.Index < 0 || a.Index > 5 {
				return seccomp.SyscallRules{}, fmt.Errorf("rule for system call %d: argument %d does not exist", r.Syscall, a.Index)
			}
		}
		if len(r.Args) == 0 {
			allow(r.Syscall, nil)
		} else {
			allow(r.Syscall, [][]Arg{r.Args})
		}
	}

	sr := seccomp.NewSyscallRules()
	for nr, cond := range alts {
		if cond == nil {
			sr.Set(nr, seccomp.MatchAll{})
			continue
		}
		var or seccomp.Or
		for _, c := range cond {
			// Arguments left nil in a PerArg match anything.
			var and seccomp.And
			for _, a := range c {
				var p seccomp.PerArg
				p[a.Index] = seccomp.MaskedEqual(uintptr(a.Mask), uintptr(a.Value))
				and = append(and, p)
			}
			or = append(or, and)
		}
		sr.Set(nr, or)
	}
	return sr, nil
}
