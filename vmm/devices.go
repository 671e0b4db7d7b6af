package vmm

import (
	"encoding/binary"
	"sync"

	"github.com/argovisor/argovisor/kvm"
)

// serial is the transmit side of a 16550 UART at PortSerial: bytes written
// to THR become console lines; LSR always reads "transmitter empty".
type serial struct {
	d *Domain

	// mu guards line. Leaf lock.
	mu   sync.Mutex
	line []byte
}

const (
	uartTHR = 0
	uartLSR = 5
	// lsrTHRE|lsrTEMT: the transmitter is always idle.
	lsrIdle = 0x60
	// maxLine bounds a console line: a guest that never sends a newline
	// cannot make the VMM buffer without limit.
	maxLine = 4096
)

func (s *serial) PIORead(_ *VCPUContext, off uint16, data []byte) {
	clear(data)
	if off == uartLSR {
		data[0] = lsrIdle
	}
}

func (s *serial) PIOWrite(_ *VCPUContext, off uint16, data []byte) {
	if off != uartTHR {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range data {
		switch c {
		case '\n':
			s.flushLocked()
		case '\r':
		default:
			s.line = append(s.line, c)
			if len(s.line) >= maxLine {
				s.flushLocked()
			}
		}
	}
}

// flushLocked emits the buffered line. Preconditions: s.mu held.
func (s *serial) flushLocked() {
	s.d.emitLine(string(s.line))
	s.line = s.line[:0]
}

// flush emits a final unterminated line when the domain stops.
func (s *serial) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.line) > 0 {
		s.flushLocked()
	}
}

// exitPort ends the domain with the status the guest writes.
type exitPort struct{}

func (exitPort) PIORead(_ *VCPUContext, _ uint16, data []byte) {
	for i := range data {
		data[i] = 0xFF
	}
}

func (exitPort) PIOWrite(c *VCPUContext, _ uint16, data []byte) {
	c.Domain.finish(Result{Kind: Exited, Status: int32(le32(data))})
}

// crashPort receives the firmware's exception report: EAX = vector, RDI =
// pointer to the saved frame (docs/memory-layout.md).
type crashPort struct{}

func (crashPort) PIORead(_ *VCPUContext, _ uint16, data []byte) {
	for i := range data {
		data[i] = 0xFF
	}
}

// crashFrameWords is the length of the firmware's saved frame.
const crashFrameWords = 22

func (crashPort) PIOWrite(c *VCPUContext, _ uint16, data []byte) {
	regs := *c.Regs()
	f := &Fault{Reason: "exception", VCPU: c.Index, Vector: int(le32(data) & 0xFF), Regs: regs, RIP: regs.RIP, CR2: c.Sregs().CR2}
	var raw [crashFrameWords * 8]byte
	if err := c.Guest().Read(regs.RDI, raw[:]); err == nil {
		w := func(i int) uint64 { return binary.LittleEndian.Uint64(raw[i*8:]) }
		f.Regs = regsFromFrame(w)
		f.ErrorCode = w(16)
		f.RIP = w(17)
		if v := w(15); v < 256 {
			f.Vector = int(v)
		}
	} else {
		f.Reason = "exception (frame unreadable: " + err.Error() + ")"
	}
	f.Symbol = c.Domain.kernel.Symbolize(f.RIP)
	c.Domain.finish(Result{Kind: Crashed, Fault: f, Reason: f.String()})
}

// regsFromFrame decodes the frame order r15..rax, vector, error, rip, cs,
// rflags, rsp, ss.
func regsFromFrame(w func(int) uint64) (r kvm.Regs) {
	r.R15, r.R14, r.R13, r.R12 = w(0), w(1), w(2), w(3)
	r.R11, r.R10, r.R9, r.R8 = w(4), w(5), w(6), w(7)
	r.RBP, r.RDI, r.RSI, r.RDX = w(8), w(9), w(10), w(11)
	r.RCX, r.RBX, r.RAX = w(12), w(13), w(14)
	r.RIP, r.RFLAGS, r.RSP = w(17), w(19), w(20)
	return r
}

func le32(data []byte) uint32 {
	var b [4]byte
	copy(b[:], data)
	return binary.LittleEndian.Uint32(b[:])
}
