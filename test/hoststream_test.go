package test

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/argovisor/argovisor/internal/testutil"
)

// Host↔guest streams through a domain's stream socket (docs/streams.md),
// against the example guest streamecho, with the CLI users get under its
// default seccomp filter: the host side is net.Dial, socat and
// net.Listen, as a user's tools would be.

// streamDomain renders a domain running streamecho with a stream socket.
func streamDomain(name, sock string, memory string, params map[string]string) string {
	s := domainTOML(name, guest("streamecho"), memory, 1, params)
	return s + fmt.Sprintf("[domain.stream]\nsocket = %q\n", sock)
}

// startRun runs `argovisor run args...` (the filter on, as by default)
// and waits until stdout has the line ready.
func startRun(t *testing.T, ready string, args ...string) *cliProc {
	t.Helper()
	requireKVM(t)
	p := startCLI(t, append([]string{"run"}, args...)...)
	p.waitLine(t, ready, time.Minute)
	return p
}

// waitLine waits until stdout has a line containing sub.
func (p *cliProc) waitLine(t *testing.T, sub string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(testutil.Scaled(limit))
	for !strings.Contains(p.stdout.String(), sub) {
		select {
		case <-p.done:
			if strings.Contains(p.stdout.String(), sub) {
				return
			}
			t.Fatalf("argovisor run exited (%d) without printing %q:\n%s\n%s", p.code, sub, p.stdout.String(), p.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v:\n%s\n%s", sub, limit, p.stdout.String(), p.stderr.String())
		}
	}
}

// echoServer starts a VMM with one streamecho server domain ("echo") on
// stream port 5000 behind a socket, and returns the socket's path.
func echoServer(t *testing.T, params map[string]string) (*cliProc, string) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "echo.sock")
	p := map[string]string{"role": "server", "port": "5000"}
	for k, v := range params {
		p[k] = v
	}
	cfg := writeFile(t, dir, "echo.toml", streamDomain("echo", sock, "64M", p))
	proc := startRun(t, "streamecho: listening on port 5000", "--timeout", timeoutArg(10*time.Minute), cfg)
	return proc, sock
}

// hostConnect dials sock and does the CONNECT handshake.
func hostConnect(t testing.TB, sock string, port int) (*net.UnixConn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "CONNECT %d\n", port); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReaderSize(c, 256<<10)
	c.SetReadDeadline(time.Now().Add(testutil.Scaled(30 * time.Second)))
	line, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OK ") {
		t.Fatalf("handshake: %q, %v", line, err)
	}
	c.SetReadDeadline(time.Time{})
	return c.(*net.UnixConn), rd
}

// pumpEcho writes n bytes of a seeded pattern through c while reading the
// echo, half-closes, reads to end of file, and compares SHA-256 sums.
func pumpEcho(t testing.TB, c *net.UnixConn, rd *bufio.Reader, n int64, seed uint64) {
	t.Helper()
	c.SetDeadline(time.Now().Add(testutil.Scaled(5 * time.Minute)))
	src := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	sent := sha256.New()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		left := n
		for left > 0 {
			m := min(int64(len(buf)), left)
			for i := range buf[:m] {
				buf[i] = byte(src.Uint32())
			}
			sent.Write(buf[:m])
			if _, err := c.Write(buf[:m]); err != nil {
				errc <- err
				return
			}
			left -= m
		}
		errc <- c.CloseWrite()
	}()
	got := sha256.New()
	m, err := io.Copy(got, rd)
	if werr := <-errc; werr != nil {
		t.Fatalf("write: %v", werr)
	}
	if err != nil {
		t.Fatalf("read the echo after %d bytes: %v", m, err)
	}
	if m != n {
		t.Fatalf("echo: %d bytes, want %d", m, n)
	}
	if string(got.Sum(nil)) != string(sent.Sum(nil)) {
		t.Fatal("echo: SHA-256 differs")
	}
}

// TestHostStreamEcho: net.Dial, CONNECT, 100 MiB each way through one
// connection with checksums, then a second connection.
func TestHostStreamEcho(t *testing.T) {
	_, sock := echoServer(t, nil)
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", st.Mode())
	}
	// About a minute inside the VM (TCG), a second natively.
	c, rd := hostConnect(t, sock, 5000)
	pumpEcho(t, c, rd, 100<<20, 1)
	c.Close()
	c, rd = hostConnect(t, sock, 5000)
	pumpEcho(t, c, rd, 1, 2)
	c.Close()
}

