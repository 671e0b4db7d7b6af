package argo

import (
	"encoding/binary"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Batched sends that wait in the VMM for space (BatchWaitSpace).

// waitBatch is a batch prepared in a fake domain's memory before any
// goroutine runs (fake memory allocation is not concurrent).
type waitBatch struct {
	d    *fakeDomain
	ents uint64
	n    int
}

// seqEnts lays out n messages of size bytes to dst, the first 8 bytes of
// message i holding first+i.
func seqEnts(d *fakeDomain, dst Addr, n, size int, first uint64) waitBatch {
	ents := make([]sendEnt, n)
	for i := range ents {
		b := make([]byte, size)
		binary.LittleEndian.PutUint64(b, first+uint64(i))
		for j := 8; j < size; j++ {
			b[j] = byte((first+uint64(i))*7 + uint64(j))
		}
		one := d.put(iovBytes(iov{addr: d.put(b), len: uint32(size)}))
		ents[i] = sendEnt{src: Addr{Port: 3, Domain: DomainAny}, dst: dst, iovAddr: one, niov: 1, msgType: 9}
	}
	return waitBatch{d: d, ents: d.put(sendEntBytes(ents)), n: n}
}

// run sends the batch through caller c with BatchWaitSpace (and extra
// flags) and returns the call's result and each entry's.
func (w *world) runWait(c Caller, b waitBatch, timeoutUs, flags uint64) (int64, []int64) {
	ret := w.a.Op(c, OpSendvBatch, b.ents, timeoutUs, uint64(b.n), BatchWaitSpace|flags)
	return ret, b.results()
}

func (b waitBatch) results() []int64 {
	res := make([]int64, b.n)
	for i := range res {
		res[i] = int64(le.Uint64(b.d.ram[b.ents+uint64(i)*sizeofSendEnt+sendEntResult:]))
	}
	return res
}

// checkSeq checks that m is message seq of seqEnts.
func checkSeq(t *testing.T, m Message, seq uint64, size int) {
	t.Helper()
	if len(m.Data) != size || binary.LittleEndian.Uint64(m.Data) != seq || m.Type != 9 {
		t.Fatalf("message %d: %d bytes, seq %d, type %d", seq, len(m.Data), binary.LittleEndian.Uint64(m.Data), m.Type)
	}
	for j := 8; j < size; j++ {
		if want := byte(seq*7 + uint64(j)); m.Data[j] != want {
			t.Fatalf("message %d byte %d", seq, j)
		}
	}
}

// A batch larger than the ring fills it, raises the receiver's VIRQ,
// announces itself in tx_wanted and sleeps holding no lock; the
// receiver's drain and its one notify (which tx_wanted asks for) wake it,
// without a VIRQ to the sender, and it goes on where it stopped. Nothing
// is lost or reordered, and the wait is neither an -EAGAIN nor an error.
func TestBatchWaitSpaceContinues(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	w.add(3, permissive)
	r := w.mustRegisterExt(d, 256, 1, 1) // three 48-byte messages (64-byte slots)
	const size, n = 48, 10
	b := seqEnts(s, Addr{Port: 1, Domain: 2}, n, size, 100)
	bl := newBlocker(s)
	type result struct {
		ret int64
		res []int64
	}
	done := make(chan result, 1)
	go func() {
		ret, res := w.runWait(bl, b, WaitForever, 0)
		done <- result{ret, res}
	}()
	<-bl.blocked
	expect(t, "VIRQ raised before the sleep", int64(w.sig.Count(2)), 1)
	expect(t, "tx_wanted", int64(r.wanted()), 64)
	// The sleep holds no lock: W(L1) and W(rings_L2) are free.
	w.a.Teardown(3)
	w.mustRegister(d, 256, 7, 1)
	select {
	case x := <-done:
		t.Fatalf("batch returned %d while the ring was full", x.ret)
	default:
	}
	var got uint64
	notifies := 0
	var x result
	for finished := false; !finished; {
		for {
			m, err := r.tryRecv()
			if err != nil {
				break
			}
			checkSeq(t, m, 100+got, size)
			got++
		}
		select {
		case x = <-done:
			finished = true
			continue
		default:
		}
		if want := r.wanted(); want != 0 && want < freeBytes(r.rx(), r.tx(), r.length) {
			notifies++
			w.notify(d, nil)
		}
		runtime.Gosched()
	}
	for {
		m, err := r.tryRecv()
		if err != nil {
			break
		}
		checkSeq(t, m, 100+got, size)
		got++
	}
	expect(t, "batch", x.ret, n)
	for _, res := range x.res {
		expect(t, "entry", res, size)
	}
	expect(t, "messages", int64(got), n)
	if notifies == 0 {
		t.Error("the batch finished without the reader's notify")
	}
	expect(t, "VIRQs to the sender", int64(w.sig.Count(1)), 0)
	expect(t, "tx_wanted after", int64(r.wanted()), 0)
	st, _ := w.a.Stats(1)
	if st.SpaceWaits != 1 || st.EAGAINs != 0 || st.Errors != 0 || st.MsgsOut != n {
		t.Errorf("sender stats %+v", st)
	}
}

// The VIRQs of every destination served so far are raised before the
// batch sleeps on a full ring, so a reader that has to drain that ring
// hears of it, and so does every other.
func TestBatchWaitSpaceRaisesBeforeSleeping(t *testing.T) {
	w := newWorld(t)
	s, d, e := w.add(1, permissive), w.add(2, permissive), w.add(3, permissive)
	rd := w.mustRegister(d, 256, 1, 1)
	w.mustRegister(e, 256, 1, 1)
	first := seqEnts(s, Addr{Port: 1, Domain: 3}, 1, 16, 0)
	rest := seqEnts(s, Addr{Port: 1, Domain: 2}, 4, 48, 1)
	// One array: the message to domain 3, then four to domain 2.
	all := append(append([]byte(nil), s.ram[first.ents:first.ents+sizeofSendEnt]...), s.ram[rest.ents:rest.ents+4*sizeofSendEnt]...)
	b := waitBatch{d: s, ents: s.put(all), n: 5}
	bl := newBlocker(s)
	done := make(chan int64, 1)
	go func() {
		ret, _ := w.runWait(bl, b, WaitForever, 0)
		done <- ret
	}()
	<-bl.blocked
	expect(t, "VIRQ to domain 3 before the sleep", int64(w.sig.Count(3)), 1)
	expect(t, "VIRQ to domain 2 before the sleep", int64(w.sig.Count(2)), 1)
	// A Xen reader (no extended header) notifies after each drain.
	for i := 0; i < 4; {
		if m, err := rd.tryRecv(); err == nil {
			checkSeq(t, m, uint64(1+i), 48)
			i++
			w.notify(d, nil)
			continue
		}
		runtime.Gosched()
	}
	expect(t, "batch", <-done, 5)
	// The last message's VIRQ: raised after the batch, as always.
	if c := w.sig.Count(2); c < 2 {
		t.Errorf("domain 2 got %d VIRQs, want the one before the sleep and one after", c)
	}
}

// An interrupt (or kick) of the sleeping vCPU ends the batch: the entry
// it waited for gets -EINTR, later ones -ECANCELED even with
// BatchContinue, and the call returns the messages sent.
func TestBatchWaitSpaceInterrupted(t *testing.T) {
	for _, flags := range []uint64{0, BatchContinue} {
		w := newWorld(t)
		s, d := w.add(1, permissive), w.add(2, permissive)
		r := w.mustRegisterExt(d, 256, 1, 1)
		b := seqEnts(s, Addr{Port: 1, Domain: 2}, 5, 48, 0)
		bl := newBlocker(s)
		done := make(chan int64, 1)
		go func() {
			ret, _ := w.runWait(bl, b, WaitForever, flags)
			done <- ret
		}()
		<-bl.blocked
		bl.cancel <- struct{}{}
		expect(t, "batch", <-done, 3)
		want := []int64{48, 48, 48, -EINTR, -ECANCELED}
		for i, res := range b.results() {
			expect(t, "entry", res, want[i])
		}
		st, _ := w.a.Stats(1)
		if st.Errors != 0 || st.EAGAINs != 0 || st.SpaceWaits != 1 {
			t.Errorf("stats %+v", st)
		}
		// An interrupt already pending when the batch would sleep wins
		// at once: the fake reports it on its first Block.
		for range 3 {
			r.recv(t)
		}
		w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, 48))
		w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, 48))
		w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, make([]byte, 48))
		bl.cancel <- struct{}{}
		ret, res := w.runWait(bl, b, WaitForever, flags)
		expect(t, "batch into a full ring, interrupted", ret, 0)
		expect(t, "entry 0", res[0], -EINTR)
	}
}

