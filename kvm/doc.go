// Package kvm is a thin, typed layer over the Linux KVM ioctl interface for
// x86-64 hosts.
//
// It holds no policy: it opens /dev/kvm, creates VMs and vCPUs that own their
// file descriptors and mappings, mirrors the kernel structures it needs (each
// size asserted at compile time), and decodes KVM_RUN exits into typed values.
// The parts of github.com/bobuhiro11/gokvm (pinned at f53faca) whose ioctl
// arguments are correct are used directly; the ioctls it lacks or gets wrong
// (KVM_SIGNAL_MSI, KVM_IRQ_LINE, irqfd, ioeventfd, KVM_ENABLE_CAP, sync
// registers, immediate_exit kicks, KVM_RUN without EINTR swallowing) are
// implemented here. Every use of package unsafe lives in a *_unsafe.go file.
//
// Nothing here is package-level mutable state: many VMs can live in one
// process.
package kvm
