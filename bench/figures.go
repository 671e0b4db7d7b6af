package bench

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/vmm"
	"golang.org/x/sys/unix"
)

var (
	sizes       = []int{16, 64, 1 << 10, 4 << 10, 64 << 10, 1 << 20}
	streamSizes = []int{64, 4 << 10, 64 << 10, 1 << 20}
	copySizes   = []int{64 << 10, 1 << 20}
)

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// figures lists everything a run measures, floors first.
func figures() []spec {
	fs := []spec{
		// The bare loop and the dispatcher alternate run by run, so their
		// ratio compares like with like on a noisy machine.
		{name: "floor.exit_rtt", unit: "us", run: exitRTT, ratioTo: "floor.exit_rtt.bare", goal: "<= 1.1",
			pair: &spec{name: "floor.exit_rtt.bare", unit: "us", run: bareExitRTT}},
		// The same loop through the doorbell page instead of the port
		// (docs/hypercall-abi.md, "The doorbell").
		{name: "floor.exit_rtt.mmio", unit: "us", run: exitRTTVia("doorbell"), ratioTo: "floor.exit_rtt", goal: "<= 0.8"},
		{name: "floor.irq_rtt", unit: "us", run: irqRTT},
	}
	for _, n := range sizes {
		fs = append(fs, spec{name: "floor.memcpy." + sizeName(n), unit: "MB/s", size: n, run: memcpyRate(n)})
	}
	// The VMM's copy path alone, host-only (copy.go): no KVM, so measured
	// on every machine, inside the tests' VM too.
	for _, n := range copySizes {
		s := spec{name: "argo.copy." + sizeName(n), unit: "MB/s", size: n, run: argoCopyRate(n, false), ratioTo: "argo.copy." + sizeName(n) + ".memcpy",
			pair: &spec{name: "argo.copy." + sizeName(n) + ".memcpy", unit: "MB/s", size: n, run: argoCopyRate(n, true)}}
		if n == 1<<20 {
			s.goal = ">= 0.7"
		}
		fs = append(fs, s)
	}
	for _, n := range sizes {
		s := spec{name: "argo.sendv." + sizeName(n), unit: "us", size: n, counted: sendv(n, false), ratioTo: "floor.exit_rtt"}
		if n == 64 {
			s.goal = "<= 1.25"
		}
		fs = append(fs, s, spec{name: "argo.sendv." + sizeName(n) + ".guest", unit: "us", size: n, counted: sendv(n, true), ratioTo: "floor.exit_rtt"})
	}
	twice := func(v float64, r *Report) (float64, bool) {
		e, ok1 := r.Get("floor.exit_rtt")
		i, ok2 := r.Get("floor.irq_rtt")
		if !ok1 || !ok2 {
			return 0, false
		}
		return v / (2 * (e.Median + i.Median)), true
	}
	// The Xen protocol (the baseline), then argovisor's (docs/argo.md,
	// "Beyond Xen"): extended ring headers, batches, waits in the VMM.
	fs = append(fs,
		spec{name: "argo.pingpong.64B", unit: "us", size: 64, counted: pingpong(protoXen, false), ratioTo: "2*(floor.exit_rtt+floor.irq_rtt)", ratio: twice, goal: "<= 1.2"},
		spec{name: "argo.pingpong.poll.64B", unit: "us", size: 64, counted: pingpong(protoXen, true), ratioTo: "2*(floor.exit_rtt+floor.irq_rtt)", ratio: twice},
		spec{name: "argo.pingpong.fast.64B", unit: "us", size: 64, counted: pingpong(protoFast, false), ratioTo: "floor.exit_rtt", goal: "<= 2.5, exits <= 2.5, irqs <= 2"},
		spec{name: "argo.pingpong.wait.64B", unit: "us", size: 64, counted: pingpong(protoWait, false), ratioTo: "floor.exit_rtt", goal: "<= 2.2, exits <= 2, irqs 0"},
	)
	fs = append(fs, spec{name: "argo.hostpingpong.64B", unit: "us", size: 64, counted: hostPingPong, ratioTo: "2*(floor.exit_rtt+floor.irq_rtt)", ratio: twice})
	fs = append(fs, spec{name: "argo.isolation", unit: "x", counted: isolation, goal: ">= 0.9"})
	for _, n := range []int{1, 2, 4, 8} {
		fs = append(fs, spec{name: fmt.Sprintf("argo.scaling.%dpairs", n), unit: "msg/s", counted: scaling(n)})
	}
	for _, n := range streamSizes {
		s := spec{name: "argo.stream." + sizeName(n), unit: "MB/s", size: n, counted: stream(n, protoXen), ratioTo: "floor.memcpy." + sizeName(n),
			derive: messageRate(n)}
		switch n {
		case 1 << 20:
			s.goal = ">= 0.8"
		case 64 << 10:
			s.goal = ">= 0.6"
		}
		fs = append(fs, s)
	}
	for _, n := range streamSizes {
		s := spec{name: "argo.stream.fast." + sizeName(n), unit: "MB/s", size: n, counted: stream(n, protoFast), ratioTo: "floor.memcpy." + sizeName(n),
			derive: messageRate(n)}
		switch n {
		case 64:
			// Same message size, so the MB/s ratio is the msg/s ratio.
			s.ratioTo, s.goal = "argo.stream.64B", ">= 8, exits <= 0.15, irqs <= 0.1"
		case 64 << 10:
			s.goal = ">= 0.3, exits <= 0.1"
		case 1 << 20:
			s.goal = ">= 0.5, exits <= 0.1"
		}
		fs = append(fs, s)
	}
	fs = append(fs, spec{name: "peer.unix.pingpong.64B", unit: "us", size: 64, run: unixPingPong(64), ratioTo: "floor.exit_rtt"})
	for _, n := range streamSizes {
		fs = append(fs, spec{name: "peer.unix.stream." + sizeName(n), unit: "MB/s", size: n, run: unixStream(n), ratioTo: "floor.memcpy." + sizeName(n)})
	}
	// Argo streams (docs/streams.md): a host program through the domain's
	// stream socket, and guest to guest.
	fs = append(fs,
		spec{name: "stream.guest.64KiB", unit: "MB/s", size: 64 << 10, counted: streamGuest(64 << 10), ratioTo: "argo.stream.fast.64KiB"},
		spec{name: "stream.guest.1MiB", unit: "MB/s", size: 1 << 20, counted: streamGuest(1 << 20), ratioTo: "argo.stream.fast.1MiB"},
		spec{name: "stream.host.rtt.64B", unit: "us", size: 64, counted: streamHostRTT(64), ratioTo: "peer.unix.pingpong.64B"},
		spec{name: "stream.host.64KiB", unit: "MB/s", size: 64 << 10, counted: streamHost(64 << 10), ratioTo: "peer.unix.stream.64KiB"},
		spec{name: "stream.host.1MiB", unit: "MB/s", size: 1 << 20, counted: streamHost(1 << 20), ratioTo: "peer.unix.stream.1MiB"},
	)
	// stream.host.1MiB once more, as a ratio to guest↔guest (the goal:
	// within 2x), from the same runs.
	for i := range fs {
		if fs[i].name == "stream.host.1MiB" {
			fs[i].derive = compareTo("stream.guest.1MiB", ".vs_guest", ">= 0.5")
		}
	}
	fs = append(fs,
		spec{name: "gnttab.map_unmap.1", unit: "us", run: gnttabOp("mapunmap", 1), ratioTo: "floor.exit_rtt", goal: "<= 3"},
		spec{name: "gnttab.map_unmap.32", unit: "us", run: gnttabOp("batch", 32), ratioTo: "floor.exit_rtt"},
		spec{name: "gnttab.copy.4KiB", unit: "us", size: 4 << 10, run: gnttabOp("copy", 1), ratioTo: "floor.exit_rtt"},
		spec{name: "gnttab.transfer.1", unit: "us", size: 4 << 10, run: gnttabTransfer, ratioTo: "floor.exit_rtt"},
	)
	for _, n := range []int{1, 16, 64} {
		s := spec{name: fmt.Sprintf("boot.%ddomains", n), unit: "s", run: boot(n, false)}
		if n == 64 {
			s.goal = "< 2"
		}
		fs = append(fs, s)
	}
	fs = append(fs, spec{name: "boot.rss_per_domain", unit: "KiB", run: boot(64, true)})
	return fs
}

