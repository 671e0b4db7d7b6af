package argo

import (
	"sync/atomic"
	"unsafe"
)

// atomicLoad32 loads a 32-bit little-endian index shared with a guest. b
// is 4-byte aligned: ring headers start on a page.
func atomicLoad32(b []byte) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[0])))
}

// atomicStore32 stores a shared 32-bit index; Go's atomic store is
// sequentially consistent, so every earlier data write is visible first.
func atomicStore32(b []byte, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[0])), v)
}
