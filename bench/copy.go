package bench

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/hcall"
	"github.com/argovisor/argovisor/vmm"
)

// The argo.copy figures isolate the VMM's copy path from KVM: a real
// argo.Argo with two domains whose memory is what a booted domain has
// (vmm.HostGuest: memfd RAM, the VMM's boot page tables, the physmap), a
// sendv of one message from the sender's buffer — its guest-virtual
// address goes through the page walk, as a vCPU's hypercall's does — into
// a ring of the receiver, which is consumed after every message (rx_ptr
// set to tx_ptr, as a reader does). Its pair copies the same number of
// bytes with copy() from the same host bytes (the sender's buffer) into
// the same host bytes (the ring's data area), alternately in the same run,
// so both see the same memory, the same pages and the same caches. No
// guest runs: the figures need no /dev/kvm and mean the same inside the
// tests' VM.

// Where the rig puts things, guest-physical = guest-virtual (the boot page
// tables are an identity map): the buffer and the ring lie above 2 MiB,
// in 2 MiB pages, as large buffers of a real guest do.
const (
	copyArgs    = 0x300000 // sender: send_addr, then the iov; receiver: register_ring, then the gfns
	copyGfns    = copyArgs + 0x1000
	copyBuf     = 0x400000 // sender's buffer
	copyRing    = 0x400000 // receiver's ring (header, then data)
	copyMemory  = 8 << 20  // each domain's RAM beyond the buffer or ring
	copyPort    = 1
	copyMsgType = 0x434F5059 // "COPY"
)

// copyRig is one sender and one receiver in a real Argo.
type copyRig struct {
	size   int
	a      *argo.Argo
	tx, rx *vmm.HostGuest
	txc    hcall.Caller
	// buf is the sender's buffer, hdr the ring's header and data its data
	// area, as host bytes (the same bytes the copy goes through).
	buf, hdr, data []byte
}

// copyRingLen is the data length of a ring that holds exactly one message
// of size bytes (header, payload, and the slot that always stays free), so
// that the ring's data area is no larger than what copy() writes.
func copyRingLen(size int) uint32 {
	return uint32((size+15)&^15) + argo.MsgHeaderSize + argo.MsgSlotSize
}

func newCopyRig(size int) (*copyRig, error) {
	if size <= 0 || size > argo.MaxMessageSize {
		return nil, fmt.Errorf("copy rig: size %d", size)
	}
	ringLen := copyRingLen(size)
	npages := argo.RingPages(ringLen)
	mem := uint64(copyMemory + (size+argo.PageSize-1)&^(argo.PageSize-1) + int(npages)*argo.PageSize)
	r := &copyRig{size: size, a: argo.New(func(argo.DomainID) {})}
	var err error
	if r.tx, err = vmm.NewHostGuest(1, mem); err != nil {
		return nil, err
	}
	if r.rx, err = vmm.NewHostGuest(2, mem); err != nil {
		r.tx.Close()
		return nil, err
	}
	fail := func(err error) (*copyRig, error) { r.close(); return nil, err }
	pol := argo.Policy{Enabled: true}
	if err := r.a.AddDomain(1, r.tx.Memory(), pol); err != nil {
		return fail(err)
	}
	if err := r.a.AddDomain(2, r.rx.Memory(), pol); err != nil {
		return fail(err)
	}
	le := binary.LittleEndian

	// The receiver registers its ring for the sender.
	rm := r.rx.Bytes()
	reg := rm[copyArgs:]
	le.PutUint32(reg[0:], copyPort)
	le.PutUint16(reg[4:], 1)
	le.PutUint16(reg[6:], 0)
	le.PutUint32(reg[8:], ringLen)
	for i := range uint64(npages) {
		le.PutUint64(rm[copyGfns+i*8:], copyRing/argo.PageSize+i)
	}
	if ret := r.a.Op(r.rx.Caller(), argo.OpRegisterRing, copyArgs, copyGfns, uint64(npages), 0); ret != 0 {
		return fail(fmt.Errorf("copy rig: register_ring: %d", ret))
	}
	r.hdr = rm[copyRing : copyRing+argo.RingHeaderSize]
	r.data = rm[copyRing+argo.RingHeaderSize : copyRing+argo.RingHeaderSize+uint64(ringLen)]

	// The sender's send_addr and iov.
	sm := r.tx.Bytes()
	args := sm[copyArgs:]
	le.PutUint32(args[0:], copyPort)
	le.PutUint16(args[4:], uint16(argo.DomainAny))
	le.PutUint32(args[8:], copyPort)
	le.PutUint16(args[12:], 2)
	le.PutUint64(args[16:], copyBuf)
	le.PutUint32(args[24:], uint32(size))
	r.buf = sm[copyBuf : copyBuf+size]
	for i := range r.buf {
		r.buf[i] = byte(i*7 + 1)
	}
	r.txc = r.tx.Caller()
	return r, nil
}

func (r *copyRig) close() {
	if r.tx != nil {
		r.tx.Close()
	}
	if r.rx != nil {
		r.rx.Close()
	}
}

// send sends one message and consumes it (rx_ptr = tx_ptr).
func (r *copyRig) send() error {
	if ret := r.a.Op(r.txc, argo.OpSendv, copyArgs, copyArgs+16, 1, copyMsgType); ret != int64(r.size) {
		return fmt.Errorf("argo copy: sendv of %d bytes returned %d", r.size, ret)
	}
	copy(r.hdr[0:4], r.hdr[4:8])
	return nil
}

// copyOnce is the floor: the same bytes with copy().
func (r *copyRig) copyOnce() { copy(r.data[:r.size], r.buf) }

// argoCopyRate measures the sendv path (memcpy false) or copy() of the
// same bytes (memcpy true) in MB/s of payload, over 64 MiB after one
// message of warm-up, on a rig of its own.
func argoCopyRate(size int, memcpy bool) func(*Options) (float64, error) {
	return func(*Options) (float64, error) {
		r, err := newCopyRig(size)
		if err != nil {
			return 0, err
		}
		defer r.close()
		iters := max(8, (64<<20)/size)
		step := func() error {
			if memcpy {
				r.copyOnce()
				return nil
			}
			return r.send()
		}
		if err := step(); err != nil { // both sides: pages touched, caches warm
			return 0, err
		}
		start := time.Now()
		for range iters {
			if err := step(); err != nil {
				return 0, err
			}
		}
		el := time.Since(start)
		return float64(size*iters) / el.Seconds() / 1e6, nil
	}
}
