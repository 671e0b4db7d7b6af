package vmm

import (
	"fmt"

	"github.com/argovisor/argovisor/memop"
	"golang.org/x/sys/unix"
)

// Guest RAM has two shared mappings of its memfd (docs/memory-layout.md,
// "Empty frames"):
//
//   - RAM.mem, the VMM's own: it is never made inaccessible, so a VMM
//     access (a hypercall buffer, an Argo ring, a grant copy) that races
//     with a frame being taken away touches, at worst, a page the memfd
//     allocates again — never an inaccessible mapping that would crash
//     the whole process. Such a page is unreachable for the guest and is
//     dropped again when the frame is populated.
//   - RAM.guest, the one KVM maps into the guest (memory slot 0): an
//     empty frame is PROT_NONE here, so a guest access to it fails in
//     KVM with EFAULT and stops only that domain (vcpu.go).
//
// Giving a frame back to the host is fallocate(PUNCH_HOLE|KEEP_SIZE) on
// the memfd: the page is freed and unmapped from both mappings (and the
// grant windows), so the VMM's RSS and the memfd's allocated blocks drop.
// Populating punches the frame again (it is then certainly a hole: a
// fresh zero page on the next touch) before the guest mapping becomes
// read-write again.

// mapGuest creates the guest mapping of the whole RAM region, with frames
// from populated/PageSize on inaccessible (the part of a max_memory
// region that starts empty).
func (r *RAM) mapGuest(populated uint64) error {
	size := uintptr(len(r.mem))
	p, err := mmapFile(0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED, r.fd, 0)
	if err != nil {
		return fmt.Errorf("mmap guest RAM for KVM (%d bytes): %w", size, err)
	}
	r.guest = p
	if populated < uint64(size) {
		if err := mprotectAddr(p+uintptr(populated), size-uintptr(populated), unix.PROT_NONE); err != nil {
			return fmt.Errorf("make the empty part of the RAM region inaccessible: %w", err)
		}
	}
	return nil
}

// guestAddr is the host address of the guest mapping (KVM's slot 0).
func (r *RAM) guestAddr() uintptr { return r.guest }

// frames checks that [gfn, gfn+n) is inside the RAM and returns its byte
// offset and length.
func (r *RAM) frames(gfn, n uint64) (off, size uint64, err error) {
	pages := r.Size() / PageSize
	if n == 0 || gfn >= pages || n > pages-gfn || r.guest == 0 {
		return 0, 0, fmt.Errorf("frames %#x+%d: outside guest RAM (%d frames) or no guest mapping", gfn, n, pages)
	}
	return gfn * PageSize, n * PageSize, nil
}

// removeFrames makes frames [gfn, gfn+n) inaccessible to the guest and
// gives their memory back to the host. On error nothing has changed.
func (r *RAM) removeFrames(gfn, n uint64) error {
	off, size, err := r.frames(gfn, n)
	if err != nil {
		return err
	}
	if err := mprotectAddr(r.guest+uintptr(off), uintptr(size), unix.PROT_NONE); err != nil {
		return fmt.Errorf("remove frames %#x+%d: mprotect: %w", gfn, n, err)
	}
	if err := punchHole(r.fd, off, size); err != nil {
		_ = mprotectAddr(r.guest+uintptr(off), uintptr(size), unix.PROT_READ|unix.PROT_WRITE)
		return fmt.Errorf("remove frames %#x+%d: %w", gfn, n, err)
	}
	return nil
}

// populateFrames gives frames [gfn, gfn+n) fresh zero pages (allocated on
// first touch) and makes them accessible to the guest. On error nothing
// has changed.
func (r *RAM) populateFrames(gfn, n uint64) error {
	off, size, err := r.frames(gfn, n)
	if err != nil {
		return err
	}
	if err := punchHole(r.fd, off, size); err != nil {
		return fmt.Errorf("populate frames %#x+%d: %w", gfn, n, err)
	}
	if err := mprotectAddr(r.guest+uintptr(off), uintptr(size), unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return fmt.Errorf("populate frames %#x+%d: mprotect: %w", gfn, n, err)
	}
	return nil
}

