// Command vmtest runs a command inside a small Linux virtual machine whose
// /dev/kvm works on any x86-64 host: QEMU's TCG emulates AMD SVM with
// nested paging, so kvm-amd loads inside it even where the host gives no
// KVM to this process (or where the caller asks for that path, with
// ARGOVISOR_TEST_VM=1). It is how `make test`, `make stress` and `make
// bench` run argovisor's KVM tests on machines without KVM.
//
// Everything the VM needs comes from Debian's registry and is kept under
// build/vm/ (docs/testing.md, "The VM path"): a kernel package (vmlinuz and
// the modules for KVM, virtio and 9p, unpacked, never installed), a static
// busybox for the init, and QEMU itself (unpacked with the libraries the
// host lacks, when the host has no qemu-system-x86). A second run fetches
// nothing.
//
// The VM shares the host's root file system read-only and the repository
// read-write over 9p, and runs the command in a chroot of the host's root,
// so test binaries built on the host (race builds need the host's C
// library) run inside unchanged and at the same paths. Nothing is compiled
// inside: TCG is slow. The command's output is the VM's serial console;
// vmtest exits with the command's exit status.
//
// Usage:
//
//	vmtest [flags] -- COMMAND [ARG...]   run COMMAND in the repository, inside the VM
//	vmtest fetch                          only fetch and unpack what the VM needs
package main
