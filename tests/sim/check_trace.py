#!/usr/bin/env python3
"""hvsim run --trace: the Perfetto protobuf parsed back field by field (the TrackEvent schema of
perfetto.protos: packets, track descriptors, balanced and nested slices, flows, counters), the
Chrome JSON loaded, one exit slice per exit the results count, sampling / window / size bounds
honoured, sampled page walks and the hardware units' tracks (RMP, TDX module) agreeing with the
results' counts, byte-identical on a rerun, bad options refused. protoc --decode_raw (Debian's
protobuf-compiler) must read the file too when it is installed.
Usage: check_trace.py HVSIM SRCDIR WORKDIR"""

import json
import os
import shutil
import struct
import subprocess
import sys

errors = []


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def fields(b):
    """(field, wire, value) of one message; value is int, or bytes for length-delimited."""
    i, out = 0, []
    while i < len(b):
        key, i = varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = varint(b, i)
        elif w == 1:
            v = struct.unpack_from("<Q", b, i)[0]
            i += 8
        elif w == 2:
            n, i = varint(b, i)
            v = b[i:i + n]
            i += n
        elif w == 5:
            v = struct.unpack_from("<I", b, i)[0]
            i += 4
        else:
            raise ValueError(f"wire type {w}")
        out.append((f, w, v))
    return out


def one(fs, f, default=None):
    for ff, _, v in fs:
        if ff == f:
            return v
    return default


def parse_perfetto(path):
    data = open(path, "rb").read()
    tracks, slices, counters, flows_out, flows_in = {}, [], [], [], []
    stacks, last_ts, first = {}, 0, True
    for f, w, pkt in fields(data):
        if f != 1 or w != 2:
            errors.append(f"{path}: top-level field {f} is not Trace.packet")
            continue
        p = fields(pkt)
        if first and one(p, 13) != 1:
            errors.append("first packet does not clear the incremental state (sequence_flags)")
        first = False
        if one(p, 10) != 1:
            errors.append("packet without trusted_packet_sequence_id 1")
        td = one(p, 60)
        if td is not None:
            t = fields(td)
            uuid = one(t, 1)
            thread, counter = one(t, 4), one(t, 8)
            name = one(t, 2, b"").decode()
            if thread is not None:
                name = one(fields(thread), 5, b"").decode()
            tracks[uuid] = (name, counter is not None)
            continue
        te = one(p, 11)
        if te is None:
            continue
        ts = one(p, 8)
        if ts is None or ts < last_ts:
            errors.append(f"track event at {ts} after {last_ts}")
        last_ts = ts or last_ts
        e = fields(te)
        uuid, typ = one(e, 11), one(e, 9)
        if uuid not in tracks:
            errors.append(f"event on undeclared track {uuid}")
            continue
        st = stacks.setdefault(uuid, [])
        if typ == 1:
            name = one(e, 23, b"").decode()
            args = {}
            for ff, _, da in e:
                if ff == 4:
                    d = fields(da)
                    args[one(d, 10, b"").decode()] = one(d, 6, one(d, 3, one(d, 2)))
            st.append((name, ts, args))
            flows_out += [v for ff, _, v in e if ff == 47]
            flows_in += [v for ff, _, v in e if ff == 48]
        elif typ == 2:
            if not st:
                errors.append(f"slice end without a begin on {tracks[uuid][0]}")
                continue
            name, b, args = st.pop()
            slices.append((tracks[uuid][0], name, b, ts, args))
        elif typ == 4:
            if not tracks[uuid][1]:
                errors.append(f"counter value on a non-counter track {tracks[uuid][0]}")
            raw = one(e, 44)   # double_counter_value: fixed64 wire type, an IEEE double
            counters.append((tracks[uuid][0], ts, None if raw is None else struct.unpack("<d", struct.pack("<Q", raw))[0]))
        else:
            errors.append(f"event type {typ}")
    for uuid, st in stacks.items():
        if st:
            errors.append(f"{tracks[uuid][0]}: {len(st)} slices never ended")
    if sorted(flows_out) != sorted(flows_in) or len(set(flows_out)) != len(flows_out):
        errors.append(f"flows: {len(flows_out)} started, {len(flows_in)} ended")
    return tracks, slices, counters, flows_out


def run(hvsim, scen, out, *extra):
    r = subprocess.run([hvsim, "run", scen, "-o", out, "--quiet", "--no-progress"] + list(extra),
                       capture_output=True, text=True)
    if r.returncode != 0:
        errors.append(f"run {scen} {extra}: exit {r.returncode}: {r.stderr.strip()}")
    return json.load(open(f"{out}/results.json"))


def exit_slices(slices):
    return [s for s in slices if s[0].startswith("vCPU ") and ":" not in s[0] and
            (s[1].startswith("npf.") or s[1].startswith("hypercall."))]


