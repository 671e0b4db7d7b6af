package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// These stop before anything is opened or confined: Lockdown must never
// run in the test process.
func TestRunSandboxFlagErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.toml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--seccomp=maybe", missing}, "want on, log or off"},
		{[]string{"run", "--seccomp", "", missing}, "want on, log or off"},
		{[]string{"run", "--user", "nobody", missing}, "want UID:GID"},
		{[]string{"run", "--user=0:0", missing}, "drops nothing"},
		{[]string{"run", "--user=1000:x", missing}, "gid"},
		// Valid flags: the missing config is the first error.
		{[]string{"run", "--seccomp=log", missing}, "no such file"},
		{[]string{"run", missing, "--seccomp", "off"}, "no such file"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("argovisor %q: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}

// TestRunUserNeedsRoot: --user without root is refused before setup.
func TestRunUserNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root; the sandbox package tests the refusal in a child that gave up root")
	}
	var out, errOut bytes.Buffer
	code := run([]string{"run", "--user", "65534:65534", filepath.Join(t.TempDir(), "c.toml")}, &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "needs root") {
		t.Errorf("exit %d, stderr %q; want exit 2 and a needs-root message", code, errOut.String())
	}
}
