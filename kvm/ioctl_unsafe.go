package kvm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctlPtr issues an ioctl whose argument is a pointer to a kernel struct.
// The pointer is converted to uintptr inside the call expression, as the
// unsafe.Pointer rules require for syscalls.
func ioctlPtr(fd uintptr, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
	if e != 0 {
		return r, e
	}
	return r, nil
}

// ptr converts a struct pointer for ioctlPtr.
func ptr[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
