package test

import (
	"debug/elf"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argovisor/argovisor/vmm"
)

func TestHelloExample(t *testing.T) {
	runExample(t, "hello",
		"[hello-1] hello from domain 1 on vcpu 0 of 1",
		"[hello-2] hello from domain 2 on vcpu 0 of 1",
		"argovisor: hello-1 (domain 1): exited with status 0",
		"argovisor: hello-2 (domain 2): exited with status 0",
	)
}

func TestExitStatusPropagates(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	d := boot(t, v, vmm.DomainConfig{Name: "exit", Kernel: guest("exitcode"), Params: map[string]string{"status": "42"}})
	res := waitResult(t, d, 30*time.Second)
	if res.Kind != vmm.Exited || res.Status != 42 {
		t.Fatalf("result %v, want exit status 42\n%s", res, c.dump())
	}

	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.toml", domainTOML("ok", guest("exitcode"), "16M", 1, nil)+
		domainTOML("bad", guest("exitcode"), "16M", 1, map[string]string{"status": "3"}))
	r := runCLI(t, "run", "--timeout", timeoutArg(60*time.Second), cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "bad (domain 2): exited with status 3") ||
		!strings.Contains(r.stdout, "ok (domain 1): exited with status 0") {
		t.Fatalf("want exit 1 with both statuses:\n%v", r)
	}
}

// symbol returns the address of a symbol in a guest ELF.
func symbol(t *testing.T, prog, name string) uint64 {
	t.Helper()
	f, err := elf.Open(guest(prog))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value
		}
	}
	t.Fatalf("%s has no symbol %s", prog, name)
	return 0
}

func TestUD2ReportedWithRIP(t *testing.T) {
	rip := symbol(t, "ud2", "ud2_here")
	var c console
	v := newVMM(t, &c)
	d := boot(t, v, vmm.DomainConfig{Name: "ud2", Kernel: guest("ud2")})
	res := waitResult(t, d, 30*time.Second)
	if res.Kind != vmm.Crashed || res.Fault == nil || res.Fault.Vector != 6 || res.Fault.RIP != rip {
		t.Fatalf("result %v (fault %+v), want #UD at %#x", res, res.Fault, rip)
	}

	cfg := writeFile(t, t.TempDir(), "c.toml", domainTOML("ud2", guest("ud2"), "16M", 1, nil))
	r := runCLI(t, "run", "--timeout", timeoutArg(60*time.Second), cfg)
	// RIP with symbol+offset from the guest's own symbol table.
	want := fmt.Sprintf("crashed: #UD (vector 6) at rip=%#x <ud2_here+0x0>", rip)
	if res.Fault.Symbol != "ud2_here+0x0" {
		t.Errorf("fault symbol %q, want ud2_here+0x0", res.Fault.Symbol)
	}
	if r.code != 1 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "rip=") {
		t.Fatalf("want exit 1 and %q:\n%v", want, r)
	}
}

func TestFaultsAreReported(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	pf := boot(t, v, vmm.DomainConfig{Name: "pf", Kernel: guest("pagefault")})
	tf := boot(t, v, vmm.DomainConfig{Name: "tf", Kernel: guest("triplefault")})
	if res := waitResult(t, pf, 30*time.Second); res.Kind != vmm.Crashed || res.Fault.Vector != 14 || res.Fault.CR2 != 0 {
		t.Errorf("NULL dereference: %v, want #PF with cr2=0", res)
	}
	if res := waitResult(t, tf, 30*time.Second); res.Kind != vmm.Crashed || !strings.Contains(res.Reason, "triple fault") {
		t.Errorf("empty IDT: %v, want a triple fault", res)
	}
}

func TestTimeoutStopsSpinningGuest(t *testing.T) {
	requireKVM(t)
	cfg := writeFile(t, t.TempDir(), "c.toml", domainTOML("spin", guest("spin"), "16M", 2, nil))
	start := time.Now()
	r := runCLI(t, "run", "--timeout", "1s", cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "spin (domain 1): stopped: timed out after 1s") || !strings.Contains(r.stdout, "[spin] spinning") {
		t.Fatalf("want exit 1 after a timeout:\n%v", r)
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("took %v to stop", el)
	}
}

