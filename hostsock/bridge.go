package hostsock

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/argo/stream"
	"github.com/argovisor/argovisor/internal/unixsock"
)

// Defaults and limits of a domain's socket (docs/streams.md, "Budget").
const (
	DefaultMaxConns  = 64
	MaxMaxConns      = 126 // Argo's 128 rings per domain, less the control ring and one spare
	DefaultRing      = 256<<10 - 64
	MinRing          = 4096 - 64
	MaxRing          = 16<<20 - 64
	DefaultHandshake = 5 * time.Second
	// QueueLimit bounds what a connection holds on the host beyond its
	// ring: the pump stops draining the ring while this much waits for
	// the Unix peer; one message more may arrive on top (a chunk, at most
	// a quarter of the ring).
	QueueLimit = 64 << 10
	// ctrlRingLen is the data length of the host's control ring per
	// domain: room for about 125 CONNECTs.
	ctrlRingLen = 4096 - 64
	// maxLine is the longest handshake line, newline included.
	maxLine = 32
	// lineBuf is the buffer of a Unix connection's reader.
	lineBuf = 4096
)

// Config is one domain's socket.
type Config struct {
	// Path is where the socket is made (mode 0600); guest→host
	// connections to port P dial Path_P.
	Path string
	// MaxConns bounds the domain's connections at a time, in both
	// directions together (default DefaultMaxConns, at most MaxMaxConns).
	MaxConns int
	// Ring is the data length of the host ring of each connection
	// (default DefaultRing; a multiple of 16 from MinRing to MaxRing).
	Ring uint32
	// Handshake bounds the CONNECT line, the guest's accept and the dial
	// of PATH_P (default DefaultHandshake).
	Handshake time.Duration
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Ring == 0 {
		c.Ring = DefaultRing
	}
	if c.Handshake == 0 {
		c.Handshake = DefaultHandshake
	}
	return c
}

// Validate checks a configuration with its defaults applied.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("stream socket: no path")
	case c.MaxConns < 1 || c.MaxConns > MaxMaxConns:
		return fmt.Errorf("stream max_connections %d: must be 1 to %d", c.MaxConns, MaxMaxConns)
	case c.Ring < MinRing || c.Ring > MaxRing || c.Ring%16 != 0:
		return fmt.Errorf("stream ring %d: must be a multiple of 16 from %d to %d", c.Ring, MinRing, MaxRing)
	case c.Handshake < 0:
		return errors.New("stream handshake timeout: negative")
	}
	return nil
}

// Memory is the most host memory the socket's connections can hold at
// once, which the VMM reserves from its budget. Per connection: its host
// ring; the queue for the Unix peer (QueueLimit, and one message more of
// at most a ring); what is left in the ring when the guest goes, copied
// out at once (a ring); the reader's chunk buffer and line buffer; and
// the handshakes in progress (as many as connections) with their line
// buffers. Plus the control ring.
func (c Config) Memory() uint64 {
	ring := uint64(argo.RingPages(c.Ring)) * argo.PageSize
	perConn := ring + QueueLimit + 2*uint64(c.Ring) + stream.MaxChunk + 2*lineBuf
	return uint64(c.MaxConns)*perConn + ctrlPages*argo.PageSize
}

var ctrlPages = uint64(argo.RingPages(ctrlRingLen))

// Bridge is the host's stream endpoint for every domain of one VMM.
type Bridge struct {
	h   *argo.Host
	log *slog.Logger

	// mu guards the maps and nextPort. Lock order: after a Socket's mu and
	// a conn's mu; never held across a call into Argo.
	mu sync.Mutex
	// socks are the domains' sockets by domain id.
	// +checklocks:mu
	socks map[argo.DomainID]*Socket
	// conns are the live connections by their host port.
	// +checklocks:mu
	conns map[uint32]*conn
	// nextPort is where the search for a free host port starts.
	// +checklocks:mu
	nextPort uint32

	// spaceMu guards space, closed and replaced at each host signal: a
	// sender that got EAGAIN takes it before sending and waits for it.
	spaceMu sync.Mutex
	// +checklocks:spaceMu
	space chan struct{}

	poke chan struct{} // the pump should look again (a queue drained)
	done chan struct{}
	wg   sync.WaitGroup
}

// New makes the host's Argo endpoint (memBytes of ring memory) and starts
// the pump. There can be one host endpoint per Argo instance.
func New(a *argo.Argo, memBytes uint64, log *slog.Logger) (*Bridge, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := a.NewHost(memBytes, argo.Policy{Enabled: true, Name: "host"})
	if err != nil {
		return nil, fmt.Errorf("stream bridge: host endpoint: %w", err)
	}
	b := &Bridge{
		h: h, log: log,
		socks: make(map[argo.DomainID]*Socket), conns: make(map[uint32]*conn),
		nextPort: stream.FirstConnPort,
		space:    make(chan struct{}), poke: make(chan struct{}, 1), done: make(chan struct{}),
	}
	b.wg.Add(1)
	go b.pump()
	return b, nil
}

