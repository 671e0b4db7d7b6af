package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

// EnvStaticDir names a directory of static test binaries built ahead
// (test/run.sh does, so that nothing compiles inside the VM): NAME.static.test
// for the package whose test binary is NAME.test.
const EnvStaticDir = "ARGOVISOR_STATIC_TESTBIN_DIR"

var static struct {
	once sync.Once
	path string
	err  error
}

// StaticTestBinary returns a build of the running test binary's package
// without cgo (CGO_ENABLED=0, no race detector): the kind of binary users
// run. Tests that re-run their binary under the seccomp filter use it,
// because a cgo build links the C library, which makes system calls of its
// own behind the filter (glibc's malloc opens /sys/devices/system/cpu/online
// for a new thread's arena) and is killed for them. The running binary is
// used as it is when it already has no cgo; otherwise a binary from
// ARGOVISOR_STATIC_TESTBIN_DIR, or one built now (once per process).
func StaticTestBinary(t testing.TB) string {
	t.Helper()
	static.once.Do(func() { static.path, static.err = staticTestBinary() })
	if static.err != nil {
		t.Fatalf("static test binary: %v", static.err)
	}
	return static.path
}

func staticTestBinary() (string, error) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "CGO_ENABLED" && s.Value == "0" {
				return os.Args[0], nil
			}
		}
	}
	name := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test") + ".static.test"
	if dir := os.Getenv(EnvStaticDir); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if os.Getenv(EnvInVM) != "" {
		return "", fmt.Errorf("%s is not in %s=%q, and nothing is compiled inside the VM", name, EnvStaticDir, os.Getenv(EnvStaticDir))
	}
	// The working directory of a test is its package's directory, one
	// level below the repository's top (where build/ is).
	dir, err := filepath.Abs(filepath.Join("..", "build", "static-test"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	tmp := fmt.Sprintf("%s.%d", p, os.Getpid()) // renamed into place: other packages' runs may race
	cmd := exec.Command("go", "test", "-c", "-o", tmp, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("CGO_ENABLED=0 go test -c: %w\n%s", err, out)
	}
	return p, os.Rename(tmp, p)
}
