package test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/argovisor/argovisor/vmm"
)

// rssKiB reads this process's resident set size.
func rssKiB(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkBoot boots n hello domains of 16 MiB each and times until every
// one has printed its first console line. It also reports the VMM's RSS
// growth per domain at that point.
func BenchmarkBoot(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			requireKVM(b)
			var rss int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				v, err := vmm.New(vmm.Options{Console: func(*vmm.Domain, string) {}})
				if err != nil {
					b.Fatal(err)
				}
				before := rssKiB(b)
				b.StartTimer()
				var ds []*vmm.Domain
				for j := 0; j < n; j++ {
					d, err := v.CreateDomain(vmm.DomainConfig{Name: fmt.Sprintf("d%d", j), Kernel: guest("spin"), Memory: 16 << 20, VCPUs: 1})
					if err != nil {
						b.Fatal(err)
					}
					if err := d.Start(); err != nil {
						b.Fatal(err)
					}
					ds = append(ds, d)
				}
				for _, d := range ds {
					select {
					case <-d.FirstOutput():
					case <-time.After(2 * time.Minute):
						b.Fatalf("%s never printed", d.Name())
					}
				}
				b.StopTimer()
				rss += rssKiB(b) - before
				v.Close()
			}
			b.ReportMetric(float64(rss)/float64(b.N*n), "RSS-KiB/domain")
		})
	}
}
