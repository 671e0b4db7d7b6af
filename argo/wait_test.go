package argo

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/argovisor/argovisor/hcall"
)

// blocker is a fake vCPU that can block: it reports each sleep on blocked
// and is interrupted when cancel is ready.
type blocker struct {
	*fakeDomain
	blocked chan struct{}
	cancel  chan struct{}
}

func newBlocker(d *fakeDomain) blocker {
	return blocker{d, make(chan struct{}, 1), make(chan struct{}, 1)}
}

func (b blocker) Block(wake <-chan struct{}, timeout time.Duration) BlockResult {
	select {
	case b.blocked <- struct{}{}:
	default:
	}
	var tc <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-wake:
		return hcall.Woken
	case <-tc:
		return hcall.TimedOut
	case <-b.cancel:
		return hcall.Interrupted
	}
}

func ringsBytes(rs ...Addr) []byte {
	b := make([]byte, len(rs)*sizeofAddr)
	for i, r := range rs {
		encodeAddr(b[i*sizeofAddr:], r)
	}
	return b
}

// wait runs OpWait for c on the rings (aport, partner) and returns its result.
func (w *world) wait(c Caller, d *fakeDomain, timeoutUs uint64, rs ...Addr) int64 {
	return w.a.Op(c, OpWait, d.put(ringsBytes(rs...)), 0, uint64(len(rs)), timeoutUs)
}

func TestWaitErrors(t *testing.T) {
	w := newWorld(t)
	d := w.add(1, permissive)
	w.add(2, permissive)
	w.mustRegister(d, 256, 1, 2)
	good := d.put(ringsBytes(Addr{Port: 1, Domain: 2}))
	expect(t, "timeout > 32 bits", w.a.Op(d, OpWait, good, 0, 1, 1<<32), -EINVAL)
	expect(t, "disabled", w.a.Op(w.add(3, Policy{}), OpWait, good, 0, 1, 0), -EOPNOTSUPP)
	expect(t, "arg2", w.a.Op(d, OpWait, good, 1, 1, 0), -EINVAL)
	expect(t, "no rings", w.a.Op(d, OpWait, good, 0, 0, 0), -EINVAL)
	expect(t, "too many rings", w.a.Op(d, OpWait, bad, 0, MaxWaitRings+1, 0), -EINVAL)
	expect(t, "unreadable", w.a.Op(d, OpWait, bad, 0, 1, 0), -EFAULT)
	expect(t, "pad", w.wait(d, d, 0, Addr{Port: 1, Domain: 2, Pad: 1}), -EINVAL)
	expect(t, "not registered", w.wait(d, d, 0, Addr{Port: 1, Domain: 2}, Addr{Port: 2, Domain: 2}), -ENOENT)
	expect(t, "empty, timeout 0", w.wait(d, d, 0, Addr{Port: 1, Domain: 2}), -ETIMEDOUT)
	dead := w.add(4, permissive)
	w.a.Teardown(4)
	expect(t, "no Argo state", w.wait(dead, dead, 0, Addr{Port: 1, Domain: 2}), -ENODEV)
	st, _ := w.a.Stats(1)
	if st.Waits != 1 || st.WaitsBlocked != 0 {
		t.Errorf("stats %+v", st)
	}
	if by := st.ErrorsByErrno; by.Total() != st.Errors || by[ENOENT] != 1 || by[EINVAL] != 4 {
		t.Errorf("errors %d split as %v, want them all split by errno", st.Errors, by)
	}
}

func TestWaitReturnsFirstRingWithData(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	w.mustRegister(d, 256, 1, 1)
	r2 := w.mustRegister(d, 256, 2, DomainAny)
	w.mustRegister(d, 256, 3, 1)
	rings := []Addr{{Port: 1, Domain: 1}, {Port: 2, Domain: DomainAny}, {Port: 3, Domain: 1}}
	w.send(s, Addr{Port: 3, Domain: 2}, 0, 0, []byte("c"))
	expect(t, "ring 3", w.wait(d, d, 0, rings...), 2)
	w.send(s, Addr{Port: 2, Domain: 2}, 0, 0, []byte("b"))
	expect(t, "rings 2 and 3", w.wait(d, d, WaitForever, rings...), 1)
	r2.recv(t)
	expect(t, "ring 3 again", w.wait(d, d, 0, rings...), 2)
	// garbage rx_ptr: sanitised like the VMM's own reads (0 here, not tx)
	r2.setRx(0xFFFFFFF0)
	expect(t, "garbage rx_ptr", w.wait(d, d, 0, rings[1]), 0)
}

