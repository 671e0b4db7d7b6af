package test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/argovisor/argovisor/vmm"
)

// Lifecycle through the library: restart on crash, the restart limit,
// preserve and destroy, RemoveDomain, a kernel from memory, the console
// log file.

func TestRestartOnCrash(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	d := boot(t, v, vmm.DomainConfig{Name: "crashy", Kernel: guest("crashtwice"),
		OnCrash: vmm.ActionRestart, RestartBackoff: time.Millisecond})
	res := waitResult(t, d, time.Minute)
	if !res.OK() || d.Restarts() != 2 || d.ID() != 1 || d.State() != vmm.StateExited {
		t.Fatalf("result %v after %d restarts (id %d, state %s), want exit 0 after 2\n%s", res, d.Restarts(), d.ID(), d.State(), c.dump())
	}
	// Each boot saw its restart count: the same domain id, the boot info
	// rebuilt.
	for _, want := range []string{"boot 0: crashing on purpose", "boot 1: crashing on purpose", "boot 2: ok after 2 restarts"} {
		if !c.has("crashy", want) {
			t.Errorf("console lacks %q:\n%s", want, c.dump())
		}
	}
	if st := d.Stats(); st.Restarts != 2 {
		t.Errorf("Stats().Restarts = %d", st.Restarts)
	}
}

func TestRestartLimit(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	d := boot(t, v, vmm.DomainConfig{Name: "crashy", Kernel: guest("crashtwice"), Params: map[string]string{"crashes": "10"},
		OnCrash: vmm.ActionRestart, RestartLimit: 3, RestartBackoff: time.Millisecond})
	res := waitResult(t, d, time.Minute)
	if res.Kind != vmm.Crashed || d.Restarts() != 3 || res.Fault == nil || res.Fault.Vector != 6 {
		t.Fatalf("result %v after %d restarts, want the 4th crash to stay\n%s", res, d.Restarts(), c.dump())
	}
	if !c.has("crashy", "boot 3: crashing on purpose") || c.has("crashy", "boot 4") {
		t.Errorf("boots:\n%s", c.dump())
	}
}

// A host stop during the back-off cancels the restart.
func TestStopCancelsRestart(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	d := boot(t, v, vmm.DomainConfig{Name: "crashy", Kernel: guest("crashtwice"),
		OnCrash: vmm.ActionRestart, RestartBackoff: time.Hour})
	for deadline := time.Now().Add(time.Minute); d.State() != vmm.StateRestarting; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never restarting: %s\n%s", d.State(), c.dump())
		}
	}
	d.Stop("test")
	res := waitResult(t, d, time.Minute)
	if res.Kind != vmm.Crashed || d.Restarts() != 0 {
		t.Fatalf("result %v after %d restarts, want the first crash", res, d.Restarts())
	}
}

