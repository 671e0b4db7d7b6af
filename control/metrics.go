package control

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// collector reads the live counters from the backend at every scrape; it
// keeps no state of its own (no package-level registry either).
type collector struct {
	b Backend

	info, vcpus, memory, uptime, restarts *prometheus.Desc
	exits, hypercalls, hcErrors, virqs    *prometheus.Desc

	argoMsgs, argoBytes, argoEAGAIN, argoNotifies *prometheus.Desc
	argoWakeups, argoErrors, argoRings            *prometheus.Desc
	argoSuppressed, argoWaits                     *prometheus.Desc
	argoSpaceWaits, waitsHow, doorbells           *prometheus.Desc

	memPages, memBacking, memMoves *prometheus.Desc

	gntMaps, gntUnmaps, gntCopies, gntCopyBytes *prometheus.Desc
	gntRevoked, gntMapped, gntErrors            *prometheus.Desc

	streamActive, streamConns, streamRefused, streamResets *prometheus.Desc
	streamBadInput, streamDropped, streamBytes             *prometheus.Desc
}

func newCollector(b Backend) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("argovisor_"+name, help, append([]string{"domain"}, labels...), nil)
	}
	return &collector{
		b:            b,
		info:         d("domain_info", "Always 1; labels carry the domain id and state.", "id", "state"),
		vcpus:        d("domain_vcpus", "Number of vCPUs."),
		memory:       d("domain_memory_bytes", "Guest RAM in bytes."),
		uptime:       d("domain_uptime_seconds", "Run time of the current instance (until it ended)."),
		restarts:     d("domain_restarts_total", "Times the domain has been restarted."),
		exits:        d("exits_total", "KVM exits by kind.", "kind"),
		hypercalls:   d("hypercalls_total", "Hypercalls by name and sub-operation.", "op"),
		hcErrors:     d("hypercall_errors_total", "Hypercalls that returned a negative errno, by errno name.", "errno"),
		virqs:        d("virqs_total", "VIRQs delivered to the domain."),
		argoMsgs:     d("argo_messages_total", "Argo messages sent (out) and received (in).", "direction"),
		argoBytes:    d("argo_bytes_total", "Argo payload bytes sent (out) and received (in).", "direction"),
		argoEAGAIN:   d("argo_eagain_total", "Argo sends refused with -EAGAIN (ring full)."),
		argoNotifies: d("argo_notifies_total", "Argo notify operations."),
		argoWakeups:  d("argo_space_wakeups_total", "VIRQs raised because ring space a sender waited for appeared."),
		argoErrors:   d("argo_errors_total", "Argo operations that failed, by errno name.", "errno"),
		argoRings:    d("argo_rings", "Argo rings registered now."),
		argoSuppressed: d("argo_virqs_suppressed_total",
			"Argo messages that raised no VIRQ because the receiver's event index or polling flag said so."),
		argoWaits:      d("argo_waits_total", "Argo waits in the VMM that found their rings, all (result=any) and those that slept (result=blocked).", "result"),
		argoSpaceWaits: d("argo_space_waits_total", "Batched sends that slept in the VMM for ring space (ARGO_BATCH_WAIT_SPACE)."),
		waitsHow:       d("vcpu_waits_total", "Blocking Argo waits answered while the vCPU polled (polled) and those that slept (slept).", "how"),
		doorbells:      d("doorbells_total", "Hypercalls made through the doorbell page (ok) and other accesses to it, ignored (bad).", "kind"),
		memPages:       d("memory_reservation_pages", "Memory reservation in pages: current (Xen's tot_pages) and max.", "kind"),
		memBacking:     d("memory_backing_bytes", "Host memory the domain's RAM memfd holds now."),
		memMoves:       d("memory_frames_total", "Frames moved by memory_op and grant transfer, by kind.", "kind"),
		gntMaps:        d("gnttab_maps_total", "Grant maps."),
		gntUnmaps:      d("gnttab_unmaps_total", "Grant unmaps."),
		gntCopies:      d("gnttab_copies_total", "Grant copies."),
		gntCopyBytes:   d("gnttab_copy_bytes_total", "Bytes copied by grant copies."),
		gntRevoked:     d("gnttab_revoked_total", "This domain's mappings revoked (granter died or policy)."),
		gntMapped:      d("gnttab_mapped", "Live grant mappings now."),
		gntErrors:      d("gnttab_errors_total", "Failed grant-table elements and calls, by GNTST status or errno name.", "error"),
		streamActive:   d("stream_connections", "Connections of the domain's stream socket open now."),
		streamConns: d("stream_connections_total",
			"Stream connections made: from the host to the guest (host_to_guest) and from the guest to PATH_port (guest_to_host).", "direction"),
		streamRefused:  d("stream_refused_total", "Stream connections refused (no listener, nobody at PATH_port, over budget, not running, not accepted in time)."),
		streamResets:   d("stream_resets_total", "Stream connections ended by a reset from either side."),
		streamBadInput: d("stream_bad_input_total", "Handshake lines on the stream socket that were not a CONNECT."),
		streamDropped:  d("stream_dropped_total", "Malformed or misdirected stream messages from the guest, dropped."),
		streamBytes:    d("stream_bytes_total", "Stream bytes to the guest and from it.", "direction"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.vcpus, c.memory, c.uptime, c.restarts, c.exits, c.hypercalls,
		c.hcErrors, c.virqs, c.argoMsgs, c.argoBytes, c.argoEAGAIN, c.argoNotifies, c.argoWakeups, c.argoErrors,
		c.argoRings, c.argoSuppressed, c.argoWaits, c.argoSpaceWaits, c.waitsHow, c.doorbells, c.memPages, c.memBacking, c.memMoves, c.gntMaps, c.gntUnmaps, c.gntCopies, c.gntCopyBytes, c.gntRevoked, c.gntMapped, c.gntErrors,
		c.streamActive, c.streamConns, c.streamRefused, c.streamResets, c.streamBadInput, c.streamDropped, c.streamBytes} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.b.AllStats() {
		n := s.Name
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{n}, labels...)...)
		}
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{n}, labels...)...)
		}
		byLabel := func(d *prometheus.Desc, m map[string]uint64) {
			for k, v := range m {
				counter(d, v, k)
			}
		}
		gauge(c.info, 1, strconv.Itoa(int(s.ID)), s.State)
		gauge(c.vcpus, float64(s.VCPUs))
		gauge(c.memory, float64(s.Memory))
		gauge(c.uptime, s.UptimeSeconds)
		counter(c.restarts, uint64(s.Restarts))
		byLabel(c.exits, s.Exits)
		byLabel(c.hypercalls, s.HypercallsByOp)
		byLabel(c.hcErrors, s.HypercallErrors)
		counter(c.virqs, s.VIRQs)
		a := s.Argo
		counter(c.argoMsgs, a.MsgsOut, "out")
		counter(c.argoMsgs, a.MsgsIn, "in")
		counter(c.argoBytes, a.BytesOut, "out")
		counter(c.argoBytes, a.BytesIn, "in")
		counter(c.argoEAGAIN, a.EAGAINs)
		counter(c.argoNotifies, a.Notifies)
		counter(c.argoWakeups, a.SpaceWakeups)
		byLabel(c.argoErrors, a.ErrorsByErrno)
		gauge(c.argoRings, float64(a.Rings))
		counter(c.argoSuppressed, a.Suppressed)
		counter(c.argoWaits, a.Waits, "any")
		counter(c.argoWaits, a.WaitsBlocked, "blocked")
		counter(c.argoSpaceWaits, a.SpaceWaits)
		counter(c.waitsHow, s.WaitsPolled, "polled")
		counter(c.waitsHow, s.WaitsSlept, "slept")
		counter(c.doorbells, s.Doorbells, "ok")
		counter(c.doorbells, s.DoorbellBad, "bad")
		m := s.Reservation
		gauge(c.memPages, float64(m.CurrentPages), "current")
		gauge(c.memPages, float64(m.MaxPages), "max")
		gauge(c.memBacking, float64(m.BackingBytes))
		counter(c.memMoves, m.Decreased, "decreased")
		counter(c.memMoves, m.Populated, "populated")
		counter(c.memMoves, m.TransfersOut, "transferred_out")
		counter(c.memMoves, m.TransfersIn, "transferred_in")
		g := s.Gnttab
		counter(c.gntMaps, g.Maps)
		counter(c.gntUnmaps, g.Unmaps)
		counter(c.gntCopies, g.Copies)
		counter(c.gntCopyBytes, g.CopyBytes)
		counter(c.gntRevoked, g.Revoked)
		gauge(c.gntMapped, float64(g.Mapped))
		byLabel(c.gntErrors, g.ErrorsByStatus)
		byLabel(c.gntErrors, g.ErrorsByErrno)
		if st := s.Stream; st != nil {
			gauge(c.streamActive, float64(st.Active))
			for _, m := range []struct {
				d     *prometheus.Desc
				v     uint64
				label []string
			}{
				{c.streamConns, st.HostIn, []string{"host_to_guest"}}, {c.streamConns, st.HostOut, []string{"guest_to_host"}},
				{c.streamRefused, st.Refused, nil}, {c.streamResets, st.Resets, nil}, {c.streamBadInput, st.BadInput, nil},
				{c.streamDropped, st.Dropped, nil},
				{c.streamBytes, st.BytesToGuest, []string{"to_guest"}}, {c.streamBytes, st.BytesFromGuest, []string{"from_guest"}},
			} {
				counter(m.d, m.v, m.label...)
			}
		}
	}
}
