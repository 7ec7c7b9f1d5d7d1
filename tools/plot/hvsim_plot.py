#!/usr/bin/env python3
"""hvsim plot: pictures from hvsim's outputs (matplotlib; PNG or SVG by the output's suffix).

  hvsim plot [--kind K] INPUT... -o OUT.png|OUT.svg [--metric M] [--x KEY] [--title T]

Kinds (default: from the input):
  breakdown   results.json ...   stacked cycles of each fault path, step by step (mean per fault)
  cdf         results.json ...   CDF of fault latency per fault path (power-of-two buckets)
  conversion  results.json ...   conversion cycles per page vs conversion size, one line per run
  sweep       sweep.csv          a metric (--metric; default the first) vs a grid key (--x;
                                 default the first), one line per combination of the other keys
  tornado     sensitivity.json   relative move of the metric at the low and high factor
  compare     compare.json       the compared metrics side by side, one bar per column
Several results.json give one series each, labelled by platform / VM type / folder."""

import argparse
import csv
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402


class PlotError(Exception):
    pass


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise PlotError(f"{path}: cannot open: {e.strerror}")
    except json.JSONDecodeError as e:
        raise PlotError(f"{path}: not JSON: {e}")


def guess_kind(path):
    name = os.path.basename(path)
    if name.endswith(".csv"):
        return "sweep"
    d = load_json(path)
    if isinstance(d, dict) and "rows" in d and "factors" in d:
        return "tornado"
    if isinstance(d, dict) and "columns" in d and "table" in d:
        return "compare"
    if isinstance(d, dict) and "metrics" in d and "fault_paths" in d:
        return "breakdown"
    raise PlotError(f"{path}: expected results.json, sweep.csv, sensitivity.json or compare.json")


def label_of(path, r):
    """What tells runs apart: platform and VM type, else the folder."""
    plat = r.get("platform", "")
    vm = (r.get("params") or {}).get("vm.type") or r.get("vm_type")
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return " ".join(x for x in (plat, vm) if x) or folder


def labels_for(paths, runs):
    labels = [label_of(p, r) for p, r in zip(paths, runs)]
    if len(set(labels)) < len(labels):   # same platform: use the folders
        labels = [os.path.basename(os.path.dirname(os.path.abspath(p))) or p for p in paths]
    return labels


def results_inputs(paths):
    runs = [load_json(p) for p in paths]
    for p, r in zip(paths, runs):
        if not isinstance(r, dict) or "metrics" not in r:
            raise PlotError(f"{p}: expected an hvsim results.json")
    return runs, labels_for(paths, runs)


def plot_breakdown(ax, paths, args):
    runs, labels = results_inputs(paths)
    bars = []   # (label, {step: cycles})
    for lab, r in zip(labels, runs):
        for fp in r.get("fault_paths", []):
            steps = {}
            for s in fp.get("steps", []):
                steps[s["name"]] = steps.get(s["name"], 0) + s["cycles"]
            who = f"{lab}: " if len(runs) > 1 else ""
            bars.append((f"{who}{fp['path']} ({fp['count']}x)", steps))
    if not bars:
        raise PlotError(f"{', '.join(paths)}: no fault paths to draw (the run took no faults)")
    order = []
    for _, steps in bars:
        for k in steps:
            if k not in order:
                order.append(k)
    cmap = plt.get_cmap("tab20")
    # Horizontal bars, first path on top: long path names stay readable.
    ys = list(range(len(bars)))[::-1]
    lefts = [0.0] * len(bars)
    for i, step in enumerate(order):
        vals = [steps.get(step, 0) for _, steps in bars]
        ax.barh(ys, vals, left=lefts, label=step, color=cmap(i % 20))
        lefts = [b + v for b, v in zip(lefts, vals)]
    for y, total in zip(ys, lefts):
        ax.annotate(f" {total:,.0f}", (total, y), va="center", fontsize=8)
    ax.set_yticks(ys)
    ax.set_yticklabels([b[0] for b in bars], fontsize=8)
    ax.set_xlabel("cycles per fault (mean of each step)")
    ax.set_xlim(0, max(lefts) * 1.15)
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.set_title(args.title or "Fault path breakdown")
    ax.legend(fontsize=7, ncol=2 if len(order) > 10 else 1, loc="upper left", bbox_to_anchor=(1.01, 1))


