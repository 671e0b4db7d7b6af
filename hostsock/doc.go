// Package hostsock is the host's side of Argo streams: a Unix socket per
// domain that speaks Firecracker's vsock convention ("CONNECT <port>\n",
// "OK <host_port>\n", then a byte stream), and the reverse direction, a
// guest connecting to the host on port P reaching the Unix socket
// PATH_P. docs/streams.md has the protocol and the rules for bad input.
//
// One Bridge per VMM owns the host's Argo endpoint (domain 0). A pump
// goroutine drains the host's rings whenever Argo signals the host and
// hands each connection's data to a writer goroutine; a reader goroutine
// per connection sends what the Unix side writes. Data waits in each
// connection's own ring: a connection whose Unix peer does not read stops
// being drained (its guest sender then waits in the VMM), and nothing one
// connection does holds up another.
//
// The package imports argo and argo/stream only; the VMM creates each
// domain's Socket and tells it when the domain's instance comes and goes.
package hostsock