func runHellos(t *testing.T, n int) {
	var c console
	v := newVMM(t, &c)
	var ds []*vmm.Domain
	for i := 0; i < n; i++ {
		ds = append(ds, boot(t, v, vmm.DomainConfig{Name: fmt.Sprintf("h%d", i), Kernel: guest("hello")}))
	}
	for i, d := range ds {
		res := waitResult(t, d, 60*time.Second)
		if !res.OK() {
			t.Errorf("%s: %v", d.Name(), res)
		}
		want := fmt.Sprintf("hello from domain %d on vcpu 0 of 1", i+1)
		if d.ID() != uint16(i+1) || !c.has(d.Name(), want) {
			t.Errorf("%s (id %d): console %q, want %q", d.Name(), d.ID(), c.of(d.Name()), want)
		}
	}
}

func TestTwoDomains(t *testing.T)     { runHellos(t, 2) }
func TestSixteenDomains(t *testing.T) { runHellos(t, 16) }

func TestSMPRunsOnBothVCPUs(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	d := boot(t, v, vmm.DomainConfig{Name: "smp", Kernel: guest("smp"), VCPUs: 2})
	if res := waitResult(t, d, 30*time.Second); !res.OK() {
		t.Fatalf("%v\n%s", res, c.dump())
	}
	if !c.has("smp", "cpu 0 ran") || !c.has("smp", "cpu 1 ran") {
		t.Fatalf("not every vCPU ran:\n%s", c.dump())
	}
}

func TestGuestServices(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	ds := map[string]*vmm.Domain{
		"printf":    boot(t, v, vmm.DomainConfig{Name: "printf", Kernel: guest("printf")}),
		"params":    boot(t, v, vmm.DomainConfig{Name: "params", Kernel: guest("params"), Params: map[string]string{"a": "one", "b": "two words"}}),
		"alloc":     boot(t, v, vmm.DomainConfig{Name: "alloc", Kernel: guest("alloc"), Memory: 4 << 20}),
		"cpuid":     boot(t, v, vmm.DomainConfig{Name: "cpuid", Kernel: guest("cpuid")}),
		"hypercall": boot(t, v, vmm.DomainConfig{Name: "hypercall", Kernel: guest("hypercall")}),
		"speed":     boot(t, v, vmm.DomainConfig{Name: "speed", Kernel: guest("speed")}),
	}
	for name, d := range ds {
		if res := waitResult(t, d, 60*time.Second); !res.OK() {
			t.Errorf("%s: %v\n%v", name, res, c.of(name))
		}
	}
	for name, want := range map[string]string{
		"printf":    "d=-42 u=42 x=2a lx=deadbeefcafe lu=18446744073709551615 llx=123456789abcdef llu=1 s=str c=Z p=0x1000 pct=%",
		"params":    "b=two words",
		"cpuid":     "guest_cpuid: max leaf 40000002 signature argovisorKVM",
		"speed":     "speed: ",
		"hypercall": "null=0 unknown=-38",
	} {
		if !c.has(name, want) {
			t.Errorf("%s console lacks %q: %q", name, want, c.of(name))
		}
	}
	// Guest programs run at CPL 3 (natively on a PVM host, where CPL 0 is
	// emulated): see docs/memory-layout.md, "Guest privilege".
	if !c.has("cpuid", "running at cpl 3") {
		t.Errorf("guest code not at CPL 3: %q", c.of("cpuid"))
	}
	if !c.has("params", "a=one") || !c.has("params", "missing=(null)") {
		t.Errorf("params console: %q", c.of("params"))
	}
}

