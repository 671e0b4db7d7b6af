package vmm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrFault reports a guest address that does not translate to guest RAM:
// outside RAM, not mapped by the guest's page tables, or not writable for a
// write. Hypercalls turn it into -EFAULT.
var ErrFault = errors.New("guest address fault")

// PageSize is the guest's base page size.
const PageSize = 4096

// PhysMemory is guest-physical memory as seen by the VMM: a bounds-checked
// window onto host memory. Guest RAM implements it; unit tests use a plain
// byte slice (SliceMemory).
type PhysMemory interface {
	// Slice returns the host bytes backing [gpa, gpa+n), or ErrFault if
	// any byte is outside guest RAM. The slice aliases guest memory: the
	// guest may change it concurrently.
	Slice(gpa, n uint64) ([]byte, error)
}

// SliceMemory is PhysMemory over an ordinary byte slice starting at GPA 0.
type SliceMemory []byte

// Slice implements PhysMemory.
func (m SliceMemory) Slice(gpa, n uint64) ([]byte, error) {
	end := gpa + n
	if end < gpa || end > uint64(len(m)) {
		return nil, ErrFault
	}
	return m[gpa:end:end], nil
}

// RAM is a domain's guest RAM: a memfd of Size bytes mapped shared into the
// VMM at GPA 0 of the guest. The memfd lets other mappings of the same pages
// exist (grant tables map them into other domains).
type RAM struct {
	fd  int
	mem []byte
	// guest is a second mapping, the one KVM maps into the guest, in
	// which empty frames are inaccessible (balloon.go); 0 if none.
	guest uintptr
}

// NewRAM creates size bytes of zeroed guest RAM backed by a memfd named after
// the domain.
func NewRAM(name string, size uint64) (*RAM, error) {
	if size == 0 || size%PageSize != 0 {
		return nil, fmt.Errorf("guest RAM size %#x is not a positive multiple of %d", size, PageSize)
	}
	fd, err := unix.MemfdCreate("argovisor:"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ftruncate memfd to %d: %w", size, err)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mmap guest RAM (%d bytes): %w", size, err)
	}
	return &RAM{fd: fd, mem: mem}, nil
}

// Size is the RAM size in bytes.
func (r *RAM) Size() uint64 { return uint64(len(r.mem)) }

// FD is the memfd backing the RAM.
func (r *RAM) FD() int { return r.fd }

// Bytes is the whole host mapping.
func (r *RAM) Bytes() []byte { return r.mem }

// Slice implements PhysMemory.
func (r *RAM) Slice(gpa, n uint64) ([]byte, error) { return SliceMemory(r.mem).Slice(gpa, n) }

// Close unmaps the RAM and closes the memfd.
func (r *RAM) Close() error {
	var errs []error
	if r.guest != 0 {
		if err := munmapAddr(r.guest, uintptr(len(r.mem))); err != nil {
			errs = append(errs, fmt.Errorf("munmap guest RAM (KVM mapping): %w", err))
		}
		r.guest = 0
	}
	if r.mem != nil {
		if err := unix.Munmap(r.mem); err != nil {
			errs = append(errs, fmt.Errorf("munmap guest RAM: %w", err))
		}
		r.mem = nil
	}
	if r.fd >= 0 {
		if err := unix.Close(r.fd); err != nil {
			errs = append(errs, fmt.Errorf("close memfd: %w", err))
		}
		r.fd = -1
	}
	return errors.Join(errs...)
}

// readU64 reads a little-endian u64 at gpa.
func readU64(m PhysMemory, gpa uint64) (uint64, error) {
	b, err := m.Slice(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}
