#!/usr/bin/env bash
# Sets up, builds and runs every test: once on a release build and once on
# an AddressSanitizer + UndefinedBehaviorSanitizer build (without the
# real-Podman suites, see below), then the JavaScript client's. Ends with the
# combined summary line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
scripts/setup-containers.sh || exit 1  # the container tests start a real Podman API service

passed=0
failed=0
status=0

# run_suite NAME TREE SUITES: configures (scripts/configure.sh, every option
# stated), builds and runs ctest in build/TREE, and checks that each of SUITES
# (ctest labels, one per test executable) has tests: a tree that lists fewer
# suites than it should fails with a message naming the tree and the suite.
run_suite() {
  local name=$1 tree=$2 suites=$3
  local dir=build/$tree
  echo "=== $name: build"
  if ! { scripts/configure.sh "$tree" && cmake --build "$dir"; }; then
    echo "=== $name: BUILD FAILED"
    failed=$((failed + 1))
    status=1
    return
  fi
  local suite missing=()
  for suite in $suites; do
    (cd "$dir" && ctest -N -L "^$suite\$") | grep -qE '^Total Tests: [1-9]' || missing+=("$suite")
  done
  if ((${#missing[@]})); then
    echo "=== $name: $dir lists no tests for suite(s) ${missing[*]}: the tree was configured or built without them (see scripts/configure.sh)"
    failed=$((failed + ${#missing[@]}))
    status=1
  fi
  echo "=== $name: test"
  local log="$dir/ctest.log"
  (cd "$dir" && ctest --output-on-failure --timeout 300 -j2) 2>&1 | tee "$log"
  local summary total bad
  summary=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [ -z "$summary" ]; then
    echo "=== $name: ctest in $dir printed no summary (no tests found, or ctest failed): counted as one failure"
    failed=$((failed + 1))
    status=1
    return
  fi
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
  bad=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$summary")
  passed=$((passed + total - bad))
  failed=$((failed + bad))
  [ "$bad" -eq 0 ] || status=1
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite release release "unit daemon integration examples containers container-it repl scripts package fuzz-replay"
# The sanitizer tree runs every test except the real-Podman suites: those
# take minutes of mostly waiting on containers, serially, and the code they
# drive is covered under the sanitizers by the unit tests' in-memory engine.
# That keeps a CI run on 2 cores well under 30 minutes.
run_suite sanitizers asan "unit daemon integration examples fuzz-replay"

# The libFuzzer targets (tests/fuzz), 10 s each on their own clang build;
# one count per target. Longer runs: tests/fuzz/run.sh SECONDS.
echo "=== fuzz: build and run"
fuzz_log=build/fuzz-run.log
mkdir -p build
tests/fuzz/run.sh 10 2>&1 | tee "$fuzz_log"
fuzz_summary=$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed$' "$fuzz_log" | tail -n 1)
if [ -z "$fuzz_summary" ]; then
  failed=$((failed + 1))
  status=1
else
  fuzz_pass=$(sed -E 's/^fuzz: ([0-9]+) passed.*/\1/' <<<"$fuzz_summary")
  fuzz_fail=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$fuzz_summary")
  passed=$((passed + fuzz_pass))
  failed=$((failed + fuzz_fail))
  [ "$fuzz_fail" -eq 0 ] || status=1
fi

# The JavaScript client (clients/js) against the release registryd; a test
# file that cannot run at all counts as one failure.
echo "=== js client: test"
js_log=build/release/js-client.tap
scripts/test-js.sh build/release/registryd "$js_log"
js_pass=$(grep -E '^# pass [0-9]+$' "$js_log" | tail -n 1 | cut -d' ' -f3)
js_fail=$(awk '/^# (fail|cancelled) [0-9]+$/ { n += $3 } END { print n + 0 }' "$js_log")
if [ -z "$js_pass" ]; then
  echo "=== js client: $js_log has no '# pass N' line (npm ci or node --test could not run): counted as one failure"
  js_pass=0
  js_fail=1
fi
passed=$((passed + js_pass))
failed=$((failed + js_fail))
[ "$js_fail" -eq 0 ] || status=1

echo "$passed passed, $failed failed"
exit $status
