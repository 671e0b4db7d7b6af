// Package vmm runs bare-metal guest kernels as KVM domains.
//
// A VMM owns one /dev/kvm handle and many Domains. A Domain owns its KVM VM,
// its memfd-backed guest RAM, its vCPUs (one OS-thread-locked goroutine
// each) and a port-I/O bus with the serial console, the exit and crash
// ports and the hypercall port. Exits are decoded by package kvm into typed
// values and dispatched here; hypercalls reach the handler registered for
// their number with the vCPU's registers and a view of its address space
// (guest-virtual pointers are translated through the vCPU's page tables).
//
// Guest-physical layout, boot protocol and port map: docs/memory-layout.md.
// Hypercall ABI: docs/hypercall-abi.md. There is no package-level mutable
// state; many VMMs and domains can live in one process.
package vmm
