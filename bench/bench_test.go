package bench

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	if m := median([]float64{1, 2, 9}); m != 2 {
		t.Errorf("odd median %v", m)
	}
	if m := median([]float64{1, 2, 4, 9}); m != 3 {
		t.Errorf("even median %v", m)
	}
}

func TestMeasureRatios(t *testing.T) {
	r := &Report{}
	o := &Options{Runs: 5}
	vals := []float64{5, 1, 4, 2, 3}
	i := 0
	fs, err := measure(o, spec{name: "floor.x", unit: "us", run: func(*Options) (float64, error) { v := vals[i%5]; i++; return v, nil }}, r)
	if err != nil || len(fs) != 1 || fs[0].Median != 3 || fs[0].Min != 1 || fs[0].Max != 5 || fs[0].Runs != 5 {
		t.Fatalf("floor = %+v, %v", fs, err)
	}
	r.Figures = append(r.Figures, fs...)
	f, _ := measure(o, spec{name: "y", unit: "us", run: func(*Options) (float64, error) { return 6, nil }, ratioTo: "floor.x", goal: "<= 2"}, r)
	if f[0].Ratio != 2 || f[0].RatioTo != "floor.x" || f[0].Goal != "<= 2" {
		t.Fatalf("ratio figure = %+v", f)
	}
	g, _ := measure(o, spec{name: "z", unit: "us", run: func(*Options) (float64, error) { return 1, nil }, ratioTo: "missing"}, r)
	if g[0].RatioTo != "" {
		t.Fatalf("ratio to a missing floor: %+v", g)
	}
	// A pair is measured alternately and its figure comes first; the
	// other figure's ratio is to it.
	var order []string
	p, _ := measure(o, spec{name: "a", unit: "us", run: func(*Options) (float64, error) { order = append(order, "a"); return 4, nil }, ratioTo: "b",
		pair: &spec{name: "b", unit: "us", run: func(*Options) (float64, error) { order = append(order, "b"); return 2, nil }}}, r)
	if len(p) != 2 || p[0].Name != "b" || p[1].Name != "a" || p[1].Ratio != 2 || strings.Join(order, "") != "bababababa" {
		t.Fatalf("pair = %+v, order %v", p, order)
	}
	// A derived figure follows its source.
	d, _ := measure(o, spec{name: "argo.stream.1KiB", unit: "MB/s", run: func(*Options) (float64, error) { return 2, nil }, derive: messageRate(1000)}, r)
	if len(d) != 2 || d[1].Name != "argo.stream.1KiB.rate" || d[1].Median != 2000 || d[1].Unit != "msg/s" {
		t.Fatalf("derived = %+v", d)
	}
}

