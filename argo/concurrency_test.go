package argo

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentTraffic runs senders, a reader, a register/unregister
// storm and a teardown at once (run it with -race). Every message a sender
// got a success for arrives once, in order, intact.
func TestConcurrentTraffic(t *testing.T) {
	w := newWorld(t)
	const senders = 4
	const perSender = 3000
	recv := w.add(50, permissive)
	ring := w.mustRegister(recv, 8192-64, 1, DomainAny)
	var ss []*fakeDomain
	for i := 1; i <= senders; i++ {
		ss = append(ss, w.add(DomainID(i), permissive))
	}
	storm := w.add(60, permissive)
	victim := w.add(70, permissive) // torn down mid-traffic
	victimRing := w.mustRegister(victim, 1024, 1, DomainAny)
	_ = victimRing

	var wg sync.WaitGroup
	stop := make(chan struct{})
	// Storm: register and unregister own rings as fast as possible.
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Lay out the rings once; the loop only issues hypercalls.
		var rs []ringAt
		for p := uint32(0); p < 8; p++ {
			rs = append(rs, storm.layRing(64, false))
		}
		un := make([]uint64, len(rs))
		for p := range rs {
			un[p] = storm.put(unregBytes(uint32(p), 50))
		}
		regs := make([]uint64, len(rs))
		for p := range rs {
			regs[p] = storm.put(regBytes(uint32(p), 50, 0, 64))
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			for p := range rs {
				w.a.Op(storm, OpRegisterRing, regs[p], rs[p].gfns, rs[p].npages, 0)
			}
			for p := range rs {
				w.a.Op(storm, OpUnregisterRing, un[p], 0, 0, 0)
			}
		}
	}()
	// Senders: sequence-numbered messages, retrying on EAGAIN.
	var sent [senders]atomic.Int64
	for i, s := range ss {
		wg.Add(1)
		go func(i int, s *fakeDomain) {
			defer wg.Done()
			buf := make([]byte, 64)
			bufAddr := s.put(buf)
			addr := s.put(sendAddrBytes(Addr{Port: uint32(i), Domain: DomainAny}, Addr{Port: 1, Domain: 50}))
			iovAddr := s.put(iovBytes(iov{addr: bufAddr, len: 0}))
			victimAddr := s.put(sendAddrBytes(Addr{Domain: DomainAny}, Addr{Port: 1, Domain: 70}))
			for seq := 0; seq < perSender; {
				n := 8 + seq%56
				binary.LittleEndian.PutUint32(s.ram[bufAddr:], uint32(seq))
				for j := 4; j < n; j++ {
					s.ram[bufAddr+uint64(j)] = byte(seq + j)
				}
				binary.LittleEndian.PutUint32(s.ram[iovAddr+8:], uint32(n))
				ret := w.a.Op(s, OpSendv, addr, iovAddr, 1, uint64(i))
				switch ret {
				case int64(n):
					seq++
					sent[i].Add(1)
				case -EAGAIN:
					time.Sleep(10 * time.Microsecond)
				default:
					t.Errorf("sender %d: %d", i, ret)
					return
				}
				// Traffic to the domain being torn down: success or
				// ECONNREFUSED, nothing else.
				if r := w.a.Op(s, OpSendv, victimAddr, iovAddr, 1, 0); r < 0 && r != -ECONNREFUSED && r != -EAGAIN {
					t.Errorf("send to victim: %d", r)
					return
				}
			}
		}(i, s)
	}
	// Teardown of the victim while it receives traffic.
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(5 * time.Millisecond)
		w.a.Teardown(70)
	}()
	// Reader.
	next := make([]int, senders)
	total := 0
	deadline := time.Now().Add(60 * time.Second)
	for total < senders*perSender {
		m, err := ring.tryRecv()
		if err == Errno(EAGAIN) {
			w.notify(recv, nil)
			if time.Now().After(deadline) {
				t.Fatalf("stalled after %d messages", total)
			}
			time.Sleep(5 * time.Microsecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		i := int(m.Type)
		if i >= senders || m.Source != (Addr{Port: uint32(i), Domain: DomainID(i + 1)}) {
			t.Fatalf("bad source %+v type %d", m.Source, m.Type)
		}
		seq := int(binary.LittleEndian.Uint32(m.Data))
		if seq != next[i] {
			t.Fatalf("sender %d: got seq %d, want %d", i, seq, next[i])
		}
		for j := 4; j < len(m.Data); j++ {
			if m.Data[j] != byte(seq+j) {
				t.Fatalf("sender %d seq %d: corrupt byte %d", i, seq, j)
			}
		}
		if len(m.Data) != 8+seq%56 {
			t.Fatalf("sender %d seq %d: length %d", i, seq, len(m.Data))
		}
		next[i]++
		total++
		w.notify(recv, nil)
	}
	close(stop)
	wg.Wait()
	for i := range sent {
		if int(sent[i].Load()) != perSender {
			t.Errorf("sender %d sent %d", i, sent[i].Load())
		}
	}
}

// TestStormDoesNotBlockOthers checks the point of the granular locks: while
// one domain holds its own rings_L2 for writing (as during a register or
// unregister) or a ring's L3, sends to another domain's ring complete.
func TestStormDoesNotBlockOthers(t *testing.T) {
	w := newWorld(t)
	s, dst, storm := w.add(1, permissive), w.add(2, permissive), w.add(3, permissive)
	r := w.mustRegister(dst, 4096-64, 1, 1)
	w.mustRegister(storm, 64, 1, 1)
	st := w.stateOf(3)
	// Block storm's locks for the duration of the sends.
	st.ringsL2.Lock()
	done := make(chan int64, 1)
	go func() { done <- w.send(s, Addr{Port: 1, Domain: 2}, 0, 0, []byte("through")) }()
	select {
	case ret := <-done:
		if ret != 7 {
			t.Fatalf("send: %d", ret)
		}
	case <-time.After(10 * time.Second):
		st.ringsL2.Unlock()
		t.Fatal("a send to domain 2 waited for domain 3's rings_L2")
	}
	st.ringsL2.Unlock()
	if m := r.recv(t); string(m.Data) != "through" {
		t.Fatal(m)
	}
	// And a send to the storm domain itself only waits for that domain.
	st.ringsL2.Lock()
	go func() { done <- w.send(s, Addr{Port: 1, Domain: 3}, 0, 0, []byte("x")) }()
	select {
	case <-done:
		t.Error("send to a domain whose rings_L2 is write-held did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	st.ringsL2.Unlock()
	if ret := <-done; ret != 1 {
		t.Errorf("send after the storm released: %d", ret)
	}
}