// When the timeout passes, the waiting entry is tried once more as
// without the flag: -EAGAIN with a space request whose VIRQ comes when it
// fits. Timeout 0 is the batch without the flag.
func TestBatchWaitSpaceTimeout(t *testing.T) {
	for _, c := range []struct {
		name      string
		timeoutUs uint64
		blocker   bool
	}{{"0", 0, true}, {"2ms", 2000, true}, {"2ms without a Blocker", 2000, false}} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			s, d := w.add(1, permissive), w.add(2, permissive)
			r := w.mustRegisterExt(d, 256, 1, 1)
			b := seqEnts(s, Addr{Port: 1, Domain: 2}, 5, 48, 0)
			var caller Caller = s
			if c.blocker {
				caller = newBlocker(s)
			}
			start := time.Now()
			ret, res := w.runWait(caller, b, c.timeoutUs, 0)
			if el := time.Since(start); el < time.Duration(c.timeoutUs)*time.Microsecond {
				t.Errorf("returned after %v", el)
			}
			expect(t, "batch", ret, 3)
			want := []int64{48, 48, 48, -EAGAIN, -ECANCELED}
			for i := range res {
				expect(t, "entry", res[i], want[i])
			}
			st, _ := w.a.Stats(1)
			if st.EAGAINs != 1 || st.Errors != 1 {
				t.Errorf("stats %+v", st)
			}
			if c.timeoutUs == 0 && st.SpaceWaits != 0 {
				t.Errorf("timeout 0 slept: %+v", st)
			}
			// The -EAGAIN's space request: the drain's notify raises the
			// sender's VIRQ, as for sendv.
			for range 3 {
				r.recv(t)
			}
			w.notify(d, nil)
			expect(t, "sender's VIRQ", int64(w.sig.Count(1)), 1)
		})
	}
}

