// Package argo will hold the Argo hypervisor-mediated data exchange
// (Xen's argo_op, hypercall 39) as pure logic over a guest-memory interface.
// Until it lands, hypercall 39 returns -ENOSYS like any unknown hypercall.
package argo
