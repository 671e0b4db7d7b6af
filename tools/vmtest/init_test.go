package main

import (
	"strings"
	"testing"
)

// The repository is mounted after every file system init.sh mounts over
// the host's directories: a clone under /tmp or /run (CI clones into
// temporary directories) was hidden by the tmpfs mounted there after it,
// and the VM found no job to run.
func TestInitMountsRepositoryLast(t *testing.T) {
	lines := strings.Split(string(initScript), "\n")
	repo, last := -1, -1
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "mount" {
			continue
		}
		if strings.Contains(l, `repo "/host$repo"`) {
			repo = i
		} else if strings.Contains(l, "/host/") {
			last = i
		}
	}
	if repo < 0 || last < 0 {
		t.Fatalf("init.sh: repository mount at line %d, last other mount under /host at line %d", repo+1, last+1)
	}
	if repo < last {
		t.Errorf("init.sh mounts the repository (line %d) before line %d: %q", repo+1, last+1, lines[last])
	}
}
