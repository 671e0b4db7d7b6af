// Package bench measures argovisor against the machine's own floors in one
// run: the bare VM exit round trip (through the Go dispatcher and through a
// minimal KVM_RUN loop), the interrupt round trip and host memcpy, then
// Argo, a host-socket peer and boot figures, each the median of several
// runs with its min and max and its ratio to a floor measured in the same
// run. Absolute times on shared, nested machines vary; ratios are what to
// compare. `argovisor bench` (make bench) runs it and writes
// bench/results/latest.json and an SVG plot.
package bench
