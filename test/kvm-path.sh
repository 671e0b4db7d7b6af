#!/usr/bin/env bash
# Which way the KVM tests run on this machine: "native" where /dev/kvm
# opens, "vm" (inside QEMU/TCG with nested SVM, tools/vmtest) where it does
# not or where ARGOVISOR_TEST_VM=1 asks for it. With --describe, the line
# .ci/run and make test print: "KVM: native (Intel Xeon, kvm_pvm)".
set -uo pipefail

path=vm
if [ "${ARGOVISOR_TEST_VM:-}" != 1 ] && (exec 3<>/dev/kvm) 2>/dev/null; then
	path=native
fi
if [ "${1:-}" != --describe ]; then
	echo "$path"
	exit 0
fi
if [ "$path" = native ]; then
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 |
		sed -e 's/([^)]*)//g' -e 's/ Processor.*//' -e 's/ CPU.*//' -e 's/  */ /g' -e 's/ *$//')
	mods=$(cd /sys/module 2>/dev/null && ls -d kvm_pvm kvm_intel kvm_amd 2>/dev/null | paste -sd, -)
	echo "KVM: native (${cpu:-unknown CPU}, ${mods:-kvm})"
elif [ "${ARGOVISOR_TEST_VM:-}" = 1 ]; then
	echo "KVM: inside QEMU/TCG, nested SVM (ARGOVISOR_TEST_VM=1; this host's /dev/kvm is not used)"
else
	echo "KVM: inside QEMU/TCG, nested SVM (no usable /dev/kvm on this host)"
fi
