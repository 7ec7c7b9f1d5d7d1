#!/usr/bin/env bash
# hvsim sweep past one machine: --emit parallel runs through GNU parallel for real, --emit
# slurm's array script runs task by task as Slurm would start it, --collect gathers partial
# and complete sweeps (missing points, rerun list), and the collected table equals the one a
# local sweep writes. Usage: sweep_cluster.sh HVSIM SWEEP_FILE WORKDIR
set -euo pipefail
hvsim=$1 sweep=$2 work=$3
rm -rf "$work"; mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v parallel >/dev/null || { echo "GNU parallel is not installed (tools/setup.sh installs it)"; exit 77; }

# The reference: the same sweep run here.
"$hvsim" sweep "$sweep" -o "$work/local" -j 2 >/dev/null || fail "local sweep"
[ -f "$work/local/sweep.json" ] || fail "local sweep wrote no manifest"

# GNU parallel: nothing has run yet, so --collect lists every point as missing (exit 1).
"$hvsim" sweep "$sweep" --emit parallel "$work/par" >/dev/null || fail "emit parallel"
[ "$(wc -l < "$work/par/jobs.txt")" -eq 2 ] || fail "jobs.txt: $(cat "$work/par/jobs.txt")"
if "$hvsim" sweep --collect "$work/par" >/dev/null; then fail "collect of an unrun sweep exited 0"; fi
[ "$(wc -l < "$work/par/rerun.txt")" -eq 2 ] || fail "rerun.txt of an unrun sweep: $(cat "$work/par/rerun.txt")"
grep -q ',missing$' "$work/par/sweep.csv" || fail "sweep.csv marks no missing point"
# Run half, collect: one missing, and the rerun list names exactly that point.
head -n 1 "$work/par/jobs.txt" | parallel --will-cite --jobs 1 || fail "parallel (first point)"
if "$hvsim" sweep --collect "$work/par" >/dev/null; then fail "collect with a missing point exited 0"; fi
[ "$(wc -l < "$work/par/rerun.txt")" -eq 1 ] || fail "rerun.txt: $(cat "$work/par/rerun.txt")"
cmp -s "$work/par/rerun.txt" <(sed -n 2p "$work/par/jobs.txt") || fail "rerun.txt is not the second point"
parallel --will-cite --jobs 2 :::: "$work/par/rerun.txt" || fail "parallel (rerun)"
"$hvsim" sweep --collect "$work/par" >/dev/null || fail "collect of a complete sweep"
cmp -s "$work/par/sweep.csv" "$work/local/sweep.csv" || fail "collected table differs from the local one"
[ ! -s "$work/par/rerun.txt" ] || fail "rerun.txt of a complete sweep is not empty"

# Slurm: the array covers every point; each task runs its line of jobs.txt.
"$hvsim" sweep "$sweep" --emit slurm "$work/slurm" >/dev/null || fail "emit slurm"
grep -qx '#SBATCH --array=0-1' "$work/slurm/sweep.sbatch" || fail "array range: $(grep array "$work/slurm/sweep.sbatch")"
if bash "$work/slurm/sweep.sbatch" 2>/dev/null; then fail "the array script ran without SLURM_ARRAY_TASK_ID"; fi
if SLURM_ARRAY_TASK_ID=2 bash "$work/slurm/sweep.sbatch" 2>/dev/null; then fail "task 2 of a 2-point sweep ran"; fi
for t in 0 1; do SLURM_ARRAY_TASK_ID=$t bash "$work/slurm/sweep.sbatch" || fail "array task $t"; done
"$hvsim" sweep --collect "$work/slurm" >/dev/null || fail "collect of the Slurm sweep"
cmp -s "$work/slurm/sweep.csv" "$work/local/sweep.csv" || fail "Slurm table differs from the local one"

# Bad input: unknown metric, unknown emit kind, a folder that is no sweep.
printf '{"scenario": "%s", "grid": {"cpu.data_access_cycles": [4]}, "metrics": ["tlb.mises"]}' \
  "$(dirname "$sweep")/passing.json" > "$work/bad_metric.json"
set +e
err=$("$hvsim" sweep "$work/bad_metric.json" -o "$work/bad" 2>&1); rc=$?
[ $rc -eq 2 ] && [[ $err == *"/metrics/0"*"did you mean 'tlb.misses'"* ]] || fail "unknown metric: $rc $err"
[ ! -e "$work/bad" ] || fail "an unknown metric still created the output folder"
err=$("$hvsim" sweep "$sweep" --emit slrum "$work/x" 2>&1); rc=$?
[ $rc -eq 2 ] && [[ $err == *"did you mean 'slurm'"* ]] || fail "--emit slrum: $rc $err"
err=$("$hvsim" sweep --collect "$work/local/0" 2>&1); rc=$?
[ $rc -eq 2 ] && [[ $err == *"sweep.json"* ]] || fail "--collect of a non-sweep folder: $rc $err"
echo "sweep past one machine: ok"
