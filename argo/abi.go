package argo

import (
	"encoding/binary"

	"github.com/argovisor/argovisor/hcall"
)

// DomainID is a domain id; 0 is the host.
type DomainID = hcall.DomainID

// Special domain ids.
const (
	HostDomain DomainID = 0
	// DomainAny (XEN_ARGO_DOMID_ANY = DOMID_INVALID) as a ring partner makes
	// a wildcard ring; as a sendv source it means "the caller".
	DomainAny DomainID = 0x7FF4
)

// Operation numbers (XEN_ARGO_OP_*).
const (
	OpRegisterRing   = 1
	OpUnregisterRing = 2
	OpSendv          = 3
	OpNotify         = 4
)

// Limits (reference §4).
const (
	RingHeaderSize    = 64        // sizeof(xen_argo_ring)
	MsgHeaderSize     = 16        // sizeof(xen_argo_ring_message_header)
	MsgSlotSize       = 0x10      // XEN_ARGO_MSG_SLOT_SIZE
	MaxRingSize       = 0x1000000 // XEN_ARGO_MAX_RING_SIZE
	MinRingSize       = 48        // header slot + one payload slot + reserve slot
	MaxRingPages      = 4096      // MaxRingSize / PageSize
	MaxMessageSize    = 0xFFFFE0  // MAX_ARGO_MESSAGE_SIZE
	MaxIOV            = 8         // XEN_ARGO_MAXIOV
	MaxRingsPerDomain = 128       // MAX_RINGS_PER_DOMAIN
	MaxNotifyCount    = 256       // MAX_NOTIFY_COUNT
	MaxPendingPerRing = 32        // MAX_PENDING_PER_RING
	PageSize          = 4096
	pageShift         = 12
	RegisterFailExist = 0x1 // XEN_ARGO_REGISTER_FLAG_FAIL_EXIST
)

// Notify flags (XEN_ARGO_RING_*), written back per ring_data entry.
const (
	RingExists     = 0x1
	RingShared     = 0x2
	RingEmpty      = 0x4
	RingSufficient = 0x8
	RingEMsgSize   = 0x10
	RingEBusy      = 0x20
)

// Linux errno values; operations return them negated.
const (
	EPERM        = 1
	ENOENT       = 2
	ESRCH        = 3
	EAGAIN       = 11
	ENOMEM       = 12
	EACCES       = 13
	EFAULT       = 14
	EBUSY        = 16
	EEXIST       = 17
	ENODEV       = 19
	EINVAL       = 22
	ENOSPC       = 28
	EMSGSIZE     = 90
	EOPNOTSUPP   = 95
	ECONNREFUSED = 111
)

// Structure sizes (reference §3).
const (
	sizeofAddr         = 8
	sizeofSendAddr     = 16
	sizeofIOV          = 16
	sizeofRegisterRing = 12
	sizeofUnregister   = 8
	sizeofRingData     = 8
	sizeofRingDataEnt  = 20
)

// Addr is xen_argo_addr: {u32 aport; u16 domain_id; u16 pad}.
type Addr struct {
	Port   uint32
	Domain DomainID
	Pad    uint16
}

var le = binary.LittleEndian

func decodeAddr(b []byte) Addr {
	return Addr{Port: le.Uint32(b), Domain: DomainID(le.Uint16(b[4:])), Pad: le.Uint16(b[6:])}
}

func encodeAddr(b []byte, a Addr) {
	le.PutUint32(b, a.Port)
	le.PutUint16(b[4:], uint16(a.Domain))
	le.PutUint16(b[6:], a.Pad)
}

// roundup16 rounds n up to a multiple of the slot size.
func roundup16(n uint64) uint64 { return (n + MsgSlotSize - 1) &^ (MsgSlotSize - 1) }

// RingPages is the number of pages a ring of data length n needs: the
// 64-byte header plus n bytes, rounded up to whole pages.
func RingPages(n uint32) uint32 {
	return uint32((roundup16(uint64(n)) + RingHeaderSize + PageSize - 1) / PageSize)
}

// MaxPayload is the largest message payload a ring of length n accepts.
func MaxPayload(n uint32) uint32 { return n - 2*MsgSlotSize }
