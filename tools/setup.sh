#!/usr/bin/env bash
# Installs what hvsim needs from Debian's packages (only what is missing) and builds it
# into build/ (Release with debug info). Safe to run again. Arguments name the targets to
# build (default: the hvsim CLI and the benchmark; "all" for everything, tests included).
# HVSIM_EXTRA_PKGS names further Debian packages to install (tools/fuzz.sh: clang).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake ninja-build pkg-config libsystemc-dev libboost-graph-dev catch2
      nlohmann-json3-dev libcli11-dev libfmt-dev libssl-dev libdivide-dev python3 python3-matplotlib parallel protobuf-compiler ${HVSIM_EXTRA_PKGS:-})
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

build=${HVSIM_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${HVSIM_CMAKE_ARGS:-} >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(hvsim hvsim-bench)
if [ "${targets[*]}" = "all" ]; then
  cmake --build "$build" -j"$(nproc)"
else
  cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
fi
