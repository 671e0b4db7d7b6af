package hcall

import "testing"

func TestErrnoNames(t *testing.T) {
	for e, want := range map[int64]string{111: "ECONNREFUSED", -22: "EINVAL", 95: "EOPNOTSUPP", 11: "EAGAIN", 0: "errno0", 4000: "errno4000"} {
		if got := ErrnoName(e); got != want {
			t.Errorf("ErrnoName(%d) = %q, want %q", e, got, want)
		}
	}
}

func TestErrnoCounter(t *testing.T) {
	var c ErrnoCounter
	c.Add(-111)
	c.Add(111)
	c.Add(-22)
	c.Add(1 << 20) // out of range: last slot, not a panic
	s := c.Snapshot()
	if s.Total() != 4 || s[111] != 2 || s[22] != 1 || s[MaxErrno-1] != 1 {
		t.Fatalf("counts wrong: total %d, [111]=%d [22]=%d last=%d", s.Total(), s[111], s[22], s[MaxErrno-1])
	}
	if got, want := s.String(), "ECONNREFUSED=2 EHWPOISON=1 EINVAL=1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	var zero ErrnoCounts
	if zero.String() != "" || len(zero.ByName()) != 0 {
		t.Errorf("zero counts render as %q", zero.String())
	}
}
