package vmm

import "testing"

func TestClassifyMMIO(t *testing.T) {
	for _, tc := range []struct {
		gpa   uint64
		n     int
		write bool
		want  mmioKind
	}{
		{DoorbellGPA, 4, true, mmioDoorbell},
		{DoorbellGPA, 4, false, mmioDoorbellRead},
		{DoorbellGPA, 1, true, mmioDoorbellBad},
		{DoorbellGPA, 2, true, mmioDoorbellBad},
		{DoorbellGPA, 8, true, mmioDoorbellBad},
		{DoorbellGPA, 0, true, mmioDoorbellBad},
		{DoorbellGPA + 4, 4, true, mmioDoorbellBad},
		{DoorbellGPA + DoorbellSize - 4, 4, true, mmioDoorbellBad},
		{DoorbellGPA + DoorbellSize - 1, 1, false, mmioDoorbellRead},
		{DoorbellGPA + DoorbellSize, 4, true, mmioOther},
		{DoorbellGPA - 4, 4, true, mmioOther},
		{0, 4, true, mmioOther},
		{^uint64(0), 4, true, mmioOther},
		{0xFEE000B0, 4, true, mmioOther},
	} {
		if got := classifyMMIO(tc.gpa, tc.n, tc.write); got != tc.want {
			t.Errorf("classifyMMIO(%#x, %d, write=%v) = %d, want %d", tc.gpa, tc.n, tc.write, got, tc.want)
		}
	}
}

// The doorbell page must lie where nothing else is: past the grant
// window, below the IOAPIC, inside the identity map (0-4 GiB).
func TestDoorbellPlacement(t *testing.T) {
	if DoorbellGPA%PageSize != 0 {
		t.Errorf("DoorbellGPA %#x not page aligned", DoorbellGPA)
	}
	if DoorbellGPA < GrantWindowROGPA+GrantWindowHalf || DoorbellGPA+DoorbellSize > 0xFEC00000 {
		t.Errorf("DoorbellGPA %#x overlaps the grant window or the IOAPIC", DoorbellGPA)
	}
	if DoorbellGPA < MaxMemory || DoorbellGPA < GrantTableGPA {
		t.Errorf("DoorbellGPA %#x may be RAM or grant frames", DoorbellGPA)
	}
}

func TestDoorbellPolicy(t *testing.T) {
	for _, tc := range []struct {
		s     string
		pvm   bool
		want  bool
		wantP DoorbellPolicy
	}{
		{"auto", true, true, DoorbellAuto}, {"", false, false, DoorbellAuto},
		{"prefer", false, true, DoorbellPrefer}, {"avoid", true, false, DoorbellAvoid},
	} {
		p, err := ParseDoorbellPolicy(tc.s)
		if err != nil || p != tc.wantP {
			t.Errorf("ParseDoorbellPolicy(%q) = %v, %v", tc.s, p, err)
		}
		if got := doorbellPreferred(p, tc.pvm); got != tc.want {
			t.Errorf("doorbellPreferred(%v, pvm=%v) = %v", p, tc.pvm, got)
		}
	}
	if _, err := ParseDoorbellPolicy("always"); err == nil {
		t.Error("ParseDoorbellPolicy(always) succeeded")
	}
}

func TestGuestCPUIDPreferred(t *testing.T) {
	for _, pref := range []bool{false, true} {
		for _, e := range guestCPUID(nil, pref) {
			if e.Function != 0x40000002 {
				continue
			}
			if got := e.Ecx&DoorbellPreferred != 0; got != pref {
				t.Errorf("preferred=%v: ECX %#x", pref, e.Ecx)
			}
		}
	}
}
