package test

import (
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/vmm"
)

// KVM integration tests of argovisor's Argo extensions (docs/argo.md,
// "Beyond Xen: fewer transitions"): the extended ring header, batched
// sends and waits in the VMM, through the pingpong and stream guests'
// proto=fast and proto=wait modes.

var (
	streamSent     = regexp.MustCompile(`^stream: (\d+) msgs ok, eagain (\d+)$`)
	streamCalls    = regexp.MustCompile(`^stream: \d+ virqs, \d+ cycles/msg, (\d+) calls, \d+ interrupted$`)
	streamReceived = regexp.MustCompile(`^stream: received (\d+) msgs ok$`)
)

// fastStreamSpecs is a sender/receiver pair of the stream guest with
// proto=fast; common params go to both, the others to one side.
func fastStreamSpecs(prefix string, common, sender, receiver []string) []domainSpec {
	base := append([]string{"proto", "fast"}, common...)
	return []domainSpec{
		{name: prefix + "sender", prog: "stream", params: kv(append(append([]string{"role", "sender", "peer", "$" + prefix + "receiver"}, base...), sender...)...)},
		{name: prefix + "receiver", prog: "stream", params: kv(append(append([]string{"role", "receiver", "peer", "$" + prefix + "sender"}, base...), receiver...)...)},
	}
}

// The event-index ping-pong: every message arrives, and since one message
// at most is in flight no sender ever waits for space, so the readers
// never notify (Xen's readers notify once per message).
func TestArgoFastPingPong(t *testing.T) {
	const n = 20000
	var c console
	v := newVMM(t, &c)
	ds := startDomains(t, v, pingPongSpecs("", n, "proto", "fast")...)
	mustOK(t, &c, ds["ping"], 5*time.Minute)
	mustOK(t, &c, ds["pong"], time.Minute)
	m := mustMatch(t, &c, "ping", pingOK)
	if got := atoi(t, m[1]); got != n {
		t.Fatalf("ping reports %d round trips, want %d", got, n)
	}
	mustMatch(t, &c, "pong", regexp.MustCompile(fmt.Sprintf(`^pingpong: echoed %d messages$`, n)))
	for _, d := range []*vmm.Domain{ds["ping"], ds["pong"]} {
		st := d.ArgoStats()
		if st.MsgsOut != n || st.MsgsIn != n || st.Notifies != 0 || st.EAGAINs != 0 {
			t.Errorf("%s: argo stats %+v, want %d messages each way and no notify", d.Name(), st, n)
		}
	}
	t.Logf("ping: %+v VMM %+v; pong: %+v VMM %+v", ds["ping"].ArgoStats(), ds["ping"].Stats(), ds["pong"].ArgoStats(), ds["pong"].Stats())
}

