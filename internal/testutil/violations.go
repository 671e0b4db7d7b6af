package testutil

import (
	"fmt"
	"testing"
)

// Violations collects the protocol violations a test fake sees (a call
// the code under test should never have made), to report them when the
// test ends. It has no lock of its own: the fake's mutex guards it.
type Violations []string

// Add records one violation.
func (v *Violations) Add(format string, a ...any) {
	*v = append(*v, fmt.Sprintf(format, a...))
}

// Report fails t with one error a violation, each after prefix.
func (v Violations) Report(t testing.TB, prefix string) {
	t.Helper()
	for _, s := range v {
		t.Error(prefix, s)
	}
}
