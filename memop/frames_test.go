package memop

import (
	"bytes"
	"errors"
	"testing"
)

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}

// A transfer: the sender's frame is taken, the receiver reserves an empty
// frame, and Move carries the contents across; the reservations follow.
func TestTransferMove(t *testing.T) {
	w := newWorld(t)
	w.add(dA, Config{Pages: 32})
	gb := w.add(dB, Config{Pages: 32})
	expect(t, "receiver makes room", w.call(gb, OpDecreaseReservation, resv{list: []uint64{7}}), 1)
	want := append([]byte(nil), w.host.page(dA, 3)...)

	wantErr(t, "take", w.m.Take(dA, 3, nil), nil)
	if w.dom[dA].Present(3, 1) {
		t.Errorf("a taken frame is still Present")
	}
	wantErr(t, "reserve", w.m.Reserve(dB, 7), nil)
	if w.dom[dB].Present(7, 1) {
		t.Errorf("a reserved frame is Present before the move")
	}
	wantErr(t, "move", w.m.Move(dA, 3, dB, 7), nil)
	if !bytes.Equal(w.host.page(dB, 7), want) || w.host.page(dA, 3) != nil {
		t.Errorf("contents did not move")
	}
	if !w.dom[dB].Present(7, 1) || w.dom[dA].Present(3, 1) {
		t.Errorf("Present after the move is wrong")
	}
	if a, b := w.stats(dA), w.stats(dB); a.Current != 31 || b.Current != 32 || a.TransfersOut != 1 || b.TransfersIn != 1 {
		t.Errorf("after the move: %+v / %+v", a, b)
	}
	w.recount(dA)
	w.recount(dB)
}

// Take refuses frames that are not the owner's to give, and gives a frame
// back unchanged when another user holds it.
func TestTakeErrors(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 32, MaxPages: 64})
	expect(t, "decrease", w.call(g, OpDecreaseReservation, resv{list: []uint64{4}}), 1)
	wantErr(t, "empty frame", w.m.Take(dA, 4, nil), ErrNotPopulated)
	wantErr(t, "tail of the region", w.m.Take(dA, 40, nil), ErrNotPopulated)
	wantErr(t, "outside the region", w.m.Take(dA, 64, nil), ErrNotPopulated)
	wantErr(t, "huge frame", w.m.Take(dA, ^uint64(0), nil), ErrNotPopulated)
	wantErr(t, "missing domain", w.m.Take(9, 1, nil), ErrNoDomain)
	asked := false
	wantErr(t, "in use", w.m.Take(dA, 5, func() bool {
		asked = true
		if w.dom[dA].Present(5, 1) {
			t.Errorf("in-use check while the frame is Present")
		}
		return true
	}), ErrInUse)
	if !asked || !w.dom[dA].Present(5, 1) {
		t.Errorf("in-use frame: asked %v, Present afterwards %v", asked, w.dom[dA].Present(5, 1))
	}
	wantErr(t, "take", w.m.Take(dA, 6, nil), nil)
	wantErr(t, "taken twice", w.m.Take(dA, 6, nil), ErrNotPopulated)
	expect(t, "decrease of a taken frame", w.call(g, OpDecreaseReservation, resv{list: []uint64{6}}), 0)
	w.m.Untake(dA, 6)
	if !w.dom[dA].Present(6, 1) {
		t.Errorf("untaken frame not Present")
	}
	wantErr(t, "take again", w.m.Take(dA, 6, nil), nil)
	wantErr(t, "drop", w.m.Drop(dA, 6), nil)
	if s := w.stats(dA); s.Current != 30 || s.TransfersOut != 1 {
		t.Errorf("after drop: %+v", s)
	}
	w.m.DomainDied(dA)
	wantErr(t, "dead domain", w.m.Take(dA, 7, nil), ErrDead)
	w.recount(dA)
}

// Reserve refuses frames that cannot receive a page.
func TestReserveErrors(t *testing.T) {
	w := newWorld(t)
	g := w.add(dA, Config{Pages: 32, MaxPages: 34})
	wantErr(t, "populated frame", w.m.Reserve(dA, 3), ErrNotEmpty)
	wantErr(t, "outside the region", w.m.Reserve(dA, 34), ErrNotEmpty)
	wantErr(t, "huge frame", w.m.Reserve(dA, ^uint64(0)), ErrNotEmpty)
	wantErr(t, "tail frame", w.m.Reserve(dA, 32), nil)
	wantErr(t, "reserved twice", w.m.Reserve(dA, 32), ErrNotEmpty)
	expect(t, "populate of a reserved frame", w.call(g, OpPopulatePhysmap, resv{list: []uint64{32}}), 0)
	wantErr(t, "second tail frame", w.m.Reserve(dA, 33), nil)
	expect(t, "current counts reservations", w.query(g, OpCurrentReservation, DomainSelf), 34)
	expect(t, "decrease", w.call(g, OpDecreaseReservation, resv{list: []uint64{0}}), 1)
	w.m.Unreserve(dA, 33)
	w.m.Unreserve(dA, 32)
	expect(t, "populate", w.call(g, OpPopulatePhysmap, resv{list: []uint64{32, 33}}), 2)
	// Full: frame 0 is empty but increase_reservation used the room.
	expect(t, "increase", w.call(g, OpIncreaseReservation, resv{nr: 1}), 1)
	expect(t, "current at max", w.query(g, OpCurrentReservation, DomainSelf), 34)
	wantErr(t, "full", w.m.Reserve(dA, 0), ErrNoRoom)
	w.m.DomainDied(dA)
	wantErr(t, "dead", w.m.Reserve(dA, 0), ErrDead)
	w.recount(dA)
}

// A failing Move changes nothing: the caller still holds both frames.
func TestMoveFailure(t *testing.T) {
	w := newWorld(t)
	w.add(dA, Config{Pages: 8})
	w.add(dB, Config{Pages: 8, MaxPages: 9})
	wantErr(t, "take", w.m.Take(dA, 1, nil), nil)
	wantErr(t, "reserve", w.m.Reserve(dB, 8), nil)
	w.host.fail["move"] = true
	wantErr(t, "move", w.m.Move(dA, 1, dB, 8), errHost)
	w.host.fail["remove"] = true
	wantErr(t, "drop with the host failing", w.m.Drop(dA, 1), errHost)
	if !w.dom[dA].Present(1, 1) {
		t.Errorf("a frame whose drop failed is not back")
	}
	w.m.Unreserve(dB, 8)
	w.recount(dA)
	w.recount(dB)
	if a, b := w.stats(dA), w.stats(dB); a.Current != 8 || b.Current != 8 {
		t.Errorf("reservations changed: %+v / %+v", a, b)
	}
}
