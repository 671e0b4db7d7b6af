package vmm

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/argovisor/argovisor/argo"
)

// A sendv through the real page walk (HostGuest: memfd RAM, the boot page
// tables) from iovs spread over scattered 4 KiB pages, a 2 MiB page and
// the boundary between them, into a ring whose pages are not in order:
// the bytes arrive intact; an iov that runs into an unmapped page gets
// -EFAULT and publishes nothing.
func TestHostGuestSendvThroughPageWalk(t *testing.T) {
	const mem = 16 << 20
	tx, err := NewHostGuest(1, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	rx, err := NewHostGuest(2, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	le := binary.LittleEndian
	sm, rm := tx.Bytes(), rx.Bytes()

	// Sender: va 6..8 MiB through a level-1 table at pa 15 MiB, mapping
	// page i to pa 10 MiB + (7-i)*4 KiB (reverse order), page 8 absent;
	// va 4..6 MiB stays the boot tables' 2 MiB page (identity).
	const pt = 15 << 20
	le.PutUint64(sm[pdGPA+3*8:], pt|pteP|pteRW|pteUS)
	for i := uint64(0); i < 8; i++ {
		le.PutUint64(sm[pt+i*8:], (10<<20+(7-i)*PageSize)|pteP|pteRW|pteUS)
	}
	virt := func(va uint64) uint64 { // the sender's pa for va, as the tables say
		if va >= 6<<20 {
			p := (va - 6<<20) / PageSize
			return 10<<20 + (7-p)*PageSize + va%PageSize
		}
		return va
	}
	for i := uint64(0); i < 8*PageSize; i++ {
		sm[virt(6<<20+i)] = byte(i*13 + 5)
	}
	for i := uint64(4 << 20); i < 6<<20; i++ {
		sm[i] = byte(i * 7)
	}

	a := argo.New(func(argo.DomainID) {})
	pol := argo.Policy{Enabled: true}
	if err := a.AddDomain(1, tx.Memory(), pol); err != nil {
		t.Fatal(err)
	}
	if err := a.AddDomain(2, rx.Memory(), pol); err != nil {
		t.Fatal(err)
	}
	// Receiver: a 64 KiB ring on pages 4 MiB + 0, 2, 1, 3, ... (pairs
	// swapped: runs of one page and of several).
	const ringLen = 64 << 10
	npages := uint64(argo.RingPages(ringLen))
	const args, gfns, ringBase = 0x300000, 0x301000, 4 << 20
	pageOf := func(i uint64) uint64 {
		if i >= 1 && i <= 2 {
			return 3 - i
		}
		return i
	}
	for i := uint64(0); i < npages; i++ {
		le.PutUint64(rm[gfns+i*8:], ringBase/PageSize+pageOf(i))
	}
	reg := rm[args:]
	le.PutUint32(reg[0:], 1)
	le.PutUint16(reg[4:], 1)
	le.PutUint32(reg[8:], ringLen)
	if ret := a.Op(rx.Caller(), argo.OpRegisterRing, args, gfns, npages, 0); ret != 0 {
		t.Fatalf("register: %d", ret)
	}
	ringByte := func(off uint64) *byte { // ring memory byte off (header included)
		return &rm[ringBase+pageOf(off/PageSize)*PageSize+off%PageSize]
	}
	ringU32 := func(off uint64) uint32 {
		var b [4]byte
		for i := range b {
			b[i] = *ringByte(off + uint64(i))
		}
		return le.Uint32(b[:])
	}

	send := func(iovs ...[2]uint64) int64 {
		sa := sm[args:]
		le.PutUint32(sa[0:], 1)
		le.PutUint16(sa[4:], uint16(argo.DomainAny))
		le.PutUint32(sa[8:], 1)
		le.PutUint16(sa[12:], 2)
		for i, v := range iovs {
			le.PutUint64(sa[16+i*16:], v[0])
			le.PutUint32(sa[24+i*16:], uint32(v[1]))
			le.PutUint32(sa[28+i*16:], 0)
		}
		return a.Op(tx.Caller(), argo.OpSendv, args, args+16, uint64(len(iovs)), 7)
	}
	// Across the 2 MiB page into the scattered pages, then a piece inside
	// them, then one crossing several of them.
	iovs := [][2]uint64{{6<<20 - 5000, 9000}, {6<<20 + 3*PageSize - 7, 20}, {6<<20 + 100, 5*PageSize + 17}}
	var want []byte
	for _, v := range iovs {
		for i := uint64(0); i < v[1]; i++ {
			want = append(want, sm[virt(v[0]+i)])
		}
	}
	for round := range 6 { // round the ring a few times
		txBefore := ringU32(4)
		if ret := send(iovs...); ret != int64(len(want)) {
			t.Fatalf("round %d: sendv = %d, want %d", round, ret, len(want))
		}
		var got []byte
		off := uint64(txBefore)
		if l := ringU32(argo.RingHeaderSize + off); l != uint32(len(want))+argo.MsgHeaderSize {
			t.Fatalf("round %d: header len %d", round, l)
		}
		for i := uint64(0); i < uint64(len(want)); i++ {
			got = append(got, *ringByte(argo.RingHeaderSize + (off+argo.MsgHeaderSize+i)%ringLen))
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: payload differs", round)
		}
		le.PutUint32(rm[ringBase:], ringU32(4)) // consume (header page is page 0)
	}
	// Into the absent page 8: -EFAULT, tx_ptr unchanged.
	txBefore := ringU32(4)
	if ret := send([2]uint64{6<<20 + 6*PageSize, 3 * PageSize}); ret != -argo.EFAULT {
		t.Fatalf("sendv into an unmapped page = %d, want -EFAULT", ret)
	}
	if ringU32(4) != txBefore {
		t.Fatalf("a failed sendv moved tx_ptr")
	}
	// Beyond the sender's RAM: the 2 MiB page at 16 MiB is mapped by the
	// boot tables but is not RAM.
	if ret := send([2]uint64{16<<20 - 100, 200}); ret != -argo.EFAULT {
		t.Fatalf("sendv past the end of RAM = %d, want -EFAULT", ret)
	}
	if ringU32(4) != txBefore {
		t.Fatalf("a failed sendv moved tx_ptr")
	}
}
