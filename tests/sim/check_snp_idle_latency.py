#!/usr/bin/env python3
"""AMD SEV issue #225 (AMDESE/AMDSEV, 2024-07-31): an SNP guest's idle memory latency is about
40 ns higher with 4K private mappings (upstream guest_memfd) than with 2 MiB ones. Runs
scenarios/snp/snp-idle-latency-{4k,2m}.json and checks that hvsim reproduces the direction and
the size of the gap: the 2M run maps with 2M NPT leaves over 2M RMP entries, the 4K run with 4K
ones, and the 4K run's mean latency of the measurement step is higher by LOW..HIGH ns.

Usage: check_snp_idle_latency.py HVSIM SCENARIO_DIR WORK"""
import json
import os
import subprocess
import sys

# The published gap is "~40 ns"; the band is wide enough for estimates in the preset to move
# and narrow enough that losing the walk, the RMP check or the TLB splintering fails.
LOW_NS, HIGH_NS = 20.0, 80.0


def run(hvsim, scenario, out):
    subprocess.run([hvsim, "run", "--quiet", "--no-progress", "-o", out, scenario], check=True)
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def latency_ns(res):
    step = res["steps"][1]
    mhz = res["params"]["cpu.freq_mhz"]
    return step["cycles"] / step["accesses"] * 1000.0 / mhz, step


def main():
    hvsim, scen, work = sys.argv[1], sys.argv[2], sys.argv[3]
    r4 = run(hvsim, os.path.join(scen, "snp", "snp-idle-latency-4k.json"), os.path.join(work, "4k"))
    r2 = run(hvsim, os.path.join(scen, "snp", "snp-idle-latency-2m.json"), os.path.join(work, "2m"))
    l4, s4 = latency_ns(r4)
    l2, s2 = latency_ns(r2)
    m4, m2 = r4["metrics"], r2["metrics"]
    print(f"idle latency: 4K {l4:.1f} ns, 2M {l2:.1f} ns, gap {l4 - l2:.1f} ns (published: ~40 ns)")
    ok = True

    def check(cond, what):
        nonlocal ok
        if not cond:
            print("FAIL:", what)
            ok = False

    check(m4["mmu.map.2m"] == 0 and m4["mmu.map.4k"] > 0, "the 4K run maps private memory with 4K NPT leaves only")
    check(m2["mmu.map.2m"] > 0, "the 2M run maps private memory with 2M NPT leaves")
    check(m2["gmem.huge_folios"] > 0 and m4["gmem.huge_folios"] == 0, "only the 2M run has 2 MiB folios")
    check(m2["snp.size_mismatch"] == 0 and m4["snp.size_mismatch"] > 0,
          "PVALIDATE 2M succeeds on 2M RMP entries and falls back to 4K on 4K ones")
    check(s4["accesses"] == s2["accesses"], "both measure the same number of accesses")
    check(LOW_NS <= l4 - l2 <= HIGH_NS, f"the gap is within {LOW_NS:.0f}..{HIGH_NS:.0f} ns")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