// The send_wait ping-pong: polling rings, so not one VIRQ reaches either
// domain, and every message arrives.
func TestArgoWaitPingPong(t *testing.T) {
	const n = 20000
	var c console
	v := newVMM(t, &c)
	ds := startDomains(t, v, pingPongSpecs("", n, "proto", "wait")...)
	mustOK(t, &c, ds["ping"], 5*time.Minute)
	mustOK(t, &c, ds["pong"], time.Minute)
	m := mustMatch(t, &c, "ping", pingOK)
	if got := atoi(t, m[1]); got != n {
		t.Fatalf("ping reports %d round trips, want %d", got, n)
	}
	for _, d := range []*vmm.Domain{ds["ping"], ds["pong"]} {
		st := d.ArgoStats()
		if st.MsgsOut != n || st.MsgsIn != n || st.Suppressed != n || st.Notifies != 0 {
			t.Errorf("%s: argo stats %+v, want %d messages each way, all without a VIRQ", d.Name(), st, n)
		}
		vs := d.Stats()
		if vs.VIRQs != 0 {
			t.Errorf("%s: %d VIRQs, want none", d.Name(), vs.VIRQs)
		}
		// Every wait that blocked ended polled or asleep (a wait may
		// block more than once).
		if vs.WaitsPolled+vs.WaitsSlept < st.WaitsBlocked {
			t.Errorf("%s: %d waits polled + %d slept < %d blocked", d.Name(), vs.WaitsPolled, vs.WaitsSlept, st.WaitsBlocked)
		}
	}
	t.Logf("ping: %+v VMM %+v", ds["ping"].ArgoStats(), ds["ping"].Stats())

	// With polling off, every wait sleeps.
	{
		var c console
		v := newVMMWith(t, &c, vmm.Options{WaitPoll: -1})
		ds := startDomains(t, v, pingPongSpecs("", 500, "proto", "wait")...)
		mustOK(t, &c, ds["ping"], 5*time.Minute)
		mustOK(t, &c, ds["pong"], time.Minute)
		for _, d := range []*vmm.Domain{ds["ping"], ds["pong"]} {
			if vs := d.Stats(); vs.WaitsPolled != 0 || vs.WaitsSlept < d.ArgoStats().WaitsBlocked {
				t.Errorf("%s with WaitPoll -1: %d waits polled, %d slept, %d blocked", d.Name(), vs.WaitsPolled, vs.WaitsSlept, d.ArgoStats().WaitsBlocked)
			}
		}
	}

	// The end of a wait ping-pong, many times over (issue 15): pong sends
	// its last echo with a plain send and exits at once, and its death
	// removes ping's ring (as in Xen, a dying domain takes the unicast
	// rings registered for it) while ping's last send_wait may not yet
	// have looked at it. The echo was delivered before the removal: the
	// wait reports it (docs/argo.md, "Waiting in the VMM") instead of
	// -ENOENT, and ping, which on -ENOENT reads its ring before giving
	// up, finishes either way. Short pairs make the end frequent: before
	// the fix one pair in two or three failed on this machine.
	const ends, short = 40, 20
	for i := range ends {
		prefix := fmt.Sprintf("end%d-", i)
		ds := startDomains(t, v, pingPongSpecs(prefix, short, "proto", "wait")...)
		mustOK(t, &c, ds[prefix+"ping"], time.Minute)
		mustOK(t, &c, ds[prefix+"pong"], time.Minute)
		mustMatch(t, &c, prefix+"ping", pingOK)
		if st := ds[prefix+"ping"].ArgoStats(); st.ErrorsByErrno[argo.ENOENT] != 0 || st.MsgsIn != short {
			t.Fatalf("%sping: argo stats %+v: the VMM hid the last echo behind -ENOENT", prefix, st)
		}
	}
}

