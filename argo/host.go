package argo

import (
	"errors"
	"fmt"
	"sync"
)

// Errno is a failed Argo operation's error number (positive).
type Errno int

var errnoNames = map[Errno]string{
	EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM",
	EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV",
	EINVAL: "EINVAL", ENOSPC: "ENOSPC", EMSGSIZE: "EMSGSIZE", EOPNOTSUPP: "EOPNOTSUPP",
	ECONNREFUSED: "ECONNREFUSED",
}

func (e Errno) Error() string {
	if n, ok := errnoNames[e]; ok {
		return "argo: " + n
	}
	return fmt.Sprintf("argo: errno %d", int(e))
}

// result turns an op's return value into (value, error).
func result(ret int64) (int, error) {
	if ret < 0 {
		return 0, Errno(-ret)
	}
	return int(ret), nil
}

// DefaultHostMemory is the size of the host endpoint's memory when the
// caller does not choose one.
const DefaultHostMemory = 64 << 20

// Host is domain 0's endpoint: Go code registers rings in host memory,
// sends to guests (stamped with domain id 0) and receives from them. Every
// call goes through the same Op code, checks and locks as a guest's
// hypercall; its "guest addresses" are offsets into the host's memory.
// Methods are safe for concurrent use (they are serialised).
type Host struct {
	a  *Argo
	id DomainID // HostDomain, or the domain of a NewEndpoint

	// mu serialises host operations: they share the scratch area. Lock
	// order: before Argo's locks.
	mu sync.Mutex
	// mem is the host's memory: page 0 unused (address 0 is NULL), then
	// a scratch area for operation arguments, then ring memory.
	mem []byte
	// next is the first unallocated byte of ring memory.
	// +checklocks:mu
	next uint64
	// free holds the offsets of unregistered rings' memory by page count,
	// reused by the next ring of that size: a host that opens and closes
	// connections for ever (the socket bridge) stays within its memory.
	// +checklocks:mu
	free map[uint64][]uint64

	wake chan struct{}
}

const (
	hostScratch = PageSize
	// Operation arguments: a send's addresses and iovs, or a notify's
	// entries (at most MaxNotifyCount of 20 bytes). A send's payload is
	// read where the caller has it (hostCaller.parts).
	hostScratchSize = 4 * PageSize
	hostRingsStart  = hostScratch + hostScratchSize
)

// NewHost gives domain 0 Argo state and returns its endpoint. memBytes is
// the memory for its rings (DefaultHostMemory if 0).
func (a *Argo) NewHost(memBytes uint64, p Policy) (*Host, error) {
	h, err := a.newEndpoint(HostDomain, memBytes, p)
	if err != nil {
		return nil, err
	}
	a.host.Store(h)
	return h, nil
}

// NewEndpoint is NewHost for another domain id: a domain driven by Go code
// over Go memory, as tests use for a peer of the host without a VM. Argo
// signals it through the signal function given to New, which should call
// the endpoint's Signal.
func (a *Argo) NewEndpoint(id DomainID, memBytes uint64, p Policy) (*Host, error) {
	if id == HostDomain {
		return nil, Errno(EINVAL)
	}
	return a.newEndpoint(id, memBytes, p)
}

func (a *Argo) newEndpoint(id DomainID, memBytes uint64, p Policy) (*Host, error) {
	if memBytes == 0 {
		memBytes = DefaultHostMemory
	}
	memBytes = hostRingsStart + (memBytes+PageSize-1)&^(PageSize-1)
	h := &Host{a: a, id: id, mem: make([]byte, memBytes), wake: make(chan struct{}, 1)}
	h.mu.Lock()
	h.next = hostRingsStart
	h.mu.Unlock()
	if err := a.AddDomain(id, h, p); err != nil {
		return nil, err
	}
	return h, nil
}

// Signal delivers a signal to an endpoint made by NewEndpoint (Argo
// signals the host's own endpoint itself).
func (h *Host) Signal() { h.signalled() }

