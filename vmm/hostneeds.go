package vmm

import (
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
	// for mmap, only hole punching for fallocate, …).
	Syscalls []uintptr
	// Ioctls are the only ioctl requests the VMM issues.
	Ioctls []kvm.Request
}

// RunningNeeds is what domains that already exist need while they run and
// when they are stopped and released. Creating domains (memfd_create,
// ftruncate, KVM_CREATE_VM and the other set-up ioctls, opening the kernel
// file) is not in it: `argovisor run` creates every domain before the
// sandbox is applied.
func RunningNeeds() HostNeeds {
	return HostNeeds{
		Syscalls: []uintptr{
			unix.SYS_IOCTL,     // KVM_RUN and the requests below
			unix.SYS_MMAP,      // grant window: MAP_FIXED placements, unmaps, revocations
			unix.SYS_MUNMAP,    // releasing RAM, kvm_run areas and grant windows
			unix.SYS_FALLOCATE, // punching holes in a domain's memfd (memory_op)
			unix.SYS_PWRITE64,  // a transfer's page copy into the receiver's memfd (pread64 is the runtime's)
			unix.SYS_TGKILL,    // kicking a vCPU thread out of KVM_RUN
			unix.SYS_GETPID,    // the kick's thread-group id
			unix.SYS_GETTID,    // a vCPU records its thread for kicks
			unix.SYS_CLOSE,     // releasing a stopped domain's descriptors
			unix.SYS_WRITE,     // console lines, summaries, hypercall traces
		},
		Ioctls: []kvm.Request{
			kvm.ReqRun,       // every vCPU loop iteration
			kvm.ReqSignalMSI, // VIRQs and InjectInterrupt
			kvm.ReqGetRegs,   // register dump of a crashed domain
			kvm.ReqGetSregs,  // CR2 of a crashed domain
			kvm.ReqGetTSCKHz, // Domain.TSCKHz
		},
	}
}

// Descriptors is how many file descriptors one domain holds while it
// exists: its VM, its RAM and grant-table memfds, and one per vCPU.
func (c DomainConfig) Descriptors() uint64 { return 3 + uint64(max(c.VCPUs, 1)) }

// ProcessDescriptors is the allowance for everything else a VMM process
// holds: the KVM device, standard streams, the Go runtime's poller
// descriptors and cgroup files, with room to spare.
const ProcessDescriptors = 64

// DescriptorBudget is the RLIMIT_NOFILE a process needs to run domains.
func DescriptorBudget(domains []DomainConfig) uint64 {
	n := uint64(ProcessDescriptors)
	for _, d := range domains {
		n += d.Descriptors()
	}
	return n
}
