#!/usr/bin/env bash
# Builds hvsim and runs the whole test suite (unit tests, scenario tests, the real-KVM
# comparison where /dev/kvm exists). --sanitize: the same under AddressSanitizer +
# UndefinedBehaviorSanitizer, built with clang into build-fuzz/, the tree whose libFuzzer
# targets tools/fuzz.sh runs (one instrumented build serves both). The sanitizer run leaves
# out the tests labelled `workflow` (tests/sim/CMakeLists.txt: they rerun scenarios the suite
# already runs, with other numbers, or drive matplotlib).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  export HVSIM_BUILD_DIR=build-fuzz
  export HVSIM_EXTRA_PKGS="clang libclang-rt-dev"
  export HVSIM_CMAKE_ARGS="-DHVSIM_SANITIZE=ON -DHVSIM_FUZZ=ON"
  export CXX=clang++
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
exclude=()
[ "${1:-}" = "--sanitize" ] && exclude=(-LE workflow)
tools/setup.sh all
ctest --test-dir "${HVSIM_BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "${exclude[@]}"
