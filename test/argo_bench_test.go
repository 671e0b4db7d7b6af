package test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/argovisor/argovisor/argo"
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

// BenchmarkArgoSendv times sendv. "self": into the guest's own ring,
// drained by the guest (the VIRQ each send raises in the sender is part of
// the cost). "tohost": into a host ring drained by a Go goroutine (the
// signal goes to the host; -EAGAIN retries are excluded from the guest
// figure only if they were not timed — they are timed, and rare). ns/op is
// wall time per message; guest-ns/sendv is the hypercalls alone, measured
// with the guest TSC.
func BenchmarkArgoSendv(b *testing.B) {
	for _, dst := range []string{"self", "tohost"} {
		for _, size := range []int{16, 64, 1024, 4096, 64 << 10, 1 << 20} {
			b.Run(dst+"/"+sizeName(size), func(b *testing.B) { benchSendv(b, dst, size) })
		}
	}
}

func benchSendv(b *testing.B, dst string, size int) {
	var c console
	v := newVMM(b, &c)
	params := map[string]string{"size": fmt.Sprint(size), "count": fmt.Sprint(b.N)}
	stop := make(chan struct{})
	var drained sync.WaitGroup
	if dst == "tohost" {
		h, err := v.Argo().NewHost(0, argo.Policy{Enabled: true, Wildcard: true})
		if err != nil {
			b.Fatal(err)
		}
		ringLen := uint32(4*(size+32)+15) &^ 15
		ringLen = max(ringLen, 16<<10)
		// Wildcard: the guest does not exist yet.
		r, err := h.RegisterRing(1, argo.DomainAny, ringLen)
		if err != nil {
			b.Fatal(err)
		}
		params["dst"] = "0"
		drained.Add(1)
		go func() {
			defer drained.Done()
			for {
				for {
					if _, err := r.Recv(); err != nil {
						break
					}
				}
				select {
				case <-h.Signals():
				case <-stop:
					return
				}
			}
		}()
	}
	d := boot(b, v, vmm.DomainConfig{Name: "sendbench", Kernel: guest("sendbench"), Memory: 64 << 20, Params: params})
	select {
	case <-d.FirstOutput():
	case <-time.After(time.Minute):
		b.Fatal("guest did not start")
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	res := waitResult(b, d, 10*time.Minute)
	b.StopTimer()
	close(stop)
	drained.Wait()
	if !res.OK() {
		b.Fatalf("%v\n%s", res, c.dump())
	}
	var sz, count, cycles, eagain uint64
	for _, l := range c.of("sendbench") {
		if strings.HasPrefix(l, "sendv:") {
			fmt.Sscanf(l, "sendv: size %d count %d cycles %d eagain %d", &sz, &count, &cycles, &eagain)
		}
	}
	khz, err := d.TSCKHz()
	if err != nil || count == 0 {
		b.Fatalf("no guest measurement (%v): %s", err, c.dump())
	}
	b.ReportMetric(float64(cycles)/float64(count+eagain)/float64(khz)*1e6, "guest-ns/sendv")
	b.ReportMetric(float64(eagain), "eagain")
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

// guestMetric finds "<key> <number>" style figures in console lines.
func guestCycles(lines []string, prefix string, format string) (uint64, bool) {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			var n, c uint64
			if _, err := fmt.Sscanf(l, format, &n, &c); err == nil {
				return c, true
			}
		}
	}
	return 0, false
}

// BenchmarkArgoPingPong is the guest↔guest round trip: ping sends, pong
// echoes, ping checks, b.N times. ns/op is wall time per round trip
// (boot amortised over b.N); guest-ns/rtt is ping's own TSC measurement.
func BenchmarkArgoPingPong(b *testing.B) {
	for _, mode := range []string{"irq", "poll"} {
		b.Run(mode, func(b *testing.B) {
			var c console
			v := newVMM(b, &c)
			params := func(role, peer string) map[string]string {
				p := map[string]string{"role": role, "peer": peer, "count": fmt.Sprint(b.N), "size": "64"}
				if mode == "poll" {
					p["poll"] = "1"
				}
				return p
			}
			b.ResetTimer()
			ping := boot(b, v, vmm.DomainConfig{Name: "ping", Kernel: guest("pingpong"), Params: params("ping", "2")})
			pong := boot(b, v, vmm.DomainConfig{Name: "pong", Kernel: guest("pingpong"), Params: params("pong", "1")})
			for _, d := range []*vmm.Domain{ping, pong} {
				if res := waitResult(b, d, 10*time.Minute); !res.OK() {
					b.Fatalf("%s: %v\n%s", d.Name(), res, c.dump())
				}
			}
			b.StopTimer()
			if cyc, ok := guestCycles(c.of("ping"), "pingpong:", "pingpong: %d round trips ok, lost 0 corrupt 0 reordered 0, %d cycles/round trip"); ok {
				khz, _ := ping.TSCKHz()
				b.ReportMetric(float64(cyc)/float64(khz)*1e6, "guest-ns/rtt")
			}
		})
	}
}

// BenchmarkArgoStream pushes b.N messages one way into a ring that holds a
// few of them; the sender retries on -EAGAIN after the space VIRQ. MB/s is
// payload throughput over wall time (boot amortised).
func BenchmarkArgoStream(b *testing.B) {
	for _, size := range []int{64, 4096, 64 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			var c console
			v := newVMM(b, &c)
			ringlen := 4 * (size + 32)
			if ringlen < 4096-64 {
				ringlen = 4096 - 64
			}
			ringlen = (ringlen + 15) &^ 15
			p := func(role, peer string) map[string]string {
				return map[string]string{"role": role, "peer": peer, "count": fmt.Sprint(b.N), "size": fmt.Sprint(size), "ringlen": fmt.Sprint(ringlen)}
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			rx := boot(b, v, vmm.DomainConfig{Name: "rx", Kernel: guest("stream"), Memory: 64 << 20, Params: p("receiver", "2")})
			tx := boot(b, v, vmm.DomainConfig{Name: "tx", Kernel: guest("stream"), Memory: 64 << 20, Params: p("sender", "1")})
			for _, d := range []*vmm.Domain{rx, tx} {
				if res := waitResult(b, d, 10*time.Minute); !res.OK() {
					b.Fatalf("%s: %v\n%s", d.Name(), res, c.dump())
				}
			}
			b.StopTimer()
		})
	}
}

var sink []byte

// BenchmarkMemcpy is the floor for streaming: host memcpy of one message.
func BenchmarkMemcpy(b *testing.B) {
	for _, size := range []int{64, 4096, 64 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			src, dst := make([]byte, size), make([]byte, size)
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				copy(dst, src)
			}
			sink = dst
		})
	}
}