// A waiter sleeps with no Argo lock held: while it sleeps, another domain
// is torn down (W(L1)) and the waiter's own domain registers a ring
// (W(rings_L2)); then a send wakes it.
func TestWaitSleepsWithoutLocks(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	w.add(3, permissive)
	w.mustRegister(d, 256, 1, 1)
	b := newBlocker(d)
	done := make(chan int64, 1)
	go func() { done <- w.wait(b, d, WaitForever, Addr{Port: 1, Domain: 1}) }()
	<-b.blocked
	w.a.Teardown(3)
	w.mustRegister(d, 256, 7, 1)
	select {
	case ret := <-done:
		t.Fatalf("wait returned %d before any data", ret)
	default:
	}
	expect(t, "send", w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, []byte("wake")), 4)
	expect(t, "wait", <-done, 0)
	st, _ := w.a.Stats(2)
	if st.WaitsBlocked != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestWaitTimeoutAndInterrupt(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	w.mustRegister(d, 256, 1, 1)
	ring := Addr{Port: 1, Domain: 1}
	b := newBlocker(d)
	expect(t, "timeout", w.wait(b, d, 1000, ring), -ETIMEDOUT)
	expect(t, "timeout without a Blocker", w.wait(d, d, 1000, ring), -ETIMEDOUT)
	b.cancel <- struct{}{}
	expect(t, "interrupted", w.wait(b, d, WaitForever, ring), -EINTR)
	// Data that is there when the wait is interrupted wins.
	w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, []byte("x"))
	b.cancel <- struct{}{}
	expect(t, "interrupted with data", w.wait(b, d, WaitForever, ring), 0)
	<-b.cancel
	st, _ := w.a.Stats(2)
	expect(t, "timeouts and interrupts are not errors", int64(st.Errors), 0)
}

// A ring removed while its owner waits on it (here: its partner died)
// ends the wait with -ENOENT instead of a sleep that nothing can end.
func TestWaitRingRemoved(t *testing.T) {
	w := newWorld(t)
	w.add(1, permissive)
	d := w.add(2, permissive)
	w.mustRegister(d, 256, 1, 1)
	b := newBlocker(d)
	done := make(chan int64, 1)
	go func() { done <- w.wait(b, d, WaitForever, Addr{Port: 1, Domain: 1}) }()
	<-b.blocked
	w.a.Teardown(1)
	expect(t, "wait", <-done, -ENOENT)
}

// holdingBlocker is a fake vCPU whose wake-up is held: once woken it
// reports on woken and goes back to its wait only when release is ready,
// so a test can act between a wake-up and the look that follows it.
type holdingBlocker struct {
	*fakeDomain
	blocked, woken, release chan struct{}
}

func (b holdingBlocker) Block(wake <-chan struct{}, timeout time.Duration) BlockResult {
	b.blocked <- struct{}{}
	<-wake
	b.woken <- struct{}{}
	<-b.release
	return hcall.Woken
}

