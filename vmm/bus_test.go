package vmm

import (
	"errors"
	"testing"
)

// recorder is a PIODevice that logs accesses.
type recorder struct {
	name string
	log  *[]string
}

func (r recorder) PIORead(_ *VCPUContext, off uint16, data []byte) {
	*r.log = append(*r.log, r.name+" r"+string(rune('0'+off)))
	for i := range data {
		data[i] = byte(off)
	}
}

func (r recorder) PIOWrite(_ *VCPUContext, off uint16, data []byte) {
	*r.log = append(*r.log, r.name+" w"+string(rune('0'+off))+"="+string(data))
}

func TestBusInsertOverlap(t *testing.T) {
	var log []string
	var b PIOBus
	if err := b.Insert(0x10, 8, recorder{"a", &log}); err != nil {
		t.Fatal(err)
	}
	if err := b.Insert(0x20, 1, recorder{"b", &log}); err != nil {
		t.Fatal(err)
	}
	if err := b.Insert(0x18, 8, recorder{"c", &log}); err != nil {
		t.Fatalf("adjacent range rejected: %v", err)
	}
	for _, tc := range []struct{ base, size uint16 }{
		{0x10, 1}, {0x17, 1}, {0x0F, 2}, {0x08, 0x40}, {0x1F, 2}, {0x20, 1}, {0x1C, 1},
	} {
		if err := b.Insert(tc.base, tc.size, recorder{"x", &log}); !errors.Is(err, ErrOverlap) {
			t.Errorf("insert [%#x,+%d): err = %v, want ErrOverlap", tc.base, tc.size, err)
		}
	}
	if err := b.Insert(0xFFFF, 2, recorder{"x", &log}); err == nil || errors.Is(err, ErrOverlap) {
		t.Errorf("range past 0xFFFF: err = %v", err)
	}
	if err := b.Insert(0x30, 0, recorder{"x", &log}); err == nil {
		t.Error("empty range accepted")
	}
	if err := b.Insert(0xFFFF, 1, recorder{"last", &log}); err != nil {
		t.Errorf("last port: %v", err)
	}
}

func TestBusLookupAndDispatch(t *testing.T) {
	var log []string
	var b PIOBus
	for _, r := range []struct {
		base, size uint16
		name       string
	}{{0x3F8, 8, "uart"}, {0xF4, 1, "exit"}, {0x10, 4, "low"}} {
		if err := b.Insert(r.base, r.size, recorder{r.name, &log}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		port uint16
		name string
		off  uint16
		ok   bool
	}{
		{0x3F8, "uart", 0, true}, {0x3FF, "uart", 7, true}, {0x400, "", 0, false},
		{0x3F7, "", 0, false}, {0xF4, "exit", 0, true}, {0xF5, "", 0, false},
		{0x13, "low", 3, true}, {0, "", 0, false},
	} {
		dev, off, ok := b.Lookup(tc.port)
		if ok != tc.ok || (ok && (dev.(recorder).name != tc.name || off != tc.off)) {
			t.Errorf("Lookup(%#x) = %v, %d, %v", tc.port, dev, off, ok)
		}
	}

	// A string OUT of three 1-byte elements is three writes.
	log = nil
	if !b.Dispatch(nil, 0x3F8, false, 1, []byte("abc")) {
		t.Fatal("uart not found")
	}
	if want := []string{"uart w0=a", "uart w0=b", "uart w0=c"}; len(log) != 3 || log[0] != want[0] || log[2] != want[2] {
		t.Errorf("rep outsb log = %q", log)
	}
	// A string IN of two 2-byte elements fills each element.
	log = nil
	buf := make([]byte, 4)
	b.Dispatch(nil, 0x3FD, true, 2, buf)
	if len(log) != 2 || buf[0] != 5 || buf[3] != 5 {
		t.Errorf("rep insw: log %q buf %v", log, buf)
	}
	// An unowned port reads all-ones and reports false.
	buf = []byte{1, 2}
	if b.Dispatch(nil, 0x500, true, 2, buf) || buf[0] != 0xFF || buf[1] != 0xFF {
		t.Errorf("unowned read: %v", buf)
	}
}
