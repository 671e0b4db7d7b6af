// Package argo implements Argo, Xen's hypervisor-mediated data exchange
// (hypercall 39, argo_op), as pure logic: domains, rings, lookups and the
// four operations, over interfaces for guest memory (Memory, Caller) and for
// raising the VIRQ (a Signal function). It has no KVM dependency; package
// vmm adapts it to real domains, and the tests drive it over plain byte
// slices.
//
// Semantics follow Xen's xen/common/argo.c — structure layouts, limits, the
// order of every check and its errno, the ring algorithm, the space
// notification protocol and teardown — except where docs/argo.md lists a
// deliberate difference.
//
// # Locking
//
// The hierarchy is Xen's, with the same names:
//
//	L1 (Argo.l1, global rwlock)
//	 └─ rings_L2 (per domain, rwlock)        requires R(L1)
//	     └─ L3 (per ring)                      requires R(rings_L2)
//	         └─ wildcard_L2 (per domain)       leaf
//	 └─ send_L2 (per domain)                   requires R(L1); no rings_L2 after it
//	 └─ wildcard_L2 (per domain)               requires R(L1); leaf
//
// W(L1) is taken only to add, tear down or remove a domain; every
// operation runs under R(L1), so operations on different domains' rings
// never wait for each other, and a domain registering and unregistering in
// a loop holds only its own rings_L2. Signals (VIRQs) are raised after
// every ring lock is dropped. Functions state the lock state they expect in
// a "Preconditions:" comment, assert it in lockdebug builds, and carry
// checklocks annotations.
package argo
