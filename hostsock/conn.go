package hostsock

import (
	"bufio"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/argo/stream"
)

// conn is one connection between a Unix socket peer and a guest.
type conn struct {
	s    *Socket
	uc   net.Conn
	rd   *bufio.Reader // uc's reader: the handshake line's leftovers stay in it
	port uint32        // the host's connection port (set before the pump sees c)

	handshake chan bool     // ACCEPT (true) or RESET (false) before the data phase
	dead      chan struct{} // closed by abort or finish
	once      sync.Once
	// drainMu makes one drainer at a time take messages out of the ring
	// and queue them, so they stay in order: the pump, or the reader
	// taking what is left after the guest closed its ring.
	drainMu sync.Mutex

	// mu guards the fields below. Lock order: after the Socket's mu,
	// before the Bridge's.
	mu   sync.Mutex
	cond sync.Cond // on mu: the writer waits for data, FIN or the end
	// +checklocks:mu
	ring *argo.HostRing
	// peerPort is the guest's connection port, 0 until known; peerRing
	// its ring's data length.
	// +checklocks:mu
	peerPort, peerRing uint32
	// q is data from the guest the writer has not written yet; qBytes
	// its length in bytes.
	// +checklocks:mu
	q [][]byte
	// +checklocks:mu
	qBytes int
	// paused is set when the pump stopped draining the ring because q
	// was full; the writer pokes the pump when it has room again.
	// +checklocks:mu
	paused bool
	// gotFin: the guest sends no more (after q). sentFin: we sent FIN.
	// wroteFin: the writer has written q out and shut down the Unix
	// side's write direction.
	// +checklocks:mu
	gotFin, sentFin, wroteFin bool
	// ended is set by abort and finish.
	// +checklocks:mu
	ended bool
	// gone is set when the guest's domain ended: the writer writes out
	// what was queued, then closes the connection.
	// +checklocks:mu
	gone bool
}

func newConn(s *Socket, uc net.Conn) *conn {
	c := &conn{s: s, handshake: make(chan bool, 1), dead: make(chan struct{})}
	c.cond.L = &c.mu
	if uc != nil {
		c.setUnix(uc)
	}
	return c
}

func (c *conn) setUnix(uc net.Conn) {
	c.mu.Lock()
	c.uc = uc
	// Small: the handshake line is read byte by byte, and the data
	// phase's reads, at least this large, bypass the buffer once the
	// bytes after the line are used up.
	c.rd = bufio.NewReaderSize(uc, lineBuf)
	c.mu.Unlock()
}

// fail ends a connection that never reached its data phase, with an
// error line to the Unix peer.
func (c *conn) fail(msg string) {
	c.once.Do(func() {
		close(c.dead)
		c.mu.Lock()
		c.ended = true
		ring, peer := c.ring, c.peerPort
		c.mu.Unlock()
		errLine(c.uc, msg)
		if peer != 0 {
			// The ACCEPT came as the time ran out: the guest's side must
			// not wait for a connection that is gone.
			c.s.b.trySend(c.s.dom, c.port, peer, stream.MsgReset, stream.Reset(stream.ReasonTimedOut))
		}
		c.cleanup(ring)
	})
}

// cleanup gives back the ring, the port and the budget slot.
func (c *conn) cleanup(ring *argo.HostRing) {
	if ring != nil {
		ring.Unregister()
	}
	c.s.b.forgetConn(c)
	c.s.release(c)
}

// abort ends the connection at once: the Unix side is closed, and with
// resetPeer the guest is sent RESET (if its ring still takes it: a guest
// that never drains gets none after the handshake timeout).
func (c *conn) abort(resetPeer bool) {
	c.once.Do(func() {
		close(c.dead)
		c.mu.Lock()
		c.ended = true
		ring, peer, uc := c.ring, c.peerPort, c.uc
		c.q, c.qBytes = nil, 0
		c.cond.Broadcast()
		c.mu.Unlock()
		c.s.stats.resets.Add(1)
		if uc != nil {
			uc.Close()
		}
		if resetPeer && peer != 0 {
			deadline := time.Now().Add(c.s.cfg.Handshake)
			c.s.b.send(c.s.dom, c.port, peer, stream.MsgReset, stream.Reset(stream.ReasonReset), deadline, nil)
		}
		c.cleanup(ring)
	})
}

