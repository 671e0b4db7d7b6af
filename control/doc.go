// Package control is argovisor's control API: HTTP and JSON over a Unix
// socket (net/http, as Firecracker and Cloud Hypervisor do), the
// Prometheus metrics at /metrics, and a client for it.
//
// The Server talks to the VMM through the small Backend interface, so it
// can be tested with a plain Go fake; VMMBackend implements it over a
// *vmm.VMM. The JSON types are shared by the server and the Client.
// Routes, bodies and errors: docs/api.md.
package control
