package sandbox

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/seccomp"
)

// workloadThreads is how many OS threads the workload scenarios hold
// when they print READY: half started before Lockdown, half after.
const workloadThreads = 12

// runScenario runs one child scenario (see TestMain); nil means success.
func runScenario(name string) error {
	switch name {
	case "vmm-workload":
		return vmmWorkload()
	case "deny":
		return deny(os.Getenv("CALL"))
	case "refusals":
		return refusals()
	case "log":
		return logMode()
	case "off":
		return offMode()
	case "user":
		return dropToNobody()
	case "user-not-root":
		return userNotRoot()
	case "nofile":
		return nofile()
	case "serve":
		return serve(os.Getenv("SOCK"))
	}
	return fmt.Errorf("unknown scenario %q", name)
}

// lockedThreads starts n goroutines that each hold their own OS thread
// until release is closed, and returns their thread ids. Ending still
// locked, each thread exits (SYS_exit) when its goroutine returns.
func lockedThreads(n int, release <-chan struct{}, wg *sync.WaitGroup) []int {
	tids := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			tids <- unix.Gettid()
			buf := make([]byte, 1<<16) // some allocation on this thread
			buf[0] = 1
			<-release
		}()
	}
	var out []int
	for range n {
		out = append(out, <-tids)
	}
	return out
}

// waitStdin blocks until the parent closes stdin.
func waitStdin() { io.Copy(io.Discard, os.Stdin) }

func vmmWorkload() error {
	release := make(chan struct{})
	var wg sync.WaitGroup
	lockedThreads(workloadThreads/2, release, &wg)
	mem, err := newTestMemory()
	if err != nil {
		return err
	}

	// The descriptor budget of a VMM without domains (vmm.DescriptorBudget).
	if err := Lockdown(Config{Needs: runNeeds(), MaxFiles: 64}); err != nil {
		return err
	}
	fmt.Println("filtered") // write to stdout

	// New threads under the filter, kicked as vcpu.kick does.
	for _, tid := range lockedThreads(workloadThreads/2, release, &wg) {
		if err := unix.Tgkill(unix.Getpid(), tid, unix.SIGURG); err != nil {
			return fmt.Errorf("tgkill %d: %w", tid, err)
		}
	}
	// The grant window's calls: MAP_FIXED of a memfd page, replacement
	// by an inaccessible page, a revocation's zero page, hole punching.
	if err := mem.exercise(); err != nil {
		return err
	}
	// An allowed KVM request reaches the descriptor (a memfd answers ENOTTY).
	if err := mem.ioctl(uintptr(runNeeds().Ioctls[0])); !errors.Is(err, unix.ENOTTY) {
		return fmt.Errorf("ioctl KVM_RUN on a memfd: %v, want ENOTTY", err)
	}
	// The runtime's own business: GC, timers and the poller, futexes.
	var mu sync.Mutex
	total := 0
	var workers sync.WaitGroup
	for i := range 32 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range 1000 {
				mu.Lock()
				total += i * j
				mu.Unlock()
				if j%100 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	workers.Wait()
	for range 3 {
		runtime.GC()
	}
	time.Sleep(2 * time.Millisecond)
	<-time.After(time.Millisecond)
	tm := time.NewTimer(time.Hour)
	tm.Reset(time.Millisecond)
	<-tm.C
	var rnd [32]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("getrandom: %w", err)
	}
	if err := mem.close(); err != nil {
		return err
	}
	// Signal delivery as argovisor run uses it (SIGINT, SIGTERM).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	if err := unix.Kill(unix.Getpid(), unix.SIGTERM); err != nil {
		return fmt.Errorf("kill self: %w", err)
	}
	<-sigs
	signal.Stop(sigs)

	fmt.Println("READY")
	waitStdin()
	close(release)
	wg.Wait()
	return nil
}

