#!/usr/bin/env python3
"""hvsim sensitivity: every cost and latency parameter scaled x0.5 and x2, ranked by how far
it moves the metric; the ones that move nothing listed as such; bad metrics refused (exit 2).
Usage: check_sensitivity.py HVSIM SCENARIO WORKDIR"""

import json
import subprocess
import sys


def main():
    hvsim, scenario, work = sys.argv[1:4]
    errors = []
    subprocess.run([hvsim, "sensitivity", scenario, "-o", work, "-j", "2", "-m", "sim.cycles"], check=True,
                   stdout=subprocess.DEVNULL)
    rep = json.load(open(f"{work}/sensitivity.json"))
    rows, still = rep["rows"], set(rep["moves_nothing"])
    names = [r["parameter"] for r in rows]
    scores = [max(abs(x) for x in r["moves"]["sim.cycles"] if x is not None) for r in rows]
    if scores != sorted(scores, reverse=True): errors.append(f"rows not ranked by their largest move: {scores}")
    if any(s == 0 for s in scores): errors.append("a row that moves nothing is ranked")
    if set(names) & still: errors.append(f"both ranked and 'moves nothing': {set(names) & still}")
    # A 4 KiB read of a page nobody mapped: the data access and the fault's entry and exit cost
    # time; a WBINVD (legacy SEV teardown only) and a 2M zeroing (a 4K fault) cannot.
    for must in ("mem.l1d.hit_cycles", "cost.vmexit", "cost.vmentry"):
        if must not in names: errors.append(f"{must} is not ranked")
    for never in ("cost.wbinvd", "cost.zero_2m"):
        if never not in still: errors.append(f"{never} is not listed as moving nothing")
    everything = set(names) | still | set(rep["zero_at_preset"])
    if not all(n.startswith("cost.") or n.endswith("_cycles") or n.endswith("_ps") for n in everything):
        errors.append(f"a parameter that is neither a cost nor a latency: {sorted(everything)}")
    for r in rows:
        if r["value"] * 0.5 != float(r["low"]) and abs(float(r["low"]) - r["value"] * 0.5) > 1:
            errors.append(f"{r['parameter']}: low {r['low']} for {r['value']}")
    text = open(f"{work}/sensitivity.txt").read()
    if "moves nothing" not in text or "cost.wbinvd" not in text: errors.append("the table does not list what moves nothing")
    bad = subprocess.run([hvsim, "sensitivity", scenario, "-o", f"{work}-bad", "-m", "sim.cycels"],
                         capture_output=True, text=True)
    if bad.returncode != 2 or "did you mean 'sim.cycles'" not in bad.stderr:
        errors.append(f"unknown metric: exit {bad.returncode}: {bad.stderr.strip()}")
    for e in errors: print(e)
    print(f"{len(errors)} problems; {len(rows)} ranked, {len(still)} move nothing")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
