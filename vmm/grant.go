package vmm

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// Grant-table guest-physical regions (docs/memory-layout.md).
const (
	// GrantTableGPA is where a domain's grant table frames appear.
	GrantTableGPA = 0xC0000000
	// MaxGrantFrames bounds [domain.gnttab] max_frames.
	MaxGrantFrames = 1024
	// GrantWindowGPA starts the grant window: the read-write half, then
	// the read-only half.
	GrantWindowGPA = 0xC8000000
	// GrantWindowHalf is the size of each half.
	GrantWindowHalf = 256 << 20
	// GrantWindowROGPA starts the read-only half.
	GrantWindowROGPA = GrantWindowGPA + GrantWindowHalf

	slotRAM       = 0
	slotGrantTab  = 1
	slotWindowRW  = 2
	slotWindowRO  = 3
	grantWinBytes = 2 * GrantWindowHalf
)

// ErrWindow is returned for a window operation on an address outside the
// window or not page aligned.
var ErrWindow = errors.New("address outside the grant window")

// grantWindow is a domain's grant window: one host address range, reserved
// inaccessible, registered with KVM as two memory slots (the read-only half
// with KVM_MEM_READONLY, so a guest write there is an MMIO exit the VMM
// drops). Granted pages are placed into it with mmap(MAP_FIXED) of the
// granter's memfd; KVM's MMU notifier sees the change, so no memory slot is
// added or removed per grant.
type grantWindow struct {
	// mu serialises changes to the mappings and guards roPages. Leaf lock.
	mu   sync.Mutex
	base uintptr // host address of GrantWindowGPA
	// roPages holds the read-only half's pages that have something
	// mapped (a granted frame or a revoked dead page). A guest write to
	// the read-only half arrives as an MMIO exit whatever the backing, so
	// the VMM needs this to stop a domain that writes to an unmapped page
	// there, as touching one in the read-write half does.
	roPages map[uint64]bool
}

// newGrantWindow reserves the window's host address range.
func newGrantWindow() (*grantWindow, error) {
	p, err := mmapAnon(0, grantWinBytes, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("reserve grant window (%d MiB): %w", grantWinBytes>>20, err)
	}
	return &grantWindow{base: p, roPages: map[uint64]bool{}}, nil
}

func (w *grantWindow) close() error {
	if w == nil || w.base == 0 {
		return nil
	}
	err := munmapAddr(w.base, grantWinBytes)
	w.base = 0
	if err != nil {
		return fmt.Errorf("munmap grant window: %w", err)
	}
	return nil
}

// valid reports whether gpa is a page in the half of the window used for
// mappings of this kind.
func windowValid(gpa uint64, ro bool) bool {
	if gpa%PageSize != 0 {
		return false
	}
	lo := uint64(GrantWindowGPA)
	if ro {
		lo = GrantWindowROGPA
	}
	return gpa >= lo && gpa < lo+GrantWindowHalf
}

func (w *grantWindow) hostAddr(gpa uint64) uintptr { return w.base + uintptr(gpa-GrantWindowGPA) }

// mapFrame makes gpa show page gfn of the memfd fd.
func (w *grantWindow) mapFrame(gpa uint64, fd int, gfn uint64, ro bool) error {
	if !windowValid(gpa, ro) {
		return fmt.Errorf("map grant at %#x: %w", gpa, ErrWindow)
	}
	prot := unix.PROT_READ
	if !ro {
		prot |= unix.PROT_WRITE
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := mmapFile(w.hostAddr(gpa), PageSize, prot, unix.MAP_SHARED|unix.MAP_FIXED, fd, int64(gfn*PageSize)); err != nil {
		return fmt.Errorf("mmap granted frame %#x at %#x: %w", gfn, gpa, err)
	}
	if ro {
		w.roPages[gpa] = true
	}
	return nil
}

// roWriteDropped reports whether a guest write at gpa in the read-only
// half hits a mapped page (the write is then dropped, as documented) rather
// than an unmapped one.
func (w *grantWindow) roWriteDropped(gpa uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.roPages[gpa&^(PageSize-1)]
}

// inReadOnlyWindow reports whether gpa lies in the read-only half.
func inReadOnlyWindow(gpa uint64) bool {
	return gpa >= GrantWindowROGPA && gpa < GrantWindowROGPA+GrantWindowHalf
}

// replace puts anonymous pages back at gpas, one mmap call per run of
// contiguous pages (so a batch of adjacent unmaps costs one invalidation).
// dead pages are zero pages the mapper may keep reading and writing: its
// writes land in a private copy that belongs to nobody and is dropped at
// unmap (revocation: the mapper keeps running, the granter never sees
// them); otherwise the pages are inaccessible (unmap: touching one stops
// the domain with a fault).
func (w *grantWindow) replace(gpas []uint64, dead bool) error {
	for _, g := range gpas {
		if g%PageSize != 0 || g < GrantWindowGPA || g >= GrantWindowGPA+grantWinBytes {
			return fmt.Errorf("unmap grant at %#x: %w", g, ErrWindow)
		}
	}
	sorted := append([]uint64(nil), gpas...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	w.mu.Lock()
	defer w.mu.Unlock()
	prot := unix.PROT_NONE
	if dead {
		prot = unix.PROT_READ | unix.PROT_WRITE
	}
	var errs []error
	for i := 0; i < len(sorted); {
		// [i, j) is a run of adjacent (or repeated) pages in one half.
		j := i + 1
		for j < len(sorted) && (sorted[j] == sorted[j-1] ||
			sorted[j] == sorted[j-1]+PageSize && (sorted[j] >= GrantWindowROGPA) == (sorted[i] >= GrantWindowROGPA)) {
			j++
		}
		n := uintptr(sorted[j-1]-sorted[i]) + PageSize
		if _, err := mmapAnon(w.hostAddr(sorted[i]), n, prot, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|unix.MAP_NORESERVE); err != nil {
			errs = append(errs, fmt.Errorf("replace grant pages at %#x (+%d): %w", sorted[i], n/PageSize, err))
		}
		for g := sorted[i]; g <= sorted[j-1]; g += PageSize {
			if inReadOnlyWindow(g) {
				if dead {
					w.roPages[g] = true
				} else {
					delete(w.roPages, g)
				}
			}
		}
		i = j
	}
	return errors.Join(errs...)
}
