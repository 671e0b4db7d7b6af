package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

const testPage = 4096

// testMemory stands in for a domain's memory: a memfd mapped whole (its
// RAM), and a reserved inaccessible range (its grant window) into which
// pages are placed with mmap(MAP_FIXED) as vmm/grant.go does.
type testMemory struct {
	fd     int
	view   []byte
	window []byte
}

func newTestMemory() (*testMemory, error) {
	fd, err := unix.MemfdCreate("sandbox-test", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	m := &testMemory{fd: fd}
	if err := unix.Ftruncate(fd, 2*testPage); err != nil {
		return nil, fmt.Errorf("ftruncate: %w", err)
	}
	if m.view, err = unix.Mmap(fd, 0, 2*testPage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("mmap memfd: %w", err)
	}
	if m.window, err = unix.Mmap(-1, 0, 4*testPage, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE); err != nil {
		return nil, fmt.Errorf("reserve window: %w", err)
	}
	return m, nil
}

// place maps one page at window page i with MAP_FIXED.
func (m *testMemory) place(i int, fd int, off int64, prot, flags int) error {
	addr := uintptr(unsafe.Pointer(&m.window[i*testPage]))
	r, _, e := unix.Syscall6(unix.SYS_MMAP, addr, testPage, uintptr(prot), uintptr(flags|unix.MAP_FIXED), uintptr(fd), uintptr(off))
	if e != 0 {
		return fmt.Errorf("mmap MAP_FIXED at window page %d: %w", i, e)
	}
	if r != addr {
		return fmt.Errorf("mmap MAP_FIXED placed the page at %#x, not %#x", r, addr)
	}
	return nil
}

// exercise maps a memfd page into the window, checks both views see each
// other's writes, replaces it with an inaccessible page (unmap) and
// another with a private zero page (revocation), and punches a hole.
func (m *testMemory) exercise() error {
	m.view[0] = 0x5a
	if err := m.place(1, m.fd, 0, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return err
	}
	if m.window[testPage] != 0x5a {
		return fmt.Errorf("window shows %#x, RAM holds 0x5a", m.window[testPage])
	}
	m.window[testPage+1] = 0xa5
	if m.view[1] != 0xa5 {
		return fmt.Errorf("RAM shows %#x after a write of 0xa5 through the window", m.view[1])
	}
	if err := m.place(1, -1, 0, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE); err != nil {
		return err
	}
	if err := m.place(2, -1, 0, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE); err != nil {
		return err
	}
	m.window[2*testPage] = 1
	if err := unix.Fallocate(m.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, testPage); err != nil {
		return fmt.Errorf("punch hole: %w", err)
	}
	if m.view[0] != 0 || m.view[1] != 0 {
		return fmt.Errorf("punched page still holds %#x %#x", m.view[0], m.view[1])
	}
	return nil
}

// ioctl issues request req on the memfd.
func (m *testMemory) ioctl(req uintptr) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(m.fd), req, 0); e != 0 {
		return e
	}
	return nil
}

// execveat tries to execute the memfd (all zeros: ENOEXEC if let through).
func (m *testMemory) execveat() error {
	empty := [1]byte{}
	argv := [1]*byte{}
	_, _, e := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(m.fd), uintptr(unsafe.Pointer(&empty[0])),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&argv[0])), unix.AT_EMPTY_PATH, 0)
	if e != 0 {
		return e
	}
	return nil
}

func (m *testMemory) close() error {
	if err := unix.Munmap(m.window); err != nil {
		return fmt.Errorf("munmap window: %w", err)
	}
	if err := unix.Munmap(m.view); err != nil {
		return fmt.Errorf("munmap RAM: %w", err)
	}
	return unix.Close(m.fd)
}
