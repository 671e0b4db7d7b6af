package gnttab

import (
	"encoding/binary"

	"github.com/argovisor/argovisor/hcall"
)

// DomainID is a domain id.
type DomainID = hcall.DomainID

// DomainSelf (DOMID_SELF) names the calling domain wherever an op takes a
// domain id.
const DomainSelf DomainID = 0x7FF0

// Operation numbers (GNTTABOP_*), plus argovisor's own extension.
const (
	OpMapGrantRef      = 0
	OpUnmapGrantRef    = 1
	OpSetupTable       = 2
	OpDumpTable        = 3
	OpTransfer         = 4
	OpCopy             = 5
	OpQuerySize        = 6
	OpUnmapAndReplace  = 7
	OpSetVersion       = 8
	OpGetStatusFrames  = 9
	OpGetVersion       = 10
	OpSwapGrantRef     = 11
	OpCacheFlush       = 12
	OpQueryRevoked     = 64 // argovisor extension, see docs/grant-tables.md
	opCmdMask          = 1<<12 - 1
	continuationShift  = 12
	MaxBatch           = 4096 // most elements one call may carry
	PageSize           = 4096
	pageShift          = 12
	EntrySize          = 8   // sizeof(grant_entry_v1_t)
	EntriesPerFrame    = 512 // PageSize / EntrySize
	HandlesPerFrame    = 256 // maptrack entries per frame (16 bytes each in Xen)
	DefaultMaxFrames   = 64
	DefaultMaxMaptrack = 1024
	// initialFrames is the table size before the first setup_table.
	initialFrames = 1
	// maxConfigFrames bounds both Config limits so that sizes cannot
	// overflow.
	maxConfigFrames = 1 << 20
)

// Grant entry flags (GTF_*), v1.
const (
	GTFInvalid        = 0
	GTFPermitAccess   = 1
	GTFAcceptTransfer = 2
	GTFTransitive     = 3
	GTFTypeMask       = 3
	GTFReadonly       = 1 << 2
	GTFReading        = 1 << 3
	GTFWriting        = 1 << 4
	GTFPWT            = 1 << 5
	GTFPCD            = 1 << 6
	GTFPAT            = 1 << 7
	GTFSubPage        = 1 << 8
	gtfCacheMask      = GTFPWT | GTFPCD | GTFPAT
	// For GTF_accept_transfer entries, bits 2 and 3 mean:
	GTFTransferCommitted = 1 << 2 // the VMM took the entry for a transfer
	GTFTransferCompleted = 1 << 3 // the frame has arrived; frame is valid
)

// Map flags (GNTMAP_*).
const (
	GNTMAPDeviceMap      = 1 << 0
	GNTMAPHostMap        = 1 << 1
	GNTMAPReadonly       = 1 << 2
	GNTMAPApplicationMap = 1 << 3
	GNTMAPContainsPTE    = 1 << 4
)

// Copy flags (GNTCOPY_*).
const (
	GNTCOPYSourceGref = 1 << 0
	GNTCOPYDestGref   = 1 << 1
)

// Per-element status codes (GNTST_*).
const (
	GNTSTOkay             = 0
	GNTSTGeneralError     = -1
	GNTSTBadDomain        = -2
	GNTSTBadGntref        = -3
	GNTSTBadHandle        = -4
	GNTSTBadVirtAddr      = -5
	GNTSTBadDevAddr       = -6
	GNTSTNoDeviceSpace    = -7
	GNTSTPermissionDenied = -8
	GNTSTBadPage          = -9
	GNTSTBadCopyArg       = -10
	GNTSTAddressTooBig    = -11
	GNTSTEagain           = -12
	GNTSTNoSpace          = -13
)

// Pin counter layout of an active entry (GNTPIN_*): four 8-bit counters.
// Only the host counters are used: there are no device mappings.
const (
	pinHostW        = 1 << 0
	pinHostR        = 1 << 8
	pinHostWMask    = 0xFF << 0
	pinHostRMask    = 0xFF << 8
	pinDevWMask     = 0xFF << 16
	pinWriteMask    = pinHostWMask | pinDevWMask
	pinOverflowBits = 0x80808080
)

// Linux errno values; Op returns them negated.
const (
	EPERM      = 1
	ESRCH      = 3
	EFAULT     = 14
	EINVAL     = 22
	ENOSYS     = 38
	EOPNOTSUPP = 95
)

// Structure sizes, x86-64 layout.
const (
	sizeofMap            = 32 // gnttab_map_grant_ref
	sizeofUnmap          = 24 // gnttab_unmap_grant_ref
	sizeofSetupTable     = 24 // gnttab_setup_table
	sizeofCopy           = 40 // gnttab_copy
	sizeofQuerySize      = 16 // gnttab_query_size
	sizeofUnmapReplace   = 24 // gnttab_unmap_and_replace
	sizeofSetVersion     = 4  // gnttab_set_version
	sizeofGetStatusFrame = 16 // gnttab_get_status_frames
	sizeofGetVersion     = 8  // gnttab_get_version
	sizeofSwap           = 12 // gnttab_swap_grant_ref
	sizeofQueryRevoked   = 16 // argovisor: query_revoked
	sizeofTransfer       = 24 // gnttab_transfer
)

var le = binary.LittleEndian

// status encodes a GNTST_* code as the i16 status field's bits.
func status(st int16) uint16 { return uint16(st) }
