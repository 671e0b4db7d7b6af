package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/argovisor/argovisor/control"
	"github.com/argovisor/argovisor/internal/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The control API through the real binaries: `argovisor run --api-sock`
// as the VMM and `argovisor ctl` as the client.

// syncBuffer is a bytes.Buffer safe for the exec package's copying
// goroutine and the test reading it at the same time.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliProc is a running argovisor command.
type cliProc struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
	code           int
}

// startCLI starts the argovisor binary with args. The process is killed
// with the test if still running, and the test fails if it panicked,
// raced or was killed by the seccomp filter.
func startCLI(t *testing.T, args ...string) *cliProc {
	t.Helper()
	p := &cliProc{done: make(chan struct{})}
	p.cmd = exec.Command(cliPath, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			// -1 for a process killed by a signal; SIGSYS is the
			// seccomp filter catching a call off its allowlist (the
			// kernel log names the call).
			p.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.stderr.Write([]byte("(killed by " + ws.Signal().String() + ")\n"))
			}
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if s := p.stderr.String(); strings.Contains(s, "panic:") || strings.Contains(s, "DATA RACE") ||
			strings.Contains(s, "killed by "+syscall.SIGSYS.String()) {
			t.Errorf("argovisor panicked, raced or was killed by the seccomp filter:\n%s", s)
		}
	})
	return p
}

// vmmProc is a running `argovisor run --api-sock`.
type vmmProc struct {
	*cliProc
	sock string
}

// startVMM runs `argovisor run --api-sock SOCK args...` and waits until
// the API answers. Without a --seccomp flag in args the filter is on (the
// default), so domains created through the API and restarted by their
// policy are built under it. The process is killed with the test if
// still running.
func startVMM(t *testing.T, args ...string) *vmmProc {
	t.Helper()
	return startVMMAt(t, filepath.Join(t.TempDir(), "api.sock"), args...)
}

// startVMMAt is startVMM on the socket path sock.
func startVMMAt(t *testing.T, sock string, args ...string) *vmmProc {
	t.Helper()
	requireKVM(t)
	p := &vmmProc{cliProc: startCLI(t, append([]string{"run", "--api-sock", sock}, args...)...), sock: sock}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("argovisor run exited (%d) before serving:\n%s\n%s", p.code, p.stdout.String(), p.stderr.String())
		default:
		}
		if r := p.ctlRaw(t, "list"); r.code == 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API never answered:\n%s", p.stderr.String())
		}
	}
}

func (p *vmmProc) ctlRaw(t *testing.T, args ...string) cliResult {
	t.Helper()
	return runCLI(t, append([]string{"ctl", "--api-sock", p.sock}, args...)...)
}

// ctl runs a ctl command that must succeed.
func (p *vmmProc) ctl(t *testing.T, args ...string) string {
	t.Helper()
	r := p.ctlRaw(t, args...)
	if r.code != 0 {
		t.Fatalf("ctl %q: %v\nVMM stderr:\n%s", args, r, p.stderr.String())
	}
	return r.stdout
}

