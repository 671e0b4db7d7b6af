package bench

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkFigures runs every figure of argovisor bench as a go test
// benchmark, one measurement per iteration, so that a figure can be
// profiled: go test -run '^$' -bench 'Figures/argo.sendv.64B$'
// -benchtime 3x -cpuprofile cpu.prof ./bench/. It needs /dev/kvm and the
// built guests (make guests); it is not part of make test.
func BenchmarkFigures(b *testing.B) {
	guests, _ := filepath.Abs("../build/guests")
	if _, err := os.Stat(filepath.Join(guests, "benchloop.elf")); err != nil {
		b.Skip("guests not built: run make guests")
	}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		b.Skipf("no usable /dev/kvm: %v", err)
	} else {
		f.Close()
	}
	o := &Options{Guests: guests}
	for _, s := range figures() {
		for _, s := range append([]spec{s}, pairOf(s)...) {
			b.Run(s.name, func(b *testing.B) {
				var sm sample
				for i := 0; i < b.N; i++ {
					var err error
					if sm, err = s.runOnce(o); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(sm.v, s.unit)
				if sm.t != nil {
					b.ReportMetric(sm.t.exits, "exits/msg")
					b.ReportMetric(sm.t.irqs, "irqs/msg")
				}
			})
		}
	}
}

func pairOf(s spec) []spec {
	if s.pair == nil {
		return nil
	}
	return []spec{*s.pair}
}
