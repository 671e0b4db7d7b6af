package test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/internal/testutil"
	"github.com/argovisor/argovisor/vmm"
)

// Argo integration tests: real guests (guest/{examples,fixtures}/{pingpong,stream,
// wildcard,argoerr,hostecho,hostile,killme}.c) talking through the VMM's
// Argo on hypercall 39.

// domainSpec is one domain for startDomains; Params may name other
// domains of the same call as "$name", replaced by their domain id.
type domainSpec struct {
	name, prog string
	params     map[string]string
	argo       vmm.ArgoPolicy
	vcpus      int    // default 1
	label      string // [domain] label
	memory     uint64 // default 16 MiB
}

// startDomains creates every domain first (so that each exists in Argo
// before any runs, as the CLI does), then starts them all. Domain ids are
// given in creation order, so a "$name" reference is resolved from the
// VMM's next id.
func startDomains(t *testing.T, v *vmm.VMM, specs ...domainSpec) map[string]*vmm.Domain {
	t.Helper()
	first := uint16(len(v.Domains()) + 1)
	ids := map[string]string{}
	for i, s := range specs {
		ids["$"+s.name] = strconv.Itoa(int(first) + i)
	}
	ds := map[string]*vmm.Domain{}
	var order []*vmm.Domain
	for i, s := range specs {
		p := map[string]string{}
		for k, val := range s.params {
			for ref, idv := range ids {
				val = strings.ReplaceAll(val, ref, idv)
			}
			p[k] = val
		}
		d, err := v.CreateDomain(vmm.DomainConfig{Name: s.name, Label: s.label, Kernel: guest(s.prog), Memory: cmp.Or(s.memory, 16<<20),
			VCPUs: max(s.vcpus, 1), Params: p, Argo: s.argo})
		if err != nil {
			t.Fatalf("CreateDomain(%s): %v", s.name, err)
		}
		if d.ID() != first+uint16(i) {
			t.Fatalf("%s got domain id %d, want %d", s.name, d.ID(), first+uint16(i))
		}
		ds[s.name] = d
		order = append(order, d)
	}
	for _, d := range order {
		if err := d.Start(); err != nil {
			t.Fatalf("Start(%s): %v", d.Name(), err)
		}
	}
	return ds
}

