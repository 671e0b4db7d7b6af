package memop

import (
	"encoding/binary"
	"math"

	"github.com/argovisor/argovisor/hcall"
)

// DomainID is a domain id (package hcall's, shared with argo and gnttab).
type DomainID = hcall.DomainID

// DomainSelf (DOMID_SELF) names the calling domain.
const DomainSelf DomainID = 0x7FF0

// Operation numbers (XENMEM_*) argovisor implements; others give -ENOSYS.
const (
	OpIncreaseReservation = 0
	OpDecreaseReservation = 1
	OpCurrentReservation  = 3
	OpMaximumReservation  = 4
	OpPopulatePhysmap     = 6
)

const (
	// extentShift is Xen's MEMOP_EXTENT_SHIFT: the bits of cmd above it
	// carry the extent to start at (Xen's continuation encoding).
	extentShift = 6
	cmdMask     = 1<<extentShift - 1
	// maxNrExtents is the largest nr_extents whose continuation Xen can
	// encode; larger requests do nothing.
	maxNrExtents = math.MaxUint32 >> extentShift

	// PageSize is the size of a frame.
	PageSize  = 4096
	pageShift = 12

	// MaxOrder is the largest extent_order a guest may use (Xen's
	// CONFIG_DOMU_MAX_ORDER on x86: 2 MiB extents).
	MaxOrder = 9
	// MaxExtents bounds the extents one call may process (argovisor has
	// no continuations; see docs/grant-tables.md).
	MaxExtents = 4096
	// DefaultMaxHoles bounds the separate runs of empty frames in a
	// domain's RAM region (each costs the VMM up to two memory mappings).
	DefaultMaxHoles = 32

	sizeofReservation = 32 // struct xen_memory_reservation, x86-64

	// mem_flags bits (XENMEMF_*).
	memfAddressBitsMask  = 0xFF
	memfPopulateOnDemand = 1 << 16
)

// Linux errno values; Op returns them negated.
const (
	EPERM  = 1
	ESRCH  = 3
	EFAULT = 14
	EINVAL = 22
	ENOSYS = 38
)

var le = binary.LittleEndian
