package vmm

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/argovisor/argovisor/kvm"
)

func TestBootInfo(t *testing.T) {
	mem := make(SliceMemory, 1<<20)
	params, err := encodeParams(map[string]string{"b": "2", "a": "one"})
	if err != nil {
		t.Fatal(err)
	}
	if string(params) != "a\x00one\x00b\x002\x00\x00" {
		t.Fatalf("params = %q", params)
	}
	if err := writeBootInfo(mem, bootInfo{domid: 7, vcpus: 3, memSize: 1 << 20, heapStart: 0x200000, heapEnd: 0x300000, params: params}); err != nil {
		t.Fatal(err)
	}
	b := mem[bootInfoGPA:]
	le := binary.LittleEndian
	if string(b[:8]) != "ARGOBOOT" || le.Uint32(b[8:]) != 1 || le.Uint16(b[12:]) != 7 || le.Uint32(b[16:]) != 3 ||
		le.Uint32(b[20:]) != VIRQVector || le.Uint64(b[32:]) != 0x200000 || le.Uint16(b[54:]) != PortHypercall ||
		le.Uint32(b[56:]) != uint32(len(params)) || string(b[64:64+len(params)]) != string(params) {
		t.Errorf("boot info = % x", b[:80])
	}
}

func TestEncodeParamsErrors(t *testing.T) {
	if _, err := encodeParams(map[string]string{"k": "a\x00b"}); err == nil {
		t.Error("NUL in value accepted")
	}
	if _, err := encodeParams(map[string]string{"k": strings.Repeat("x", MaxParamsBytes)}); err == nil {
		t.Error("oversized params accepted")
	}
	if b, err := encodeParams(nil); err != nil || string(b) != "\x00" {
		t.Errorf("empty params = %q, %v", b, err)
	}
}

func TestGuestCPUID(t *testing.T) {
	in := []kvm.CPUIDEntry{{Function: 0}, {Function: 1}, {Function: 0x40000000, Eax: 0x40000001}, {Function: 0x40000001}}
	out := guestCPUID(in, false)
	var sig []byte
	n := 0
	for _, e := range out {
		switch e.Function {
		case 1:
			if e.Ecx&(1<<31) == 0 {
				t.Error("hypervisor bit not set")
			}
		case 0x40000000:
			n++
			for _, r := range []uint32{e.Ebx, e.Ecx, e.Edx} {
				sig = binary.LittleEndian.AppendUint32(sig, r)
			}
		case 0x40000001:
			n++
			if e.Eax != PortHypercall || e.Ecx != VIRQVector {
				t.Errorf("leaf 0x40000001 = %+v", e)
			}
		case 0x40000002:
			n++
			if uint64(e.Eax)|uint64(e.Ebx)<<32 != DoorbellGPA || e.Ecx != DoorbellPresent {
				t.Errorf("leaf 0x40000002 = %+v", e)
			}
		}
	}
	if n != 3 || string(sig) != "argovisorKVM" {
		t.Errorf("hypervisor leaves: %d, signature %q", n, sig)
	}
}
