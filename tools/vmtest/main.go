package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit statuses of vmtest itself (the command's own pass through).
const (
	exitUsage   = 2
	exitTimeout = 124 // as timeout(1)
	exitNoRC    = 125 // the VM ended without the command's status
)

// passEnv are the variables of the caller's environment the command
// inside the VM sees too (prefixes end in _).
var passEnv = []string{"ARGOVISOR_", "CI", "GOMAXPROCS", "GOTRACEBACK", "GORACE", "STRESS_"}

func main() {
	os.Exit(realMain(os.Args[1:]))
}

func realMain(args []string) int {
	fs := flag.NewFlagSet("vmtest", flag.ContinueOnError)
	cache := fs.String("cache", "", "the cache of fetched packages (default REPO/build/vm)")
	repo := fs.String("repo", "", "the repository, shared read-write (default: the git top level of the working directory)")
	mem := fs.String("mem", envOr("ARGOVISOR_VM_MEM", "6G"), "the VM's memory")
	smp := fs.Int("smp", envInt("ARGOVISOR_VM_SMP", 1), "the VM's CPUs (docs/testing.md: why 1)")
	timeout := fs.Duration("timeout", 0, "stop the VM after this long (0: never)")
	var env multiFlag
	fs.Var(&env, "env", "NAME=VALUE for the command (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: vmtest [flags] -- COMMAND [ARG...] | vmtest [flags] fetch")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cmd := fs.Args()
	if len(cmd) == 0 {
		fs.Usage()
		return exitUsage
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		return exitUsage
	}
	if *repo == "" {
		out, err := run(wd, nil, "git", "rev-parse", "--show-toplevel")
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: no -repo and not in a git checkout: %v\n", err)
			return exitUsage
		}
		*repo = strings.TrimSpace(out)
	}
	if *repo, err = filepath.Abs(*repo); err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		return exitUsage
	}
	if *cache == "" {
		*cache = filepath.Join(*repo, "build", "vm")
	}
	f := &fetcher{dir: *cache, log: os.Stderr}
	a, err := f.fetchAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		return exitUsage
	}
	if len(cmd) == 1 && cmd[0] == "fetch" {
		fmt.Fprintf(os.Stderr, "vmtest: ready: %s, %s\n", a.qemu, a.kernel)
		return 0
	}
	if rel, err := filepath.Rel(*repo, wd); err != nil || strings.HasPrefix(rel, "..") {
		fmt.Fprintf(os.Stderr, "vmtest: run it from inside the repository %s (working directory %s)\n", *repo, wd)
		return exitUsage
	}
	v := &vm{assets: a, repo: *repo, cache: *cache, mem: *mem, smp: *smp, timeout: *timeout}
	rc, err := v.run(wd, cmd, env)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
	}
	return rc
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// vm is one boot of the test VM.
type vm struct {
	assets  *assets
	repo    string
	cache   string
	mem     string
	smp     int
	timeout time.Duration
}

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// jobScript is what runs inside: the working directory, the environment
// and the command.
func jobScript(wd string, cmd, env []string) string {
	var b strings.Builder
	b.WriteString("# written by tools/vmtest for one VM run\n")
	fmt.Fprintf(&b, "cd %s || exit 125\n", shQuote(wd))
	vars := []string{
		"PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/tmp", "TMPDIR=/tmp",
		// Tests and the bench read this to know (and say) where they ran.
		"ARGOVISOR_IN_VM=qemu-tcg",
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, p := range passEnv {
			if name == p || (strings.HasSuffix(p, "_") && strings.HasPrefix(name, p)) {
				vars = append(vars, kv)
			}
		}
	}
	vars = append(vars, env...)
	for _, kv := range vars {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "export %s=%s\n", name, shQuote(val))
	}
	b.WriteString("exec")
	for _, c := range cmd {
		b.WriteString(" " + shQuote(c))
	}
	b.WriteString("\n")
	return b.String()
}

