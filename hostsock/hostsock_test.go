package hostsock

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/argo/stream"
)

// The unit tests drive the bridge with a guest made of Go code: an Argo
// endpoint for domain 1 over Go memory (argo.NewEndpoint) that speaks the
// guest side of the stream protocol. The KVM tests (test/hoststream_test.go)
// do the same against the C SDK in a real guest.

const guestDom argo.DomainID = 1

type env struct {
	t    *testing.T
	a    *argo.Argo
	b    *Bridge
	s    *Socket
	g    *argo.Host
	path string
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	var gp struct {
		sync.Mutex
		g *argo.Host
	}
	a := argo.New(func(id argo.DomainID) {
		gp.Lock()
		g := gp.g
		gp.Unlock()
		if id == guestDom && g != nil {
			g.Signal()
		}
	})
	b, err := New(a, 64<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := a.NewEndpoint(guestDom, 64<<20, argo.Policy{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	gp.Lock()
	gp.g = g
	gp.Unlock()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "d.sock")
	}
	if cfg.Handshake == 0 {
		cfg.Handshake = 2 * time.Second
	}
	s, err := b.Listen(guestDom, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, a: a, b: b, s: s, g: g, path: cfg.Path}
	t.Cleanup(func() {
		s.Close()
		b.Close()
	})
	return e
}

// gconn is one connection of the Go guest.
type gconn struct {
	ring    *argo.HostRing
	peer    uint32   // the host's connection port
	pending [][]byte // echo data the host ring had no room for yet
	fin     bool     // the host sent FIN: FIN back once pending is out
}

// echoGuest serves stream port `port` on the Go guest until stop is
// closed: every byte is echoed, FIN is answered with FIN and a close.
// It reports RESETs it receives on resets, and a send refused because the
// host's ring is gone as 0. With source set it does not echo but sends
// 64 KiB chunks for ever.
func (e *env) echoGuest(ctrl *argo.HostRing, port uint32, source bool, stop <-chan struct{}, resets chan<- uint32) {
	g := e.g
	conns := map[uint32]*gconn{}
	next := stream.FirstConnPort
	chunk := make([]byte, 64<<10)
	flush := func(local uint32, c *gconn) bool {
		for len(c.pending) > 0 || source {
			if len(c.pending) == 0 {
				c.pending = [][]byte{chunk}
			}
			_, err := g.Send(argo.Addr{Domain: argo.HostDomain, Port: c.peer}, local, stream.MsgData, c.pending[0])
			if errors.Is(err, argo.Errno(argo.ECONNREFUSED)) && resets != nil {
				resets <- 0
				c.ring.Unregister()
				delete(conns, local)
				return false
			}
			if err != nil {
				return false // EAGAIN: the host signals when it fits
			}
			c.pending = c.pending[1:]
		}
		return true
	}
	for {
		for {
			m, err := ctrl.Recv()
			if err != nil {
				break
			}
			req, perr := stream.ParseConnect(m.Data)
			if m.Type != stream.MsgConnect || perr != nil {
				continue
			}
			if req.Port != port {
				g.Send(m.Source, stream.CtrlPort, stream.MsgReset, stream.Reset(stream.ReasonRefused))
				continue
			}
			r, err := g.RegisterRing(next, argo.HostDomain, 64<<10-64)
			if err != nil {
				e.t.Error(err)
				return
			}
			conns[next] = &gconn{ring: r, peer: m.Source.Port}
			g.Send(m.Source, next, stream.MsgAccept, stream.Accept{RingLen: r.Len}.Marshal())
			next++
		}
		for local, c := range conns {
			if !flush(local, c) {
				continue // read no more until the echo went out
			}
			for !c.fin {
				m, err := c.ring.Recv()
				if err != nil {
					break
				}
				switch m.Type {
				case stream.MsgData:
					c.pending = append(c.pending, m.Data)
				case stream.MsgShutdown:
					c.fin = true
				case stream.MsgReset:
					reason, _ := stream.ParseReset(m.Data)
					if resets != nil {
						resets <- reason
					}
					c.ring.Unregister()
					delete(conns, local)
					c.fin = false
				}
				if !flush(local, c) {
					break
				}
			}
			if c.fin && len(c.pending) == 0 {
				g.Send(argo.Addr{Domain: argo.HostDomain, Port: c.peer}, local, stream.MsgShutdown, stream.Shutdown(stream.ShutFin))
				c.ring.Unregister()
				delete(conns, local)
			}
		}
		select {
		case <-g.Signals():
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
			// A backstop only: every wait above is woken by a signal.
		}
	}
}

func (e *env) startEcho(port uint32) chan uint32 { return e.startGuest(port, false) }

func (e *env) startGuest(port uint32, source bool) chan uint32 {
	// Listening before the first connect can come.
	ctrl, err := e.g.RegisterRing(stream.CtrlPort, argo.HostDomain, 4096-64)
	if err != nil {
		e.t.Fatal(err)
	}
	stop := make(chan struct{})
	resets := make(chan uint32, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.echoGuest(ctrl, port, source, stop, resets)
	}()
	e.t.Cleanup(func() {
		close(stop)
		<-done
	})
	return resets
}

// dial connects to the socket and sends line (no newline added).
func (e *env) dial(line string) (net.Conn, *bufio.Reader) {
	e.t.Helper()
	c, err := net.Dial("unix", e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if line != "" {
		if _, err := io.WriteString(c, line); err != nil {
			e.t.Fatal(err)
		}
	}
	return c, bufio.NewReader(c)
}

func (e *env) connect(port string) (net.Conn, *bufio.Reader) {
	e.t.Helper()
	c, rd := e.dial("CONNECT " + port + "\n")
	line, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OK ") {
		e.t.Fatalf("handshake: %q, %v", line, err)
	}
	return c, rd
}

// echo sends n random bytes through c while reading them back.
func echo(t *testing.T, c net.Conn, rd *bufio.Reader, n int) {
	t.Helper()
	want := make([]byte, n)
	rand.Read(want)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.(*net.UnixConn).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("read the echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo: got %d bytes, want %d (equal: %v)", len(got), n, bytes.Equal(got, want[:min(len(got), n)]))
	}
}

