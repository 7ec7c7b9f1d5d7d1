#!/usr/bin/env python3
"""Checks results.json files against scenarios/results.schema.json: the schema is a valid
draft 2020-12 schema whose every metric has a unit (x-unit) and a one-line definition;
every results.json under the given folders validates (so a metric a run emits that the
schema does not document fails); and the figures add up (TLB hits + misses = lookups,
per-vCPU metrics sum to the totals, fault outcomes sum to the faults, ...).
Exits 77 (CTest: skipped) without python jsonschema."""
import json
import pathlib
import re
import sys

try:
    import jsonschema
except ImportError:
    print("check_results: python jsonschema is not installed; skipped")
    sys.exit(77)


def identities(r):
    """Relations between figures of one results document; yields what does not hold."""
    m = r["metrics"]

    def eq(what, a, b):
        if a != b:
            yield f"{what}: {a} != {b}"

    yield from eq("tlb.l1.hits + tlb.l2.hits + tlb.misses = tlb.lookups",
                  m["tlb.l1.hits"] + m["tlb.l2.hits"] + m["tlb.misses"], m["tlb.lookups"])
    yield from eq("tlb.gpa.ntlb_hits + tlb.gpa.walks = tlb.gpa.lookups",
                  m["tlb.gpa.ntlb_hits"] + m["tlb.gpa.walks"], m["tlb.gpa.lookups"])
    yield from eq("walk.count = tlb.misses + tlb.gpa.walks", m["walk.count"], m["tlb.misses"] + m["tlb.gpa.walks"])
    yield from eq("accesses = reads + writes", m["accesses"], m["accesses.read"] + m["accesses.write"])
    if "faults.private" in m:
        yield from eq("faults.npf + faults.prefault = faults.private + faults.shared",
                      m["faults.npf"] + m["faults.prefault"], m["faults.private"] + m["faults.shared"])
        outcomes = sum(m[k] for k in ("faults.fixed", "faults.spurious", "faults.retry", "faults.emulated",
                                      "faults.memory_fault")) + m.get("faults.failed", 0)
        yield from eq("fixed + spurious + retry + emulated + memory_fault + failed = private + shared", outcomes,
                      m["faults.private"] + m["faults.shared"])
    if "s2.faults" in m:   # arm64: every stage-2 abort a core took reached KVM
        # pKVM: a MEM_SHARE of a page not yet donated is a stage-2 fault EL2 fakes for the host.
        yield from eq("s2.faults + pkvm.share_faults = faults.npf", m["s2.faults"] + m.get("pkvm.share_faults", 0),
                      m["faults.npf"])
        yield from eq("s2.mem_refs = walk.mem_refs (stage 1 off)", m["s2.mem_refs"], m["walk.mem_refs"])
    yield from eq("exits.userspace = memory_fault + mmio + hypercall_userspace", m["exits.userspace"],
                  m["exits.memory_fault"] + m["exits.mmio"] + m["exits.hypercall_userspace"])
    # Per-vCPU metrics sum to the totals.
    per = {}
    for k, v in m.items():
        mm = re.match(r"vcpu\.(\d+)\.(.+)$", k)
        if mm:
            per[mm.group(2)] = per.get(mm.group(2), 0) + v
    for k, v in per.items():
        yield from eq(f"sum of vcpu.N.{k} = {k}", v, m[k])
    c = r["conversions"]
    yield from eq("conversions.count = to_private.count + to_shared.count", m["conversions.count"],
                  c["to_private"]["count"] + c["to_shared"]["count"])
    yield from eq("setup.private.pages = conversions.setup.pages", m["setup.private.pages"], c["setup"]["pages"])
    for f in r["fault_paths"]:
        total = sum(s["cycles"] for s in f["steps"])
        if abs(total - f["cycles"]["mean"]) > len(f["steps"]):
            yield f"fault path {f['path']}: steps add up to {total}, mean {f['cycles']['mean']}"
    yield from eq("status passed <=> no failures", r["status"] == "passed",
                  not r["failures"] and r["status"] not in ("error", "interrupted"))


def main():
    schema = json.loads(pathlib.Path(sys.argv[1]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    failures = 0
    metrics = schema["properties"]["metrics"]
    for name, d in list(metrics["properties"].items()) + list(metrics["patternProperties"].items()):
        if not d.get("x-unit") or not d.get("description") or "\n" in d["description"]:
            print(f"schema: metric {name} needs a unit (x-unit) and a one-line description")
            failures += 1
    files = []
    for arg in sys.argv[2:]:
        p = pathlib.Path(arg)
        files += [p] if p.is_file() else sorted(p.rglob("results.json"))
    if len(files) < 2:
        print(f"check_results: expected results.json files under {sys.argv[2:]}, found {len(files)}")
        return 1
    statuses = {}
    for f in files:
        r = json.loads(f.read_text())
        statuses[r.get("status")] = statuses.get(r.get("status"), 0) + 1
        errors = sorted(validator.iter_errors(r), key=lambda e: list(e.absolute_path))
        for e in errors[:5]:
            print(f"{f}: {e.json_path}: {e.message[:300]}")
        bad = list(identities(r)) if not errors else []
        for b in bad[:5]:
            print(f"{f}: does not add up: {b}")
        failures += bool(errors) + bool(bad)
    print(f"check_results: {len(files)} results ({statuses}), {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
