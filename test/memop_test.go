package test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/internal/testutil"
	"github.com/argovisor/argovisor/vmm"
)

// Memory reservation and grant transfers with real guests:
// guest/examples/balloon.c and guest/fixtures/gntxfer.c through hypercalls
// 12 and 20.

// hostRelease sends one Argo message from the host endpoint to port on
// domain d, retrying while the ring is full.
func hostRelease(t *testing.T, h *argo.Host, d *vmm.Domain, port uint32) {
	t.Helper()
	for {
		_, err := h.Send(argo.Addr{Port: port, Domain: argo.DomainID(d.ID())}, 9, 1, []byte("go"))
		if !errors.Is(err, argo.Errno(argo.EAGAIN)) {
			if err != nil {
				t.Fatalf("host send: %v", err)
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// A 16 MiB domain with a 20 MiB maximum balloons 8 MiB out and back in,
// then fills the 4 MiB above its RAM. Between the steps the test measures
// the domain's RAM memfd (allocated blocks) and the VMM's resident memory:
// both drop by the 8 MiB given back and grow again when the guest uses
// the repopulated pages.
func TestMemopBalloon(t *testing.T) {
	const pages = 2048
	var c console
	v := newVMM(t, &c)
	h, err := v.Argo().NewHost(0, argo.Policy{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	d := boot(t, v, vmm.DomainConfig{Name: "balloon", Kernel: guest("balloon"), Memory: 16 << 20, MaxMemory: 20 << 20,
		Params: kv("pages", strconv.Itoa(pages), "hold_port", "2")})
	sample := func() (backing uint64, rss int64) { return d.MemoryStats().Backing, testutil.RSSShmemKiB(t) }

	waitFor(t, &c, d, regexp.MustCompile(`^balloon: filled 2048 pages at 0x[0-9a-f]+, holding$`), time.Minute)
	b0, r0 := sample()
	hostRelease(t, h, d, 2)
	waitFor(t, &c, d, regexp.MustCompile(`^balloon: released 2048 pages, holding$`), time.Minute)
	b1, r1 := sample()
	s1 := d.MemoryStats()
	hostRelease(t, h, d, 2)
	waitFor(t, &c, d, regexp.MustCompile(`^balloon: refilled 2048 pages, holding$`), time.Minute)
	b2, r2 := sample()
	s2 := d.MemoryStats()
	hostRelease(t, h, d, 2)
	if res := waitResult(t, d, time.Minute); !res.OK() {
		t.Fatalf("balloon: %v\n%s", res, c.dump())
	}
	mustMatch(t, &c, "balloon", regexp.MustCompile(`^balloon: all \d+ checks ok$`))
	for _, chk := range []string{"decrease", "reservation_after_decrease", "decrease_empty_frame", "populate",
		"populated_pages_zero", "populated_pages_usable", "populate_populated_frame", "populate_above_ram",
		"above_ram_zero", "reservation_at_maximum", "populate_beyond_region", "populate_at_maximum",
		"increase_beyond_maximum", "decrease_above_ram"} {
		mustMatch(t, &c, "balloon", regexp.MustCompile(`^balloon: check `+chk+`: ok \(`))
	}
	t.Logf("RAM memfd: %d -> %d -> %d KiB; VMM RssShmem: %d -> %d -> %d KiB", b0>>10, b1>>10, b2>>10, r0, r1, r2)
	const given = pages * 4096
	if b0 < b1 || b0-b1 < given-64<<10 {
		t.Errorf("the RAM memfd went from %d to %d bytes after %d were given back", b0, b1, given)
	}
	if r0-r1 < (given>>10)*9/10 {
		t.Errorf("the VMM's resident memory went from %d to %d KiB after %d KiB were given back", r0, r1, given>>10)
	}
	if b2 < b1 || b2-b1 < given-64<<10 {
		t.Errorf("the RAM memfd went from %d to %d bytes after %d were repopulated and used", b1, b2, given)
	}
	if s1.Current != 4096-pages || s1.Max != 5120 || s1.Decreased != pages {
		t.Errorf("after the decrease: %+v", s1.Stats)
	}
	// At the end: RAM back, one frame given up to make room for an
	// unplaced page (increase_reservation), the tail given back.
	if s2.Current != 4096 || s2.Populated != pages+1024 || s2.Increased != 1 || s2.Holes != 2 {
		t.Errorf("at the end: %+v", s2.Stats)
	}
}

// Touching a ballooned frame stops that domain, and only it.
func TestMemopBalloonedFrameFaults(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	b := boot(t, v, vmm.DomainConfig{Name: "balloon", Kernel: guest("balloon"), Params: kv("pages", "64", "touch", "ballooned")})
	other := boot(t, v, vmm.DomainConfig{Name: "other", Kernel: guest("irqwait"), Params: kv("count", "1")})
	waitFor(t, &c, other, regexp.MustCompile(`^waiting$`), time.Minute)
	res := waitResult(t, b, time.Minute)
	if res.Kind != vmm.Crashed || !strings.Contains(res.Reason, "no accessible backing") {
		t.Fatalf("balloon: %v, want a crash touching a frame with no backing\n%s", res, c.dump())
	}
	mustMatch(t, &c, "balloon", regexp.MustCompile(`^balloon: touching ballooned frame 0x[0-9a-f]+$`))
	if c.has("balloon", "the domain should have stopped") {
		t.Errorf("the guest went on after touching the frame")
	}
	if r := other.Result(); r.Kind != vmm.Running {
		t.Fatalf("the other domain ended with the balloon: %v", r)
	}
	if _, err := other.InjectVIRQ(); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, other, time.Minute); !r.OK() {
		t.Errorf("other: %v", r)
	}
}

// Two domains pass frames back and forth with GNTTABOP_transfer, each
// round checked: the frame number in the entry, the sender's pattern and
// its checksum, both reservations.
//
// The reservation checks are made where the peer cannot change them
// (issue 15): the sender looked after it had posted its next
// accept-transfer entries, and a frame that arrived in between already
// counted (as in Xen), so the check was one page off. 1000x1_cli runs the
// pair through the CLI, without -race, where that window was hit in most
// runs; under the race detector it was rare.
func TestMemopTransferPingPong(t *testing.T) {
	t.Run("1000x1_cli", func(t *testing.T) {
		requireKVM(t)
		p := func(role, peer string) map[string]string {
			return kv("mode", "pingpong", "role", role, "peer", peer, "frames", "1000", "batch", "1")
		}
		cfg := domainTOML("a", guest("gntxfer"), "16M", 1, p("a", "2")) + domainTOML("b", guest("gntxfer"), "16M", 1, p("b", "1"))
		runChecks(t, writeFile(t, t.TempDir(), "xfer.toml", cfg), "",
			"[a] gntxfer: check reservations: ok", "[b] gntxfer: check reservations: ok",
			"[a] gntxfer: a: 500 frames sent, 500 received", "[b] gntxfer: b: 500 frames sent, 500 received",
			"[a] gntxfer: all 6 checks ok", "[b] gntxfer: all 8 checks ok")
	})
	for _, tc := range []struct {
		name          string
		frames, batch int
	}{{"1000x1", 1000, 1}, {"1024x16", 1024, 16}} {
		t.Run(tc.name, func(t *testing.T) {
			var c console
			v := newVMM(t, &c)
			p := func(role string) map[string]string {
				return kv("mode", "pingpong", "role", role, "peer", "$"+map[string]string{"a": "b", "b": "a"}[role],
					"frames", strconv.Itoa(tc.frames), "batch", strconv.Itoa(tc.batch))
			}
			ds := startGnt(t, v, gntSpec{name: "a", prog: "gntxfer", params: p("a")}, gntSpec{name: "b", prog: "gntxfer", params: p("b")})
			allOK(t, &c, ds, nil)
			checks := []string{"protocol", "transfers", "frames_arrived", "pages_intact", "checksums", "reservations"}
			for _, name := range []string{"a", "b"} {
				mustMatch(t, &c, name, regexp.MustCompile(`^gntxfer: all \d+ checks ok$`))
				for _, chk := range checks {
					mustMatch(t, &c, name, regexp.MustCompile(`^gntxfer: check `+chk+`: ok \(`))
				}
			}
			half := tc.frames / 2
			mustMatch(t, &c, "a", regexp.MustCompile(`^gntxfer: a: `+strconv.Itoa(half)+` frames sent, `+strconv.Itoa(half)+` received$`))
			mustMatch(t, &c, "b", regexp.MustCompile(`^gntxfer: b: `+strconv.Itoa(half)+` frames sent, `+strconv.Itoa(half)+` received$`))
			// The last round goes from b to a: a ends with its pages, b
			// with holes.
			a, b := ds["a"].MemoryStats(), ds["b"].MemoryStats()
			if a.TransfersOut != uint64(half) || a.TransfersIn != uint64(half) || b.TransfersOut != uint64(half) || b.TransfersIn != uint64(half) {
				t.Errorf("transfer counts: a %+v, b %+v", a.Stats, b.Stats)
			}
			if a.Current != 4096 || b.Current != 4096-uint64(tc.batch) {
				t.Errorf("reservations at the end: a %d, b %d pages", a.Current, b.Current)
			}
			for _, name := range []string{"a", "b"} {
				if s := ds[name].GnttabStats(); s.Errors != 0 {
					t.Errorf("%s: grant-table errors %+v", name, s)
				}
			}
		})
	}
}

// transferErrorsConfig is the tester, its peer and a domain that exits
// at once (domain ids 1, 2, 3).
func transferErrorsConfig(touch string) string {
	p := kv("mode", "tester", "peer", "2", "dead", "3")
	if touch != "" {
		p["touch"] = touch
	}
	return domainTOML("tester", guest("gntxfer"), "16M", 1, p) +
		domainTOML("peer", guest("gntxfer"), "16M", 1, kv("mode", "peer", "peer", "1")) +
		domainTOML("dier", guest("gntxfer"), "2M", 1, kv("mode", "dier"))
}

// gntxfer's tester through the CLI: every transfer and memory_op error
// with Xen's status (and frames given back or kept as Xen does), then a
// touch of a frame transferred away stops the tester only.
func TestMemopTransferErrors(t *testing.T) {
	requireKVM(t)
	dir := t.TempDir()
	t.Run("checks", func(t *testing.T) {
		r := runChecks(t, writeFile(t, dir, "xfer.toml", transferErrorsConfig("")), "",
			"[tester] gntxfer: transfer_outside_region: got -9 bad_page, want -9 bad_page: ok",
			"[tester] gntxfer: transfer_grant_table_frame: got -9 bad_page, want -9 bad_page: ok",
			"[tester] gntxfer: transfer_empty_frame: got -9 bad_page, want -9 bad_page: ok",
			"[tester] gntxfer: transfer_mapped_by_peer: got -9 bad_page, want -9 bad_page: ok",
			"[tester] gntxfer: transfer_mapped_by_self: got -9 bad_page, want -9 bad_page: ok",
			"[tester] gntxfer: transfer_argo_ring_page: got -9 bad_page, want -9 bad_page: ok",
			"[tester] gntxfer: decrease_mapped_by_peer: got 0, want 0: ok",
			"[tester] gntxfer: decrease_argo_ring_page: got 0, want 0: ok",
			"[tester] gntxfer: transfer_missing_domain: got -2 bad_domain, want -2 bad_domain: ok",
			"[tester] gntxfer: transfer_not_accept_transfer: got -1 general_error, want -1 general_error: ok",
			"[tester] gntxfer: transfer_entry_names_other_domain: got -1 general_error, want -1 general_error: ok",
			"[tester] gntxfer: transfer_ref_beyond_table: got -1 general_error, want -1 general_error: ok",
			"[tester] gntxfer: transfer_receiver_frame_populated: got -1 general_error, want -1 general_error: ok",
			"[tester] gntxfer: transfer_dead_domain: got -1 general_error, want -1 general_error: ok",
			"[tester] gntxfer: transfer_ok: got 0 okay, want 0 okay: ok",
			"[tester] gntxfer: transfer_entry_used: got -1 general_error, want -1 general_error: ok",
			"[tester] gntxfer: transfer_to_self: got 0 okay, want 0 okay: ok",
			"[tester] gntxfer: transfer_receiver_full: got -1 general_error, want -1 general_error: ok",
			"[tester] gntxfer: transfer_count_4097: got -22 EINVAL, want -22 EINVAL: ok",
			"[tester] gntxfer: current_other_domain: got -1 EPERM, want -1 EPERM: ok",
			"[tester] gntxfer: decrease_struct_bad_pointer_start_3: got 3, want 3: ok",
			"[tester] gntxfer: populate_on_demand: got 0, want 0: ok",
			"[tester] gntxfer: reservation_at_end:",
			"[peer] gntxfer: received_page: got 1, want 1: ok",
			"[peer] gntxfer: full_entry_unchanged:",
			"argovisor: tester (domain 1): exited with status 0",
			"argovisor: peer (domain 2): exited with status 0",
			"argovisor: dier (domain 3): exited with status 0",
		)
		for _, name := range []string{"tester", "peer"} {
			m := regexp.MustCompile(`\[` + name + `\] gntxfer: all (\d+) checks ok`).FindStringSubmatch(r.stdout)
			if m == nil {
				t.Errorf("%s did not pass every check", name)
			} else if n, _ := strconv.Atoi(m[1]); name == "tester" && n < 70 {
				t.Errorf("only %d tester checks ran", n)
			}
		}
		if t.Failed() {
			t.Logf("output:\n%v", r)
		}
	})
	t.Run("touch-transferred", func(t *testing.T) {
		r := runCLI(t, "run", "--timeout", timeoutArg(120*time.Second), writeFile(t, dir, "touch.toml", transferErrorsConfig("transferred")))
		if r.code != 1 ||
			!strings.Contains(r.stdout, "[tester] gntxfer: touching transferred frame 0x") ||
			strings.Contains(r.stdout, "the domain should have stopped") ||
			!strings.Contains(r.stdout, "argovisor: tester (domain 1): crashed: guest touched ") ||
			!strings.Contains(r.stdout, "with no accessible backing") ||
			!strings.Contains(r.stdout, "argovisor: peer (domain 2): exited with status 0") {
			t.Fatalf("want the tester stopped when it touches the frame, the peer fine, exit 1:\n%v", r)
		}
	})
}

// max_memory through the CLI: a domain may populate up to it; report_memory
// prints the reservation, RAM memory and RSS around each change.
func TestMemopConfigMaxMemory(t *testing.T) {
	requireKVM(t)
	// The domain's own keys go before its [domain.params] table.
	cfg := strings.Replace(domainTOML("b", guest("balloon"), "16M", 1, kv("pages", "256")),
		"[domain.params]\n", "max_memory = \"18M\"\nreport_memory = true\n[domain.params]\n", 1)
	r := runCLI(t, "run", "--timeout", timeoutArg(120*time.Second), writeFile(t, t.TempDir(), "max.toml", cfg))
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%v", r)
	}
	for _, want := range []string{
		"[b] balloon: reservation 4096 pages (16384 KiB), maximum 4608 pages",
		"[b] balloon: check populate_above_ram: ok (512 of 512 frames above RAM populated)",
		"[b] argovisor: memory_op decrease_reservation = 256; reservation 4096 -> 3840 pages; RAM in host memory ",
		"[b] argovisor: memory_op populate_physmap = 256; reservation 3840 -> 4096 pages; RAM in host memory ",
		"[b] balloon: all ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q\n%v", want, r)
		}
	}
}

// The balloon example through the CLI.
func TestMemopBalloonExample(t *testing.T) {
	runExample(t, "balloon",
		"[balloon] balloon: reservation 4096 pages (16384 KiB), maximum 6144 pages",
		"[balloon] argovisor: memory_op decrease_reservation = 2048; reservation 4096 -> 2048 pages",
		"[balloon] argovisor: memory_op populate_physmap = 2048; reservation 2048 -> 4096 pages",
		"[balloon] balloon: all ",
		"argovisor: balloon (domain 1): exited with status 0",
		"argovisor: balloon memory: reservation=4096/6144 pages decreased=4097 populated=4096 increased=1 transfers-out=0 transfers-in=0 ram-in-host-memory=",
	)
	if _, err := os.Stat(filepath.Join(repoRoot, "examples", "balloon.toml")); err != nil {
		t.Fatal(err)
	}
}
