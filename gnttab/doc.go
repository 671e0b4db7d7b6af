// Package gnttab implements Xen's version 1 grant tables (hypercall 20,
// grant_table_op) as pure logic: per-domain shared tables, the VMM-private
// active entries with their pin counts, per-domain maptracks, and the
// operations map, unmap, copy, transfer, setup/query and the rest, over
// interfaces for guest memory (Memory, Caller), for the grantee's grant
// window (Window) and for moving frames between domains (Frames, which
// package vmm implements over package memop). It has no KVM dependency; package vmm implements Window with
// mmap of the granter's memory and wires the hypercall, and the tests drive
// everything over byte slices.
//
// Semantics follow Xen's xen/common/grant_table.c for HVM guests — entry
// layout and flags, structure layouts, the order of every check and the
// GNTST status or errno it gives, pin and maptrack accounting, the bounded
// compare-and-exchange on shared entries — except where
// docs/grant-tables.md lists a deliberate difference. The main one: a
// granter's death (or a policy) revokes other domains' mappings of its
// pages, which Xen cannot do.
//
// # Locking
//
//	l1 (GrantTables.l1, global rwlock)
//	 └─ maptrackMu (per domain, as a mapper)    requires R(l1)
//	     └─ tableMu (per domain, as a granter)   requires R(l1); leaf
//
// Every operation runs under R(l1); W(l1) is taken only by AddDomain,
// DomainDied, RemoveDomain and Revoke, so a death or revocation never
// races an operation. A mapper's maptrackMu is held for a whole map or
// unmap call, including the Window calls for its GPAs, so Window calls for
// one grantee never overlap. A granter's tableMu guards its table size,
// its active entries and every VMM write to its shared entries; at most
// one tableMu is held at a time (a copy pins its source, releases the
// lock, then pins its destination). Signals are raised after every lock is
// dropped. Functions state the locks they expect in a "Preconditions:"
// comment, assert them in lockdebug builds and carry checklocks
// annotations.
package gnttab
