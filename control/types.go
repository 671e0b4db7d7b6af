package control

import (
	"errors"
	"fmt"

	"github.com/argovisor/argovisor/hostsock"
)

// DomainInfo is one domain as the list route shows it.
type DomainInfo struct {
	ID            uint16  `json:"id"`
	Name          string  `json:"name"`
	State         string  `json:"state"` // created, running, restarting, exited, crashed, stopped
	VCPUs         int     `json:"vcpus"`
	Memory        uint64  `json:"memory"` // bytes
	UptimeSeconds float64 `json:"uptime_seconds"`
	Restarts      int     `json:"restarts"`
	// Result is how the domain (or, while it restarts, its last
	// instance) ended; absent while it runs for the first time.
	Result *ResultInfo `json:"result,omitempty"`
}

// ResultInfo is how a domain ended.
type ResultInfo struct {
	Kind   string     `json:"kind"`             // exited, crashed, stopped
	Status int32      `json:"status"`           // exit status, for exited
	Reason string     `json:"reason,omitempty"` // for stopped and crashed
	Fault  *FaultInfo `json:"fault,omitempty"`  // for crashed
	Text   string     `json:"text"`             // one line for people
}

// FaultInfo describes a crash.
type FaultInfo struct {
	VCPU      int    `json:"vcpu"`
	Vector    int    `json:"vector"` // -1 if not an exception
	Exception string `json:"exception,omitempty"`
	ErrorCode uint64 `json:"error_code"`
	RIP       uint64 `json:"rip"`
	Symbol    string `json:"symbol,omitempty"` // RIP as symbol+offset
	CR2       uint64 `json:"cr2"`
}

// DomainStats is one domain's counters, as the stats route shows them.
type DomainStats struct {
	DomainInfo
	Exits           map[string]uint64 `json:"exits"`
	Hypercalls      uint64            `json:"hypercalls"`
	HypercallsByOp  map[string]uint64 `json:"hypercalls_by_op"`
	HypercallErrors map[string]uint64 `json:"hypercall_errors"`
	UnknownPorts    uint64            `json:"unknown_ports"`
	VIRQs           uint64            `json:"virqs"`
	// WaitsPolled and WaitsSlept: Argo waits whose answer came while the
	// vCPU polled for it, and those that slept (run --wait-poll).
	WaitsPolled uint64 `json:"waits_polled"`
	// Doorbells counts hypercalls made through the doorbell page,
	// DoorbellBad other accesses to it (ignored: hypercall-abi.md).
	Doorbells   uint64      `json:"doorbells"`
	DoorbellBad uint64      `json:"doorbell_bad"`
	WaitsSlept  uint64      `json:"waits_slept"`
	Argo        ArgoStats   `json:"argo"`
	Gnttab      GnttabStats `json:"gnttab"`
	Reservation MemoryStats `json:"reservation"`
	// Stream is the domain's stream socket (docs/streams.md), absent
	// without one.
	Stream *StreamStats `json:"stream,omitempty"`
}

// StreamStats are a domain's stream socket and its counters.
type StreamStats struct {
	Socket string `json:"socket"`
	hostsock.Stats
}

// MemoryStats are a domain's memory reservation (memory_op) and host
// memory.
type MemoryStats struct {
	CurrentPages uint64 `json:"current_pages"` // Xen's tot_pages
	MaxPages     uint64 `json:"max_pages"`
	BackingBytes uint64 `json:"backing_bytes"` // host memory the RAM's memfd holds now
	Decreased    uint64 `json:"decreased"`
	Populated    uint64 `json:"populated"`
	TransfersOut uint64 `json:"transfers_out"`
	TransfersIn  uint64 `json:"transfers_in"`
	MemopErrors  uint64 `json:"errors"`
}

// ArgoStats are a domain's Argo counters.
type ArgoStats struct {
	Rings         int64             `json:"rings"`
	Registers     uint64            `json:"registers"`
	MsgsOut       uint64            `json:"msgs_out"`
	BytesOut      uint64            `json:"bytes_out"`
	MsgsIn        uint64            `json:"msgs_in"`
	BytesIn       uint64            `json:"bytes_in"`
	EAGAINs       uint64            `json:"eagain"`
	Notifies      uint64            `json:"notifies"`
	SpaceWakeups  uint64            `json:"space_wakeups"`
	Errors        uint64            `json:"errors"`
	ErrorsByErrno map[string]uint64 `json:"errors_by_errno"`
	// Beyond Xen (argo.md): VIRQs a receiver's event index or polling
	// flag suppressed, waits in the VMM (of which blocked), and batched
	// sends that slept for ring space.
	Suppressed   uint64 `json:"virqs_suppressed"`
	Waits        uint64 `json:"waits"`
	WaitsBlocked uint64 `json:"waits_blocked"`
	SpaceWaits   uint64 `json:"space_waits"`
}

// GnttabStats are a domain's grant-table counters.
type GnttabStats struct {
	Maps           uint64            `json:"maps"`
	Unmaps         uint64            `json:"unmaps"`
	Copies         uint64            `json:"copies"`
	CopyBytes      uint64            `json:"copy_bytes"`
	Revoked        uint64            `json:"revoked"`
	Mapped         int64             `json:"mapped"`
	Errors         uint64            `json:"errors"`
	ErrorsByStatus map[string]uint64 `json:"errors_by_status"`
	ErrorsByErrno  map[string]uint64 `json:"errors_by_errno"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
}

// StatusBody is the body of the shutdown response.
type StatusBody struct {
	Status string `json:"status"`
}

// Errors a Backend returns (wrapped) to choose the HTTP status.
var (
	ErrNotFound   = errors.New("no such domain")       // 404
	ErrBadRequest = errors.New("bad request")          // 400
	ErrConflict   = errors.New("conflict")             // 409
	ErrShutdown   = errors.New("VMM is shutting down") // 503
)

// APIError is an error response as the client sees it.
type APIError struct {
	Status  int    // HTTP status
	Message string // the body's "error"
}

func (e *APIError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }
