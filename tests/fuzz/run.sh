#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; build/fuzz) and runs each
# for SECONDS (default 10: the CI step of scripts/test.sh), starting from its
# seed corpus (tests/fuzz/corpus/<target>/, read only: new inputs go to
# build/fuzz/corpus/<target>/). A crash, leak or sanitizer report fails the
# target and leaves the input in build/fuzz/artifacts/<target>/; to keep it
# as a regression input, copy it to tests/fuzz/regressions/<target>/ (ctest
# replays those: "fuzz-replay: <target>") and fix what it found.
#
#   tests/fuzz/run.sh              10 s per target
#   tests/fuzz/run.sh 600          ten minutes per target
#   tests/fuzz/run.sh 60 config    only the named targets
#   tests/fuzz/run.sh build        build every target, run none
#
# Prints one line per target ("fuzz <target>: ok, N executions" or
# "fuzz <target>: FAILED ...") and ends with "fuzz: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
shift || true
all_targets=(websocket_frame websocket_connection request_parser record_decoders package_manifest package_archive config)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
build=build/fuzz
build_only=0
if [ "$seconds" = build ]; then
  build_only=1
  targets=("${all_targets[@]}")
fi

if ! { cmake -S . -B "$build" -G Ninja -DREGISTRY_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
         -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
       cmake --build "$build" --target "${targets[@]/#/fuzz_}"; }; then
  echo "fuzz: build failed"
  echo "fuzz: 0 passed, ${#targets[@]} failed"
  exit 1
fi
[ $build_only -eq 0 ] || exit 0

passed=0
failed=0
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t
  artifacts=$build/artifacts/$t
  log=$build/$t.log
  mkdir -p "$corpus" "$artifacts"
  # -rss_limit_mb: a leak or a runaway allocation is a finding, not an OOM of the machine.
  "$build/tests/fuzz/fuzz_$t" "$corpus" "tests/fuzz/corpus/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -n 1)
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: ok, ${execs:-?} executions in ${seconds}s"
    passed=$((passed + 1))
  else
    echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} executions; input in $artifacts/, log $log"
    grep -m 5 -E 'ERROR|SUMMARY|runtime error|deadly signal' "$log" | sed 's/^/  /'
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
