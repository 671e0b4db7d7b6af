package gnttab

import "unsafe"

// The grant table lives in guest memory and is shared with the guest, so
// the VMM reads and updates it with atomic operations only. These helpers
// turn offsets into the table into pointers for sync/atomic. They rely on
// the table's base being 8-byte aligned (AddDomain checks it) and on a
// little-endian host: the low half of an entry's first 32-bit word is
// flags, the high half is domid.

// word32 points at the 32-bit word at b[off]; off is a multiple of 4.
func word32(b []byte, off uint64) *uint32 {
	w := b[off : off+4] // bounds check without touching the memory
	return (*uint32)(unsafe.Pointer(unsafe.SliceData(w)))
}

// word64 points at the 64-bit word at b[off]; off is a multiple of 8.
func word64(b []byte, off uint64) *uint64 {
	w := b[off : off+8]
	return (*uint64)(unsafe.Pointer(unsafe.SliceData(w)))
}

// aligned8 reports whether b starts on an 8-byte boundary.
func aligned8(b []byte) bool {
	return len(b) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%8 == 0
}
