package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// series picks size-dependent throughput figures for the plot; time per
// message is turned into MB/s.
type series struct {
	label, color string
	prefix       string // figure name prefix, followed by the size name
	suffix       string
}

var plotSeries = []series{
	{"host memcpy (floor)", "#888888", "floor.memcpy.", ""},
	{"Argo stream guest→guest", "#d62728", "argo.stream.", ""},
	{"Argo sendv guest→host (per call)", "#1f77b4", "argo.sendv.", ""},
	{"AF_UNIX SEQPACKET stream (peer)", "#2ca02c", "peer.unix.stream.", ""},
}

type point struct{ x, y float64 }

// points extracts (size, MB/s) for one series.
func (r *Report) points(s series) []point {
	var ps []point
	for _, f := range r.Figures {
		if f.Size == 0 || f.Failed != "" || !strings.HasPrefix(f.Name, s.prefix) || f.Name != s.prefix+sizeName(f.Size)+s.suffix {
			continue
		}
		y := f.Median
		if f.Unit == "us" {
			y = float64(f.Size) / f.Median // bytes per µs = MB/s
		}
		if y > 0 {
			ps = append(ps, point{float64(f.Size), y})
		}
	}
	return ps
}

// WriteSVG plots throughput against message size, log-log.
func (r *Report) WriteSVG(path string) error {
	const w, h, ml, mr, mt, mb = 760.0, 460.0, 70.0, 230.0, 40.0, 50.0
	all := [][]point{}
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range plotSeries {
		ps := r.points(s)
		all = append(all, ps)
		for _, p := range ps {
			minX, maxX = math.Min(minX, p.x), math.Max(maxX, p.x)
			minY, maxY = math.Min(minY, p.y), math.Max(maxY, p.y)
		}
	}
	if math.IsInf(minX, 1) {
		return fmt.Errorf("no size-dependent figures to plot")
	}
	lx0, lx1 := math.Floor(math.Log10(minX)), math.Ceil(math.Log10(maxX))
	ly0, ly1 := math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
	if lx1 == lx0 {
		lx1++
	}
	if ly1 == ly0 {
		ly1++
	}
	px := func(x float64) float64 { return ml + (math.Log10(x)-lx0)/(lx1-lx0)*(w-ml-mr) }
	py := func(y float64) float64 { return h - mb - (math.Log10(y)-ly0)/(ly1-ly0)*(h-mt-mb) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14">Throughput vs message size (MB/s, log-log) — %s</text>`+"\n", ml, escape(r.When))
	for e := lx0; e <= lx1; e++ {
		x := px(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x, mt, x, h-mb)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, h-mb+16, sizeName(int(math.Pow(10, e))))
	}
	for e := ly0; e <= ly1; e++ {
		y := py(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", ml, y, w-mr, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%g</text>`+"\n", ml-6, y+4, math.Pow(10, e))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">message size (bytes)</text>`+"\n", ml+(w-ml-mr)/2, h-10)
	for i, s := range plotSeries {
		ps := all[i]
		if len(ps) == 0 {
			continue
		}
		var pts []string
		for _, p := range ps {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		for _, p := range ps {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(p.x), py(p.y), s.color)
		}
		ly := mt + 20 + float64(i)*20
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", w-mr+10, ly, w-mr+30, ly, s.color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", w-mr+36, ly+4, escape(s.label))
	}
	b.WriteString("</svg>\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
