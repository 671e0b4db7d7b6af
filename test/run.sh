#!/usr/bin/env bash
# The test step of `make test`: go test -race over every package, with the
# KVM tests run natively where /dev/kvm works and otherwise inside a QEMU/TCG
# VM with nested SVM (ARGOVISOR_TEST_VM=1 takes the VM path anywhere).
#
# On the VM path the packages that hold KVM tests (KVM_PKGS) are compiled
# here with -race and their test binaries run inside the VM (tools/vmtest),
# at the same paths, against the same bin/argovisor; every other package
# runs here, where a KVM test would fail (ARGOVISOR_KVM_HOST_ONLY).
#
# Every KVM test leaves its outcome in build/kvm-tally (internal/testutil);
# the run fails if any KVM test was skipped or none ran, on either path.
# The last lines say which path ran and how many KVM tests it ran.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
go="${GO:-go}"
KVM_PKGS="./kvm ./vmm ./test"
# Each package's test binary gets this long inside the VM (a hang then
# ends with a goroutine dump rather than at the VM's own limit).
VM_PKG_TIMEOUT="${ARGOVISOR_VM_PKG_TIMEOUT:-45m}"

# Inside the VM: run the prebuilt test binaries one package at a time.
if [ "${1:-}" = --in-vm ]; then
	shift
	rc=0
	for p in $KVM_PKGS; do
		name=$(basename "$p")
		start=$(date +%s)
		(cd "$p" && "$repo/build/vmtest-bin/$name.test" -test.v -test.count=1 -test.timeout="$VM_PKG_TIMEOUT" "$@")
		r=$?
		if [ $r -eq 0 ]; then
			echo "ok   $p (inside the VM) $(($(date +%s) - start))s"
		else
			echo "FAIL $p (inside the VM) $(($(date +%s) - start))s, exit $r"
			rc=1
		fi
	done
	exit $rc
fi

path=$(test/kvm-path.sh)
describe=$(test/kvm-path.sh --describe)
tally="$repo/build/kvm-tally"
rm -rf "$tally" && mkdir -p "$tally" || exit 2
export ARGOVISOR_CLI="$repo/bin/argovisor" ARGOVISOR_CLI_RACE="$repo/bin/argovisor-race" ARGOVISOR_KVM_TALLY="$tally" ARGOVISOR_KVM_REQUIRED=1
echo "== $describe"
start=$(date +%s)
rc=0
# The VM runner's own tests (its module is tools/, outside ./...).
(cd tools && "$go" test -count=1 ./vmtest/...) || rc=1
if [ "$path" = native ]; then
	"$go" test -race -count=1 ./... || rc=1
else
	kvm_list=$("$go" list $KVM_PKGS) || exit 2
	host_pkgs=$("$go" list ./... | grep -vxF "$kvm_list")
	echo "== packages without KVM tests, here"
	ARGOVISOR_KVM_HOST_ONLY=1 "$go" test -race -count=1 $host_pkgs || rc=1
	echo "== packages with KVM tests ($KVM_PKGS), compiled here, run inside the VM"
	mkdir -p build/vmtest-bin
	for p in $KVM_PKGS; do
		"$go" test -c -race -o "build/vmtest-bin/$(basename "$p").test" "$p" || exit 2
		# Tests that re-run their binary under the seccomp filter want a
		# build without cgo (testutil.StaticTestBinary).
		if grep -qs StaticTestBinary "$p"/*_test.go; then
			CGO_ENABLED=0 "$go" test -c -o "build/vmtest-bin/$(basename "$p").static.test" "$p" || exit 2
		fi
	done
	export ARGOVISOR_STATIC_TESTBIN_DIR="$repo/build/vmtest-bin"
	make -s bin/vmtest || exit 2
	bin/vmtest -timeout 58m -- test/run.sh --in-vm || rc=1
fi
secs=$(($(date +%s) - start))

# The KVM tests' own account of themselves.
read -r ran passed failed skipped < <(cat "$tally"/* 2>/dev/null | sort -u -k2 |
	awk '{ n++; c[$1]++ } END { printf "%d %d %d %d\n", n, c["PASS"], c["FAIL"], c["SKIP"] }')
echo "== $describe: $ran KVM tests ran ($passed passed, $failed failed, $skipped skipped); go test took ${secs}s"
if [ "$skipped" -ne 0 ]; then
	echo "== FAIL: $skipped KVM tests skipped: every KVM test must run"
	grep -h '^SKIP' "$tally"/* | sed 's/^/   /'
	rc=1
fi
if [ "$ran" -eq 0 ]; then
	echo "== FAIL: no KVM test ran"
	rc=1
fi
exit $rc