// A vCPU blocked in argo_wait is interruptible: kicks make the wait
// return -EINTR (the guests retry and finish intact), and a stop ends a
// domain that waits forever for a message that never comes.
func TestArgoWaitInterruptible(t *testing.T) {
	const n = 5000
	var c console
	v := newVMM(t, &c)
	specs := pingPongSpecs("", n, "proto", "wait")
	specs = append(specs,
		domainSpec{name: "quiet", prog: "spin"},
		// pong's role with a peer that never sends: it waits forever.
		domainSpec{name: "waiter", prog: "pingpong", params: kv("role", "pong", "peer", "$quiet", "count", "1", "proto", "wait")},
	)
	ds := startDomains(t, v, specs...)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
			ds[[]string{"ping", "pong"}[i%2]].Kick()
		}
	}()
	mustOK(t, &c, ds["ping"], 5*time.Minute)
	mustOK(t, &c, ds["pong"], time.Minute)
	close(stop)
	wg.Wait()
	mustMatch(t, &c, "ping", pingOK)
	// The waiter is blocked in the VMM once its wait has slept.
	w := ds["waiter"]
	for deadline := time.Now().Add(time.Minute); w.ArgoStats().WaitsBlocked == 0; {
		if time.Now().After(deadline) || w.Result().Kind != vmm.Running {
			t.Fatalf("waiter never blocked: %v %+v\n%s", w.Result(), w.ArgoStats(), c.dump())
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	w.Stop("stopped while waiting")
	if res := waitResult(t, w, 10*time.Second); res.Kind != vmm.Stopped {
		t.Fatalf("waiter: %v", res)
	}
	t.Logf("a vCPU blocked in argo_wait stopped in %v; kicks: ping %d, pong %d", time.Since(start),
		ds["ping"].Stats().Kicks, ds["pong"].Stats().Kicks)
}

// TestArgoLostWakeupHunt streams tens of thousands of checked messages
// through small rings with random suppression windows: before every
// sleep the receiver asks for its VIRQ 0 to (capacity − 1) messages
// ahead, or polls for a while, or takes a VIRQ per message; the sender
// sends random batch sizes and plain sendvs. A lost wake-up hangs a guest
// (and fails the test at its deadline); a lost, corrupt or reordered
// message fails the receiver's checks.
func TestArgoLostWakeupHunt(t *testing.T) {
	for _, tc := range []struct {
		size, ringlen, niov, count int
		seed                       int
	}{
		{64, 1024, 1, 30000, 1},
		{200, 4032, 3, 20000, 2},
		{16, 256, 2, 30000, 3},
	} {
		t.Run(fmt.Sprintf("size%d/ring%d", tc.size, tc.ringlen), func(t *testing.T) {
			var c console
			v := newVMM(t, &c)
			common := []string{"count", strconv.Itoa(tc.count), "size", strconv.Itoa(tc.size), "ringlen", strconv.Itoa(tc.ringlen), "random", "1"}
			ds := startDomains(t, v, fastStreamSpecs("", common,
				[]string{"niov", strconv.Itoa(tc.niov), "batch", "16", "seed", strconv.Itoa(tc.seed)},
				[]string{"seed", strconv.Itoa(tc.seed + 100)})...)
			mustOK(t, &c, ds["sender"], 5*time.Minute)
			mustOK(t, &c, ds["receiver"], time.Minute)
			m := mustMatch(t, &c, "receiver", streamReceived)
			if atoi(t, m[1]) != uint64(tc.count) {
				t.Fatalf("received %s", m[1])
			}
			s, r := ds["sender"].ArgoStats(), ds["receiver"].ArgoStats()
			if s.MsgsOut != uint64(tc.count) || r.MsgsIn != uint64(tc.count) || r.Errors != 0 {
				t.Errorf("stats: sender %+v, receiver %+v", s, r)
			}
			t.Logf("sender %+v; receiver %+v VMM %+v", s, r, ds["receiver"].Stats())
		})
	}
}

// The batched stream through a ring that fills: every message arrives
// intact and in order, the full-ring path is taken, and the sender's
// hypercalls are exactly its batch calls.
func TestArgoBatchStream(t *testing.T) {
	const n = 10000
	var c console
	v := newVMM(t, &c)
	ds := startDomains(t, v, fastStreamSpecs("", []string{"count", strconv.Itoa(n), "size", "200", "ringlen", "4032"},
		[]string{"niov", "3", "batch", "32", "min_eagain", "1"},
		[]string{"slow", "1", "spin", "2000"})...)
	mustOK(t, &c, ds["sender"], 5*time.Minute)
	mustOK(t, &c, ds["receiver"], time.Minute)
	mustMatch(t, &c, "receiver", streamReceived)
	mustMatch(t, &c, "sender", streamSent)
	calls := atoi(t, mustMatch(t, &c, "sender", streamCalls)[1])
	if calls >= n {
		t.Errorf("%d calls for %d messages: nothing was batched", calls, n)
	}
	if st := ds["sender"].ArgoStats(); st.MsgsOut != n || st.BytesOut != 200*n {
		t.Errorf("sender stats %+v", st)
	}
	t.Logf("%d batch calls for %d messages; sender VMM %+v", calls, n, ds["sender"].Stats())
}

// Large messages through batches that wait in the VMM for space
// (waitspace=1, the stream guest's default for 64 KiB and more): every
// message arrives intact and in order, the sender never gets -EAGAIN or a
// space VIRQ (its waits are woken by the receiver's notify, which
// tx_wanted asks for), and with a 16 MiB ring the stream costs at most
// 0.1 protocol exits per 1 MiB message: the sender's batch calls and the
// receiver's notifies (about one per ring drained) — the bench figure
// argo.stream.fast.1MiB, counted here from the hypercalls themselves.
func TestArgoBatchWaitStream(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name     string
		count    int
		ringlen  int
		verify   string
		maxExits float64 // per message; 0: no bound
	}{
		// Every byte checked, one buffer per message (16 per batch), a
		// ring of three messages: a wait every three messages.
		{"verify/ring3", 60, 4*mib - 64, "1", 0},
		// As the benchmark: batches of 64 messages with shared buffers,
		// the largest ring (15 messages).
		{"bench/ring16MiB", 200, argo.MaxRingPages*argo.PageSize - argo.RingHeaderSize, "0", 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c console
			v := newVMM(t, &c)
			specs := fastStreamSpecs("", []string{"count", strconv.Itoa(tc.count), "size", strconv.Itoa(mib),
				"ringlen", strconv.Itoa(tc.ringlen), "verify", tc.verify}, []string{"waitspace", "1"}, nil)
			for i := range specs {
				specs[i].memory = 64 << 20
			}
			ds := startDomains(t, v, specs...)
			mustOK(t, &c, ds["sender"], 5*time.Minute)
			mustOK(t, &c, ds["receiver"], time.Minute)
			if m := mustMatch(t, &c, "receiver", streamReceived); atoi(t, m[1]) != uint64(tc.count) {
				t.Fatalf("received %s", m[1])
			}
			if m := mustMatch(t, &c, "sender", streamSent); m[2] != "0" {
				t.Errorf("sender got -EAGAIN %s times", m[2])
			}
			s, r := ds["sender"].ArgoStats(), ds["receiver"].ArgoStats()
			sv, rv := ds["sender"].Stats(), ds["receiver"].Stats()
			if s.MsgsOut != uint64(tc.count) || s.BytesOut != uint64(tc.count)*mib || r.MsgsIn != uint64(tc.count) || r.Errors != 0 {
				t.Errorf("stats: sender %+v, receiver %+v", s, r)
			}
			if s.EAGAINs != 0 || s.SpaceWaits == 0 || sv.VIRQs != 0 {
				t.Errorf("sender: %d -EAGAINs, %d batches waited for space, %d VIRQs; want 0, > 0, 0", s.EAGAINs, s.SpaceWaits, sv.VIRQs)
			}
			// Protocol exits: batch calls (less those refused while the
			// receiver's ring did not exist yet) and notifies.
			refused := s.Errors - s.EAGAINs
			batches := sv.HypercallsByOp["argo_op.sendv_batch"]
			notifies := rv.HypercallsByOp["argo_op.notify"]
			exits := float64(batches-refused+notifies) / float64(tc.count)
			t.Logf("%d batch calls (%d refused), %d notifies, %.3f exits/msg; receiver VIRQs %d; sender %+v; receiver %+v",
				batches, refused, notifies, exits, rv.VIRQs, s, r)
			if tc.maxExits > 0 && exits > tc.maxExits {
				t.Errorf("%.3f exits per message, want at most %.2f", exits, tc.maxExits)
			}
		})
	}
}

