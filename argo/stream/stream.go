package stream

import (
	"encoding/binary"
	"errors"
)

// CtrlPort is the Argo port of an endpoint's control ring, where CONNECT
// messages go. Connection rings use ports above it; ports below it are
// left to plain Argo users.
const CtrlPort uint32 = 0x80000000

// FirstConnPort is the first Argo port an endpoint gives a connection ring.
const FirstConnPort uint32 = CtrlPort + 1

// Message types (the Argo message_type of each stream message).
const (
	MsgConnect  uint32 = 0x53540001
	MsgAccept   uint32 = 0x53540002
	MsgData     uint32 = 0x53540003
	MsgCredit   uint32 = 0x53540004 // defined, never sent: the ring is the credit
	MsgShutdown uint32 = 0x53540005
	MsgReset    uint32 = 0x53540006
)

// ShutFin is SHUTDOWN's flag: the sender sends no more data.
const ShutFin uint32 = 1

// Reset reasons (positive Linux errnos, as the guest SDK returns them).
const (
	ReasonRefused  uint32 = 111 // ECONNREFUSED: no listener, backlog full, nobody at PATH_port
	ReasonReset    uint32 = 104 // ECONNRESET: aborted
	ReasonTimedOut uint32 = 110 // ETIMEDOUT: not accepted in time
	ReasonNoBufs   uint32 = 105 // ENOBUFS: over the connection budget
)

// MaxChunk is the largest DATA payload any endpoint sends.
const MaxChunk = 256 << 10

// Payload sizes of the fixed-size messages.
const (
	ConnectSize  = 16
	AcceptSize   = 8
	CreditSize   = 16
	ShutdownSize = 4
	ResetSize    = 4
)

// ChunkSize is the largest DATA payload to send to a peer whose connection
// ring has data length ringLen: a quarter of it, so that the ring holds
// several and both sides work at once, at most MaxChunk and at least 1.
func ChunkSize(ringLen uint32) int {
	c := int(ringLen / 4)
	return max(1, min(c, MaxChunk))
}

var le = binary.LittleEndian

// ErrShort is returned for a payload shorter than its message's fixed part.
var ErrShort = errors.New("stream: message too short")

// Connect is CONNECT's payload.
type Connect struct {
	Port    uint32 // the stream port asked for
	RingLen uint32 // the connector's ring data length
}

// Marshal encodes c.
func (c Connect) Marshal() []byte {
	b := make([]byte, ConnectSize)
	le.PutUint32(b[0:], c.Port)
	le.PutUint32(b[4:], c.RingLen)
	return b
}

// ParseConnect decodes CONNECT's payload. Flags and reserved words are
// ignored (a newer peer may set them).
func ParseConnect(p []byte) (Connect, error) {
	if len(p) < ConnectSize {
		return Connect{}, ErrShort
	}
	return Connect{Port: le.Uint32(p[0:]), RingLen: le.Uint32(p[4:])}, nil
}

// Accept is ACCEPT's payload.
type Accept struct {
	RingLen uint32 // the acceptor's ring data length
}

// Marshal encodes a.
func (a Accept) Marshal() []byte {
	b := make([]byte, AcceptSize)
	le.PutUint32(b[0:], a.RingLen)
	return b
}

// ParseAccept decodes ACCEPT's payload.
func ParseAccept(p []byte) (Accept, error) {
	if len(p) < AcceptSize {
		return Accept{}, ErrShort
	}
	return Accept{RingLen: le.Uint32(p[0:])}, nil
}

// Shutdown encodes SHUTDOWN's payload.
func Shutdown(flags uint32) []byte {
	b := make([]byte, ShutdownSize)
	le.PutUint32(b, flags)
	return b
}

// ParseShutdown decodes SHUTDOWN's payload: its flags.
func ParseShutdown(p []byte) (uint32, error) {
	if len(p) < ShutdownSize {
		return 0, ErrShort
	}
	return le.Uint32(p), nil
}

// Reset encodes RESET's payload.
func Reset(reason uint32) []byte {
	b := make([]byte, ResetSize)
	le.PutUint32(b, reason)
	return b
}

// ParseReset decodes RESET's payload: its reason.
func ParseReset(p []byte) (uint32, error) {
	if len(p) < ResetSize {
		return 0, ErrShort
	}
	return le.Uint32(p), nil
}

// ValidRingLen reports whether a peer's announced ring length is one an
// Argo ring can have (ChunkSize of it is then at least 12 bytes).
func ValidRingLen(n uint32) bool {
	return n >= 48 && n <= 0x1000000 && n%16 == 0
}
