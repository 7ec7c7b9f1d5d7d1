#!/usr/bin/env python3
"""docs/kvm-selftests.md points at the steps it describes: every table row that names
scenario files (first column: what the selftest checks, with its line numbers `L<a>[-<b>]`;
second: files; third: step pointers) is checked against those files.

- Files: backticked names relative to scenarios/kvm-selftests/, with `{a,b}` alternatives and
  `*` / `<type>` wildcards; "same" repeats the row above. Every name must match a file.
- Steps: backticked JSON pointers `/steps/N` (also `/steps/N/parallel/K`), ranges
  `/steps/A`..`/steps/B` or `/steps/A-B`, bare `A-B` / `N` after a `/steps/` in the same cell,
  and a trailing `+ kN` (the same steps for flag set N = 0, 1, 2 at a stride of k).
- Every pointer resolves in every file of the row, and the name of every step it covers
  cites a line inside the row's line numbers or names a function the row names (a
  backticked identifier in the first column); each range has at least one step citing a line
  inside the row's line numbers.
Usage: check_selftest_doc.py REPO [--selftest]   (--selftest: broken copies of the doc must fail)"""
import fnmatch
import json
import pathlib
import re
import sys

LINE = re.compile(r"\bL(\d+)(?:-(\d+))?")
IDENT = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)(?:\(\))?`")


def spans(text):
    return [(int(a), int(b or a)) for a, b in LINE.findall(text)]


def expand_braces(pat):
    m = re.search(r"\{([^{}]*)\}", pat)
    if not m:
        return [pat]
    out = []
    for alt in m.group(1).split(","):
        out += expand_braces(pat[:m.start()] + alt + pat[m.end():])
    return out


def row_files(cell, folder, names):
    pats = [t for t in re.findall(r"`([^`]+)`", cell) if ".json" in t]
    files, errors = [], []
    for pat in pats:
        for p in expand_braces(pat):
            p = re.sub(r"<[^>]+>", "*", p)
            hit = sorted(n for n in names if fnmatch.fnmatchcase(n, p))
            if not hit:
                errors.append(f"no scenario file matches `{pat}` ({p})")
            files += hit
    return files, errors


def pointers(cell):
    """[(first, last, tail)] step-index ranges (tail: '/parallel/K' or ''), with '+ kN' expanded."""
    stride = re.search(r"\+\s*(\d+)N", cell)
    toks = re.findall(r"`([^`]+)`", cell)
    ranges = []
    i = 0
    seen_steps = False
    while i < len(toks):
        t = toks[i]
        m = re.fullmatch(r"/steps/(\d+)(?:-(\d+))?((?:/parallel/\d+)?)", t)
        if m:
            seen_steps = True
            a = int(m.group(1))
            b = int(m.group(2)) if m.group(2) else a
            # `/steps/A`..`/steps/B`
            after = cell.split("`" + t + "`", 1)[1]
            if not m.group(2) and after.startswith("..") and i + 1 < len(toks):
                m2 = re.fullmatch(r"/steps/(\d+)", toks[i + 1])
                if m2:
                    b = int(m2.group(1))
                    i += 1
            ranges.append((a, b, m.group(3)))
        elif seen_steps:
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", t)
            if m:
                ranges.append((int(m.group(1)), int(m.group(2) or m.group(1)), ""))
        i += 1
    if stride:
        k = int(stride.group(1))
        ranges = [(a + n * k, b + n * k, tail) for n in range(3) for a, b, tail in ranges]
    return ranges


def step_at(steps, idx, tail):
    if idx >= len(steps):
        return None
    s = steps[idx]
    if tail:
        k = int(tail.rsplit("/", 1)[1])
        members = s.get("parallel")
        if not isinstance(members, list) or k >= len(members):
            return None
        s = members[k]
    return s


def check(repo, doc=None):
    folder = repo / "scenarios" / "kvm-selftests"
    names = sorted(p.name for p in folder.glob("*.json"))
    if doc is None:
        doc = (repo / "docs" / "kvm-selftests.md").read_text(encoding="utf-8")
    errors = []
    prev_files = []
    checked = 0
    for n, line in enumerate(doc.splitlines(), 1):
        if not line.startswith("|") or "/steps/" not in line:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        # Table cells may contain escaped pipes (MMAP\|INIT_SHARED).
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        if len(cells) < 3:
            continue
        what, fcell, scell = cells[0], cells[1], cells[2]
        where = f"docs/kvm-selftests.md:{n}"
        if fcell == "same":
            files = prev_files
        else:
            files, errs = row_files(fcell, folder, names)
            errors += [f"{where}: {e}" for e in errs]
        prev_files = files
        if not files:
            errors.append(f"{where}: a row with step pointers names no scenario file")
            continue
        row_spans = spans(what)
        funcs = set(IDENT.findall(what))
        ranges = pointers(scell)
        if not ranges:
            errors.append(f"{where}: no step pointer could be read from {scell!r}")
        for f in files:
            steps = json.loads((folder / f).read_text(encoding="utf-8"))["steps"]
            for a, b, tail in ranges:
                if b < a:
                    errors.append(f"{where}: empty range /steps/{a}..{b}")
                    continue
                inside = False
                for idx in range(a, b + 1):
                    s = step_at(steps, idx, tail)
                    ptr = f"/steps/{idx}{tail}"
                    if s is None:
                        errors.append(f"{where}: {f}: {ptr} does not exist ({len(steps)} steps)")
                        continue
                    checked += 1
                    if "repeat" in s:   # a loop: its body's name (with the loop variable)
                        s = s["repeat"].get("step", {})
                    name = s.get("name", "")
                    if not name and "parallel" in s:
                        name = " ".join(m.get("name", "") for m in s["parallel"])
                    cited = spans(name)
                    hit = any(x <= d and c <= y for x, y in cited for c, d in row_spans)
                    inside |= hit
                    if not hit and not any(fn in name for fn in funcs):
                        errors.append(f"{where}: {f}: {ptr} is \"{name}\": cites none of the row's lines "
                                      f"{[f'L{c}-{d}' if c != d else f'L{c}' for c, d in row_spans]} and names none of "
                                      f"{sorted(funcs)}")
                if row_spans and not inside:
                    errors.append(f"{where}: {f}: no step of /steps/{a}..{b}{tail} cites the row's lines")
    return errors, checked


def selftest(repo):
    """The check fails where it should: a pointer moved past the end, a pointer moved onto a
    step of another function, a row whose file does not exist."""
    doc = (repo / "docs" / "kvm-selftests.md").read_text(encoding="utf-8")
    bad = 0
    cases = [
        ("`/steps/0`..`/steps/11` |", "`/steps/0`..`/steps/12` |"),             # guest_memfd_guest: 12 steps
        ("| `/steps/24`..`/steps/30` |", "| `/steps/10`..`/steps/12` |"),       # overflow row onto test_mmap_cow
        ("`set_memory_region-test_delete_memory_region.json`", "`set_memory_region-test_delete_memory_regions.json`"),
    ]
    for old, new in cases:
        if old not in doc:
            print(f"check_selftest_doc: selftest case not found in the doc: {old}", file=sys.stderr)
            return 1
        errors, _ = check(repo, doc.replace(old, new, 1))
        if not errors:
            print(f"check_selftest_doc: replacing {old} by {new} was not caught", file=sys.stderr)
            bad += 1
    print(f"check_selftest_doc: {len(cases) - bad} of {len(cases)} broken docs caught")
    return 1 if bad else 0


def main():
    repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    if "--selftest" in sys.argv[2:]:
        return selftest(repo)
    errors, checked = check(repo)
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"check_selftest_doc: {len(errors)} problems", file=sys.stderr)
        return 1
    print(f"check_selftest_doc: {checked} step pointers resolve and cite their rows' lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