// Signals delivers one token whenever the host was signalled (a message
// arrived in one of its rings, or space it waited for is free). Tokens
// coalesce: drain every ring after each.
func (h *Host) Signals() <-chan struct{} { return h.wake }

func (h *Host) signalled() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Slice implements Memory: host "guest-physical" addresses are offsets.
func (h *Host) Slice(gpa, n uint64) ([]byte, error) {
	end := gpa + n
	if end < gpa || end > uint64(len(h.mem)) || gpa < PageSize {
		return nil, errors.New("argo: host address out of range")
	}
	return h.mem[gpa:end:end], nil
}

// hostCaller is the Caller for host operations. parts, during a Send,
// are the caller's payload slices, which the op reads in place at the
// addresses partAddr gives them: the payload is copied once, straight
// into the receiver's ring, not first into the host's scratch memory.
type hostCaller struct {
	h     *Host
	parts [][]byte
}

// Addresses at partBase and above name Send's parts, not host memory:
// part i's byte j is at partBase + i<<partShift + j.
const (
	partBase  = 1 << 62
	partShift = 40
)

func partAddr(i int) uint64 { return partBase + uint64(i)<<partShift }

// part resolves an address of Send's parts to the n bytes there.
func (c hostCaller) part(addr, n uint64) ([]byte, bool) {
	if addr < partBase {
		return nil, false
	}
	i, off := (addr-partBase)>>partShift, (addr-partBase)&(1<<partShift-1)
	if i >= uint64(len(c.parts)) || off+n < off || off+n > uint64(len(c.parts[i])) {
		return nil, true
	}
	p := c.parts[i]
	return p[off : off+n : off+n], true
}

func (c hostCaller) Domain() DomainID { return c.h.id }

