package argo

import (
	"time"

	"github.com/argovisor/argovisor/hcall"
)

// The batched send (argovisor's op, not Xen's): several messages, to one
// or several destinations, in one hypercall, each with its own result.

// OpSendvBatch is argo_op(OpSendvBatch, ents, NULL, nent, flags): send the
// messages of an array of argo_send_ent (docs/hypercall-abi.md). With
// BatchWaitSpace in flags, arg2 is a timeout instead of NULL:
// argo_op(OpSendvBatch, ents, timeout_us, nent, flags).
const OpSendvBatch = 0x100

// Batch limits and flags.
const (
	// MaxBatch is the most entries one batched send takes.
	MaxBatch = 64
	// BatchContinue: attempt every entry even after one fails. Without
	// it the batch stops at the first failure, so that a later message
	// to the same ring cannot overtake one that has to be retried.
	BatchContinue = 0x1
	// BatchWaitSpace: an entry whose ring is full does not fail with
	// -EAGAIN: the vCPU sleeps in the VMM until the message fits (or
	// the ring goes away), then the batch goes on. arg2 is the most
	// the call sleeps in all, in microseconds (WaitForever: no limit;
	// 0: never, which is the batch without the flag). The VIRQs of the
	// messages sent so far are raised before each sleep.
	BatchWaitSpace = 0x2
	// batchFlags are the flags a batch accepts.
	batchFlags = BatchContinue | BatchWaitSpace
	// sizeofSendEnt is sizeof(struct argo_send_ent): send_addr 0:16,
	// iov_hnd 16:8, niov 24:4, message_type 28:4, result 32:8 (out).
	sizeofSendEnt = 40
	sendEntResult = 32
)

// ECANCELED is the result of an entry not attempted because an earlier
// one failed.
const ECANCELED = 125

// batch is one batched send in progress: its entries as read from the
// guest, and how far it got.
type batch struct {
	addr  uint64 // the entry array's guest address
	n     uint64 // entries
	flags uint64
	buf   [MaxBatch * sizeofSendEnt]byte
	next  uint64 // the first entry not yet done
	sent  int64
}

// sendvBatch is OpSendvBatch without BatchWaitSpace. It returns the
// number of messages sent, or a negated errno when the call itself is bad
// (then nothing is sent): arg2 not NULL or unknown flags (-EINVAL), more
// than MaxBatch entries (-EINVAL), an entry array that cannot be read or
// whose result fields cannot be written (-EFAULT). Each entry gets the
// result sendv would have returned for it, or -ECANCELED if the batch
// stopped before it. The VIRQs are raised once, after the whole batch: one
// per destination. Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) sendvBatch(c Caller, me *domainInfo, entsAddr, arg2, nent, flags uint64) int64 {
	a.assertReadL1()
	if arg2 != 0 || flags&^BatchContinue != 0 || nent > MaxBatch {
		return -EINVAL // Op sends BatchWaitSpace to batchWaitOp
	}
	var b batch
	if ret := b.start(c, entsAddr, nent, flags); ret != 0 || nent == 0 {
		return ret
	}
	var sig signals
	defer a.raise(&sig)
	if _, ret := a.batchRun(c, me, &b, spaceVIRQ, &sig); ret != 0 {
		return ret
	}
	return b.sent
}

// start reads a batch's entries and writes every result field with
// -ECANCELED before anything is sent, so that a result array the VMM
// cannot write fails the call up front instead of after messages went
// out. It returns 0 or -EFAULT.
func (b *batch) start(c Caller, addr, n, flags uint64) int64 {
	b.addr, b.n, b.flags = addr, n, flags
	if n == 0 {
		return 0
	}
	if readGuest(c, addr, b.buf[:n*sizeofSendEnt]) != nil {
		return -EFAULT
	}
	for i := range n {
		if b.setResult(c, i, -ECANCELED) != 0 {
			return -EFAULT
		}
	}
	return 0
}

// setResult writes entry i's result field: 0 or -EFAULT.
func (b *batch) setResult(c Caller, i uint64, ret int64) int64 {
	var res [8]byte
	le.PutUint64(res[:], uint64(ret))
	if writeGuest(c, b.addr+i*sizeofSendEnt+sendEntResult, res[:]) != nil {
		return -EFAULT
	}
	return 0
}

