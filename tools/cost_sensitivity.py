#!/usr/bin/env python3
"""Every cost.* parameter moves a result: run a scenario that uses it at the preset value and
at twice that value, and fail when the simulated cycles do not move: sim.cycles + setup.cycles,
plus the cycles recorded for each invalidation (a cost paid off the critical path, such as the
IPI round trip a host thread waits for while the vCPUs run on, moves those and not the end time).

Usage: tools/cost_sensitivity.py HVSIM [--work DIR] [--find]
  The table SCENARIOS below names, for each cost, a scenario whose run charges it;
  KNOWN_GAPS lists the costs of operations no scenario reaches yet (reported, not failed).
  A cost.* parameter that `hvsim params` lists but the table does not name fails the check,
  as does a table entry for a parameter that no longer exists.
  --find  try every shipped scenario for the costs without a working entry and print the
          first that moves (to fill the table).
"""

import argparse
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))

# cost -> scenario (relative to the source root) whose run charges it.
SCENARIOS = {
    "cost.attr_update": "scenarios/examples/design-example-snp-convert-2m.json",
    "cost.clflush_4k": "scenarios/diff-kvm/sev-reg-region-sev-vm.json",
    "cost.copy_4k": "scenarios/quickstart.json",
    "cost.fill_4k": "scenarios/diff-kvm/sev-reg-region-sev-vm.json",
    "cost.gmem_create": "scenarios/examples/design-example-snp-convert-2m.json",
    "cost.gmem_get_pfn": "scenarios/examples/design-example-snp-convert-2m.json",
    "cost.guest_clear_page": "scenarios/quickstart.json",
    "cost.guest_pf": "scenarios/quickstart.json",
    "cost.gup_fast": "scenarios/quickstart.json",
    "cost.host_fault": "scenarios/quickstart.json",
    "cost.host_unmap_page": "scenarios/examples/sw-protected-content-policies.json",
    "cost.hypercall": "scenarios/examples/design-example-snp-convert-2m.json",
    "cost.ioctl": "scenarios/quickstart.json",
    "cost.kvm_mmu_page_fault": "scenarios/quickstart.json",
    "cost.memslot_update": "scenarios/quickstart.json",
    "cost.mmap": "scenarios/diff-kvm/mixed-guest-steps-skipped.json",
    "cost.mmu_lock": "scenarios/quickstart.json",
    "cost.page_alloc": "scenarios/quickstart.json",
    "cost.page_free": "scenarios/diff-kvm/mixed-guest-steps-skipped.json",
    "cost.pin_page": "scenarios/diff-kvm/sev-reg-region-sev-vm.json",
    "cost.sp_alloc": "scenarios/quickstart.json",
    "cost.spte_write": "scenarios/quickstart.json",
    "cost.srcu_poll": "tests/sim/data/srcu_wait.json",
    "cost.tlb_flush_local": "scenarios/examples/design-example-snp-convert-2m.json",
    "cost.tlb_flush_remote_ipi": "scenarios/examples/race-fault-vs-punch-hole.json",
    "cost.userspace_exit": "scenarios/examples/design-example-snp-convert-2m.json",
    "cost.vmentry": "scenarios/quickstart.json",
    "cost.vmexit": "scenarios/quickstart.json",
    "cost.wbinvd": "scenarios/diff-kvm/sev-reg-region-sev-vm.json",
    "cost.tdx_accept_4k": "scenarios/tdx/lazy-accept.json",
    "cost.tdx_idle_tick": "scenarios/tdx/idle-vcpus-248.json",
    "cost.tdx_page_aug": "scenarios/tdx/lazy-accept.json",
    "cost.tdx_page_remove": "scenarios/tdx/lazy-accept.json",
    "cost.tdx_range_block": "scenarios/tdx/lazy-accept.json",
    "cost.tdx_seamcall": "scenarios/tdx/lazy-accept.json",
    "cost.tdx_sept_add": "scenarios/tdx/lazy-accept.json",
    "cost.tdx_td_entry": "scenarios/tdx/lazy-accept.json",
    "cost.tdx_td_exit": "scenarios/tdx/lazy-accept.json",
    "cost.tdx_track": "scenarios/tdx/lazy-accept.json",
    "cost.tdx_ve": "scenarios/tdx/lazy-accept.json",
    "cost.tdx_wbinvd": "scenarios/tdx/lazy-accept.json",
    "cost.wide_store_line": "tests/sim/data/wide_stores.json",
    "cost.zap_spte": "scenarios/examples/design-example-snp-convert-2m.json",
    "cost.zero_2m": "scenarios/quickstart.json",
    "cost.zero_4k": "scenarios/examples/design-example-snp-convert-2m.json",
    "cost.rmpupdate": "scenarios/snp/snp-accept-lazy.json",
    "cost.psmash": "scenarios/snp/snp-huge-folio-convert.json",
    "cost.pvalidate_4k": "scenarios/snp/snp-accept-lazy.json",
    "cost.pvalidate_2m": "scenarios/snp/snp-accept-lazy.json",
    "cost.rmpadjust": "scenarios/snp/snp-ap-create.json",
    "cost.snp_vc": "scenarios/snp/snp-accept-lazy.json",
    "cost.snp_vmgexit": "scenarios/snp/snp-accept-lazy.json",
    "cost.snp_ae_exit": "scenarios/snp/snp-accept-lazy.json",
    "cost.arm64_guest_exit": "scenarios/pkvm/convert-in-place.json",
    "cost.arm64_guest_entry": "scenarios/pkvm/convert-in-place.json",
    "cost.pkvm_hyp_vcpu_sync": "scenarios/pkvm/convert-in-place.json",
    "cost.arm64_s2_pte_write": "scenarios/examples/arm64-dirty-log-split.json",
    "cost.arm64_tlbi_ipas2e1is": "scenarios/examples/arm64-dirty-log-split.json",
    "cost.arm64_tlbi_vmalle1is": "scenarios/examples/arm64-dirty-log-split.json",
    "cost.arm64_tlbi_vmalls12e1is": "scenarios/examples/arm64-dirty-log-split.json",
    "cost.arm64_tlbi_local": "scenarios/examples/arm64-dirty-log-split.json",
    "cost.arm64_dsb_ish": "scenarios/examples/arm64-dirty-log-split.json",
    "cost.arm64_dsb_ishst": "scenarios/examples/arm64-dirty-log-split.json",
    "cost.arm64_dsb_nsh": "scenarios/examples/arm64-dirty-log-split.json",
    "cost.arm64_isb": "scenarios/examples/arm64-dirty-log-split.json",
    "cost.pkvm_hvc": "scenarios/pkvm/convert-copy.json",
    "cost.pkvm_guest_hvc": "scenarios/pkvm/convert-copy.json",
    "cost.pkvm_cmo_2m": "scenarios/pkvm/convert-copy.json",
    "cost.snp_launch_update": "scenarios/snp/snp-launch-measured.json",
    "cost.tdx_page_add": "scenarios/tdx/init-mem-region.json",
    "cost.tdx_mr_extend": "scenarios/tdx/init-mem-region.json",
    "cost.tdx_page_aug_2m": "scenarios/tdx/convert-4k-vs-2m-huge.json",
    "cost.tdx_demote": "scenarios/tdx/convert-4k-vs-2m-huge.json",
    # The mirror root splits its 2M private leaf before the 4K conversion.
    "cost.split_huge_page": "scenarios/tdx/convert-4k-vs-2m-huge.json",
    # The TD's teardown at the end of the run (tdx.teardown.cycles): HKID release, RECLAIM.
    "cost.tdx_cache_wb": "scenarios/tdx/teardown.json",
    "cost.tdx_key_freeid": "scenarios/tdx/teardown.json",
    "cost.tdx_reclaim": "scenarios/tdx/teardown.json",
    "cost.tdx_vp_flush": "scenarios/tdx/teardown.json",
    "cost.tdx_vpflushdone": "scenarios/tdx/teardown.json",
}

