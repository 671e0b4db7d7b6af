package argo

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/argovisor/argovisor/hcall"
	"github.com/argovisor/argovisor/internal/hsync"
)

// Waiting in the VMM (argovisor's ops, not Xen's): a vCPU blocks inside
// its hypercall until one of a set of its own rings has data, instead of
// halting for a VIRQ and then coming back with another hypercall.

// Wait operation numbers.
const (
	// OpWait is argo_op(OpWait, rings, NULL, nrings, timeout_us).
	OpWait = 0x101
	// OpSendWait is argo_op(OpSendWait, ent, rings, nrings, timeout_us):
	// one argo_send_ent is sent, then the call waits as OpWait does.
	OpSendWait = 0x102
)

// Wait limits and errno values.
const (
	// MaxWaitRings is the most rings one wait names.
	MaxWaitRings = 32
	// WaitForever as timeout_us never times out.
	WaitForever = math.MaxUint32
	// EINTR: the wait was interrupted (the vCPU was kicked or sent an
	// interrupt, or the domain is stopping) before data arrived.
	EINTR = 4
	// ETIMEDOUT: no listed ring had data within the timeout.
	ETIMEDOUT = 110
)

// BlockResult and its values are hcall's.
type (
	Blocker     = hcall.Blocker
	BlockResult = hcall.BlockResult
)

// waitq lets the vCPUs of one domain sleep until data arrives in one of
// its rings. The send path wakes it after dropping its ring locks; a
// waiter arms it before looking at its rings, so a message published
// after the look always finds the waiter's channel still to be closed.
type waitq struct {
	// waiters counts armed waiters; wake does nothing (no lock, no
	// allocation) while it is 0.
	waiters atomic.Int32

	// mu guards ch. Leaf: never held while blocking, and no other lock
	// is taken under it.
	mu hsync.Mutex
	// ch is closed, and replaced, by each wake with waiters.
	// +checklocks:mu
	ch chan struct{}
}

func newWaitq() *waitq {
	q := &waitq{}
	q.mu.Init(classWaitq)
	q.mu.Lock()
	q.ch = make(chan struct{})
	q.mu.Unlock()
	return q
}

// arm registers a waiter and returns the channel the next wake closes.
// Call disarm once done with it.
func (q *waitq) arm() <-chan struct{} {
	q.waiters.Add(1)
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ch
}

func (q *waitq) disarm() { q.waiters.Add(-1) }

// wake releases every armed waiter.
func (q *waitq) wake() {
	if q.waiters.Load() == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	close(q.ch)
	q.ch = make(chan struct{})
}

// waitArgs are a wait's validated rings.
type waitArgs struct {
	keys [MaxWaitRings]ringKey
	n    int
	// seen are the rings found registered under keys by this call's
	// latest look (nil: not seen yet). A ring removed after it was seen
	// is still asked whether it held an unread message then.
	seen [MaxWaitRings]*ring
}

// readWaitRings reads and checks a wait's ring list: arrays of
// xen_argo_addr naming the caller's rings as {aport, partner}.
func readWaitRings(c Caller, addr, n uint64, w *waitArgs) int64 {
	if n == 0 || n > MaxWaitRings {
		return -EINVAL
	}
	var b [MaxWaitRings * sizeofAddr]byte
	if readGuest(c, addr, b[:n*sizeofAddr]) != nil {
		return -EFAULT
	}
	for i := range int(n) {
		ra := decodeAddr(b[i*sizeofAddr:])
		if ra.Pad != 0 {
			return -EINVAL
		}
		w.keys[i] = ringKey{port: ra.Port, partner: ra.Domain}
	}
	w.n = int(n)
	return 0
}

// waitOp is OpWait and OpSendWait. It manages L1 itself: the checks and
// the send run under R(L1), the sleep holds no Argo lock at all.
func (a *Argo) waitOp(c Caller, cmd, arg1, arg2, arg3, arg4 uint64) int64 {
	var w waitArgs
	var sig signals
	a.l1.RLock()
	me := a.callerState(c)
	if me == nil {
		a.l1.RUnlock()
		return -EOPNOTSUPP
	}
	ret := a.waitPrepare(c, me, cmd, arg1, arg2, arg3, &w, &sig)
	a.l1.RUnlock()
	a.raise(&sig) // the message must reach its receiver before we sleep
	if ret == 0 {
		ret = a.waitLoop(c, me, &w, arg4)
	}
	if ret < 0 && ret != -ETIMEDOUT && ret != -EINTR {
		me.stats.errors.Add(1)
		me.stats.errnos.Add(ret) // Errors and ErrorsByErrno agree, as for every op
	}
	return ret
}

// waitPrepare checks a wait's arguments and, for OpSendWait, sends its
// message. It returns 0 to go on waiting. Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) waitPrepare(c Caller, me *domainInfo, cmd, arg1, arg2, arg3 uint64, w *waitArgs, sig *signals) int64 {
	a.assertReadL1()
	if cmd == OpWait {
		if arg2 != 0 {
			return -EINVAL
		}
		return readWaitRings(c, arg1, arg3, w)
	}
	// OpSendWait: the entry, its result field, the ring list, then the
	// send; the call fails before sending if any part is bad.
	var e [sizeofSendEnt]byte
	if readGuest(c, arg1, e[:]) != nil {
		return -EFAULT
	}
	var res [8]byte
	cancelled := int64(-ECANCELED)
	le.PutUint64(res[:], uint64(cancelled))
	if writeGuest(c, arg1+sendEntResult, res[:]) != nil {
		return -EFAULT
	}
	if ret := readWaitRings(c, arg2, arg3, w); ret != 0 {
		return ret
	}
	if ret := a.waitRingsExist(me, w); ret != 0 {
		return ret
	}
	ret := a.sendOne(c, me, (*[sizeofSendAddr]byte)(e[:sizeofSendAddr]), le.Uint64(e[16:]), uint64(le.Uint32(e[24:])), le.Uint32(e[28:]), spaceVIRQ, sig)
	le.PutUint64(res[:], uint64(ret))
	if writeGuest(c, arg1+sendEntResult, res[:]) != nil {
		return -EFAULT
	}
	if ret < 0 {
		return ret
	}
	return 0
}

