#!/usr/bin/env python3
"""hvsim run --casemate: an arm64 run writes its stage-2 updates as a Casemate trace
(rems-project/casemate doc/trace-format.md): one s-expression per line with increasing ids,
table pages announced (mem-init) before they are written, every write inside a lock of its
tree, the break-before-make TLBIs of a MEM_UNSHARE present; an x86 run writes none."""
import pathlib
import re
import subprocess
import sys


def main():
    hvsim, repo, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    trace = work / "pkvm.trace"
    r = subprocess.run([hvsim, "run", "-q", "-o", str(work / "out"), "--casemate", str(trace),
                        str(repo / "scenarios/pkvm/convert-in-place.json")], capture_output=True, text=True)
    errors = []
    if r.returncode != 0:
        errors.append(f"run failed: {r.returncode} {r.stderr.strip()}")
    lines = trace.read_text().splitlines() if trace.exists() else []
    ids, inited, held = [], set(), 0
    kinds = {}
    for ln in lines:
        m = re.match(r"^\((\S+) \(id (\d+)\) \(tid \d+\)(.*)\)$", ln)
        if not m:
            errors.append(f"not a trace record: {ln}")
            break
        kind, rest = m.group(1), m.group(3)
        kinds[kind] = kinds.get(kind, 0) + 1
        ids.append(int(m.group(2)))
        if kind == "mem-init":
            inited.add(int(re.search(r"\(address (0x[0-9a-f]+)\)", rest).group(1), 16))
        elif kind == "lock":
            held += 1
        elif kind == "unlock":
            held -= 1
        elif kind == "mem-write":
            addr = int(re.search(r"\(address (0x[0-9a-f]+)\)", rest).group(1), 16)
            if (addr & ~0xfff) not in inited:
                errors.append(f"write to {addr:#x} before its table page was announced: {ln}")
            if held <= 0:
                errors.append(f"write outside a lock: {ln}")
    if ids != sorted(ids) or len(set(ids)) != len(ids):
        errors.append("record ids are not increasing")
    for k in ("mem-init", "mem-write", "barrier", "tlbi", "lock", "unlock", "msr"):
        if not kinds.get(k):
            errors.append(f"no {k} record in {len(lines)} lines")
    # The scenario unshares 16 pages: each one's host stage-2 entry is broken with a TLBI.
    if kinds.get("tlbi", 0) < 16:
        errors.append(f"expected at least 16 TLBIs, got {kinds.get('tlbi', 0)}")
    x86 = work / "x86.trace"
    r = subprocess.run([hvsim, "run", "-q", "-o", str(work / "x86"), "--casemate", str(x86),
                        str(repo / "scenarios/quickstart.json")], capture_output=True, text=True)
    if r.returncode != 0 or (x86.exists() and x86.read_text()):
        errors.append(f"an x86 run wrote a Casemate trace or failed: {r.returncode} {r.stderr.strip()}")
    for e in errors[:20]:
        print(e)
    print(f"check_casemate: {len(lines)} records, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
