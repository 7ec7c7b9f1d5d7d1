#!/usr/bin/env python3
"""Replaying a memory trace: the shipped lackey trace gives exactly the loads and stores the
file holds (counted here independently), instructions are charged at cycles_per_instruction,
a ChampSim trace (written here, xz-compressed) replays its records, the fold keeps offsets in
the page, bad traces are errors, and the replay runs on default, SNP and TDX VMs side by side.
Usage: check_replay.py HVSIM SRCDIR WORKDIR"""

import gzip
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys

errors = []


def run(hvsim, scen, out, *extra):
    r = subprocess.run([hvsim, "run", scen, "-o", out, "--quiet", "--no-progress"] + list(extra),
                       capture_output=True, text=True)
    res = json.load(open(f"{out}/results.json")) if os.path.exists(f"{out}/results.json") else None
    return r, res


def scenario(path, trace, fmt, cpi=0, size="64MiB", extra=None, params=None):
    acc = {"gpa": 0, "size": size, "pattern": "replay", "private": False,
           "trace": {"file": trace, "format": fmt, "cycles_per_instruction": cpi}}
    acc.update(extra or {})
    json.dump({"name": os.path.splitext(os.path.basename(path))[0], "params": params or {},
               "vm": {"vcpus": 1, "guest_paging": "none",
                      "memslots": [{"slot": 0, "gpa": 0, "size": "64MiB", "userspace_addr": "0x7f0000000000"}]},
               "steps": [{"vcpu": 0, "access": acc}]}, open(path, "w"))