// batchRun sends b's entries from b.next on and writes their results.
// With how == spaceWake, an entry whose ring is full is left for the
// caller to wait on: its request is queued (it wakes the domain's wait
// queue), its result is not written, and batchRun returns with blocked
// set and b.next at that entry. Otherwise every entry gets its result
// and the batch ends at the first failure unless BatchContinue. The
// second value is 0, or -EFAULT if a result field could not be written
// (only a guest that changed its own mappings during the call gets
// there; what was sent stays sent). Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) batchRun(c Caller, me *domainInfo, b *batch, how spaceReq, sig *signals) (blocked bool, ret int64) {
	a.assertReadL1()
	for ; b.next < b.n; b.next++ {
		e := b.buf[b.next*sizeofSendEnt : (b.next+1)*sizeofSendEnt]
		ab := (*[sizeofSendAddr]byte)(e[0:sizeofSendAddr])
		r := a.sendOne(c, me, ab, le.Uint64(e[16:]), uint64(le.Uint32(e[24:])), le.Uint32(e[28:]), how, sig)
		if r == -EAGAIN && how == spaceWake {
			return true, 0
		}
		if r < 0 {
			me.stats.errors.Add(1)
		} else {
			b.sent++
		}
		if b.setResult(c, b.next, r) != 0 {
			return false, -EFAULT
		}
		if r < 0 && b.flags&BatchContinue == 0 {
			b.next = b.n
			return false, 0
		}
	}
	return false, 0
}

// batchWaitOp is OpSendvBatch with BatchWaitSpace: the batch sleeps in
// the VMM whenever an entry's ring is full and goes on once the message
// fits. It manages L1 itself, as waitOp does: the sends run under R(L1),
// the sleeps hold no Argo lock. Each sleep follows the wait queue's
// protocol: the full ring's request (announced in tx_wanted, so the
// reader's notify wakes this vCPU without a VIRQ) is queued, the queue is
// armed, the entry is tried once more, and only then does the vCPU
// sleep, after raising the VIRQs of the messages sent so far (the reader
// must hear of them, or it never frees the space). Entries keep their
// order: the batch never passes an entry it waits for.
//
// Results beyond sendvBatch's: when the timeout has passed, the waiting
// entry is tried once more as without the flag (-EAGAIN, with a space
// request whose VIRQ will come, if it still does not fit); an interrupt
// or kick of the vCPU ends the wait with -EINTR in that entry. Either way
// the entries after it get -ECANCELED (even with BatchContinue), and the
// call returns the number of messages sent. A ring removed while the
// batch sleeps on it (unregistered, its owner died) wakes it, and the
// entry gets what sendv gets then (-ECONNREFUSED).
func (a *Argo) batchWaitOp(c Caller, entsAddr, timeoutUs, nent, flags uint64) int64 {
	start := time.Now()
	var b batch
	var sig signals
	a.l1.RLock()
	me := a.callerState(c)
	if me == nil {
		a.l1.RUnlock()
		return -EOPNOTSUPP
	}
	ret := int64(-EINVAL)
	if timeoutUs <= WaitForever && flags&^batchFlags == 0 && nent <= MaxBatch {
		ret = b.start(c, entsAddr, nent, flags)
	}
	var wake <-chan struct{} // armed, if not nil
	slept := false
	for ret == 0 && b.next < b.n {
		how := spaceWake
		left := time.Duration(-1)
		if timeoutUs != WaitForever {
			if left = time.Duration(timeoutUs)*time.Microsecond - time.Since(start); left <= 0 {
				how = spaceVIRQ // time is up: behave as without the flag
			}
		}
		var blocked bool
		blocked, ret = a.batchRun(c, me, &b, how, &sig)
		if !blocked || ret != 0 {
			break
		}
		if wake == nil {
			if a.spaceHook != nil {
				a.spaceHook()
			}
			// Arm, then look again: a reader's notify from now on
			// wakes the queue, so the entry's retry or the sleep
			// below sees the space.
			wake = me.wq.arm()
			continue
		}
		a.l1.RUnlock()
		a.raise(&sig) // the reader must hear of what is there before we sleep
		sig = signals{}
		if !slept {
			slept = true
			me.stats.spaceWaits.Add(1)
		}
		why := block(c, wake, left)
		me.wq.disarm()
		wake = nil
		a.l1.RLock()
		if why == hcall.Interrupted {
			ret = b.setResult(c, b.next, -EINTR)
			break
		}
	}
	if wake != nil {
		me.wq.disarm()
	}
	a.l1.RUnlock()
	a.raise(&sig)
	if ret < 0 {
		me.stats.errors.Add(1)
		me.stats.errnos.Add(ret)
		return ret
	}
	return b.sent
}
