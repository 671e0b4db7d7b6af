package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/argovisor/argovisor/vmm"
)

// Figure is one measured quantity (JSON names are read by tools outside
// the repository: keep them).
type Figure struct {
	Name    string  `json:"name"`
	Unit    string  `json:"unit"`
	Median  float64 `json:"median"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Ratio   float64 `json:"ratio,omitempty"`
	RatioTo string  `json:"ratio_to,omitempty"`
	Goal    string  `json:"goal,omitempty"`
	Runs    int     `json:"runs"`
	// Size is the message size in bytes for size-dependent figures (for
	// the plot), 0 otherwise.
	Size int `json:"size,omitempty"`
	// ExitsPerMsg and IRQsPerMsg are the medians over the runs of the
	// guests' exits to the VMM and VIRQs per message (per round trip for
	// ping-pong figures), for Argo figures (counters.go); absent otherwise.
	ExitsPerMsg *float64 `json:"exits_per_msg,omitempty"`
	IRQsPerMsg  *float64 `json:"irqs_per_msg,omitempty"`
	// Failed, set for a figure that could not be measured, is why (the
	// first line of the error); its numbers are then zero and mean
	// nothing. A run goes on with the other figures after a failure.
	Failed string `json:"failed,omitempty"`
}

// Report is a whole run.
type Report struct {
	Machine string `json:"machine"`
	// Platform is where the guests ran: "native", or "qemu-tcg" inside
	// the tests' VM (tools/vmtest), where every time is TCG's and says
	// nothing about the host; exits and interrupts per message are counts
	// and mean the same on both.
	Platform string `json:"platform"`
	When     string `json:"when"`
	// Doorbell is the run's doorbell policy (Options.Doorbell): "auto",
	// "prefer" or "avoid".
	Doorbell string   `json:"doorbell,omitempty"`
	Figures  []Figure `json:"figures"`
}

// platform names where this process runs (see Report.Platform).
func platform() string {
	if v := os.Getenv("ARGOVISOR_IN_VM"); v != "" {
		return v
	}
	return "native"
}

// Options control a run.
type Options struct {
	// Guests is the directory holding the built guest programs.
	Guests string
	// Runs per figure (at least 5).
	Runs int
	// Progress receives one line per finished figure.
	Progress io.Writer
	// Only, if non-empty, runs just the figures whose names start with
	// one of these prefixes (floors are always run).
	Only []string
	// Doorbell is the VMM's doorbell policy for the run: whether guests'
	// hypercalls (guest_hypercall) ring the doorbell or use the port.
	// The floor.exit_rtt* figures choose their way themselves.
	Doorbell vmm.DoorbellPolicy
}

// spec describes how to measure one figure.
type spec struct {
	name, unit string
	size       int
	run        func(o *Options) (float64, error)
	// counted, set instead of run, also returns the transitions per
	// message of the run.
	counted func(o *Options) (sample, error)
	// pair, if set, is measured in the same runs, alternating with this
	// one, so that a figure and its floor see the same machine load; its
	// figure is reported first.
	pair *spec
	// derive, if set, adds figures computed from this one's (for example
	// a message rate from a throughput).
	// The report so far is given too (nil when the figure failed).
	derive func(Figure, *Report) Figure
	// ratioTo names the floor; ratio computes value/floor (or a custom
	// function of the report so far).
	ratioTo string
	ratio   func(v float64, r *Report) (float64, bool)
	goal    string
}

// Run measures every figure and returns the report. A figure that fails
// does not end the run: it is in the report marked Failed (so are the
// figures measured with it: its pair and derived figures), every other
// figure is still measured, and the error returned joins the failures
// (each "figure: cause", with the guests' consoles where a guest failed).
func Run(o Options) (*Report, error) { return run(o, figures()) }

// run is Run over the given specs (tests pass fakes).
func run(o Options, specs []spec) (*Report, error) {
	if o.Runs < 5 {
		o.Runs = 5
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	r := &Report{Machine: machine(), Platform: platform(), When: time.Now().UTC().Format(time.RFC3339), Doorbell: o.Doorbell.String()}
	if r.Platform != "native" {
		fmt.Fprintf(o.Progress, "bench: inside the test VM (%s): every time below is TCG's, not the host's; only exits and irqs per message compare with native runs\n", r.Platform)
	}
	todo := specs[:0:0]
	for _, s := range specs {
		if strings.HasPrefix(s.name, "floor.") || len(o.Only) == 0 || slices.ContainsFunc(o.Only, func(p string) bool { return strings.HasPrefix(s.name, p) }) {
			todo = append(todo, s)
		}
	}
	start := time.Now()
	var failures []error
	for i, s := range todo {
		fs, err := measure(&o, s, r)
		if err != nil {
			fs = failedFigures(s, err)
			failures = append(failures, fmt.Errorf("%s: %w", s.name, err))
		}
		r.Figures = append(r.Figures, fs...)
		for _, f := range fs {
			progress(o.Progress, i+1, len(todo), start, f)
		}
	}
	return r, errors.Join(failures...)
}

// failedFigures are the figures a spec would have given, marked with the
// first line of err (the rest — a guest's console — goes to the error
// Run returns).
func failedFigures(s spec, err error) []Figure {
	why, _, _ := strings.Cut(err.Error(), "\n")
	mark := func(s spec) Figure {
		return Figure{Name: s.name, Unit: s.unit, Goal: s.goal, Size: s.size, Failed: why}
	}
	var out []Figure
	if s.pair != nil {
		out = append(out, mark(*s.pair))
	}
	f := mark(s)
	out = append(out, f)
	if s.derive != nil {
		d := s.derive(f, nil)
		out = append(out, Figure{Name: d.Name, Unit: d.Unit, Goal: d.Goal, Size: d.Size, Failed: why})
	}
	return out
}

// Failed lists the names of the figures that could not be measured.
func (r *Report) Failed() []string {
	var names []string
	for _, f := range r.Figures {
		if f.Failed != "" {
			names = append(names, f.Name)
		}
	}
	return names
}

// progress prints one finished figure.
func progress(w io.Writer, i, n int, start time.Time, f Figure) {
	if f.Failed != "" {
		fmt.Fprintf(w, "[%2d/%d %5.0fs] %-28s FAILED: %s\n", i, n, time.Since(start).Seconds(), f.Name, f.Failed)
		return
	}
	line := fmt.Sprintf("[%2d/%d %5.0fs] %-28s median %10.3f %-6s (min %.3f, max %.3f)", i, n, time.Since(start).Seconds(), f.Name, f.Median, f.Unit, f.Min, f.Max)
	if f.RatioTo != "" {
		line += fmt.Sprintf("  %.3f× %s", f.Ratio, f.RatioTo)
	}
	fmt.Fprintln(w, line)
}

// sample is one run of a figure: its value and, for counted figures, the
// transitions per message.
type sample struct {
	v float64
	t *transitions
}

// runOnce runs a spec once.
func (s spec) runOnce(o *Options) (sample, error) {
	if s.counted != nil {
		return s.counted(o)
	}
	v, err := s.run(o)
	return sample{v: v}, err
}

// measure runs a spec (and its pair, alternately) o.Runs times.
func measure(o *Options, s spec, r *Report) ([]Figure, error) {
	var pairVals []float64
	vals := make([]float64, 0, o.Runs)
	var exits, irqs []float64
	for i := 0; i < o.Runs; i++ {
		if s.pair != nil {
			v, err := s.pair.run(o)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.pair.name, err)
			}
			pairVals = append(pairVals, v)
		}
		sm, err := s.runOnce(o)
		if err != nil {
			return nil, err
		}
		vals = append(vals, sm.v)
		if sm.t != nil {
			exits = append(exits, sm.t.exits)
			irqs = append(irqs, sm.t.irqs)
		}
	}
	var out []Figure
	if s.pair != nil {
		pf := summarise(*s.pair, pairVals, r)
		r.Figures = append(r.Figures, pf) // visible to s's ratio
		out = append(out, pf)
	}
	f := summarise(s, vals, r)
	if len(exits) == len(vals) && len(vals) > 0 {
		f.ExitsPerMsg, f.IRQsPerMsg = medianOf(exits), medianOf(irqs)
	}
	if s.pair != nil {
		r.Figures = r.Figures[:len(r.Figures)-1]
	}
	out = append(out, f)
	if s.derive != nil {
		out = append(out, s.derive(f, r))
	}
	return out, nil
}

func summarise(s spec, vals []float64, r *Report) Figure {
	slices.Sort(vals)
	f := Figure{Name: s.name, Unit: s.unit, Median: median(vals), Min: vals[0], Max: vals[len(vals)-1], Runs: len(vals), Goal: s.goal, Size: s.size}
	switch {
	case s.ratio != nil:
		if q, ok := s.ratio(f.Median, r); ok {
			f.Ratio, f.RatioTo = q, s.ratioTo
		}
	case s.ratioTo != "":
		if fl, ok := r.Get(s.ratioTo); ok && fl.Median > 0 {
			f.Ratio, f.RatioTo = f.Median/fl.Median, s.ratioTo
		}
	}
	return f
}

// medianOf sorts vals and returns a pointer to their median.
func medianOf(vals []float64) *float64 {
	slices.Sort(vals)
	m := median(vals)
	return &m
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Get finds a measured figure by name: a failed one is not found, so
// that no ratio is computed against it.
func (r *Report) Get(name string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Name == name && f.Failed == "" {
			return f, true
		}
	}
	return Figure{}, false
}

// WriteJSON writes the report to path, creating its directory.
func (r *Report) WriteJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Table formats the report as a text table.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "argovisor bench — %s — %s\n", r.Machine, r.When)
	if r.Doorbell != "" {
		fmt.Fprintf(&b, "doorbell policy: %s\n", r.Doorbell)
	}
	if r.Platform != "" && r.Platform != "native" {
		fmt.Fprintf(&b, "PLATFORM %s: the guests ran under KVM inside a QEMU/TCG VM; every time and ratio is TCG's, only exits/msg and irqs/msg compare with native runs\n", r.Platform)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "%-28s %12s %12s %12s %-6s %9s %9s %9s  %-26s %s\n", "figure", "median", "min", "max", "unit", "exits/msg", "irqs/msg", "ratio", "to", "goal")
	for _, f := range r.Figures {
		if f.Failed != "" {
			fmt.Fprintf(&b, "%-28s %12s %12s %12s %-6s %9s %9s %9s  %-26s %s\n", f.Name, "FAILED", "-", "-", f.Unit, "", "", "", "", f.Failed)
			continue
		}
		ratio := ""
		if f.RatioTo != "" {
			ratio = fmt.Sprintf("%.3f", f.Ratio)
		}
		exits, irqs := "", ""
		if f.ExitsPerMsg != nil && f.IRQsPerMsg != nil {
			exits, irqs = fmt.Sprintf("%.3f", *f.ExitsPerMsg), fmt.Sprintf("%.3f", *f.IRQsPerMsg)
		}
		fmt.Fprintf(&b, "%-28s %12.3f %12.3f %12.3f %-6s %9s %9s %9s  %-26s %s\n", f.Name, f.Median, f.Min, f.Max, f.Unit, exits, irqs, ratio, f.RatioTo, f.Goal)
	}
	if failed := r.Failed(); len(failed) > 0 {
		fmt.Fprintf(&b, "\nFAILED: %d figures could not be measured: %s\n", len(failed), strings.Join(failed, ", "))
	}
	return b.String()
}

// machine describes the host briefly.
func machine() string {
	host, _ := os.Hostname()
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kvm := "kvm"
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		kvm = "kvm_pvm (nested)"
	}
	return fmt.Sprintf("%s: %s, %d CPUs, %s, %s", host, cpu, runtime.NumCPU(), kvm, runtime.Version())
}

var errGuest = errors.New("guest failed")
