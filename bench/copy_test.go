package bench

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/argovisor/argovisor/argo"
)

// The rig delivers the sender's bytes, intact, at the ring's tx_ptr, message
// after message, wrapping round the ring (host-only: runs everywhere).
func TestCopyRig(t *testing.T) {
	for _, size := range []int{1, 4095, 64 << 10, 1<<20 + 5} {
		r, err := newCopyRig(size)
		if err != nil {
			t.Fatal(err)
		}
		le := binary.LittleEndian
		for i := range 4 {
			r.buf[0], r.buf[size-1] = byte(i), byte(i+100)
			tx := le.Uint32(r.hdr[4:])
			if err := r.send(); err != nil {
				t.Fatal(err)
			}
			m := argoRead(r.data, tx, uint32(size)+argo.MsgHeaderSize)
			if got := le.Uint32(m[0:]); got != uint32(size)+argo.MsgHeaderSize {
				t.Fatalf("size %d message %d: header len %d", size, i, got)
			}
			if !bytes.Equal(m[argo.MsgHeaderSize:], r.buf) {
				t.Fatalf("size %d message %d: payload differs", size, i)
			}
			if le.Uint32(r.hdr[0:]) != le.Uint32(r.hdr[4:]) {
				t.Fatalf("size %d: not consumed", size)
			}
		}
		r.close()
	}
}

// argoRead reads n bytes of a ring's data area from offset off, wrapping.
func argoRead(data []byte, off, n uint32) []byte {
	out := make([]byte, 0, n)
	for uint32(len(out)) < n {
		k := min(n-uint32(len(out)), uint32(len(data))-off)
		out = append(out, data[off:off+k]...)
		off = (off + k) % uint32(len(data))
	}
	return out
}

// BenchmarkArgoCopy is the argo.copy figures as go test benchmarks, for
// profiling the VMM's copy path without KVM:
// go test -run '^$' -bench ArgoCopy -cpuprofile cpu.prof ./bench/
func BenchmarkArgoCopy(b *testing.B) {
	for _, size := range copySizes {
		r, err := newCopyRig(size)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(sizeName(size)+"/sendv", func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := r.send(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sizeName(size)+"/memcpy", func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				r.copyOnce()
			}
		})
		r.close()
	}
}
