package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/bpf"
	"gvisor.dev/gvisor/pkg/seccomp"
)

// program builds the filter: the allowlist for needs, clone3 answered
// with ENOSYS, and deny for everything else (and for other architectures).
// With logOnly, deny is replaced by SECCOMP_RET_LOG, for which gVisor's
// package has no action: the program is built with SECCOMP_RET_TRAP, which
// nothing else in it returns, and each such return is rewritten.
func program(needs Needs, pid int, deny seccomp.Action, logOnly bool) ([]unix.SockFilter, error) {
	allow, err := rules(needs, pid)
	if err != nil {
		return nil, err
	}
	if logOnly {
		deny = seccomp.Trap
	}
	p := seccomp.Program{
		RuleSets: []seccomp.RuleSet{
			// clone3's flags are in memory, out of a filter's reach; the
			// C library falls back to clone on ENOSYS (Docker's default
			// profile does the same).
			{Rules: seccomp.MakeSyscallRules(map[uintptr]seccomp.SyscallRule{unix.SYS_CLONE3: seccomp.MatchAll{}}), Action: seccomp.ReturnError.Code(uint16(unix.ENOSYS))},
			{Rules: allow, Action: seccomp.Allow},
		},
		Options: seccomp.ProgramOptions{
			DefaultAction: deny,
			BadArchAction: deny,
			// KVM_RUN: one per VM exit. Checked first.
			HotSyscalls: []uintptr{unix.SYS_IOCTL, unix.SYS_FUTEX},
		},
	}
	insns, _, err := p.Build()
	if err != nil {
		return nil, fmt.Errorf("build seccomp filter: %w", err)
	}
	if len(insns) > bpf.MaxInstructions {
		return nil, fmt.Errorf("seccomp filter has %d BPF instructions, the kernel takes at most %d", len(insns), bpf.MaxInstructions)
	}
	prog := make([]unix.SockFilter, len(insns))
	for i, in := range insns {
		if logOnly && in.OpCode == bpf.Ret|bpf.K && in.K == uint32(unix.SECCOMP_RET_TRAP) {
			in.K = unix.SECCOMP_RET_LOG
		}
		prog[i] = unix.SockFilter{Code: in.OpCode, Jt: in.JumpIfTrue, Jf: in.JumpIfFalse, K: in.K}
	}
	return prog, nil
}
