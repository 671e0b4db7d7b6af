// Package memop implements Xen's memory reservation operations
// (hypercall 12, memory_op) as pure logic: each domain's physmap (which
// guest frames hold a page), its current and maximum reservation, and the
// operations increase_reservation, decrease_reservation, populate_physmap,
// current_reservation and maximum_reservation, over an interface for the
// host memory behind the frames (Backing). It also gives the grant-table
// transfer (GNTTABOP_transfer, package gnttab) the frame moves it needs:
// Take, Drop, Reserve, Unreserve and Move. It has no KVM dependency;
// package vmm implements Backing with fallocate and mprotect on the
// domains' memfds and wires the hypercall, and the tests use fakes.
//
// Structure layouts, return conventions (the number of extents done) and
// the per-domain limit follow Xen's xen/common/memory.c for a translated
// (HVM) guest, except where docs/grant-tables.md lists a difference.
//
// # State of a frame
//
// A guest frame (gfn) of a domain's RAM region is populated or empty; an
// operation in flight holds it busy. Present reports, without locks,
// whether the VMM may touch a frame: it turns false the moment an
// operation starts taking a populated frame away, and true only once a
// populate or an incoming transfer is complete. The VMM's guest-memory
// accessors check it, so a hypercall buffer, an Argo ring or a grant is
// never set up on an empty frame.
//
// # Locking
//
//	l1 (Memop.l1, rwlock)   guards the domain table; nothing is called while it is held
//	 └─ mu (per domain)     guards the physmap and the counts; leaf
//
// Neither lock is held while calling Backing or an in-use check, so both
// may take other packages' locks (gnttab's and argo's) and the transfer
// path may call into memop with gnttab's locks held: memop's locks are
// always the innermost.
package memop