// deny makes one forbidden call after Lockdown; the filter must kill the
// process before it returns.
func deny(call string) error {
	if err := Lockdown(Config{Needs: runNeeds()}); err != nil {
		return err
	}
	fmt.Println("LOCKED")
	var err error
	switch call {
	case "execve":
		err = syscall.Exec("/bin/true", []string{"true"}, nil)
	case "openat":
		var f *os.File
		if f, err = os.Open("/proc/self/status"); err == nil {
			f.Close()
		}
	case "socket":
		_, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	case "ptrace":
		err = rawErr(unix.SYS_PTRACE, unix.PTRACE_PEEKUSR, 1, 0)
	case "ioctl-tty":
		_, err = unix.IoctlGetTermios(1, unix.TCGETS)
	case "mmap-exec":
		_, err = unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	case "prctl-dumpable":
		err = unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
	case "kill-other":
		err = unix.Kill(1, 0)
	case "fork":
		err = forkAndExit()
	default:
		return fmt.Errorf("unknown call %q", call)
	}
	return fmt.Errorf("%s was not stopped (it returned %v)", call, err)
}

func rawErr(nr uintptr, a ...uintptr) error {
	var args [6]uintptr
	copy(args[:], a)
	_, _, e := unix.Syscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
	if e != 0 {
		return e
	}
	return nil
}

// forkAndExit calls clone as fork does (a new process, not a thread). If
// the filter let it through, the copy exits at once.
func forkAndExit() error {
	r, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if e == 0 && r == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	if e != 0 {
		return e
	}
	return fmt.Errorf("forked pid %d", r)
}

// refusals checks each verdict with a filter that answers EPERM.
func refusals() error {
	mem, err := newTestMemory()
	if err != nil {
		return err
	}
	if err := lockdown(Config{Needs: runNeeds()}, seccomp.ReturnError.Code(uint16(unix.EPERM))); err != nil {
		return err
	}
	pid, tid := unix.Getpid(), unix.Gettid()
	var fails []string
	refused := func(what string, err error) {
		if !errors.Is(err, unix.EPERM) {
			fails = append(fails, fmt.Sprintf("%s: %v, want EPERM (refused)", what, err))
		}
	}
	allowed := func(what string, err error) {
		if errors.Is(err, unix.EPERM) {
			fails = append(fails, fmt.Sprintf("%s: refused, want it allowed", what))
		}
	}
	bad := []byte("/nonexistent\x00")
	// Off the list altogether. The arguments are harmless should a call
	// get through.
	refused("execve", syscall.Exec("/nonexistent", nil, nil))
	refused("execveat", mem.execveat())
	_, err = os.Open("/nonexistent")
	refused("openat", err)
	_, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	refused("socket", err)
	refused("connect", rawErr(unix.SYS_CONNECT, ^uintptr(0), 0, 0))
	refused("ptrace", rawErr(unix.SYS_PTRACE, unix.PTRACE_PEEKUSR, 0, 0))
	refused("process_vm_readv", rawErr(unix.SYS_PROCESS_VM_READV, 0, 0, 0, 0, 0, 0))
	refused("mount", unix.Mount("none", "/nonexistent", "nosuchfs", 0, ""))
	refused("bpf", rawErr(unix.SYS_BPF, ^uintptr(0), 0, 0))
	refused("keyctl", rawErr(unix.SYS_KEYCTL, ^uintptr(0), 0, 0))
	refused("setresuid", unix.Setresuid(-1, -1, -1))
	refused("unshare", unix.Unshare(0))
	refused("chroot", unix.Chroot(string(bad[:len(bad)-1])))
	refused("memfd_create", errOf(unix.MemfdCreate("x", 0)))
	refused("ftruncate", unix.Ftruncate(mem.fd, 4*4096))
	refused("prlimit64", unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &unix.Rlimit{}))
	// Allowed only with some arguments.
	refused("mmap PROT_EXEC", errOf(unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)))
	m, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	allowed("mmap PROT_READ", err)
	if err == nil {
		refused("mprotect PROT_EXEC", unix.Mprotect(m, unix.PROT_READ|unix.PROT_EXEC))
		allowed("mprotect PROT_READ|PROT_WRITE", unix.Mprotect(m, unix.PROT_READ|unix.PROT_WRITE))
		allowed("munmap", unix.Munmap(m))
	}
	refused("clone without CLONE_THREAD", forkAndExit())
	refused("kill of another process", unix.Kill(1, 0))
	allowed("kill of itself", unix.Kill(pid, 0))
	refused("tgkill of another process", unix.Tgkill(1, 1, 0))
	allowed("tgkill of its own thread", unix.Tgkill(pid, tid, 0))
	refused("prctl PR_SET_DUMPABLE", unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0))
	refused("prctl PR_GET_NO_NEW_PRIVS", errOf(unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)))
	allowed("prctl PR_SET_VMA", unix.Prctl(unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME, 0, 0, 0))
	refused("arch_prctl ARCH_GET_FS", rawErr(unix.SYS_ARCH_PRCTL, 0x1003, 0))
	refused("fcntl F_SETOWN", errOf(unix.FcntlInt(uintptr(mem.fd), unix.F_SETOWN, pid)))
	allowed("fcntl F_GETFD", errOf(unix.FcntlInt(uintptr(mem.fd), unix.F_GETFD, 0)))
	refused("fallocate (allocate)", unix.Fallocate(mem.fd, 0, 0, 4096))
	allowed("fallocate (punch a hole)", unix.Fallocate(mem.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096))
	refused("ioctl TCGETS", errOf(unix.IoctlGetTermios(0, unix.TCGETS)))
	refused("ioctl KVM_CREATE_VM", mem.ioctl(0xae01))
	for _, r := range runNeeds().Ioctls {
		if err := mem.ioctl(uintptr(r)); !errors.Is(err, unix.ENOTTY) {
			fails = append(fails, fmt.Sprintf("ioctl %#x: %v, want ENOTTY from the memfd (allowed)", r, err))
		}
	}
	if err := rawErr(unix.SYS_CLONE3, 0, 0); !errors.Is(err, unix.ENOSYS) {
		fails = append(fails, fmt.Sprintf("clone3: %v, want ENOSYS", err))
	}
	if len(fails) > 0 {
		return errors.New(strings.Join(fails, "\n"))
	}
	return nil
}

