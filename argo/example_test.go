package argo_test

import (
	"fmt"

	"github.com/argovisor/argovisor/argo"
)

// A host endpoint (domain 0) registers a ring and receives a message. Here
// the host sends to itself; in a VMM the sender is a guest calling
// argo_sendv, and vmm.VMM.Argo() gives the Argo instance to add the host
// to.
func ExampleHost_RegisterRing() {
	a := argo.New(func(argo.DomainID) {}) // signal: raise a domain's VIRQ
	host, err := a.NewHost(argo.DefaultHostMemory, argo.Policy{Enabled: true})
	if err != nil {
		panic(err)
	}
	ring, err := host.RegisterRing(1000, argo.HostDomain, 4096)
	if err != nil {
		panic(err)
	}
	dst := argo.Addr{Port: 1000, Domain: argo.HostDomain}
	if _, err := host.Send(dst, 7, 0x42, []byte("hello, "), []byte("ring")); err != nil {
		panic(err)
	}
	m, err := ring.Recv()
	if err != nil {
		panic(err)
	}
	fmt.Printf("from domain %d port %d, type %#x: %s\n", m.Source.Domain, m.Source.Port, m.Type, m.Data)
	_, err = ring.Recv()
	fmt.Println("then:", err)
	// Output:
	// from domain 0 port 7, type 0x42: hello, ring
	// then: argo: EAGAIN
}
