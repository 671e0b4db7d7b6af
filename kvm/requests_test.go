package kvm

import (
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"slices"
	"strings"
	"testing"

	gokvm "github.com/bobuhiro11/gokvm/kvm"
)

// TestRequestNumbers encodes every request again, with gokvm's _IO* helpers
// (which gokvm itself issues) and the struct sizes checked in
// TestStructLayout, so the seccomp allowlist names the numbers actually used.
func TestRequestNumbers(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want uintptr
	}{
		{ReqGetAPIVersion, gokvm.IIO(0x00)},
		{ReqCreateVM, gokvm.IIO(0x01)},
		{ReqCheckExtension, gokvm.IIO(0x03)},
		{ReqCheckExtension, ioctlCheckExtension},
		{ReqGetVCPUMmapSize, gokvm.IIO(0x04)},
		{ReqGetSupportedCPUID, gokvm.IIOWR(0x05, 8)}, // sizeof(struct kvm_cpuid2)
		{ReqCreateVCPU, gokvm.IIO(0x41)},
		{ReqSetUserMemoryRegion, gokvm.IIOW(0x46, sizeofUserMemoryRegion)},
		{ReqSetTSSAddr, gokvm.IIO(0x47)},
		{ReqCreateIRQChip, gokvm.IIO(0x60)},
		{ReqIRQLine, ioctlIRQLine},
		{ReqIRQFD, ioctlIRQFD},
		{ReqIOEventFD, ioctlIOEventFD},
		{ReqRun, ioctlRun},
		{ReqGetRegs, gokvm.IIOR(0x81, sizeofRegs)},
		{ReqSetRegs, gokvm.IIOW(0x82, sizeofRegs)},
		{ReqGetSregs, gokvm.IIOR(0x83, sizeofSregs)},
		{ReqSetSregs, gokvm.IIOW(0x84, sizeofSregs)},
		{ReqSetCPUID2, gokvm.IIOW(0x90, 8)},
		{ReqSetMPState, gokvm.IIOW(0x99, 4)}, // sizeof(struct kvm_mp_state)
		{ReqEnableCap, ioctlEnableCap},
		{ReqGetTSCKHz, gokvm.IIO(0xa3)},
		{ReqSignalMSI, ioctlSignalMSI},
		{ReqGetLAPIC, gokvm.IIOR(0x8e, 1024)},    // sizeof(struct kvm_lapic_state)
		{ReqGetMPState, gokvm.IIOR(0x98, 4)},     // sizeof(struct kvm_mp_state)
		{ReqGetVCPUEvents, gokvm.IIOR(0x9f, 64)}, // sizeof(struct kvm_vcpu_events)
		{ReqGetLAPIC, ioctlGetLAPIC},
		{ReqGetMPState, ioctlGetMPState},
		{ReqGetVCPUEvents, ioctlGetVCPUEvents},
	} {
		if uintptr(tc.req) != tc.want {
			t.Errorf("%v = %#x, encoded %#x", tc.req, uintptr(tc.req), tc.want)
		}
	}
	if got := Request(0x1234).String(); got != "ioctl 0x1234" {
		t.Errorf("unknown request prints %q", got)
	}
}