// A ring that goes away while a batch sleeps on it wakes the batch: the
// entry gets what sendv gets then.
func TestBatchWaitSpaceRingRemoved(t *testing.T) {
	for _, how := range []string{"unregister", "receiver dies", "receiver removed", "wildcard ring unregistered"} {
		t.Run(how, func(t *testing.T) {
			w := newWorld(t)
			s, d := w.add(1, permissive), w.add(2, permissive)
			partner := DomainID(1)
			if how == "wildcard ring unregistered" {
				partner = DomainAny
			}
			w.mustRegisterExt(d, 256, 1, partner)
			b := seqEnts(s, Addr{Port: 1, Domain: 2}, 5, 48, 0)
			bl := newBlocker(s)
			done := make(chan int64, 1)
			go func() {
				ret, _ := w.runWait(bl, b, WaitForever, 0)
				done <- ret
			}()
			<-bl.blocked
			want := int64(-ECONNREFUSED)
			switch how {
			case "unregister", "wildcard ring unregistered":
				expect(t, "unregister", w.a.Op(d, OpUnregisterRing, d.put(unregBytes(1, partner)), 0, 0, 0), 0)
			case "receiver dies":
				w.a.Teardown(2)
			case "receiver removed":
				w.a.RemoveDomain(2)
				want = -ESRCH
			}
			select {
			case ret := <-done:
				expect(t, "batch", ret, 3)
			case <-time.After(time.Minute):
				t.Fatal("the batch still sleeps on a ring that is gone")
			}
			expect(t, "entry 3", b.results()[3], want)
			expect(t, "entry 4", b.results()[4], -ECANCELED)
		})
	}
}

