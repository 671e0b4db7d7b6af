package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// assets is what a VM boot needs, all under one cache directory.
type assets struct {
	qemu     string   // qemu-system-x86_64
	qemuEnv  []string // extra environment for an unpacked QEMU (its libraries)
	qemuData []string // -L directories for an unpacked QEMU (BIOS, option ROMs)
	kernel   string   // vmlinuz
	modules  string   // lib/modules/VERSION of the same package
	busybox  string   // a static busybox
}

// fetcher fetches Debian packages into a cache directory, logging what it
// does (a second run finds everything and logs nothing).
type fetcher struct {
	dir string
	log io.Writer
}

// lock serialises fetches of concurrent runs on the same cache.
func (f *fetcher) lock() (unlock func(), err error) {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(filepath.Join(f.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		return nil, fmt.Errorf("flock %s: %w", lf.Name(), err)
	}
	return func() { lf.Close() }, nil
}

// fetchAll makes sure every asset is in the cache and returns them.
func (f *fetcher) fetchAll() (*assets, error) {
	unlock, err := f.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	a := &assets{}
	if a.busybox, err = f.busyboxBinary(); err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	if a.kernel, a.modules, err = f.kernelPackage(); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if err := f.qemuBinary(a); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	return a, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// run runs a command and returns its standard output; a failure carries
// its standard error.
func run(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// aptIndexReady makes sure apt knows the packages' candidates; as root it
// runs apt-get update once when the index is missing (a fresh machine).
func (f *fetcher) aptIndexReady() error {
	out, err := run("", nil, "apt-cache", "policy", "busybox-static")
	if err == nil && strings.Contains(out, "Candidate:") && !strings.Contains(out, "Candidate: (none)") {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("apt has no package index and this is not root: run `apt-get update` as root once")
	}
	fmt.Fprintln(f.log, "vmtest: apt-get update (the package index is missing)")
	_, err = run("", nil, "apt-get", "update")
	return err
}

// download fetches packages (names, or name=version) with apt-get download
// into the cache's debs/ directory and returns the .deb paths, in order.
func (f *fetcher) download(pkgs ...string) ([]string, error) {
	if err := f.aptIndexReady(); err != nil {
		return nil, err
	}
	debs := filepath.Join(f.dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(f.log, "vmtest: fetching %s from the Debian registry\n", strings.Join(pkgs, " "))
	if _, err := run(debs, nil, "apt-get", append([]string{"download", "-q"}, pkgs...)...); err != nil {
		return nil, err
	}
	var paths []string
	for _, p := range pkgs {
		name, _, _ := strings.Cut(p, "=")
		m, _ := filepath.Glob(filepath.Join(debs, name+"_*.deb"))
		if len(m) == 0 {
			return nil, fmt.Errorf("apt-get download %s left no %s_*.deb", p, name)
		}
		paths = append(paths, m[len(m)-1])
	}
	return paths, nil
}

// unpack extracts .deb files into dir (a fresh one, renamed into place when
// complete, so that an interrupted fetch is redone rather than half used).
func (f *fetcher) unpack(dir string, debs ...string) error {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for _, d := range debs {
		if _, err := run("", nil, "dpkg-deb", "-x", d, tmp); err != nil {
			return err
		}
	}
	os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

func (f *fetcher) busyboxBinary() (string, error) {
	dir := filepath.Join(f.dir, "busybox")
	bin := filepath.Join(dir, "bin", "busybox")
	if exists(bin) {
		return bin, nil
	}
	debs, err := f.download("busybox-static")
	if err != nil {
		return "", err
	}
	if err := f.unpack(dir, debs...); err != nil {
		return "", err
	}
	if !exists(bin) {
		return "", fmt.Errorf("busybox-static has no /bin/busybox")
	}
	return bin, nil
}

// kernelPackage fetches the kernel linux-image-amd64 points at and returns
// its vmlinuz and modules directory.
func (f *fetcher) kernelPackage() (vmlinuz, modules string, err error) {
	dir := filepath.Join(f.dir, "kernel")
	if vmlinuz, modules, err = findKernel(dir); err == nil {
		return vmlinuz, modules, nil
	}
	if err := f.aptIndexReady(); err != nil {
		return "", "", err
	}
	out, err := run("", nil, "apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return "", "", err
	}
	m := regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*-amd64)\b`).FindStringSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("linux-image-amd64 depends on no linux-image-*-amd64:\n%s", out)
	}
	debs, err := f.download(m[1])
	if err != nil {
		return "", "", err
	}
	if err := f.unpack(dir, debs...); err != nil {
		return "", "", err
	}
	return findKernel(dir)
}

func findKernel(dir string) (vmlinuz, modules string, err error) {
	k, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(k) != 1 {
		return "", "", fmt.Errorf("no single vmlinuz in %s/boot", dir)
	}
	ver := strings.TrimPrefix(filepath.Base(k[0]), "vmlinuz-")
	modules = filepath.Join(dir, "lib", "modules", ver)
	if !exists(modules) {
		return "", "", fmt.Errorf("no modules for %s", ver)
	}
	return k[0], modules, nil
}

// qemuBinary uses the host's qemu-system-x86_64 when it has one; otherwise
// it unpacks Debian's qemu-system-x86 with every package of its
// dependencies the host lacks (what `apt-get install` would add) under the
// cache, and runs it from there with those libraries and its firmware.
func (f *fetcher) qemuBinary(a *assets) error {
	if p, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		a.qemu = p
		return nil
	}
	root := filepath.Join(f.dir, "qemu")
	a.qemu = filepath.Join(root, "usr", "bin", "qemu-system-x86_64")
	a.qemuEnv = []string{"LD_LIBRARY_PATH=" + strings.Join([]string{
		filepath.Join(root, "usr", "lib", "x86_64-linux-gnu"),
		filepath.Join(root, "lib", "x86_64-linux-gnu"),
	}, ":")}
	a.qemuData = []string{filepath.Join(root, "usr", "share", "qemu"), filepath.Join(root, "usr", "share", "seabios")}
	if _, err := run("", a.qemuEnv, a.qemu, "--version"); err == nil {
		return nil
	}
	if err := f.aptIndexReady(); err != nil {
		return err
	}
	// What an install would add on this host, exact versions.
	sim, err := run("", nil, "apt-get", "install", "-s", "--no-install-recommends", "qemu-system-x86")
	if err != nil {
		return err
	}
	var pkgs []string
	sc := bufio.NewScanner(strings.NewReader(sim))
	re := regexp.MustCompile(`^Inst (\S+) (?:\[\S+\] )?\((\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			pkgs = append(pkgs, m[1]+"="+m[2])
		}
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("apt-get install -s qemu-system-x86 plans no package:\n%s", sim)
	}
	debs, err := f.download(pkgs...)
	if err != nil {
		return err
	}
	if err := f.unpack(root, debs...); err != nil {
		return err
	}
	if _, err := run("", a.qemuEnv, a.qemu, "--version"); err != nil {
		return fmt.Errorf("the unpacked QEMU does not run: %w", err)
	}
	return nil
}
