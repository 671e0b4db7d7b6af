// Command argovisor runs bare-metal guest kernels as KVM domains.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/bench"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/sandbox"
	"github.com/argovisor/argovisor/vmm"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a domain failed, crashed or timed out
	exitUsage   = 2 // bad usage, config, kernel or /dev/kvm
)

const usage = `argovisor — a KVM micro-hypervisor for small guest kernels

Usage:
  argovisor run [--timeout DUR] [--trace-hypercalls] [--seccomp on|log|off] [--user UID:GID] CONFIG.toml
  argovisor bench [--runs N] [--only PREFIX,...] [--guests DIR] [--out FILE.json] [--svg FILE.svg]
  argovisor version
  argovisor help

run boots every domain of CONFIG.toml, prints each console line as
"[name] line" and one summary line per domain when all have ended.
Relative kernel paths in the config are resolved against the config
file's directory. Once the domains are created, and before they start,
the process is confined: core dumps off, no_new_privs, with --user (as
root) privileges dropped to UID:GID, and a seccomp allowlist whose
violation kills the process (--seccomp=log only logs, off installs none).

Environment:
  ARGOVISOR_KVM_DEVICE  KVM device to use instead of /dev/kvm

Exit status: 0 if every domain exited with status 0; 1 if any exited
non-zero, crashed or timed out; 2 for bad usage, a bad config, an
unusable kernel file, no usable /dev/kvm, or a sandbox that could not be
applied. A process the seccomp filter kills dies by SIGSYS.

bench measures VM exits, interrupts, memcpy, Argo, a host-socket peer
and boot in one run (each figure the median of N >= 5 runs, with its ratio
to a floor measured in the same run), prints a table, and writes JSON and
an SVG plot (default bench/results/latest.json and throughput.svg).

Examples:
  argovisor run examples/hello.toml
  argovisor bench --only argo.pingpong
  argovisor run --timeout 10s examples/hello.toml
  argovisor run --trace-hypercalls examples/hello.toml
  sudo argovisor run --user 65534:65534 examples/hello.toml
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
	case "bench":
		return benchCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "argovisor %s\n", version)
		return exitOK
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "argovisor: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

func runCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	timeout := fs.Duration("timeout", 0, "stop every domain still running after `DUR` (0: no limit)")
	trace := fs.Bool("trace-hypercalls", false, "print every hypercall with its arguments and result to stderr")
	sbFlags := addSandboxFlags(fs)
	// Accept flags before and after the config path.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "argovisor run: want exactly one CONFIG.toml, got %d arguments\n", len(pos))
		return exitUsage
	}
	if *timeout < 0 {
		fmt.Fprintln(stderr, "argovisor run: --timeout must not be negative")
		return exitUsage
	}
	sb := sbFlags.config()
	if err := sb.Check(); err != nil {
		fmt.Fprintf(stderr, "argovisor run: %v\n", err)
		return exitUsage
	}
	cfg, err := vmm.LoadConfig(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "argovisor: %v\n", err)
		return exitUsage
	}
	sb.MaxFiles = vmm.DescriptorBudget(cfg.Domains)
	if _, err := sandbox.EnsureFileLimit(sb.MaxFiles); err != nil {
		fmt.Fprintf(stderr, "argovisor: %v\n", err)
		return exitUsage
	}
	opts := vmm.Options{Console: consoleTo(stdout), KVMPath: os.Getenv("ARGOVISOR_KVM_DEVICE")}
	if *trace {
		opts.TraceHypercalls = stderr
	}
	v, err := vmm.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "argovisor: no usable KVM: %v\n", err)
		return exitUsage
	}
	defer v.Close()

	var domains []*vmm.Domain
	for _, dc := range cfg.Domains {
		d, err := v.CreateDomain(dc)
		if err != nil {
			fmt.Fprintf(stderr, "argovisor: %v\n", err)
			if errors.Is(err, vmm.ErrBadKernel) || errors.Is(err, vmm.ErrBadConfig) {
				return exitUsage
			}
			return exitFailure
		}
		domains = append(domains, d)
	}
	// Set up: confine the process before any guest code runs.
	if err := sandbox.Lockdown(sb); err != nil {
		fmt.Fprintf(stderr, "argovisor: %v\n", err)
		return exitUsage
	}
	if sb.Seccomp == sandbox.SeccompLog {
		fmt.Fprintln(stderr, "argovisor: --seccomp=log: system calls off the allowlist are allowed and logged by the kernel (dmesg, audit log)")
	}
	for _, d := range domains {
		if err := d.Start(); err != nil {
			fmt.Fprintf(stderr, "argovisor: start %s: %v\n", d.Name(), err)
			return exitFailure
		}
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var deadline <-chan time.Time
	if *timeout > 0 {
		t := time.NewTimer(*timeout)
		defer t.Stop()
		deadline = t.C
	}
	allDone := make(chan struct{})
	go func() {
		for _, d := range domains {
			<-d.Done()
		}
		close(allDone)
	}()
	select {
	case <-allDone:
	case <-deadline:
		for _, d := range domains {
			d.Stop(fmt.Sprintf("timed out after %v", *timeout))
		}
	case s := <-sigs:
		for _, d := range domains {
			d.Stop(fmt.Sprintf("interrupted by %v", s))
		}
	}
	<-allDone

	code := exitOK
	for _, d := range domains {
		r := d.Wait()
		fmt.Fprintf(stdout, "argovisor: %s (domain %d): %v\n", d.Name(), d.ID(), r)
		if r.Fault != nil {
			fmt.Fprintln(stdout, r.Fault.RegisterDump())
		}
		if st := d.GnttabStats(); st != (gnttab.Stats{}) {
			ws := d.GrantWindowStats()
			fmt.Fprintf(stdout, "argovisor: %s gnttab: maps=%d unmaps=%d copies=%d/%d B revoked=%d errors=%d window-vmas=%d/%d no-device-space=%d\n",
				d.Name(), st.Maps, st.Unmaps, st.Copies, st.CopyBytes, st.Revoked, st.Errors, ws.Peak, ws.Limit, ws.Refused)
		}
		if st := d.MemoryStats(); st.Decreased+st.Populated+st.Increased+st.TransfersOut+st.TransfersIn != 0 {
			fmt.Fprintf(stdout, "argovisor: %s memory: reservation=%d/%d pages decreased=%d populated=%d increased=%d transfers-out=%d transfers-in=%d ram-in-host-memory=%d KiB errors=%d\n",
				d.Name(), st.Current, st.Max, st.Decreased, st.Populated, st.Increased, st.TransfersOut, st.TransfersIn, st.Backing>>10, st.Errors)
		}
		if st := d.ArgoStats(); st != (argo.Stats{}) {
			fmt.Fprintf(stdout, "argovisor: %s argo: registers=%d out=%d msgs/%d B in=%d msgs/%d B eagain=%d notifies=%d space-wakeups=%d errors=%d\n",
				d.Name(), st.Registers, st.MsgsOut, st.BytesOut, st.MsgsIn, st.BytesIn, st.EAGAINs, st.Notifies, st.Signals, st.Errors)
		}
		if !r.OK() {
			code = exitFailure
		}
	}
	return code
}

// consoleTo prints console lines to w. The VMM serialises calls.
func consoleTo(w io.Writer) func(*vmm.Domain, string) {
	return func(d *vmm.Domain, line string) {
		fmt.Fprintf(w, "[%s] %s\n", d.Name(), line)
	}
}

func benchCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	runs := fs.Int("runs", 5, "runs per figure (at least 5)")
	only := fs.String("only", "", "comma-separated figure name prefixes to run (floors always run)")
	guests := fs.String("guests", "build/guests", "directory with the built guest programs")
	out := fs.String("out", "bench/results/latest.json", "JSON results file")
	svg := fs.String("svg", "bench/results/throughput.svg", "SVG plot of throughput against message size")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "argovisor bench: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if _, err := os.Stat(*guests + "/benchloop.elf"); err != nil {
		fmt.Fprintf(stderr, "argovisor bench: guest programs not found in %s (run make guests): %v\n", *guests, err)
		return exitUsage
	}
	o := bench.Options{Guests: *guests, Runs: *runs, Progress: stderr}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	r, err := bench.Run(o)
	if err != nil {
		fmt.Fprintf(stderr, "argovisor bench: %v\n", err)
		if r == nil || len(r.Figures) == 0 {
			return exitFailure
		}
	}
	fmt.Fprint(stdout, r.Table())
	if err := r.WriteJSON(*out); err != nil {
		fmt.Fprintf(stderr, "argovisor bench: %v\n", err)
		return exitFailure
	}
	if err := r.WriteSVG(*svg); err != nil {
		fmt.Fprintf(stderr, "argovisor bench: plot: %v\n", err)
	}
	fmt.Fprintf(stdout, "\nwrote %s and %s\n", *out, *svg)
	if err != nil {
		return exitFailure
	}
	return exitOK
}
