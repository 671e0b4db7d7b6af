package hostsock

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/argo/stream"
	"github.com/argovisor/argovisor/internal/unixsock"
)

// Socket is one domain's stream socket.
type Socket struct {
	b   *Bridge
	dom argo.DomainID
	cfg Config
	l   *unixsock.Listener
	wg  sync.WaitGroup // the accept loop

	// mu guards the fields below. Lock order: before a conn's mu and the
	// Bridge's mu.
	mu sync.Mutex
	// up is true while the domain's instance is in Argo.
	// +checklocks:mu
	up bool
	// ctrl is the host's control ring for the domain while up.
	// +checklocks:mu
	ctrl *argo.HostRing
	// conns are the domain's connections, handshaking ones included:
	// what counts against MaxConns.
	// +checklocks:mu
	conns map[*conn]struct{}
	// closed is set by Close: no new connections.
	// +checklocks:mu
	closed bool
	// handshakes counts Unix connections still sending their CONNECT
	// line, at most MaxConns: they hold a descriptor and a goroutine
	// before they count against conns.
	// +checklocks:mu
	handshakes int

	stats counters
}

// counters are a socket's statistics (Stats).
type counters struct {
	accepted, dialled, refused, resets, dropped, badInput atomic.Uint64
	bytesToGuest, bytesFromGuest                          atomic.Uint64
}

// Stats are a socket's counters.
type Stats struct {
	Active  int    `json:"active"`   // connections now
	HostIn  uint64 `json:"host_in"`  // host→guest connections made (OK sent)
	HostOut uint64 `json:"host_out"` // guest→host connections made (PATH_P dialled)
	// Refused counts connections refused: no listener, nobody at PATH_P,
	// over budget, domain not running, accept timed out.
	Refused uint64 `json:"refused"`
	// Resets counts connections ended by a reset from either side.
	Resets uint64 `json:"resets"`
	// BadInput counts handshake lines that were not a CONNECT.
	BadInput uint64 `json:"bad_input"`
	// Dropped counts malformed or misdirected messages from the guest.
	Dropped        uint64 `json:"dropped"`
	BytesToGuest   uint64 `json:"bytes_to_guest"`
	BytesFromGuest uint64 `json:"bytes_from_guest"`
}

// Stats returns the socket's counters.
func (s *Socket) Stats() Stats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	c := &s.stats
	return Stats{
		Active: n, HostIn: c.accepted.Load(), HostOut: c.dialled.Load(), Refused: c.refused.Load(),
		Resets: c.resets.Load(), BadInput: c.badInput.Load(), Dropped: c.dropped.Load(),
		BytesToGuest: c.bytesToGuest.Load(), BytesFromGuest: c.bytesFromGuest.Load(),
	}
}

// Path is the socket file's absolute path.
func (s *Socket) Path() string { return s.l.Path() }

// KeepFile leaves the socket file in place at Close (a process whose
// seccomp filter forbids unlinking calls it before the filter goes on).
func (s *Socket) KeepFile() { s.l.KeepFile() }

// Up is called once the domain's instance is in Argo: the host registers
// its control ring for the domain and connections are served.
func (s *Socket) Up() error {
	s.mu.Lock()
	old := s.ctrl
	s.ctrl = nil
	s.mu.Unlock()
	if old != nil {
		old.Unregister() // a Down that never came (a failed restart)
	}
	r, err := s.b.h.RegisterRing(stream.CtrlPort, s.dom, ctrlRingLen)
	if err != nil {
		return fmt.Errorf("stream socket %s: host control ring: %w", s.cfg.Path, err)
	}
	s.mu.Lock()
	s.up, s.ctrl = true, r
	s.mu.Unlock()
	s.b.pokePump() // CONNECTs may be waiting already
	return nil
}

