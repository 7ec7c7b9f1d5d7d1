#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, with ASan + UBSan) into build-fuzz/ and runs each
# for a bounded time: the scenario loader on scenario text (seeds: tests/fuzz/corpus/loader
# and every shipped scenario) and random uAPI sequences with the invariant checks on
# (seeds: tests/fuzz/corpus/uapi). A finding stops the run with exit 1 and leaves the input
# in build-fuzz/findings/; see docs/fuzzing.md for turning it into a regression test.
#   tools/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}

HVSIM_EXTRA_PKGS="clang libclang-rt-dev" tools/setup.sh >/dev/null   # the ordinary dependencies and clang

build=build-fuzz   # the same configuration as tools/test.sh --sanitize, which builds everything there
CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHVSIM_SANITIZE=ON -DHVSIM_FUZZ=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_loader fuzz_uapi

mkdir -p "$build/corpus/loader" "$build/corpus/uapi" "$build/findings"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run() {   # target, then seed folders
  local t=$1; shift
  echo "fuzz: $t for ${secs}s"
  local rc=0
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -max_len=16384 \
    -entropic=0 -print_final_stats=1 -artifact_prefix="$build/findings/$t-" "$build/corpus/$t" "$@" \
    >"$build/fuzz-$t.log" 2>&1 || rc=$?
  grep -E "^(#[0-9]+ +(INITED|DONE)|Done|stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|SUMMARY|hvsim fuzz finding|Test unit written)" \
    "$build/fuzz-$t.log" || true
  ((rc == 0)) || tail -n 60 "$build/fuzz-$t.log"
  return $rc
}
status=0
run loader tests/fuzz/corpus/loader scenarios || status=1
run uapi tests/fuzz/corpus/uapi || status=1
if ((status)); then
  echo "fuzz: FINDINGS in $build/findings:"; ls -l "$build/findings"
fi
exit $status
