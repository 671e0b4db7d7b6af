package test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/argovisor/argovisor/vmm"
)

// Argo streams between guests: guest/examples/streamecho.c on the guest
// SDK's streams (firmware/argo_stream.c, docs/streams.md), guest to guest
// only; the host bridge has tests of its own.

// streamGuestDom is one domain of streamGuestRun. Params may name another
// domain of the same run as "$name" (replaced by its id); sendTo names
// the domains it may send to (nil: any).
type streamGuestDom struct {
	name     string
	prog     string // default streamecho
	params   map[string]string
	wildcard bool // listens: the control ring is a wildcard ring
	sendTo   []string
	memory   uint64 // default 16 MiB
}

var streamListening = regexp.MustCompile(`^streamecho: listening on port \d+$`)

// streamGuestRun creates every domain first (so that each exists in Argo
// and the ids are known), then starts them in order; a domain that is a
// streamecho server or sink is waited for until it prints its listening
// line before the next one starts, so no connect races the listen.
func streamGuestRun(t *testing.T, c *console, doms ...streamGuestDom) map[string]*vmm.Domain {
	t.Helper()
	v := newVMM(t, c)
	// The consoles, for go test -v and for failures.
	t.Cleanup(func() { t.Logf("console:\n%s", c.dump()) })
	first := uint16(len(v.Domains()) + 1)
	ids := map[string]uint16{}
	for i, d := range doms {
		ids[d.name] = first + uint16(i)
	}
	ds := map[string]*vmm.Domain{}
	var order []*vmm.Domain
	for _, s := range doms {
		p := map[string]string{}
		for k, val := range s.params {
			for n, id := range ids {
				val = strings.ReplaceAll(val, "$"+n, strconv.Itoa(int(id)))
			}
			p[k] = val
		}
		pol := vmm.ArgoPolicy{Wildcard: s.wildcard}
		for _, n := range s.sendTo {
			pol.SendTo = append(pol.SendTo, ids[n])
		}
		prog := s.prog
		if prog == "" {
			prog = "streamecho"
		}
		mem := s.memory
		if mem == 0 {
			mem = 16 << 20
		}
		d, err := v.CreateDomain(vmm.DomainConfig{Name: s.name, Kernel: guest(prog), Memory: mem, VCPUs: 1, Params: p, Argo: pol})
		if err != nil {
			t.Fatalf("CreateDomain(%s): %v", s.name, err)
		}
		if d.ID() != ids[s.name] {
			t.Fatalf("%s got domain id %d, want %d", s.name, d.ID(), ids[s.name])
		}
		ds[s.name] = d
		order = append(order, d)
	}
	for i, d := range order {
		if err := d.Start(); err != nil {
			t.Fatalf("Start(%s): %v", d.Name(), err)
		}
		role := doms[i].params["role"]
		if (doms[i].prog == "" || doms[i].prog == "streamecho") && (role == "" || role == "server" || role == "sink") {
			waitFor(t, c, d, streamListening, time.Minute)
		}
	}
	return ds
}

// streamGuestPair is a listening domain "srv" and a connecting one "cli"
// that may send to each other.
func streamGuestPair(srv, cli map[string]string) []streamGuestDom {
	return []streamGuestDom{
		{name: "srv", params: srv, wildcard: true, sendTo: []string{"cli"}},
		{name: "cli", params: cli, sendTo: []string{"srv"}},
	}
}

func mustLine(t *testing.T, c *console, name, line string) {
	t.Helper()
	if !c.has(name, line) {
		t.Fatalf("%s did not print %q:\n%s", name, line, c.dump())
	}
}

// A client streams 1 MiB through the echo server and checks every byte
// that comes back, on three connections one after the other; the server
// ends after the third.
func TestStreamGuestEcho(t *testing.T) {
	var c console
	ds := echoRounds(t, &c, 3, 1<<20)
	mustLine(t, &c, "srv", "streamecho: stats: dropped 0, resets sent 0, received 0")
	for _, d := range ds {
		if st := d.ArgoStats(); st.Rings != 0 {
			t.Errorf("%s: %d rings left after exit", d.Name(), st.Rings)
		}
	}
}

// More connections than one argo_wait takes (32 rings): the server's poll
// arms its rings and halts for a VIRQ instead. Small rings and chunks, so
// that messages wrap around the rings and reads end mid-message.
func TestStreamGuestManyConns(t *testing.T) {
	const parallel, n = 40, 20000
	var c console
	ds := streamGuestRun(t, &c, streamGuestPair(
		kv("role", "server", "conns", strconv.Itoa(parallel), "ring", "4032"),
		kv("role", "client", "peer", "$srv", "parallel", strconv.Itoa(parallel), "bytes", strconv.Itoa(n),
			"ring", "1008", "chunk", "3000"))...)
	mustOK(t, &c, ds["cli"], 2*time.Minute)
	mustOK(t, &c, ds["srv"], time.Minute)
	mustLine(t, &c, "cli", fmt.Sprintf("streamecho: client ok %d bytes", parallel*n))
	mustLine(t, &c, "srv", fmt.Sprintf("streamecho: served %d connections, %d bytes", parallel, parallel*n))
}

// guest_alloc_pages has no free: without reusing the memory of closed
// connections' rings, 100 connections with the default ring (65 pages
// each side) would need about 26 MiB of each 16 MiB domain.
func TestStreamGuestRingReuse(t *testing.T) {
	var c console
	echoRounds(t, &c, 100, 4096)
}