def main():
    hvsim, src, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    scen = os.path.join(src, "scenarios/examples/design-example-snp-convert-2m.json")
    res = run(hvsim, scen, f"{work}/a", "--trace", f"{work}/a.pftrace")
    m = res["metrics"]
    tracks, slices, counters, flows = parse_perfetto(f"{work}/a.pftrace")
    names = {n for n, _ in tracks.values()}
    for want in ("vCPU 0", "vCPU 1", "private pages", "shared pages (memslot pages not private)",
                 "vCPU 0: TLB hit rate", "vCPU 0: cache hit rate (walker and data references)"):
        if want not in names:
            errors.append(f"no track '{want}' in {sorted(names)}")
    ex = exit_slices(slices)
    npf = sum(1 for s in ex if s[1].startswith("npf."))
    hc = sum(1 for s in ex if s[1].startswith("hypercall."))
    if npf != m["exits.npf"] or hc != m["exits.hypercall"]:
        errors.append(f"exit slices: {npf} npf, {hc} hypercall; results: {m['exits.npf']}, {m['exits.hypercall']}")
    if len(flows) != npf + hc:
        errors.append(f"{len(flows)} flows for {npf + hc} exits")
    if not all("gpa" in s[4] for s in ex):
        errors.append("an exit slice without its gpa")
    if not any(s[1] == "zero_4k" for s in slices):
        errors.append("no KVM step slice (zero_4k) nested in the exits")
    if not any(s[0].endswith("MMU invalidations") for s in slices):
        errors.append("no MMU invalidation slice")
    if not any(s[0] == "VMM thread 0" for s in slices) and any("VMM thread" in n for n in names):
        errors.append("a VMM thread track without slices")
    end_ns = m["sim.time_ns"]
    if max(s[3] for s in slices) > end_ns + 1:
        errors.append(f"a slice ends after the run ({max(s[3] for s in slices)} > {end_ns} ns)")
    priv = [c for c in counters if c[0] == "private pages"]
    if not priv or max(c[2] for c in priv) <= 0:
        errors.append(f"private pages counter: {priv[:3]}")
    shared = [c for c in counters if c[0].startswith("shared pages")]
    if len(shared) != len(priv) or any(not 0 <= s[2] for s in shared):
        errors.append(f"shared pages counter: {shared[:3]}")
    rates = [c[2] for c in counters if "hit rate" in c[0]]
    if not rates or any(not 0 <= r <= 100 for r in rates):
        errors.append(f"hit rates outside 0..100: {rates[:5]}")

    # Sampled page walks: 1 in 64 by default on each vCPU's walk track; every walk with
    # --trace-walks 1, as many as results count, with their references; none with 0.
    walks = [s for s in slices if s[0].endswith(": page walks")]
    if not walks or not all("mem_refs" in s[4] and ("gva" in s[4] or "gpa" in s[4]) for s in walks):
        errors.append(f"page-walk slices: {len(walks)}, or one without mem_refs/address")
    if not m["walk.count"] // 64 <= len(walks) <= m["walk.count"] // 64 + 1:
        errors.append(f"default walk sampling: {len(walks)} walk slices for {m['walk.count']} walks")
    _, sw, _, _ = parse_perfetto_after(run, hvsim, scen, work, "w", "--trace-walks", "1")
    all_walks = [s for s in sw if s[0].endswith(": page walks")]
    if len(all_walks) != m["walk.count"]:
        errors.append(f"--trace-walks 1: {len(all_walks)} walk slices, results count {m['walk.count']} walks")
    if sum(s[4]["mem_refs"] for s in all_walks) != m["walk.mem_refs"]:
        errors.append(f"--trace-walks 1: walk slices make {sum(s[4]['mem_refs'] for s in all_walks)} references, "
                      f"results {m['walk.mem_refs']}")
    if not any(s[1] == "walk: nested fault" and "fault_gpa" in s[4] for s in all_walks):
        errors.append("no walk slice ending in a nested fault (the run takes NPFs)")
    _, sn, _, _ = parse_perfetto_after(run, hvsim, scen, work, "n", "--trace-walks", "0")
    if any(s[0].endswith(": page walks") for s in sn):
        errors.append("--trace-walks 0 still recorded walk slices")

    # Hardware and firmware work on tracks of its own: the RMP instructions of an SNP run
    # (one slice per RMPUPDATE KVM issues), the TDX module's leaves of a TD run.
    rmp = [s for s in slices if s[0].endswith(": RMP")]
    if not rmp or any(s[1] not in ("rmpupdate", "psmash", "pvalidate", "rmpadjust", "rmpquery") for s in rmp):
        errors.append(f"RMP track slices: {sorted({s[1] for s in rmp})}")
    if sum(1 for s in rmp if s[1] == "rmpupdate") != m["rmp.updates"]:
        errors.append(f"{sum(1 for s in rmp if s[1] == 'rmpupdate')} rmpupdate slices, results {m['rmp.updates']}")
    tscen = os.path.join(src, "scenarios/tdx/convert-while-running.json")
    tm = run(hvsim, tscen, f"{work}/t", "--trace", f"{work}/t.pftrace")["metrics"]
    _, ts, _, _ = parse_perfetto(f"{work}/t.pftrace")
    tdx = [s for s in ts if s[0].endswith(": TDX module")]
    for leaf, metric in (("tdh_mem_page_aug", "tdx.aug"), ("tdh_mem_range_block", "tdx.block"),
                         ("tdh_mem_track", "tdx.track"), ("tdh_mem_page_remove", "tdx.remove")):
        n = sum(1 for s in tdx if s[1] == leaf)
        if n != tm[metric] or n == 0:
            errors.append(f"TDX module track: {n} {leaf} slices, results {metric} = {tm[metric]}")

    # Byte-identical on a rerun.
    run(hvsim, scen, f"{work}/b", "--trace", f"{work}/b.pftrace")
    if open(f"{work}/a.pftrace", "rb").read() != open(f"{work}/b.pftrace", "rb").read():
        errors.append("two runs wrote different traces")
    if shutil.which("protoc"):
        with open(f"{work}/a.pftrace", "rb") as f:
            r = subprocess.run(["protoc", "--decode_raw"], stdin=f, capture_output=True)
        if r.returncode != 0:
            errors.append(f"protoc --decode_raw: {r.stderr[:200]}")

    # Chrome JSON: the same exits.
    run(hvsim, scen, f"{work}/c", "--trace", f"{work}/c.json")
    cj = json.load(open(f"{work}/c.json"))
    tid_names = {e["tid"]: e["args"]["name"] for e in cj["traceEvents"] if e["ph"] == "M" and "tid" in e}
    cx = [e for e in cj["traceEvents"] if e["ph"] == "X" and tid_names.get(e["tid"], "").startswith("vCPU ")
          and ":" not in tid_names[e["tid"]] and e["name"].startswith(("npf.", "hypercall."))]
    if len(cx) != npf + hc:
        errors.append(f"Chrome JSON: {len(cx)} exit slices, expected {npf + hc}")

    # Bounds: sampling, a window, a cap.
    _, s2, _, _ = parse_perfetto_after(run, hvsim, scen, work, "d", "--trace-sample", "4")
    n2 = len(exit_slices(s2))
    if not (npf + hc) // 4 <= n2 <= (npf + hc) // 4 + 1:
        errors.append(f"--trace-sample 4: {n2} exits of {npf + hc}")
    _, s3, c3, _ = parse_perfetto_after(run, hvsim, scen, work, "e", "--trace-window", "10us:20us")
    if not s3 or any(s[3] < 10_000 or s[2] > 20_000 for s in s3) or any(not 10_000 <= c[1] <= 20_000 for c in c3):
        errors.append(f"--trace-window 10us:20us: {len(s3)} slices, some outside")
    _, s4, _, _ = parse_perfetto_after(run, hvsim, scen, work, "f", "--trace-max-events", "1000")
    if len(s4) > 1000 + 4096 or len(exit_slices(s4)) >= npf:
        errors.append(f"--trace-max-events 1000: {len(s4)} slices")

    for extra, msg in ((["--trace", f"{work}/x.txt"], "expected a file name ending in .pftrace"),
                       (["--trace", f"{work}/x.json", "--trace-window", "5:1"], "expected START:END"),
                       (["--trace-window", "0:1ms"], "needs --trace"),
                       (["--trace-walks", "8"], "--trace-walks: needs --trace"),
                       (["--trace", f"{work}/nodir/x/y.json", "--trace-sample", "0"], "--trace-sample")):
        r = subprocess.run([hvsim, "run", scen, "-o", f"{work}/bad", "--quiet"] + extra, capture_output=True, text=True)
        if r.returncode != 2 or msg not in r.stderr:
            errors.append(f"run {extra}: exit {r.returncode}: {r.stderr.strip()}")
    if os.path.exists(f"{work}/bad/results.json"):
        errors.append("a refused --trace run wrote results")
    for e in errors[:20]:
        print(e)
    print(f"{len(errors)} problems; {len(slices)} slices, {npf} npf + {hc} hypercall exits")
    return 1 if errors else 0


def parse_perfetto_after(run_fn, hvsim, scen, work, tag, *extra):
    run_fn(hvsim, scen, f"{work}/{tag}", "--trace", f"{work}/{tag}.pftrace", *extra)
    return parse_perfetto(f"{work}/{tag}.pftrace")


if __name__ == "__main__":
    sys.exit(main())