func (p *vmmProc) list(t *testing.T) []control.DomainInfo {
	t.Helper()
	var l []control.DomainInfo
	if err := json.Unmarshal([]byte(p.ctl(t, "--json", "list")), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func (p *vmmProc) stats(t *testing.T, name string) control.DomainStats {
	t.Helper()
	var s control.DomainStats
	if err := json.Unmarshal([]byte(p.ctl(t, "--json", "stats", name)), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitState waits until domain name is in state.
func (p *vmmProc) waitState(t *testing.T, name, state string, limit time.Duration) control.DomainInfo {
	t.Helper()
	limit = testutil.Scaled(limit)
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		for _, d := range p.list(t) {
			if d.Name == name && d.State == state {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached state %s: %+v\n%s", name, state, p.list(t), p.stdout.String())
		}
	}
}

// wait waits for the process to exit and returns its status.
func (p *cliProc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	limit = testutil.Scaled(limit)
	select {
	case <-p.done:
		return p.code
	case <-time.After(limit):
		t.Fatalf("argovisor run still running after %v:\n%s", limit, p.stderr.String())
	}
	return -1
}

// The whole API under the default --seccomp=on: every domain here is
// built after the lockdown, from the kernel bytes ctl sends, and crashy
// is rebuilt twice by its restart policy, all under the filter.
func TestControlAPILifecycle(t *testing.T) {
	p := startVMM(t)
	dir := t.TempDir()
	api := control.NewClient(p.sock)
	ctx := context.Background()

	// The socket is private, and a second VMM on it is refused.
	if st, err := os.Lstat(p.sock); err != nil || st.Mode()&fs.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket %v, %v: want a socket with mode 0600", st.Mode(), err)
	}
	if r := runCLI(t, "run", "--api-sock", p.sock); r.code != 2 || !strings.Contains(r.stderr, "another process is already serving") {
		t.Errorf("second VMM on the socket: %v", r)
	}

	// Domain ids (docs/api.md): unique for the VMM's life, so never one
	// a destroyed domain had; and only a created domain uses one up, so
	// with one create at a time each domain gets the id after the last
	// created one's, however many creates failed in between.
	created := func(out, name string) int {
		t.Helper()
		m := regexp.MustCompile(`^created ` + name + ` \(domain (\d+)\)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("create %s: %q", name, out)
		}
		id, _ := strconv.Atoi(m[1])
		return id
	}

	// create → exits on its own, stays listed with its result. The first
	// domain of a VMM is domain 1.
	hello := writeFile(t, dir, "hello.json", fmt.Sprintf(`{"name": "hello", "kernel": %q, "memory": "16M"}`, guest("hello")))
	helloID := created(p.ctl(t, "create", hello), "hello")
	if helloID != 1 {
		t.Errorf("the first domain is domain %d, want 1", helloID)
	}
	p.waitState(t, "hello", "exited", time.Minute)
	if out := p.ctl(t, "list"); !regexp.MustCompile(`(?m)^1 +hello +exited +1 +16M .* exited with status 0$`).MatchString(out) {
		t.Errorf("list:\n%s", out)
	}
	if r := p.ctlRaw(t, "create", hello); r.code != 1 || !strings.Contains(r.stderr, "already in use") || !strings.Contains(r.stderr, "HTTP 409") {
		t.Errorf("duplicate create: %v", r)
	}
	// ctl reads the kernel itself: a missing one never reaches the VMM.
	bad := writeFile(t, dir, "bad.json", `{"name": "bad", "kernel": "/nonexistent.elf", "memory": "16M"}`)
	if r := p.ctlRaw(t, "create", bad); r.code != 2 || !strings.Contains(r.stderr, "nonexistent.elf") {
		t.Errorf("create with a missing kernel: %v", r)
	}
	// The VMM cannot open files: a path alone, or a console log, is a 400
	// saying so; an image that is not a kernel is a 400 too, after a
	// build that failed and was cleaned up under the filter.
	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"name": "path", "kernel": guest("hello"), "memory": "16M"}, "kernel_image"},
		{map[string]any{"name": "logged", "kernel_image": []byte{0x7f, 'E', 'L', 'F'}, "memory": "16M", "console_log": filepath.Join(dir, "l.log")}, "console_log is not available"},
		{map[string]any{"name": "junk", "kernel_image": []byte("not a kernel"), "memory": "16M"}, "invalid kernel"},
	} {
		body, _ := json.Marshal(tc.body)
		_, err := api.Create(ctx, body)
		var ae *control.APIError
		if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, tc.want) {
			t.Errorf("create %v: %v, want HTTP 400 mentioning %q", tc.body["name"], err, tc.want)
		}
	}
	if r := p.ctlRaw(t, "stats", "nope"); r.code != 1 || !strings.Contains(r.stderr, "HTTP 404") {
		t.Errorf("stats of a missing domain: %v", r)
	}

	// stop: through the exit path, still listed; destroy: gone, name free.
	// The four creates refused since hello's (one of them after the VMM
	// had begun to build the domain) used up no id.
	spin := writeFile(t, dir, "spin.toml", fmt.Sprintf("[[domain]]\nname = \"spin\"\nkernel = %q\nmemory = \"16M\"\n", guest("spin")))
	spinID := created(p.ctl(t, "create", spin), "spin")
	if spinID != helloID+1 {
		t.Errorf("spin is domain %d after hello (%d) and only failed creates, want %d", spinID, helloID, helloID+1)
	}
	p.waitState(t, "spin", "running", time.Minute)
	if out := p.ctl(t, "stop", "spin"); !strings.Contains(out, fmt.Sprintf("stopped spin (domain %d): stopped: stopped through the control API", spinID)) {
		t.Errorf("stop: %q", out)
	}
	p.waitState(t, "spin", "stopped", time.Minute)
	if out := p.ctl(t, "destroy", "spin"); !strings.HasPrefix(out, fmt.Sprintf("destroyed spin (domain %d)", spinID)) {
		t.Errorf("destroy: %q", out)
	}
	for _, d := range p.list(t) {
		if d.Name == "spin" {
			t.Errorf("destroyed domain still listed: %+v", d)
		}
	}
	// The name is free again, its id never.
	if id := created(p.ctl(t, "create", spin), "spin"); id != spinID+1 {
		t.Errorf("spin created again is domain %d, want %d: a new id, the next one", id, spinID+1)
	}
	p.waitState(t, "spin", "running", time.Minute)
	p.ctl(t, "destroy", "spin") // while running: now

	// restart on crash: crashes on its first two boots, then exits 0;
	// every boot is built from the bytes sent at create. report_memory
	// needs /proc/self/statm, which the VMM opened before the lockdown.
	crashy := writeFile(t, dir, "crashy.toml", fmt.Sprintf(`[[domain]]
name = "crashy"
kernel = %q
memory = "16M"
max_memory = "20M"
report_memory = true
vcpus = 2
on_crash = "restart"
restart_backoff = "10ms"
`, guest("crashtwice")))
	crashyID := created(p.ctl(t, "create", crashy), "crashy")
	if crashyID != spinID+2 {
		t.Errorf("crashy is domain %d, want %d: the next id after the destroyed spin's and its successor's", crashyID, spinID+2)
	}
	p.waitState(t, "crashy", "exited", time.Minute)
	// Its restarts keep its id.
	st := p.stats(t, "crashy")
	if st.Restarts != 2 || int(st.ID) != crashyID || st.Result == nil || st.Result.Kind != "exited" || st.Result.Status != 0 || st.Exits["io"] == 0 {
		t.Errorf("crashy: %+v result %+v", st, st.Result)
	}
	for _, want := range []string{"[crashy] boot 0: crashing on purpose", "[crashy] boot 1: crashing on purpose", "[crashy] boot 2: ok after 2 restarts"} {
		if !strings.Contains(p.stdout.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, p.stdout.String())
		}
	}
	// The crashes were reported as they happened, with the symbol.
	if n := strings.Count(p.stderr.String(), "domain crashed"); n != 2 {
		t.Errorf("%d crash messages, want 2:\n%s", n, p.stderr.String())
	}

	// shutdown: the VMM stops every domain, prints the summaries and
	// exits 0. Under the filter it cannot unlink its socket: the file
	// stays, nobody answers on it, and the next VMM replaces it.
	p.ctl(t, "shutdown")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Errorf("exit %d after shutdown:\n%s", code, p.stderr.String())
	}
	out := p.stdout.String()
	for _, want := range []string{"argovisor: hello (domain 1): exited with status 0", fmt.Sprintf("argovisor: crashy (domain %d): exited with status 0 (after 2 restarts)", crashyID)} {
		if !strings.Contains(out, want) {
			t.Errorf("summaries lack %q:\n%s", want, out)
		}
	}
	if st, err := os.Lstat(p.sock); err != nil || st.Mode()&fs.ModeSocket == 0 {
		t.Errorf("socket after shutdown under the filter: %v, want the stale socket left", err)
	}
	if r := p.ctlRaw(t, "list"); r.code == 0 {
		t.Errorf("something answers on the old socket: %v", r)
	}
	again := startVMMAt(t, p.sock)
	again.ctl(t, "shutdown")
	if code := again.wait(t, time.Minute); code != 0 {
		t.Errorf("second VMM on the stale socket: exit %d\n%s", code, again.stderr.String())
	}
}

// Without the filter (--seccomp=off) the VMM may open files: a create may
// name its kernel by path alone and have a console log, and the socket
// file is removed at exit.
func TestControlAPIWithoutFilter(t *testing.T) {
	p := startVMM(t, "--seccomp=off")
	dir := t.TempDir()
	body, _ := json.Marshal(map[string]any{"name": "hello", "kernel": guest("hello"), "memory": "16M"})
	if _, err := control.NewClient(p.sock).Create(context.Background(), body); err != nil {
		t.Fatalf("create by path: %v", err)
	}
	p.waitState(t, "hello", "exited", time.Minute)

	logPath := filepath.Join(dir, "crashy.log")
	crashy := writeFile(t, dir, "crashy.toml", fmt.Sprintf(`[[domain]]
name = "crashy"
kernel = %q
memory = "16M"
on_crash = "restart"
restart_backoff = "10ms"
console_log = "crashy.log"
`, guest("crashtwice")))
	p.ctl(t, "create", crashy)
	p.waitState(t, "crashy", "exited", time.Minute)
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[crashy] boot 0: crashing on purpose", "[crashy] boot 1: crashing on purpose", "[crashy] boot 2: ok after 2 restarts"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("console log lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(p.stdout.String(), "[crashy]") {
		t.Error("crashy's console lines went to stdout as well as its log")
	}

	// A stream socket through the API (made after start-up: only without
	// the filter), its connections in the domain's stats.
	sock := filepath.Join(dir, "echo.sock")
	echo := writeFile(t, dir, "echo.toml", fmt.Sprintf("[[domain]]\nname = \"echo\"\nkernel = %q\nmemory = \"64M\"\n[domain.params]\nrole = \"server\"\n[domain.stream]\nsocket = \"echo.sock\"\n", guest("streamecho")))
	p.ctl(t, "create", echo)
	for deadline := time.Now().Add(testutil.Scaled(time.Minute)); !strings.Contains(p.stdout.String(), "[echo] streamecho: listening"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("echo never listened:\n%s", p.stdout.String())
		}
	}
	c, rd := hostConnect(t, sock, 5000)
	pumpEcho(t, c, rd, 1<<20, 7)
	c.Close()
	st := p.stats(t, "echo")
	if st.Stream == nil || st.Stream.Socket != sock || st.Stream.HostIn != 1 || st.Stream.BytesToGuest != 1<<20 || st.Stream.BytesFromGuest != 1<<20 {
		t.Errorf("stream stats %+v", st.Stream)
	}
	p.ctl(t, "shutdown")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Errorf("exit %d after shutdown:\n%s", code, p.stderr.String())
	}
	if _, err := os.Lstat(p.sock); !os.IsNotExist(err) {
		t.Errorf("socket left after shutdown: %v", err)
	}
}

// /metrics against the guests' own counts.
func TestControlMetrics(t *testing.T) {
	const n, size = 2000, 64
	dir := t.TempDir()
	var cfg strings.Builder
	for _, r := range []struct{ name, role, peer string }{{"ping", "ping", "2"}, {"pong", "pong", "1"}} {
		fmt.Fprintf(&cfg, "[[domain]]\nname = %q\nkernel = %q\nmemory = \"16M\"\n[domain.params]\nrole = %q\npeer = %q\ncount = %d\nsize = %d\n",
			r.name, guest("pingpong"), r.role, r.peer, n, size)
	}
	p := startVMM(t, writeFile(t, dir, "pp.toml", cfg.String()))
	p.waitState(t, "ping", "exited", 5*time.Minute)
	p.waitState(t, "pong", "exited", time.Minute)

	m := regexp.MustCompile(`\[ping\] pingpong: (\d+) round trips ok, lost 0 corrupt 0 reordered 0`).FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("ping's own count missing:\n%s", p.stdout.String())
	}
	guestCount, _ := strconv.ParseFloat(m[1], 64)
	if !strings.Contains(p.stdout.String(), fmt.Sprintf("[pong] pingpong: echoed %d messages", n)) {
		t.Errorf("pong's own count missing:\n%s", p.stdout.String())
	}

	text := p.ctl(t, "metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, text)
	}
	find := func(name string, labels ...string) (float64, bool) {
	series:
		for _, s := range fams[name].GetMetric() {
			have := map[string]string{}
			for _, lp := range s.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			return metricValue(s), true
		}
		return 0, false
	}
	get := func(name string, labels ...string) float64 {
		t.Helper()
		if v, ok := find(name, labels...); ok {
			return v
		}
		t.Errorf("no series %s%v in:\n%s", name, labels, text)
		return -1
	}
	for _, d := range []string{"ping", "pong"} {
		for _, dir := range []string{"out", "in"} {
			if got := get("argovisor_argo_messages_total", "domain", d, "direction", dir); got != guestCount {
				t.Errorf("%s messages %s = %v, the guest counted %v", d, dir, got, guestCount)
			}
			if got := get("argovisor_argo_bytes_total", "domain", d, "direction", dir); got != guestCount*size {
				t.Errorf("%s bytes %s = %v, want %v", d, dir, got, guestCount*size)
			}
		}
		if got := get("argovisor_hypercalls_total", "domain", d, "op", "argo_op.sendv"); got < guestCount {
			t.Errorf("%s sendv hypercalls = %v, fewer than %v messages", d, got, guestCount)
		}
		if got := get("argovisor_domain_vcpus", "domain", d); got != 1 {
			t.Errorf("%s vcpus = %v", d, got)
		}
		if got := get("argovisor_domain_memory_bytes", "domain", d); got != 16<<20 {
			t.Errorf("%s memory = %v", d, got)
		}
		// Hypercalls are port I/O exits, or MMIO exits where the
		// guests ring the doorbell (docs/hypercall-abi.md).
		mmio, _ := find("argovisor_exits_total", "domain", d, "kind", "mmio")
		if got := get("argovisor_exits_total", "domain", d, "kind", "io") + mmio; got < guestCount {
			t.Errorf("%s io+mmio exits = %v", d, got)
		}
		if got := get("argovisor_virqs_total", "domain", d); got == 0 {
			t.Errorf("%s got no VIRQs", d)
		}
		if got := get("argovisor_domain_info", "domain", d, "state", "exited"); got != 1 {
			t.Errorf("%s info = %v", d, got)
		}
		// The JSON stats agree with the exposition.
		st := p.stats(t, d)
		if float64(st.Argo.MsgsOut) != guestCount || float64(st.Argo.Notifies) != get("argovisor_argo_notifies_total", "domain", d) {
			t.Errorf("%s: stats %+v disagree with the metrics", d, st.Argo)
		}
		var errSum float64
		for k := range st.Argo.ErrorsByErrno {
			errSum += get("argovisor_argo_errors_total", "domain", d, "errno", k)
		}
		if errSum != float64(st.Argo.Errors) {
			t.Errorf("%s: argo errors by errno sum to %v, total %d", d, errSum, st.Argo.Errors)
		}
	}
	p.ctl(t, "shutdown")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func metricValue(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// A SIGTERM while many domains are being created still stops what runs,
// prints a summary for every configured domain and exits 143.
func TestSIGTERMDuringStartup(t *testing.T) {
	requireKVM(t)
	const n = 40
	var cfg strings.Builder
	for i := range n {
		cfg.WriteString(domainTOML(fmt.Sprintf("s%02d", i), guest("spin"), "4M", 1, nil))
	}
	path := writeFile(t, t.TempDir(), "many.toml", cfg.String())
	cmd := exec.Command(cliPath, "run", "--log-level", "debug", path)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The first "domain created" message: start-up is under way.
	for deadline := time.Now().Add(time.Minute); !strings.Contains(stderr.String(), "domain created"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no domain created:\n%s", stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 143 {
		t.Fatalf("exit %v, want 143\n%s\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for i := range n {
		re := regexp.MustCompile(fmt.Sprintf(`(?m)^argovisor: s%02d( \(domain \d+\): (stopped: interrupted by terminated|stopped: never started)|: not created)$`, i))
		if !re.MatchString(out) {
			t.Errorf("no summary for s%02d:\n%s", i, out)
		}
	}
	if s := stderr.String(); strings.Contains(s, "panic:") || strings.Contains(s, "DATA RACE") {
		t.Errorf("panic or race:\n%s", s)
	}
}

// SIGINT after start-up: every domain stopped and summarised, exit 130.
func TestSIGINTExits130(t *testing.T) {
	requireKVM(t)
	path := writeFile(t, t.TempDir(), "spin.toml", domainTOML("spin", guest("spin"), "16M", 1, nil))
	cmd := exec.Command(cliPath, "run", "--json", path)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// With --json the console goes to stderr.
	for deadline := time.Now().Add(time.Minute); !strings.Contains(stderr.String(), "[spin] spinning"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("spin never printed:\n%s", stderr.String())
		}
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130\n%s", err, stderr.String())
	}
	var sum struct{ Domains []control.DomainStats }
	if err := json.Unmarshal([]byte(stdout.String()), &sum); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout.String())
	}
	if len(sum.Domains) != 1 || sum.Domains[0].Name != "spin" || sum.Domains[0].Result == nil ||
		sum.Domains[0].Result.Reason != "interrupted by interrupt" {
		t.Errorf("summary %+v", sum.Domains)
	}
}

// --timeout under a control API (issue 15) bounds the domains of the
// config — the one that runs is stopped, the one waiting to be restarted
// is not restarted — and nothing else: a domain created through the API before the timeout runs
// on, the VMM keeps serving (a create after it works too), and only the
// shutdown ends it, with exit status 0 as for any API run.
func TestControlTimeoutBoundsConfigDomains(t *testing.T) {
	const timeout = 8 * time.Second
	dir := t.TempDir()
	cfg := writeFile(t, dir, "vm.toml", domainTOML("spinner", guest("spin"), "16M", 1, nil)+
		domainTOML("quick", guest("hello"), "16M", 1, nil)+
		fmt.Sprintf(`[[domain]]
name = "looper"
kernel = %q
memory = "16M"
on_exit = "restart"
restart_limit = 1000
restart_backoff = "1s"
[domain.params]
status = "1"
`, guest("exitcode")))
	p := startVMM(t, "--timeout", timeout.String(), cfg)
	later := writeFile(t, dir, "later.toml", domainTOML("later", guest("spin"), "16M", 1, nil))
	p.ctl(t, "create", later)
	beforeTimeout := p.waitState(t, "spinner", "running", time.Minute).Result == nil
	p.waitState(t, "quick", "exited", time.Minute)

	want := "timed out after " + timeout.String()
	if d := p.waitState(t, "spinner", "stopped", timeout+time.Minute); d.Result == nil || d.Result.Reason != want {
		t.Errorf("spinner: %+v, want stopped with %q", d.Result, want)
	}
	// The looper exits at once and waits a growing backoff between
	// boots: the timeout finds it running (stopped, like spinner) or
	// waiting (never restarted again, keeping its last result).
	restarts := -1
	for deadline := time.Now().Add(time.Minute); restarts < 0; time.Sleep(50 * time.Millisecond) {
		for _, d := range p.list(t) {
			if d.Name != "looper" || d.State == "running" || d.State == "restarting" {
				continue
			}
			if r := d.Result; r == nil || !(d.State == "stopped" && r.Reason == want || d.State == "exited" && r.Status == 1) {
				t.Errorf("looper after the timeout: %s %+v", d.State, r)
			}
			restarts = d.Restarts
		}
		if restarts < 0 && time.Now().After(deadline) {
			t.Fatalf("looper still running or restarting after the timeout: %+v", p.list(t))
		}
	}
	for _, d := range p.list(t) {
		switch d.Name {
		case "quick":
			if d.Result == nil || d.Result.Text != "exited with status 0" {
				t.Errorf("quick ended before the timeout and keeps its result: %+v", d.Result)
			}
		case "later":
			if d.State != "running" {
				t.Errorf("later, created through the API, was stopped by the timeout: %+v", d)
			}
		}
	}
	if !beforeTimeout {
		t.Logf("the machine is slow: later may have been created after the timeout fired")
	}
	// The VMM still serves: a create works, and nothing else is stopped.
	after := writeFile(t, dir, "after.toml", domainTOML("after", guest("hello"), "16M", 1, nil))
	p.ctl(t, "create", after)
	p.waitState(t, "after", "exited", time.Minute)
	time.Sleep(2 * time.Second) // the looper would restart within its backoff
	for _, d := range p.list(t) {
		if d.Name == "later" && d.State != "running" {
			t.Errorf("later stopped after the timeout: %+v", d)
		}
		if d.Name == "looper" && ((d.State != "stopped" && d.State != "exited") || d.Restarts != restarts) {
			t.Errorf("looper restarted after the timeout stopped it: %+v (had %d restarts)", d, restarts)
		}
	}
	select {
	case <-p.done:
		t.Fatalf("the VMM exited (%d) after the timeout:\n%s", p.code, p.stderr.String())
	default:
	}
	p.ctl(t, "shutdown")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d after shutdown, want 0:\n%s\n%s", code, p.stdout.String(), p.stderr.String())
	}
	out := p.stdout.String()
	// (The API answers while start-up still creates the config's
	// domains, so later's id is not known.)
	for _, w := range []string{`spinner \(domain \d+\): stopped: ` + want, `later \(domain \d+\): stopped: VMM shut down through the control API`} {
		if !regexp.MustCompile(w).MatchString(out) {
			t.Errorf("summaries lack /%s/:\n%s", w, out)
		}
	}
	if !strings.Contains(p.stderr.String(), "timeout: stopped the configuration's domains still running") {
		t.Errorf("no log line for the timeout:\n%s", p.stderr.String())
	}
}
