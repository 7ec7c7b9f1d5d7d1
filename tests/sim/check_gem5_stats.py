#!/usr/bin/env python3
"""--stats gem5: DIR/stats.gem5.json has the shape gem5's Python stats loader (m5.ext.pystats,
JsonLoader) builds objects from, and holds every metric of results.json at its path with the
same value. Usage: check_gem5_stats.py HVSIM SCENARIO WORKDIR"""

import json
import subprocess
import sys

# Keyword arguments of the pystats constructors that JsonLoader calls with a stat's keys.
SCALAR = {"type", "value", "unit", "description", "datatype"}
DISTRIBUTION = SCALAR | {"min", "max", "num_bins", "bin_size", "sum", "sum_squared", "underflow", "overflow", "logs"}
TOP = {"name", "creation_time", "time_conversion", "simulated_begin_time", "simulated_end_time"}
STORAGE = {"u32", "u64", "s32", "s64", "f32", "f64"}
UNITS = {"Count", "Cycle", "Second", "Tick", "Byte", "(Count/Second)"}

errors = []


def check(node, path):
    t = node.get("type")
    if t == "Scalar":
        extra = set(node) - SCALAR
        if extra: errors.append(f"{path}: Scalar with keys {extra}")
        if not isinstance(node["value"], (int, float)): errors.append(f"{path}: value {node['value']!r}")
    elif t == "Distribution":
        extra = set(node) - DISTRIBUTION
        if extra: errors.append(f"{path}: Distribution with keys {extra}")
        if len(node["value"]) != node["num_bins"] or node["num_bins"] < 1 or node["bin_size"] < 0:
            errors.append(f"{path}: {node['num_bins']} bins, {len(node['value'])} values")
        if node["max"] - node["min"] + 1 != node["num_bins"]:
            errors.append(f"{path}: min {node['min']} max {node['max']} for {node['num_bins']} bins")
    elif t == "Group" or path == "":
        for k, v in node.items():
            if k in ("type", "name", "time_conversion") or (path == "" and k in TOP):
                continue
            if not isinstance(v, dict):
                errors.append(f"{path}/{k}: {v!r} is neither a group nor a stat")
                continue
            check(v, f"{path}/{k}")
        return
    else:
        errors.append(f"{path}: type {t!r}")
        return
    if node.get("datatype") not in STORAGE: errors.append(f"{path}: datatype {node.get('datatype')!r}")
    if node.get("unit") not in UNITS: errors.append(f"{path}: unit {node.get('unit')!r}")
    if not node.get("description"): errors.append(f"{path}: no description")


def lookup(stats, name):
    parts = name.split(".")
    if parts[0] == "vcpu" and len(parts) > 1:
        parts = ["vcpu" + parts[1]] + parts[2:]
    node = stats
    for p in parts:
        node = node[p]
    return node["total"] if node.get("type") == "Group" else node


def main():
    hvsim, scenario, work = sys.argv[1:4]
    subprocess.run([hvsim, "run", scenario, "-o", work, "--quiet", "--no-progress", "--stats", "gem5"], check=True)
    stats = json.load(open(f"{work}/stats.gem5.json"))
    results = json.load(open(f"{work}/results.json"))
    check(stats, "")
    for name, value in results["metrics"].items():
        if name == "sim.time_ns":
            got, want = lookup(stats, "sim.time")["value"], value * 1e-9
            if abs(got - want) > 1e-12 * max(1, want): errors.append(f"sim.time: {got} s for {value} ns")
            continue
        try:
            got = lookup(stats, name)["value"]
        except KeyError:
            errors.append(f"{name}: not in stats.gem5.json")
            continue
        if got != value: errors.append(f"{name}: {got} != {value}")
    for h, buckets in results.get("histograms", {}).items():
        d = lookup(stats, h)
        if d.get("type") != "Distribution" or sum(d["value"]) != sum(buckets.values()):
            errors.append(f"{h}: {d.get('type')} with {sum(d.get('value', []))} samples, results have {sum(buckets.values())}")
    if stats["simTicks"]["value"] != round(results["metrics"]["sim.time_ns"] * 1000):
        errors.append("simTicks does not match sim.time_ns")
    if not results.get("histograms"): errors.append("the scenario has no histogram to check")
    for e in errors[:20]: print(e)
    print(f"{len(errors)} problems; {len(results['metrics'])} metrics checked")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