func TestPreserveDestroyRemove(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	kept := boot(t, v, vmm.DomainConfig{Name: "kept", Kernel: guest("ud2"), OnCrash: vmm.ActionPreserve})
	gone := boot(t, v, vmm.DomainConfig{Name: "gone", Kernel: guest("ud2")})
	waitResult(t, kept, time.Minute)
	waitResult(t, gone, time.Minute)
	if kept.RAM() == nil || kept.State() != vmm.StateCrashed {
		t.Errorf("preserved domain: RAM %v, state %s", kept.RAM(), kept.State())
	}
	if gone.RAM() != nil {
		t.Error("destroyed domain still holds its RAM")
	}
	// Its record stays (result, counters) until RemoveDomain.
	if v.DomainByName("gone") == nil || gone.Result().Fault == nil || gone.Stats().ExitsByKind["io"] == 0 {
		t.Errorf("destroyed domain's record: %v %+v", gone.Result(), gone.Stats())
	}
	fdsBefore := countFDs(t)
	if err := v.RemoveDomain(kept.ID()); err != nil {
		t.Fatal(err)
	}
	if v.Domain(kept.ID()) != nil || v.DomainByName("kept") != nil {
		t.Error("removed domain still listed")
	}
	if fds := countFDs(t); fds >= fdsBefore {
		t.Errorf("RemoveDomain freed no file descriptors: %d before, %d after", fdsBefore, fds)
	}
	if err := v.RemoveDomain(kept.ID()); !errors.Is(err, vmm.ErrNoDomain) {
		t.Errorf("second RemoveDomain: %v", err)
	}
	// The name can be used again, with a new id.
	again := boot(t, v, vmm.DomainConfig{Name: "kept", Kernel: guest("hello")})
	mustOK(t, &c, again, time.Minute)
	if again.ID() == kept.ID() {
		t.Errorf("id %d reused", again.ID())
	}
	// A running domain is stopped by RemoveDomain.
	spin := boot(t, v, vmm.DomainConfig{Name: "spin", Kernel: guest("spin")})
	<-spin.FirstOutput()
	if err := v.RemoveDomain(spin.ID()); err != nil {
		t.Fatal(err)
	}
	if r := spin.Result(); r.Kind != vmm.Stopped {
		t.Errorf("removed running domain: %v", r)
	}
	if _, err := v.CreateDomain(vmm.DomainConfig{Name: "gone", Kernel: guest("hello")}); !errors.Is(err, vmm.ErrNameInUse) {
		t.Errorf("a name still listed is in use: %v", err)
	}
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestKernelFromMemoryAndConsoleLog(t *testing.T) {
	image, err := os.ReadFile(guest("params"))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "p.log")
	var c console
	v := newVMM(t, &c)
	d := boot(t, v, vmm.DomainConfig{Name: "p", Kernel: "params (in memory)", KernelData: strings.NewReader(string(image)),
		Params: map[string]string{"a": "hi"}, ConsoleLog: logPath})
	mustOK(t, &c, d, time.Minute)
	if len(c.of("p")) != 0 {
		t.Errorf("console lines reached the console too:\n%s", c.dump())
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\[p\] a=hi$`).Match(b) {
		t.Errorf("console log lacks the prefixed greeting:\n%s", b)
	}
}

// Domain.Restart: a running domain gets a fresh instance at once.
//
// "Running" says the new instance's vCPUs have started, not that its
// guest has printed: on a loaded PVM host the firmware's boot (CPL-0
// code, emulated) takes from 2 to 90 ms after that. The test once stopped
// the domain as soon as it read "running" and so, in a third of the runs
// under load, before the second instance had printed its line (issue
// 15). It waits for that line now.
func TestRestartOnRequest(t *testing.T) {
	var c console
	v := newVMM(t, &c)
	d := boot(t, v, vmm.DomainConfig{Name: "spin", Kernel: guest("spin")})
	<-d.FirstOutput()
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); len(c.of("spin")) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the new instance printed nothing: %d restarts, %s\n%s", d.Restarts(), d.State(), c.dump())
		}
	}
	if n, st := d.Restarts(), d.State(); n != 1 || st != vmm.StateRunning {
		t.Errorf("the new instance prints, but the domain has %d restarts and is %s; want 1 and running", n, st)
	}
	d.Stop("test")
	res := waitResult(t, d, time.Minute)
	if res.Kind != vmm.Stopped || res.Reason != "test" {
		t.Errorf("result %v", res)
	}
	if err := d.Restart(); !errors.Is(err, vmm.ErrEnded) {
		t.Errorf("Restart after the end: %v", err)
	}
	if n := len(c.of("spin")); n != 2 {
		t.Errorf("%d console lines, want one per instance:\n%s", n, c.dump())
	}
}

// Restart policies through the CLI with the default --seccomp=on: every
// restart builds a new VM, memory and vCPUs after the lockdown, from the
// kernel image read at start-up (the filter would kill the process for
// opening the file again).
func TestRestartPolicyUnderFilter(t *testing.T) {
	requireKVM(t)
	cfg := writeFile(t, t.TempDir(), "restart.toml", fmt.Sprintf(`[[domain]]
name = "crashy"
kernel = %q
memory = "16M"
vcpus = 2
on_crash = "restart"
restart_backoff = "10ms"

[[domain]]
name = "again"
kernel = %q
memory = "16M"
on_exit = "restart"
restart_limit = 2
restart_backoff = "10ms"
[domain.params]
crashes = 0
`, guest("crashtwice"), guest("crashtwice")))
	r := runCLI(t, "run", "--timeout", timeoutArg(120*time.Second), cfg)
	if r.code != 0 {
		t.Fatalf("want exit 0, got:\n%v", r)
	}
	for _, want := range []string{
		"[crashy] boot 0: crashing on purpose", "[crashy] boot 1: crashing on purpose", "[crashy] boot 2: ok after 2 restarts",
		"argovisor: crashy (domain 1): exited with status 0 (after 2 restarts)",
		"[again] boot 0: ok after 0 restarts", "[again] boot 2: ok after 2 restarts",
		"argovisor: again (domain 2): exited with status 0 (after 2 restarts)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%v", want, r)
		}
	}
	if strings.Contains(r.stdout, "[again] boot 3") {
		t.Errorf("again restarted past its limit:\n%v", r)
	}
}
