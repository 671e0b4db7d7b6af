// Package sandbox confines the argovisor process once its domains are set
// up, in the manner of Firecracker's jailer and seccompiler: the
// descriptor limit pinned, core dumps off (guest memory must never reach a
// disk), privileges dropped to a given user and group, no_new_privs set, and
// a seccomp-bpf allowlist on every thread that kills the process on any
// other system call.
//
// The allowlist is the Go runtime's system calls (RuntimeSyscalls) plus what
// the caller declares in Needs — for argovisor, vmm.RunningNeeds: the KVM
// ioctls of running domains, mmap for the grant window, tgkill for kicks.
// A feature that needs more (a control socket, say) adds its own Needs.
//
// The package knows nothing of KVM or domains; cmd/argovisor applies it
// after setup. docs/security.md has the threat model and what is enforced
// where.
package sandbox