func (c hostCaller) ReadGuest(addr uint64, p []byte) error {
	if b, isPart := c.part(addr, uint64(len(p))); isPart {
		if b == nil {
			return errors.New("argo: host part address out of range")
		}
		copy(p, b)
		return nil
	}
	b, err := c.h.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

// MapGuest implements hcall.Mapper: host memory is one piece.
func (c hostCaller) MapGuest(addr, n uint64, write bool) ([]byte, error) {
	if b, isPart := c.part(addr, n); isPart {
		if b == nil || write {
			return nil, errors.New("argo: host part address out of range")
		}
		return b, nil
	}
	return c.h.Slice(addr, n)
}

func (c hostCaller) WriteGuest(addr uint64, p []byte) error {
	b, err := c.h.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// HostRing is a ring registered by the host.
type HostRing struct {
	h       *Host
	Port    uint32
	Partner DomainID
	Len     uint32
	base    uint64 // offset of the ring header in host memory
	// gone is set once the ring is unregistered and its memory given back.
	// +checklocks:h.mu
	gone bool
}

// RegisterRing registers a ring of data length length (see RingPages) that
// partner may send to (DomainAny: any domain).
func (h *Host) RegisterRing(port uint32, partner DomainID, length uint32) (*HostRing, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if length < MinRingSize || length > MaxRingSize || length%MsgSlotSize != 0 {
		return nil, Errno(EINVAL)
	}
	npages := uint64(RingPages(length))
	base, reused := h.next, false
	if f := h.free[npages]; len(f) > 0 {
		base, reused = f[len(f)-1], true
	} else if h.next+npages*PageSize > uint64(len(h.mem)) {
		return nil, Errno(ENOMEM)
	}
	clear(h.mem[base : base+npages*PageSize])
	args := h.mem[hostScratch:]
	le.PutUint32(args[0:], port)
	le.PutUint16(args[4:], uint16(partner))
	le.PutUint16(args[6:], 0)
	le.PutUint32(args[8:], length)
	for i := range npages {
		le.PutUint64(args[64+i*8:], base/PageSize+i)
	}
	_, err := result(h.a.Op(hostCaller{h: h}, OpRegisterRing, hostScratch, hostScratch+64, npages, 0))
	if err != nil {
		return nil, err
	}
	if reused {
		h.free[npages] = h.free[npages][:len(h.free[npages])-1]
	} else {
		h.next += npages * PageSize
	}
	return &HostRing{h: h, Port: port, Partner: partner, Len: length, base: base}, nil
}

// Unregister removes the ring and gives its memory to the next ring of its
// size. It returns Argo's error (Errno(ENOENT) when a teardown removed the
// ring already: its partner ended), and the memory is reused either way,
// since Argo no longer holds it. A second call does nothing.
func (r *HostRing) Unregister() error {
	h := r.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.gone {
		return nil
	}
	args := h.mem[hostScratch:]
	le.PutUint32(args[0:], r.Port)
	le.PutUint16(args[4:], uint16(r.Partner))
	le.PutUint16(args[6:], 0)
	_, err := result(h.a.Op(hostCaller{h: h}, OpUnregisterRing, hostScratch, 0, 0, 0))
	if err == nil || err == Errno(ENOENT) {
		// Gone from Argo: nothing can write the memory any more.
		r.gone = true
		if h.free == nil {
			h.free = make(map[uint64][]uint64)
		}
		n := uint64(RingPages(r.Len))
		h.free[n] = append(h.free[n], r.base)
	}
	return err
}

// Message is one received message.
type Message struct {
	Source Addr
	Type   uint32
	Data   []byte
	// Context is the sending context, for messages read from a
	// RegisterSenderContext ring (ReadMessageWithContext); nil otherwise.
	Context *SenderContext
}

// SenderContext is what the VMM stamps after Xen's header in a
// RegisterSenderContext ring.
type SenderContext struct {
	VCPU  uint32 // sending vCPU, NoVCPU for the host
	Flags uint32 // CtxAddressSpace when CR3 is meaningful
	CR3   uint64
}

// Recv takes the next message out of the ring, or returns Errno(EAGAIN)
// when it is empty. It then calls notify so that senders waiting for space
// are woken, as a guest reader must.
func (r *HostRing) Recv() (Message, error) {
	h := r.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.gone {
		return Message{}, Errno(ENOENT)
	}
	ring := h.mem[r.base : r.base+uint64(RingPages(r.Len))*PageSize]
	m, err := ReadMessage(ring, r.Len)
	if err != nil {
		return m, err
	}
	h.a.Op(hostCaller{h: h}, OpNotify, 0, 0, 0, 0)
	return m, nil
}

// ReadMessage takes one message out of ring memory (header and data
// contiguous, as the host lays it out), following the reader side of the
// ring protocol: rx_ptr is sanitised, the payload may wrap, and rx_ptr is
// advanced past the message's slots. It returns Errno(EAGAIN) when the ring
// is empty and Errno(EINVAL) if the ring holds a malformed message (the
// ring is then reset to empty).
func ReadMessage(ring []byte, length uint32) (Message, error) {
	var m ringMem
	for off := 0; off < len(ring); off += PageSize {
		m = append(m, ring[off:min(off+PageSize, len(ring))])
	}
	return m.readMessage(length, MsgHeaderSize)
}

// ReadMessageWithContext is ReadMessage for a ring registered with
// RegisterSenderContext: 32-byte headers, and Message.Context filled.
func ReadMessageWithContext(ring []byte, length uint32) (Message, error) {
	var m ringMem
	for off := 0; off < len(ring); off += PageSize {
		m = append(m, ring[off:min(off+PageSize, len(ring))])
	}
	return m.readMessage(length, CtxMsgHeaderSize)
}

// readMessage is ReadMessage over ring memory spread on pages, for
// message headers of hdrLen bytes (MsgHeaderSize or CtxMsgHeaderSize).
func (m ringMem) readMessage(length uint32, hdrLen uint64) (Message, error) {
	n := uint64(length)
	rx := roundup16(uint64(m.rxPtr()))
	if rx >= n {
		rx = 0
	}
	tx := uint64(m.txPtr())
	if tx >= n || tx%MsgSlotSize != 0 {
		return Message{}, Errno(EINVAL)
	}
	avail := (tx + n - rx) % n
	if avail < hdrLen {
		return Message{}, Errno(EAGAIN)
	}
	var hdr [CtxMsgHeaderSize]byte
	m.copyOut(hdr[:hdrLen], rx, n)
	mlen := uint64(le.Uint32(hdr[0:]))
	if mlen < hdrLen || mlen > avail {
		m.publishRx(uint32(tx))
		return Message{}, Errno(EINVAL)
	}
	msg := Message{Source: decodeAddr(hdr[4:]), Type: le.Uint32(hdr[12:]), Data: make([]byte, mlen-hdrLen)}
	if hdrLen == CtxMsgHeaderSize {
		msg.Context = &SenderContext{VCPU: le.Uint32(hdr[16:]), Flags: le.Uint32(hdr[20:]), CR3: le.Uint64(hdr[24:])}
	}
	m.copyOut(msg.Data, (rx+hdrLen)%n, n)
	m.publishRx(uint32((rx + roundup16(mlen)) % n))
	return msg, nil
}

// copyOut copies len(dst) bytes from data offset off, wrapping at length.
func (m ringMem) copyOut(dst []byte, off, length uint64) {
	for len(dst) > 0 {
		if off >= length {
			off = 0
		}
		s := m.span(RingHeaderSize+off, min(uint64(len(dst)), length-off))
		copy(dst, s)
		dst = dst[len(s):]
		off += uint64(len(s))
	}
}

// publishRx stores rx_ptr (what a reader does after consuming).
func (m ringMem) publishRx(v uint32) { atomicStore32(m[0][0:4], v) }

// Send sends one message of the concatenated parts to dst from the host's
// port srcPort. It returns the payload length, or an Errno (EAGAIN when the
// ring is full: a space request is then queued and Signals fires when it
// fits).
func (h *Host) Send(dst Addr, srcPort, msgType uint32, parts ...[]byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(parts) > MaxIOV {
		return 0, Errno(EINVAL)
	}
	args := h.mem[hostScratch:]
	encodeAddr(args[0:], Addr{Port: srcPort, Domain: h.id})
	encodeAddr(args[8:], dst)
	for i, p := range parts {
		if uint64(len(p)) > MaxMessageSize {
			return 0, Errno(EMSGSIZE)
		}
		iv := args[16+i*sizeofIOV:]
		le.PutUint64(iv[0:], partAddr(i))
		le.PutUint32(iv[8:], uint32(len(p)))
		le.PutUint32(iv[12:], 0)
	}
	return result(h.a.Op(hostCaller{h: h, parts: parts}, OpSendv, hostScratch, hostScratch+16, uint64(len(parts)), uint64(msgType)))
}

// NotifyEntry is one xen_argo_ring_data_ent for Host.Notify.
type NotifyEntry struct {
	Ring           Addr
	SpaceRequired  uint32
	Flags          uint16 // out
	MaxMessageSize uint32 // out
}

// Notify wakes senders waiting on the host's rings and queries other
// domains' rings, filling Flags and MaxMessageSize of each entry.
func (h *Host) Notify(ents []NotifyEntry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(ents) == 0 {
		_, err := result(h.a.Op(hostCaller{h: h}, OpNotify, 0, 0, 0, 0))
		return err
	}
	args := h.mem[hostScratch:]
	if len(ents)*sizeofRingDataEnt+sizeofRingData > hostScratchSize {
		return Errno(EINVAL)
	}
	le.PutUint32(args[0:], uint32(len(ents)))
	le.PutUint32(args[4:], 0)
	for i, e := range ents {
		b := args[sizeofRingData+i*sizeofRingDataEnt:]
		encodeAddr(b[0:], e.Ring)
		le.PutUint16(b[8:], 0)
		le.PutUint16(b[10:], 0)
		le.PutUint32(b[12:], e.SpaceRequired)
		le.PutUint32(b[16:], e.MaxMessageSize)
	}
	_, err := result(h.a.Op(hostCaller{h: h}, OpNotify, hostScratch, 0, 0, 0))
	for i := range ents {
		b := args[sizeofRingData+i*sizeofRingDataEnt:]
		ents[i].Flags = le.Uint16(b[8:])
		ents[i].MaxMessageSize = le.Uint32(b[16:])
	}
	return err
}