func TestEcho(t *testing.T) {
	e := newEnv(t, Config{})
	e.startEcho(5000)
	for _, n := range []int{1, 100, 1 << 20, 3<<20 + 17} {
		c, rd := e.connect("5000")
		echo(t, c, rd, n)
		c.Close()
	}
	st := e.s.Stats()
	if st.HostIn != 4 || st.BytesToGuest != st.BytesFromGuest {
		t.Errorf("stats %+v", st)
	}
}

// TestBadInput: every bad handshake gets its error line and a close, and a
// connection in its data phase meanwhile loses nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t, Config{Handshake: 300 * time.Millisecond})
	e.startEcho(5000)
	good, grd := e.connect("5000")
	cases := []struct{ name, send, want string }{
		{"unknown command", "HELLO\n", "ERR bad command\n"},
		{"no port", "CONNECT \n", "ERR bad command\n"},
		{"port not a number", "CONNECT 50x0\n", "ERR bad command\n"},
		{"port too big", "CONNECT 4294967296\n", "ERR bad command\n"},
		{"lower case", "connect 5000\n", "ERR bad command\n"},
		{"line too long", "CONNECT " + strings.Repeat("0", 40) + "\n", "ERR line too long\n"},
		{"no newline", strings.Repeat("C", 32), "ERR line too long\n"},
		{"half-written", "CONN", "ERR timeout\n"},
		{"nothing", "", "ERR timeout\n"},
		{"nobody listens", "CONNECT 6000\n", "ERR connection refused\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, rd := e.dial(tc.send)
			got, err := io.ReadAll(rd)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			c.Close()
		})
	}
	echo(t, good, grd, 256<<10)
	if st := e.s.Stats(); st.BadInput != 9 || st.Refused != 1 {
		t.Errorf("stats %+v: want 9 bad inputs, 1 refused", st)
	}
}

func TestBudget(t *testing.T) {
	e := newEnv(t, Config{MaxConns: 2})
	e.startEcho(5000)
	c1, _ := e.connect("5000")
	c2, rd2 := e.connect("5000")
	_, rd := e.dial("CONNECT 5000\n")
	if got, _ := io.ReadAll(rd); string(got) != "ERR too many connections\n" {
		t.Fatalf("third connection: %q", got)
	}
	c1.Close()
	// The slot comes back once the bridge has seen the close.
	deadline := time.Now().Add(5 * time.Second)
	for e.s.Stats().Active > 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c3, rd3 := e.connect("5000")
	echo(t, c3, rd3, 1000)
	echo(t, c2, rd2, 1000)
}

// TestDomainDown: the domain's end closes its connections, and new ones
// are told it is not running.
func TestDomainDown(t *testing.T) {
	e := newEnv(t, Config{})
	e.startEcho(5000)
	c, rd := e.connect("5000")
	e.s.Down()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := rd.ReadByte(); err == nil {
		t.Fatal("the connection stayed open after the domain ended")
	}
	_, rd2 := e.dial("CONNECT 5000\n")
	if got, _ := io.ReadAll(rd2); string(got) != "ERR domain not running\n" {
		t.Fatalf("got %q", got)
	}
}

