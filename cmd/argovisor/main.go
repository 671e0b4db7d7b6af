// Command argovisor runs bare-metal guest kernels as KVM domains.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/bench"
	"github.com/argovisor/argovisor/control"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/sandbox"
	"github.com/argovisor/argovisor/vmm"
)

// version is set at build time with -ldflags "-X main.version=…"; without
// it the module version from the build info is used (go install).
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1   // a domain failed, crashed or timed out
	exitUsage   = 2   // bad usage, config, kernel or /dev/kvm
	exitSIGINT  = 130 // 128 + SIGINT
	exitSIGTERM = 143 // 128 + SIGTERM
)

const usage = `argovisor — a KVM micro-hypervisor for small guest kernels

Usage:
  argovisor run [flags] CONFIG.toml     boot the domains of CONFIG.toml
  argovisor run --api-sock PATH [flags] [CONFIG.toml]
                                        keep serving a control API until shutdown
  argovisor ctl --api-sock PATH [--json] list|stats NAME|stop NAME|destroy NAME|create FILE|shutdown|metrics
  argovisor bench [--runs N] [--only PREFIX,...] [--guests DIR] [--out FILE.json] [--svg FILE.svg]
  argovisor version
  argovisor help [COMMAND]

run boots every domain of CONFIG.toml, prints each console line as
"[name] line" and one summary line per domain when all have ended.
Relative kernel paths in the config are resolved against the config
file's directory. Once the domains are created, and before they start,
the process is confined: core dumps off, no_new_privs, with --user (as
root) privileges dropped to UID:GID, and a seccomp allowlist whose
violation kills the process (--seccomp=log only logs, off installs none).
With --api-sock (or api_sock in the config) it keeps serving the control
API (docs/api.md) until "ctl shutdown", SIGINT or SIGTERM, also when every
domain has ended; --timeout then stops only CONFIG.toml's domains still
running after DUR, not those created through the API, and the API keeps
serving. Domains built after start-up (by the API, or restarted
by their policy) are built under the filter too, from kernels in memory:
"ctl create" sends the kernel file's contents, and the VMM opens no file.

ctl is the client of that API: a table for people, --json for scripts.

Environment:
  ARGOVISOR_KVM_DEVICE  KVM device to use instead of /dev/kvm

Exit status: 0 if every domain exited with status 0 (or the VMM was shut
down through the API); 1 if any exited non-zero, crashed or timed out;
2 for bad usage, a bad config, an unusable kernel file, no usable
/dev/kvm, or a sandbox that could not be applied; 130 after SIGINT and 143
after SIGTERM (every domain stopped and summarised first). A process the
seccomp filter kills dies by SIGSYS.

bench measures VM exits, interrupts, memcpy, Argo, a host-socket peer
and boot in one run (each figure the median of N >= 5 runs, with its ratio
to a floor measured in the same run), prints a table, and writes JSON and
an SVG plot (default bench/results/latest.json and throughput.svg).

Examples:
  argovisor run examples/hello.toml
  argovisor run --timeout 10s --trace-hypercalls --trace-domain hello-1 examples/hello.toml
  argovisor run --api-sock /tmp/argovisor.sock examples/pingpong.toml
  sudo argovisor run --user 65534:65534 examples/hello.toml
  argovisor ctl --api-sock /tmp/argovisor.sock list
  argovisor bench --only argo.pingpong

Run "argovisor help run" or "argovisor run --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runCmd(args[1:], stdout, stderr)
	case "ctl":
		return ctlCmd(args[1:], stdout, stderr)
	case "bench":
		return benchCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "--help", "-help", "-h":
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "argovisor: unknown command %q (commands: run, ctl, bench, version, help)\n", args[0])
	return exitUsage
}

// versionString names the version: -ldflags if set, else the module
// version of a go install, with the VCS revision when the build has one.
func versionString() string {
	bi, _ := debug.ReadBuildInfo() // nil without build info
	return versionFrom(version, bi)
}

// noRevision explains a build info without a VCS revision. The Go command
// stamps one (vcs.revision) only when it builds in a git checkout with
// VCS stamping on: -buildvcs=false — also from GOFLAGS, for example set
// by "go env -w GOFLAGS=-buildvcs=false" — turns it off, and it finds no
// checkout in a linked git worktree, whose .git is a file
// (golang/go#58218). make build names the revision either way (-ldflags).
const noRevision = "no VCS revision in the build info: -buildvcs=false (go env GOFLAGS), a linked git worktree or no git; " +
	"make build, or go install -buildvcs=true in a clone, names it"

// versionFrom is versionString over a given version variable and build
// info (nil: none).
func versionFrom(version string, bi *debug.BuildInfo) string {
	if bi == nil {
		return "argovisor " + version
	}
	v := version
	if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var extra []string
	if bi.Main.Path != "" {
		extra = append(extra, bi.Main.Path)
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		extra = append(extra, "revision "+rev+dirty)
	}
	extra = append(extra, bi.GoVersion)
	// A version from -ldflags (make build: git describe) or a module
	// version (go install module@version) names the source already.
	if rev == "" && v == "dev" {
		extra = append(extra, noRevision)
	}
	return fmt.Sprintf("argovisor %s (%s)", v, strings.Join(extra, ", "))
}

// newFlagSet makes a flag set whose errors are one line with a hint
// (parseFlags prints them) and whose --help prints the command's usage and
// flags to stdout.
func newFlagSet(name, synopsis string, stdout io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on every error; only --help shows it,
	// an error gets one line with a hint instead.
	fs.Usage = func() {}
	fs.help = func() {
		fmt.Fprintf(stdout, "Usage: argovisor %s %s\n\nFlags:\n", name, synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// flagSet is a command's flags and its --help text.
type flagSet struct {
	*flag.FlagSet
	help func()
}

// parseFlags parses args, allowing flags before and after positional
// arguments. It returns the positional arguments, or an exit code.
func parseFlags(fs *flagSet, args []string, stderr io.Writer) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.help()
				return nil, exitOK, false
			}
			msg := err.Error()
			if rest, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
				msg = "unknown flag --" + strings.TrimPrefix(rest, "-")
			} else {
				msg = strings.ReplaceAll(msg, "flag -", "--")
			}
			fmt.Fprintf(stderr, "argovisor %s: %s\nRun 'argovisor %s --help' for the flags.\n", fs.Name(), msg, fs.Name())
			return nil, exitUsage, false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// durationFlag is a time.Duration flag whose error shows a valid value.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return "0"
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 30s, 2m or 1h30m")
	}
	if d < 0 {
		return errors.New("must not be negative (e.g. 30s)")
	}
	*f.d = d
	return nil
}

// choiceFlag is a string flag limited to some values.
type choiceFlag struct {
	v       *string
	choices []string
}

func (f choiceFlag) String() string {
	if f.v == nil {
		return ""
	}
	return *f.v
}

func (f choiceFlag) Set(s string) error {
	for _, c := range f.choices {
		if s == c {
			*f.v = s
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(f.choices, ", "))
}

// listFlag collects comma-separated or repeated values.
type listFlag struct{ v *[]string }

func (f listFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strings.Join(*f.v, ",")
}

func (f listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*f.v = append(*f.v, p)
		}
	}
	return nil
}

// newLogger makes the VMM's slog logger on w.
func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	lv.UnmarshalText([]byte(level)) // validated by choiceFlag
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runOptions are run's flags.
type runOptions struct {
	timeout     time.Duration
	trace       bool
	traceDomain []string
	json        bool
	apiSock     string
	logFormat   string
	logLevel    string
	waitPoll    time.Duration
}

func runCmd(args []string, stdout, stderr io.Writer) int {
	// Signals first: a SIGTERM during a long start-up must still stop the
	// domains already running and print every summary.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	o := runOptions{logFormat: "text", logLevel: "info", waitPoll: vmm.DefaultWaitPoll}
	fs := newFlagSet("run", "[flags] CONFIG.toml\n       argovisor run --api-sock PATH [flags] [CONFIG.toml]", stdout)
	fs.Var(durationFlag{&o.timeout}, "timeout", "stop every domain still running after `DUR`, e.g. 30s (0: no limit; with --api-sock only CONFIG.toml's domains, and the API keeps serving)")
	fs.BoolVar(&o.trace, "trace-hypercalls", false, "print every hypercall to stderr: op name, arguments, result with errno name, time taken")
	fs.Var(listFlag{&o.traceDomain}, "trace-domain", "trace only the domain `NAME` (comma-separated or repeated; default all)")
	fs.BoolVar(&o.json, "json", false, "print the end-of-run summaries as one JSON document on stdout (console lines go to stderr)")
	fs.StringVar(&o.apiSock, "api-sock", "", "serve the control API on the Unix socket `PATH` and keep running until shutdown")
	fs.Var(choiceFlag{&o.logFormat, []string{"text", "json"}}, "log-format", "VMM messages on stderr as `text` or json")
	fs.Var(choiceFlag{&o.logLevel, []string{"debug", "info", "warn", "error"}}, "log-level", "least severe VMM message shown: debug, `info`, warn or error")
	fs.Var(durationFlag{&o.waitPoll}, "wait-poll", "longest a vCPU polls for its answer before it sleeps in an Argo wait, e.g. `DUR` 200us (adaptive; 0: never poll)")
	sbFlags := addSandboxFlags(fs.FlagSet)
	pos, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	sb := sbFlags.config()
	if err := sb.Check(); err != nil {
		fmt.Fprintf(stderr, "argovisor run: %v\n", err)
		return exitUsage
	}
	var cfg *vmm.Config
	switch {
	case len(pos) == 1:
		c, err := vmm.LoadConfig(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "argovisor: %v\n", err)
			return exitUsage
		}
		cfg = c
	case len(pos) == 0 && o.apiSock != "":
		cfg = &vmm.Config{}
	default:
		fmt.Fprintf(stderr, "argovisor run: want exactly one CONFIG.toml (or none with --api-sock), got %d arguments\n", len(pos))
		return exitUsage
	}
	if o.apiSock == "" {
		o.apiSock = cfg.APISock
	}
	// With a control API the timeout bounds the domains of the
	// configuration only (runVMM): without any it would bound nothing.
	if o.apiSock != "" && o.timeout != 0 && len(cfg.Domains) == 0 {
		fmt.Fprintln(stderr, "argovisor run: --timeout with a control API bounds the domains of CONFIG.toml, and there are none (stop API-created domains with ctl stop)")
		return exitUsage
	}
	// Building domains after start-up — through the API or for a
	// restart — adds vmm.CreationNeeds to the allowlist: memfds and the
	// KVM set-up requests, never opening a file (kernels come in memory).
	if createsLater(cfg, o) != "" {
		sb.Needs = sandboxNeeds(vmm.RunningNeeds().Add(vmm.CreationNeeds()))
		if o.apiSock != "" {
			sb.Needs = sb.Needs.Add(sandbox.ServeUnixSocket())
		}
	} else {
		sb.MaxFiles = vmm.DescriptorBudget(cfg.Domains)
	}
	if hasStreamSocket(cfg) {
		// Serving each stream socket, and dialling PATH_port for guests
		// that connect to the host (docs/streams.md).
		sb.Needs = sb.Needs.Add(sandbox.ServeUnixSocket()).Add(sandbox.DialUnixSocket())
	}
	if _, err := sandbox.EnsureFileLimit(vmm.DescriptorBudget(cfg.Domains)); err != nil {
		fmt.Fprintf(stderr, "argovisor: %v\n", err)
		return exitUsage
	}
	return runVMM(cfg, o, sb, sigs, stdout, stderr)
}

// hasStreamSocket reports whether a domain of cfg has a stream socket.
// Domains created through the API under the filter cannot have one
// (DecodeDomainJSON refuses it), so the config file decides.
func hasStreamSocket(cfg *vmm.Config) bool {
	for _, d := range cfg.Domains {
		if d.Stream.Path != "" {
			return true
		}
	}
	return false
}

// buildSettings are the running binary's build settings (nil if unknown).
func buildSettings() []debug.BuildSetting {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Settings
	}
	return nil
}

// filterNeedsStaticBuild refuses the killing filter in a binary built with
// cgo: such a binary is linked to the C library, which makes system calls
// of its own that no allowlist of ours can foresee — glibc's malloc opens
// /sys/devices/system/cpu/online when a thread first needs an arena, and
// under --seccomp=on that killed `argovisor run` at random once domains
// outnumbered a few. The release build (make build) has no cgo; a race
// build needs cgo and runs with --seccomp=log, which logs such calls
// instead (docs/security.md, "A static binary").
func filterNeedsStaticBuild(mode sandbox.Mode, settings []debug.BuildSetting) error {
	if mode != sandbox.SeccompOn {
		return nil
	}
	cgo, race := false, false
	for _, s := range settings {
		switch s.Key {
		case "CGO_ENABLED":
			cgo = s.Value == "1"
		case "-race":
			race = s.Value == "true"
		}
	}
	if !cgo {
		return nil
	}
	what := "with cgo"
	if race {
		what = "with the race detector (so with cgo)"
	}
	return fmt.Errorf("this argovisor was built %s, so the C library makes system calls behind the seccomp filter that --seccomp=on would kill it for: "+
		"build it static with `make build` or `CGO_ENABLED=0 go install github.com/argovisor/argovisor/cmd/argovisor`, or run this build with --seccomp=log", what)
}

// createsLater names what makes this run build domains after start-up
// (the control API, or a restart policy), or returns "".
func createsLater(cfg *vmm.Config, o runOptions) string {
	if o.apiSock != "" {
		return "the control API (--api-sock or api_sock)"
	}
	for _, d := range cfg.Domains {
		if d.OnExit == vmm.ActionRestart || d.OnCrash == vmm.ActionRestart {
			return fmt.Sprintf("domain %q's restart policy", d.Name)
		}
	}
	return ""
}

// runVMM runs the domains of cfg (and, with an API socket, whatever the
// API creates) and prints the summaries.
func runVMM(cfg *vmm.Config, o runOptions, sb sandbox.Config, sigs chan os.Signal, stdout, stderr io.Writer) int {
	log := newLogger(stderr, o.logFormat, o.logLevel)
	consoleOut := stdout
	if o.json {
		consoleOut = stderr
	}
	opts := vmm.Options{Console: consoleTo(consoleOut), KVMPath: os.Getenv("ARGOVISOR_KVM_DEVICE"), Logger: log, WaitPoll: o.waitPoll}
	if o.waitPoll == 0 {
		opts.WaitPoll = -1 // the flag's 0 is "never"; the option's is "default"
	}
	if o.trace {
		opts.TraceHypercalls = stderr
		opts.TraceDomains = o.traceDomain
	}
	v, err := vmm.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "argovisor: no usable KVM: %v\n", err)
		return exitUsage
	}
	defer v.Close()
	// Before anything is created or served: the filter comes only later.
	if err := filterNeedsStaticBuild(sb.Seccomp, buildSettings()); err != nil {
		fmt.Fprintf(stderr, "argovisor run: %v\n", err)
		return exitUsage
	}

	var srv *control.Server
	serveDone := make(chan error, 1)
	if o.apiSock != "" {
		l, err := control.Listen(o.apiSock)
		if err != nil {
			fmt.Fprintf(stderr, "argovisor: %v\n", err)
			return exitUsage
		}
		backend := &control.VMMBackend{V: v}
		if sb.Seccomp == sandbox.SeccompOn {
			// The filter would kill the process for opening a file:
			// creates must carry their kernel (kernel_image).
			backend.NoFiles = true
		} else if backend.Dir, err = os.Getwd(); err != nil {
			fmt.Fprintf(stderr, "argovisor: %v\n", err)
			return exitUsage
		}
		if sb.Seccomp != sandbox.SeccompOff {
			// Under the filter the socket file cannot be unlinked at
			// exit; it stays, stale, and the next Listen replaces it.
			l.KeepFile()
			// Nor can a domain created later open what report_memory
			// reads: open it now.
			if err := v.PrepareMemoryReports(); err != nil {
				fmt.Fprintf(stderr, "argovisor: %v\n", err)
				return exitUsage
			}
		}
		srv = control.NewServer(backend, log)
		go func() { serveDone <- srv.Serve(l) }()
		log.Info("control API listening", "socket", o.apiSock)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Close(ctx)
			<-serveDone
		}()
	}

	// Create and start the domains, watching for a signal between them.
	var sig os.Signal
	var created []*vmm.Domain
	startCode := exitOK
create:
	for _, dc := range cfg.Domains {
		select {
		case sig = <-sigs:
			break create
		default:
		}
		d, err := v.CreateDomain(dc)
		if err != nil {
			fmt.Fprintf(stderr, "argovisor: %v\n", err)
			startCode = exitFailure
			if errors.Is(err, vmm.ErrBadKernel) || errors.Is(err, vmm.ErrBadConfig) {
				startCode = exitUsage
			}
			break
		}
		created = append(created, d)
	}
	if sig == nil && startCode == exitOK {
		// Confine the process before any guest code runs. Load the local
		// time zone first: slog formats times with it, and the file it
		// comes from could not be opened afterwards.
		_ = time.Local.String()
		if sb.Seccomp != sandbox.SeccompOff {
			// Under the filter a socket file cannot be unlinked at exit;
			// it stays, stale, and the next run replaces it.
			v.KeepSocketFiles()
		}
		if err := sandbox.Lockdown(sb); err != nil {
			fmt.Fprintf(stderr, "argovisor: %v\n", err)
			return exitUsage
		}
		if sb.Seccomp == sandbox.SeccompLog {
			fmt.Fprintln(stderr, "argovisor: --seccomp=log: system calls off the allowlist are allowed and logged by the kernel (dmesg, audit log)")
		}
	}
	if sig == nil && startCode == exitOK {
	start:
		for _, d := range created {
			select {
			case sig = <-sigs:
				break start
			default:
			}
			if err := d.Start(); err != nil {
				fmt.Fprintf(stderr, "argovisor: start %s: %v\n", d.Name(), err)
				startCode = exitFailure
				break
			}
		}
	}
	if sig != nil || startCode != exitOK {
		stopAll(v, reasonFor(sig))
		printSummaries(stdout, v, cfg, created, o.json)
		if sig != nil {
			return signalCode(sig)
		}
		return startCode
	}

	var deadline <-chan time.Time
	if o.timeout > 0 {
		t := time.NewTimer(o.timeout)
		defer t.Stop()
		deadline = t.C
	}
	var shutdown <-chan struct{}
	allDone := make(chan struct{})
	if srv != nil {
		shutdown = srv.ShutdownRequested()
	} else {
		go func() {
			for _, d := range created {
				<-d.Done()
			}
			close(allDone)
		}()
	}
	code := -1
wait:
	for {
		select {
		case <-allDone:
			break wait
		case <-deadline:
			reason := fmt.Sprintf("timed out after %v", o.timeout)
			if srv == nil {
				stopAll(v, reason)
				break wait
			}
			// Under a control API the timeout bounds what the command
			// line started — the domains of CONFIG.toml, restarts
			// included — not the domains created later through the
			// API, and the VMM goes on serving: only ctl shutdown or a
			// signal ends it.
			n := stopDomains(created, reason)
			log.Info("timeout: stopped the configuration's domains still running; the control API keeps serving",
				"timeout", o.timeout, "stopped", n)
			deadline = nil
		case s := <-sigs:
			log.Info("signal received: stopping every domain", "signal", s.String())
			stopAll(v, reasonFor(s))
			code = signalCode(s)
			break wait
		case <-shutdown:
			log.Info("shutdown requested through the control API: stopping every domain")
			stopAll(v, "VMM shut down through the control API")
			code = exitOK
			break wait
		case err := <-serveDone:
			log.Error("control API failed", "err", err)
			serveDone <- err // for the deferred Close
			stopAll(v, "control API failed")
			code = exitFailure
			break wait
		}
	}
	c := printSummaries(stdout, v, cfg, created, o.json)
	if code < 0 {
		code = c
	}
	return code
}

// stopAll stops every domain and waits for them.
func stopAll(v *vmm.VMM, reason string) {
	// Wait only for the domains stopped here: the control API may start a
	// domain between the two loops, and nobody would stop that one
	// (VMM.Close does, later).
	var stopped []*vmm.Domain
	for _, d := range v.Domains() {
		if d.State() != vmm.StateCreated {
			d.Stop(reason)
			stopped = append(stopped, d)
		}
	}
	for _, d := range stopped {
		<-d.Done()
	}
}

// stopDomains stops those of ds that have not ended yet (a domain that
// ended, or was destroyed through the API, keeps its result), waits for
// them, and returns how many it stopped.
func stopDomains(ds []*vmm.Domain, reason string) int {
	var stopped []*vmm.Domain
	for _, d := range ds {
		select {
		case <-d.Done():
			continue
		default:
		}
		d.Stop(reason)
		stopped = append(stopped, d)
	}
	for _, d := range stopped {
		<-d.Done()
	}
	return len(stopped)
}

func reasonFor(s os.Signal) string {
	if s == nil {
		return "start-up failed"
	}
	return fmt.Sprintf("interrupted by %v", s)
}

func signalCode(s os.Signal) int {
	if s == syscall.SIGTERM {
		return exitSIGTERM
	}
	return exitSIGINT
}

// printSummaries prints one summary per domain of the VMM (and one for
// each configured domain never created) and returns the exit status they
// call for.
func printSummaries(w io.Writer, v *vmm.VMM, cfg *vmm.Config, created []*vmm.Domain, asJSON bool) int {
	code := exitOK
	var all []control.DomainStats
	seen := map[string]bool{}
	for _, d := range v.Domains() {
		seen[d.Name()] = true
		r := d.Result()
		if d.State() == vmm.StateCreated {
			r = vmm.Result{Kind: vmm.Stopped, Reason: "never started"}
		}
		if !r.OK() {
			code = exitFailure
		}
		if asJSON {
			all = append(all, control.Stats(d))
			continue
		}
		printSummary(w, d, r)
	}
	wasCreated := map[string]bool{}
	for _, d := range created {
		wasCreated[d.Name()] = true
	}
	for _, dc := range cfg.Domains {
		if seen[dc.Name] {
			continue
		}
		// Never created (start-up interrupted or failed), or destroyed
		// through the control API.
		state := "not created"
		if wasCreated[dc.Name] {
			state = "destroyed"
		} else {
			code = exitFailure
		}
		if asJSON {
			all = append(all, control.DomainStats{DomainInfo: control.DomainInfo{Name: dc.Name, State: state,
				VCPUs: dc.VCPUs, Memory: dc.Memory}})
			continue
		}
		fmt.Fprintf(w, "argovisor: %s: %s\n", dc.Name, state)
	}
	if asJSON {
		if all == nil {
			all = []control.DomainStats{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Domains []control.DomainStats `json:"domains"`
		}{all})
	}
	return code
}

func printSummary(w io.Writer, d *vmm.Domain, r vmm.Result) {
	restarts := ""
	if n := d.Restarts(); n > 0 {
		restarts = fmt.Sprintf(" (after %d restarts)", n)
	}
	fmt.Fprintf(w, "argovisor: %s (domain %d): %v%s\n", d.Name(), d.ID(), r, restarts)
	if r.Fault != nil {
		fmt.Fprintln(w, r.Fault.RegisterDump())
	}
	if st := d.GnttabStats(); st.Maps+st.Unmaps+st.Copies+st.Revoked+st.Errors != 0 {
		ws := d.GrantWindowStats()
		fmt.Fprintf(w, "argovisor: %s gnttab: maps=%d unmaps=%d copies=%d/%d B revoked=%d errors=%s window-vmas=%d/%d no-device-space=%d\n",
			d.Name(), st.Maps, st.Unmaps, st.Copies, st.CopyBytes, st.Revoked, gnttabErrors(st), ws.Peak, ws.Limit, ws.Refused)
	}
	if st := d.MemoryStats(); st.Decreased+st.Populated+st.Increased+st.TransfersOut+st.TransfersIn != 0 {
		fmt.Fprintf(w, "argovisor: %s memory: reservation=%d/%d pages decreased=%d populated=%d increased=%d transfers-out=%d transfers-in=%d ram-in-host-memory=%d KiB errors=%d\n",
			d.Name(), st.Current, st.Max, st.Decreased, st.Populated, st.Increased, st.TransfersOut, st.TransfersIn, st.Backing>>10, st.Errors)
	}
	if st := d.ArgoStats(); st != (argo.Stats{}) {
		fmt.Fprintf(w, "argovisor: %s argo: registers=%d out=%d msgs/%d B in=%d msgs/%d B eagain=%d notifies=%d space-wakeups=%d errors=%s\n",
			d.Name(), st.Registers, st.MsgsOut, st.BytesOut, st.MsgsIn, st.BytesIn, st.EAGAINs, st.Notifies, st.Signals, countsText(st.Errors, st.ErrorsByErrno.ByName()))
	}
	if st, ok := d.StreamStats(); ok {
		fmt.Fprintf(w, "argovisor: %s stream: socket=%s connections=%d in/%d out refused=%d resets=%d bad-input=%d dropped=%d to-guest=%d B from-guest=%d B\n",
			d.Name(), d.StreamSocket(), st.HostIn, st.HostOut, st.Refused, st.Resets, st.BadInput, st.Dropped, st.BytesToGuest, st.BytesFromGuest)
	}
}

// countsText renders an error total with its split: "0", or
// "9 (ECONNREFUSED=9)".
func countsText(total uint64, by map[string]uint64) string {
	if total == 0 || len(by) == 0 {
		return fmt.Sprint(total)
	}
	parts := ""
	for _, k := range sortedKeys(by) {
		parts += fmt.Sprintf(" %s=%d", k, by[k])
	}
	return fmt.Sprintf("%d (%s)", total, parts[1:])
}

func gnttabErrors(st gnttab.Stats) string {
	by := st.ErrorsByStatus.ByName()
	for k, n := range st.ErrorsByErrno.ByName() {
		by[k] += n
	}
	return countsText(st.Errors, by)
}

// consoleTo prints console lines to w. The VMM serialises calls.
func consoleTo(w io.Writer) func(*vmm.Domain, string) {
	return func(d *vmm.Domain, line string) {
		fmt.Fprintf(w, "[%s] %s\n", d.Name(), line)
	}
}

func benchCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", "[flags]", stdout)
	runs := fs.Int("runs", 5, "runs per figure (at least 5)")
	only := fs.String("only", "", "comma-separated figure name prefixes to run (floors always run)")
	guests := fs.String("guests", "build/guests", "directory with the built guest programs")
	out := fs.String("out", "bench/results/latest.json", "JSON results file")
	svg := fs.String("svg", "bench/results/throughput.svg", "SVG plot of throughput against message size")
	doorbell := fs.String("doorbell", "auto", "whether guests' hypercalls ring the doorbell page: auto (where cheaper: kvm_pvm), prefer or avoid (the port)")
	pos, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "argovisor bench: unexpected arguments %q\n", pos)
		return exitUsage
	}
	if _, err := os.Stat(*guests + "/benchloop.elf"); err != nil {
		fmt.Fprintf(stderr, "argovisor bench: guest programs not found in %s (run make guests): %v\n", *guests, err)
		return exitUsage
	}
	policy, err := vmm.ParseDoorbellPolicy(*doorbell)
	if err != nil {
		fmt.Fprintf(stderr, "argovisor bench: %v\n", err)
		return exitUsage
	}
	o := bench.Options{Guests: *guests, Runs: *runs, Progress: stderr, Doorbell: policy}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	r, err := bench.Run(o)
	return reportBench(r, err, *out, *svg, stdout, stderr)
}

// reportBench prints and writes what a bench run measured — also when
// some figures failed, so that one broken figure does not lose the
// others — then the failures in full, and returns the exit status:
// non-zero if any figure failed or the results could not be written.
func reportBench(r *bench.Report, runErr error, out, svg string, stdout, stderr io.Writer) int {
	if r == nil || len(r.Figures) == 0 {
		fmt.Fprintf(stderr, "argovisor bench: %v\n", runErr)
		return exitFailure
	}
	code := exitOK
	fmt.Fprint(stdout, r.Table())
	if err := r.WriteJSON(out); err != nil {
		fmt.Fprintf(stderr, "argovisor bench: write results: %v\n", err)
		code = exitFailure
	}
	if err := r.WriteSVG(svg); err != nil {
		fmt.Fprintf(stderr, "argovisor bench: plot: %v\n", err)
	}
	if code == exitOK {
		fmt.Fprintf(stdout, "\nwrote %s and %s\n", out, svg)
	}
	if runErr != nil {
		failed := r.Failed()
		fmt.Fprintf(stderr, "argovisor bench: %d figures failed (%s):\n%v\n", len(failed), strings.Join(failed, ", "), runErr)
		code = exitFailure
	}
	return code
}
