package vmm

import (
	"fmt"
	"os"
)

// The doorbell is a second way into the hypercall dispatcher: a 32-bit
// store of the hypercall number to DoorbellGPA, a guest-physical page that
// no memory slot backs, so the store leaves the guest as a KVM_EXIT_MMIO.
// Arguments and result use the same registers as the hypercall port
// (docs/hypercall-abi.md, "The doorbell").
//
// Why a second entry: on kvm_pvm every guest instruction at CPL 0 is
// emulated, and the port hypercall needs the firmware's CPL-0 gate (INT,
// table jump, OUT, IRETQ) because OUT faults at CPL 3. A store to an MMIO
// page is legal at CPL 3, so it leaves the guest with no CPL-0 instruction
// at all. docs/performance.md has the measured difference.
//
// The result is written to RAX through the kvm_run sync registers, as for
// the port. That is only sound because KVM finishes a write instruction
// (register writeback, RIP advanced) before it exits to user space for the
// MMIO write; nothing is left to complete on re-entry that could overwrite
// RAX. TestDoorbellRIPAdvanced checks this on the host it runs on.
const (
	// DoorbellGPA is the doorbell page: the first page after the grant
	// window's read-only half, below the IOAPIC, inside the identity map
	// of 0-4 GiB the VMM's page tables give every domain (user-accessible).
	DoorbellGPA = GrantWindowROGPA + GrantWindowHalf
	// DoorbellSize is the page the VMM owns; only offset 0 rings.
	DoorbellSize = PageSize
	// doorbellWidth is the only access that rings: a 4-byte write.
	doorbellWidth = 4
)

// Flags in CPUID leaf 0x40000002 ECX.
const (
	// DoorbellPresent: the page at EAX (low 32 bits), EBX (high) rings.
	DoorbellPresent = 1 << 0
	// DoorbellPreferred: the VMM expects the doorbell to be cheaper than
	// the port on this host, so the SDK's guest_hypercall uses it.
	DoorbellPreferred = 1 << 1
)

// DoorbellPolicy says whether the VMM tells guests to prefer the doorbell
// over the port. The doorbell page works whatever the policy: the policy
// only sets DoorbellPreferred in the CPUID leaf.
type DoorbellPolicy int

const (
	// DoorbellAuto prefers the doorbell where it is known to be cheaper:
	// on kvm_pvm, where it saves the firmware gate's emulated CPL-0
	// instructions. Elsewhere CPL-0 code runs natively and an OUT exit
	// is decoded by the CPU, while an MMIO exit makes KVM fetch and
	// decode the instruction, so the port stays preferred.
	DoorbellAuto DoorbellPolicy = iota
	// DoorbellPrefer always sets DoorbellPreferred.
	DoorbellPrefer
	// DoorbellAvoid never sets it: guests use the port.
	DoorbellAvoid
)

// ParseDoorbellPolicy parses "auto", "prefer" or "avoid".
func ParseDoorbellPolicy(s string) (DoorbellPolicy, error) {
	switch s {
	case "auto", "":
		return DoorbellAuto, nil
	case "prefer":
		return DoorbellPrefer, nil
	case "avoid":
		return DoorbellAvoid, nil
	}
	return 0, fmt.Errorf("parse doorbell policy %q: want auto, prefer or avoid", s)
}

// String implements fmt.Stringer.
func (p DoorbellPolicy) String() string {
	switch p {
	case DoorbellAuto:
		return "auto"
	case DoorbellPrefer:
		return "prefer"
	case DoorbellAvoid:
		return "avoid"
	}
	return "invalid"
}

// doorbellPreferred resolves the policy; onPVM is whether the host's KVM
// is kvm_pvm.
func doorbellPreferred(p DoorbellPolicy, onPVM bool) bool {
	switch p {
	case DoorbellPrefer:
		return true
	case DoorbellAvoid:
		return false
	}
	return onPVM
}

// hostIsPVM reports whether the kvm_pvm module is loaded: then /dev/kvm
// is pagetable-based virtualisation, where guest CPL-0 code is emulated.
func hostIsPVM() bool {
	_, err := os.Stat("/sys/module/kvm_pvm")
	return err == nil
}

// mmioKind classifies an MMIO exit.
type mmioKind int

const (
	mmioOther        mmioKind = iota // not the doorbell page
	mmioDoorbell                     // a 4-byte write at offset 0: a hypercall
	mmioDoorbellRead                 // a read of the doorbell page
	mmioDoorbellBad                  // any other write to the page
)

// classifyMMIO decodes an access of n bytes at gpa. It looks only at the
// exit's own fields, which KVM fills from the guest's instruction: a
// hostile guest chooses all of them.
func classifyMMIO(gpa uint64, n int, write bool) mmioKind {
	if gpa < DoorbellGPA || gpa-DoorbellGPA >= DoorbellSize {
		return mmioOther
	}
	switch {
	case !write:
		return mmioDoorbellRead
	case gpa == DoorbellGPA && n == doorbellWidth:
		return mmioDoorbell
	}
	return mmioDoorbellBad
}