// TestHostStreamSocat: socat, as a Firecracker vsock user would run it.
func TestHostStreamSocat(t *testing.T) {
	_, sock := echoServer(t, nil)
	cmd := socatCmd(t, "-t", "5", "-", "UNIX-CONNECT:"+sock)
	cmd.Stdin = strings.NewReader("CONNECT 5000\nhello over argo\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("socat: %v\n%s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "OK ") || lines[1] != "hello over argo" || lines[2] != "" {
		t.Fatalf("socat printed %q", out)
	}
}

// TestHostStream64Conns: 64 connections at once, each echoing its own
// data.
func TestHostStream64Conns(t *testing.T) {
	_, sock := echoServer(t, map[string]string{"ring": "65472"})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, rd := hostConnect(t, sock, 5000)
			defer c.Close()
			pumpEcho(t, c, rd, 256<<10+int64(i), uint64(i)+10)
		}()
	}
	wg.Wait()
}

// TestHostStreamBadInput: every bad handshake gets an error line and a
// close, through the real VMM; a connection in its data phase meanwhile
// loses nothing, and the guest keeps serving.
func TestHostStreamBadInput(t *testing.T) {
	_, sock := echoServer(t, nil)
	good, grd := hostConnect(t, sock, 5000)
	cases := []struct{ name, send, want string }{
		{"unknown command", "HELLO 5000\n", "ERR bad command\n"},
		{"bad port", "CONNECT five\n", "ERR bad command\n"},
		{"line too long", "CONNECT " + strings.Repeat("9", 64) + "\n", "ERR line too long\n"},
		{"nobody listens", "CONNECT 5001\n", "ERR connection refused\n"},
		{"half-written", "CONNECT 50", "ERR timeout\n"},
	}
	var wg sync.WaitGroup
	for _, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(testutil.Scaled(30 * time.Second)))
			io.WriteString(c, tc.send)
			got, err := io.ReadAll(c)
			if err != nil || string(got) != tc.want {
				t.Errorf("%s: got %q (%v), want %q", tc.name, got, err, tc.want)
			}
		}()
	}
	pumpEcho(t, good, grd, 4<<20, 3)
	wg.Wait()
	c, rd := hostConnect(t, sock, 5000)
	pumpEcho(t, c, rd, 1000, 4)
}

// TestHostStreamHostClose: a host client that goes away mid-transfer
// resets the guest's side; the guest serves the next connection and, with
// conns=2, exits having counted both.
func TestHostStreamHostClose(t *testing.T) {
	proc, sock := echoServer(t, map[string]string{"conns": "2"})
	c, _ := hostConnect(t, sock, 5000)
	// The echo is never read, so the write stops once the guest's ring,
	// the host's and the sockets between are full (the server echoes
	// with blocking sends): bounded by a deadline, then the close.
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write(make([]byte, 4<<20))
	c.Close()
	c, rd := hostConnect(t, sock, 5000)
	pumpEcho(t, c, rd, 1<<20, 5)
	c.Close()
	if code := proc.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, proc.stdout.String(), proc.stderr.String())
	}
	out := proc.stdout.String()
	if !strings.Contains(out, "streamecho: served 2 connections") {
		t.Fatalf("stdout:\n%s", out)
	}
	// The summary counts both, and the first one's reset.
	if !strings.Contains(out, "argovisor: echo stream: socket="+sock+" connections=2 in/0 out refused=0 resets=1 ") {
		t.Fatalf("no stream summary line with 2 connections and 1 reset:\n%s", out)
	}
}

// TestHostStreamGuestToHost: a guest connecting to the host on port P
// reaches PATH_P; nobody at PATH_P is a refusal the guest sees.
func TestHostStreamGuestToHost(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "g.sock")
	l, err := net.Listen("unix", sock+"_6000")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			served <- err.Error()
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		served <- line
		io.WriteString(c, "hi from the host\n")
	}()
	cfg := writeFile(t, dir, "g.toml",
		streamDomain("client", sock, "32M", map[string]string{"role": "hostclient", "port": "6000"})+
			streamDomain("refused", filepath.Join(dir, "r.sock"), "32M", map[string]string{"role": "hostclient", "port": "6001", "expect": "refused"}))
	r := runCLI(t, "run", "--timeout", timeoutArg(2*time.Minute), cfg)
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%v", r)
	}
	if line := <-served; !strings.HasPrefix(line, "hello from domain 1") {
		t.Fatalf("the host read %q", line)
	}
	if !strings.Contains(r.stdout, "[client] streamecho: host replied: hi from the host") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
}

