package test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/argovisor/argovisor/vmm"
)

// BenchmarkArgoFloorExit is the floor the Argo figures are compared with:
// a guest loop of null hypercalls through the full dispatch path.
func BenchmarkArgoFloorExit(b *testing.B) {
	requireKVM(b)
	v, err := vmm.New(vmm.Options{Console: func(*vmm.Domain, string) {}})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	var n atomic.Int64
	target := int64(b.N)
	done := make(chan struct{})
	v.SetHypercall(vmm.HypercallNull, func(*vmm.Hypercall) int64 {
		if n.Add(1) == target {
			close(done)
		}
		return 0
	})
	d, err := v.CreateDomain(vmm.DomainConfig{Name: "floor", Kernel: guest("benchloop"), Memory: 16 << 20, VCPUs: 1})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	<-d.FirstOutput()
	b.ResetTimer()
	<-done
	b.StopTimer()
}

// BenchmarkArgoSendv times sendv into the guest's own ring (each message
// is drained again by the guest, outside the timed hypercall). ns/op is
// wall time per iteration (sendv + guest-side receive); guest-ns/sendv is
// the hypercall alone, measured with the guest TSC.
func BenchmarkArgoSendv(b *testing.B) {
	for _, size := range []int{16, 64, 1024, 4096, 64 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			var c console
			v := newVMM(b, &c)
			d := boot(b, v, vmm.DomainConfig{Name: "sendbench", Kernel: guest("sendbench"), Memory: 64 << 20,
				Params: map[string]string{"size": fmt.Sprint(size), "count": fmt.Sprint(b.N)}})
			select {
			case <-d.FirstOutput():
			case <-time.After(time.Minute):
				b.Fatal("guest did not start")
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			res := waitResult(b, d, 10*time.Minute)
			b.StopTimer()
			if !res.OK() {
				b.Fatalf("%v\n%s", res, c.dump())
			}
			var sz, count, cycles uint64
			for _, l := range c.of("sendbench") {
				if strings.HasPrefix(l, "sendv:") {
					fmt.Sscanf(l, "sendv: size %d count %d cycles %d", &sz, &count, &cycles)
				}
			}
			khz, err := d.TSCKHz()
			if err != nil || count == 0 {
				b.Fatalf("no guest measurement (%v): %s", err, c.dump())
			}
			b.ReportMetric(float64(cycles)/float64(count)/float64(khz)*1e6, "guest-ns/sendv")
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