// TestIoctlCallsAreRequests reads the package's source: every ioctl it
// can issue — through a gokvm wrapper, gokvm.Ioctl, ioctlPtr or a raw
// SYS_IOCTL — must be one of Requests, and every one of Requests must be
// issued somewhere. A new KVM call thus cannot slip past the seccomp
// allowlists, which classify Requests (vmm.TestRequestsClassified).
func TestIoctlCallsAreRequests(t *testing.T) {
	// gokvm functions that issue one ioctl each.
	wrappers := map[string]Request{
		"GetAPIVersion": ReqGetAPIVersion, "CreateVM": ReqCreateVM, "GetVCPUMMmapSize": ReqGetVCPUMmapSize,
		"GetSupportedCPUID": ReqGetSupportedCPUID, "CreateVCPU": ReqCreateVCPU,
		"SetUserMemoryRegion": ReqSetUserMemoryRegion, "SetTSSAddr": ReqSetTSSAddr,
		"CreateIRQChip": ReqCreateIRQChip, "GetRegs": ReqGetRegs, "SetRegs": ReqSetRegs,
		"GetSregs": ReqGetSregs, "SetSregs": ReqSetSregs, "SetCPUID2": ReqSetCPUID2,
		"SetMPState": ReqSetMPState, "GetTSCKHz": ReqGetTSCKHz,
	}
	// gokvm functions that issue nothing.
	helpers := map[string]bool{"IIO": true, "IIOW": true, "IIOR": true, "IIOWR": true}
	// The package's own request variables (TestRequestNumbers checks
	// each against its Request).
	vars := map[string]Request{
		"ioctlCheckExtension": ReqCheckExtension, "ioctlRun": ReqRun, "ioctlIRQLine": ReqIRQLine,
		"ioctlIRQFD": ReqIRQFD, "ioctlIOEventFD": ReqIOEventFD, "ioctlSignalMSI": ReqSignalMSI,
		"ioctlEnableCap": ReqEnableCap, "ioctlGetLAPIC": ReqGetLAPIC, "ioctlGetMPState": ReqGetMPState,
		"ioctlGetVCPUEvents": ReqGetVCPUEvents,
	}
	fset := token.NewFileSet()
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	issued := map[Request][]string{}
	for _, ent := range ents {
		if name := ent.Name(); strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range f.Decls {
				fn, isFunc := decl.(*ast.FuncDecl)
				ast.Inspect(decl, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					pos := fset.Position(call.Pos()).String()
					// reqArg resolves a request argument to a Request.
					reqArg := func(e ast.Expr) {
						if id, ok := e.(*ast.Ident); ok {
							if r, known := vars[id.Name]; known {
								issued[r] = append(issued[r], pos)
								return
							}
						}
						t.Errorf("%s: ioctl with request %s, not one of the package's ioctl* variables", pos, types.ExprString(e))
					}
					switch sel := selector(call.Fun); {
					case sel.pkg == "gokvm" && sel.name == "Ioctl":
						reqArg(call.Args[1])
					case sel.pkg == "gokvm" && helpers[sel.name]:
					case sel.pkg == "gokvm":
						if r, ok := wrappers[sel.name]; ok {
							issued[r] = append(issued[r], pos)
						} else {
							t.Errorf("%s: gokvm.%s is not classified: if it issues an ioctl, add it to Requests and to this test", pos, sel.name)
						}
					case sel.pkg == "unix" && strings.HasPrefix(sel.name, "Ioctl"):
						t.Errorf("%s: unix.%s issues an ioctl outside the listed requests", pos, sel.name)
					case sel.pkg == "unix" && strings.Contains(sel.name, "Syscall"):
						if len(call.Args) > 2 && types.ExprString(call.Args[0]) == "unix.SYS_IOCTL" {
							// ioctlPtr's own body passes its parameter on;
							// its callers are checked.
							if !(isFunc && fn.Name.Name == "ioctlPtr") {
								reqArg(call.Args[2])
							}
						}
					case sel.pkg == "" && sel.name == "ioctlPtr":
						reqArg(call.Args[1])
					}
					return true
				})
			}
		}
	}
	for r, where := range issued {
		if !slices.Contains(Requests(), r) {
			t.Errorf("%v is issued (%s) but not listed by Requests", r, where[0])
		}
	}
	for _, r := range Requests() {
		if len(issued[r]) == 0 {
			t.Errorf("%v is listed by Requests but never issued", r)
		}
	}
}

type sel struct{ pkg, name string }

// selector names a called function: pkg.name, or "" and name.
func selector(e ast.Expr) sel {
	switch f := e.(type) {
	case *ast.Ident:
		return sel{"", f.Name}
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok {
			return sel{x.Name, f.Sel.Name}
		}
	}
	return sel{}
}
