package vmm_test

import (
	"bytes"
	"fmt"
	"os"

	"github.com/argovisor/argovisor/vmm"
)

// Boot one domain from a kernel built by `make guests` and wait for it.
// (Without an "Output:" comment this example is compiled, not run: it
// needs /dev/kvm.)
func ExampleVMM_CreateDomain() {
	v, err := vmm.New(vmm.Options{
		Console: func(d *vmm.Domain, line string) { fmt.Printf("[%s] %s\n", d.Name(), line) },
	})
	if err != nil {
		fmt.Println("no usable KVM:", err)
		return
	}
	defer v.Close()
	// Memory and VCPUs default to 16 MiB and 1; OnCrash could be
	// vmm.ActionRestart.
	d, err := v.CreateDomain(vmm.DomainConfig{Name: "hello", Kernel: "build/guests/hello.elf"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := d.Start(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Wait())
}

// A kernel may come from memory (any io.ReaderAt) rather than a path.
func ExampleDomainConfig_kernelData() {
	image, err := os.ReadFile("build/guests/hello.elf") // or embedded with go:embed
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := vmm.DomainConfig{Name: "hello", Kernel: "hello (embedded)", KernelData: bytes.NewReader(image), OnExit: vmm.ActionPreserve}
	fmt.Println(cfg.WithDefaults().Validate())
}
