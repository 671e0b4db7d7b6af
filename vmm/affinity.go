package vmm

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// maxCPU bounds a CPU number: the glibc cpu_set_t that unix.CPUSet is
// (1024 bits).
const maxCPU = 1023

// parseCPUs reads the cpus key: a list of host CPU numbers.
func parseCPUs(v []int64) ([]int, error) {
	if v == nil {
		return nil, nil
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("cpus = []: name at least one CPU, or leave the key out")
	}
	cpus := make([]int, len(v))
	for i, c := range v {
		if c < 0 || c > maxCPU {
			return nil, fmt.Errorf("cpus: %d is not a CPU number (0..%d)", c, maxCPU)
		}
		cpus[i] = int(c)
	}
	return cpus, nil
}

// checkCPUs checks that every CPU in cpus exists, appears once, and is
// one this process may run on: a domain pinned where its threads may not
// go would fail at its first vCPU instead of at creation.
func checkCPUs(cpus []int) error {
	if len(cpus) == 0 {
		return nil
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return fmt.Errorf("cpus: sched_getaffinity: %w", err)
	}
	seen := map[int]bool{}
	for _, c := range cpus {
		switch {
		case c < 0 || c > maxCPU:
			return fmt.Errorf("cpus: %d is not a CPU number (0..%d)", c, maxCPU)
		case seen[c]:
			return fmt.Errorf("cpus: CPU %d is named twice", c)
		case !allowed.IsSet(c):
			return fmt.Errorf("cpus: CPU %d is not one this process may use (allowed: %s)", c, formatCPUs(allowed))
		}
		seen[c] = true
	}
	return nil
}

// cpuList is a set's CPUs in increasing order.
func cpuList(set unix.CPUSet) []int {
	var ids []int
	for c := 0; c <= maxCPU; c++ {
		if set.IsSet(c) {
			ids = append(ids, c)
		}
	}
	return ids
}

// formatCPUs lists a set's CPUs as ranges ("0-3,6").
func formatCPUs(set unix.CPUSet) string { return formatCPUList(cpuList(set)) }

func formatCPUList(ids []int) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	s := ""
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if s != "" {
			s += ","
		}
		if i == j {
			s += fmt.Sprint(ids[i])
		} else {
			s += fmt.Sprintf("%d-%d", ids[i], ids[j])
		}
		i = j + 1
	}
	if s == "" {
		return "none"
	}
	return s
}

// pinThread restricts the calling OS thread to cpus (a vCPU goroutine
// locked to its thread calls it once, before its first KVM_RUN). The
// kernel moves the thread at once if it runs elsewhere.
func pinThread(cpus []int) error {
	if len(cpus) == 0 {
		return nil
	}
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity cpus=%s: %w", formatCPUList(cpus), err)
	}
	return nil
}
