package test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/argovisor/argovisor/control"
)

// The counters added with issue 16 reach the CLI's JSON summary (the
// API's stats type): a wait ping-pong's waits ended polled or asleep, as
// many as blocked; every hypercall went through the port or the
// doorbell, with no bad doorbell access; no batch waited for space.
func TestStatsJSONWaitsAndDoorbell(t *testing.T) {
	requireKVM(t)
	const n = 500
	var b strings.Builder
	for _, role := range [][2]string{{"ping", "2"}, {"pong", "1"}} {
		b.WriteString(domainTOML(role[0], guest("pingpong"), "8M", 1,
			map[string]string{"role": role[0], "peer": role[1], "count": strconv.Itoa(n), "proto": "wait"}))
	}
	r := runCLI(t, "run", "--json", "--timeout", timeoutArg(120*time.Second), writeFile(t, t.TempDir(), "wait.toml", b.String()))
	if r.code != 0 {
		t.Fatalf("want exit 0:\n%v", r)
	}
	var sum struct{ Domains []control.DomainStats }
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, r.stdout)
	}
	if len(sum.Domains) != 2 {
		t.Fatalf("%d domains in the summary", len(sum.Domains))
	}
	for _, d := range sum.Domains {
		if d.Argo.WaitsBlocked == 0 || d.WaitsPolled+d.WaitsSlept < d.Argo.WaitsBlocked {
			t.Errorf("%s: waits blocked %d, polled %d, slept %d", d.Name, d.Argo.WaitsBlocked, d.WaitsPolled, d.WaitsSlept)
		}
		if d.DoorbellBad != 0 || d.Doorbells > d.Hypercalls || (d.Doorbells != 0 && d.Doorbells != d.Exits["mmio"]) {
			t.Errorf("%s: doorbells %d (bad %d), hypercalls %d, exits %v", d.Name, d.Doorbells, d.DoorbellBad, d.Hypercalls, d.Exits)
		}
		if d.Argo.SpaceWaits != 0 {
			t.Errorf("%s: %d space waits in a ping-pong", d.Name, d.Argo.SpaceWaits)
		}
	}
}