// compareTo repeats a figure under the name suffix with its ratio to
// another figure of the run (measured before it).
func compareTo(other, suffix, goal string) func(Figure, *Report) Figure {
	return func(f Figure, r *Report) Figure {
		d := f
		d.Name, d.Goal, d.Ratio, d.RatioTo = f.Name+suffix, goal, 0, ""
		if r == nil {
			return d
		}
		if o, ok := r.Get(other); ok && o.Median > 0 {
			d.Ratio, d.RatioTo = f.Median/o.Median, other
		}
		return d
	}
}

// messageRate turns a MB/s figure for size-byte messages into msg/s.
func messageRate(size int) func(Figure, *Report) Figure {
	return func(f Figure, _ *Report) Figure {
		k := 1e6 / float64(size)
		return Figure{Name: f.Name + ".rate", Unit: "msg/s", Median: f.Median * k, Min: f.Min * k, Max: f.Max * k, Runs: f.Runs,
			ExitsPerMsg: f.ExitsPerMsg, IRQsPerMsg: f.IRQsPerMsg}
	}
}

// exitRTT: the benchloop guest's null hypercalls through the dispatcher,
// made through the port (the firmware gate's OUT).
func exitRTT(o *Options) (float64, error) { return exitRTTVia("port")(o) }

// exitRTTVia: the same, with benchloop's via param: "port" or "doorbell".
func exitRTTVia(via string) func(o *Options) (float64, error) {
	return func(o *Options) (float64, error) { return nullLoopRTT(o, via) }
}

