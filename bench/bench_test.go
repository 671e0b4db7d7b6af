package bench

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
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
	floor, err := measure(o, spec{name: "floor.x", unit: "us", run: func(*Options) (float64, error) { v := vals[i%5]; i++; return v, nil }}, r)
	if err != nil || floor.Median != 3 || floor.Min != 1 || floor.Max != 5 || floor.Runs != 5 {
		t.Fatalf("floor = %+v, %v", floor, err)
	}
	r.Figures = append(r.Figures, floor)
	f, _ := measure(o, spec{name: "y", unit: "us", run: func(*Options) (float64, error) { return 6, nil }, ratioTo: "floor.x", goal: "<= 2"}, r)
	if f.Ratio != 2 || f.RatioTo != "floor.x" || f.Goal != "<= 2" {
		t.Fatalf("ratio figure = %+v", f)
	}
	g, _ := measure(o, spec{name: "z", unit: "us", run: func(*Options) (float64, error) { return 1, nil }, ratioTo: "missing"}, r)
	if g.RatioTo != "" {
		t.Fatalf("ratio to a missing floor: %+v", g)
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
	}
	for _, n := range []string{"floor.exit_rtt", "floor.irq_rtt", "floor.memcpy.64KiB", "argo.sendv.64B", "argo.sendv.64KiB",
		"argo.pingpong.64B", "argo.stream.64KiB", "argo.stream.1MiB", "peer.unix.pingpong.64B", "boot.64domains"} {
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
