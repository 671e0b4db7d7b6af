package vmm

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The pieces of a grant-table transfer's frame move, without KVM, to
// choose between copying a page and remapping it (docs/grant-tables.md,
// "Copy, not remap"):
//
//	go test -run '^$' -bench 'Frame|Page' -benchtime 20000x ./vmm/

func benchRAM(b *testing.B, size, populated uint64) *RAM {
	b.Helper()
	r, err := NewRAM("bench", size)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	if err := r.mapGuest(populated); err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkMoveFrame is the whole copy path of a transfer (moveFrame):
// sender's guest page made inaccessible, 4 KiB read from its memfd and
// written into the receiver's, receiver's guest page made accessible,
// sender's page punched. Each iteration moves the page one way; they
// alternate.
func BenchmarkMoveFrame(b *testing.B) {
	x, y := benchRAM(b, 2<<20, 2<<20), benchRAM(b, 2<<20, 0)
	x.mem[0] = 1
	rams := [2]*RAM{x, y}
	b.ResetTimer()
	for i := range b.N {
		if err := moveFrame(rams[i%2], 0, rams[(i+1)%2], 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCopyPage is the copy alone (both pages resident).
func BenchmarkCopyPage(b *testing.B) {
	x, y := benchRAM(b, 2<<20, 2<<20), benchRAM(b, 2<<20, 2<<20)
	x.mem[0], y.mem[0] = 1, 1
	b.SetBytes(PageSize)
	b.ResetTimer()
	for range b.N {
		copy(y.mem[:PageSize], x.mem[:PageSize])
	}
}

// BenchmarkPunchPage is a write through the VMM's mapping that faults a
// fresh page in, then the punch that gives it back, which must also
// unmap it from the VMM's page tables (a TLB shootdown): the cost
// moveFrame avoids by copying through the files.
func BenchmarkPunchPage(b *testing.B) {
	x := benchRAM(b, 2<<20, 2<<20)
	b.ResetTimer()
	for range b.N {
		x.mem[0] = 1
		if err := punchHole(x.fd, 0, PageSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProtectPage is one mprotect of one guest page, to
// inaccessible and back per two iterations.
func BenchmarkProtectPage(b *testing.B) {
	x := benchRAM(b, 2<<20, 2<<20)
	prot := [2]int{unix.PROT_NONE, unix.PROT_READ | unix.PROT_WRITE}
	b.ResetTimer()
	for i := range b.N {
		if err := mprotectAddr(x.guest+PageSize, PageSize, prot[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRemapPage is the unit of a zero-copy move: one page of another
// memfd mapped with MAP_FIXED over a page of a guest mapping (a remapped
// transfer needs two of these, guest and VMM mappings, plus the sender's
// mprotect), alternating between two source memfds.
func BenchmarkRemapPage(b *testing.B) {
	x, y, z := benchRAM(b, 2<<20, 2<<20), benchRAM(b, 2<<20, 2<<20), benchRAM(b, 2<<20, 2<<20)
	y.mem[0], z.mem[0] = 1, 2
	src := [2]int{y.fd, z.fd}
	b.ResetTimer()
	for i := range b.N {
		if _, err := mmapFile(x.guest+PageSize, PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED, src[i%2], 0); err != nil {
			b.Fatal(err)
		}
	}
}