func TestBatchWaitSpaceCallErrors(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	r := w.mustRegisterExt(d, 256, 1, 1)
	b := seqEnts(s, Addr{Port: 1, Domain: 2}, 2, 8, 0)
	op := func(c Caller, ents, timeout, n, flags uint64) int64 {
		return w.a.Op(c, OpSendvBatch, ents, timeout, n, flags)
	}
	expect(t, "timeout > 32 bits", op(s, b.ents, 1<<32, 2, BatchWaitSpace), -EINVAL)
	expect(t, "unknown flag", op(s, b.ents, 0, 2, BatchWaitSpace|4), -EINVAL)
	expect(t, "too many", op(s, bad, 0, MaxBatch+1, BatchWaitSpace), -EINVAL)
	expect(t, "none", op(s, bad, WaitForever, 0, BatchWaitSpace), 0)
	expect(t, "array unreadable", op(s, bad, WaitForever, 1, BatchWaitSpace), -EFAULT)
	ro := readOnlyAt{s, b.ents + sizeofSendEnt + sendEntResult, b.ents + 2*sizeofSendEnt}
	expect(t, "second result unwritable", op(ro, b.ents, WaitForever, 2, BatchWaitSpace), -EFAULT)
	if _, err := r.tryRecv(); err != Errno(EAGAIN) || w.sig.Count(2) != 0 {
		t.Fatal("a batch that failed up front sent something")
	}
	off := w.add(3, Policy{})
	expect(t, "disabled domain", op(off, b.ents, WaitForever, 2, BatchWaitSpace), -EOPNOTSUPP)
	expect(t, "good", op(s, b.ents, WaitForever, 2, BatchWaitSpace), 2)
	st, _ := w.a.Stats(1)
	if by := st.ErrorsByErrno; by.Total() != st.Errors || by[EINVAL] != 3 || by[EFAULT] != 2 {
		t.Errorf("errors %d split as %v", st.Errors, by)
	}
}

// A notify query by another vCPU of the sleeping batch's domain that
// finds the space there ends the request the two shared: it must wake
// the batch, or the batch sleeps on a request nobody holds any more.
func TestBatchWaitSpaceSharedRequest(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	r := w.mustRegisterExt(d, 256, 1, 1)
	b := seqEnts(s, Addr{Port: 1, Domain: 2}, 4, 48, 0)
	bl := newBlocker(s)
	done := make(chan int64, 1)
	go func() {
		ret, _ := w.runWait(bl, b, WaitForever, 0)
		done <- ret
	}()
	<-bl.blocked
	r.recv(t) // space, but the reader does not notify
	ents := []notifyEnt{{ring: Addr{Port: 1, Domain: 2}, need: 48}}
	w.notify(s, ents) // "the other vCPU": finds the space sufficient
	if ents[0].flags&RingSufficient == 0 {
		t.Fatalf("query flags %#x", ents[0].flags)
	}
	select {
	case ret := <-done:
		expect(t, "batch", ret, 4)
	case <-time.After(time.Minute):
		t.Fatal("the batch was not woken")
	}
}

// TestBatchWaitSpaceHunt streams thousands of messages from goroutine
// senders that only ever wait in the VMM (random batch sizes) to a reader
// that notifies only when tx_wanted asks and sleeps on its VIRQ with a
// random event index. Nothing may be lost, reordered or stuck: a batch
// whose wait is not ended by a wake-up times out (-EAGAIN) and fails the
// test, as does a reader's sleep that never ends.
func TestBatchWaitSpaceHunt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		senders int
		size    int
		length  uint32
		count   int
	}{
		{"1sender/64B", 1, 64, 1024, 6000},
		{"1sender/200B", 1, 200, 512, 4000},
		{"2senders/48B", 2, 48, 512, 4000},
	} {
		t.Run(tc.name, func(t *testing.T) { batchWaitHunt(t, tc.senders, tc.size, tc.length, tc.count) })
	}
}