// run boots the VM, runs cmd in wd inside it and returns its exit status.
func (v *vm) run(wd string, cmd, env []string) (int, error) {
	// The job directory is inside the repository: the VM can write there.
	jobs := filepath.Join(v.repo, "build", "vmtest-jobs")
	if err := os.MkdirAll(jobs, 0o755); err != nil {
		return exitUsage, err
	}
	jobdir, err := os.MkdirTemp(jobs, "job-")
	if err != nil {
		return exitUsage, err
	}
	defer os.RemoveAll(jobdir)
	if err := os.WriteFile(filepath.Join(jobdir, "run.sh"), []byte(jobScript(wd, cmd, env)), 0o644); err != nil {
		return exitUsage, err
	}
	initrd := filepath.Join(jobdir, "initrd.cpio")
	if err := writeInitramfs(initrd, v.assets); err != nil {
		return exitUsage, fmt.Errorf("initramfs: %w", err)
	}
	job, _ := filepath.Rel(v.repo, jobdir)

	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		// TCG emulates SVM with nested paging on any host CPU, so kvm-amd
		// works inside; one host thread per vCPU.
		"-accel", "tcg,thread=multi", "-cpu", "EPYC,+svm",
		"-smp", strconv.Itoa(v.smp), "-m", v.mem,
		"-kernel", v.assets.kernel, "-initrd", initrd,
		"-append", strings.TrimSpace("console=ttyS0 quiet panic=-1 "+kernelArgs+" "+os.Getenv("ARGOVISOR_VM_APPEND")) +
			" vmtest.repo=" + v.repo + " vmtest.job=" + job,
		"-serial", "stdio", "-monitor", "none",
		// multidevs=remap: the host's root spans several file systems, and
		// without it inode numbers collide inside (tests then fail on
		// file identity).
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"-virtfs", "local,path=" + v.repo + ",mount_tag=repo,security_model=none,multidevs=remap",
	}
	for _, d := range v.assets.qemuData {
		args = append(args, "-L", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if v.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, v.timeout)
		defer cancel()
	}
	q := exec.CommandContext(ctx, v.assets.qemu, args...)
	q.Env = append(os.Environ(), v.assets.qemuEnv...)
	q.Stdin = nil
	stdout, err := q.StdoutPipe()
	if err != nil {
		return exitUsage, err
	}
	stderr, err := q.StderrPipe()
	if err != nil {
		return exitUsage, err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			cancel()
		}
	}()
	start := time.Now()
	if err := q.Start(); err != nil {
		return exitUsage, fmt.Errorf("start %s: %w", v.assets.qemu, err)
	}
	done := make(chan struct{}, 2)
	go func() { copyLines(os.Stdout, stdout, nil); done <- struct{}{} }()
	go func() { copyLines(os.Stderr, stderr, tcgNoise); done <- struct{}{} }()
	<-done
	<-done
	werr := q.Wait()
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return exitTimeout, fmt.Errorf("the VM ran out of its %v", v.timeout)
		}
		return exitNoRC, errors.New("interrupted")
	}
	b, err := os.ReadFile(filepath.Join(jobdir, "rc"))
	if err != nil {
		return exitNoRC, fmt.Errorf("the VM ended after %v without the command's exit status (QEMU: %v)", time.Since(start).Round(time.Second), werr)
	}
	rc, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return exitNoRC, fmt.Errorf("exit status %q: %w", b, err)
	}
	return rc, nil
}

// kernelArgs are the VM kernel's own parameters (ARGOVISOR_VM_APPEND adds
// more). A periodic tick: under QEMU 7.2's TCG with nested SVM a one-shot
// local APIC timer interrupt is now and then lost while the vCPU runs a
// KVM guest, and with a tickless kernel nothing re-arms it, so the whole
// VM froze for good (docs/testing.md, "Limits of the VM"). A periodic
// timer comes again at the next period.
const kernelArgs = "nohz=off highres=off"

// tcgNoise drops QEMU's warnings about CPUID features TCG cannot emulate
// (the EPYC model names some): harmless, and one line per feature.
func tcgNoise(line string) bool {
	return strings.Contains(line, "TCG doesn't support requested feature")
}

// copyLines copies lines, without the serial console's carriage returns,
// dropping those skip matches.
func copyLines(w io.Writer, r io.Reader, skip func(string) bool) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			line = strings.ReplaceAll(line, "\r", "")
			if skip == nil || !skip(line) {
				io.WriteString(w, line)
			}
		}
		if err != nil {
			return
		}
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
