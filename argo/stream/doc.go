// Package stream is the wire format of Argo streams: connections, data,
// half-close and reset carried in ordinary Argo messages (docs/streams.md).
// It holds the message types, ports and payload layouts shared by the
// host's socket bridge (package hostsock) and the guest SDK
// (guest/include/argo_stream.h, which must agree with it byte for byte).
// It is pure encoding: no state, no I/O.
package stream