// finishIfDone closes a connection both sides have half-closed.
func (c *conn) finishIfDone() {
	c.mu.Lock()
	done := c.sentFin && c.wroteFin && !c.ended
	ring := c.ring
	if done {
		c.ended = true
	}
	c.mu.Unlock()
	if !done {
		return
	}
	c.once.Do(func() {
		close(c.dead)
		c.uc.Close()
		c.cleanup(ring)
	})
}

// run is the data phase: a writer goroutine for guest→Unix, and this
// goroutine for Unix→guest.
func (c *conn) run() {
	c.s.b.pokePump() // data may have come with the ACCEPT
	go c.writer()
	c.mu.Lock()
	chunk := stream.ChunkSize(c.peerRing)
	peer := c.peerPort
	c.mu.Unlock()
	buf := make([]byte, chunk)
	for {
		n, err := c.rd.Read(buf)
		if n > 0 {
			if serr := c.s.b.send(c.s.dom, c.port, peer, stream.MsgData, buf[:n], time.Time{}, c.dead); serr != nil {
				c.peerGone()
				return
			}
			c.s.stats.bytesToGuest.Add(uint64(n))
		}
		if err == io.EOF {
			// The Unix peer shut down writing (or closed): FIN.
			if serr := c.s.b.send(c.s.dom, c.port, peer, stream.MsgShutdown, stream.Shutdown(stream.ShutFin), time.Time{}, c.dead); serr != nil {
				c.peerGone()
				return
			}
			c.mu.Lock()
			c.sentFin = true
			c.mu.Unlock()
			c.finishIfDone()
			return
		}
		if err != nil {
			// A read error: our own close (abort) or a broken peer.
			c.abort(true)
			return
		}
	}
}

// peerGone handles a send the guest's ring refused for good: it was
// unregistered (the guest closed) or its domain ended. Either way what
// the guest sent before is still written out: after a graceful close —
// FIN, then the ring went — the connection then ends as closed; without a
// FIN (a guest that ended, or whose teardown came before Down) it is
// closed once the writer is done, as domainGone does.
func (c *conn) peerGone() {
	select {
	case <-c.dead: // aborted meanwhile
		return
	default:
	}
	c.drainAll() // the FIN, if any, is within one ring's worth
	c.mu.Lock()
	graceful, gone := c.gotFin, c.gone
	if graceful {
		c.sentFin = true // nothing more can go to the guest
	}
	c.mu.Unlock()
	switch {
	case gone:
		// domainGone has seen to it.
	case graceful:
		c.finishIfDone()
	default:
		c.domainGone()
	}
}

// domainGone ends the connection because the guest's domain ended. In the
// data phase, what the guest sent is still written out first (bounded by
// the handshake timeout), then the Unix side is closed.
func (c *conn) domainGone() {
	c.mu.Lock()
	inData := c.peerPort != 0 && c.uc != nil && !c.ended
	c.mu.Unlock()
	if !inData {
		c.abort(false)
		return
	}
	c.drainAll()
	c.mu.Lock()
	c.gone = true
	// A guest that sent its FIN before it ended closed gracefully: the
	// connection ends as closed once the writer has written the rest (the
	// host side can send nothing more).
	fin := c.gotFin
	if fin {
		c.sentFin = true
	}
	writerDone := c.wroteFin // it wrote the guest's FIN and returned
	c.cond.Broadcast()
	uc := c.uc
	c.mu.Unlock()
	if writerDone {
		c.finishIfDone()
		return
	}
	// Bounds a write in progress too, and whatever else keeps the
	// connection: it ends by then at the latest.
	uc.SetWriteDeadline(time.Now().Add(c.s.cfg.Handshake))
	time.AfterFunc(c.s.cfg.Handshake+time.Second, func() { c.abort(false) })
}

