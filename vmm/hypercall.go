package vmm

import (
	"fmt"
	"time"

	"github.com/argovisor/argovisor/hcall"
)

// Hypercall numbers (Xen's numbering).
const (
	HypercallMemoryOp     = 12
	HypercallGrantTableOp = 20
	HypercallArgoOp       = 39
	// HypercallNull does nothing and returns 0; benchmarks use it to
	// measure the dispatch path. It is outside Xen's range.
	HypercallNull = 0x7F

	maxHypercall = 128
)

// Linux errno values returned (negated) in RAX.
const (
	EPERM       = 1
	ENOENT      = 2
	ESRCH       = 3
	EFAULT      = 14
	EINVAL      = 22
	ENOSYS      = 38
	EOPNOTSUPP  = 95
	ECONNREFUSE = 111
)

// Hypercall is one call decoded from the hypercall port or the doorbell:
// number in EAX,
// arguments in RDI, RSI, RDX, R10, R8 (Xen's x86-64 order).
type Hypercall struct {
	*VCPUContext
	Nr   uint32
	Args [5]uint64
}

// HypercallHandler serves one hypercall number and returns the value for
// RAX: a non-negative result or a negated errno.
type HypercallHandler func(h *Hypercall) int64

// hypercallPort decodes and dispatches hypercalls.
type hypercallPort struct{}

func (hypercallPort) PIORead(_ *VCPUContext, _ uint16, data []byte) {
	// Hypercalls are OUT only: writing registers during an IN exit would
	// lose the IN result.
	for i := range data {
		data[i] = 0xFF
	}
}

func (hypercallPort) PIOWrite(c *VCPUContext, _ uint16, data []byte) {
	dispatchHypercall(c, le32(data))
}

// dispatchHypercall runs hypercall nr for the vCPU of c, whichever way it
// arrived (the port's OUT or the doorbell's store): arguments from the
// sync registers, the handler from the VMM's table, the result into RAX.
func dispatchHypercall(c *VCPUContext, nr uint32) {
	d := c.Domain
	v := d.vcpus[c.Index]
	h := &v.hc
	r := c.Regs()
	h.Nr = nr
	h.Args = [5]uint64{r.RDI, r.RSI, r.RDX, r.R10, r.R8}
	var begin time.Time
	trace := d.vmm.opts.TraceHypercalls != nil && d.vmm.traced(d)
	if trace {
		begin = time.Now()
	}
	var ret int64
	if h.Nr < maxHypercall && d.vmm.hypercalls[h.Nr] != nil {
		ret = d.vmm.hypercalls[h.Nr](h)
	} else {
		ret = -ENOSYS
	}
	d.stats.count(h.Nr, h.Args[0], ret)
	if trace {
		d.vmm.traceHypercall(d.vmm.opts.TraceHypercalls, h, ret, time.Since(begin))
	}
	c.SetRAX(uint64(ret))
}

func nullHypercall(*Hypercall) int64 { return 0 }

// FormatHypercallResult renders a hypercall's return value: the number,
// or the errno name for a negative one ("-ECONNREFUSED").
func FormatHypercallResult(ret int64) string {
	if ret < 0 && ret > -4096 {
		return "-" + hcall.ErrnoName(ret)
	}
	return fmt.Sprint(ret)
}