// TestHostStreamGuestCrash: a guest that crashes mid-transfer to the host
// ends the host's connection (end of file or an error) before all the
// data, while the VMM and its other domain — an echo server behind its
// own socket — go on.
func TestHostStreamGuestCrash(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "c.sock")
	l, err := net.Listen("unix", sock+"_7000")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(testutil.Scaled(2 * time.Minute)))
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	echoSock := filepath.Join(dir, "e.sock")
	cfg := writeFile(t, dir, "c.toml",
		streamDomain("echo", echoSock, "64M", map[string]string{"role": "server", "port": "5000"})+
			streamDomain("crashy", sock, "64M", map[string]string{"role": "source", "peer": "0", "port": "7000",
				"bytes": "67108864", "crash_after": "4194304"}))
	proc := startRun(t, "[echo] streamecho: listening on port 5000", "--timeout", timeoutArg(5*time.Minute), cfg)
	select {
	case n := <-got:
		if n < 4<<20 || n >= 64<<20 {
			t.Fatalf("the host read %d bytes: want the 4 MiB sent before the crash, then the end", n)
		}
	case <-time.After(testutil.Scaled(time.Minute)):
		t.Fatalf("the host's connection stayed open after the guest crashed:\n%s", proc.stdout.String())
	}
	proc.waitLine(t, "[crashy] streamecho: source crashing after", time.Minute)
	select {
	case <-proc.done:
		t.Fatalf("the VMM ended with the crash:\n%s\n%s", proc.stdout.String(), proc.stderr.String())
	default:
	}
	c, rd := hostConnect(t, echoSock, 5000)
	pumpEcho(t, c, rd, 1<<20, 6)
}

// socatCmd runs socat from the PATH, or the one make test fetched into
// build/tools (with its library beside it, in LD_LIBRARY_PATH of cmd).
func socatCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	if p, err := exec.LookPath("socat"); err == nil {
		return exec.Command(p, args...)
	}
	root := filepath.Join(repoRoot, "build", "tools")
	p := filepath.Join(root, "usr", "bin", "socat")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("socat: not on the PATH and not in build/tools (make test-tools fetches it): %v", err)
	}
	cmd := exec.Command(p, args...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(root, "lib", "x86_64-linux-gnu")+":"+filepath.Join(root, "usr", "lib", "x86_64-linux-gnu"))
	return cmd
}

// TestStreamEchoExample: examples/streamecho.toml as the README uses it
// (its socket moved to a temporary directory, so that runs do not meet).
func TestStreamEchoExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "streamecho.toml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "echo.sock")
	cfg := strings.NewReplacer(`"/tmp/argovisor-echo.sock"`, fmt.Sprintf("%q", sock),
		`"../build/guests/streamecho.elf"`, fmt.Sprintf("%q", guest("streamecho"))).Replace(string(b))
	if !strings.Contains(cfg, sock) || !strings.Contains(cfg, guest("streamecho")) {
		t.Fatal("the example's socket or kernel path changed: update this test")
	}
	proc := startRun(t, "[echo] streamecho: listening on port 5000", writeFile(t, dir, "echo.toml", cfg))
	c, rd := hostConnect(t, sock, 5000)
	c.SetDeadline(time.Now().Add(testutil.Scaled(time.Minute)))
	io.WriteString(c, "hello from the README\n")
	if line, err := rd.ReadString('\n'); err != nil || line != "hello from the README\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	c.Close()
	proc.cmd.Process.Signal(syscall.SIGINT)
	if code := proc.wait(t, time.Minute); code != 130 {
		t.Fatalf("exit %d after SIGINT", code)
	}
	out := proc.stdout.String()
	if !strings.Contains(out, "argovisor: echo stream: socket="+sock+" connections=1 in/0 out") || strings.Contains(out, "EPERM") {
		t.Fatalf("summary:\n%s", out)
	}
}
