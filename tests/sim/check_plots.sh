#!/usr/bin/env bash
# hvsim plot: every kind renders to PNG and SVG from real outputs (a run, a sweep, a
# sensitivity ranking), with its axis labels in the SVG; bad inputs are one line, exit 2,
# no file. 77 when Debian's python3-matplotlib is missing (tools/setup.sh installs it).
# Usage: check_plots.sh HVSIM SRCDIR WORKDIR
set -euo pipefail
hvsim=$1 src=$2 work=$3
rm -rf "$work"; mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
"${HVSIM_PYTHON:-/usr/bin/python3}" -c 'import matplotlib' 2>/dev/null || { echo "no matplotlib"; exit 77; }

"$hvsim" run "$src/scenarios/quickstart.json" -o "$work/qs" --quiet --no-progress
"$hvsim" run "$src/scenarios/examples/design-example-snp-convert-2m.json" -o "$work/snp" --quiet --no-progress
"$hvsim" sweep "$src/tests/sim/data/sweep.json" -o "$work/sweep" -j 2 >/dev/null
"$hvsim" sensitivity "$src/tests/sim/data/passing.json" -o "$work/sens" -j 2 >/dev/null
"$hvsim" compare "$src/tests/sim/data/passing.json" --platform zen4-genoa,sapphire-rapids -o "$work/cmp" -j 2 >/dev/null

check() {   # check NAME "label expected in the SVG" ARGS...
  local name=$1 label=$2; shift 2
  for ext in png svg; do
    "$hvsim" plot "$@" -o "$work/$name.$ext" >/dev/null || fail "$name.$ext: exit $?"
    [ "$(stat -c %s "$work/$name.$ext")" -gt 8000 ] || fail "$name.$ext is nearly empty"
  done
  [ "$(head -c 8 "$work/$name.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$name.png is no PNG"
  grep -q "$label" "$work/$name.svg" || fail "$name.svg has no '$label'"
}
check breakdown "cycles per fault" "$work/qs/results.json" "$work/snp/results.json"
check cdf "fraction of faults" --kind cdf "$work/qs/results.json"
check conversion "cycles per page" --kind conversion "$work/snp/results.json"
check sweep "mem.l1d.hit_cycles" "$work/sweep/sweep.csv" --metric sim.cycles
check tornado "change of sim.cycles" "$work/sens/sensitivity.json"
check compare "sapphire-rapids" "$work/cmp/compare.json" --metric sim.cycles

set +e
bad() {   # bad "expected message" ARGS...
  local msg=$1; shift
  err=$("$hvsim" plot "$@" 2>&1); rc=$?
  [ $rc -eq 2 ] && [[ $err == *"$msg"* ]] || fail "plot $*: exit $rc: $err"
}
bad "expected results.json" "$work/sweep/sweep.json" -o "$work/x.png"
bad "cannot open" "$work/none.json" -o "$work/x.png"
bad "expected a .png or .svg" "$work/qs/results.json" -o "$work/x.pdf"
bad "no successful conversions" --kind conversion "$work/qs/results.json" -o "$work/x.png"
bad "expected a metric of the sweep" "$work/sweep/sweep.csv" --metric tlb.nope -o "$work/x.png"
[ ! -e "$work/x.png" ] || fail "a refused plot left a file"
echo "plots: ok"