// The lost-wake-up hunt with batches that wait in the VMM: random batch
// sizes and plain sendvs (which still halt for a space VIRQ) against a
// receiver with random windows that notifies only when tx_wanted asks.
func TestArgoBatchWaitHunt(t *testing.T) {
	const n = 20000
	var c console
	v := newVMM(t, &c)
	ds := startDomains(t, v, fastStreamSpecs("", []string{"count", strconv.Itoa(n), "size", "200", "ringlen", "4032", "random", "1"},
		[]string{"waitspace", "1", "niov", "2", "seed", "7"}, []string{"seed", "107"})...)
	mustOK(t, &c, ds["sender"], 5*time.Minute)
	mustOK(t, &c, ds["receiver"], time.Minute)
	if m := mustMatch(t, &c, "receiver", streamReceived); atoi(t, m[1]) != n {
		t.Fatalf("received %s", m[1])
	}
	s, r := ds["sender"].ArgoStats(), ds["receiver"].ArgoStats()
	if s.MsgsOut != n || r.MsgsIn != n || r.Errors != 0 || s.SpaceWaits == 0 {
		t.Errorf("stats: sender %+v, receiver %+v", s, r)
	}
	t.Logf("sender %+v; receiver %+v", s, r)
}

// A receiver that writes garbage over its own extended header (event
// index, flags, the VMM's tx_wanted, reserved bytes) while a batched
// sender streams into it: the VMM does not fault, every message still
// arrives intact (the receiver polls and always notifies, as a guest that
// garbles its header must), and a Xen ping-pong pair beside it is
// unaffected.
func TestArgoHostileExtHeader(t *testing.T) {
	const n = 20000
	var c console
	v := newVMM(t, &c)
	specs := fastStreamSpecs("", []string{"count", strconv.Itoa(n), "size", "64", "ringlen", "1024"}, nil, []string{"hostile", "1"})
	specs = append(specs, pingPongSpecs("bystander-", 5000)...)
	ds := startDomains(t, v, specs...)
	for _, name := range []string{"sender", "receiver", "bystander-ping", "bystander-pong"} {
		mustOK(t, &c, ds[name], 5*time.Minute)
	}
	m := mustMatch(t, &c, "receiver", streamReceived)
	if atoi(t, m[1]) != n {
		t.Fatalf("received %s", m[1])
	}
	mustMatch(t, &c, "bystander-ping", pingOK)
	t.Logf("receiver %+v", ds["receiver"].ArgoStats())
}