func nullLoopRTT(o *Options, via string) (float64, error) {
	const n = 5000
	l, err := newLab(o)
	if err != nil {
		return 0, err
	}
	defer l.close()
	var count atomic.Int64
	var start, end atomic.Int64
	done := make(chan struct{})
	l.v.SetHypercall(vmm.HypercallNull, func(*vmm.Hypercall) int64 {
		switch count.Add(1) {
		case 1:
			start.Store(time.Now().UnixNano())
		case n + 1:
			end.Store(time.Now().UnixNano())
			close(done)
		}
		return 0
	})
	if _, err := l.start("loop", "benchloop", 16<<20, map[string]string{"via": via}); err != nil {
		return 0, err
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("benchloop stalled")
	}
	return float64(end.Load()-start.Load()) / n / 1e3, nil
}

func bareExitRTT(o *Options) (float64, error) {
	const n = 5000
	l, err := newLab(o)
	if err != nil {
		return 0, err
	}
	defer l.close()
	d, err := l.create("bare", "benchloop", 16<<20, nil)
	if err != nil {
		return 0, err
	}
	el, err := d.MeasureBareExits(n)
	if err != nil {
		return 0, err
	}
	return float64(el.Nanoseconds()) / n / 1e3, nil
}

// irqRTT: inject the VIRQ, the guest's handler runs, the guest acks with
// a null hypercall, on which the next VIRQ is injected.
func irqRTT(o *Options) (float64, error) {
	const n = 2000
	l, err := newLab(o)
	if err != nil {
		return 0, err
	}
	defer l.close()
	var d *vmm.Domain
	var start, end atomic.Int64
	done := make(chan struct{})
	l.v.SetHypercall(vmm.HypercallNull, func(h *vmm.Hypercall) int64 {
		switch h.Args[0] {
		case 0:
			start.Store(time.Now().UnixNano())
		case n:
			end.Store(time.Now().UnixNano())
			close(done)
			return 0
		}
		h.Domain.InjectVIRQ()
		return 0
	})
	if d, err = l.start("irq", "irqpong", 16<<20, map[string]string{"count": strconv.Itoa(n)}); err != nil {
		return 0, err
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("irqpong stalled: %s", l.console(d.Name()))
	}
	return float64(end.Load()-start.Load()) / n / 1e3, nil
}

