package vmm

import (
	"debug/elf"
	"sync"
	"testing"
	"time"
)

// doorbellProbe is the handler of hypercall 0x7E in these tests: it
// records the registers of every call and returns 0x5A5A.
type doorbellProbe struct {
	mu    sync.Mutex
	calls []doorbellCall
}

type doorbellCall struct{ rip, rbx, rdi uint64 }

func (p *doorbellProbe) handle(h *Hypercall) int64 {
	r := h.Regs()
	p.mu.Lock()
	p.calls = append(p.calls, doorbellCall{rip: r.RIP, rbx: r.RBX, rdi: r.RDI})
	p.mu.Unlock()
	return 0x5A5A
}

func (p *doorbellProbe) get() []doorbellCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]doorbellCall(nil), p.calls...)
}

func runDomain(t *testing.T, v *VMM, cfg DomainConfig) (*Domain, Result) {
	t.Helper()
	d, err := v.CreateDomain(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not finish", cfg.Name)
	}
	return d, d.Result()
}

// TestDoorbellRIPAdvanced checks what the doorbell's RAX rests on: when
// KVM exits for an MMIO write, it has already completed the instruction,
// so RIP (as the sync registers show it during the exit) is past the
// store, and the RAX written back through the sync registers reaches the
// guest without the store running again. The guest puts the address right
// after its store in RBX; the handler compares. Both at CPL 3 (a guest
// program behind the firmware, where kvm_pvm runs code natively) and at
// CPL 0 (a raw kernel, where kvm_pvm emulates every instruction).
func TestDoorbellRIPAdvanced(t *testing.T) {
	v, console := testVMM(t)
	var p doorbellProbe
	if err := v.SetHypercall(0x7E, p.handle); err != nil {
		t.Fatal(err)
	}

	t.Run("cpl3", func(t *testing.T) {
		p.calls = nil
		d, res := runDomain(t, v, DomainConfig{Name: "cpl3", Kernel: testGuest(t, "doorbell"), Memory: 4 << 20, VCPUs: 1,
			Params: map[string]string{"mode": "rip"}})
		calls := p.get()
		if len(calls) != 1 {
			t.Fatalf("handler called %d times, want 1: %v %q", len(calls), res, console("cpl3"))
		}
		if c := calls[0]; c.rip != c.rbx {
			t.Errorf("RIP at the MMIO exit %#x, the instruction after the store is at %#x", c.rip, c.rbx)
		}
		if !res.OK() {
			t.Errorf("guest did not see RAX = 0x5A5A: %v %q", res, console("cpl3"))
		}
		if st := d.Stats(); st.Doorbells != 1 || st.DoorbellBad != 0 {
			t.Errorf("doorbells %d, bad %d", st.Doorbells, st.DoorbellBad)
		}
	})

	t.Run("cpl0", func(t *testing.T) {
		p.calls = nil
		// At CPL 0, from the VMM's entry state (its page tables map the
		// doorbell page): a ring with RBX = the next instruction, then
		// three bad accesses (a 32-bit read into EDX, a 16-bit write, a
		// write at offset 4), a second ring with RDI = what the read
		// returned, and an exit with the first ring's result as status.
		code := []byte{
			0xb8, 0x7e, 0x00, 0x00, 0x00, // mov $0x7e,%eax
			0xb9, 0x00, 0x00, 0x00, 0xe8, // mov $0xe8000000,%ecx
			0x48, 0x8d, 0x1d, 0x02, 0x00, 0x00, 0x00, // lea 2(%rip),%rbx
			0x89, 0x01, // mov %eax,(%rcx)
			0x89, 0xc6, // mov %eax,%esi
			0x8b, 0x11, // mov (%rcx),%edx
			0x66, 0x89, 0x01, // mov %ax,(%rcx)
			0x89, 0x41, 0x04, // mov %eax,4(%rcx)
			0x89, 0xd7, // mov %edx,%edi
			0xb8, 0x7e, 0x00, 0x00, 0x00, // mov $0x7e,%eax
			0x89, 0x01, // mov %eax,(%rcx)
			0x89, 0xf0, // mov %esi,%eax
			0xe7, 0xf4, // out %eax,$0xf4
			0xf4,       // hlt
			0xeb, 0xfd, // jmp hlt
		}
		if DoorbellGPA != 0xe8000000 {
			t.Fatalf("the code above hard-codes the doorbell at 0xe8000000, not %#x", DoorbellGPA)
		}
		kernel := writeTemp(t, testELF{class: elf.ELFCLASS64, machine: elf.EM_X86_64, typ: elf.ET_EXEC, entry: KernelBase,
			segs: []testSeg{{typ: elf.PT_LOAD, flags: elf.PF_R | elf.PF_X, paddr: KernelBase, memsz: uint64(len(code)), data: code}}}.build())
		d, res := runDomain(t, v, DomainConfig{Name: "cpl0", Kernel: kernel, Memory: 4 << 20, VCPUs: 1})
		calls := p.get()
		if len(calls) != 2 {
			t.Fatalf("handler called %d times, want 2: %v", len(calls), res)
		}
		if c := calls[0]; c.rip != c.rbx || c.rip != KernelBase+0x13 {
			t.Errorf("RIP at the MMIO exit %#x, want %#x (RBX %#x)", c.rip, KernelBase+0x13, c.rbx)
		}
		if calls[1].rdi != 0xFFFFFFFF {
			t.Errorf("a read of the doorbell gave %#x, want all-ones", calls[1].rdi)
		}
		if res.Kind != Exited || res.Status != 0x5A5A {
			t.Errorf("result %v, want exit status 0x5A5A", res)
		}
		if st := d.Stats(); st.Doorbells != 2 || st.DoorbellBad != 3 {
			t.Errorf("doorbells %d, bad %d; want 2, 3", st.Doorbells, st.DoorbellBad)
		}
	})
}