func errOf[T any](_ T, err error) error { return err }

func logMode() error {
	if err := Lockdown(Config{Seccomp: SeccompLog, Needs: runNeeds()}); err != nil {
		return err
	}
	// Off the list, so logged, but done.
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("open in log mode: %w", err)
	}
	if st := parseStatus(string(data)); st["Seccomp"] != "2" || st["NoNewPrivs"] != "1" {
		return fmt.Errorf("Seccomp %s NoNewPrivs %s, want 2 and 1", st["Seccomp"], st["NoNewPrivs"])
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return fmt.Errorf("socket in log mode: %w", err)
	}
	return unix.Close(fd)
}

// checkHardening checks what Lockdown sets whatever the seccomp mode.
func checkHardening() error {
	var core, nofile unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_CORE, &core)
	unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile)
	if core.Cur != 0 || core.Max != 0 {
		return fmt.Errorf("RLIMIT_CORE %d/%d, want 0/0", core.Cur, core.Max)
	}
	if nofile.Cur != nofile.Max {
		return fmt.Errorf("RLIMIT_NOFILE %d/%d, want the hard limit pinned to the soft one", nofile.Cur, nofile.Max)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); d != 0 || err != nil {
		return fmt.Errorf("dumpable %d (%v), want 0", d, err)
	}
	return nil
}

func offMode() error {
	release := make(chan struct{})
	var wg sync.WaitGroup
	lockedThreads(4, release, &wg)
	if err := Lockdown(Config{Seccomp: SeccompOff}); err != nil {
		return err
	}
	lockedThreads(2, release, &wg)
	if err := checkHardening(); err != nil {
		return err
	}
	paths, _ := filepath.Glob("/proc/self/task/*/status")
	if len(paths) < 7 {
		return fmt.Errorf("%d threads, want at least 7", len(paths))
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		st := parseStatus(string(data))
		if st["NoNewPrivs"] != "1" {
			return fmt.Errorf("%s: NoNewPrivs %s, want 1 on every thread", p, st["NoNewPrivs"])
		}
		// No filter of our own: only the parent's, if any (in a
		// cgo-linked test binary an allow-all one carries no_new_privs).
		if st["Seccomp"] != os.Getenv("PARENT_SECCOMP") && !(cgoLinked() && st["Seccomp"] == "2") {
			return fmt.Errorf("%s: Seccomp %s, parent has %s", p, st["Seccomp"], os.Getenv("PARENT_SECCOMP"))
		}
	}
	close(release)
	wg.Wait()
	return nil
}