var memSink []byte

func memcpyRate(n int) func(*Options) (float64, error) {
	return func(*Options) (float64, error) {
		src, dst := make([]byte, n), make([]byte, n)
		iters := max(1, (64<<20)/n)
		start := time.Now()
		for i := 0; i < iters; i++ {
			copy(dst, src)
		}
		el := time.Since(start)
		memSink = dst
		return float64(n*iters) / el.Seconds() / 1e6, nil
	}
}

// sendv: the sendbench guest sends into a host ring drained by a
// goroutine; host-measured (wall time per message while the guest runs)
// or guest-measured (TSC around the hypercall).
func sendv(size int, guestTime bool) func(*Options) (sample, error) {
	return func(o *Options) (sample, error) {
		count := 2000
		if size >= 1<<20 {
			count = 300
		}
		l, err := newLab(o)
		if err != nil {
			return sample{}, err
		}
		defer l.close()
		h, err := l.v.Argo().NewHost(uint64(8*(size+64))+(1<<20), argo.Policy{Enabled: true, Wildcard: true})
		if err != nil {
			return sample{}, err
		}
		ringLen := max(uint32(4*(size+32)+15)&^15, 64<<10)
		r, err := h.RegisterRing(1, argo.DomainAny, ringLen)
		if err != nil {
			return sample{}, err
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		defer func() { close(stop); wg.Wait() }()
		d, err := l.start("sendbench", "sendbench", 64<<20, map[string]string{"size": strconv.Itoa(size), "count": strconv.Itoa(count), "dst": "0"})
		if err != nil {
			return sample{}, err
		}
		if err := l.ready(d); err != nil {
			return sample{}, err
		}
		t0 := time.Now()
		if err := l.finish(d); err != nil {
			return sample{}, err
		}
		wall := time.Since(t0)
		var sz, n, cycles, eagain uint64
		if err := l.scan("sendbench", "sendv:", "sendv: size %d count %d cycles %d eagain %d", &sz, &n, &cycles, &eagain); err != nil {
			return sample{}, err
		}
		t, err := l.perMessage(float64(n), interval{"sendbench", "ready", "sendv:"})
		if err != nil {
			return sample{}, err
		}
		v := float64(wall.Nanoseconds()) / float64(count) / 1e3
		if guestTime {
			if v, err = cyclesToMicros(d, float64(cycles)/float64(n+eagain)); err != nil {
				return sample{}, err
			}
		}
		return sample{v: v, t: &t}, nil
	}
}

// Argo protocols of the ping-pong and stream guests (their proto param).
const (
	protoXen  = "xen"  // Xen's four ops only: the baseline
	protoFast = "fast" // extended ring headers (and batches for stream)
	protoWait = "wait" // send_wait / wait in the VMM, polling rings
)

// pingpong: guest-measured round trip of 64-byte messages.
func pingpong(proto string, poll bool) func(*Options) (sample, error) {
	return func(o *Options) (sample, error) { return pairRTT(o, proto, poll, "", nil) }
}

// hostPingPong: the host endpoint sends 64-byte messages to a hostecho
// guest and waits for each echo (host-measured round trip).
func hostPingPong(o *Options) (sample, error) {
	const n = 1000
	l, err := newLab(o)
	if err != nil {
		return sample{}, err
	}
	defer l.close()
	h, err := l.v.Argo().NewHost(0, argo.Policy{Enabled: true, Wildcard: true})
	if err != nil {
		return sample{}, err
	}
	r, err := h.RegisterRing(2, argo.DomainAny, 64<<10)
	if err != nil {
		return sample{}, err
	}
	d, err := l.start("echo", "hostecho", 16<<20, map[string]string{"size": "4032"})
	if err != nil {
		return sample{}, err
	}
	dst := argo.Addr{Port: 1, Domain: argo.DomainID(d.ID())}
	msg := make([]byte, 64)
	send := func(typ uint32) error {
		for deadline := time.Now().Add(time.Minute); ; {
			_, err := h.Send(dst, 2, typ, msg)
			switch err {
			case nil:
				return nil
			case argo.Errno(argo.ECONNREFUSED), argo.Errno(argo.EAGAIN):
				if time.Now().After(deadline) {
					return err
				}
				time.Sleep(100 * time.Microsecond)
			default:
				return err
			}
		}
	}
	recv := func() error {
		for deadline := time.Now().Add(time.Minute); ; {
			if _, err := r.Recv(); err == nil {
				return nil
			}
			select {
			case <-h.Signals():
			case <-time.After(time.Until(deadline)):
				return fmt.Errorf("no echo")
			}
		}
	}
	if err := send(1); err != nil { // warm-up: waits for the guest's ring
		return sample{}, err
	}
	if err := recv(); err != nil {
		return sample{}, err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := send(1); err != nil {
			return sample{}, err
		}
		if err := recv(); err != nil {
			return sample{}, err
		}
	}
	el := time.Since(start)
	if err := send(0xDEAD); err != nil {
		return sample{}, err
	}
	if err := l.finish(d); err != nil {
		return sample{}, err
	}
	var echoed uint64
	if err := l.scan("echo", "hostecho: echoed", "hostecho: echoed %d messages", &echoed); err != nil {
		return sample{}, err
	}
	// The guest's side only: the host endpoint makes no exits.
	t, err := l.perMessage(float64(echoed), interval{"echo", "hostecho: domain", "hostecho: echoed"})
	if err != nil {
		return sample{}, err
	}
	return sample{v: float64(el.Nanoseconds()) / n / 1e3, t: &t}, nil
}

// pairRTT runs one ping-pong pair of 64-byte messages with the given
// protocol (interrupt-driven unless poll), next to a third domain if third
// names a guest program, and returns ping's guest-measured round trip and
// both sides' transitions per round trip. Each side also registers a
// wildcard ring on port 9 that nobody reads (a target for the third).
func pairRTT(o *Options, proto string, poll bool, third string, thirdParams map[string]string) (sample, error) {
	const count = 1000
	l, err := newLab(o)
	if err != nil {
		return sample{}, err
	}
	defer l.close()
	mk := func(name, prog string, params map[string]string) (*vmm.Domain, error) {
		d, err := l.v.CreateDomain(vmm.DomainConfig{Name: name, Kernel: o.Guests + "/" + prog + ".elf", Memory: 16 << 20, VCPUs: 1,
			Params: params, Argo: vmm.ArgoPolicy{Wildcard: true}})
		if err != nil {
			return nil, err
		}
		return d, d.Start()
	}
	p := func(role, peer string) map[string]string {
		m := map[string]string{"role": role, "peer": peer, "count": strconv.Itoa(count), "size": "64", "extra_port": "9"}
		if poll {
			m["poll"] = "1"
		}
		if proto != protoXen {
			m["proto"] = proto
		}
		return m
	}
	ping, err := mk("ping", "pingpong", p("ping", "2"))
	if err != nil {
		return sample{}, err
	}
	pong, err := mk("pong", "pingpong", p("pong", "1"))
	if err != nil {
		return sample{}, err
	}
	if third != "" {
		noise, err := mk("noise", third, thirdParams)
		if err != nil {
			return sample{}, err
		}
		if err := l.ready(noise); err != nil {
			return sample{}, err
		}
	}
	if err := l.finish(ping, pong); err != nil {
		return sample{}, err
	}
	var n, cycles uint64
	if err := l.scan("ping", "pingpong: ", "pingpong: %d round trips ok, lost 0 corrupt 0 reordered 0, %d cycles/round trip", &n, &cycles); err != nil {
		return sample{}, err
	}
	t, err := l.perMessage(float64(n), pingPongInterval("ping", "ping"), pingPongInterval("pong", "pong"))
	if err != nil {
		return sample{}, err
	}
	us, err := cyclesToMicros(ping, float64(cycles))
	return sample{v: us, t: &t}, err
}

// pingPongInterval brackets a pingpong guest's loop: its start line
// ("pingpong: ping, domain …") and the next line, its result.
func pingPongInterval(domain, role string) interval {
	return interval{domain, "pingpong: " + role + ",", "pingpong: "}
}

// isolation is the victim pair's message rate while a third domain storms
// (registers/unregisters its rings and sends to the victim's other ring)
// divided by its rate while the third domain only spins: 1 means the storm
// costs the victims nothing beyond the CPU time any busy neighbour takes.
// Its transitions are the victims' during the storm.
func isolation(o *Options) (sample, error) {
	spin, err := pairRTT(o, protoXen, false, "spin", nil)
	if err != nil {
		return sample{}, err
	}
	storm, err := pairRTT(o, protoXen, false, "argostorm", map[string]string{"victim": "2", "port": "9"})
	if err != nil {
		return sample{}, err
	}
	return sample{v: spin.v / storm.v, t: storm.t}, nil // rate ratio = inverse RTT ratio
}

// scaling: n interrupt-driven ping-pong pairs at once; aggregate round
// trips per second over the whole run.
func scaling(pairs int) func(*Options) (sample, error) {
	return func(o *Options) (sample, error) {
		const count = 500
		l, err := newLab(o)
		if err != nil {
			return sample{}, err
		}
		defer l.close()
		var ds []*vmm.Domain
		var ivs []interval
		t0 := time.Now()
		for i := 0; i < pairs; i++ {
			a, b := 2*i+1, 2*i+2
			for _, role := range []struct {
				name, role string
				peer       int
			}{{fmt.Sprintf("ping%d", i), "ping", b}, {fmt.Sprintf("pong%d", i), "pong", a}} {
				d, err := l.start(role.name, "pingpong", 16<<20, map[string]string{"role": role.role, "peer": strconv.Itoa(role.peer), "count": strconv.Itoa(count), "size": "64"})
				if err != nil {
					return sample{}, err
				}
				ds = append(ds, d)
				ivs = append(ivs, pingPongInterval(role.name, role.role))
			}
		}
		if err := l.finish(ds...); err != nil {
			return sample{}, err
		}
		el := time.Since(t0)
		t, err := l.perMessage(float64(pairs*count), ivs...)
		if err != nil {
			return sample{}, err
		}
		return sample{v: float64(pairs*count) / el.Seconds(), t: &t}, nil
	}
}

// gnttabOp: a grantor grants pages to a grantee, which times count
// iterations of op with its TSC: map+unmap of one page (two hypercalls),
// a batch of 32 maps and a batch of 32 unmaps (two hypercalls), or a 4 KiB
// copy (one). Guest-measured µs per iteration.
func gnttabOp(op string, pages int) func(*Options) (float64, error) {
	return func(o *Options) (float64, error) {
		const count = 1000
		l, err := newLab(o)
		if err != nil {
			return 0, err
		}
		defer l.close()
		a, err := l.create("a", "grantor", 16<<20, map[string]string{"peer": "2", "pages": strconv.Itoa(pages)})
		if err != nil {
			return 0, err
		}
		g, err := l.create("g", "grantee", 16<<20, map[string]string{"peer": "1", "mode": "bench", "op": op, "count": strconv.Itoa(count)})
		if err != nil {
			return 0, err
		}
		for _, d := range []*vmm.Domain{a, g} {
			if err := d.Start(); err != nil {
				return 0, err
			}
		}
		if err := l.finish(g, a); err != nil {
			return 0, err
		}
		var n, cycles uint64
		var name string
		if err := l.scan("g", "gntbench:", "gntbench: op %s count %d cycles %d", &name, &n, &cycles); err != nil {
			return 0, err
		}
		return cyclesToMicros(g, float64(cycles)/float64(n))
	}
}

// gnttabTransfer: one domain transfers a page to itself through its own
// accept-transfer entry (gntxfer mode=bench), timing count transfers (one
// hypercall each: the frame taken, the entry committed, the page copied
// into the accepted frame and the old one given back) with its TSC.
// Guest-measured µs per transfer.
func gnttabTransfer(o *Options) (float64, error) {
	const count = 1000
	l, err := newLab(o)
	if err != nil {
		return 0, err
	}
	defer l.close()
	x, err := l.start("x", "gntxfer", 16<<20, map[string]string{"mode": "bench", "count": strconv.Itoa(count)})
	if err != nil {
		return 0, err
	}
	if err := l.finish(x); err != nil {
		return 0, err
	}
	var n, cycles uint64
	var name string
	if err := l.scan("x", "gntbench:", "gntbench: op %s count %d cycles %d", &name, &n, &cycles); err != nil {
		return 0, err
	}
	return cyclesToMicros(x, float64(cycles)/float64(n))
}

// stream: one-way throughput guest to guest with the given protocol, MB/s
// from the moment both sides are ready — the receiver's ring allocated
// (its "ring ready" line, printed just before it registers the ring) and
// the sender's buffers (its "sending" line), whichever is later — to the
// receiver's last message; and both sides' transitions per message. Boot
// and the guests' allocations are not counted: zeroing a 16 MiB ring costs
// a guest more than the whole stream. The Xen protocol uses a ring of
// about four messages; proto=fast streams of 64 KiB and more use the
// largest ring Xen allows (16 MiB), and the sender's batches of 64
// messages wait in the VMM for space (the stream guest's waitspace=1,
// its default for such sizes), so that a stream of large messages costs
// about one exit per batch and one notify per ring drained.
func stream(size int, proto string) func(*Options) (sample, error) {
	return func(o *Options) (sample, error) {
		count := max(100, min(5000, (64<<20)/size))
		l, err := newLab(o)
		if err != nil {
			return sample{}, err
		}
		defer l.close()
		ringLen := (max(4*(size+32), 4096-64) + 15) &^ 15
		if proto == protoFast && size >= 64<<10 {
			ringLen = maxRingLen
		}
		p := func(role, peer string) map[string]string {
			m := map[string]string{"role": role, "peer": peer, "count": strconv.Itoa(count), "size": strconv.Itoa(size), "ringlen": strconv.Itoa(ringLen), "verify": "0"}
			if proto != protoXen {
				m["proto"] = proto
			}
			return m
		}
		rx, err := l.start("rx", "stream", 64<<20, p("receiver", "2"))
		if err != nil {
			return sample{}, err
		}
		tx, err := l.start("tx", "stream", 64<<20, p("sender", "1"))
		if err != nil {
			return sample{}, err
		}
		if err := l.finish(rx, tx); err != nil {
			return sample{}, err
		}
		el, err := l.window(lineAt{"rx", "stream: received"}, lineAt{"rx", "stream: ring ready"}, lineAt{"tx", "stream: sending"})
		if err != nil {
			return sample{}, err
		}
		t, err := l.perMessage(float64(count),
			interval{"rx", "stream: receiving", "stream: received"},
			interval{"tx", "stream: sending", "stream: "})
		if err != nil {
			return sample{}, err
		}
		return sample{v: float64(size*count) / el.Seconds() / 1e6, t: &t}, nil
	}
}

// maxRingLen is the longest ring data length Xen allows: 4096 pages of
// ring memory, less the header.
const maxRingLen = argo.MaxRingPages*argo.PageSize - argo.RingHeaderSize

// seqpacketPair makes a connected AF_UNIX SOCK_SEQPACKET pair whose
// buffers hold a few messages of size bytes.
func seqpacketPair(size int) ([2]int, func(), error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fds, nil, err
	}
	closeBoth := func() { unix.Close(fds[0]); unix.Close(fds[1]) }
	want := 4*size + (1 << 16)
	for _, fd := range fds {
		// The *FORCE options pass net.core.[wr]mem_max (a fresh
		// kernel's is 208 KiB, less than one 1 MiB message) where the
		// process may (CAP_NET_ADMIN, as root in the test VM).
		for _, o := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			if unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[0], want) != nil {
				unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[1], want)
			}
		}
		// The kernel reports twice what it keeps for data.
		if got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil && got/2 < size {
			closeBoth()
			return fds, nil, fmt.Errorf("AF_UNIX send buffer holds %d bytes, a message is %d: raise net.core.wmem_max", got/2, size)
		}
	}
	return fds, closeBoth, nil
}

