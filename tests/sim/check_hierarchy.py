#!/usr/bin/env python3
"""The platform's SystemC hierarchy in results.json, and the invariant checks' debug reads.
Each scenario runs twice, with the invariant checks after every step (which read the
tables through the debug port, transport_dbg) and with --no-invariants: the results must be
the same bytes apart from the host section (a checked run measures what an unchecked one
does). The `modules` keys are the hierarchical names under the root module `top`; the VM's
own hardware (the RMP of an SEV-SNP VM, the TDX module of a TD) is top.rmp / top.tdx.
Usage: check_hierarchy.py HVSIM REPO OUTDIR"""
import json
import pathlib
import subprocess
import sys

SCENARIOS = [("scenarios/quickstart.json", "x86 mmu", set()), ("scenarios/pkvm/convert-in-place.json", "arm64 mmu", set()),
             ("scenarios/snp/snp-validate-4k.json", "x86 mmu", {"top.rmp"}),
             ("scenarios/tdx/lazy-boot.json", "x86 mmu", {"top.tdx"})]
KINDS = {"top.rmp": "rmp", "top.tdx": "tdx module"}


def run(hvsim, scenario, out, *extra):
    subprocess.run([hvsim, "run", scenario, "-o", str(out), *extra], check=False, capture_output=True)
    return json.loads((out / "results.json").read_text())


def main():
    hvsim, repo, outdir = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    failures = []
    for rel, kind, vm_hw in SCENARIOS:
        name = pathlib.Path(rel).stem
        checked = run(hvsim, repo / rel, outdir / f"{name}-checked")
        unchecked = run(hvsim, repo / rel, outdir / f"{name}-unchecked", "--no-invariants")
        for k in sorted(set(checked) | set(unchecked)):
            if k != "host" and checked.get(k) != unchecked.get(k):
                failures.append(f"{rel}: '{k}' differs between a checked and an unchecked run")
        if checked.get("status") != "passed":
            failures.append(f"{rel}: status {checked.get('status')}")
        vcpus = json.loads((repo / rel).read_text()).get("vm", {}).get("vcpus", 1)
        want = {"top.mem.dram", "top.mem.phys", "top.mem.llc"} | vm_hw
        for i in range(vcpus):
            want |= {f"top.vcpu{i}.mmu", f"top.vcpu{i}.caches"}
        mods = checked.get("modules", {})
        if set(mods) != want:
            failures.append(f"{rel}: modules {sorted(mods)}, expected {sorted(want)}")
        elif mods["top.vcpu0.mmu"].get("kind") != kind:
            failures.append(f"{rel}: top.vcpu0.mmu is a {mods['top.vcpu0.mmu'].get('kind')}, expected {kind}")
        elif mods["top.vcpu0.caches"].get("sockets") != "in; dram -> top.mem.llc.in; phys -> top.mem.phys.socket":
            failures.append(f"{rel}: top.vcpu0.caches sockets {mods['top.vcpu0.caches'].get('sockets')}")
        llc = mods.get("top.mem.llc", {})
        if llc.get("kind") != "llc" or llc.get("sockets") != "in; dram -> top.mem.dram.socket":
            failures.append(f"{rel}: top.mem.llc is {llc}")
        # The LLC's hits and misses are its cores' (one core here), its fills what DRAM read.
        elif vcpus == 1:
            lv = [k for k in mods["top.vcpu0.caches"] if isinstance(mods["top.vcpu0.caches"][k], dict)]
            last = mods["top.vcpu0.caches"][lv[-1]] if lv else {}
            if (llc.get("hits"), llc.get("misses")) != (last.get("hits"), last.get("misses")):
                failures.append(f"{rel}: top.mem.llc counts {llc.get('hits')}/{llc.get('misses')}, its core's last level {last}")
            if llc.get("line_fills") != mods["top.mem.dram"].get("reads"):
                failures.append(f"{rel}: top.mem.llc passed {llc.get('line_fills')} fills, DRAM read {mods['top.mem.dram'].get('reads')}")
        for m in sorted(vm_hw & set(mods)):
            if mods[m].get("kind") != KINDS[m] or not mods[m].get("direct"):
                failures.append(f"{rel}: {m} is {mods[m]}, expected a {KINDS[m]} bound directly to top.mem.phys")
    for f in failures:
        print(f)
    print(f"check_hierarchy: {len(SCENARIOS)} scenarios, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
