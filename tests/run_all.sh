#!/bin/bash
#
# tests/run_all.sh - run every test tier and print one summary line
#
#   tests/run_all.sh [unit] [regress] [cluster] [agent] [fuzz]  (default: all)
#
# Tiers:
#   unit     make -C tests/unit check      (cmocka: "[  PASSED  ] N test(s).")
#   regress  tests/regress/run.sh          (pg_regress: "N passed, N failed")
#   cluster  pytest tests/cluster          (multi-node: "N passed, N failed")
#   agent    pytest tests/agent            (paxosd agents over real nodes,
#                                           and a headless Chromium)
#   fuzz     make -C agent fuzz-smoke      (libFuzzer on the request parsers,
#                                           25 s: 1 passed or 1 failed)
#
# Expects the extension to be built and installed (make test does that).
# A tier is skipped, loudly, only while it has no tests at all; once it has
# some, anything that keeps it from reporting results counts as a failure.
# The last line of output is "N passed, N failed", the sum of all tiers; the
# exit status is non-zero if anything failed.
#
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=/usr/bin/python3
MAKE=${MAKE:-make}

LOGDIR=$(mktemp -d /tmp/pgp-tests.XXXXXX)
trap 'rm -rf "$LOGDIR"' EXIT

total_passed=0
total_failed=0
summary=()

# record TIER PASSED FAILED
record() {
	summary+=("$(printf '%-8s %s passed, %s failed' "$1" "$2" "$3")")
	total_passed=$((total_passed + $2))
	total_failed=$((total_failed + $3))
}

skip() {
	summary+=("$(printf '%-8s SKIPPED: %s' "$1" "$2")")
}

banner() {
	echo
	echo "=================== $1 ==================="
}

# Sum the numbers captured by a sed -E expression over a file.
sum_matches() {
	sed -nE "$1" "$2" | awk '{ s += $1 } END { print s + 0 }'
}

tier_unit() {
	local dir=$ROOT/tests/unit log=$LOGDIR/unit.log rc passed failed
	if [ -z "$(ls -A "$dir" 2>/dev/null)" ]; then
		skip unit "tests/unit is empty"
		return
	fi
	banner "unit tests (cmocka)"
	if [ ! -f "$dir/Makefile" ]; then
		echo "tests/unit has files but no Makefile"
		record unit 0 1
		return
	fi
	"$MAKE" --no-print-directory -C "$dir" check 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	passed=$(sum_matches 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' "$log")
	failed=$(sum_matches 's/^\[  FAILED  \] ([0-9]+) test\(s\).*/\1/p' "$log")
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		echo "unit: make check exited with status $rc"
		failed=1
	elif [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
		echo "unit: no cmocka results found in the output"
		failed=1
	fi
	record unit "$passed" "$failed"
}

tier_regress() {
	local dir=$ROOT/tests/regress log=$LOGDIR/regress.log rc last
	if ! compgen -G "$dir/sql/*.sql" >/dev/null && [ ! -f "$dir/schedule" ]
	then
		skip regress "no tests in tests/regress/sql"
		return
	fi
	banner "regression tests (pg_regress)"
	"$dir/run.sh" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	last=$(tail -n 1 "$log")
	if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		local passed=${BASH_REMATCH[1]} failed=${BASH_REMATCH[2]}
		if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
			failed=1
		fi
		record regress "$passed" "$failed"
	else
		echo "regress: run.sh exited with status $rc and no summary"
		record regress 0 1
	fi
}

# pytest_tier NAME DIR TITLE: run pytest on DIR and record its counts.
pytest_tier() {
	local name=$1 dir=$ROOT/$2 log=$LOGDIR/$1.log rc line
	if ! compgen -G "$dir/test_*.py" >/dev/null; then
		skip "$name" "no tests in $2"
		return
	fi
	banner "$3"
	(cd "$ROOT" && "$PYTHON" -m pytest -v -rfE -p no:cacheprovider \
		--durations=5 "$2") 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# The final "=== 3 passed, 1 failed, 1 error in 12.3s ===" line.
	line=$(grep -E '^=+ .* in [0-9.]+s' "$log" | tail -n 1)
	local passed failed errors
	passed=$(sed -nE 's/(^|.*[^0-9])([0-9]+) passed.*/\2/p' <<<"$line")
	failed=$(sed -nE 's/(^|.*[^0-9])([0-9]+) failed.*/\2/p' <<<"$line")
	errors=$(sed -nE 's/(^|.*[^0-9])([0-9]+) errors?.*/\2/p' <<<"$line")
	passed=${passed:-0}
	failed=$((${failed:-0} + ${errors:-0}))
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		echo "$name: pytest exited with status $rc"
		failed=1
	fi
	record "$name" "$passed" "$failed"
}

tier_cluster() {
	pytest_tier cluster tests/cluster "multi-node tests (pytest)"
}

tier_agent() {
	pytest_tier agent tests/agent "agent tests: paxosd, web client (pytest)"
}

tier_fuzz() {
	banner "fuzzing the agent's request parsers (libFuzzer)"
	if "$MAKE" --no-print-directory -C "$ROOT/agent" fuzz-smoke; then
		record fuzz 1 0
	else
		record fuzz 0 1
	fi
}

tiers=("$@")
[ ${#tiers[@]} -eq 0 ] && tiers=(unit regress cluster agent fuzz)
for t in "${tiers[@]}"; do
	case $t in
	unit | regress | cluster | agent | fuzz) "tier_$t" ;;
	*)
		echo "unknown tier: $t (unit, regress, cluster, agent, fuzz)" >&2
		exit 2
		;;
	esac
done

banner "summary"
for line in "${summary[@]}"; do
	echo "$line"
done
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
