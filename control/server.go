package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/argovisor/argovisor/vmm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Backend is what the server needs from a VMM. Names are domain names.
// Errors wrapping ErrNotFound, ErrBadRequest, ErrConflict or ErrShutdown
// choose the HTTP status; any other is a 500.
type Backend interface {
	// List returns every domain in creation order.
	List() []DomainInfo
	// Stats returns one domain's counters.
	Stats(name string) (DomainStats, error)
	// AllStats returns every domain's counters (for /metrics).
	AllStats() []DomainStats
	// Create builds and starts a domain from a JSON object with the keys
	// of a [[domain]] table.
	Create(body []byte) (DomainInfo, error)
	// Stop ends a domain through its exit path (no restart follows) and
	// waits, until ctx ends, for it to have stopped; it stays listed.
	Stop(ctx context.Context, name string) (DomainInfo, error)
	// Destroy ends a domain now, frees it and forgets it (its name can
	// be used again). It returns the domain as it was last.
	Destroy(name string) (DomainInfo, error)
}

// MaxCreateBody bounds a create body: a kernel image of the largest size
// (vmm.MaxKernelImage) in base64, and 1 MiB for the rest of the domain
// table. A larger body gets 413 without being read further.
const MaxCreateBody = (vmm.MaxKernelImage+2)/3*4 + 1<<20

// Server serves the control API on a listener.
type Server struct {
	b    Backend
	log  *slog.Logger
	srv  *http.Server
	mux  *http.ServeMux
	stop chan struct{} // closed when a client asks for shutdown
	once sync.Once

	// maxCreate is MaxCreateBody (smaller in tests).
	maxCreate int64
	// createMu serialises creates, from reading the body to the domain
	// built: however many clients send at once, the VMM holds one body
	// and one kernel image being decoded at a time. Leaf lock.
	createMu sync.Mutex
}

// NewServer makes a server over b. log receives one line per request
// (debug) and per failed request (warn); nil means none.
func NewServer(b Backend, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{b: b, log: log, mux: http.NewServeMux(), stop: make(chan struct{}), maxCreate: MaxCreateBody}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(b))
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogErrorLog{log}})
	s.route("/metrics", map[string]http.HandlerFunc{http.MethodGet: metrics.ServeHTTP})
	s.route("/v1/domains", map[string]http.HandlerFunc{http.MethodGet: s.list, http.MethodPost: s.create})
	s.route("/v1/domains/{name}", map[string]http.HandlerFunc{http.MethodGet: s.stats, http.MethodDelete: s.destroy})
	s.route("/v1/domains/{name}/stop", map[string]http.HandlerFunc{http.MethodPost: s.stopDomain})
	s.route("/v1/shutdown", map[string]http.HandlerFunc{http.MethodPost: s.shutdown})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "no route "+r.URL.Path+" (see docs/api.md)")
	})
	s.srv = &http.Server{Handler: s.mux}
	return s
}

// route registers the handlers of one path, one per method; any other
// method gets a JSON 405 naming the allowed ones.
func (s *Server) route(path string, byMethod map[string]http.HandlerFunc) {
	var allowed []string
	for m := range byMethod {
		allowed = append(allowed, m)
	}
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		s.log.Debug("api request", "method", r.Method, "path", r.URL.Path)
		if h, ok := byMethod[r.Method]; ok {
			h(w, r)
			return
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		s.fail(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+path+"; use "+strings.Join(allowed, " or "))
	})
}

// Handler is the API's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// Serve answers requests on l until Close. It returns nil after Close.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ShutdownRequested is closed when a client has asked the VMM to shut
// down (POST /v1/shutdown).
func (s *Server) ShutdownRequested() <-chan struct{} { return s.stop }

// Close stops accepting requests and waits, until ctx ends, for the ones
// in flight.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.b.List())
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	st, err := s.b.Stats(r.PathValue("name"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	var body bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= s.maxCreate {
		body.Grow(int(n) + bytes.MinRead) // read without growing again
	}
	if _, err := body.ReadFrom(http.MaxBytesReader(w, r.Body, s.maxCreate)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes (a kernel image of at most %d MiB, in base64, and the domain table)", s.maxCreate, vmm.MaxKernelImage>>20))
			return
		}
		s.fail(w, r, http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	select {
	case <-s.stop:
		s.error(w, r, ErrShutdown)
		return
	default:
	}
	info, err := s.b.Create(body.Bytes())
	s.answer(w, r, "created", http.StatusCreated, info, err)
}

func (s *Server) stopDomain(w http.ResponseWriter, r *http.Request) {
	info, err := s.b.Stop(r.Context(), r.PathValue("name"))
	s.answer(w, r, "stopped", http.StatusOK, info, err)
}

func (s *Server) destroy(w http.ResponseWriter, r *http.Request) {
	info, err := s.b.Destroy(r.PathValue("name"))
	s.answer(w, r, "destroyed", http.StatusOK, info, err)
}

// answer ends a route that acted on one domain: the error's status, or a
// log line saying what was done and the domain's info with code.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, done string, code int, info DomainInfo, err error) {
	if err != nil {
		s.error(w, r, err)
		return
	}
	s.log.Info("api: domain "+done, "domain", info.Name, "id", info.ID)
	writeJSON(w, code, info)
}

func (s *Server) shutdown(w http.ResponseWriter, r *http.Request) {
	s.log.Info("api: shutdown requested")
	writeJSON(w, http.StatusAccepted, StatusBody{Status: "shutting down"})
	s.once.Do(func() { close(s.stop) })
}

// error answers with the status err's kind calls for.
func (s *Server) error(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, ErrShutdown):
		code = http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	s.fail(w, r, code, err.Error())
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.log.Warn("api request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", msg)
	writeJSON(w, code, ErrorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// slogErrorLog passes promhttp's errors to the logger.
type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Println(v ...any) {
	l.log.Warn("metrics", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}
