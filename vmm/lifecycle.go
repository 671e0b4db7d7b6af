package vmm

import (
	"errors"
	"fmt"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/memop"
)

// Action is what happens to a domain when its guest exits or crashes
// (xl's on_poweroff / on_crash).
type Action string

// Lifecycle actions.
const (
	// ActionDestroy ends the domain: its Argo and grant state are torn
	// down and its VM, memory and file descriptors freed at once; its
	// record (name, id, result, counters) stays until RemoveDomain.
	ActionDestroy Action = "destroy"
	// ActionRestart rebuilds the domain with the same id, name and
	// configuration after a back-off, up to its restart limit; then it is
	// destroyed.
	ActionRestart Action = "restart"
	// ActionPreserve ends the domain like destroy but keeps its VM and
	// memory (RAM stays readable) until RemoveDomain.
	ActionPreserve Action = "preserve"
)

// Restart defaults.
const (
	DefaultRestartLimit   = 5
	DefaultRestartBackoff = time.Second
	// MaxRestartBackoff caps the doubling back-off.
	MaxRestartBackoff = time.Minute
)

// State is a domain's lifecycle state, as the control API lists it.
type State string

// Domain states.
const (
	StateCreated    State = "created"    // built, not started
	StateRunning    State = "running"    // vCPUs running
	StateStopping   State = "stopping"   // ended; vCPUs and state being torn down
	StateRestarting State = "restarting" // ended; a restart is due after the back-off
	StateExited     State = "exited"     // ended for good: the guest exited
	StateCrashed    State = "crashed"    // ended for good: crashed
	StateStopped    State = "stopped"    // ended for good: stopped by the host
)

// State returns the domain's current lifecycle state.
func (d *Domain) State() State {
	if !d.started.Load() {
		return StateCreated
	}
	d.resultMu.Lock()
	defer d.resultMu.Unlock()
	if d.restarting {
		return StateRestarting
	}
	if d.result.Kind == Running {
		return StateRunning
	}
	select {
	case <-d.done:
	default:
		return StateStopping
	}
	switch d.result.Kind {
	case Exited:
		return StateExited
	case Crashed:
		return StateCrashed
	}
	return StateStopped
}

// Uptime is how long the current instance has run (until it ended, for an
// ended domain); 0 before Start.
func (d *Domain) Uptime() time.Duration {
	d.resultMu.Lock()
	defer d.resultMu.Unlock()
	switch {
	case d.startedAt.IsZero():
		return 0
	case (d.result.Kind != Running || d.restarting) && !d.endedAt.IsZero():
		// Ended, or restarting (the new instance may already have its
		// fresh result, but has not started): the last instance's.
		return d.endedAt.Sub(d.startedAt)
	}
	return time.Since(d.startedAt)
}

// Restarts is how many times the domain has been restarted.
func (d *Domain) Restarts() int {
	d.resultMu.Lock()
	defer d.resultMu.Unlock()
	return d.restarts
}

// ErrEnded is returned by Restart for a domain that has ended for good.
var ErrEnded = errors.New("domain has ended")

// Restart stops the running instance and starts a fresh one at once, as
// the restart policy would (same id and name; Argo and grant state torn
// down and rebuilt), whatever the domain's on_exit/on_crash; the restart
// limit does not hold it back, though Restarts counts it. It returns
// without waiting; the domain is listed as restarting until the new
// instance is registered with Argo and the grant tables and its vCPUs
// have started (its guest may not have run a single instruction yet). A domain already restarting is left to it; one that has
// ended for good cannot be restarted (ErrEnded), nor one never started.
func (d *Domain) Restart() error {
	if !d.started.Load() {
		return errors.New("restart: domain never started")
	}
	select {
	case <-d.done:
		return fmt.Errorf("restart %q: %w", d.cfg.Name, ErrEnded)
	default:
	}
	if d.hostStop.Load() {
		return fmt.Errorf("restart %q: %w (stopped by the host)", d.cfg.Name, ErrEnded)
	}
	d.resultMu.Lock()
	busy, ended := d.restarting, d.result.Kind != Running
	d.resultMu.Unlock()
	if busy {
		return nil
	}
	if ended {
		// The instance ended and no restart is due: the supervisor is
		// on its way to closing done, and a request now would be lost.
		return fmt.Errorf("restart %q: %w", d.cfg.Name, ErrEnded)
	}
	d.restartReq.Store(true)
	d.finish(Result{Kind: Stopped, Reason: "restart requested"})
	return nil
}

// action is the policy for an instance that ended with r.
func (c DomainConfig) action(r Result) Action {
	switch r.Kind {
	case Exited:
		return c.OnExit
	case Crashed:
		return c.OnCrash
	}
	return ActionDestroy // stopped by the host: never restarted
}

// backoff is the delay before restart number n (0-based).
func (c DomainConfig) backoff(n int) time.Duration {
	b := c.RestartBackoff
	for i := 0; i < n && b < MaxRestartBackoff; i++ {
		b *= 2
	}
	return min(b, MaxRestartBackoff)
}