// Down is called when the domain's instance has stopped (its Argo state
// torn down): every connection is closed — the host side sees the close,
// after what the guest had sent before it ended (that data was accepted
// into the host's ring, and is not dropped) — and new ones are refused
// until the next Up.
func (s *Socket) Down() {
	s.mu.Lock()
	s.up = false
	ctrl := s.ctrl
	s.ctrl = nil
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if ctrl != nil {
		ctrl.Unregister() // gone with the teardown already; frees the memory
	}
	for _, c := range conns {
		c.domainGone()
	}
}

// Close stops listening (removing the file unless KeepFile) and closes
// every connection. The domain is being released.
func (s *Socket) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.l.Close()
	s.wg.Wait()
	s.Down()
	s.b.mu.Lock()
	delete(s.b.socks, s.dom)
	s.b.mu.Unlock()
	return err
}

// reserve takes a connection slot; false when the budget is used up, the
// domain is not running or the socket is closing (why says which).
func (s *Socket) reserve(c *conn) (ok bool, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed || !s.up:
		return false, "domain not running"
	case len(s.conns) >= s.cfg.MaxConns:
		return false, "too many connections"
	}
	s.conns[c] = struct{}{}
	return true, ""
}

func (s *Socket) release(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Socket) acceptLoop() {
	defer s.wg.Done()
	for {
		uc, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, say: back off instead of spinning.
			s.b.log.Warn("stream socket accept", "socket", s.cfg.Path, "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		ok := s.handshakes < s.cfg.MaxConns
		if ok {
			s.handshakes++
		}
		s.mu.Unlock()
		if !ok {
			s.stats.refused.Add(1)
			errLine(uc, "too many connections")
			continue
		}
		go s.serveHost(uc)
	}
}

// handshakeOver gives back a handshake's place.
func (s *Socket) handshakeOver() {
	s.mu.Lock()
	s.handshakes--
	s.mu.Unlock()
}

// errLine writes an error line and closes the connection.
func errLine(uc net.Conn, msg string) {
	uc.SetWriteDeadline(time.Now().Add(time.Second))
	uc.Write([]byte("ERR " + msg + "\n"))
	uc.Close()
}

// readLine reads the handshake line, at most maxLine bytes with the
// newline, byte by byte from rd so that data after it stays buffered.
func readLine(rd *bufio.Reader) (string, error) {
	var line []byte
	for len(line) < maxLine {
		c, err := rd.ReadByte()
		if err != nil {
			return "", err
		}
		if c == '\n' {
			return string(line), nil
		}
		line = append(line, c)
	}
	return "", errLineTooLong
}

var errLineTooLong = errors.New("line too long")

// parseConnect parses "CONNECT <port>" (a trailing CR tolerated).
func parseConnect(line string) (uint32, bool) {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	const verb = "CONNECT "
	if len(line) <= len(verb) || line[:len(verb)] != verb {
		return 0, false
	}
	digits := line[len(verb):]
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
	}
	p, err := strconv.ParseUint(digits, 10, 32)
	return uint32(p), err == nil
}

// serveHost runs the handshake of a host→guest connection and then its
// data phase.
func (s *Socket) serveHost(uc net.Conn) {
	c := newConn(s, uc)
	deadline := time.Now().Add(s.cfg.Handshake)
	uc.SetReadDeadline(deadline)
	line, err := readLine(c.rd)
	s.handshakeOver()
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, errLineTooLong):
			s.stats.badInput.Add(1)
			errLine(uc, "line too long")
		case errors.As(err, &ne) && ne.Timeout():
			s.stats.badInput.Add(1)
			errLine(uc, "timeout")
		default: // the client went away
			uc.Close()
		}
		return
	}
	port, ok := parseConnect(line)
	if !ok {
		s.stats.badInput.Add(1)
		errLine(uc, "bad command")
		return
	}
	if ok, why := s.reserve(c); !ok {
		s.stats.refused.Add(1)
		errLine(uc, why)
		return
	}
	if err := s.b.registerConn(c); err != nil {
		s.release(c)
		s.stats.refused.Add(1)
		errLine(uc, "too many connections")
		s.b.log.Warn("stream socket: host ring", "socket", s.cfg.Path, "err", err)
		return
	}
	req := stream.Connect{Port: port, RingLen: s.cfg.Ring}.Marshal()
	if err := s.b.send(s.dom, c.port, stream.CtrlPort, stream.MsgConnect, req, deadline, c.dead); err != nil {
		s.stats.refused.Add(1)
		if errors.Is(err, argo.Errno(argo.EAGAIN)) {
			c.fail("timeout") // the guest's control ring stayed full
		} else {
			c.fail("connection refused")
		}
		return
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case acc := <-c.handshake:
		if !acc {
			s.stats.refused.Add(1)
			c.fail("connection refused")
			return
		}
	case <-t.C:
		s.stats.refused.Add(1)
		c.fail("timeout")
		return
	case <-c.dead:
		return
	}
	uc.SetReadDeadline(time.Time{})
	uc.SetWriteDeadline(time.Now().Add(s.cfg.Handshake))
	if _, err := fmt.Fprintf(uc, "OK %d\n", c.port); err != nil {
		c.abort(true)
		return
	}
	uc.SetWriteDeadline(time.Time{})
	s.stats.accepted.Add(1)
	c.run()
}

