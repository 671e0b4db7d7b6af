package main

import (
	"flag"

	"github.com/argovisor/argovisor/sandbox"
	"github.com/argovisor/argovisor/vmm"
)

// sandboxFlags are run's --seccomp and --user (docs/security.md).
type sandboxFlags struct {
	mode sandbox.Mode
	user *sandbox.Cred
}

func addSandboxFlags(fs *flag.FlagSet) *sandboxFlags {
	f := &sandboxFlags{mode: sandbox.SeccompOn}
	fs.Func("seccomp", "system calls off the allowlist: `on` (kill the process), log (allow, kernel logs), off", func(s string) error {
		m, err := sandbox.ParseMode(s)
		f.mode = m
		return err
	})
	fs.Func("user", "after setup, drop root privileges to `UID:GID` (numbers)", func(s string) error {
		c, err := sandbox.ParseUser(s)
		if err != nil {
			return err
		}
		f.user = &c
		return nil
	})
	return f
}

// config is the sandbox for running domains that are already created.
func (f *sandboxFlags) config() sandbox.Config {
	n := vmm.RunningNeeds()
	reqs := make([]uintptr, len(n.Ioctls))
	for i, r := range n.Ioctls {
		reqs[i] = uintptr(r)
	}
	return sandbox.Config{Seccomp: f.mode, User: f.user, Needs: sandbox.Needs{Syscalls: n.Syscalls, Ioctls: reqs}}
}
