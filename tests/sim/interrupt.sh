#!/usr/bin/env bash
# SIGINT / SIGTERM during `hvsim run`: the run stops early, writes results.json with
# status "interrupted" and the steps done so far, and exits 128 + the signal number.
# Usage: interrupt.sh HVSIM SCENARIO WORKDIR
set -u
hvsim=$1 scenario=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
fail() { echo "interrupt: $*"; exit 1; }

for sig in INT TERM; do
  out=$work/$sig
  "$hvsim" run --no-progress -o "$out" "$scenario" >"$work/$sig.stdout" 2>"$work/$sig.stderr" &
  pid=$!
  # Let it get into the long step (the first step takes well under a second).
  sleep 2
  kill -0 "$pid" 2>/dev/null || fail "SIG$sig: hvsim ended before the signal: $(cat "$work/$sig.stderr")"
  kill -s "$sig" "$pid"
  # It must stop promptly: within 30 s, not after the hours the step asks for.
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fail "SIG$sig: still running 30 s after the signal"; fi
  wait "$pid"
  rc=$?
  want=$((128 + $(kill -l "$sig")))
  [ "$rc" -eq "$want" ] || fail "SIG$sig: exit $rc, expected $want; stderr: $(cat "$work/$sig.stderr")"
  grep -q "interrupted by SIG$sig in step 1 of 3; results so far in" "$work/$sig.stderr" || fail "SIG$sig: no message: $(cat "$work/$sig.stderr")"
  [ -f "$out/results.json" ] || fail "SIG$sig: no results.json"
  [ ! -e "$out/results.json.tmp" ] || fail "SIG$sig: a temporary file was left behind"
  python3 - "$out/results.json" <<'PY' || fail "SIG$sig: results.json is not what an interrupted run writes"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "interrupted", r["status"]
steps = r["steps"]
# The first step completed, the second was cut short, the third never started.
assert [s["index"] for s in steps] == [0, 1], steps
assert steps[0]["result"] == "ok", steps[0]
assert steps[-1]["result"] == "interrupted", steps[-1]
assert 0 < steps[-1]["accesses"] < 2 * 100000000000, steps[-1]
assert r["failures"] == [], r["failures"]        # a cut-short step is not a failed one
assert r["metrics"]["accesses"] > 0
PY
done
# Several files: the signal reaches only the parent (as a scheduler's SIGTERM may); it is
# passed on to the child running the first file, which writes its results, and the second
# file never starts.
out=$work/multi
"$hvsim" run --no-progress -q -o "$out" "$scenario" "$(dirname "$scenario")/passing.json" 2>"$work/multi.stderr" &
pid=$!
sleep 2
kill -s TERM "$pid"
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fail "several files: still running 30 s after SIGTERM"; fi
wait "$pid"
rc=$?
[ "$rc" -eq 143 ] || fail "several files: exit $rc, expected 143; stderr: $(cat "$work/multi.stderr")"
grep -q '"status": "interrupted"' "$out/long_running/results.json" || fail "several files: first run not interrupted"
[ ! -e "$out/passing" ] || fail "several files: the second file ran after the signal"
echo "interrupt: SIGINT and SIGTERM both wrote interrupted results"
