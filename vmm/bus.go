package vmm

import (
	"errors"
	"fmt"
	"sort"
)

// ErrOverlap is returned when a device range overlaps one already on the bus.
var ErrOverlap = errors.New("port range overlaps an existing device")

// PIODevice is a device on a domain's port-I/O bus. Offsets are relative to
// the base the device was inserted at; data is one access of 1, 2 or 4
// bytes. Devices do their own locking: vCPUs of a domain call them
// concurrently.
type PIODevice interface {
	PIORead(c *VCPUContext, off uint16, data []byte)
	PIOWrite(c *VCPUContext, off uint16, data []byte)
}

type busRange struct {
	base, size uint16
	dev        PIODevice
}

// PIOBus routes port I/O to devices. It is filled before the domain starts
// and read-only afterwards, so lookups take no lock.
type PIOBus struct {
	ranges []busRange // sorted by base, non-overlapping
}

// Insert adds dev at [base, base+size).
func (b *PIOBus) Insert(base, size uint16, dev PIODevice) error {
	if size == 0 || uint32(base)+uint32(size) > 0x10000 {
		return fmt.Errorf("insert port range [%#x, +%#x): invalid size", base, size)
	}
	i := sort.Search(len(b.ranges), func(i int) bool { return b.ranges[i].base >= base })
	if i < len(b.ranges) && uint32(base)+uint32(size) > uint32(b.ranges[i].base) {
		return fmt.Errorf("insert port range [%#x, +%#x): %w [%#x, +%#x)", base, size, ErrOverlap, b.ranges[i].base, b.ranges[i].size)
	}
	if i > 0 {
		p := b.ranges[i-1]
		if uint32(p.base)+uint32(p.size) > uint32(base) {
			return fmt.Errorf("insert port range [%#x, +%#x): %w [%#x, +%#x)", base, size, ErrOverlap, p.base, p.size)
		}
	}
	b.ranges = append(b.ranges, busRange{})
	copy(b.ranges[i+1:], b.ranges[i:])
	b.ranges[i] = busRange{base: base, size: size, dev: dev}
	return nil
}

// Lookup finds the device owning port and the port's offset inside it.
func (b *PIOBus) Lookup(port uint16) (PIODevice, uint16, bool) {
	r := b.ranges
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch {
		case port < r[m].base:
			hi = m
		case uint32(port) >= uint32(r[m].base)+uint32(r[m].size):
			lo = m + 1
		default:
			return r[m].dev, port - r[m].base, true
		}
	}
	return nil, 0, false
}

// Dispatch performs one (possibly string, "rep ins/outs") port access:
// Count elements of Size bytes each, all to the same port. It reports
// whether a device owned the port; an unowned port reads as all-ones.
func (b *PIOBus) Dispatch(c *VCPUContext, port uint16, in bool, size int, data []byte) bool {
	dev, off, ok := b.Lookup(port)
	if !ok {
		if in {
			for i := range data {
				data[i] = 0xFF
			}
		}
		return false
	}
	if size <= 0 {
		return true
	}
	for len(data) >= size {
		if in {
			dev.PIORead(c, off, data[:size])
		} else {
			dev.PIOWrite(c, off, data[:size])
		}
		data = data[size:]
	}
	return true
}