// cgoLinked reports whether the binary links the C library, where Go
// cannot make a system call on all threads (the race detector needs cgo).
func cgoLinked() bool {
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_GETPID, 0, 0, 0)
	return e == unix.ENOTSUP
}

func dropToNobody() error {
	release := make(chan struct{})
	var wg sync.WaitGroup
	lockedThreads(workloadThreads/2, release, &wg)
	if err := Lockdown(Config{User: &Cred{UID: 65534, GID: 65534}, Needs: runNeeds()}); err != nil {
		return err
	}
	lockedThreads(workloadThreads/2, release, &wg)
	// The filter allows neither prctl(PR_GET_DUMPABLE) nor getrlimit
	// now: the parent checks from outside.
	fmt.Println("READY")
	waitStdin()
	close(release)
	wg.Wait()
	return nil
}

// userNotRoot: a root process that has given up its uid cannot be told to
// drop to another: Check refuses before anything else changes.
func userNotRoot() error {
	if err := syscall.Setresuid(65534, 65534, 65534); err != nil {
		return err
	}
	err := Lockdown(Config{User: &Cred{UID: 1000, GID: 1000}, Seccomp: SeccompOff})
	if err == nil || !strings.Contains(err.Error(), "needs root") {
		return fmt.Errorf("Lockdown as uid 65534 with a user: %v, want a needs-root error", err)
	}
	if d, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); d != 0 {
		return errors.New("no_new_privs was set although Lockdown refused")
	}
	return nil
}

func nofile() error {
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 64, Max: 1000}); err != nil {
		return err
	}
	got, err := EnsureFileLimit(50)
	if err != nil || got != (unix.Rlimit{Cur: 64, Max: 1000}) {
		return fmt.Errorf("EnsureFileLimit(50) = %v, %v; want 64/1000 untouched", got, err)
	}
	got, err = EnsureFileLimit(200)
	if err != nil || got != (unix.Rlimit{Cur: 200, Max: 1000}) {
		return fmt.Errorf("EnsureFileLimit(200) = %v, %v; want 200/1000", got, err)
	}
	got, err = EnsureFileLimit(2000)
	if hasCapability(unix.CAP_SYS_RESOURCE) {
		if err != nil || got != (unix.Rlimit{Cur: 2000, Max: 2000}) {
			return fmt.Errorf("EnsureFileLimit(2000) with CAP_SYS_RESOURCE = %v, %v; want 2000/2000", got, err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "hard limit 1000") {
		return fmt.Errorf("EnsureFileLimit(2000) without CAP_SYS_RESOURCE: %v, want a hard-limit error", err)
	}
	if err := pinFileLimit(0); err != nil {
		return err
	}
	var cur unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &cur)
	if cur.Cur != got.Cur || cur.Max != got.Cur {
		return fmt.Errorf("after pinning RLIMIT_NOFILE is %d/%d, want %d/%d", cur.Cur, cur.Max, got.Cur, got.Cur)
	}
	if err := pinFileLimit(100); err != nil {
		return err
	}
	unix.Getrlimit(unix.RLIMIT_NOFILE, &cur)
	if cur != (unix.Rlimit{Cur: 100, Max: 100}) {
		return fmt.Errorf("after pinning to 100 RLIMIT_NOFILE is %d/%d", cur.Cur, cur.Max)
	}
	// Pinned: without CAP_SYS_RESOURCE it can no longer go up.
	if !hasCapability(unix.CAP_SYS_RESOURCE) {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 101, Max: 101}); err == nil {
			return errors.New("raised RLIMIT_NOFILE past the pinned hard limit")
		}
	}
	// The limit holds: descriptors up to 100 open, the next one does not.
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			if !errors.Is(err, unix.EMFILE) || len(fds) == 0 || fds[len(fds)-1] != 99 {
				return fmt.Errorf("eventfd after %d more descriptors (last %v): %v, want EMFILE after descriptor 99", len(fds), fds[len(fds)-1:], err)
			}
			return nil
		}
		fds = append(fds, fd)
	}
}

func serve(path string) error {
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	if err := Lockdown(Config{Needs: runNeeds().Add(ServeUnixSocket())}); err != nil {
		return err
	}
	fmt.Println("READY")
	c, err := l.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if _, err := c.Write([]byte(strings.ToUpper(line))); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := c.Close(); err != nil {
		return err
	}
	waitStdin()
	return nil
}
