package argo

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzOps lets a hostile domain issue arbitrary operations — arbitrary
// arguments and arbitrary bytes where they point — at a victim that owns
// one ring, while a buggy victim scribbles its rx_ptr. Nothing may panic,
// and no byte of the victim's memory outside its ring's data area and
// tx_ptr may change. The attacker's own memory is not checked: the ops
// write there by design.
func FuzzOps(f *testing.F) {
	seed := func(ops ...[]byte) []byte { return bytes.Join(ops, nil) }
	op := func(cmd byte, a1, a2, a3, a4 uint32) []byte {
		b := make([]byte, 17)
		b[0] = cmd
		binary.LittleEndian.PutUint32(b[1:], a1)
		binary.LittleEndian.PutUint32(b[5:], a2)
		binary.LittleEndian.PutUint32(b[9:], a3)
		binary.LittleEndian.PutUint32(b[13:], a4)
		return b
	}
	f.Add([]byte{}, seed(op(OpSendv, 0x1000, 0x1010, 1, 0)))
	f.Add(bytes.Repeat([]byte{0xFF}, 64), seed(op(OpNotify, 0x1000, 0, 0, 0), op(OpSendv, 0x1000, 0x1040, 8, 7)))
	f.Add([]byte{1, 0, 0, 0, 2, 0, 0, 0, 64, 0, 0, 0}, seed(op(OpRegisterRing, 0x1000, 0x1100, 1, 0), op(OpUnregisterRing, 0x1000, 0, 0, 0)))
	// The argovisor ops: a batch, a wait and a send_wait (script bytes 6, 7, 8).
	f.Add([]byte{0xFF}, seed(op(6, 0x1000, 0, 2, 1), op(7, 0x1000, 0, 1, 0), op(8, 0x1000, 0x1100, 1, 0)))
	f.Fuzz(func(t *testing.T, mem []byte, script []byte) {
		s := &sigRecorder{}
		a := New(s.Add)
		attacker := newFakeDomain(1, 64<<10)
		victim := newFakeDomain(2, 64<<10)
		copy(attacker.ram[PageSize:], mem)
		for _, d := range []*fakeDomain{attacker, victim} {
			if err := a.AddDomain(d.id, d, permissive); err != nil {
				t.Fatal(err)
			}
		}
		// The victim's ring: 2 pages at 0x4000 (data up to 0x4000+64+4032+...).
		const length = 8192 - 64
		base := uint64(0x4000)
		gfns := victim.put(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, base/PageSize), base/PageSize+1))
		for i := range victim.ram {
			victim.ram[i] = byte(i*13 + 5)
		}
		le.PutUint32(victim.ram[base:], 0)
		le.PutUint32(victim.ram[base+4:], 0)
		le.PutUint64(victim.ram[gfns:], base/PageSize)
		le.PutUint64(victim.ram[gfns+8:], base/PageSize+1)
		// An odd-sized mem seed gives the victim an extended-header ring,
		// whose tx_wanted word the VMM may write as well; a size of 2 or 3
		// mod 4 gives it 32-byte sender-context message headers.
		ext := len(mem)%2 == 1
		var flags uint64
		if ext {
			flags = RegisterExtHeader
		}
		if len(mem)%4 >= 2 {
			flags |= RegisterSenderContext
		}
		if ret := a.Op(victim, OpRegisterRing, victim.put(regBytes(7, DomainAny, 0, length)), gfns, 2, flags); ret != 0 {
			t.Fatalf("victim register: %d", ret)
		}
		before := append([]byte(nil), victim.ram...)
		for len(script) >= 17 {
			cmd := [...]uint64{0, 1, 2, 3, 4, 5, OpSendvBatch, OpWait, OpSendWait, OpDomainInfo}[script[0]%10]
			arg := func(i int) uint64 { return uint64(binary.LittleEndian.Uint32(script[1+4*i:])) }
			switch script[0] >> 6 {
			case 1: // the victim corrupts its own rx_ptr
				le.PutUint32(victim.ram[base:], uint32(arg(0)))
				le.PutUint32(before[base:], uint32(arg(0)))
			case 2: // the victim notifies (wakes waiters)
				a.Op(victim, OpNotify, 0, 0, 0, 0)
			case 3: // the victim reads a message
				victimRing := ringMem{victim.ram[base : base+PageSize], victim.ram[base+PageSize : base+2*PageSize]}
				hdrLen := uint64(MsgHeaderSize)
				if flags&RegisterSenderContext != 0 {
					hdrLen = CtxMsgHeaderSize
				}
				victimRing.readMessage(length, hdrLen)
				copy(before[base:base+4], victim.ram[base:base+4])
			}
			// Aim some sends at the victim's ring.
			if cmd == OpSendv && arg(0) >= 0x1000 && arg(0)+16 <= uint64(len(attacker.ram)) {
				le.PutUint16(attacker.ram[arg(0)+12:], 2)
			}
			a2, a4 := arg(1), arg(3)
			if cmd == OpWait || cmd == OpSendWait {
				a4 = 0 // never sleep: nothing would wake the fuzzer
			}
			if cmd == OpSendvBatch && a4&BatchWaitSpace != 0 {
				a2 %= 2 // a batch waiting for space sleeps 1 µs at most
			}
			a.Op(attacker, cmd, arg(0), a2, arg(2)%16, a4)
			script = script[17:]
		}
		// Only the ring's data area and tx_ptr may differ.
		dataLo, dataHi := base+RingHeaderSize, base+RingHeaderSize+length
		for i := range victim.ram {
			u := uint64(i)
			if (u >= dataLo && u < dataHi) || (u >= base+4 && u < base+8) || (ext && u >= base+hdrTxWanted && u < base+hdrTxWanted+4) {
				continue
			}
			if victim.ram[i] != before[i] {
				t.Fatalf("victim byte %#x changed from %#x to %#x", i, before[i], victim.ram[i])
			}
		}
		if tx := le.Uint32(victim.ram[base+4:]); tx >= length || tx%16 != 0 {
			t.Fatalf("tx_ptr %d", tx)
		}
	})
}
