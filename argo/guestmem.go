package argo

import (
	"errors"

	"github.com/argovisor/argovisor/hcall"
)

var errGuestFault = errors.New("argo: guest address fault")

// readGuest is c.ReadGuest(addr, p) for the operations' argument buffers.
// A caller that maps its memory (hcall.Mapper: every guest's) is read one
// contiguous run at a time without p ever reaching the interface, so a
// buffer on the operation's stack stays there: a send allocates nothing.
// Other callers (the host endpoint, tests) read through a copy.
func readGuest(c Caller, addr uint64, p []byte) error {
	if m, ok := c.(hcall.Mapper); ok {
		for len(p) > 0 {
			b, err := m.MapGuest(addr, uint64(len(p)), false)
			if err != nil {
				return err
			}
			if len(b) == 0 || len(b) > len(p) {
				return errGuestFault
			}
			copy(p, b)
			p = p[len(b):]
			addr += uint64(len(b))
		}
		return nil
	}
	tmp := make([]byte, len(p))
	if err := c.ReadGuest(addr, tmp); err != nil {
		return err
	}
	copy(p, tmp)
	return nil
}

// writeGuest is c.WriteGuest(addr, p), as readGuest: p does not escape.
func writeGuest(c Caller, addr uint64, p []byte) error {
	if m, ok := c.(hcall.Mapper); ok {
		for len(p) > 0 {
			b, err := m.MapGuest(addr, uint64(len(p)), true)
			if err != nil {
				return err
			}
			if len(b) == 0 || len(b) > len(p) {
				return errGuestFault
			}
			copy(b, p)
			p = p[len(b):]
			addr += uint64(len(b))
		}
		return nil
	}
	return c.WriteGuest(addr, append([]byte(nil), p...))
}