// waitRingsExist checks that the caller owns every ring of w, so that a
// send_wait that could not wait does not send either. It records the
// rings as seen: the reply may arrive, and the peer die and take the
// ring with it, before the wait's first look.
// Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) waitRingsExist(me *domainInfo, w *waitArgs) int64 {
	a.assertReadL1()
	st := a.state[me.id]
	if st == nil {
		return -ENODEV
	}
	st.ringsL2.RLock()
	defer st.ringsL2.RUnlock()
	for i := range w.n {
		r := st.rings[w.keys[i]]
		if r == nil {
			return -ENOENT
		}
		w.seen[i] = r
	}
	return 0
}

// waitLoop sleeps until one of w's rings has data and returns its index,
// or -ETIMEDOUT, -EINTR, -ENOENT (a ring is not registered, or was
// removed while waiting without an unread message in it), -ENODEV. Each
// round arms the queue, then looks at the rings under the locks, then
// sleeps with no lock held.
func (a *Argo) waitLoop(c Caller, me *domainInfo, w *waitArgs, timeoutUs uint64) int64 {
	timeout := time.Duration(-1)
	if timeoutUs != WaitForever {
		timeout = time.Duration(timeoutUs) * time.Microsecond
	}
	start := time.Now()
	var final int64 // the error to return if the next look finds nothing
	counted, blocked := false, false
	for {
		wake := me.wq.arm()
		ret := a.waitCheck(me, w)
		if !counted && (ret >= 0 || ret == -EAGAIN) {
			counted = true
			me.stats.waits.Add(1)
		}
		if ret != -EAGAIN || final != 0 || timeout == 0 {
			me.wq.disarm()
			switch {
			case ret != -EAGAIN:
				return ret
			case final != 0:
				return final
			}
			return -ETIMEDOUT
		}
		if !blocked {
			blocked = true
			me.stats.waitsBlocked.Add(1)
		}
		left := timeout
		if timeout > 0 {
			if left = timeout - time.Since(start); left <= 0 {
				left = 0
			}
		}
		var why BlockResult
		if left == 0 {
			why = hcall.TimedOut
		} else {
			why = block(c, wake, left)
		}
		me.wq.disarm()
		switch why {
		case hcall.TimedOut:
			final = -ETIMEDOUT
		case hcall.Interrupted:
			final = -EINTR
		}
	}
}

// block sleeps through the caller if it can block, else on a plain timer
// (the host endpoint and tests: nothing to interrupt).
func block(c Caller, wake <-chan struct{}, timeout time.Duration) BlockResult {
	if b, ok := c.(Blocker); ok {
		return b.Block(wake, timeout)
	}
	if timeout < 0 {
		<-wake
		return hcall.Woken
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-wake:
		return hcall.Woken
	case <-t.C:
		return hcall.TimedOut
	}
}

// waitCheck looks at w's rings once: the index of the first with data,
// -EAGAIN if none has, or an error. It also wakes the senders waiting for
// space that now fits on these rings, so a reader that drains and then
// waits needs no notify.
//
// A ring this call saw that has since been removed counts as having
// data if it held an unread message when it was removed, and gives
// -ENOENT otherwise. That is the end of every request/reply exchange:
// the replier sends its last reply and exits, and its death removes the
// unicast ring the requester registered for it (Xen's teardown does the
// same) — possibly before the requester's wait has looked. The reply is
// in the requester's memory all the same; reporting -ENOENT would tell
// it that no reply came.
func (a *Argo) waitCheck(me *domainInfo, w *waitArgs) int64 {
	var sig signals
	a.l1.RLock()
	ret := a.waitCheckLocked(me, w, &sig)
	a.l1.RUnlock()
	a.raise(&sig)
	return ret
}

// waitCheckLocked is waitCheck under R(L1).
// +checklocksread:a.l1
func (a *Argo) waitCheckLocked(me *domainInfo, w *waitArgs, sig *signals) int64 {
	a.assertReadL1()
	st := a.state[me.id]
	if st == nil {
		return -ENODEV
	}
	st.ringsL2.RLock()
	defer st.ringsL2.RUnlock()
	found := int64(-EAGAIN)
	for i := range w.n {
		r := st.rings[w.keys[i]]
		if r == nil {
			if old := w.seen[i]; old != nil && removedUnread(old) {
				if found < 0 {
					found = int64(i)
				}
				continue
			}
			return -ENOENT
		}
		w.seen[i] = r
		r.l3.Lock()
		a.wakeFittingLocked(st, r, sig)
		if found < 0 && r.tx != r.sanitizedRx() {
			found = int64(i)
		}
		r.l3.Unlock()
	}
	return found
}

// removedUnread reports whether r, removed from its owner's table, held
// a message its owner had not read when it was removed.
func removedUnread(r *ring) bool {
	r.l3.Lock()
	defer r.l3.Unlock()
	return r.unreadAtRemoval
}
