package vmm

import (
	"fmt"
	"sync/atomic"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/hcall"
	"github.com/argovisor/argovisor/kvm"
)

// Exit kinds counted per domain (Stats.Exits keys).
const (
	exitIO = iota
	exitMMIO
	exitHLT
	exitIntr
	exitKick // KVM_RUN interrupted by a signal (a kick or the Go runtime's)
	exitShutdown
	exitInternalError
	exitFailEntry
	exitSystemEvent
	exitOther
	numExitKinds
)

var exitKindNames = [numExitKinds]string{"io", "mmio", "hlt", "intr", "kick", "shutdown", "internal_error", "fail_entry", "system_event", "other"}

func exitKind(r kvm.ExitReason) int {
	switch r {
	case kvm.ExitIO:
		return exitIO
	case kvm.ExitMMIO:
		return exitMMIO
	case kvm.ExitHLT:
		return exitHLT
	case kvm.ExitIntr:
		return exitIntr
	case kvm.ExitShutdown:
		return exitShutdown
	case kvm.ExitInternalError:
		return exitInternalError
	case kvm.ExitFailEntry:
		return exitFailEntry
	case kvm.ExitSystemEvent:
		return exitSystemEvent
	}
	return exitOther
}

// opSlots is how many sub-operations of the Argo and grant-table hypercalls
// are counted one by one; unknown op numbers share the last slot. Ops
// numbered past the slots (argovisor's extensions) get slots of their own
// that Xen's numbering leaves free (extSlots).
const (
	opSlots   = 16
	slotOther = opSlots - 1
)

// extSlots maps extension op numbers to their counter slots, per hypercall.
var extSlots = map[uint32]map[uint64]uint64{
	HypercallArgoOp:       {argo.OpSendvBatch: 8, argo.OpWait: 9, argo.OpSendWait: 10, argo.OpDomainInfo: 11},
	HypercallGrantTableOp: {gnttab.OpQueryRevoked: 13},
}

// opSlot is the counter slot of sub-operation op of hypercall nr.
func opSlot(nr uint32, op uint64) uint64 {
	if s, ok := extSlots[nr][op]; ok {
		return s
	}
	for _, s := range extSlots[nr] {
		if s == op {
			return slotOther // the slot belongs to an extension
		}
	}
	if op >= slotOther {
		return slotOther
	}
	return op
}

// stats are per-domain counters, updated atomically from vCPU goroutines.
// They cover the domain's whole life, across restarts.
type stats struct {
	pioExits, mmioExits, unknownPorts, hypercalls, kicks atomic.Uint64
	virqs, consoleExits                                  atomic.Uint64
	waitsPolled, waitsSlept                              atomic.Uint64
	doorbells, doorbellBad                               atomic.Uint64
	exits                                                [numExitKinds]atomic.Uint64
	byNr                                                 [maxHypercall]atomic.Uint64
	argoOps, gnttabOps                                   [opSlots]atomic.Uint64
	hcErrnos                                             hcall.ErrnoCounter
}

// count records one hypercall and its result.
func (s *stats) count(nr uint32, op uint64, ret int64) {
	s.hypercalls.Add(1)
	if nr < maxHypercall {
		s.byNr[nr].Add(1)
	}
	switch nr {
	case HypercallArgoOp:
		s.argoOps[opSlot(nr, op)].Add(1)
	case HypercallGrantTableOp:
		s.gnttabOps[opSlot(nr, op)].Add(1)
	}
	if ret < 0 {
		s.hcErrnos.Add(ret)
	}
}

// Stats is a snapshot of a domain's VMM-side counters (over its whole
// life, across restarts).
type Stats struct {
	PIOExits, MMIOExits, UnknownPorts, Hypercalls, Kicks uint64
	// VIRQs counts VIRQs the domain's local APIC accepted (several may
	// merge into one delivery to the guest).
	VIRQs uint64
	// ConsoleExits counts the port-I/O exits (included in PIOExits) to
	// the serial console: one per line where a string OUT is one exit,
	// one per byte where the host steps it byte by byte (kvm_pvm).
	ConsoleExits uint64
	// WaitsPolled counts the Argo waits whose answer came while the vCPU
	// polled for it; WaitsSlept those that slept (Options.WaitPoll).
	WaitsPolled, WaitsSlept uint64
	// Doorbells counts hypercalls made through the doorbell page (also
	// counted in MMIOExits and Hypercalls); DoorbellBad counts other
	// accesses to that page (reads, other sizes or offsets), which the
	// VMM ignores (docs/hypercall-abi.md, "The doorbell").
	Doorbells, DoorbellBad uint64
	// ExitsByKind counts KVM exits by kind ("io", "mmio", "hlt", "kick",
	// …); only kinds seen are present.
	ExitsByKind map[string]uint64
	// HypercallsByOp counts hypercalls by name, with the sub-operation for
	// Argo and grant tables ("argo_op.sendv", "grant_table_op.copy").
	HypercallsByOp map[string]uint64
	// HypercallErrors counts hypercalls that returned a negative errno,
	// by errno name ("ECONNREFUSED").
	HypercallErrors map[string]uint64
	// Restarts is how many times the domain has been restarted.
	Restarts int
}

