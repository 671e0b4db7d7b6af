package main

import (
	"bytes"
	"debug/elf"
	_ "embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cavaliergopher/cpio"
)

// The VM's /init: a busybox shell script (init.sh).
//
//go:embed init.sh
var initScript []byte

// wantedModules are the modules the VM loads, each after its dependencies:
// KVM on AMD SVM (what TCG emulates), and virtio-pci + 9p for the shares.
var wantedModules = []string{"kvm_amd", "virtio_pci", "9pnet_virtio", "9p"}

// modName is a module's name as depends= and lsmod write it.
func modName(file string) string {
	return strings.ReplaceAll(strings.TrimSuffix(filepath.Base(file), ".ko"), "-", "_")
}

// moduleDepends reads a .ko's depends= from its .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: .modinfo: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// moduleOrder returns the .ko files to load, dependencies first. Modules
// built into the kernel (modules.builtin) need no file.
func moduleOrder(modDir string, wanted []string) ([]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(filepath.Join(modDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".ko") {
			files[modName(p)] = p
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[modName(l)] = true
		}
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		case 2:
			return nil
		}
		path, ok := files[name]
		if !ok {
			if builtin[name] {
				state[name] = 2
				return nil
			}
			return fmt.Errorf("module %s: not in %s", name, modDir)
		}
		state[name] = 1
		deps, err := moduleDepends(path)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(modName(d)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		state[name] = 2
		order = append(order, path)
		return nil
	}
	for _, w := range wanted {
		if err := visit(w); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// writeInitramfs writes a newc cpio archive: busybox, the init script and
// the modules with the order to load them in (modules.order).
func writeInitramfs(path string, a *assets) error {
	mods, err := moduleOrder(a.modules, wantedModules)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	dir := func(name string) error {
		return w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeDir | 0o755})
	}
	file := func(name string, mode cpio.FileMode, data []byte) error {
		if err := w.WriteHeader(&cpio.Header{Name: name, Mode: cpio.TypeReg | mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := w.Write(data)
		return err
	}
	for _, d := range []string{"bin", "dev", "proc", "sys", "host", "modules", "tmp"} {
		if err := dir(d); err != nil {
			return err
		}
	}
	bb, err := os.ReadFile(a.busybox)
	if err != nil {
		return err
	}
	if err := file("bin/busybox", 0o755, bb); err != nil {
		return err
	}
	if err := file("init", 0o755, initScript); err != nil {
		return err
	}
	var order strings.Builder
	for _, m := range mods {
		data, err := os.ReadFile(m)
		if err != nil {
			return err
		}
		name := filepath.Base(m)
		if err := file("modules/"+name, 0o644, data); err != nil {
			return err
		}
		order.WriteString(name + "\n")
	}
	if err := file("modules.order", 0o644, []byte(order.String())); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
