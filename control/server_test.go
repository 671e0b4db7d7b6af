package control

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/argovisor/argovisor/hostsock"
	"github.com/argovisor/argovisor/vmm"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeBackend is a plain Go stand-in for the VMM: domains in a slice,
// with counters the test sets.
type fakeBackend struct {
	mu      sync.Mutex
	domains []DomainStats
	nextID  uint16
	failAll error // if set, Stats/Create/Stop/Destroy return it
}

func (f *fakeBackend) find(name string) (int, error) {
	i := slices.IndexFunc(f.domains, func(d DomainStats) bool { return d.Name == name })
	if i < 0 {
		return -1, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return i, f.failAll
}

func (f *fakeBackend) List() []DomainInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []DomainInfo{}
	for _, d := range f.domains {
		out = append(out, d.DomainInfo)
	}
	return out
}

func (f *fakeBackend) Stats(name string) (DomainStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, err := f.find(name)
	if err != nil {
		return DomainStats{}, err
	}
	return f.domains[i], nil
}

func (f *fakeBackend) AllStats() []DomainStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.domains)
}

func (f *fakeBackend) Create(body []byte) (DomainInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAll != nil {
		return DomainInfo{}, f.failAll
	}
	var req struct {
		Name  string `json:"name"`
		VCPUs int    `json:"vcpus"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Name == "" {
		return DomainInfo{}, fmt.Errorf("%w: want a JSON object with a name", ErrBadRequest)
	}
	if _, err := f.find(req.Name); err == nil {
		return DomainInfo{}, fmt.Errorf("%w: domain name %q already in use", ErrConflict, req.Name)
	}
	f.nextID++
	d := DomainStats{DomainInfo: DomainInfo{ID: f.nextID, Name: req.Name, State: "running", VCPUs: max(req.VCPUs, 1), Memory: 16 << 20}}
	f.domains = append(f.domains, d)
	return d.DomainInfo, nil
}

func (f *fakeBackend) Stop(_ context.Context, name string) (DomainInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, err := f.find(name)
	if err != nil {
		return DomainInfo{}, err
	}
	d := &f.domains[i]
	d.State = "stopped"
	d.Result = &ResultInfo{Kind: "stopped", Reason: "stopped through the control API", Text: "stopped: stopped through the control API"}
	return d.DomainInfo, nil
}

func (f *fakeBackend) Destroy(name string) (DomainInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, err := f.find(name)
	if err != nil {
		return DomainInfo{}, err
	}
	d := f.domains[i]
	f.domains = slices.Delete(f.domains, i, i+1)
	return d.DomainInfo, nil
}

// serve starts a server over b on a socket in a temp dir; configure, if
// any, changes it before it serves.
func serve(t *testing.T, b Backend, configure ...func(*Server)) (*Server, *Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(b, nil)
	for _, f := range configure {
		f(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, NewClient(sock), sock
}

func apiStatus(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func TestRoutes(t *testing.T) {
	fb := &fakeBackend{}
	const limit = 1 << 20
	s, c, sock := serve(t, fb, func(s *Server) { s.maxCreate = limit })
	ctx := context.Background()

	if l, err := c.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("empty list = %v, %v", l, err)
	}
	info, err := c.Create(ctx, []byte(`{"name": "ping", "vcpus": 2}`))
	if err != nil || info.Name != "ping" || info.ID != 1 || info.VCPUs != 2 || info.State != "running" {
		t.Fatalf("create = %+v, %v", info, err)
	}
	if _, err := c.Create(ctx, []byte(`{"name": "pong"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, []byte(`{"name": "ping"}`)); apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("duplicate create: %v", err)
	}
	if _, err := c.Create(ctx, []byte(`not json`)); apiStatus(err) != http.StatusBadRequest {
		t.Errorf("bad body: %v", err)
	}
	if _, err := c.Create(ctx, []byte(strings.Repeat("x", limit+1))); apiStatus(err) != http.StatusRequestEntityTooLarge || !strings.Contains(err.Error(), "kernel image of at most 64 MiB") {
		t.Errorf("huge body: %v", err)
	}
	l, err := c.List(ctx)
	if err != nil || len(l) != 2 || l[0].Name != "ping" || l[1].Name != "pong" {
		t.Fatalf("list = %+v, %v", l, err)
	}
	st, err := c.Stats(ctx, "pong")
	if err != nil || st.Name != "pong" || st.ID != 2 {
		t.Errorf("stats = %+v, %v", st, err)
	}
	if _, err := c.Stats(ctx, "nope"); apiStatus(err) != http.StatusNotFound || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("stats of a missing domain: %v", err)
	}
	stopped, err := c.Stop(ctx, "ping")
	if err != nil || stopped.State != "stopped" || stopped.Result == nil || stopped.Result.Kind != "stopped" {
		t.Errorf("stop = %+v, %v", stopped, err)
	}
	if _, err := c.Stop(ctx, "nope"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("stop of a missing domain: %v", err)
	}
	if d, err := c.Destroy(ctx, "ping"); err != nil || d.Name != "ping" {
		t.Errorf("destroy = %+v, %v", d, err)
	}
	if _, err := c.Destroy(ctx, "ping"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("destroy twice: %v", err)
	}
	if l, _ := c.List(ctx); len(l) != 1 || l[0].Name != "pong" {
		t.Errorf("list after destroy = %+v", l)
	}
	// Backend failures of other kinds are 500s with the message.
	fb.failAll = errors.New("disk on fire")
	if _, err := c.Stats(ctx, "pong"); apiStatus(err) != http.StatusInternalServerError || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("backend failure: %v", err)
	}
	fb.failAll = nil

	// Wrong methods and unknown routes answer JSON errors too.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{http.MethodPut, "/v1/domains", http.StatusMethodNotAllowed, "GET, POST"},
		{http.MethodGet, "/v1/domains/pong/stop", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/v1/shutdown", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/v2/whatever", http.StatusNotFound, ""},
	} {
		req, _ := http.NewRequest(tc.method, "http://x"+tc.path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		allow := strings.Split(resp.Header.Get("Allow"), ", ")
		slices.Sort(allow)
		if resp.StatusCode != tc.code || eb.Error == "" || resp.Header.Get("Content-Type") != "application/json" ||
			tc.allow != "" && strings.Join(allow, ", ") != tc.allow {
			t.Errorf("%s %s: %d %q allow %q", tc.method, tc.path, resp.StatusCode, eb.Error, resp.Header.Get("Allow"))
		}
	}

	// Shutdown is acknowledged, then signalled to the VMM's owner; later
	// creates are refused.
	select {
	case <-s.ShutdownRequested():
		t.Fatal("shutdown requested before anyone asked")
	default:
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-s.ShutdownRequested()
	if err := c.Shutdown(ctx); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
	if _, err := c.Create(ctx, []byte(`{"name": "late"}`)); apiStatus(err) != http.StatusServiceUnavailable {
		t.Errorf("create during shutdown: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	fb := &fakeBackend{domains: []DomainStats{{
		DomainInfo: DomainInfo{ID: 3, Name: "ping", State: "running", VCPUs: 2, Memory: 16 << 20, UptimeSeconds: 1.5, Restarts: 2},
		Exits:      map[string]uint64{"io": 100, "kick": 3}, Hypercalls: 42,
		HypercallsByOp:  map[string]uint64{"argo_op.sendv": 40, "argo_op.register_ring": 2},
		HypercallErrors: map[string]uint64{"ECONNREFUSED": 9},
		VIRQs:           17,
		Argo: ArgoStats{Rings: 1, MsgsOut: 40, BytesOut: 2560, MsgsIn: 31, BytesIn: 1984, EAGAINs: 4, Notifies: 5,
			SpaceWakeups: 6, Errors: 9, ErrorsByErrno: map[string]uint64{"ECONNREFUSED": 9},
			Suppressed: 11, Waits: 13, WaitsBlocked: 12, SpaceWaits: 14},
		WaitsPolled: 15, WaitsSlept: 16, Doorbells: 17, DoorbellBad: 18,
		Gnttab: GnttabStats{Maps: 7, Unmaps: 6, Copies: 2, CopyBytes: 8192, Revoked: 1, Mapped: 1, Errors: 3,
			ErrorsByStatus: map[string]uint64{"GNTST_bad_gntref": 2}, ErrorsByErrno: map[string]uint64{"EFAULT": 1}},
		Reservation: MemoryStats{CurrentPages: 2048, MaxPages: 4096, BackingBytes: 5 << 20, Decreased: 21,
			Populated: 20, TransfersOut: 3, TransfersIn: 4},
		Stream: &StreamStats{Socket: "/tmp/p.sock", Stats: hostsock.Stats{Active: 2, HostIn: 5, HostOut: 1, Refused: 3,
			Resets: 4, BadInput: 6, Dropped: 7, BytesToGuest: 1000, BytesFromGuest: 900}},
	}}}
	_, c, _ := serve(t, fb)
	text, err := c.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	get := func(name string, labels ...string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Errorf("no family %s", name)
			return -1
		}
	metrics:
		for _, m := range f.Metric {
			have := map[string]string{}
			for _, lp := range m.Label {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			return value(m)
		}
		t.Errorf("%s%v: no such series", name, labels)
		return -1
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"argovisor_domain_info", []string{"domain", "ping", "id", "3", "state", "running"}, 1},
		{"argovisor_domain_vcpus", []string{"domain", "ping"}, 2},
		{"argovisor_domain_memory_bytes", nil, 16 << 20},
		{"argovisor_domain_uptime_seconds", nil, 1.5},
		{"argovisor_domain_restarts_total", nil, 2},
		{"argovisor_exits_total", []string{"kind", "io"}, 100},
		{"argovisor_exits_total", []string{"kind", "kick"}, 3},
		{"argovisor_hypercalls_total", []string{"op", "argo_op.sendv"}, 40},
		{"argovisor_hypercall_errors_total", []string{"errno", "ECONNREFUSED"}, 9},
		{"argovisor_virqs_total", nil, 17},
		{"argovisor_argo_messages_total", []string{"direction", "out"}, 40},
		{"argovisor_argo_messages_total", []string{"direction", "in"}, 31},
		{"argovisor_argo_bytes_total", []string{"direction", "out"}, 2560},
		{"argovisor_argo_bytes_total", []string{"direction", "in"}, 1984},
		{"argovisor_argo_eagain_total", nil, 4},
		{"argovisor_argo_notifies_total", nil, 5},
		{"argovisor_argo_space_wakeups_total", nil, 6},
		{"argovisor_argo_errors_total", []string{"errno", "ECONNREFUSED"}, 9},
		{"argovisor_argo_rings", nil, 1},
		{"argovisor_argo_virqs_suppressed_total", nil, 11},
		{"argovisor_argo_waits_total", []string{"result", "any"}, 13},
		{"argovisor_argo_waits_total", []string{"result", "blocked"}, 12},
		{"argovisor_memory_reservation_pages", []string{"kind", "current"}, 2048},
		{"argovisor_memory_reservation_pages", []string{"kind", "max"}, 4096},
		{"argovisor_memory_backing_bytes", nil, 5 << 20},
		{"argovisor_memory_frames_total", []string{"kind", "decreased"}, 21},
		{"argovisor_memory_frames_total", []string{"kind", "populated"}, 20},
		{"argovisor_memory_frames_total", []string{"kind", "transferred_out"}, 3},
		{"argovisor_memory_frames_total", []string{"kind", "transferred_in"}, 4},
		{"argovisor_argo_space_waits_total", nil, 14},
		{"argovisor_vcpu_waits_total", []string{"how", "polled"}, 15},
		{"argovisor_vcpu_waits_total", []string{"how", "slept"}, 16},
		{"argovisor_doorbells_total", []string{"kind", "ok"}, 17},
		{"argovisor_doorbells_total", []string{"kind", "bad"}, 18},
		{"argovisor_stream_connections", nil, 2},
		{"argovisor_stream_connections_total", []string{"direction", "host_to_guest"}, 5},
		{"argovisor_stream_connections_total", []string{"direction", "guest_to_host"}, 1},
		{"argovisor_stream_refused_total", nil, 3},
		{"argovisor_stream_resets_total", nil, 4},
		{"argovisor_stream_bad_input_total", nil, 6},
		{"argovisor_stream_dropped_total", nil, 7},
		{"argovisor_stream_bytes_total", []string{"direction", "to_guest"}, 1000},
		{"argovisor_stream_bytes_total", []string{"direction", "from_guest"}, 900},
		{"argovisor_gnttab_maps_total", nil, 7},
		{"argovisor_gnttab_unmaps_total", nil, 6},
		{"argovisor_gnttab_copies_total", nil, 2},
		{"argovisor_gnttab_copy_bytes_total", nil, 8192},
		{"argovisor_gnttab_revoked_total", nil, 1},
		{"argovisor_gnttab_mapped", nil, 1},
		{"argovisor_gnttab_errors_total", []string{"error", "GNTST_bad_gntref"}, 2},
		{"argovisor_gnttab_errors_total", []string{"error", "EFAULT"}, 1},
	} {
		if got := get(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if f := fams["argovisor_exits_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("exits_total is %v, want a counter", f.GetType())
	}
	if f := fams["argovisor_argo_rings"]; f.GetType() != dto.MetricType_GAUGE {
		t.Errorf("argo_rings is %v, want a gauge", f.GetType())
	}
	// Live: the next scrape sees new counts and new domains.
	fb.mu.Lock()
	fb.domains[0].Argo.MsgsOut = 41
	fb.domains = append(fb.domains, DomainStats{DomainInfo: DomainInfo{ID: 4, Name: "pong", State: "crashed", VCPUs: 1}})
	fb.mu.Unlock()
	text, _ = c.Metrics(context.Background())
	if fams, err = p.TextToMetricFamilies(strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	if got := get("argovisor_argo_messages_total", "domain", "ping", "direction", "out"); got != 41 {
		t.Errorf("after an update: %v", got)
	}
	if got := get("argovisor_domain_info", "domain", "pong", "state", "crashed"); got != 1 {
		t.Errorf("new domain: %v", got)
	}
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

func TestListenSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(sock)
	if err != nil || st.Mode()&fs.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket file %v, %v: want a socket with mode 0600", st.Mode(), err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// A second VMM on the same path fails with a clear message and leaves
	// the first one's socket alone.
	if _, err := Listen(sock); !errors.Is(err, ErrSocketInUse) || !strings.Contains(err.Error(), "another process is already serving") {
		t.Errorf("second Listen: %v", err)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Errorf("the first socket is gone: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Close left the socket file: %v", err)
	}
	// KeepFile (a VMM under its seccomp filter cannot unlink): the socket
	// stays, nobody answers on it, and the next Listen replaces it.
	kept, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	kept.KeepFile()
	if err := kept.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(sock); err != nil || st.Mode()&fs.ModeSocket == 0 {
		t.Errorf("KeepFile: the socket file is gone after Close: %v", err)
	}
	if _, err := NewClient(sock).List(context.Background()); err == nil {
		t.Error("something answers on the kept socket after Close")
	}
	again, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a kept socket: %v", err)
	}
	again.Close()
	// A stale socket (its process gone: nobody accepts) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	l2, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	// A regular file in the way is not removed.
	if err := os.WriteFile(sock, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(sock); string(b) != "precious" {
		t.Error("the regular file was touched")
	}
	// No temporary directory is left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(ents))
	}
}

// imageBackend is the fake backend whose create goes through
// VMMBackend's real decoding (as under --seccomp=on: NoFiles) and records
// what it decoded.
type imageBackend struct {
	fakeBackend
	s *Server

	// mu guards images and locked.
	mu     sync.Mutex
	images [][]byte
	locked bool // whether every create ran with the create lock held
}

func (b *imageBackend) Create(body []byte) (DomainInfo, error) {
	// The server holds createMu across the whole create.
	if b.s.createMu.TryLock() {
		b.s.createMu.Unlock()
		b.mu.Lock()
		b.locked = false
		b.mu.Unlock()
	}
	cfg, err := (&VMMBackend{NoFiles: true, Dir: "/nonexistent"}).decode(body)
	if err != nil {
		return DomainInfo{}, err
	}
	img, err := io.ReadAll(io.NewSectionReader(cfg.KernelData, 0, 1<<30))
	if err != nil {
		return DomainInfo{}, err
	}
	b.mu.Lock()
	b.images = append(b.images, img)
	b.mu.Unlock()
	return b.fakeBackend.Create(body)
}

// TestCreateKernelImage: a create carries its kernel as bytes
// (kernel_image, base64) — more than the old 1 MiB body — and reaches the
// backend whole; with the process unable to open files, a create that
// names only a path is a 400 saying what to send, as is a console_log;
// a body over the bound is a 413 and never reaches the backend.
func TestCreateKernelImage(t *testing.T) {
	b := &imageBackend{locked: true}
	const limit = 4 << 20
	_, c, _ := serve(t, b, func(s *Server) { b.s = s; s.maxCreate = limit })
	ctx := context.Background()
	img := make([]byte, 2<<20)
	for i := range img {
		img[i] = byte(i * 7)
	}
	body, err := json.Marshal(map[string]any{"name": "k", "kernel": "/abs/k.elf", "memory": "16M", "kernel_image": img})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Create(ctx, body)
	if err != nil || info.Name != "k" {
		t.Fatalf("create with a 2 MiB image: %+v, %v", info, err)
	}
	b.mu.Lock()
	if len(b.images) != 1 || !bytes.Equal(b.images[0], img) {
		t.Fatalf("the backend decoded %d images, want the one sent", len(b.images))
	}
	if !b.locked {
		t.Error("a create ran without the create lock")
	}
	b.mu.Unlock()
	for _, tc := range []struct{ body, want string }{
		{`{"name": "p", "kernel": "/abs/k.elf", "memory": "16M"}`, "the kernel must be sent in kernel_image"},
		{`{"name": "p", "kernel_image": "f0VMRg==", "memory": "16M", "console_log": "/tmp/p.log"}`, "console_log is not available"},
		{`{"name": "p", "kernel_image": "%%%", "memory": "16M"}`, "base64"},
	} {
		if _, err := c.Create(ctx, []byte(tc.body)); apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %s: %v, want 400 mentioning %q", tc.body, err, tc.want)
		}
	}
	huge, err := json.Marshal(map[string]any{"name": "h", "memory": "16M", "kernel_image": make([]byte, limit)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, huge); apiStatus(err) != http.StatusRequestEntityTooLarge {
		t.Errorf("create over the bound: %v, want 413", err)
	}
	b.mu.Lock()
	if len(b.images) != 1 {
		t.Errorf("%d images reached the backend, want only the first", len(b.images))
	}
	b.mu.Unlock()
	if l, _ := c.List(ctx); len(l) != 1 {
		t.Errorf("list = %+v, want only k", l)
	}
	// The real bound holds the largest image the VMM accepts, in base64.
	if MaxCreateBody < base64.StdEncoding.EncodedLen(vmm.MaxKernelImage)+len(`{"name":"x","kernel_image":""}`) {
		t.Errorf("MaxCreateBody %d cannot hold a %d-byte image", MaxCreateBody, vmm.MaxKernelImage)
	}
}

func TestClientWithoutServer(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	_, err := c.List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Errorf("List without a server: %v", err)
	}
}
