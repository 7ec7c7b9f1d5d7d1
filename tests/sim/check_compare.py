#!/usr/bin/env python3
"""hvsim compare: one workload per platform x VM type, the same figures side by side; a column
that cannot run says why; bad lists are exit 2. Also: platform and vm.type can be swept.
Usage: check_compare.py HVSIM SRCDIR WORKDIR"""

import csv
import json
import os
import subprocess
import sys


def main():
    hvsim, src, work = sys.argv[1:4]
    errors = []
    scen = os.path.abspath(os.path.join(src, "scenarios/examples/design-example-snp-convert-2m.json"))
    out = subprocess.run([hvsim, "compare", scen, "--platform", "zen4-genoa,sapphire-rapids", "--vm-type",
                          "default,sw_protected", "-o", f"{work}/cmp", "-j", "2"], capture_output=True, text=True)
    if out.returncode != 0:
        errors.append(f"compare: exit {out.returncode}: {out.stderr}")
    rep = json.load(open(f"{work}/cmp/compare.json"))
    cols = {c["name"]: c for c in rep["columns"]}
    want = ["zen4-genoa/default", "zen4-genoa/sw_protected", "sapphire-rapids/default", "sapphire-rapids/sw_protected"]
    if list(cols) != want:
        errors.append(f"columns {list(cols)}")
    for name in want:
        c, cyc = cols.get(name, {}), rep["table"]["sim.cycles"].get(name)
        if name.endswith("/default"):
            # A default VM has no private memory: the scenario's private range is refused.
            if c.get("status") != "not run" or "EINVAL" not in c.get("reason", "") or cyc is not None:
                errors.append(f"{name}: {c} sim.cycles={cyc}")
            if f"{name}: cannot run:" not in out.stdout:
                errors.append(f"{name}: the table does not say it cannot run")
        else:
            if c.get("status") != "passed" or not isinstance(cyc, int) or cyc <= 0:
                errors.append(f"{name}: {c} sim.cycles={cyc}")
    # The two platforms' preset costs differ, so their figures must too; a figure per page exists.
    a, b = rep["table"]["sim.cycles"].get(want[1]), rep["table"]["sim.cycles"].get(want[3])
    if a == b:
        errors.append(f"zen4-genoa and sapphire-rapids give the same sim.cycles {a}")
    if rep["table"]["conversions.to_shared.cycles_per_page"].get(want[1]) is None:
        errors.append("no conversion cost per page for the sw_protected run")
    rows = list(csv.reader(open(f"{work}/cmp/compare.csv")))
    if rows[0] != ["figure"] + want or len(rows) != len(rep["rows"]) + 1:
        errors.append(f"compare.csv header {rows[0]}, {len(rows)} rows")

    for args, msg in ((["--platform", "zen4-genoa,m1"], "unknown platform 'm1'"),
                      (["--vm-type", "snp,tdxx"], "did you mean 'tdx'"),
                      ([], "expected --platform and/or --vm-type")):
        bad = subprocess.run([hvsim, "compare", scen, "-o", f"{work}/bad"] + args, capture_output=True, text=True)
        if bad.returncode != 2 or msg not in bad.stderr:
            errors.append(f"compare {args}: exit {bad.returncode}: {bad.stderr.strip()}")
    if os.path.exists(f"{work}/bad"):
        errors.append("a refused compare created its output folder")

    # platform and vm.type are sweepable like parameters.
    sweep = f"{work}/sweep.json"
    json.dump({"scenario": scen, "grid": {"platform": ["zen4-genoa", "sapphire-rapids"], "vm.type": ["sw_protected"]},
               "metrics": ["sim.cycles"]}, open(sweep, "w"))
    sw = subprocess.run([hvsim, "sweep", sweep, "-o", f"{work}/sw", "-j", "2"], capture_output=True, text=True)
    table = list(csv.DictReader(open(f"{work}/sw/sweep.csv"))) if sw.returncode == 0 else []
    if [r.get("sim.cycles") for r in table] != [str(a), str(b)]:
        errors.append(f"platform sweep: exit {sw.returncode} {sw.stderr.strip()} rows {table}")
    for e in errors:
        print(e)
    print(f"{len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