// echoRounds runs a server for conns connections and a client that echoes
// n bytes through each in turn, and checks both counted all of them.
func echoRounds(t *testing.T, c *console, conns, n int) map[string]*vmm.Domain {
	t.Helper()
	ds := streamGuestRun(t, c, streamGuestPair(
		kv("role", "server", "conns", strconv.Itoa(conns)),
		kv("role", "client", "peer", "$srv", "conns", strconv.Itoa(conns), "bytes", strconv.Itoa(n)))...)
	mustOK(t, c, ds["cli"], 2*time.Minute)
	mustOK(t, c, ds["srv"], time.Minute)
	mustLine(t, c, "cli", fmt.Sprintf("streamecho: client ok %d bytes", conns*n))
	mustLine(t, c, "srv", fmt.Sprintf("streamecho: served %d connections, %d bytes", conns, conns*n))
	return ds
}

// A source sends 8 MiB and closes; the sink checks the pattern and reads
// end of file after exactly that much.
func TestStreamGuestSourceSink(t *testing.T) {
	const n = 8 << 20
	var c console
	ds := streamGuestRun(t, &c, streamGuestPair(
		kv("role", "sink", "port", "6000"),
		kv("role", "source", "peer", "$srv", "port", "6000", "bytes", strconv.Itoa(n)))...)
	mustOK(t, &c, ds["cli"], 2*time.Minute)
	mustOK(t, &c, ds["srv"], time.Minute)
	mustLine(t, &c, "cli", fmt.Sprintf("streamecho: source sent %d bytes", n))
	m := mustMatch(t, &c, "srv", regexp.MustCompile(`^streamecho: sink got (\d+) bytes in (\d+) cycles$`))
	if got := atoi(t, m[1]); got != n {
		t.Fatalf("sink got %d bytes, want %d", got, n)
	}
	t.Logf("%d bytes in %s TSC cycles", n, m[2])
}

// Connecting where nobody listens fails with ECONNREFUSED: a domain that
// listens on another port answers RESET(ECONNREFUSED) from its control
// ring; a domain without streams has no control ring, and Argo itself
// refuses the CONNECT.
func TestStreamGuestRefused(t *testing.T) {
	t.Run("no-listener", func(t *testing.T) {
		var c console
		ds := streamGuestRun(t, &c, streamGuestPair(
			kv("role", "server", "port", "5000"),
			kv("role", "client", "peer", "$srv", "port", "5001", "expect", "refused"))...)
		mustOK(t, &c, ds["cli"], time.Minute)
		mustLine(t, &c, "cli", "streamecho: connect failed: ECONNREFUSED")
		// The refusal was the server's RESET, its one message.
		if st := ds["srv"].ArgoStats(); st.MsgsOut != 1 {
			t.Errorf("server sent %d messages, want 1 (the RESET)", st.MsgsOut)
		}
	})
	t.Run("no-streams", func(t *testing.T) {
		var c console
		ds := streamGuestRun(t, &c,
			streamGuestDom{name: "idle", prog: "irqwait", params: kv("count", "1000000000"), sendTo: []string{"cli"}},
			streamGuestDom{name: "cli", params: kv("role", "client", "peer", "$idle", "expect", "refused"), sendTo: []string{"idle"}})
		mustOK(t, &c, ds["cli"], time.Minute)
		mustLine(t, &c, "cli", "streamecho: connect failed: ECONNREFUSED")
	})
}

// A source whose domain crashes mid-transfer: the sink reads every byte
// that reached its ring, then sees the connection reset (its ring went
// with the dead peer; no FIN came).
func TestStreamGuestPeerCrash(t *testing.T) {
	const after = 300000
	var c console
	ds := streamGuestRun(t, &c, streamGuestPair(
		kv("role", "sink", "expect", "reset"),
		kv("role", "source", "peer", "$srv", "bytes", strconv.Itoa(4<<20), "crash_after", strconv.Itoa(after)))...)
	if res := waitResult(t, ds["cli"], time.Minute); res.Kind != vmm.Crashed {
		t.Fatalf("source: %v, want a crash\n%s", res, c.dump())
	}
	mustOK(t, &c, ds["srv"], time.Minute)
	mustLine(t, &c, "cli", fmt.Sprintf("streamecho: source crashing after %d bytes", after))
	mustLine(t, &c, "srv", fmt.Sprintf("streamecho: sink reset after %d bytes", after))
}

// A peer that breaks the protocol on purpose (guest/fixtures/streamhostile.c):
// malformed CONNECTs, and on its connection messages too short, from the
// wrong port or of unknown types. The server drops and counts each one,
// refuses the CONNECT for a port nobody listens on, and still echoes the
// real data and closes cleanly.
func TestStreamGuestHostile(t *testing.T) {
	var c console
	ds := streamGuestRun(t, &c,
		streamGuestDom{name: "srv", params: kv("role", "server", "conns", "1"), wildcard: true, sendTo: []string{"evil"}},
		streamGuestDom{name: "evil", prog: "streamhostile", params: kv("peer", "$srv"), sendTo: []string{"srv"}})
	mustOK(t, &c, ds["evil"], time.Minute)
	mustOK(t, &c, ds["srv"], time.Minute)
	mustLine(t, &c, "evil", "streamhostile: ok")
	mustLine(t, &c, "srv", "streamecho: served 1 connections, 20 bytes")
	mustLine(t, &c, "srv", "streamecho: stats: dropped 10, resets sent 1, received 0")
}
