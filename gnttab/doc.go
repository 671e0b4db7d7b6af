// Package gnttab will hold Xen v1 grant tables (hypercall 20) as pure logic
// over guest-memory and mapping interfaces. Until it lands, hypercall 20
// returns -ENOSYS like any unknown hypercall.
package gnttab
