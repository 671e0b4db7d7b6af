package argo

import (
	"errors"
	"testing"

	"github.com/argovisor/argovisor/internal/testutil"
)

// fakeDomain is a guest for unit tests: RAM is a byte slice, guest-virtual
// addresses equal guest-physical ones, and anything outside RAM (or page 0)
// faults.
type fakeDomain struct {
	id  DomainID
	ram []byte
	brk uint64 // bump allocator for test buffers
}

var errFault = errors.New("fault")

func newFakeDomain(id DomainID, size uint64) *fakeDomain {
	return &fakeDomain{id: id, ram: make([]byte, size), brk: PageSize}
}

func (d *fakeDomain) Slice(gpa, n uint64) ([]byte, error) {
	end := gpa + n
	if end < gpa || end > uint64(len(d.ram)) || gpa < PageSize {
		return nil, errFault
	}
	return d.ram[gpa:end:end], nil
}

func (d *fakeDomain) Domain() DomainID { return d.id }

func (d *fakeDomain) ReadGuest(addr uint64, p []byte) error {
	b, err := d.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

func (d *fakeDomain) WriteGuest(addr uint64, p []byte) error {
	b, err := d.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// MapGuest implements hcall.Mapper, as every guest's caller does: runs
// end at each 4 KiB page boundary, like a guest's scattered 4 KiB pages,
// so a message crosses several of them. readerOnly hides it.
func (d *fakeDomain) MapGuest(addr, n uint64, _ bool) ([]byte, error) {
	return d.Slice(addr, min(n, PageSize-addr%PageSize))
}

// readerOnly is a caller without hcall.Mapper: Argo then reads its memory
// with ReadGuest (the fallback path).
type readerOnly struct{ Caller }

// alloc reserves n bytes (page aligned when page is set) and returns the
// address.
func (d *fakeDomain) alloc(n uint64, page bool) uint64 {
	if page {
		d.brk = (d.brk + PageSize - 1) &^ (PageSize - 1)
	} else {
		d.brk = (d.brk + 15) &^ 15
	}
	a := d.brk
	d.brk += n
	if d.brk > uint64(len(d.ram)) {
		panic("fake domain out of memory")
	}
	return a
}

// put copies b into fresh memory and returns its address.
func (d *fakeDomain) put(b []byte) uint64 {
	a := d.alloc(uint64(len(b)), false)
	copy(d.ram[a:], b)
	return a
}

// sigRecorder records which domains were signalled.
type sigRecorder = testutil.Counter[DomainID]

// world is an Argo with fake domains.
type world struct {
	t   testing.TB
	a   *Argo
	sig *sigRecorder
	dom map[DomainID]*fakeDomain
}

func newWorld(t testing.TB) *world {
	s := &sigRecorder{}
	return &world{t: t, a: New(s.Add), sig: s, dom: map[DomainID]*fakeDomain{}}
}

var permissive = Policy{Enabled: true, Wildcard: true}

func (w *world) add(id DomainID, p Policy) *fakeDomain {
	d := newFakeDomain(id, 40<<20)
	if err := w.a.AddDomain(id, d, p); err != nil {
		w.t.Fatal(err)
	}
	w.dom[id] = d
	return d
}

// ringAt describes a ring laid out in a fake domain's memory.
type ringAt struct {
	d      *fakeDomain
	base   uint64 // GPA of the header
	length uint32
	gfns   uint64 // address of the gfn array
	npages uint64
}

func (r ringAt) rx() uint32     { return r.pages().rxPtr() }
func (r ringAt) tx() uint32     { return r.pages().txPtr() }
func (r ringAt) setRx(v uint32) { r.pages().publishRx(v) }

// layRing allocates ring pages (contiguous unless scatter) and a gfn list.
// A spare page on each side of the ring lets tests put canaries there.
func (d *fakeDomain) layRing(length uint32, scatter bool) ringAt {
	np := uint64(RingPages(length))
	gfnAddr := d.alloc(np*8, false)
	d.alloc(PageSize, true)
	base := d.alloc(np*PageSize, true)
	d.alloc(PageSize, true)
	gfns := d.ram[gfnAddr : gfnAddr+np*8]
	for i := range np {
		page := base/PageSize + i
		if scatter {
			// Reverse page order: ring page i lives at base+(np-1-i).
			page = base/PageSize + np - 1 - i
		}
		le.PutUint64(gfns[i*8:], page)
	}
	return ringAt{d: d, base: base, length: length, gfns: gfnAddr, npages: np}
}

func regBytes(port uint32, partner DomainID, pad uint16, length uint32) []byte {
	b := make([]byte, sizeofRegisterRing)
	le.PutUint32(b[0:], port)
	le.PutUint16(b[4:], uint16(partner))
	le.PutUint16(b[6:], pad)
	le.PutUint32(b[8:], length)
	return b
}

// register registers r as (port, partner) and returns the op result.
func (w *world) register(r ringAt, port uint32, partner DomainID, flags uint64) int64 {
	return w.a.Op(r.d, OpRegisterRing, r.d.put(regBytes(port, partner, 0, r.length)), r.gfns, r.npages, flags)
}

func (w *world) mustRegister(d *fakeDomain, length uint32, port uint32, partner DomainID) ringAt {
	w.t.Helper()
	r := d.layRing(length, false)
	if ret := w.register(r, port, partner, 0); ret != 0 {
		w.t.Fatalf("register dom%d port %d partner %d len %d: %d", d.id, port, partner, length, ret)
	}
	return r
}

func unregBytes(port uint32, partner DomainID) []byte {
	b := make([]byte, sizeofUnregister)
	le.PutUint32(b[0:], port)
	le.PutUint16(b[4:], uint16(partner))
	return b
}

func sendAddrBytes(src, dst Addr) []byte {
	b := make([]byte, sizeofSendAddr)
	encodeAddr(b[0:], src)
	encodeAddr(b[8:], dst)
	return b
}

func iovBytes(iovs ...iov) []byte {
	b := make([]byte, len(iovs)*sizeofIOV)
	for i, v := range iovs {
		le.PutUint64(b[i*sizeofIOV:], v.addr)
		le.PutUint32(b[i*sizeofIOV+8:], v.len)
		le.PutUint32(b[i*sizeofIOV+12:], v.pad)
	}
	return b
}

// send sends payload parts from d to dst with source port srcPort.
func (w *world) send(d *fakeDomain, dst Addr, srcPort uint32, msgType uint32, parts ...[]byte) int64 {
	var iovs []iov
	for _, p := range parts {
		iovs = append(iovs, iov{addr: d.put(p), len: uint32(len(p))})
	}
	addr := d.put(sendAddrBytes(Addr{Port: srcPort, Domain: DomainAny}, dst))
	var ia uint64
	if len(iovs) > 0 {
		ia = d.put(iovBytes(iovs...))
	}
	return w.a.Op(d, OpSendv, addr, ia, uint64(len(iovs)), uint64(msgType))
}

// notifyEnt is a test notify entry.
type notifyEnt struct {
	ring  Addr
	need  uint32
	flags uint16
	mms   uint32
}

// notify runs notify with entries (nil: NULL argument) and reads back the
// results.
func (w *world) notify(d *fakeDomain, ents []notifyEnt) int64 {
	if ents == nil {
		return w.a.Op(d, OpNotify, 0, 0, 0, 0)
	}
	b := make([]byte, sizeofRingData+len(ents)*sizeofRingDataEnt)
	le.PutUint32(b[0:], uint32(len(ents)))
	for i, e := range ents {
		x := b[sizeofRingData+i*sizeofRingDataEnt:]
		encodeAddr(x, e.ring)
		le.PutUint16(x[8:], 0xFFFF) // must be overwritten
		le.PutUint32(x[12:], e.need)
		le.PutUint32(x[16:], e.mms)
	}
	a := d.put(b)
	ret := w.a.Op(d, OpNotify, a, 0, 0, 0)
	for i := range ents {
		x := d.ram[a+sizeofRingData+uint64(i)*sizeofRingDataEnt:]
		ents[i].flags = le.Uint16(x[8:])
		ents[i].mms = le.Uint32(x[16:])
	}
	return ret
}

// pages returns the ring memory as the VMM sees it, following the gfns.
func (r ringAt) pages() ringMem {
	var m ringMem
	for i := range r.npages {
		gfn := le.Uint64(r.d.ram[r.gfns+i*8:])
		m = append(m, r.d.ram[gfn*PageSize:(gfn+1)*PageSize])
	}
	return m
}

// tryRecv reads one message like a guest reader would.
func (r ringAt) tryRecv() (Message, error) { return r.pages().readMessage(r.length, MsgHeaderSize) }

// tryRecvCtx reads one message from a RegisterSenderContext ring.
func (r ringAt) tryRecvCtx() (Message, error) {
	return r.pages().readMessage(r.length, CtxMsgHeaderSize)
}

// recv reads one message, failing the test if there is none.
func (r ringAt) recv(t testing.TB) Message {
	t.Helper()
	m, err := r.tryRecv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return m
}

// stateOf returns a domain's Argo state for white-box checks.
func (w *world) stateOf(id DomainID) *domainArgo {
	w.a.l1.RLock()
	defer w.a.l1.RUnlock()
	return w.a.state[id]
}