// kv builds a params map from key, value pairs.
func kv(pairs ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

// mustOK waits for a domain and fails the test unless it exited with 0.
func mustOK(t *testing.T, c *console, d *vmm.Domain, limit time.Duration) {
	t.Helper()
	if res := waitResult(t, d, limit); !res.OK() {
		t.Fatalf("%s: %v\n%s", d.Name(), res, c.dump())
	}
}

// match returns the submatches of the first console line of domain name
// that matches re, or nil.
func (c *console) match(name string, re *regexp.Regexp) []string {
	for _, l := range c.of(name) {
		if m := re.FindStringSubmatch(l); m != nil {
			return m
		}
	}
	return nil
}

// mustMatch fails the test unless domain name printed a line matching re.
func mustMatch(t *testing.T, c *console, name string, re *regexp.Regexp) []string {
	t.Helper()
	m := c.match(name, re)
	if m == nil {
		t.Fatalf("%s printed no line matching /%v/:\n%s", name, re, c.dump())
	}
	return m
}

func atoi(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var pingOK = regexp.MustCompile(`^pingpong: (\d+) round trips ok, lost 0 corrupt 0 reordered 0, (\d+) cycles/round trip$`)

// pingPongSpecs is a ping/pong pair named prefix+"ping" / prefix+"pong".
func pingPongSpecs(prefix string, count int, extra ...string) []domainSpec {
	p := func(role, peer string) map[string]string {
		m := kv(append([]string{"role", role, "peer", "$" + prefix + peer, "count", strconv.Itoa(count)}, extra...)...)
		return m
	}
	return []domainSpec{
		{name: prefix + "ping", prog: "pingpong", params: p("ping", "pong")},
		{name: prefix + "pong", prog: "pingpong", params: p("pong", "ping")},
	}
}

func TestArgoPingPong100k(t *testing.T) {
	n := uint64(100000)
	if testutil.InVM() {
		n = 20000 // 100 000 take about 6 minutes under TCG
	}
	var c console
	v := newVMM(t, &c)
	start := time.Now()
	ds := startDomains(t, v, pingPongSpecs("", int(n))...)
	mustOK(t, &c, ds["ping"], 5*time.Minute)
	mustOK(t, &c, ds["pong"], time.Minute)
	elapsed := time.Since(start)
	m := mustMatch(t, &c, "ping", pingOK)
	if got := atoi(t, m[1]); got != n {
		t.Fatalf("ping reports %d round trips, want %d", got, n)
	}
	mustMatch(t, &c, "pong", regexp.MustCompile(fmt.Sprintf(`^pingpong: echoed %d messages$`, n)))
	for _, d := range []*vmm.Domain{ds["ping"], ds["pong"]} {
		st := d.ArgoStats()
		if st.MsgsOut != n || st.MsgsIn != n || st.BytesOut != 64*n {
			t.Errorf("%s: argo stats %+v, want %d messages of 64 bytes each way", d.Name(), st, n)
		}
		if st.Rings != 0 {
			t.Errorf("%s: %d rings left after exit", d.Name(), st.Rings)
		}
	}
	t.Logf("%d round trips in %v (%.1f µs each, guest-measured %s TSC cycles each)",
		n, elapsed.Round(time.Millisecond), float64(elapsed.Microseconds())/float64(n), m[2])
}

// The example config through the CLI.
func TestArgoPingPongExample(t *testing.T) {
	runExample(t, "pingpong",
		"[ping] pingpong: 10000 round trips ok, lost 0 corrupt 0 reordered 0",
		"[pong] pingpong: echoed 10000 messages",
		"argovisor: ping (domain 1): exited with status 0",
		"argovisor: pong (domain 2): exited with status 0",
		"argovisor: ping argo: registers=1 out=10000 msgs",
	)
}

func TestArgoRingFullRetry(t *testing.T) {
	const n = 3000
	var c console
	v := newVMM(t, &c)
	common := []string{"count", strconv.Itoa(n), "size", "200", "ringlen", "4032"}
	// Three iovs of uneven lengths per message, so that message, iov and
	// ring-wrap boundaries fall in different places.
	ds := startDomains(t, v,
		domainSpec{name: "sender", prog: "stream", params: kv(append([]string{"role", "sender", "peer", "$receiver", "min_eagain", "1", "niov", "3"}, common...)...)},
		domainSpec{name: "receiver", prog: "stream", params: kv(append([]string{"role", "receiver", "peer", "$sender", "slow", "1"}, common...)...)},
	)
	mustOK(t, &c, ds["sender"], 3*time.Minute)
	mustOK(t, &c, ds["receiver"], time.Minute)
	m := mustMatch(t, &c, "sender", regexp.MustCompile(`^stream: (\d+) msgs ok, eagain (\d+)$`))
	if atoi(t, m[1]) != n {
		t.Fatalf("sender sent %s messages, want %d", m[1], n)
	}
	eagain := atoi(t, m[2])
	if eagain == 0 {
		t.Fatalf("the sender never saw -EAGAIN: the ring was never full\n%s", c.dump())
	}
	mustMatch(t, &c, "receiver", regexp.MustCompile(fmt.Sprintf(`^stream: received %d msgs ok$`, n)))
	ss, rs := ds["sender"].ArgoStats(), ds["receiver"].ArgoStats()
	if ss.EAGAINs == 0 || ss.EAGAINs != eagain {
		t.Errorf("sender's ArgoStats().EAGAINs = %d, guest counted %d", ss.EAGAINs, eagain)
	}
	// Every -EAGAIN queued a space request; the receiver's notifies
	// satisfied them (one wake-up per request).
	if rs.Signals == 0 || rs.Signals > ss.EAGAINs {
		t.Errorf("receiver woke %d waiting senders for %d EAGAINs", rs.Signals, ss.EAGAINs)
	}
	if ss.MsgsOut != n || rs.MsgsIn != n {
		t.Errorf("stats: sender out %d, receiver in %d, want %d", ss.MsgsOut, rs.MsgsIn, n)
	}
	t.Logf("%d EAGAINs, %d space wake-ups", eagain, rs.Signals)
}

func TestArgoWildcardTrueSources(t *testing.T) {
	t.Run("honest", func(t *testing.T) {
		var c console
		v := newVMM(t, &c)
		client := kv("role", "client", "server", "$server")
		ds := startDomains(t, v,
			domainSpec{name: "server", prog: "wildcard", params: kv("role", "server", "senders", "3"), argo: vmm.ArgoPolicy{Wildcard: true}},
			domainSpec{name: "c1", prog: "wildcard", params: client},
			domainSpec{name: "c2", prog: "wildcard", params: client},
			domainSpec{name: "c3", prog: "wildcard", params: client},
		)
		for _, n := range []string{"server", "c1", "c2", "c3"} {
			mustOK(t, &c, ds[n], time.Minute)
		}
		want := fmt.Sprintf("wildcard: got 3 messages from domains %d,%d,%d", ds["c1"].ID(), ds["c2"].ID(), ds["c3"].ID())
		if !c.has("server", want) {
			t.Fatalf("server did not print %q:\n%s", want, c.dump())
		}
		for _, n := range []string{"c1", "c2", "c3"} {
			line := fmt.Sprintf("wildcard: message from domain %d port 1 claims domain %d", ds[n].ID(), ds[n].ID())
			if !c.has("server", line) {
				t.Errorf("server lacks %q", line)
			}
		}
	})
	// A client that lies about its id in the payload cannot forge the
	// header: the server sees the mismatch.
	t.Run("liar", func(t *testing.T) {
		var c console
		v := newVMM(t, &c)
		ds := startDomains(t, v,
			domainSpec{name: "server", prog: "wildcard", params: kv("role", "server", "senders", "1"), argo: vmm.ArgoPolicy{Wildcard: true}},
			domainSpec{name: "liar", prog: "wildcard", params: kv("role", "client", "server", "$server", "claim", "$server")},
		)
		mustOK(t, &c, ds["liar"], time.Minute)
		if res := waitResult(t, ds["server"], time.Minute); res.Kind != vmm.Exited || res.Status != 1 {
			t.Fatalf("server: %v, want exit 1\n%s", res, c.dump())
		}
		want := fmt.Sprintf("wildcard: domain %d claims to be %d: source mismatch", ds["liar"].ID(), ds["server"].ID())
		if !c.has("server", want) {
			t.Fatalf("server lacks %q:\n%s", want, c.dump())
		}
	})
	// Without wildcard = true the registration is refused.
	t.Run("not-permitted", func(t *testing.T) {
		var c console
		v := newVMM(t, &c)
		ds := startDomains(t, v, domainSpec{name: "server", prog: "wildcard", params: kv("role", "server", "senders", "1")})
		if res := waitResult(t, ds["server"], time.Minute); res.Kind != vmm.Exited || res.Status != 1 {
			t.Fatalf("server: %v, want exit 1", res)
		}
		if !c.has("server", "wildcard: wildcard ring registration failed: -1") {
			t.Fatalf("want -EPERM for the wildcard ring:\n%s", c.dump())
		}
	})
}

// TestArgoErrors runs argoerr through the CLI with a config that sets up
// every case: an allowlist on the tester (send_to by name), a live peer it
// may send to, a live domain it may not, and a domain with Argo disabled.
func TestArgoErrors(t *testing.T) {
	requireKVM(t)
	dir := t.TempDir()
	cfg := domainTOML("tester", guest("argoerr"), "16M", 1, kv("other", "2", "denied", "3", "disabled", "4", "missing", "999")) +
		"[domain.argo]\nsend_to = [\"tester\", \"peer\", \"off\"]\n" +
		domainTOML("peer", guest("argoerr"), "16M", 1, kv("mode", "peer", "tester", "1")) +
		domainTOML("denied", guest("argoerr"), "16M", 1, kv("mode", "peer", "tester", "1")) +
		domainTOML("off", guest("argoerr"), "16M", 1, kv("mode", "disabled")) +
		"[domain.argo]\nenabled = false\n"
	r := runChecks(t, writeFile(t, dir, "errors.toml", cfg), "",
		"[tester] argoerr: spoof: got -1 (EPERM), want -1 (EPERM): ok",
		"[tester] argoerr: send_not_allowed: got -13 (EACCES), want -13 (EACCES): ok",
		"[tester] argoerr: send_no_such_domain: got -3 (ESRCH), want -3 (ESRCH): ok",
		"[tester] argoerr: send_argo_disabled: got -111 (ECONNREFUSED), want -111 (ECONNREFUSED): ok",
		"[tester] argoerr: register_wildcard_no_permission: got -1 (EPERM), want -1 (EPERM): ok",
		"[tester] argoerr: unregister_missing: got -2 (ENOENT), want -2 (ENOENT): ok",
		"[tester] argoerr: send_addr_noncanonical: got -14 (EFAULT), want -14 (EFAULT): ok",
		"[tester] argoerr: send_addr_unmapped: got -14 (EFAULT), want -14 (EFAULT): ok",
		"[tester] argoerr: send_addr_beyond_ram: got -14 (EFAULT), want -14 (EFAULT): ok",
		"[tester] argoerr: send_niov_9: got -22 (EINVAL), want -22 (EINVAL): ok",
		"[tester] argoerr: register_len_40: got -22 (EINVAL), want -22 (EINVAL): ok",
		"[tester] argoerr: notify_nent_257: got -13 (EACCES), want -13 (EACCES): ok",
		"[tester] argoerr: notify_query_not_allowed: got -13 (EACCES), want -13 (EACCES): ok",
		"[tester] argoerr: register_too_many: got -28 (ENOSPC), want -28 (ENOSPC): ok",
		"[tester] argoerr: send_too_big: got -90 (EMSGSIZE), want -90 (EMSGSIZE): ok",
		"[off] argoerr: disabled_sendv: got -95 (EOPNOTSUPP), want -95 (EOPNOTSUPP): ok",
		"[off] argoerr: all 4 checks ok",
		"argovisor: tester (domain 1): exited with status 0",
		"argovisor: peer (domain 2): exited with status 0",
		"argovisor: denied (domain 3): exited with status 0",
		"argovisor: off (domain 4): exited with status 0",
	)
	if !regexp.MustCompile(`\[tester\] argoerr: all \d+ checks ok`).MatchString(r.stdout) {
		t.Errorf("tester did not pass every check")
	}
	if t.Failed() {
		t.Logf("output:\n%v", r)
	}
}

func TestArgoGuestHost(t *testing.T) {
	const (
		n         = 300
		guestPort = 1
		hostPort  = 2
		quit      = 0xDEAD
	)
	var c console
	v := newVMM(t, &c)
	// The host must exist before the guest registers a ring for it.
	h, err := v.Argo().NewHost(1<<20, argo.Policy{Enabled: true, Wildcard: true})
	if err != nil {
		t.Fatal(err)
	}
	ds := startDomains(t, v, domainSpec{name: "echo", prog: "hostecho", params: kv("reply_port", strconv.Itoa(hostPort))})
	d := ds["echo"]
	gid := argo.DomainID(d.ID())
	ring, err := h.RegisterRing(hostPort, gid, 4096-64)
	if err != nil {
		t.Fatal(err)
	}
	payload := func(i int) []byte {
		b := make([]byte, 1+(i*37)%900)
		for j := range b {
			b[j] = byte(i*7 + j*13)
		}
		return b
	}
	msgType := func(i int) uint32 { return 0x10000 + uint32(i) }

	deadline := time.Now().Add(2 * time.Minute)
	// send sends one message, waiting for the guest's ring (ECONNREFUSED
	// until it is registered) or for space (EAGAIN, then a signal).
	// Echoes that arrive meanwhile are handled by drain.
	sent, got, refused, eagain := 0, 0, 0, 0
	drain := func() {
		for {
			m, err := ring.Recv()
			if errors.Is(err, argo.Errno(argo.EAGAIN)) {
				return
			}
			if err != nil {
				t.Fatalf("host Recv: %v", err)
			}
			want := argo.Addr{Port: guestPort, Domain: gid}
			if m.Source != want || m.Type != msgType(got) || !bytes.Equal(m.Data, payload(got)) {
				t.Fatalf("echo %d: source %+v type %#x %d bytes, want source %+v type %#x %d bytes",
					got, m.Source, m.Type, len(m.Data), want, msgType(got), len(payload(got)))
			}
			got++
		}
	}
	send := func(typ uint32, data []byte) {
		for {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: sent %d, got %d echoes\n%s", sent, got, c.dump())
			}
			// Every other message goes as two iovs.
			parts := [][]byte{data}
			if len(data) > 1 && sent%2 == 1 {
				parts = [][]byte{data[:len(data)/3], data[len(data)/3:]}
			}
			_, err := h.Send(argo.Addr{Port: guestPort, Domain: gid}, hostPort, typ, parts...)
			switch {
			case err == nil:
				return
			case errors.Is(err, argo.Errno(argo.ECONNREFUSED)) && sent == 0:
				refused++
				time.Sleep(time.Millisecond)
			case errors.Is(err, argo.Errno(argo.EAGAIN)):
				eagain++
				drain()
				select {
				case <-h.Signals():
				case <-d.Done():
					t.Fatalf("guest ended: %v\n%s", d.Result(), c.dump())
				case <-time.After(time.Second):
					// Also woken by the guest's echoes; wait
					// again rather than fail.
				}
			default:
				t.Fatalf("host Send %d: %v", sent, err)
			}
		}
	}
	for sent < n {
		send(msgType(sent), payload(sent))
		sent++
		drain()
	}
	for got < n {
		select {
		case <-h.Signals():
		case <-d.Done():
			t.Fatalf("guest ended: %v\n%s", d.Result(), c.dump())
		case <-time.After(time.Until(deadline)):
			t.Fatalf("timed out: got %d of %d echoes\n%s", got, n, c.dump())
		}
		drain()
	}
	send(quit, []byte("bye"))
	mustOK(t, &c, d, time.Minute)
	if !c.has("echo", fmt.Sprintf("hostecho: echoed %d messages", n)) {
		t.Fatalf("guest did not report %d echoes:\n%s", n, c.dump())
	}
	if st := d.ArgoStats(); st.MsgsIn != n+1 || st.MsgsOut != n {
		t.Errorf("guest stats %+v, want %d in and %d out", st, n+1, n)
	}
	// The guest's exit removed the host's ring partnered with it.
	if err := ring.Unregister(); !errors.Is(err, argo.Errno(argo.ENOENT)) {
		t.Errorf("host Unregister after the guest exited: %v, want ENOENT", err)
	}
	t.Logf("%d messages each way; %d ECONNREFUSED at startup, %d EAGAIN", n, refused, eagain)
}

func TestArgoHostileGuest(t *testing.T) {
	n := 50000 // enough for the pair to run about as long as the hostile guest
	if testutil.InVM() {
		n = 5000 // the same under TCG, where a round trip takes about ten times as long
	}
	var c console
	v := newVMM(t, &c)
	// A two-page ring whose data area ends 128 bytes before the end of its
	// last page: the canaries cover the pages around it and that tail.
	specs := pingPongSpecs("", n, "canary", "1", "size", "100", "ringlen", "8000", "canary_every", "500")
	specs = append(specs, domainSpec{name: "hostile", prog: "hostile",
		params: kv("seconds", "10", "victims", "$ping,$pong", "ports", "1,2,9")})
	start := time.Now()
	ds := startDomains(t, v, specs...)
	mustOK(t, &c, ds["ping"], 5*time.Minute)
	mustOK(t, &c, ds["pong"], time.Minute)
	pairDone := time.Since(start)
	mustOK(t, &c, ds["hostile"], 2*time.Minute)
	hostileDone := time.Since(start)
	mustMatch(t, &c, "ping", pingOK)
	for _, name := range []string{"ping", "pong"} {
		mustMatch(t, &c, name, regexp.MustCompile(fmt.Sprintf(`^canary: intact after %d round trips$`, n)))
	}
	m := mustMatch(t, &c, "hostile", regexp.MustCompile(`^hostile: survived (\d+) calls$`))
	calls := atoi(t, m[1])
	if calls < 1000 {
		t.Errorf("hostile made only %d calls", calls)
	}
	// It must have hit a spread of error paths.
	for _, e := range []string{"EINVAL", "EFAULT", "ECONNREFUSED", "ENOSYS", "EPERM"} {
		mustMatch(t, &c, "hostile", regexp.MustCompile(`^hostile: result -\d+ `+e+`: \d+$`))
	}
	hs := ds["hostile"].ArgoStats()
	if hs.Rings != 0 {
		t.Errorf("hostile still has %d rings after it exited", hs.Rings)
	}
	// The VMM is alive: a fresh domain boots and Argo still works.
	after := startDomains(t, v, append(pingPongSpecs("after-", 100),
		domainSpec{name: "hello", prog: "hello"})...)
	for _, name := range []string{"after-ping", "after-pong", "hello"} {
		mustOK(t, &c, after[name], time.Minute)
	}
	mustMatch(t, &c, "after-ping", pingOK)
	t.Logf("pair done after %v, hostile after %v with %d calls; hostile stats %+v",
		pairDone.Round(time.Millisecond), hostileDone.Round(time.Millisecond), calls, hs)
}

func TestArgoDestroyMidTraffic(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	specs := []domainSpec{
		{name: "sender", prog: "killme", params: kv("role", "sender", "peer", "$victim", "report", "500")},
		{name: "victim", prog: "killme", params: kv("role", "receiver", "peer", "$sender")},
	}
	specs = append(specs, pingPongSpecs("bystander-", 40000)...)
	ds := startDomains(t, v, specs...)
	waitFor(t, &c, ds["sender"], regexp.MustCompile(`^killme: sent 2000 messages$`), 2*time.Minute)
	// The bystanders must still be exchanging when the victim dies.
	if ds["bystander-ping"].Result().Kind != vmm.Running {
		t.Fatalf("the bystander pair ended before the victim was stopped; raise its count\n%s", c.dump())
	}
	ds["victim"].Stop("destroyed by the test")
	if res := waitResult(t, ds["victim"], time.Minute); res.Kind != vmm.Stopped {
		t.Fatalf("victim: %v, want stopped", res)
	}
	mustOK(t, &c, ds["sender"], time.Minute)
	m := mustMatch(t, &c, "sender", regexp.MustCompile(`^peer gone: ECONNREFUSED after (\d+) messages`))
	if atoi(t, m[1]) < 2000 {
		t.Errorf("sender saw ECONNREFUSED after only %s messages", m[1])
	}
	mustMatch(t, &c, "sender", regexp.MustCompile(`^unregister of ring for dead peer: ENOENT$`))
	if st := ds["sender"].ArgoStats(); st.Rings != 0 {
		t.Errorf("sender has %d rings after exit", st.Rings)
	}
	mustOK(t, &c, ds["bystander-ping"], 5*time.Minute)
	mustOK(t, &c, ds["bystander-pong"], time.Minute)
	m = mustMatch(t, &c, "bystander-ping", pingOK)
	t.Logf("sender stopped after %s messages; bystanders: %s cycles/round trip", mustMatch(t, &c, "sender", regexp.MustCompile(`after (\d+) messages`))[1], m[2])
}

// TestArgoSenderContext: a receiver whose ring asks for the sending
// context sees, for every message of a 2-vCPU sender, the vCPU and CR3 the
// sender reports of itself — from both vCPUs and from a second address
// space — and never the forged claims; domain_info reports the vouched
// names and labels, running and then ended, and -ESRCH for no domain.
func TestArgoSenderContext(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	ds := startDomains(t, v,
		domainSpec{name: "rcv", prog: "ctxsrc", label: "role=receiver", params: kv("role", "receiver", "peer", "$snd",
			"count", "16", "self_name", "rcv", "self_label", "role=receiver", "peer_name", "snd", "peer_label", "tier=web zone=dmz")},
		domainSpec{name: "snd", prog: "ctxsrc", label: "tier=web zone=dmz", vcpus: 2, params: kv("role", "sender", "peer", "$rcv", "count", "16")},
	)
	mustOK(t, &c, ds["snd"], time.Minute)
	mustOK(t, &c, ds["rcv"], time.Minute)
	for _, want := range []string{"ctxsrc: check two_vcpus: ok", "ctxsrc: check two_address_spaces: ok",
		"ctxsrc: check forgery_caught: ok", "ctxsrc: check info_peer_ended: ok"} {
		if !c.has("rcv", want) {
			t.Errorf("receiver lacks %q:\n%s", want, c.dump())
		}
	}
	if info, ok := v.Argo().Info(argo.DomainID(ds["snd"].ID())); !ok || !info.Ended || info.Label != "tier=web zone=dmz" {
		t.Errorf("Argo().Info(snd) = %+v, %v", info, ok)
	}
}