// unixPingPong: AF_UNIX SOCK_SEQPACKET round trip between two host threads.
func unixPingPong(size int) func(*Options) (float64, error) {
	return func(*Options) (float64, error) {
		const n = 20000
		fds, closeFDs, err := seqpacketPair(size)
		if err != nil {
			return 0, err
		}
		defer closeFDs()
		errc := make(chan error, 1)
		go func() {
			buf := make([]byte, size)
			for i := 0; i < n; i++ {
				if _, err := unix.Read(fds[1], buf); err != nil {
					errc <- err
					return
				}
				if _, err := unix.Write(fds[1], buf); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		buf := make([]byte, size)
		start := time.Now()
		for i := 0; i < n; i++ {
			if _, err := unix.Write(fds[0], buf); err != nil {
				return 0, err
			}
			if _, err := unix.Read(fds[0], buf); err != nil {
				return 0, err
			}
		}
		el := time.Since(start)
		if err := <-errc; err != nil {
			return 0, err
		}
		return float64(el.Nanoseconds()) / n / 1e3, nil
	}
}

// unixStream: one-way SOCK_SEQPACKET throughput between two host threads.
func unixStream(size int) func(*Options) (float64, error) {
	return func(*Options) (float64, error) {
		count := max(200, min(20000, (256<<20)/size))
		fds, closeFDs, err := seqpacketPair(size)
		if err != nil {
			return 0, err
		}
		defer closeFDs()
		errc := make(chan error, 1)
		go func() {
			buf := make([]byte, size)
			for i := 0; i < count; i++ {
				if _, err := unix.Read(fds[1], buf); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		buf := make([]byte, size)
		start := time.Now()
		for i := 0; i < count; i++ {
			if _, err := unix.Write(fds[0], buf); err != nil {
				return 0, err
			}
		}
		if err := <-errc; err != nil {
			return 0, err
		}
		return float64(size*count) / time.Since(start).Seconds() / 1e6, nil
	}
}

// boot: n domains of 16 MiB to their first console line (s), or the VMM's
// RSS growth per domain at that point (KiB). The guest (irqwait) prints and
// then halts, so later domains do not compete with earlier ones for the CPU.
func boot(n int, rss bool) func(*Options) (float64, error) {
	return func(o *Options) (float64, error) {
		l, err := newLab(o)
		if err != nil {
			return 0, err
		}
		defer l.close()
		before := rssKiB()
		t0 := time.Now()
		var ds []*vmm.Domain
		for i := 0; i < n; i++ {
			d, err := l.start(fmt.Sprintf("d%d", i), "irqwait", 16<<20, nil)
			if err != nil {
				return 0, err
			}
			ds = append(ds, d)
		}
		for _, d := range ds {
			if err := l.ready(d); err != nil {
				return 0, err
			}
		}
		el := time.Since(t0)
		if rss {
			return float64(rssKiB()-before) / float64(n), nil
		}
		return el.Seconds(), nil
	}
}

// rssKiB is the process's resident set after a GC has returned what it
// can, so Go heap churn does not swing the per-domain figure.
func rssKiB() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}
