package test

import (
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Grant-table benchmarks: a grantor guest grants pages to a grantee guest,
// which runs b.N iterations of the operation in a loop timed with its own
// TSC (grantee.c, mode=bench). ns/op is wall time per iteration from the
// grantee's "bench ready" line to its exit; guest-ns/op is the guest's
// measurement of the loop (hypercalls plus status checks) and is the
// figure to compare with BenchmarkArgoFloorExit (a null hypercall).

// BenchmarkGnttabMapUnmap: /1 maps and unmaps one page per iteration (two
// hypercalls); /32 maps 32 pages in one call and unmaps them in one call.
func BenchmarkGnttabMapUnmap(b *testing.B) {
	b.Run("1", func(b *testing.B) { benchGnttab(b, "mapunmap", 1) })
	b.Run("32", func(b *testing.B) { benchGnttab(b, "batch", 32) })
}

// BenchmarkGnttabCopy4KiB copies one granted page into the grantee's own
// page per iteration (one gnttab_copy hypercall of one element).
func BenchmarkGnttabCopy4KiB(b *testing.B) {
	b.SetBytes(4096)
	benchGnttab(b, "copy", 1)
}

var gntBenchLine = regexp.MustCompile(`^gntbench: op (\S+) count (\d+) cycles (\d+)$`)

func benchGnttab(b *testing.B, op string, pages int) {
	var c console
	v := newVMM(b, &c)
	ds := startGnt(b, v,
		gntSpec{name: "a", prog: "grantor", params: map[string]string{"peer": "$g", "pages": strconv.Itoa(pages)}},
		gntSpec{name: "g", prog: "grantee", params: map[string]string{"peer": "$a", "mode": "bench", "op": op, "count": strconv.Itoa(b.N)}},
	)
	g := ds["g"]
	waitFor(b, &c, g, regexp.MustCompile(`^grantee: bench ready$`), time.Minute)
	b.ResetTimer()
	res := waitResult(b, g, 10*time.Minute)
	b.StopTimer()
	if !res.OK() {
		b.Fatalf("grantee: %v\n%s", res, c.dump())
	}
	if res := waitResult(b, ds["a"], time.Minute); !res.OK() {
		b.Fatalf("grantor: %v\n%s", res, c.dump())
	}
	m := c.match("g", gntBenchLine)
	if m == nil {
		b.Fatalf("no gntbench line:\n%s", c.dump())
	}
	count, _ := strconv.ParseUint(m[2], 10, 64)
	cycles, _ := strconv.ParseUint(m[3], 10, 64)
	khz, err := g.TSCKHz()
	if err != nil || count == 0 || count != uint64(b.N) {
		b.Fatalf("guest measured %d iterations (want %d), TSC: %v", count, b.N, err)
	}
	ns := float64(cycles) / float64(count) / float64(khz) * 1e6
	b.ReportMetric(ns, "guest-ns/op")
	if pages > 1 {
		b.ReportMetric(ns/float64(pages), "guest-ns/page")
	}
	if s := g.GnttabStats(); s.Mapped != 0 {
		b.Errorf("%d mappings left: %+v", s.Mapped, s)
	}
}