def main():
    hvsim, src, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    trace = os.path.abspath(os.path.join(src, "traces/gzip-services.lackey.gz"))
    loads = stores = mods = instr = instr_charged = 0
    pending = 0
    for line in gzip.open(trace, "rt"):
        if line.startswith("I "):
            pending += 1
        elif line[:3] in (" L ", " S ", " M "):
            loads += line[1] == "L"
            stores += line[1] == "S"
            mods += line[1] == "M"
            instr_charged += pending
            pending = 0
    r, res = run(hvsim, os.path.join(src, "scenarios/examples/replay-gzip.json"), f"{work}/gz")
    m = res["metrics"] if res else {}
    if r.returncode != 0 or m.get("accesses.read") != loads + mods or m.get("accesses.write") != stores + mods:
        errors.append(f"lackey replay: exit {r.returncode} {r.stderr.strip()}; reads {m.get('accesses.read')} "
                      f"(trace {loads + mods}), writes {m.get('accesses.write')} (trace {stores + mods})")

    # cycles_per_instruction: 0 vs 2 differ by exactly 2 cycles per instruction before each access
    # with blocking misses (mem.mshrs 0); with overlapped misses (the default) the instructions'
    # time also hides part of the posted stores' and prefetches' fills, so it adds at most that.
    for mshrs, exact in ((0, True), (None, False)):
        cyc = {}
        for cpi in (0, 2):
            name = f"cpi{cpi}" + ("-blocking" if exact else "")
            scenario(f"{work}/{name}.json", trace, "lackey", cpi, params={"mem.mshrs": mshrs} if exact else None)
            _, res = run(hvsim, f"{work}/{name}.json", f"{work}/{name}")
            cyc[cpi] = res["metrics"]["sim.cycles"] if res else None
        added = None if None in cyc.values() else cyc[2] - cyc[0]
        if added is None or (added != 2 * instr_charged if exact else not 0 < added <= 2 * instr_charged):
            errors.append(f"cycles_per_instruction 2 adds {added} (mem.mshrs {mshrs if exact else 'default'}), "
                          f"expected {'' if exact else 'at most '}{2 * instr_charged}")

    # ChampSim: 1,000 records, every one loading two addresses and every 4th also storing one.
    recs = bytearray()
    for i in range(1000):
        dst = [0x7ff000100000 + 64 * i if i % 4 == 0 else 0, 0]
        srcm = [0x400000 + 8 * i, 0x600000 + 4096 * (i % 37), 0, 0]
        recs += struct.pack("<QBB2B4B2Q4Q", 0x401000 + 4 * i, 0, 0, 0, 0, 0, 0, 0, 0, *dst, *srcm)
    assert len(recs) == 64 * 1000
    with lzma.open(f"{work}/t.champsim.xz", "wb") as f:
        f.write(recs)
    scenario(f"{work}/cs.json", "t.champsim.xz", "champsim")
    r, res = run(hvsim, f"{work}/cs.json", f"{work}/cs")
    m = res["metrics"] if res else {}
    if r.returncode != 0 or m.get("accesses.read") != 2000 or m.get("accesses.write") != 250:
        errors.append(f"champsim replay: exit {r.returncode} {r.stderr.strip()}; reads {m.get('accesses.read')}, "
                      f"writes {m.get('accesses.write')}")
    # count limits it.
    scenario(f"{work}/cs100.json", "t.champsim.xz", "champsim", extra={"count": 100})
    _, res = run(hvsim, f"{work}/cs100.json", f"{work}/cs100")
    if not res or res["metrics"]["accesses"] != 100:
        errors.append(f"count 100: {res and res['metrics']['accesses']}")

    # A step reads no record past its count: 99 accesses are records 0-43 whole (3 accesses in
    # every 4th, 2 in the others), so a record 44 cut short is never parsed.
    open(f"{work}/cut.champsim", "wb").write(recs[:64 * 44 + 10])
    scenario(f"{work}/cut99.json", "cut.champsim", "champsim", extra={"count": 99})
    r, res = run(hvsim, f"{work}/cut99.json", f"{work}/cut99")
    if r.returncode != 0 or not res or res["metrics"]["accesses"] != 99:
        errors.append(f"count 99 before a cut record: exit {r.returncode} {r.stderr.strip()}")

    # Bad traces and bad steps.
    open(f"{work}/short.champsim", "wb").write(recs[:100])
    scenario(f"{work}/short.json", "short.champsim", "champsim")
    r, res = run(hvsim, f"{work}/short.json", f"{work}/short")
    if r.returncode != 1 or "expected 64 bytes" not in (r.stderr + json.dumps(res or {})):
        errors.append(f"truncated ChampSim trace: exit {r.returncode} {r.stderr.strip()}")
    open(f"{work}/bad.lackey.gz", "wb").write(gzip.compress(b" L 1000,8\n" * 10)[:-12])
    scenario(f"{work}/badgz.json", "bad.lackey.gz", "lackey")
    r, res = run(hvsim, f"{work}/badgz.json", f"{work}/badgz")
    if r.returncode != 1 or "decompression failed" not in (r.stderr + json.dumps(res or {})):
        errors.append(f"corrupt .gz: exit {r.returncode} {r.stderr.strip()}")
    for name, extra, msg in (("missing", {"trace": {"file": "nope.gz", "format": "lackey"}}, "/access/trace/file"),
                             ("op", {"op": "write"}, "no op with pattern replay"),
                             ("fmt", {"trace": {"file": "t.champsim.xz", "format": "pin"}}, "/access/trace/format")):
        scenario(f"{work}/{name}.json", "t.champsim.xz", "champsim", extra=extra)
        r, _ = run(hvsim, f"{work}/{name}.json", f"{work}/{name}")
        if r.returncode != 2 or msg not in r.stderr:
            errors.append(f"{name}: exit {r.returncode}: {r.stderr.strip()}")

    # The shipped replay on three VM types.
    r = subprocess.run([hvsim, "compare", os.path.join(src, "scenarios/examples/replay-gzip.json"),
                        "--vm-type", "default,snp,tdx", "-o", f"{work}/cmp", "-j", "2"], capture_output=True, text=True)
    cmp = json.load(open(f"{work}/cmp/compare.json")) if r.returncode == 0 else {"columns": []}
    ran = [c["name"] for c in cmp["columns"] if c["status"] == "passed"]
    if ran != ["default", "snp", "tdx"]:
        errors.append(f"compare default,snp,tdx: exit {r.returncode} {r.stderr.strip()}: {cmp['columns']}")
    for e in errors:
        print(e)
    print(f"{len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
