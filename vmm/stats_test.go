package vmm

import (
	"testing"
	"time"

	"github.com/argovisor/argovisor/argo"
	"github.com/argovisor/argovisor/gnttab"
	"github.com/argovisor/argovisor/kvm"
)

func TestHypercallCounters(t *testing.T) {
	var d Domain
	d.stats.count(HypercallArgoOp, argo.OpSendv, 64)
	d.stats.count(HypercallArgoOp, argo.OpSendv, -ECONNREFUSE)
	d.stats.count(HypercallArgoOp, 99, -EOPNOTSUPP)
	d.stats.count(HypercallGrantTableOp, gnttab.OpQueryRevoked, 0)
	d.stats.count(HypercallGrantTableOp, 13, -ENOSYS)
	d.stats.count(HypercallArgoOp, argo.OpWait, 0)
	d.stats.count(HypercallArgoOp, 9, -EOPNOTSUPP) // Xen-range op 9: its slot is an extension's
	d.stats.count(HypercallNull, 1, 0)
	d.stats.count(99, 0, -ENOSYS)
	d.stats.count(1000, 0, -ENOSYS) // out of the table: counted in total and errors only
	d.stats.exits[exitKind(kvm.ExitIO)].Add(3)
	d.stats.exits[exitKick].Add(1)
	st := d.Stats()
	want := map[string]uint64{
		"argo_op.sendv": 2, "argo_op.other": 2, "argo_op.wait": 1, "grant_table_op.query_revoked": 1,
		"grant_table_op.other": 1, "null": 1, "hypercall_99": 1,
	}
	if len(st.HypercallsByOp) != len(want) {
		t.Errorf("by op = %v, want %v", st.HypercallsByOp, want)
	}
	for k, n := range want {
		if st.HypercallsByOp[k] != n {
			t.Errorf("by op[%s] = %d, want %d (all: %v)", k, st.HypercallsByOp[k], n, st.HypercallsByOp)
		}
	}
	if st.Hypercalls != 10 || st.HypercallErrors["ECONNREFUSED"] != 1 || st.HypercallErrors["ENOSYS"] != 3 || st.HypercallErrors["EOPNOTSUPP"] != 2 {
		t.Errorf("total %d, errors %v", st.Hypercalls, st.HypercallErrors)
	}
	if st.ExitsByKind["io"] != 3 || st.ExitsByKind["kick"] != 1 || len(st.ExitsByKind) != 2 {
		t.Errorf("exits = %v", st.ExitsByKind)
	}
}

func TestHypercallNames(t *testing.T) {
	for _, tc := range []struct {
		nr   uint32
		op   uint64
		want string
	}{
		{HypercallArgoOp, argo.OpRegisterRing, "argo_op.register_ring"},
		{HypercallArgoOp, 77, "argo_op.op_77"},
		{HypercallGrantTableOp, gnttab.OpCopy, "grant_table_op.copy"},
		{HypercallNull, 5, "null"},
		{42, 0, "hypercall_42"},
	} {
		if got := HypercallOpName(tc.nr, tc.op); got != tc.want {
			t.Errorf("HypercallOpName(%d, %d) = %q, want %q", tc.nr, tc.op, got, tc.want)
		}
	}
	for ret, want := range map[int64]string{0: "0", 64: "64", -111: "-ECONNREFUSED", -38: "-ENOSYS"} {
		if got := FormatHypercallResult(ret); got != want {
			t.Errorf("FormatHypercallResult(%d) = %q, want %q", ret, got, want)
		}
	}
}

func TestLifecyclePolicy(t *testing.T) {
	c := DomainConfig{OnExit: ActionRestart, OnCrash: ActionPreserve, RestartBackoff: 100 * time.Millisecond}
	for r, want := range map[ResultKind]Action{Exited: ActionRestart, Crashed: ActionPreserve, Stopped: ActionDestroy} {
		if got := c.action(Result{Kind: r}); got != want {
			t.Errorf("action(%v) = %q, want %q", r, got, want)
		}
	}
	for n, want := range map[int]time.Duration{0: 100 * time.Millisecond, 1: 200 * time.Millisecond, 3: 800 * time.Millisecond, 20: MaxRestartBackoff} {
		if got := c.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
	var d Domain
	if d.State() != StateCreated || d.Uptime() != 0 {
		t.Errorf("unstarted domain: %s, %v", d.State(), d.Uptime())
	}
}