// TestHostCloseResetsGuest: a host client that goes away while the guest
// sends resets the guest's side: a RESET, or its next send refused.
func TestHostCloseResetsGuest(t *testing.T) {
	e := newEnv(t, Config{})
	resets := e.startGuest(5000, true)
	c, rd := e.connect("5000")
	if _, err := io.ReadFull(rd, make([]byte, 200<<10)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case r := <-resets:
		if r != stream.ReasonReset && r != 0 {
			t.Fatalf("reset reason %d", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the guest saw no reset")
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.s.Stats().Active != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := e.s.Stats(); st.Active != 0 || st.Resets != 1 {
		t.Errorf("stats %+v: want no connection left, 1 reset", st)
	}
}

// TestGuestToHost: a guest's CONNECT to port P reaches PATH_P; nobody
// there is a RESET(ECONNREFUSED).
func TestGuestToHost(t *testing.T) {
	e := newEnv(t, Config{})
	l, err := net.Listen("unix", e.path+"_6000")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err == nil {
			c.Write(append([]byte("re: "), buf...))
		}
	}()
	g := e.g
	const port = stream.FirstConnPort + 7
	r, err := g.RegisterRing(port, argo.HostDomain, 4096-64)
	if err != nil {
		t.Fatal(err)
	}
	send := func(dst argo.Addr, typ uint32, p []byte) {
		t.Helper()
		if _, err := g.Send(dst, port, typ, p); err != nil {
			t.Fatalf("send %#x: %v", typ, err)
		}
	}
	next := func() argo.Message {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			if m, err := r.Recv(); err == nil {
				return m
			}
			select {
			case <-g.Signals():
			case <-deadline:
				t.Fatal("nothing came")
			}
		}
	}
	ctrl := argo.Addr{Domain: argo.HostDomain, Port: stream.CtrlPort}
	send(ctrl, stream.MsgConnect, stream.Connect{Port: 6001, RingLen: r.Len}.Marshal())
	if m := next(); m.Type != stream.MsgReset {
		t.Fatalf("connect to a port nobody serves: type %#x", m.Type)
	}
	send(ctrl, stream.MsgConnect, stream.Connect{Port: 6000, RingLen: r.Len}.Marshal())
	m := next()
	if m.Type != stream.MsgAccept {
		t.Fatalf("type %#x, want ACCEPT", m.Type)
	}
	peer := argo.Addr{Domain: argo.HostDomain, Port: m.Source.Port}
	// Hostile bits first: an unknown type, a short SHUTDOWN, data from
	// another port. All dropped; the connection goes on.
	send(peer, 0x1234, []byte("x"))
	send(peer, stream.MsgShutdown, []byte{1})
	if _, err := g.Send(peer, port+1, stream.MsgData, []byte("evil!")); err != nil {
		t.Fatal(err)
	}
	send(peer, stream.MsgData, []byte("hello"))
	m = next()
	if m.Type != stream.MsgData || string(m.Data) != "re: hello" {
		t.Fatalf("reply %#x %q", m.Type, m.Data)
	}
	if m = next(); m.Type != stream.MsgShutdown {
		t.Fatalf("after the host closed: type %#x, want SHUTDOWN", m.Type)
	}
	if st := e.s.Stats(); st.Dropped != 3 || st.HostOut != 1 || st.Refused != 1 {
		t.Errorf("stats %+v: want 3 dropped, 1 dialled, 1 refused", st)
	}
}

func TestParseConnect(t *testing.T) {
	for line, want := range map[string]int64{
		"CONNECT 0": 0, "CONNECT 5000": 5000, "CONNECT 5000\r": 5000, "CONNECT 4294967295": 4294967295,
		"CONNECT -1": -1, "CONNECT +5": -1, "CONNECT 5 ": -1, "CONNECT  5": -1, "CONNECT": -1, "": -1,
	} {
		p, ok := parseConnect(line)
		if (want < 0) == ok || (ok && int64(p) != want) {
			t.Errorf("%q: %d %v, want %d", line, p, ok, want)
		}
	}
}

func TestConfig(t *testing.T) {
	if err := (Config{Path: "x"}).WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{{}, {Path: "x", MaxConns: MaxMaxConns + 1}, {Path: "x", Ring: 100}, {Path: "x", Ring: MaxRing + 16}} {
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestDomainDownDeliversSent: what a guest sent before its domain ended
// reaches the host program, then the connection closes.
func TestDomainDownDeliversSent(t *testing.T) {
	e := newEnv(t, Config{})
	const port = stream.FirstConnPort
	_, peer, uc := e.guestConnect(t, port)
	want := 0
	for i := range 40 {
		e.gsend(t, port, peer, stream.MsgData, bytes.Repeat([]byte{byte('a' + i%26)}, 1000))
		want += 1000
	}
	e.s.Down() // at once: most of it is still in the host's ring
	if n := readAllLen(t, uc); n != want {
		t.Fatalf("the host program read %d bytes, want %d", n, want)
	}
}
