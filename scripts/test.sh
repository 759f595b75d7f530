#!/usr/bin/env bash
# Sets up, builds and runs every test: once on a release build and once on
# an AddressSanitizer + UndefinedBehaviorSanitizer build (without the
# real-Podman suites, see below), the libFuzzer targets for 10 s each, then
# the JavaScript client's. Ends with the combined summary line
# "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
scripts/setup-containers.sh || exit 1  # the container tests start a real Podman API service

passed=0
failed=0
status=0

# build_tree TREE: configures (scripts/configure.sh, every option stated) and
# builds build/TREE.
build_tree() {
  scripts/configure.sh "$1" && cmake --build "build/$1"
}

# run_tests NAME TREE SUITES: runs ctest in build/TREE and counts its tests,
# after checking that each of SUITES (ctest labels, one per test executable)
# has tests: a tree that lists fewer suites than it should fails with a
# message naming the tree and the suite.
run_tests() {
  local name=$1 tree=$2 suites=$3
  local dir=build/$tree
  local suite missing=()
  for suite in $suites; do
    (cd "$dir" && ctest -N -L "^$suite\$") | grep -qE '^Total Tests: [1-9]' || missing+=("$suite")
  done
  if ((${#missing[@]})); then
    echo "=== $name: $dir lists no tests for suite(s) ${missing[*]}: the tree was configured or built without them (see scripts/configure.sh)"
    failed=$((failed + ${#missing[@]}))
    status=1
  fi
  echo "=== $name: test (at ${SECONDS} s)"
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

build_failed() {
  echo "=== $1: BUILD FAILED"
  failed=$((failed + 1))
  status=1
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p build
echo "=== release: build (at ${SECONDS} s)"
release_built=1
build_tree release || { build_failed release; release_built=0; }

# The sanitizer tree (every test except the real-Podman suites: those take
# minutes of mostly waiting on containers, and the code they drive is covered
# under the sanitizers by the unit tests' in-memory engine) and the libFuzzer
# targets' clang tree build in the background at a low priority while the
# release tests run: those mostly wait on processes, containers and timers,
# and leave a core idle. The priority keeps the tests' own timing as it was.
rm -f build/asan-build.rc build/fuzz-build.rc
# Each phase says when it started (bash's SECONDS): what a slow run spent its time on.
(
  nice -n 10 bash -c "$(declare -f build_tree); build_tree asan" >build/asan-build.log 2>&1
  rc=$?
  echo "(built by ${SECONDS} s)" >>build/asan-build.log
  echo $rc >build/asan-build.rc
  nice -n 10 tests/fuzz/run.sh build >build/fuzz-build.log 2>&1
  rc=$?
  echo "(built by ${SECONDS} s)" >>build/fuzz-build.log
  echo $rc >build/fuzz-build.rc
) &
background=$!

# wait_build NAME: waits for the background build's exit status file, then
# prints its log; true if it built.
wait_build() {
  while [ ! -f "build/$1-build.rc" ] && kill -0 "$background" 2>/dev/null; do sleep 2; done
  echo "=== $1: build (in the background; waited for until ${SECONDS} s)"
  cat "build/$1-build.log"
  [ "$(cat "build/$1-build.rc" 2>/dev/null)" = 0 ]
}

[ $release_built -eq 0 ] || run_tests release release "unit daemon integration examples containers container-it repl scripts package fuzz-replay"
# The JavaScript client (clients/js) against the release registryd (while
# the background builds go on); a test file that cannot run at all counts as
# one failure.
echo "=== js client: test (at ${SECONDS} s)"
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

if wait_build asan; then
  run_tests sanitizers asan "unit daemon integration examples fuzz-replay"
else
  build_failed sanitizers
fi

# The libFuzzer targets, 10 s each; one count per target. Longer runs:
# tests/fuzz/run.sh SECONDS.
wait_build fuzz
wait "$background"
echo "=== fuzz: run (at ${SECONDS} s)"
fuzz_log=build/fuzz-run.log
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

echo "=== done in ${SECONDS} s"
echo "$passed passed, $failed failed"
exit $status