// The end of a request/reply exchange (issue 15): the replier sends its
// last reply and dies before the requester's wait, woken by the reply,
// has looked at its ring — and the death removes that ring (the
// requester's unicast ring for the dead partner). The reply was
// delivered before the removal and is in the requester's memory: the
// wait reports it, through OpWait and OpSendWait alike, and only the next
// wait gets -ENOENT.
func TestWaitReportsReplyOfDeadPartner(t *testing.T) {
	for _, op := range []string{"wait", "send_wait"} {
		t.Run(op, func(t *testing.T) {
			w := newWorld(t)
			s, d := w.add(1, permissive), w.add(2, permissive)
			r := w.mustRegister(d, 256, 1, 1)
			w.mustRegister(s, 256, 1, 2)
			b := holdingBlocker{d, make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})}
			mine := Addr{Port: 1, Domain: 1}
			done := make(chan int64, 1)
			go func() {
				if op == "wait" {
					done <- w.wait(b, d, WaitForever, mine)
					return
				}
				one := d.put(iovBytes(iov{addr: d.put([]byte("request")), len: 7}))
				ret, res := w.sendWait(b, d, sendEnt{src: Addr{Port: 1, Domain: DomainAny}, dst: Addr{Port: 1, Domain: 1}, iovAddr: one, niov: 1}, WaitForever, mine)
				if res != 7 {
					t.Errorf("request: %d", res)
				}
				done <- ret
			}()
			<-b.blocked
			expect(t, "reply", w.send(s, Addr{Port: 1, Domain: 2}, 1, 0, []byte("reply")), 5)
			<-b.woken
			w.a.Teardown(1) // the replier exits before the requester looks
			close(b.release)
			expect(t, "wait after the replier died", <-done, 0)
			if m := r.recv(t); string(m.Data) != "reply" {
				t.Fatalf("ring holds %q, want the reply", m.Data)
			}
			expect(t, "next wait", w.wait(d, d, WaitForever, mine), -ENOENT)
		})
	}
}

// A ring removed while waited on, with its messages all read, still
// ends the wait with -ENOENT.
func TestWaitRingRemovedAfterRead(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	r := w.mustRegister(d, 256, 1, 1)
	w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, []byte("read"))
	r.recv(t)
	b := newBlocker(d)
	done := make(chan int64, 1)
	go func() { done <- w.wait(b, d, WaitForever, Addr{Port: 1, Domain: 1}) }()
	<-b.blocked
	w.a.Teardown(1)
	expect(t, "wait", <-done, -ENOENT)
}

// A reader that drains and then waits needs no notify: the wait wakes
// the senders whose requests now fit on the rings it names.
func TestWaitWakesSpaceWaiters(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	r := w.mustRegister(d, 256, 1, 1)
	for w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, 64)) > 0 {
	}
	r.recv(t)
	w.sig.Reset()
	expect(t, "wait", w.wait(d, d, 0, Addr{Port: 1, Domain: 1}), 0)
	expect(t, "sender woken", int64(w.sig.Count(1)), 1)
}

// sendWait runs OpSendWait; it returns the call's result and the entry's.
func (w *world) sendWait(c Caller, d *fakeDomain, e sendEnt, timeoutUs uint64, rs ...Addr) (int64, int64) {
	ea := d.put(sendEntBytes([]sendEnt{e}))
	ret := w.a.Op(c, OpSendWait, ea, d.put(ringsBytes(rs...)), uint64(len(rs)), timeoutUs)
	return ret, int64(le.Uint64(d.ram[ea+sendEntResult:]))
}

func TestSendWaitErrors(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	r := w.mustRegister(d, 256, 1, 1)
	w.mustRegister(s, 256, 1, 2)
	one := s.put(iovBytes(iov{addr: s.put([]byte("hello")), len: 5}))
	e := sendEnt{src: Addr{Domain: DomainAny}, dst: Addr{Port: 1, Domain: 2}, iovAddr: one, niov: 1}
	mine := Addr{Port: 1, Domain: 2}
	rings := s.put(ringsBytes(mine))
	expect(t, "entry unreadable", w.a.Op(s, OpSendWait, bad, rings, 1, 0), -EFAULT)
	ea := s.put(sendEntBytes([]sendEnt{e}))
	ro := readOnlyAt{s, ea + sendEntResult, ea + sizeofSendEnt}
	expect(t, "result unwritable", w.a.Op(ro, OpSendWait, ea, rings, 1, 0), -EFAULT)
	expect(t, "no rings", w.a.Op(s, OpSendWait, ea, rings, 0, 0), -EINVAL)
	expect(t, "rings unreadable", w.a.Op(s, OpSendWait, ea, bad, 1, 0), -EFAULT)
	ret, res := w.sendWait(s, s, e, 0, Addr{Port: 9, Domain: 2})
	expect(t, "ring not registered", ret, -ENOENT)
	expect(t, "... entry not sent", res, -ECANCELED)
	if _, err := r.tryRecv(); err != Errno(EAGAIN) {
		t.Fatal("a send_wait that failed its checks sent")
	}
	bade := e
	bade.dst.Port = 5
	ret, res = w.sendWait(s, s, bade, 0, mine)
	expect(t, "send fails", ret, -ECONNREFUSED)
	expect(t, "... entry", res, -ECONNREFUSED)
	ret, res = w.sendWait(s, s, e, 0, mine)
	expect(t, "sent, nothing back", ret, -ETIMEDOUT)
	expect(t, "... entry", res, 5)
	if m := r.recv(t); string(m.Data) != "hello" {
		t.Fatal(m)
	}
}

