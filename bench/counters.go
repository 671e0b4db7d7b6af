package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/vmm"
)

// Transitions per message: every Argo figure also reports how many times,
// per message (per round trip for ping-pong figures), the guests left for
// the VMM (exits_per_msg) and were interrupted (irqs_per_msg). Unlike the
// times, these do not depend on the host.
//
// They come from the VMM's per-domain counters read at two console lines
// of each guest: one printed just before its measured loop and one just
// after it. The counters are read during the exit that ends a line, so:
//
//	exits = Δ(PIO + MMIO exits) − Δ(console exits: the closing line
//	        itself — one exit where the firmware's rep outsb is one
//	        exit, one per byte where the host steps string I/O byte by
//	        byte, as kvm_pvm does)
//	        − sends refused while the peer's ring did not exist yet
//	          (Argo errors other than -EAGAIN: start-up, not protocol)
//	irqs  = Δ(VIRQs the domain's local APIC accepted)
//
// summed over the domains taking part and divided by the messages.

// mark is a domain's counters at the moment it printed a console line.
type mark struct {
	line string
	at   time.Time // when the line's exit was served
	vm   vmm.Stats
	argo argo.Stats
}

// transitions are exits and interrupts, in total or per message.
type transitions struct {
	exits, irqs float64
}

// between counts a domain's transitions from the first line starting with
// from to the first later line starting with to.
func between(marks []mark, from, to string) (transitions, error) {
	start := -1
	for i, m := range marks {
		if start < 0 && strings.HasPrefix(m.line, from) {
			start = i
			continue
		}
		if start >= 0 && strings.HasPrefix(m.line, to) {
			s, e := marks[start], m
			refused := int64(e.argo.Errors-s.argo.Errors) - int64(e.argo.EAGAINs-s.argo.EAGAINs)
			console := int64(e.vm.ConsoleExits - s.vm.ConsoleExits)
			exits := int64(e.vm.Exits()-s.vm.Exits()) - console - max(refused, 0)
			return transitions{exits: float64(max(exits, 0)), irqs: float64(e.vm.VIRQs - s.vm.VIRQs)}, nil
		}
	}
	if start < 0 {
		return transitions{}, fmt.Errorf("no console line starting %q", from)
	}
	return transitions{}, fmt.Errorf("no console line starting %q after %q", to, from)
}

// interval names the lines that bracket one domain's measured loop.
type interval struct {
	domain, from, to string
}

// perMessage sums the transitions of several domains over their
// intervals and divides them by msgs.
func perMessage(marks map[string][]mark, msgs float64, ivs ...interval) (transitions, error) {
	var sum transitions
	for _, iv := range ivs {
		t, err := between(marks[iv.domain], iv.from, iv.to)
		if err != nil {
			return transitions{}, fmt.Errorf("%s: %w", iv.domain, err)
		}
		sum.exits += t.exits
		sum.irqs += t.irqs
	}
	if msgs <= 0 {
		return transitions{}, fmt.Errorf("no messages to divide by")
	}
	return transitions{exits: sum.exits / msgs, irqs: sum.irqs / msgs}, nil
}

// perMessage is perMessage over the lab's marks.
func (l *lab) perMessage(msgs float64, ivs ...interval) (transitions, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return perMessage(l.marks, msgs, ivs...)
}

// lineAt names a console line: the first of domain's lines that starts
// with prefix.
type lineAt struct{ domain, prefix string }

// window is the time from the latest of the starts to end, by the
// moments the lines were printed (each line is one exit, stamped while it
// is served).
func window(marks map[string][]mark, end lineAt, starts ...lineAt) (time.Duration, error) {
	find := func(l lineAt) (time.Time, error) {
		for _, m := range marks[l.domain] {
			if strings.HasPrefix(m.line, l.prefix) {
				return m.at, nil
			}
		}
		return time.Time{}, fmt.Errorf("%s: no console line starting %q", l.domain, l.prefix)
	}
	var from time.Time
	for _, s := range starts {
		t, err := find(s)
		if err != nil {
			return 0, err
		}
		if t.After(from) {
			from = t
		}
	}
	to, err := find(end)
	if err != nil {
		return 0, err
	}
	if !to.After(from) {
		return 0, fmt.Errorf("%s %q printed before the window opened", end.domain, end.prefix)
	}
	return to.Sub(from), nil
}

// window is window over the lab's marks.
func (l *lab) window(end lineAt, starts ...lineAt) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return window(l.marks, end, starts...)
}
