package argo

// The batched send (argovisor's op, not Xen's): several messages, to one
// or several destinations, in one hypercall, each with its own result.

// OpSendvBatch is argo_op(OpSendvBatch, ents, NULL, nent, flags): send the
// messages of an array of argo_send_ent (docs/hypercall-abi.md).
const OpSendvBatch = 0x100

// Batch limits and flags.
const (
	// MaxBatch is the most entries one batched send takes.
	MaxBatch = 64
	// BatchContinue: attempt every entry even after one fails. Without
	// it the batch stops at the first failure, so that a later message
	// to the same ring cannot overtake one that has to be retried.
	BatchContinue = 0x1
	// sizeofSendEnt is sizeof(struct argo_send_ent): send_addr 0:16,
	// iov_hnd 16:8, niov 24:4, message_type 28:4, result 32:8 (out).
	sizeofSendEnt = 40
	sendEntResult = 32
)

// ECANCELED is the result of an entry not attempted because an earlier
// one failed.
const ECANCELED = 125

// sendvBatch is OpSendvBatch. It returns the number of messages sent, or
// a negated errno when the call itself is bad (then nothing is sent):
// arg2 not NULL or unknown flags (-EINVAL), more than MaxBatch entries
// (-EINVAL), an entry array that cannot be read or whose result fields
// cannot be written (-EFAULT). Each entry gets the result sendv would
// have returned for it, or -ECANCELED if the batch stopped before it. The
// VIRQs are raised once, after the whole batch: one per destination.
// Preconditions: R(L1).
// +checklocksread:a.l1
func (a *Argo) sendvBatch(c Caller, me *domainInfo, entsAddr, arg2, nent, flags uint64) int64 {
	a.assertReadL1()
	if arg2 != 0 || flags&^BatchContinue != 0 || nent > MaxBatch {
		return -EINVAL
	}
	if nent == 0 {
		return 0
	}
	var buf [MaxBatch * sizeofSendEnt]byte
	ents := buf[:nent*sizeofSendEnt]
	if readGuest(c, entsAddr, ents) != nil {
		return -EFAULT
	}
	// Every result field is written before anything is sent, so a
	// result array the VMM cannot write fails the call up front instead
	// of after messages went out.
	var res [8]byte
	cancelled := int64(-ECANCELED)
	le.PutUint64(res[:], uint64(cancelled))
	for i := range nent {
		if writeGuest(c, entsAddr+i*sizeofSendEnt+sendEntResult, res[:]) != nil {
			return -EFAULT
		}
	}
	var sig signals
	defer a.raise(&sig)
	var sent int64
	for i := range nent {
		e := ents[i*sizeofSendEnt : (i+1)*sizeofSendEnt]
		ab := (*[sizeofSendAddr]byte)(e[0:sizeofSendAddr])
		ret := a.sendOne(c, me, ab, le.Uint64(e[16:]), uint64(le.Uint32(e[24:])), le.Uint32(e[28:]), &sig)
		if ret < 0 {
			me.stats.errors.Add(1)
		} else {
			sent++
		}
		le.PutUint64(res[:], uint64(ret))
		if writeGuest(c, entsAddr+i*sizeofSendEnt+sendEntResult, res[:]) != nil {
			// Only a guest that changed its own mappings during the
			// call gets here; what was sent stays sent.
			return -EFAULT
		}
		if ret < 0 && flags&BatchContinue == 0 {
			break
		}
	}
	return sent
}