// supervise is the domain's reaper: it waits for each instance's vCPUs,
// tears the instance down, and restarts, preserves or destroys it by
// policy. It closes done when the domain has ended for good.
func (d *Domain) supervise() {
	for {
		inst := d.instance // the supervisor is the only writer
		inst.wg.Wait()
		inst.serial.flush()
		d.resultMu.Lock()
		if d.result.Kind == Running {
			d.result = Result{Kind: Stopped, Reason: "all vCPUs stopped"}
		}
		r := d.result
		d.endedAt = time.Now()
		n := d.restarts
		act := d.cfg.action(r)
		// A requested restart (Restart) happens at once and does not
		// count against the limit.
		requested := d.restartReq.Swap(false) && !d.hostStop.Load()
		if requested {
			act = ActionRestart
		}
		// Listed as restarting from the moment the instance has ended.
		d.restarting = act == ActionRestart && !d.hostStop.Load() && (requested || n < d.cfg.RestartLimit)
		d.resultMu.Unlock()
		d.vmm.domainStopped(d, r)

		if requested {
			if err := d.restart(n, 0); err == nil {
				continue
			} else if !errors.Is(err, errRestartCancelled) {
				d.vmm.log.Error("domain restart failed", "domain", d.cfg.Name, "id", d.id, "err", err)
			}
		} else if act == ActionRestart && !d.hostStop.Load() {
			if n >= d.cfg.RestartLimit {
				d.vmm.log.Error("domain not restarted: restart limit reached", "domain", d.cfg.Name, "id", d.id, "restarts", n, "limit", d.cfg.RestartLimit)
			} else if err := d.restart(n, d.cfg.backoff(n)); err == nil {
				continue
			} else if !errors.Is(err, errRestartCancelled) {
				d.vmm.log.Error("domain restart failed", "domain", d.cfg.Name, "id", d.id, "err", err)
			}
		}
		if act != ActionPreserve {
			if err := d.instance.free(d); err != nil {
				d.vmm.log.Warn("freeing domain", "domain", d.cfg.Name, "id", d.id, "err", err)
			}
			d.giveBudget()
		}
		d.resultMu.Lock()
		d.restarting = false
		d.resultMu.Unlock()
		close(d.done)
		return
	}
}

var errRestartCancelled = errors.New("restart cancelled: domain stopped by the host")

// restart waits for delay before restart number n, then replaces the
// instance with a fresh one and starts it. Argo and grant-table state were
// torn down when the instance stopped; now the domain is forgotten and
// added again, so it comes back with no rings, grants or mappings, exactly
// as a newly created domain.
func (d *Domain) restart(n int, delay time.Duration) error {
	d.vmm.log.Warn("domain restarting", "domain", d.cfg.Name, "id", d.id, "restart", n+1, "limit", d.cfg.RestartLimit, "backoff", delay)
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-d.wake:
		t.Stop()
		return errRestartCancelled
	}
	if d.hostStop.Load() {
		return errRestartCancelled
	}
	id := d.id
	d.vmm.argo.RemoveDomain(argo.DomainID(id))
	d.vmm.gnttab.RemoveDomain(gnttab.DomainID(id))
	d.vmm.memop.RemoveDomain(memop.DomainID(id))
	// The old instance goes before the new one is built: the domain's
	// budget reservation covers one instance.
	if err := d.instance.free(d); err != nil {
		d.vmm.log.Warn("freeing the old instance", "domain", d.cfg.Name, "id", id, "err", err)
	}
	inst, err := d.vmm.newInstance(d, n+1)
	if err != nil {
		return err
	}
	d.resultMu.Lock()
	if d.hostStop.Load() {
		d.resultMu.Unlock()
		inst.free(d)
		return errRestartCancelled
	}
	d.releaseMu.Lock()
	d.instance = inst
	d.releaseMu.Unlock()
	// A stop from here on ends the new instance, and its reason is the
	// result. The domain stays listed as restarting until the instance
	// is registered and its vCPUs start (below).
	d.result = Result{}
	d.restarts = n + 1
	d.resultMu.Unlock()
	if h := d.vmm.restartHook; h != nil {
		h(d)
	}
	// Known to Argo and the grant tables again only now: until this
	// point no peer could reach the new memory.
	if err = d.vmm.addInstance(d, inst); err != nil {
		// Whatever was registered before the failure goes as on a death,
		// so no peer sees a live domain over memory about to be freed.
		d.vmm.argo.Teardown(argo.DomainID(id))
		d.vmm.gnttab.DomainDied(gnttab.DomainID(id))
		d.vmm.memop.DomainDied(memop.DomainID(id))
		d.finish(Result{Kind: Crashed, Reason: fmt.Sprintf("restart failed: %v", err)})
		return err
	}
	d.vmm.log.Info("domain restarted", "domain", d.cfg.Name, "id", id, "restarts", n+1)
	// Running from here, as a domain is once Start has started its
	// vCPUs: under resultMu, so State never says running before they
	// start.
	d.resultMu.Lock()
	d.restarting = false
	d.startedAt = time.Now()
	d.endedAt = time.Time{}
	inst.startVCPUs()
	d.resultMu.Unlock()
	return nil
}
