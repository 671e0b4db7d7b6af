// Package hcall holds what every hypercall mechanism (Argo, grant tables,
// and those that follow) needs to know about the call it serves: the domain
// id type, a domain's guest-physical memory, and the calling context. It is
// the one definition; argo and gnttab name these types as aliases, so the
// VMM hands the same value to each of them and a fake written for one
// package's tests fits the other's.
package hcall

import "time"

// DomainID is a domain's id: 0 is the host, guests count from 1, and the
// values from 0x7FF0 up are Xen's reserved ids (DOMID_SELF, DOMID_INVALID, …).
type DomainID uint16

// Memory is one domain's guest-physical memory: Slice returns the host bytes
// backing [gpa, gpa+n) or an error if any of it is not the domain's RAM.
// The bytes alias guest memory, which the guest may change concurrently.
type Memory interface {
	Slice(gpa, n uint64) ([]byte, error)
}

// Caller is the context of one hypercall: the calling domain and access to
// its address space at the addresses it passed (guest-virtual addresses for
// guests, translated through the calling vCPU's page tables). Errors mean
// the address is not accessible (-EFAULT).
type Caller interface {
	Domain() DomainID
	ReadGuest(addr uint64, p []byte) error
	WriteGuest(addr uint64, p []byte) error
}

// Mapper is implemented by a Caller that can give the host bytes behind
// its addresses directly, so that a mechanism copies between guests with
// one copy() per contiguous run instead of a ReadGuest per piece (Argo's
// sendv). A mechanism checks for it with a type assertion and falls back
// to ReadGuest/WriteGuest without it.
type Mapper interface {
	// MapGuest returns the host bytes behind the longest run of
	// [addr, addr+n) that starts at addr and is contiguous in host
	// memory: at least one byte and at most n when n > 0. An error
	// (-EFAULT) means addr itself is not accessible (for writing, when
	// write is set); a later byte that is not ends the run before it, and
	// the next call, from there, fails. The bytes alias the caller's
	// memory, which its guest may change concurrently; they are valid for
	// the rest of the hypercall only.
	MapGuest(addr, n uint64, write bool) ([]byte, error)
}

// Populator is implemented by a Memory whose host pages can be made
// present in the VMM's mapping ahead of use, so that later accesses take
// no page faults (Argo populates a ring's pages when it is registered, so
// that sends into it do not fault page by page while they hold its lock).
type Populator interface {
	// Populate makes the host pages behind [gpa, gpa+n) present for
	// writing. Best effort: memory that is not the domain's is skipped,
	// and failures are ignored (the pages then fault in on first use).
	Populate(gpa, n uint64)
}

// Blocker is implemented by a Caller that may block inside the VMM: the
// hypercall of a vCPU that waits for an event (Argo's wait operations).
// A mechanism checks for it with a type assertion, so callers that cannot
// block (the host endpoint, test fakes) need not implement it.
type Blocker interface {
	// Block waits until wake is ready (closed), timeout has passed
	// (a negative timeout never passes), or the caller has to return to
	// its guest: its vCPU was kicked or sent an interrupt, or its domain
	// is stopping. The caller must hold no lock while blocked.
	Block(wake <-chan struct{}, timeout time.Duration) BlockResult
}

// BlockResult says why Block returned.
type BlockResult int

// Reasons for Block to return.
const (
	Woken       BlockResult = iota // wake became ready
	TimedOut                       // the timeout passed
	Interrupted                    // kicked, interrupted or stopping
)

// Origin is implemented by callers that can say where in the calling domain
// a hypercall came from: the vCPU that made it and that vCPU's
// address-space root (CR3) at the time of the call. The VMM reads both from
// the exit, so a guest cannot choose them. Mechanisms that stamp a sending
// context (Argo rings registered for it) check for it with a type
// assertion; a caller without it (the host endpoint) has no such context.
type Origin interface {
	VCPU() uint32
	AddressSpace() uint64
}