// drainCtrl takes the guest's CONNECTs to the host out of the control ring.
// Called by the pump only.
func (s *Socket) drainCtrl() {
	s.mu.Lock()
	ctrl := s.ctrl
	s.mu.Unlock()
	if ctrl == nil {
		return
	}
	for {
		m, err := ctrl.Recv()
		if err != nil {
			if errors.Is(err, argo.Errno(argo.EINVAL)) {
				s.stats.dropped.Add(1) // malformed: see conn.drainLimit
			}
			return
		}
		req, perr := stream.ParseConnect(m.Data)
		if m.Type != stream.MsgConnect || perr != nil || m.Source.Domain != s.dom ||
			m.Source.Port < stream.FirstConnPort || !stream.ValidRingLen(req.RingLen) {
			s.stats.dropped.Add(1)
			continue
		}
		// The budget first, here: a guest's CONNECTs never make more
		// goroutines than it has connection slots.
		c := newConn(s, nil)
		if ok, _ := s.reserve(c); !ok {
			s.stats.refused.Add(1)
			s.b.trySend(s.dom, stream.CtrlPort, m.Source.Port, stream.MsgReset, stream.Reset(stream.ReasonNoBufs))
			continue
		}
		go s.serveGuest(c, m.Source.Port, req)
	}
}

// serveGuest connects a guest's CONNECT to PATH_port; c holds the
// connection's budget slot.
func (s *Socket) serveGuest(c *conn, guestPort uint32, req stream.Connect) {
	deadline := time.Now().Add(s.cfg.Handshake)
	refuse := func(reason uint32) {
		s.stats.refused.Add(1)
		s.b.trySend(s.dom, stream.CtrlPort, guestPort, stream.MsgReset, stream.Reset(reason))
		s.release(c)
	}
	uc, err := net.DialTimeout("unix", fmt.Sprintf("%s_%d", s.cfg.Path, req.Port), s.cfg.Handshake)
	if err != nil {
		refuse(stream.ReasonRefused)
		return
	}
	c.setUnix(uc)
	select {
	case <-c.dead: // the domain went down meanwhile
		uc.Close()
		return
	default:
	}
	// Known before the pump can see the ring: the guest's DATA may
	// follow the ACCEPT at once.
	c.mu.Lock()
	c.peerPort, c.peerRing = guestPort, req.RingLen
	c.mu.Unlock()
	if err := s.b.registerConn(c); err != nil {
		uc.Close()
		refuse(stream.ReasonNoBufs)
		return
	}
	acc := stream.Accept{RingLen: s.cfg.Ring}.Marshal()
	if err := s.b.send(s.dom, c.port, guestPort, stream.MsgAccept, acc, deadline, c.dead); err != nil {
		c.abort(false) // the guest gave up (its ring is gone) or never drained
		return
	}
	s.stats.dialled.Add(1)
	c.run()
}
