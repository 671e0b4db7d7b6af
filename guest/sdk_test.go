// Package guest_test tests the guest SDK that firmware/sdk.mk installs;
// the firmware itself is C and assembly, built by firmware/build.mk. It
// needs no KVM, so it runs on the host on every path of make test.
package guest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/argovisor/argovisor/vmm"
)

// TestSDKOutOfTree installs the guest SDK with `make sdk`, builds a guest
// from a directory outside the source tree with a three-line Makefile, and
// loads the result as the VMM would (no KVM needed).
func TestSDKOutOfTree(t *testing.T) {
	repoRoot, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	sdk := filepath.Join(tmp, "sdk")
	if out, err := exec.Command("make", "-C", repoRoot, "sdk", "SDK_PREFIX="+sdk).CombinedOutput(); err != nil {
		t.Fatalf("make sdk: %v\n%s", err, out)
	}
	for _, f := range []string{"argovisor-guest.mk", "lib/guest.ld", "include/guest.h", "include/argo.h", "include/gnttab.h", "include/argo_stream.h",
		"lib/firmware/entry.S.o", "lib/libargovisor-opt.a"} {
		if _, err := os.Stat(filepath.Join(sdk, f)); err != nil {
			t.Errorf("SDK lacks %s: %v", f, err)
		}
	}
	src := filepath.Join(tmp, "myguest")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, src, "Makefile", "ARGOVISOR_SDK ?= "+sdk+"\ninclude $(ARGOVISOR_SDK)/argovisor-guest.mk\nall: mine.elf\n")
	// It calls the stream SDK, an optional module: linked from the
	// archive because it is used.
	writeFile(t, src, "mine.c", `#include <guest.h>
#include <argo.h>
#include <argo_stream.h>

int guest_main(void)
{
    guest_printf("out of tree, domain %u\n", guest_domid());
    return argo_stream_init(0) < 0;
}
`)
	if out, err := exec.Command("make", "-C", src).CombinedOutput(); err != nil {
		t.Fatalf("make in an out-of-tree directory: %v\n%s", err, out)
	}
	f, err := os.Open(filepath.Join(src, "mine.elf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem := make(vmm.SliceMemory, 16<<20)
	img, err := vmm.LoadELF(f, mem, vmm.KernelBase, uint64(len(mem)))
	if err != nil {
		t.Fatalf("the out-of-tree guest does not load: %v", err)
	}
	if img.Entry < vmm.KernelBase || img.Symbolize(img.Entry) != "_start+0x0" {
		t.Errorf("entry %#x (%q), want the firmware's _start", img.Entry, img.Symbolize(img.Entry))
	}
	for _, name := range []string{"guest_main", "argo_stream_init"} {
		found := false
		for _, s := range img.Symbols {
			found = found || s.Name == name
		}
		if !found {
			t.Errorf("%s is not in the guest's symbol table", name)
		}
	}
}

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