def plot_cdf(ax, paths, args):
    runs, labels = results_inputs(paths)
    drawn = 0
    for lab, r in zip(labels, runs):
        for name, buckets in sorted(r.get("histograms", {}).items()):
            pts = sorted((int(k), n) for k, n in buckets.items())
            total = sum(n for _, n in pts)
            if not total:
                continue
            # Within a bucket [lo, 2 lo) the faults are drawn spread evenly (on the log axis):
            # the CDF rises from its value at lo to its value at 2 lo.
            xs, ys, acc = [], [], 0
            for lo, n in pts:
                lo = max(lo, 1)
                xs += [lo, lo * 2]
                ys += [acc / total, (acc + n) / total]
                acc += n
            tag = name.replace("fault_cycles.", "")
            ax.plot(xs, ys, label=tag + (f" ({lab})" if len(runs) > 1 else ""))
            drawn += 1
    if not drawn:
        raise PlotError(f"{', '.join(paths)}: no fault latency histograms (the run took no faults)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("fault latency (cycles, power-of-two buckets)")
    ax.set_ylabel("fraction of faults")
    ax.set_ylim(0, 1.02)
    ax.set_title(args.title or "Fault latency CDF")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def plot_conversion(ax, paths, args):
    runs, labels = results_inputs(paths)
    drawn = 0
    for lab, r in zip(labels, runs):
        by_size = {}
        for c in r.get("conversions", {}).get("list", []):
            if c.get("errno") or c.get("trigger") == "vm.private":   # failed, or set up before the run
                continue
            pages = max(1, int(c["size"]) // 4096)
            by_size.setdefault((c["to"], pages), []).append(c["cycles"] / pages)
        for to in ("private", "shared"):
            pts = sorted((p, sum(v) / len(v)) for (t, p), v in by_size.items() if t == to)
            if pts:
                ax.plot([p for p, _ in pts], [c for _, c in pts], marker="o", label=f"{lab}: to {to}")
                drawn += 1
    if not drawn:
        raise PlotError(f"{', '.join(paths)}: no successful conversions to draw")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("conversion size (4 KiB pages)")
    ax.set_ylabel("cycles per page")
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.set_title(args.title or "Conversion cost per page")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def numeric(v):
    try:
        return float(v)
    except ValueError:
        return None


def plot_sweep(ax, paths, args):
    if len(paths) != 1:
        raise PlotError("sweep: expected one sweep.csv")
    try:
        rows = list(csv.DictReader(open(paths[0])))
    except OSError as e:
        raise PlotError(f"{paths[0]}: cannot open: {e.strerror}")
    if not rows or "run" not in rows[0] or "status" not in rows[0]:
        raise PlotError(f"{paths[0]}: expected the sweep.csv hvsim sweep writes")
    cols = list(rows[0].keys())
    # Grid keys are the parameter columns (they name parameters: dotted, before the metrics).
    manifest = os.path.join(os.path.dirname(paths[0]), "sweep.json")
    if os.path.exists(manifest):
        m = load_json(manifest)
        keys = [g[0] for g in m["grid"]]
        metrics = m["metrics"]
    else:
        raise PlotError(f"{manifest}: missing (hvsim sweep writes it beside sweep.csv)")
    x = args.x or keys[0]
    y = args.metric or metrics[0]
    if x not in keys:
        raise PlotError(f"--x: expected a grid key of the sweep {keys}, got '{x}'")
    if y not in metrics:
        raise PlotError(f"--metric: expected a metric of the sweep {metrics}, got '{y}'")
    others = [k for k in keys if k != x]
    series = {}
    for r in rows:
        if r["status"] in ("missing",) or r[y] == "":
            continue
        xv = numeric(r[x])
        yv = numeric(r[y])
        if xv is None or yv is None:
            raise PlotError(f"{paths[0]}: run {r['run']}: {x}={r[x]!r}, {y}={r[y]!r} are not numbers")
        lab = ", ".join(f"{k}={r[k]}" for k in others) or y
        series.setdefault(lab, []).append((xv, yv))
    if not series:
        raise PlotError(f"{paths[0]}: no finished runs")
    # Distinct markers and dashes: series that coincide stay visible.
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "-"), ("x", "--")]
    for i, (lab, pts) in enumerate(series.items()):
        pts.sort()
        mk, ls = styles[i % len(styles)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=mk, linestyle=ls, label=lab,
                markersize=7 - (i % 3))
    xs = sorted({p[0] for pts in series.values() for p in pts})
    if len(xs) > 2 and xs[0] > 0 and xs[-1] / xs[0] >= 16:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(x)
    ax.set_ylabel(y + unit_suffix(y))
    ax.set_title(args.title or f"{y} vs {x}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def unit_suffix(metric):
    if metric.endswith("cycles"):
        return " (cycles)"
    if metric.endswith("_ns"):
        return " (ns)"
    return ""


def plot_tornado(ax, paths, args):
    rep = load_json(paths[0])
    metric = args.metric or next(iter(rep["metrics"]))
    if metric not in rep["metrics"]:
        raise PlotError(f"--metric: expected one of {list(rep['metrics'])}, got '{metric}'")
    rows = [r for r in rep["rows"] if any(v for v in r["moves"][metric] if v is not None)][:args.top]
    if not rows:
        raise PlotError(f"{paths[0]}: no parameter moves {metric}")
    rows.reverse()   # largest at the top
    lo_f, hi_f = rep["factors"]
    names = [r["parameter"] + ("" if r["source"].startswith("estimate") else " *") for r in rows]
    lo = [100 * (r["moves"][metric][0] or 0) for r in rows]
    hi = [100 * (r["moves"][metric][1] or 0) for r in rows]
    ys = range(len(rows))
    ax.barh(ys, lo, color="tab:blue", label=f"x{lo_f}")
    ax.barh(ys, hi, color="tab:red", alpha=0.8, label=f"x{hi_f}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(list(ys))
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel(f"change of {metric} (%)")
    ax.set_title(args.title or f"Sensitivity of {rep['scenario']} ({metric}; * = sourced, else estimate)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)


def plot_compare(ax, paths, args):
    rep = load_json(paths[0])
    cols = rep["columns"]
    metric = args.metric or "sim.cycles"
    vals, labels, missing = [], [], []
    for c in cols:
        v = rep["table"].get(metric, {}).get(c["name"])
        if v is None:
            missing.append(c["name"])
            continue
        vals.append(v)
        labels.append(c["name"])
    if not vals:
        raise PlotError(f"{paths[0]}: no column reports {metric}")
    ax.bar(range(len(vals)), vals, color=[plt.get_cmap("tab10")(i % 10) for i in range(len(vals))])
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(labels, fontsize=8)
    for i, v in enumerate(vals):
        ax.annotate(f"{v:,.0f}" if v >= 100 else f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.set_ylabel(metric + unit_suffix(metric))
    title = args.title or f"{metric}: {rep.get('scenario', '')}"
    if missing:
        title += f"\n(not run: {', '.join(missing)})"
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)


KINDS = {"breakdown": plot_breakdown, "cdf": plot_cdf, "conversion": plot_conversion, "sweep": plot_sweep,
         "tornado": plot_tornado, "compare": plot_compare}


def main(argv):
    ap = argparse.ArgumentParser(prog="hvsim plot", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("-o", "--out", required=True, help="output file: .png or .svg")
    ap.add_argument("--kind", choices=sorted(KINDS))
    ap.add_argument("--metric", "-m")
    ap.add_argument("--x")
    ap.add_argument("--title")
    ap.add_argument("--top", type=int, default=20, help="tornado: parameters shown (default 20)")
    args = ap.parse_args(argv)
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".png", ".svg"):
        print(f"hvsim plot: {args.out}: expected a .png or .svg file name", file=sys.stderr)
        return 2
    try:
        kind = args.kind or guess_kind(args.inputs[0])
        fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
        KINDS[kind](ax, args.inputs, args)
        fig.tight_layout()
        tmp = args.out + ".tmp" + ext
        fig.savefig(tmp, format=ext[1:])
        os.replace(tmp, args.out)
    except PlotError as e:
        print(f"hvsim plot: {e}", file=sys.stderr)
        return 2
    print(f"{kind}: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