// The JSON field names are a contract with tools outside the repository.
func TestJSONNames(t *testing.T) {
	r := &Report{Machine: "m", When: "2026-01-01T00:00:00Z", Figures: []Figure{{Name: "floor.exit_rtt", Unit: "us", Median: 1, Min: 1, Max: 2, Ratio: 1.5, RatioTo: "floor.exit_rtt.bare", Goal: "<= 1.1", Runs: 5}}}
	p := filepath.Join(t.TempDir(), "out", "latest.json")
	if err := r.WriteJSON(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	fig := m["figures"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "unit", "median", "min", "max", "ratio", "ratio_to", "goal"} {
		if _, ok := fig[k]; !ok {
			t.Errorf("figure lacks %q: %s", k, b)
		}
	}
	if m["machine"] != "m" || m["when"] != "2026-01-01T00:00:00Z" {
		t.Errorf("report header: %s", b)
	}
	if !strings.Contains(r.Table(), "floor.exit_rtt") {
		t.Error("table lacks the figure")
	}
}

// Every figure the issue names is produced by a spec.
func TestRequiredFigures(t *testing.T) {
	have := map[string]bool{}
	for _, s := range figures() {
		have[s.name] = true
		// Every Argo figure counts exits and interrupts per message,
		// except the host-only copy path, which runs no guest.
		if strings.HasPrefix(s.name, "argo.") && !strings.HasPrefix(s.name, "argo.copy.") && s.counted == nil {
			t.Errorf("%s does not count transitions", s.name)
		}
	}
	for _, n := range []string{"floor.exit_rtt", "floor.irq_rtt", "floor.memcpy.64KiB", "argo.sendv.64B", "argo.sendv.64KiB",
		"argo.pingpong.64B", "argo.stream.64KiB", "argo.stream.1MiB", "argo.isolation", "gnttab.map_unmap.1", "gnttab.map_unmap.32",
		"gnttab.copy.4KiB", "gnttab.transfer.1", "peer.unix.pingpong.64B", "boot.64domains",
		"argo.pingpong.fast.64B", "argo.pingpong.wait.64B", "argo.stream.fast.64B", "argo.stream.fast.1MiB",
		"argo.copy.64KiB", "argo.copy.1MiB"} {
		if !have[n] {
			t.Errorf("no figure %s", n)
		}
	}
}

func TestSVG(t *testing.T) {
	r := &Report{When: "now"}
	for _, n := range []int{64, 4096, 1 << 20} {
		r.Figures = append(r.Figures,
			Figure{Name: "floor.memcpy." + sizeName(n), Unit: "MB/s", Median: 1000, Size: n},
			Figure{Name: "argo.sendv." + sizeName(n), Unit: "us", Median: 40, Size: n},
			Figure{Name: "argo.sendv." + sizeName(n) + ".guest", Unit: "us", Median: 40, Size: n})
	}
	p := filepath.Join(t.TempDir(), "p.svg")
	if err := r.WriteSVG(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if err := xml.Unmarshal(b, new(struct{})); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	if strings.Count(string(b), "<polyline") != 2 {
		t.Errorf("want 2 series (memcpy, sendv; .guest excluded):\n%s", b)
	}
	if err := (&Report{}).WriteSVG(p); err == nil {
		t.Error("empty report plotted")
	}
}

// One figure that fails (here a guest that "exits 1" on the third run)
// does not end the run (issue 15): every other figure is measured, the
// failed one — with its pair and derived figures — is marked in the
// progress, the table and the JSON, no ratio is computed against it, and
// the error names it with the guest's console.
func TestRunGoesOnAfterAFailure(t *testing.T) {
	runs := 0
	fail := func(*Options) (sample, error) {
		if runs++; runs == 3 {
			return sample{}, fmt.Errorf("%w: ping: exited with status 1\npingpong: send 999 failed: -2", errGuest)
		}
		return sample{v: 1}, nil
	}
	ok := func(v float64) func(*Options) (float64, error) {
		return func(*Options) (float64, error) { return v, nil }
	}
	bad := func(*Options) (float64, error) { return 0, errors.New("no socket") }
	specs := []spec{
		{name: "floor.x", unit: "us", run: ok(2)},
		{name: "argo.bad", unit: "us", counted: fail, ratioTo: "floor.x", goal: "<= 2"},
		{name: "argo.after", unit: "us", run: ok(4), ratioTo: "floor.x"},
		{name: "argo.onbad", unit: "us", run: ok(4), ratioTo: "argo.bad"},
		{name: "peer.a", unit: "us", run: ok(1), pair: &spec{name: "peer.b", unit: "us", run: bad}},
		{name: "argo.stream.1KiB", unit: "MB/s", run: bad, derive: messageRate(1000)},
		{name: "boot.last", unit: "s", run: ok(3)},
	}
	var prog strings.Builder
	r, err := run(Options{Runs: 5, Progress: &prog}, specs)
	if err == nil || !errors.Is(err, errGuest) {
		t.Fatalf("run error %v, want the guest failure", err)
	}
	for _, want := range []string{"argo.bad: guest failed: ping: exited with status 1", "pingpong: send 999 failed: -2", "peer.a: peer.b: no socket", "argo.stream.1KiB: no socket"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	wantFailed := []string{"argo.bad", "peer.b", "peer.a", "argo.stream.1KiB", "argo.stream.1KiB.rate"}
	if got := r.Failed(); strings.Join(got, " ") != strings.Join(wantFailed, " ") {
		t.Errorf("failed figures %v, want %v", got, wantFailed)
	}
	var names []string
	for _, f := range r.Figures {
		names = append(names, f.Name)
	}
	if want := "floor.x argo.bad argo.after argo.onbad peer.b peer.a argo.stream.1KiB argo.stream.1KiB.rate boot.last"; strings.Join(names, " ") != want {
		t.Fatalf("figures %v, want %s", names, want)
	}
	if f, _ := r.Get("argo.after"); f.Ratio != 2 || f.Runs != 5 {
		t.Errorf("figure after the failure: %+v", f)
	}
	if _, found := r.Get("argo.bad"); found {
		t.Error("Get found a failed figure")
	}
	if f, _ := r.Get("argo.onbad"); f.RatioTo != "" {
		t.Errorf("ratio to a failed figure: %+v", f)
	}
	if f := r.Figures[1]; f.Failed != "guest failed: ping: exited with status 1" || f.Median != 0 || f.Goal != "<= 2" {
		t.Errorf("failed figure %+v", f)
	}
	p := prog.String()
	if !strings.Contains(p, "argo.bad                     FAILED: guest failed: ping: exited with status 1\n") || strings.Contains(p, "send 999") {
		t.Errorf("progress (one line per failed figure, no console):\n%s", p)
	}
	if !strings.Contains(p, "] boot.last ") {
		t.Errorf("progress does not reach the last figure:\n%s", p)
	}
	tab := r.Table()
	if !strings.Contains(tab, "argo.bad                           FAILED") ||
		!strings.Contains(tab, "FAILED: 5 figures could not be measured: argo.bad, peer.b, peer.a, argo.stream.1KiB, argo.stream.1KiB.rate") {
		t.Errorf("table:\n%s", tab)
	}
	path := filepath.Join(t.TempDir(), "latest.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	var doc struct {
		Figures []map[string]any `json:"figures"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.Figures {
		failed, has := f["failed"]
		if want := slices.Contains(wantFailed, f["name"].(string)); has != want || (has && failed == "") {
			t.Errorf("JSON figure %v: failed %v, want it marked: %v", f["name"], failed, want)
		}
	}
	// The plot skips failed figures (a zero time would be infinite MB/s).
	r.Figures = append(r.Figures, Figure{Name: "argo.sendv.64B", Unit: "us", Size: 64, Failed: "x"}, Figure{Name: "floor.memcpy.64B", Unit: "MB/s", Size: 64, Median: 1000})
	if ps := r.points(plotSeries[2]); len(ps) != 0 {
		t.Errorf("plotted a failed figure: %v", ps)
	}
}
