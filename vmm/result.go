package vmm

import (
	"fmt"
	"strings"

	"github.com/argovisor/argovisor/kvm"
)

// ResultKind says how a domain ended.
type ResultKind int

// How a domain can end.
const (
	Running ResultKind = iota // not ended yet
	Exited                    // the guest reported an exit status
	Crashed                   // exception, triple fault or KVM error
	Stopped                   // stopped by the host (timeout, shutdown, test)
)

func (k ResultKind) String() string {
	return [...]string{"running", "exited", "crashed", "stopped"}[k]
}

// Fault describes a crash: what happened, on which vCPU, with the registers
// the VMM could gather.
type Fault struct {
	Reason    string
	VCPU      int
	Vector    int // exception vector, -1 if not an exception
	ErrorCode uint64
	RIP       uint64
	// Symbol is RIP as symbol+offset from the kernel's symbol table
	// ("ud2_here+0x0"); empty when the kernel has none covering RIP.
	Symbol string
	CR2    uint64
	Regs   kvm.Regs // at the fault when the firmware saved them, else at the exit
}

// ExceptionName is the mnemonic of an x86 exception vector ("#UD").
func ExceptionName(v int) string {
	names := [...]string{"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO",
		"#TS", "#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP"}
	if v >= 0 && v < len(names) {
		return names[v]
	}
	return fmt.Sprintf("vector %d", v)
}

func (f *Fault) String() string {
	var b strings.Builder
	if f.Vector >= 0 {
		fmt.Fprintf(&b, "%s (vector %d) at rip=%#x%s on vcpu %d", ExceptionName(f.Vector), f.Vector, f.RIP, f.symbolSuffix(), f.VCPU)
		if f.Vector == 14 {
			fmt.Fprintf(&b, " cr2=%#x", f.CR2)
		}
		fmt.Fprintf(&b, " error=%#x", f.ErrorCode)
	} else {
		fmt.Fprintf(&b, "%s at rip=%#x%s on vcpu %d", f.Reason, f.RIP, f.symbolSuffix(), f.VCPU)
	}
	return b.String()
}

func (f *Fault) symbolSuffix() string {
	if f.Symbol == "" {
		return ""
	}
	return " <" + f.Symbol + ">"
}

// RegisterDump formats the saved registers, four per line.
func (f *Fault) RegisterDump() string {
	r := &f.Regs
	return fmt.Sprintf("rax=%016x rbx=%016x rcx=%016x rdx=%016x\n"+
		"rsi=%016x rdi=%016x rbp=%016x rsp=%016x\n"+
		"r8 =%016x r9 =%016x r10=%016x r11=%016x\n"+
		"r12=%016x r13=%016x r14=%016x r15=%016x\n"+
		"rip=%016x rflags=%08x",
		r.RAX, r.RBX, r.RCX, r.RDX, r.RSI, r.RDI, r.RBP, r.RSP,
		r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15, r.RIP, r.RFLAGS)
}

// Result is how a domain ended.
type Result struct {
	Kind   ResultKind
	Status int32  // for Exited
	Reason string // for Stopped (and a summary for Crashed)
	Fault  *Fault // for Crashed
}

// OK reports whether the domain exited with status 0.
func (r Result) OK() bool { return r.Kind == Exited && r.Status == 0 }

func (r Result) String() string {
	switch r.Kind {
	case Exited:
		return fmt.Sprintf("exited with status %d", r.Status)
	case Crashed:
		if r.Fault != nil {
			return "crashed: " + r.Fault.String()
		}
		return "crashed: " + r.Reason
	case Stopped:
		return "stopped: " + r.Reason
	}
	return "running"
}