// moveFrame moves the page at from's frame gfn to to's frame toGFN by
// copying it (docs/grant-tables.md says why not zero-copy): from's frame
// becomes inaccessible to its guest, the bytes go from one memfd to the
// other with pread and pwrite, to's frame becomes accessible, and from's
// page goes back to the host. The copy goes through the files rather than
// the VMM's mappings so that neither page gets mapped in the VMM's page
// tables: giving back a page mapped there costs a TLB shootdown (about
// 60 µs of an 80 µs move on the project's hosts). On error nothing has
// changed.
func moveFrame(from *RAM, gfn uint64, to *RAM, toGFN uint64) error {
	fo, _, err := from.frames(gfn, 1)
	if err != nil {
		return err
	}
	tOff, _, err := to.frames(toGFN, 1)
	if err != nil {
		return err
	}
	if err := mprotectAddr(from.guest+uintptr(fo), PageSize, unix.PROT_NONE); err != nil {
		return fmt.Errorf("move frame %#x: mprotect: %w", gfn, err)
	}
	restore := func() { _ = mprotectAddr(from.guest+uintptr(fo), PageSize, unix.PROT_READ|unix.PROT_WRITE) }
	var buf [PageSize]byte
	if n, err := unix.Pread(from.fd, buf[:], int64(fo)); err != nil || n != PageSize {
		restore()
		return fmt.Errorf("move frame %#x: read %d bytes: %v", gfn, n, err)
	}
	if n, err := unix.Pwrite(to.fd, buf[:], int64(tOff)); err != nil || n != PageSize {
		_ = punchHole(to.fd, tOff, PageSize)
		restore()
		return fmt.Errorf("move frame %#x to %#x: write %d bytes: %v", gfn, toGFN, n, err)
	}
	if err := mprotectAddr(to.guest+uintptr(tOff), PageSize, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		_ = punchHole(to.fd, tOff, PageSize)
		restore()
		return fmt.Errorf("move frame %#x to %#x: mprotect: %w", gfn, toGFN, err)
	}
	// The move is done; a failure here only leaves the sender's page
	// allocated (and unreachable) until the frame is populated again.
	_ = punchHole(from.fd, fo, PageSize)
	return nil
}

// dropVMMPages unmaps the pages the VMM touched through its own mapping
// while setting the domain up (kernel, tables, boot info). The memfd keeps
// them; the guest faults them in through its own mapping, so the VMM's RSS
// counts each guest page once rather than once per mapping.
func (r *RAM) dropVMMPages() {
	_ = unix.Madvise(r.mem, unix.MADV_DONTNEED) // shared mapping: only the PTEs go
}

// AllocatedBytes is how much host memory the RAM's memfd holds now (its
// allocated blocks).
func (r *RAM) AllocatedBytes() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		return 0, fmt.Errorf("fstat guest RAM memfd: %w", err)
	}
	return uint64(st.Blocks) * 512, nil
}

func punchHole(fd int, off, size uint64) error {
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(size)); err != nil {
		return fmt.Errorf("fallocate punch hole at %#x (+%d): %w", off, size, err)
	}
	return nil
}

func mprotectAddr(addr, length uintptr, prot int) error {
	if _, _, e := unix.Syscall(unix.SYS_MPROTECT, addr, length, uintptr(prot)); e != 0 {
		return e
	}
	return nil
}

// ramBacking implements memop.Backing over the domains' RAM.
type ramBacking struct {
	ram func(memop.DomainID) *RAM
}

func (b ramBacking) lookup(id memop.DomainID) (*RAM, error) {
	if r := b.ram(id); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("memory: no domain %d", id)
}

func (b ramBacking) Remove(id memop.DomainID, gfn, n uint64) error {
	r, err := b.lookup(id)
	if err != nil {
		return err
	}
	return r.removeFrames(gfn, n)
}

func (b ramBacking) Populate(id memop.DomainID, gfn, n uint64) error {
	r, err := b.lookup(id)
	if err != nil {
		return err
	}
	return r.populateFrames(gfn, n)
}

func (b ramBacking) Move(from memop.DomainID, gfn uint64, to memop.DomainID, toGFN uint64) error {
	fr, err := b.lookup(from)
	if err != nil {
		return err
	}
	tr, err := b.lookup(to)
	if err != nil {
		return err
	}
	return moveFrame(fr, gfn, tr, toGFN)
}

// physMem is a domain's RAM as its hypercalls, Argo and the grant tables
// reach it: only frames memop reports Present, so nothing is ever set up
// on an empty frame.
type physMem struct {
	ram *RAM
	p2m *memop.Domain
}

// Populate implements hcall.Populator: MADV_POPULATE_WRITE over the VMM's
// own mapping of [gpa, gpa+n) (whole pages; frames that are not populated
// are skipped by Slice's check). The pages are the memfd's, already
// allocated if the guest touched them; this only maps them, ahead of the
// VMM's first write.
func (m physMem) Populate(gpa, n uint64) {
	if gpa%PageSize != 0 || n%PageSize != 0 {
		return
	}
	if b, err := m.Slice(gpa, n); err == nil && n > 0 {
		_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
	}
}

// Slice implements PhysMemory.
func (m physMem) Slice(gpa, n uint64) ([]byte, error) {
	b, err := m.ram.Slice(gpa, n)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		first, last := gpa/PageSize, (gpa+n-1)/PageSize
		if !m.p2m.Present(first, last-first+1) {
			return nil, ErrFault
		}
	}
	return b, nil
}
