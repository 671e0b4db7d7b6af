package vmm

import (
	"slices"

	"github.com/argovisor/argovisor/kvm"
	"golang.org/x/sys/unix"
)

// HostNeeds is what a VMM asks of the host kernel, beyond what the Go
// runtime itself needs, once its domains are created: package sandbox turns
// it into the seccomp allowlist (docs/security.md). It is plain data so that
// the library does not depend on the sandbox.
type HostNeeds struct {
	// Syscalls are the system calls the VMM makes (unix.SYS_*). The sandbox
	// keeps its own argument restrictions on some of them (no PROT_EXEC
	// for mmap, only hole punching for fallocate, only MFD_CLOEXEC for
	// memfd_create, …).
	Syscalls []uintptr
	// Ioctls are the only ioctl requests the VMM issues.
	Ioctls []kvm.Request
}

// RunningNeeds is what domains that already exist need while they run and
// when they are stopped and released. Building a domain is CreationNeeds:
// without the control API or a restart policy, `argovisor run` creates
// every domain before the sandbox is applied and needs only this.
func RunningNeeds() HostNeeds {
	return HostNeeds{
		Syscalls: []uintptr{
			unix.SYS_IOCTL,             // KVM_RUN and the requests below
			unix.SYS_MMAP,              // grant window: MAP_FIXED placements, unmaps, revocations
			unix.SYS_MUNMAP,            // releasing RAM, kvm_run areas and grant windows
			unix.SYS_FALLOCATE,         // punching holes in a domain's memfd (memory_op)
			unix.SYS_PWRITE64,          // a transfer's page copy into the receiver's memfd (pread64 is the runtime's)
			unix.SYS_TGKILL,            // kicking a vCPU thread out of KVM_RUN
			unix.SYS_GETPID,            // the kick's thread-group id
			unix.SYS_GETTID,            // a vCPU records its thread for kicks
			unix.SYS_SCHED_SETAFFINITY, // a vCPU thread of a domain with cpus pins itself (the sandbox allows only the calling thread)
			unix.SYS_CLOSE,             // releasing a stopped domain's descriptors
			unix.SYS_WRITE,             // console lines, summaries, hypercall traces
		},
		Ioctls: []kvm.Request{
			kvm.ReqRun,       // every vCPU loop iteration (vcpu.run)
			kvm.ReqSignalMSI, // VIRQs and InjectInterrupt
			kvm.ReqGetRegs,   // register dump of a crashed domain (Domain.crash)
			kvm.ReqGetSregs,  // CR2 of a crashed domain (Domain.crash)
		},
	}
}

// CreationNeeds is what building a domain's instance and releasing it
// needs once the KVM device is open and the kernel image is in memory:
// VMM.CreateDomain with DomainConfig.KernelData and no ConsoleLog (the
// control API's create with kernel_image), and every restart, which builds
// from the image read at creation (Domain.image). Opening files is not in
// it and never will be: a seccomp filter cannot tell one path from
// another, so a VMM allowed to open its kernel could open anything.
//
// It adds to RunningNeeds. Read from newDomain, newInstance,
// newInstanceMemory, setupVM, initVCPU, addInstance, instance.free and the
// kvm calls they make; TestRequestsClassified keeps every request the kvm
// package can issue accounted for. (CreateDomain with report_memory opens
// /proc/self/statm the first time: PrepareMemoryReports does it early.)
func CreationNeeds() HostNeeds {
	return HostNeeds{
		Syscalls: []uintptr{
			unix.SYS_MEMFD_CREATE,      // NewRAM: guest RAM and grant-table frames (MFD_CLOEXEC only)
			unix.SYS_FTRUNCATE,         // NewRAM: sizing the memfd
			unix.SYS_MMAP,              // NewRAM's mapping, RAM.mapGuest, the grant window's reservation, kvm_run (VM.CreateVCPU)
			unix.SYS_MPROTECT,          // RAM.mapGuest: a max_memory region's empty part inaccessible (the runtime's too)
			unix.SYS_MADVISE,           // RAM.dropVMMPages after the kernel is loaded (the runtime's too)
			unix.SYS_MUNMAP,            // instance.free, and the same on a failed build
			unix.SYS_CLOSE,             // instance.free: vCPU, VM and memfd descriptors
			unix.SYS_IOCTL,             // the requests below
			unix.SYS_SCHED_GETAFFINITY, // checkCPUs and the wait-poll choice read the process's CPUs (the runtime's too)
		},
		Ioctls: []kvm.Request{
			kvm.ReqCreateVM,            // setupVM: System.CreateVM on the open /dev/kvm
			kvm.ReqSetTSSAddr,          // setupVM
			kvm.ReqCreateIRQChip,       // setupVM
			kvm.ReqSetUserMemoryRegion, // setupVM: RAM, grant table and both window halves
			kvm.ReqCreateVCPU,          // newInstance: VM.CreateVCPU (its kvm_run size was read at OpenSystem)
			kvm.ReqSetCPUID2,           // initVCPU
			kvm.ReqGetSregs,            // initVCPU: KVM's reset state, then changed
			kvm.ReqSetSregs,            // initVCPU
			kvm.ReqSetRegs,             // initVCPU
			kvm.ReqSetMPState,          // initVCPU: every vCPU runnable
			kvm.ReqGetTSCKHz,           // newInstance: read once, for Domain.TSCKHz
		},
	}
}

// Descriptors is how many file descriptors one domain holds while it
// exists: its VM, its RAM and grant-table memfds, one per vCPU, and its
// console log file if it has one.
func (c DomainConfig) Descriptors() uint64 {
	n := 3 + uint64(max(c.VCPUs, 1))
	if c.ConsoleLog != "" {
		n++ // the console log file, open for the domain's life
	}
	if c.Stream.Path != "" {
		// The listening socket, and two per connection at most (a
		// guest→host connection's dialled socket and, while it is made,
		// none other; a host→guest one is the accepted socket).
		n += 1 + 2*uint64(c.Stream.WithDefaults().MaxConns)
	}
	return n
}

// ProcessDescriptors is the allowance for everything else a VMM process
// holds: the KVM device, standard streams, the Go runtime's poller
// descriptors and cgroup files, with room to spare.
const ProcessDescriptors = 64

// DescriptorBudget is the RLIMIT_NOFILE a process needs to run domains.
func DescriptorBudget(domains []DomainConfig) uint64 {
	n := uint64(ProcessDescriptors)
	statm := false
	for _, d := range domains {
		n += d.Descriptors()
		statm = statm || d.ReportMemory
	}
	if statm {
		n++ // /proc/self/statm, opened once for report_memory
	}
	return n
}

// Add returns n with o's needs added, each system call and request once.
func (n HostNeeds) Add(o HostNeeds) HostNeeds {
	out := HostNeeds{Syscalls: slices.Clone(n.Syscalls), Ioctls: slices.Clone(n.Ioctls)}
	for _, s := range o.Syscalls {
		if !slices.Contains(out.Syscalls, s) {
			out.Syscalls = append(out.Syscalls, s)
		}
	}
	for _, r := range o.Ioctls {
		if !slices.Contains(out.Ioctls, r) {
			out.Ioctls = append(out.Ioctls, r)
		}
	}
	return out
}
