package vmm

import "unsafe"

// ramAddr is the host virtual address of guest RAM, for
// KVM_SET_USER_MEMORY_REGION. The mapping is not Go heap memory, so the
// address stays valid until RAM.Close.
func ramAddr(r *RAM) uintptr { return uintptr(unsafe.Pointer(&r.mem[0])) }