// writer writes the guest's data to the Unix side.
func (c *conn) writer() {
	for {
		c.mu.Lock()
		for len(c.q) == 0 && !c.gotFin && !c.ended && !c.gone {
			c.cond.Wait()
		}
		if c.ended {
			c.mu.Unlock()
			return
		}
		q := c.q
		c.q, c.qBytes = nil, 0
		fin, gone := c.gotFin, c.gone
		poke := c.paused
		c.paused = false
		c.mu.Unlock()
		if poke {
			c.s.b.pokePump()
		}
		if gone {
			// A client that does not read holds nothing up for long.
			c.uc.SetWriteDeadline(time.Now().Add(c.s.cfg.Handshake))
		}
		if len(q) > 0 {
			bufs := net.Buffers(q)
			n, err := bufs.WriteTo(c.uc)
			c.s.stats.bytesFromGuest.Add(uint64(n))
			if err != nil {
				// The Unix peer went away: reset the guest side.
				c.abort(true)
				return
			}
		}
		if gone && !fin {
			c.abort(false)
			return
		}
		if fin {
			c.mu.Lock()
			drained := len(c.q) == 0
			c.mu.Unlock()
			if !drained {
				continue
			}
			if cw, ok := c.uc.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			c.mu.Lock()
			c.wroteFin = true
			c.mu.Unlock()
			// Closed, if we sent our FIN too or the domain has gone
			// (domainGone then counts ours as sent); else the reader's
			// FIN or domainGone closes it.
			c.finishIfDone()
			return
		}
	}
}

// handshakeDone reports ACCEPT or RESET to the handshake; later ones (a
// guest may send any number) are dropped.
func (c *conn) handshakeDone(accepted bool) {
	select {
	case c.handshake <- accepted:
	default:
	}
}

// drain takes the guest's messages out of the connection's ring while the
// queue has room.
func (c *conn) drain() { c.drainLimit(QueueLimit) }

// drainAll takes every message left in the ring of a domain that ended:
// at most a ring's worth.
func (c *conn) drainAll() { c.drainLimit(math.MaxInt) }

func (c *conn) drainLimit(limit int) {
	c.drainMu.Lock()
	defer c.drainMu.Unlock()
	c.mu.Lock()
	ring := c.ring
	c.mu.Unlock()
	if ring == nil {
		return
	}
	dom := c.s.dom
	for {
		c.mu.Lock()
		if c.ended {
			c.mu.Unlock()
			return
		}
		if c.qBytes >= limit {
			c.paused = true
			c.mu.Unlock()
			return
		}
		// Read each time: serveGuest sets it once the ring is there.
		peer, fin := c.peerPort, c.gotFin
		c.mu.Unlock()
		m, err := ring.Recv()
		if err != nil {
			if errors.Is(err, argo.Errno(argo.EINVAL)) {
				// A malformed message (Recv emptied the ring). Only the
				// VMM writes a host ring, so this is not expected; the
				// next signal looks again.
				c.s.stats.dropped.Add(1)
			}
			return // empty, or gone
		}
		if m.Source.Domain != dom {
			c.s.stats.dropped.Add(1)
			continue
		}
		if peer == 0 {
			// Handshake: ACCEPT or RESET from any port of the guest.
			switch m.Type {
			case stream.MsgAccept:
				a, err := stream.ParseAccept(m.Data)
				if err != nil || !stream.ValidRingLen(a.RingLen) || m.Source.Port < stream.FirstConnPort {
					c.s.stats.dropped.Add(1)
					continue
				}
				c.mu.Lock()
				c.peerPort, c.peerRing = m.Source.Port, a.RingLen
				c.mu.Unlock()
				c.handshakeDone(true)
			case stream.MsgReset:
				if _, err := stream.ParseReset(m.Data); err != nil {
					c.s.stats.dropped.Add(1)
					continue
				}
				c.handshakeDone(false)
				return
			default:
				c.s.stats.dropped.Add(1)
			}
			continue
		}
		if m.Source.Port != peer {
			c.s.stats.dropped.Add(1)
			continue
		}
		switch m.Type {
		case stream.MsgData:
			if len(m.Data) == 0 || fin { // nothing may follow a FIN but a RESET
				c.s.stats.dropped.Add(1)
				continue
			}
			c.mu.Lock()
			c.q = append(c.q, m.Data)
			c.qBytes += len(m.Data)
			c.cond.Broadcast()
			c.mu.Unlock()
		case stream.MsgShutdown:
			flags, err := stream.ParseShutdown(m.Data)
			if err != nil {
				c.s.stats.dropped.Add(1)
				continue
			}
			if flags&stream.ShutFin != 0 && !fin {
				c.mu.Lock()
				c.gotFin = true
				c.cond.Broadcast()
				c.mu.Unlock()
			}
		case stream.MsgReset:
			if _, err := stream.ParseReset(m.Data); err != nil {
				c.s.stats.dropped.Add(1)
				continue
			}
			c.abort(false)
			return
		default: // CREDIT, ACCEPT again, unknown: dropped
			c.s.stats.dropped.Add(1)
		}
	}
}