// Stats returns the current counters.
func (d *Domain) Stats() Stats {
	s := &d.stats
	st := Stats{
		PIOExits: s.pioExits.Load(), MMIOExits: s.mmioExits.Load(),
		UnknownPorts: s.unknownPorts.Load(), Hypercalls: s.hypercalls.Load(),
		Kicks: s.kicks.Load(), VIRQs: s.virqs.Load(), ConsoleExits: s.consoleExits.Load(),
		WaitsPolled: s.waitsPolled.Load(), WaitsSlept: s.waitsSlept.Load(),
		Doorbells: s.doorbells.Load(), DoorbellBad: s.doorbellBad.Load(), ExitsByKind: map[string]uint64{}, HypercallsByOp: map[string]uint64{},
	}
	for i := range s.exits {
		if n := s.exits[i].Load(); n != 0 {
			st.ExitsByKind[exitKindNames[i]] = n
		}
	}
	for nr := range s.byNr {
		n := s.byNr[nr].Load()
		if n == 0 {
			continue
		}
		var ops *[opSlots]atomic.Uint64
		switch nr {
		case HypercallArgoOp:
			ops = &s.argoOps
		case HypercallGrantTableOp:
			ops = &s.gnttabOps
		default:
			st.HypercallsByOp[HypercallName(uint32(nr))] = n
			continue
		}
		for op := range ops {
			if m := ops[op].Load(); m != 0 {
				st.HypercallsByOp[slotName(uint32(nr), uint64(op))] = m
			}
		}
	}
	errs := s.hcErrnos.Snapshot()
	st.HypercallErrors = errs.ByName()
	d.resultMu.Lock()
	st.Restarts = d.restarts
	d.resultMu.Unlock()
	return st
}

// Exits is the number of transitions the guest made into the VMM: port
// I/O (hypercalls, console, exit) and MMIO exits. Kicks and other exits
// the VMM caused itself are not counted.
func (s Stats) Exits() uint64 { return s.PIOExits + s.MMIOExits }

var argoOpNames = map[uint64]string{
	argo.OpRegisterRing: "register_ring", argo.OpUnregisterRing: "unregister_ring",
	argo.OpSendv: "sendv", argo.OpNotify: "notify", argo.OpSendvBatch: "sendv_batch",
	argo.OpWait: "wait", argo.OpSendWait: "sendv_wait", argo.OpDomainInfo: "domain_info",
}

var gnttabOpNames = map[uint64]string{
	gnttab.OpMapGrantRef: "map_grant_ref", gnttab.OpUnmapGrantRef: "unmap_grant_ref",
	gnttab.OpSetupTable: "setup_table", gnttab.OpDumpTable: "dump_table", gnttab.OpTransfer: "transfer",
	gnttab.OpCopy: "copy", gnttab.OpQuerySize: "query_size", gnttab.OpUnmapAndReplace: "unmap_and_replace",
	gnttab.OpSetVersion: "set_version", gnttab.OpGetStatusFrames: "get_status_frames",
	gnttab.OpGetVersion: "get_version", gnttab.OpSwapGrantRef: "swap_grant_ref",
	gnttab.OpCacheFlush: "cache_flush", gnttab.OpQueryRevoked: "query_revoked",
}

// slotName names a counter slot of opSlot.
func slotName(nr uint32, slot uint64) string {
	if slot == slotOther {
		return HypercallName(nr) + ".other"
	}
	for op, s := range extSlots[nr] {
		if s == slot {
			return HypercallOpName(nr, op)
		}
	}
	return HypercallOpName(nr, slot)
}

// HypercallName is the name of hypercall nr ("argo_op").
func HypercallName(nr uint32) string {
	switch nr {
	case HypercallMemoryOp:
		return "memory_op"
	case HypercallGrantTableOp:
		return "grant_table_op"
	case HypercallArgoOp:
		return "argo_op"
	case HypercallNull:
		return "null"
	}
	return fmt.Sprintf("hypercall_%d", nr)
}

// HypercallOpName names a hypercall with its sub-operation for the ones
// that have one ("argo_op.sendv", "argo_op.op_9" for an unknown op); others
// are HypercallName.
func HypercallOpName(nr uint32, op uint64) string {
	var names map[uint64]string
	switch nr {
	case HypercallArgoOp:
		names = argoOpNames
	case HypercallGrantTableOp:
		names = gnttabOpNames
	default:
		return HypercallName(nr)
	}
	if n, ok := names[op]; ok {
		return HypercallName(nr) + "." + n
	}
	return fmt.Sprintf("%s.op_%d", HypercallName(nr), op)
}