# Costs of operations no scenario reaches yet, with the reason; listed on every run so the
# gap stays visible. An entry here that a scenario does reach must move to SCENARIOS.
KNOWN_GAPS = {
}


def run(hvsim, scenario, work, sets=()):
    out = os.path.join(work, os.path.basename(scenario).replace(".json", "") + "".join(f"-{k}={v}" for k, v in sets))
    cmd = [hvsim, "run", "--quiet", "--no-progress", "--no-invariants", "-o", out, scenario]
    for k, v in sets:
        cmd += ["--set", f"{k}={v}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    try:
        res = json.load(open(os.path.join(out, "results.json")))
        m = res["metrics"]
    except (OSError, ValueError, KeyError):
        return None
    if r.returncode not in (0, 1):
        return None
    # A TD's teardown after the run is timed apart from sim.cycles (tdx.teardown.cycles).
    return (m["sim.cycles"] + m["setup.cycles"] + m.get("tdx.teardown.cycles", 0) +
            sum(i["cycles"] for i in res.get("invalidations", [])))


def costs(hvsim):
    r = subprocess.run([hvsim, "params", "zen4-genoa"], capture_output=True, text=True, check=True)
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("cost."):
            out[parts[0]] = int(parts[1])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("hvsim")
    ap.add_argument("--work", default=os.path.join(os.getcwd(), "cost-sensitivity"))
    ap.add_argument("--find", action="store_true")
    ap.add_argument("candidates", nargs="*", help="--find: scenarios to try (relative to scenarios/; default all)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    table = costs(a.hvsim)
    base_cache = {}
    bad = []
    moved = {}
    for name in sorted((set(SCENARIOS) | set(KNOWN_GAPS)) - set(table)):
        bad.append(f"{name}: in the table but not a parameter")
    for name, value in sorted(table.items()):
        sc = SCENARIOS.get(name)
        if sc is None and name in KNOWN_GAPS:
            print(f"GAP  {name:28} {KNOWN_GAPS[name]}")
            continue
        if sc is None:
            bad.append(f"{name}: no scenario that uses it")
            continue
        path = os.path.join(ROOT, sc)
        if path not in base_cache:
            base_cache[path] = run(a.hvsim, path, a.work)
        base = base_cache[path]
        twice = run(a.hvsim, path, a.work, [(name, max(1, 2 * value))])
        if base is None or twice is None:
            bad.append(f"{name}: {sc} did not run")
        elif twice == base:
            bad.append(f"{name}: {sc} gives {base} cycles at {value} and at {max(1, 2 * value)}")
        else:
            moved[name] = (sc, base, twice)
            print(f"ok   {name:28} {sc}: {base} -> {twice} cycles")
    if a.find:
        files = sorted(glob.glob(os.path.join(ROOT, "scenarios", "**", "*.json"), recursive=True))
        if a.candidates:
            files = [os.path.join(ROOT, "scenarios", c) for c in a.candidates]
        files = [f for f in files if not f.endswith(".schema.json")]
        for name, value in sorted(table.items()):
            if name in moved:
                continue
            for f in files:
                if f not in base_cache:
                    base_cache[f] = run(a.hvsim, f, a.work)
                b = base_cache[f]
                if b is None:
                    continue
                t = run(a.hvsim, f, a.work, [(name, max(1, 2 * value))])
                if t is not None and t != b:
                    print(f'    "{name}": "{os.path.relpath(f, os.path.join(ROOT, "scenarios"))}",')
                    break
            else:
                print(f"    # {name}: no shipped scenario moves")
    for b in bad:
        print(f"FAIL {b}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