// TestSendWaitPingPong runs thousands of round trips between two
// goroutine "vCPUs" that use nothing but send_wait on polling rings: one
// operation per message, no VIRQ at all, nothing lost, corrupted or
// reordered. A lost wake-up shows as a wait that only its timeout ends.
func TestSendWaitPingPong(t *testing.T) {
	w := newWorld(t)
	p, q := w.add(1, permissive), w.add(2, permissive)
	rp := w.mustRegisterExt(p, 1024, 1, 2)
	rq := w.mustRegisterExt(q, 1024, 1, 1)
	rp.setFlags(RxFlagPolling)
	rq.setFlags(RxFlagPolling)
	const n = 5000
	const stall = 60 * 1000 * 1000 // µs
	side := func(d *fakeDomain, r ringAt, peer DomainID, first bool, errs chan<- error) {
		b := newBlocker(d)
		buf := d.put(make([]byte, 8))
		iv := d.put(iovBytes(iov{addr: buf, len: 8}))
		ea := d.put(sendEntBytes([]sendEnt{{src: Addr{Port: 1, Domain: DomainAny}, dst: Addr{Port: 1, Domain: peer}, iovAddr: iv, niov: 1}}))
		rings := d.put(ringsBytes(Addr{Port: 1, Domain: peer}))
		for i := 0; i < n; i++ {
			var ret int64
			if first || i > 0 {
				seq := uint64(i)
				if !first {
					seq = uint64(i - 1) // pong echoes what it got
				}
				binary.LittleEndian.PutUint64(d.ram[buf:], seq)
				ret = w.a.Op(b, OpSendWait, ea, rings, 1, stall)
				if res := int64(le.Uint64(d.ram[ea+sendEntResult:])); res != 8 {
					errs <- fmt.Errorf("domain %d: send %d: %d", d.id, i, res)
					return
				}
			} else {
				ret = w.a.Op(b, OpWait, rings, 0, 1, stall)
			}
			if ret != 0 {
				errs <- fmt.Errorf("domain %d: wait %d: %d", d.id, i, ret)
				return
			}
			m, err := r.tryRecv()
			want := uint64(i)
			if err != nil || binary.LittleEndian.Uint64(m.Data) != want {
				errs <- fmt.Errorf("domain %d: message %d: %v %v", d.id, i, m, err)
				return
			}
		}
		if !first { // the last echo
			binary.LittleEndian.PutUint64(d.ram[buf:], n-1)
			if ret := w.a.Op(b, OpSendvBatch, ea, 0, 1, 0); ret != 1 {
				errs <- fmt.Errorf("last echo: %d", ret)
				return
			}
		}
		errs <- nil
	}
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); side(p, rp, 2, true, errs) }()
	go func() { defer wg.Done(); side(q, rq, 1, false, errs) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if w.sig.Count(1)+w.sig.Count(2) != 0 {
		t.Errorf("VIRQs raised: %v", w.sig.Snapshot())
	}
	for _, id := range []DomainID{1, 2} {
		st, _ := w.a.Stats(id)
		if st.MsgsOut != n || st.Suppressed != n || st.Errors != 0 {
			t.Errorf("domain %d: %+v", id, st)
		}
	}
}

func TestWaitqWakeWithoutWaitersIsFree(t *testing.T) {
	q := newWaitq()
	if n := testing.AllocsPerRun(100, q.wake); n != 0 {
		t.Errorf("wake with no waiter allocates %v times", n)
	}
	ch := q.arm()
	q.wake()
	select {
	case <-ch:
	default:
		t.Fatal("an armed waiter was not woken")
	}
	q.disarm()
}