// Close stops the pump. The sockets must have been closed.
func (b *Bridge) Close() {
	close(b.done)
	b.wg.Wait()
}

// spaceChan is the channel the next host signal closes.
func (b *Bridge) spaceChan() <-chan struct{} {
	b.spaceMu.Lock()
	defer b.spaceMu.Unlock()
	return b.space
}

func (b *Bridge) wakeSenders() {
	b.spaceMu.Lock()
	close(b.space)
	b.space = make(chan struct{})
	b.spaceMu.Unlock()
}

func (b *Bridge) pokePump() {
	select {
	case b.poke <- struct{}{}:
	default:
	}
}

// pump drains the host's rings each time Argo signals the host (data
// arrived, or space a send waited for is free) or a connection's queue has
// room again.
func (b *Bridge) pump() {
	defer b.wg.Done()
	var socks []*Socket
	var conns []*conn
	for {
		select {
		case <-b.h.Signals():
		case <-b.poke:
		case <-b.done:
			return
		}
		b.wakeSenders()
		b.mu.Lock()
		socks, conns = socks[:0], conns[:0]
		for _, s := range b.socks {
			socks = append(socks, s)
		}
		for _, c := range b.conns {
			conns = append(conns, c)
		}
		b.mu.Unlock()
		for _, s := range socks {
			s.drainCtrl()
		}
		for _, c := range conns {
			c.drain()
		}
	}
}

// registerConn gives c a host port and a ring for its domain.
func (b *Bridge) registerConn(c *conn) error {
	b.mu.Lock()
	port := b.nextPort
	for b.conns[port] != nil || port < stream.FirstConnPort {
		port++
		if port < stream.FirstConnPort {
			port = stream.FirstConnPort
		}
	}
	b.nextPort = port + 1
	if b.nextPort < stream.FirstConnPort {
		b.nextPort = stream.FirstConnPort
	}
	c.port = port
	b.conns[port] = c // reserved; the pump skips it until the ring is there
	b.mu.Unlock()
	r, err := b.h.RegisterRing(port, c.s.dom, c.s.cfg.Ring)
	if err != nil {
		b.forgetConn(c)
		return err
	}
	c.mu.Lock()
	ended := c.ended
	if !ended {
		c.ring = r
	}
	c.mu.Unlock()
	if ended {
		// Aborted meanwhile (the domain went down): its cleanup saw no
		// ring, so this one goes here.
		r.Unregister()
		b.forgetConn(c)
		return errClosed
	}
	return nil
}

func (b *Bridge) forgetConn(c *conn) {
	b.mu.Lock()
	if b.conns[c.port] == c {
		delete(b.conns, c.port)
	}
	b.mu.Unlock()
}

// send sends one message from the host port from to (dom, to), waiting for
// ring space up to deadline or until cancel is closed. It returns Argo's
// error: ECONNREFUSED or ESRCH when the peer ring or domain is gone.
func (b *Bridge) send(dom argo.DomainID, from, to, typ uint32, payload []byte, deadline time.Time, cancel <-chan struct{}) error {
	var timer *time.Timer
	var expired <-chan time.Time
	for {
		ch := b.spaceChan()
		_, err := b.h.Send(argo.Addr{Domain: dom, Port: to}, from, typ, payload)
		if !errors.Is(err, argo.Errno(argo.EAGAIN)) {
			if timer != nil {
				timer.Stop()
			}
			return err
		}
		if timer == nil && !deadline.IsZero() {
			timer = time.NewTimer(time.Until(deadline))
			expired = timer.C
		}
		select {
		case <-ch:
		case <-expired:
			return err
		case <-cancel:
			if timer != nil {
				timer.Stop()
			}
			return errClosed
		case <-b.done:
			return errClosed
		}
	}
}

var errClosed = errors.New("connection closed")

// trySend sends one message without waiting for space: for refusals and
// resets to a guest that may never drain, which must cost the VMM nothing
// (no goroutine waits for it). A message that does not fit is dropped; the
// guest's own timeout, or its next send, tells it.
func (b *Bridge) trySend(dom argo.DomainID, from, to, typ uint32, payload []byte) {
	b.h.Send(argo.Addr{Domain: dom, Port: to}, from, typ, payload)
}

// Listen makes domain dom's socket at cfg.Path (mode 0600) and starts
// taking connections; until Up they are answered "ERR domain not
// running".
func (b *Bridge) Listen(dom argo.DomainID, cfg Config) (*Socket, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l, err := unixsock.Listen(cfg.Path, "stream socket")
	if err != nil {
		return nil, err
	}
	s := &Socket{b: b, dom: dom, cfg: cfg, l: l, conns: make(map[*conn]struct{})}
	b.mu.Lock()
	if b.socks[dom] != nil {
		b.mu.Unlock()
		l.Close()
		return nil, fmt.Errorf("stream socket %s: domain %d has one already", cfg.Path, dom)
	}
	b.socks[dom] = s
	b.mu.Unlock()
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}