// TestInterruptInjection drives the Domain interrupt API: the guest halts
// until three VIRQs have reached its handler.
func TestInterruptInjection(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	d := boot(t, v, vmm.DomainConfig{Name: "irq", Kernel: guest("irqwait"), Params: map[string]string{"count": "3"}})
	select {
	case <-d.FirstOutput():
	case <-time.After(30 * time.Second):
		t.Fatal("guest never printed")
	}
	// Interrupts may coalesce while one is pending, so keep raising them
	// until the guest has counted three and exited.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case <-d.Done():
			done = true
		case <-tick.C:
			if _, err := d.InjectVIRQ(); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("guest did not see 3 VIRQs:\n%s", c.dump())
		}
	}
	if res := d.Result(); !res.OK() || !c.has("irq", "got 3 virqs") {
		t.Fatalf("%v\n%s", res, c.dump())
	}
	if _, err := d.InjectInterrupt(5, 0x30); err == nil {
		t.Error("injecting into a vCPU that does not exist succeeded")
	}
}

// TestCrashIsolation: one domain crashing leaves the others running.
func TestCrashIsolation(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	spin := boot(t, v, vmm.DomainConfig{Name: "spin", Kernel: guest("spin")})
	bad := boot(t, v, vmm.DomainConfig{Name: "bad", Kernel: guest("ud2")})
	if res := waitResult(t, bad, 30*time.Second); res.Kind != vmm.Crashed {
		t.Fatalf("ud2 domain: %v", res)
	}
	time.Sleep(200 * time.Millisecond)
	if res := spin.Result(); res.Kind != vmm.Running {
		t.Fatalf("spinning domain ended with the crash: %v", res)
	}
	spin.Stop("test done")
	if res := waitResult(t, spin, 10*time.Second); res.Kind != vmm.Stopped || res.Reason != "test done" {
		t.Fatalf("spin: %v", res)
	}
}

// TestKickStress kicks running vCPUs from many goroutines at random: every
// kick must bring KVM_RUN back without ending the domain or losing the
// guest's progress, and a final stop must still work.
func TestKickStress(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	spin := boot(t, v, vmm.DomainConfig{Name: "spin", Kernel: guest("spin"), VCPUs: 2})
	loop := boot(t, v, vmm.DomainConfig{Name: "loop", Kernel: guest("benchloop")})
	irq := boot(t, v, vmm.DomainConfig{Name: "irq", Kernel: guest("irqwait"), Params: map[string]string{"count": "1000000000"}})
	for _, d := range []*vmm.Domain{spin, loop, irq} {
		select {
		case <-d.FirstOutput():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s never printed", d.Name())
		}
	}
	before := loop.Stats().Hypercalls
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for i := 0; i < 250; i++ {
				d := []*vmm.Domain{spin, loop, irq}[rng.Intn(3)]
				d.Kick()
				if rng.Intn(4) == 0 {
					time.Sleep(time.Duration(rng.Intn(200)) * time.Microsecond)
				}
			}
		}(int64(g))
	}
	wg.Wait()
	for _, d := range []*vmm.Domain{spin, loop, irq} {
		if res := d.Result(); res.Kind != vmm.Running {
			t.Fatalf("%s ended under kicks: %v", d.Name(), res)
		}
	}
	if spin.Stats().Kicks+loop.Stats().Kicks+irq.Stats().Kicks == 0 {
		t.Error("no kick reached a vCPU")
	}
	// Progress is an event, not a time: wait for the next hypercall (the
	// bound only turns a hang into a failure on a loaded machine).
	for deadline := time.Now().Add(30 * time.Second); loop.Stats().Hypercalls <= before; {
		if time.Now().After(deadline) {
			t.Fatalf("guest made no progress under kicks: still %d hypercalls after 30 s", before)
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for _, d := range []*vmm.Domain{spin, loop, irq} {
		d.Stop("stress done")
	}
	for _, d := range []*vmm.Domain{spin, loop, irq} {
		if res := waitResult(t, d, 10*time.Second); res.Kind != vmm.Stopped {
			t.Errorf("%s: %v", d.Name(), res)
		}
	}
	t.Logf("stopped 3 domains (one halted, one spinning, one exiting) in %v", time.Since(start))
}
