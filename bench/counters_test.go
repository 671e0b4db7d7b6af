package bench

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/vmm"
)

// mk is a mark with the counters that matter here; each line is one
// console exit (console is the count at the line, its own exit included).
func mk(line string, pio, mmio, virqs, errs, eagains, console uint64) mark {
	return mark{line: line, vm: vmm.Stats{PIOExits: pio, MMIOExits: mmio, VIRQs: virqs, Hypercalls: 999, Kicks: 77, ConsoleExits: console},
		argo: argo.Stats{Errors: errs, EAGAINs: eagains}}
}

func TestBetween(t *testing.T) {
	marks := []mark{
		mk("boot line", 3, 0, 0, 0, 0, 1),
		mk("pingpong: ping, domain 1 <-> 2", 10, 1, 4, 2, 1, 2),
		mk("something else", 500, 1, 60, 5, 2, 3),
		// 2000 sends + 1000 notifies + 3 refused sends + 2 lines, 1000
		// VIRQs, one MMIO exit.
		mk("pingpong: 1000 round trips ok", 10+2000+1000+3+2, 2, 1004, 2+3+7, 1+7, 4),
		mk("pingpong: later", 9000, 9, 9000, 99, 9, 5),
	}
	got, err := between(marks, "pingpong: ping,", "pingpong: ")
	if err != nil {
		t.Fatal(err)
	}
	// Kicks and the hypercall count play no part; -EAGAINs are real
	// transitions, the other errors (refused sends) are not.
	if got.exits != 3001 || got.irqs != 1000 {
		t.Errorf("between = %+v, want 3001 exits, 1000 irqs", got)
	}
	// A host that steps the firmware's rep outsb byte by byte (kvm_pvm)
	// makes an exit per byte of each line: none of them counts.
	perByte := []mark{
		mk("pingpong: ping, domain 1 <-> 2", 40, 1, 4, 2, 1, 31),
		mk("pingpong: 1000 round trips ok", 40+3000+30, 1, 1004, 2, 1, 31+30),
	}
	if got, err := between(perByte, "pingpong: ping,", "pingpong: "); err != nil || got.exits != 3000 {
		t.Errorf("per-byte console: %+v, %v; want 3000 exits", got, err)
	}
	if _, err := between(marks, "nope", "pingpong: "); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing start line: %v", err)
	}
	if _, err := between(marks[:2], "pingpong: ping,", "pingpong: "); err == nil {
		t.Error("missing end line not reported")
	}
	// The end line must come after the start line.
	if _, err := between([]mark{marks[3], marks[1]}, "pingpong: ping,", "pingpong: 1000"); err == nil {
		t.Error("an end line before the start line was used")
	}
}

func TestPerMessage(t *testing.T) {
	m := map[string][]mark{
		"ping": {mk("start", 0, 0, 0, 0, 0, 1), mk("end", 201, 0, 100, 0, 0, 2)},
		"pong": {mk("start", 5, 0, 5, 0, 0, 1), mk("end", 5+101, 0, 5, 0, 0, 2)},
	}
	got, err := perMessage(m, 100, interval{"ping", "start", "end"}, interval{"pong", "start", "end"})
	if err != nil {
		t.Fatal(err)
	}
	if got.exits != 3 || got.irqs != 1 {
		t.Errorf("per message = %+v, want 3 exits, 1 irq", got)
	}
	if _, err := perMessage(m, 100, interval{"nobody", "start", "end"}); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("unknown domain: %v", err)
	}
	if _, err := perMessage(m, 0, interval{"ping", "start", "end"}); err == nil {
		t.Error("division by zero messages")
	}
}

// Counted figures carry the medians of their transitions, zero included,
// into the JSON and the table; uncounted ones carry none.
func TestMeasureTransitions(t *testing.T) {
	r := &Report{}
	o := &Options{Runs: 5}
	ex := []float64{2, 2.5, 1, 3, 2.2}
	i := 0
	fs, err := measure(o, spec{name: "argo.pingpong.wait.64B", unit: "us", counted: func(*Options) (sample, error) {
		tr := transitions{exits: ex[i%5], irqs: 0}
		i++
		return sample{v: 10, t: &tr}, nil
	}, derive: messageRate(64)}, r)
	if err != nil {
		t.Fatal(err)
	}
	f := fs[0]
	if f.ExitsPerMsg == nil || *f.ExitsPerMsg != 2.2 || f.IRQsPerMsg == nil || *f.IRQsPerMsg != 0 {
		t.Fatalf("figure %+v", f)
	}
	if d := fs[1]; d.ExitsPerMsg == nil || *d.ExitsPerMsg != 2.2 {
		t.Errorf("derived figure lost the transitions: %+v", d)
	}
	plain, _ := measure(o, spec{name: "floor.x", unit: "us", run: func(*Options) (float64, error) { return 1, nil }}, r)
	r.Figures = append(r.Figures, f, plain[0])
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Figures []map[string]any }
	json.Unmarshal(b, &m)
	if m.Figures[0]["exits_per_msg"] != 2.2 || m.Figures[0]["irqs_per_msg"] != 0.0 {
		t.Errorf("counted figure JSON: %s", b)
	}
	if _, ok := m.Figures[1]["exits_per_msg"]; ok {
		t.Errorf("uncounted figure has exits_per_msg: %s", b)
	}
	tab := r.Table()
	if !strings.Contains(tab, "exits/msg") || !strings.Contains(tab, "2.200") {
		t.Errorf("table:\n%s", tab)
	}
}

// The stream's time window opens at the later of its start lines and
// closes at its end line.
func TestWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(line string, ms int) mark {
		return mark{line: line, at: t0.Add(time.Duration(ms) * time.Millisecond)}
	}
	m := map[string][]mark{
		"rx": {at("boot", 0), at("stream: ring ready", 50), at("stream: receiving", 51), at("stream: received", 90)},
		"tx": {at("stream: sending", 60), at("stream: 100 msgs ok", 91)},
	}
	end := lineAt{"rx", "stream: received"}
	if d, err := window(m, end, lineAt{"rx", "stream: ring ready"}, lineAt{"tx", "stream: sending"}); err != nil || d != 30*time.Millisecond {
		t.Errorf("window = %v, %v; want 30ms (from the sender's later line)", d, err)
	}
	if d, err := window(m, end, lineAt{"rx", "stream: ring ready"}); err != nil || d != 40*time.Millisecond {
		t.Errorf("window = %v, %v; want 40ms", d, err)
	}
	if _, err := window(m, end, lineAt{"tx", "nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing start line: %v", err)
	}
	if _, err := window(m, lineAt{"rx", "boot"}, lineAt{"tx", "stream: sending"}); err == nil {
		t.Error("an end before the start was used")
	}
}
