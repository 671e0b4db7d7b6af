#!/usr/bin/env bash
# make stress: every KVM integration test, STRESS_COUNT (30) times in a row
# under -race, while a full `go test -race ./...` loop runs beside it as
# load. Prints, per test, how many of its runs passed; exits non-zero if any
# run failed or any test did not run STRESS_COUNT times.
set -uo pipefail
cd "$(dirname "$0")/.."
count="${STRESS_COUNT:-30}"
run="${STRESS_RUN:-.}"
go="${GO:-go}"
out="$(mktemp -d)"

if ! [ -c /dev/kvm ] || ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "stress: /dev/kvm is not usable here: the integration tests would only skip, so there is nothing to stress" >&2
	exit 2
fi

# The load runs in its own process group so that it can be ended whole.
setsid bash -c 'while :; do "$0" test -race -count=1 ./... >"$1" 2>&1; done' "$go" "$out/load.log" &
loader=$!
trap 'kill -- -$loader 2>/dev/null; wait 2>/dev/null' EXIT

echo "stress: $count runs of each test in ./test/ under -race, with a go test -race ./... loop as load (logs in $out)"
start=$(date +%s)
"$go" test -race -count="$count" -timeout 0 -run "$run" -v ./test/ >"$out/stress.log" 2>&1
rc=$?
echo "stress: finished in $(( $(date +%s) - start )) s (go test exit $rc)"

# Top-level tests only (subtests are part of their parent's run).
awk '/^--- (PASS|FAIL|SKIP): Test[^\/ ]+ / { n[$3]++; r[$3 " " $2]++ }
     END { for (t in n) printf "%-40s %3d/%d passed%s%s\n", t, r[t " PASS:"], n[t],
           r[t " FAIL:"] ? sprintf(", %d FAILED", r[t " FAIL:"]) : "",
           r[t " SKIP:"] ? sprintf(", %d SKIPPED", r[t " SKIP:"]) : "" }' "$out/stress.log" | sort | tee "$out/summary"
bad=$(awk -v c="$count" '{ split($2, a, "/"); if (a[1] != c || a[2] != c) print }' "$out/summary")
if [ "$rc" -ne 0 ] || [ -n "$bad" ]; then
	echo "stress: FAILED — see $out/stress.log"
	grep -E '^(--- FAIL|    .*_test.go)' "$out/stress.log" | head -40
	exit 1
fi
echo "stress: every test passed $count/$count"
