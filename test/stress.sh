#!/usr/bin/env bash
# make stress: every KVM integration test, STRESS_COUNT (30) times in a row
# under -race, while the unit tests of argo, gnttab, memop and vmm run in a
# loop beside it as load. Prints, per test, how many of its runs passed;
# exits non-zero if any run failed or any test did not run STRESS_COUNT
# times. STRESS_RUN=REGEX narrows it to some tests.
#
# The test binaries are built here, then run natively where /dev/kvm works
# and inside the QEMU/TCG VM otherwise or with ARGOVISOR_TEST_VM=1
# (test/run.sh, tools/vmtest). Logs go to build/stress/.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
count="${STRESS_COUNT:-30}"
run="${STRESS_RUN:-.}"
go="${GO:-go}"
bins="$repo/build/stress-bin"
LOAD_PKGS="./argo ./gnttab ./memop ./vmm"

# The measuring half: prebuilt binaries only (nothing compiles in the VM).
if [ "${1:-}" = --run ]; then
	out="$2"
	# The load runs in its own process group so that it can be ended whole.
	setsid bash -c '
		while :; do
			for p in '"$LOAD_PKGS"'; do
				(cd "$p" && "'"$bins"'/$(basename "$p").test" -test.count=1 >>"'"$out"'/load.log" 2>&1)
			done
		done' &
	loader=$!
	trap 'kill -- -$loader 2>/dev/null; wait 2>/dev/null' EXIT
	start=$(date +%s)
	(cd test && ARGOVISOR_CLI="$repo/bin/argovisor" "$bins/test.test" -test.count="$count" -test.timeout=0 \
		-test.run "$run" -test.v) >"$out/stress.log" 2>&1
	rc=$?
	echo "stress: finished in $(($(date +%s) - start)) s (test binary exit $rc)"
	# Top-level tests only (subtests are part of their parent's run).
	awk '/^--- (PASS|FAIL|SKIP): Test[^\/ ]+ / { n[$3]++; r[$3 " " $2]++ }
	     END { for (t in n) printf "%-40s %3d/%d passed%s%s\n", t, r[t " PASS:"], n[t],
	           r[t " FAIL:"] ? sprintf(", %d FAILED", r[t " FAIL:"]) : "",
	           r[t " SKIP:"] ? sprintf(", %d SKIPPED", r[t " SKIP:"]) : "" }' "$out/stress.log" | sort | tee "$out/summary"
	bad=$(awk -v c="$count" '{ split($2, a, "/"); if (a[1] != c || a[2] != c) print }' "$out/summary")
	if [ "$rc" -ne 0 ] || [ -n "$bad" ] || ! [ -s "$out/summary" ]; then
		echo "stress: FAILED — see $out/stress.log"
		grep -E '^(--- FAIL|    .*_test.go)' "$out/stress.log" | head -40
		exit 1
	fi
	echo "stress: every test passed $count/$count"
	exit 0
fi

out="$repo/build/stress/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out" "$bins" || exit 2
"$go" test -c -race -o "$bins/test.test" ./test || exit 2
for p in $LOAD_PKGS; do
	"$go" test -c -race -o "$bins/$(basename "$p").test" "$p" || exit 2
done
echo "stress: $(test/kvm-path.sh --describe)"
echo "stress: $count runs of each test in ./test/ matching /$run/ under -race, with the unit tests of $LOAD_PKGS in a loop as load (logs in $out)"
if [ "$(test/kvm-path.sh)" = native ]; then
	exec test/stress.sh --run "$out"
fi
make -s bin/vmtest || exit 2
exec bin/vmtest -- test/stress.sh --run "$out"
