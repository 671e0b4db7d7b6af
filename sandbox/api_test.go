package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/argovisor/argovisor/control"
	"github.com/argovisor/argovisor/vmm"
)

// TestControlAPIUnderFilter serves the real control API (control.Server
// over a Unix socket from control.Listen) in a child under the allowlist
// argovisor run installs with --api-sock, killing on anything else; the
// child's backend decodes creates as the VMM does under --seccomp=on
// (kernel bytes in the body, no file opened). A create with a kernel
// image, the refusals, list, stats, metrics and shutdown all answer, and
// the child ends normally, its socket file left (it may not unlink).
func TestControlAPIUnderFilter(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	c := startChild(t, "api", "SOCK="+sock)
	c.waitFor(t, "READY")
	api := control.NewClient(sock)
	ctx := context.Background()

	img := bytes.Repeat([]byte("kernel bytes "), 100_000) // 1.3 MiB
	body, _ := json.Marshal(map[string]any{"name": "k", "kernel": "/abs/k.elf", "memory": "16M", "kernel_image": img})
	if info, err := api.Create(ctx, body); err != nil || info.Name != "k" || info.ID != 1 {
		t.Fatalf("create with a kernel image: %+v, %v\nchild stderr:\n%s", info, err, c.stderr.String())
	}
	for _, b := range []string{
		`{"name": "p", "kernel": "/etc/passwd", "memory": "16M"}`,
		`{"name": "p", "kernel_image": "AAAA", "memory": "16M", "console_log": "/tmp/x"}`,
		`not json`,
	} {
		var ae *control.APIError
		if _, err := api.Create(ctx, []byte(b)); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("create %s: %v, want a 400", b, err)
		}
	}
	if l, err := api.List(ctx); err != nil || len(l) != 1 || l[0].Name != "k" {
		t.Errorf("list: %+v, %v", l, err)
	}
	if st, err := api.Stats(ctx, "k"); err != nil || st.Memory != 16<<20 {
		t.Errorf("stats: %+v, %v", st, err)
	}
	if m, err := api.Metrics(ctx); err != nil || !strings.Contains(m, `argovisor_domain_memory_bytes{domain="k"} 1.6777216e+07`) {
		t.Errorf("metrics: %v\n%s", err, m)
	}
	if err := api.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	out, ws := c.finish()
	wantOK(t, "api", out, c.stderr.String(), ws)
	if _, err := os.Lstat(sock); err != nil {
		t.Errorf("the socket file is gone: %v", err)
	}
}

// serveAPI is the child of TestControlAPIUnderFilter.
func serveAPI(path string) error {
	l, err := control.Listen(path)
	if err != nil {
		return err
	}
	l.KeepFile()
	b := &filteredBackend{}
	srv := control.NewServer(b, nil)
	if err := Lockdown(Config{Needs: createNeeds()}); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	fmt.Println("READY")
	<-srv.ShutdownRequested()
	waitStdin()
	if err := srv.Close(context.Background()); err != nil {
		return err
	}
	if err := <-done; err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.domains) != 1 || b.images != 1 {
		return fmt.Errorf("%d domains from %d images, want 1 from 1", len(b.domains), b.images)
	}
	return nil
}

// filteredBackend keeps domain records only, decoding creates as the VMM
// does under --seccomp=on.
type filteredBackend struct {
	mu      sync.Mutex
	domains []control.DomainInfo
	images  int
}

func (f *filteredBackend) List() []control.DomainInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]control.DomainInfo{}, f.domains...)
}

func (f *filteredBackend) Stats(name string) (control.DomainStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.domains {
		if d.Name == name {
			return control.DomainStats{DomainInfo: d}, nil
		}
	}
	return control.DomainStats{}, fmt.Errorf("%w: %q", control.ErrNotFound, name)
}

func (f *filteredBackend) AllStats() []control.DomainStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []control.DomainStats
	for _, d := range f.domains {
		out = append(out, control.DomainStats{DomainInfo: d})
	}
	return out
}

func (f *filteredBackend) Create(body []byte) (control.DomainInfo, error) {
	cfg, err := vmm.DecodeDomainJSON(body, vmm.DomainJSONOptions{NoFiles: true})
	if err != nil {
		return control.DomainInfo{}, fmt.Errorf("%w: %w", control.ErrBadRequest, err)
	}
	img, err := io.ReadAll(io.NewSectionReader(cfg.KernelData, 0, vmm.MaxKernelImage))
	if err != nil || len(img) == 0 {
		return control.DomainInfo{}, fmt.Errorf("reading the image: %v (%d bytes)", err, len(img))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images++
	d := control.DomainInfo{ID: uint16(len(f.domains) + 1), Name: cfg.Name, State: "running", VCPUs: cfg.VCPUs, Memory: cfg.Memory}
	f.domains = append(f.domains, d)
	return d, nil
}

func (f *filteredBackend) Stop(_ context.Context, name string) (control.DomainInfo, error) {
	st, err := f.Stats(name)
	return st.DomainInfo, err
}

func (f *filteredBackend) Destroy(name string) (control.DomainInfo, error) {
	st, err := f.Stats(name)
	return st.DomainInfo, err
}
