package vmm

import "golang.org/x/sys/unix"

// The grant window is host memory outside the Go heap, addressed as
// uintptr, so these call mmap/munmap directly instead of going through
// []byte or unsafe.Pointer.

// mmapAnon maps anonymous memory at addr (0: anywhere) and returns its
// address.
func mmapAnon(addr, length uintptr, prot, flags int) (uintptr, error) {
	return mmapRaw(addr, length, prot, flags, -1, 0)
}

// mmapFile maps length bytes of fd at off to addr.
func mmapFile(addr, length uintptr, prot, flags, fd int, off int64) (uintptr, error) {
	return mmapRaw(addr, length, prot, flags, fd, off)
}

func mmapRaw(addr, length uintptr, prot, flags, fd int, off int64) (uintptr, error) {
	p, _, e := unix.Syscall6(unix.SYS_MMAP, addr, length, uintptr(prot), uintptr(flags), uintptr(fd), uintptr(off))
	if e != 0 {
		return 0, e
	}
	return p, nil
}

func munmapAddr(addr, length uintptr) error {
	if _, _, e := unix.Syscall(unix.SYS_MUNMAP, addr, length, 0); e != 0 {
		return e
	}
	return nil
}
