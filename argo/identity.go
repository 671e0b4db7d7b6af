package argo

import "github.com/argovisor/argovisor/hcall"

// Assured source context beyond the domain id (the Argo design's future
// work; differences from Xen in docs/argo.md):
//
//   - every domain has a name and a label the VMM vouches for (the
//     config's name and [domain] label), and any domain with Argo can ask
//     for a domain's id, name, label and state with OpDomainInfo;
//   - a ring registered with RegisterSenderContext gets every message with
//     a 32-byte header instead of Xen's 16: after Xen's fields the VMM
//     writes the sending vCPU's index and that vCPU's CR3 at the time of
//     the send. Both come from the exit, never from guest memory, so a
//     sender cannot forge them. Rings without the flag keep Xen's header.

// OpDomainInfo is argo_op(0x103, domid, info, 0, 0): fill the
// argo_domain_info at info (guest-virtual, DomainInfoSize bytes) for domid
// (DomainSelf for the caller). It returns 0, or -EINVAL (arg3/arg4 not 0),
// -ESRCH (no such domain), -EFAULT (info not writable).
const OpDomainInfo = 0x103

// DomainSelf (Xen's DOMID_SELF) names the caller in OpDomainInfo.
const DomainSelf DomainID = 0x7FF0

// RegisterSenderContext (XEN_ARGO_REGISTER_FLAG_SENDER_CONTEXT in argo.h)
// asks for the 32-byte message header with the sending context. It applies
// to messages sent after the (re-)registration.
const RegisterSenderContext = 0x20000

// Sizes of what OpDomainInfo writes (struct argo_domain_info, argo.h):
//
//	0   u16 domain_id
//	2   u16 state        DomainRunning or DomainEnded
//	4   u16 name_len     bytes of name used
//	6   u16 label_len    bytes of label used
//	8   char label[64]   not NUL-terminated when 64 long; the rest zero
//	72  char name[248]   likewise
const (
	DomainInfoSize = 320
	MaxLabelLen    = 64
	MaxNameLen     = 248
	// DomainRunning: the domain exists and its vCPUs run (the host always).
	DomainRunning = 1
	// DomainEnded: it exited, crashed or was stopped; its rings are gone,
	// and it is still known until the VMM releases it.
	DomainEnded = 2
)

// CtxMsgHeaderSize is the message header of a RegisterSenderContext ring:
// Xen's 16 bytes, then
//
//	16  u32 vcpu        index of the sending vCPU; NoVCPU for the host
//	20  u32 ctx_flags   CtxAddressSpace when cr3 is meaningful
//	24  u64 cr3         the sending vCPU's CR3 at the send
const CtxMsgHeaderSize = 32

// Sending-context values.
const (
	NoVCPU          = 0xFFFFFFFF
	CtxAddressSpace = 0x1
)

// sendCtx is what the VMM knows of a sender beyond its domain id.
type sendCtx struct {
	vcpu  uint32
	flags uint32
	cr3   uint64
}

// originOf reads the sending context from the hypercall's caller.
func originOf(c Caller) sendCtx {
	if o, ok := c.(hcall.Origin); ok {
		return sendCtx{vcpu: o.VCPU(), flags: CtxAddressSpace, cr3: o.AddressSpace()}
	}
	return sendCtx{vcpu: NoVCPU}
}

// hdrSize is the size of the message header this ring's receiver asked
// for. Preconditions: r.l3.
// +checklocks:r.l3
func (r *ring) hdrSize() uint32 {
	if r.ctx {
		return CtxMsgHeaderSize
	}
	return MsgHeaderSize
}

// domainInfoOp is OpDomainInfo. Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) domainInfoOp(c Caller, me *domainInfo, domid, infoAddr, arg3, arg4 uint64) int64 {
	a.assertReadL1()
	if arg3 != 0 || arg4 != 0 || domid > 0xFFFF {
		return -EINVAL
	}
	id := DomainID(domid)
	if id == DomainSelf {
		id = me.id
	}
	d := a.known[id]
	if d == nil {
		return -ESRCH
	}
	var b [DomainInfoSize]byte
	le.PutUint16(b[0:], uint16(d.id))
	state := uint16(DomainRunning)
	if d.ended.Load() {
		state = DomainEnded
	}
	le.PutUint16(b[2:], state)
	le.PutUint16(b[4:], uint16(copy(b[72:], d.name)))
	le.PutUint16(b[6:], uint16(copy(b[8:8+MaxLabelLen], d.label)))
	if writeGuest(c, infoAddr, b[:]) != nil {
		return -EFAULT
	}
	return 0
}

// DomainInfo is what OpDomainInfo reports, for Go callers.
type DomainInfo struct {
	ID          DomainID
	Name, Label string
	Ended       bool
}

// Info returns what OpDomainInfo would report about domain id.
func (a *Argo) Info(id DomainID) (DomainInfo, bool) {
	a.l1.RLock()
	defer a.l1.RUnlock()
	d := a.known[id]
	if d == nil {
		return DomainInfo{}, false
	}
	return DomainInfo{ID: d.id, Name: d.name, Label: d.label, Ended: d.ended.Load()}, true
}
