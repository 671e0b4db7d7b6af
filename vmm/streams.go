package vmm

import (
	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/hostsock"
)

// StreamHostMemory is the ring memory of the host's Argo endpoint when the
// stream bridge makes it. It is address space: a page costs memory only
// once a host ring uses it, and what the rings can use is reserved from
// the budget per domain (hostsock.Config.HostMemory). 512 MiB holds 2 000
// connection rings of the default size at once.
const StreamHostMemory = 512 << 20

// listenStream makes a domain's stream socket, and the bridge with the
// first one.
func (v *VMM) listenStream(id argo.DomainID, cfg hostsock.Config) (*hostsock.Socket, error) {
	v.streamMu.Lock()
	defer v.streamMu.Unlock()
	if v.bridge == nil {
		b, err := hostsock.New(v.argo, StreamHostMemory, v.log)
		if err != nil {
			return nil, err
		}
		v.bridge = b
	}
	s, err := v.bridge.Listen(id, cfg)
	if err != nil {
		return nil, err
	}
	if v.keepSocketFiles {
		s.KeepFile()
	}
	return s, nil
}

// KeepSocketFiles makes the domains' stream socket files stay when their
// domains are released, as a process must whose seccomp filter forbids
// unlinking: the next run's Listen replaces a stale one.
func (v *VMM) KeepSocketFiles() {
	v.streamMu.Lock()
	v.keepSocketFiles = true
	v.streamMu.Unlock()
	for _, d := range v.Domains() {
		if d.stream != nil {
			d.stream.KeepFile()
		}
	}
}

// StreamStats returns the counters of the domain's stream socket; false
// without one.
func (d *Domain) StreamStats() (hostsock.Stats, bool) {
	if d.stream == nil {
		return hostsock.Stats{}, false
	}
	return d.stream.Stats(), true
}

// StreamSocket is the path of the domain's stream socket, "" without one.
func (d *Domain) StreamSocket() string {
	if d.stream == nil {
		return ""
	}
	return d.stream.Path()
}
