package vmm

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/memop"
)

// region is the size of the domain's RAM region (its maximum
// reservation) in bytes.
func (c DomainConfig) region() uint64 { return max(c.Memory, c.MaxMemory) }

// Memop is the VMM's memory-reservation state.
func (v *VMM) Memop() *memop.Memop { return v.memop }

// memopHypercall serves hypercall 12: memory_op(cmd, arg).
func (v *VMM) memopHypercall(h *Hypercall) int64 {
	a := &h.Args
	d := h.Domain
	op := a[0] & 63
	if !d.cfg.ReportMemory || (op != memop.OpIncreaseReservation && op != memop.OpDecreaseReservation && op != memop.OpPopulatePhysmap) {
		return v.memop.Op(caller{h}, a[0], a[1])
	}
	before := d.memorySample()
	ret := v.memop.Op(caller{h}, a[0], a[1])
	after := d.memorySample()
	name := map[uint64]string{memop.OpIncreaseReservation: "increase_reservation",
		memop.OpDecreaseReservation: "decrease_reservation", memop.OpPopulatePhysmap: "populate_physmap"}[op]
	v.console(d, fmt.Sprintf("argovisor: memory_op %s = %d; reservation %d -> %d pages; RAM in host memory %d -> %d KiB; VMM RSS %d -> %d KiB",
		name, ret, before.pages, after.pages, before.backingKiB, after.backingKiB, before.rssKiB, after.rssKiB))
	return ret
}

// PrepareMemoryReports opens now what report_memory reads
// (/proc/self/statm), so that domains created after the process sandbox
// is on — through the control API — can report too: the sandbox lets the
// VMM read open files but not open any. Without it, the first domain with
// report_memory opens it.
func (v *VMM) PrepareMemoryReports() error { return v.openStatm() }

// openStatm opens /proc/self/statm once, for memory reports: after setup
// the process sandbox lets the VMM read open files but not open any.
func (v *VMM) openStatm() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.statm != nil {
		return nil
	}
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return fmt.Errorf("report_memory: %w", err)
	}
	v.statm = f
	return nil
}

// memorySample is what a memory report shows.
type memorySample struct {
	pages, backingKiB, rssKiB uint64
}

func (d *Domain) memorySample() memorySample {
	s := d.MemoryStats()
	return memorySample{pages: s.Current, backingKiB: s.Backing >> 10, rssKiB: d.vmm.processRSSKiB()}
}

// processRSSKiB is the VMM process's resident set (0 if unknown).
func (v *VMM) processRSSKiB() uint64 {
	v.mu.RLock()
	statm := v.statm
	v.mu.RUnlock()
	if statm == nil {
		return 0
	}
	var b [128]byte
	n, err := statm.ReadAt(b[:], 0)
	if n == 0 && err != nil {
		return 0
	}
	f := strings.Fields(string(b[:n]))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize()) >> 10
}

// MemoryStats are a domain's reservation, counters and host memory.
type MemoryStats struct {
	memop.Stats
	// Backing is the host memory the domain's RAM memfd holds now, in
	// bytes (its allocated blocks).
	Backing uint64
}

// MemoryStats returns the domain's reservation, counters and host memory.
func (d *Domain) MemoryStats() MemoryStats {
	s, _ := d.vmm.memop.Stats(memop.DomainID(d.id))
	var b uint64
	// Under releaseMu: the RAM (its fd) must not be freed under the fstat.
	d.releaseMu.RLock()
	if !d.instance.freed {
		b, _ = d.ram.AllocatedBytes()
	}
	d.releaseMu.RUnlock()
	return MemoryStats{Stats: s, Backing: b}
}

// framesInUse tells memop whether frames about to be decreased are held
// by a pinned grant or an Argo ring.
func (v *VMM) framesInUse(id memop.DomainID, gfn, n uint64) bool {
	return v.gnttab.FramesInUse(gnttab.DomainID(id), gfn, n) || v.argo.HasRingPage(argo.DomainID(id), gfn, n)
}

// domainRAM finds a domain's current RAM for the memory backing.
func (v *VMM) domainRAM(id memop.DomainID) *RAM {
	if d := v.Domain(uint16(id)); d != nil {
		return d.RAM()
	}
	return nil
}

// addInstance makes a domain's instance known to memop, Argo and the grant
// tables, in that order: the other two reach its memory through the
// physmap (physMem), so nothing is ever set up on an empty frame.
func (v *VMM) addInstance(d *Domain, inst *instance) error {
	var err error
	if inst.p2m, err = v.memop.AddDomain(memop.DomainID(d.id), memop.Config{Pages: d.cfg.Memory / PageSize, MaxPages: d.cfg.region() / PageSize}); err != nil {
		return err
	}
	inst.phys = physMem{ram: inst.ram, p2m: inst.p2m}
	if err := v.argo.AddDomain(argo.DomainID(d.id), inst.phys, d.cfg.argoPolicy()); err != nil {
		return err
	}
	if d.stream != nil {
		// The host's control ring for the domain: Argo has just
		// (re)made the domain, and a teardown removed the last one.
		if err := d.stream.Up(); err != nil {
			return err
		}
	}
	err = v.gnttab.AddDomain(gnttab.DomainID(d.id), inst.phys, inst.gtab.Bytes(), GrantTableGPA, d.cfg.Gnttab.gnttab())
	if err != nil && d.stream != nil {
		d.stream.Down() // not running after all
	}
	return err
}

// gnttabFrames implements gnttab.Frames over memop. GrantTables calls it
// with its read lock held, so the in-use check of a transfer asks gnttab
// through the closure it passes (never FramesInUse) and Argo directly.
type gnttabFrames struct{ v *VMM }

func (f gnttabFrames) Take(from gnttab.DomainID, gfn uint64, inUse func() bool) error {
	return f.v.memop.Take(memop.DomainID(from), gfn, func() bool {
		return inUse() || f.v.argo.HasRingPage(argo.DomainID(from), gfn, 1)
	})
}

func (f gnttabFrames) Drop(from gnttab.DomainID, gfn uint64) error {
	return f.v.memop.Drop(memop.DomainID(from), gfn)
}

func (f gnttabFrames) Reserve(to gnttab.DomainID, gfn uint64) error {
	return f.v.memop.Reserve(memop.DomainID(to), gfn)
}

func (f gnttabFrames) Unreserve(to gnttab.DomainID, gfn uint64) {
	f.v.memop.Unreserve(memop.DomainID(to), gfn)
}

func (f gnttabFrames) Move(from gnttab.DomainID, gfn uint64, to gnttab.DomainID, toGFN uint64) error {
	return f.v.memop.Move(memop.DomainID(from), gfn, memop.DomainID(to), toGFN)
}