func batchWaitHunt(t *testing.T, senders, size int, length uint32, count int) {
	const rxID = 1
	rxVIRQ := make(chan struct{}, 1)
	var senderVIRQs atomic.Int64
	a := New(func(id DomainID) {
		if id != rxID {
			senderVIRQs.Add(1)
			return
		}
		select {
		case rxVIRQ <- struct{}{}:
		default:
		}
	})
	w := &world{t: t, a: a, sig: &sigRecorder{}, dom: map[DomainID]*fakeDomain{}}
	d := w.add(rxID, permissive)
	r := w.mustRegisterExt(d, length, 1, DomainAny)
	slot := uint32(roundup16(uint64(size))) + MsgHeaderSize
	capacity := (length - 1) / slot
	const stallUs = 60 * 1000 * 1000
	type sender struct {
		b  blocker
		wb waitBatch
	}
	ss := make([]sender, senders)
	for i := range ss {
		s := w.add(DomainID(2+i), permissive)
		// MaxBatch entries, each with its own buffer; a batch of k
		// sends the first k, with the sequence numbers written anew.
		ss[i] = sender{newBlocker(s), seqEnts(s, Addr{Port: 1, Domain: rxID}, MaxBatch, size, 0)}
	}
	var failed atomic.Bool
	var wg sync.WaitGroup
	for i := range ss {
		sd := ss[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := sd.wb.d
			rng := rand.New(rand.NewSource(int64(s.id)))
			for seq := 0; seq < count && !failed.Load(); {
				k := min(1+rng.Intn(MaxBatch), count-seq)
				for j := range k {
					e := s.ram[sd.wb.ents+uint64(j)*sizeofSendEnt:]
					iovAddr := le.Uint64(e[16:])
					buf := le.Uint64(s.ram[iovAddr:])
					binary.LittleEndian.PutUint64(s.ram[buf:], uint64(seq+j))
				}
				ret := w.a.Op(sd.b, OpSendvBatch, sd.wb.ents, stallUs, uint64(k), BatchWaitSpace)
				if ret != int64(k) {
					t.Errorf("sender %d: batch of %d at %d: %d, results %v", s.id, k, seq, ret, sd.wb.results()[:k])
					failed.Store(true)
					return
				}
				seq += k
			}
		}()
	}
	rng := rand.New(rand.NewSource(int64(size)))
	m := r.pages()
	next := map[DomainID]uint64{}
	total := senders * count
	for got := 0; got < total && !failed.Load(); {
		for {
			msg, err := r.tryRecv()
			if err != nil {
				break
			}
			if len(msg.Data) != size || binary.LittleEndian.Uint64(msg.Data) != next[msg.Source.Domain] {
				t.Fatalf("from %d: message %d: %d bytes, seq %d", msg.Source.Domain, next[msg.Source.Domain], len(msg.Data), binary.LittleEndian.Uint64(msg.Data))
			}
			next[msg.Source.Domain]++
			got++
		}
		if want := m.load32(hdrTxWanted); want != 0 && want < freeBytes(m.rxPtr(), m.txPtr(), length) {
			w.notify(d, nil)
		}
		if got == total {
			break
		}
		rx := m.rxPtr()
		left := uint32(total - got)
		j := uint32(rng.Intn(int(min(capacity, left))))
		m.store32(hdrRxEvent, (rx+j*slot)%length)
		m.store32(hdrRxFlags, RxFlagEvent)
		if avail := (m.txPtr() + length - rx) % length; avail > j*slot {
			continue
		}
		select {
		case <-rxVIRQ:
		case <-time.After(time.Minute):
			t.Error("the reader slept for a minute: lost wake-up")
			failed.Store(true)
		}
	}
	wg.Wait()
	for i := range ss {
		if id := DomainID(2 + i); next[id] != uint64(count) && !failed.Load() {
			t.Errorf("sender %d: %d messages arrived, want %d", id, next[id], count)
		}
	}
	if n := senderVIRQs.Load(); n != 0 {
		t.Errorf("senders got %d VIRQs; waits for space need none", n)
	}
}

// The reader drains and notifies after the batch's entry found the ring
// full (its request queued and announced) and before the batch armed its
// wait queue: the notify wakes nobody, so the batch must see the space
// in the look it takes after arming, or it sleeps until its timeout.
// +checklocksignore: the hook runs under the batch's R(L1).
func TestBatchWaitSpaceArmThenLook(t *testing.T) {
	w := newWorld(t)
	s, d := w.add(1, permissive), w.add(2, permissive)
	r := w.mustRegisterExt(d, 256, 1, 1)
	b := seqEnts(s, Addr{Port: 1, Domain: 2}, 4, 48, 0)
	st := w.stateOf(2)
	drained := 0
	w.a.spaceHook = func() {
		for {
			if _, err := r.tryRecv(); err != nil {
				break
			}
			drained++
		}
		if r.wanted() == 0 {
			t.Error("the waiting entry is not announced in tx_wanted")
		}
		var sig signals
		w.a.wakeWaitersOn(st, &sig) // the reader's notify
		w.a.raise(&sig)
	}
	start := time.Now()
	ret, res := w.runWait(newBlocker(s), b, 10*1000*1000, 0)
	w.a.spaceHook = nil
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("the batch slept %v on space that was there: lost wake-up", el)
	}
	if st, _ := w.a.Stats(1); st.SpaceWaits != 0 {
		t.Errorf("the batch slept: %+v", st)
	}
	expect(t, "batch", ret, 4)
	expect(t, "entry 3", res[3], 48)
	expect(t, "drained in the window", int64(drained), 3)
}
