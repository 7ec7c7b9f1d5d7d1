#!/usr/bin/env python3
"""The documentation stands on its own: no references to documents that are not in the
repository (design notes, reference files, mailing-list seeds by number), every link and
docs/ path mentioned resolves, and docs/sources.md lists every parameter of every preset
with the value and source `hvsim params` prints.
Usage: check_docs.py REPO HVSIM"""
import pathlib
import re
import subprocess
import sys

# Documents outside the repository that users cannot open, and numbered seeds.
BANNED = [r"DESIGN\.md", r"hw-models\.md", r"kvm-semantics\.md", r"published-numbers\.md", r"snp-rmp\.md",
          r"tdx-module\.md", r"arm64-pkvm\.md", r"\bseed 0\d\d\b", r"shared/reference", r"/work/"]
SCANNED = ["README.md", "docs", "sim", "kernel", "models", "scenarios", "sweeps", "tools", "tests", "CMakeLists.txt"]
SUFFIXES = {".md", ".cpp", ".hpp", ".json", ".py", ".sh", ".cmake", ".txt"}


def files(repo):
    for s in SCANNED:
        p = repo / s
        if p.is_file():
            yield p
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix in SUFFIXES and "__pycache__" not in f.parts:
                    yield f


def preset_rows(hvsim, platform):
    out = subprocess.run([hvsim, "params", platform], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        name, value, unit, rest = line[0:40].strip(), line[41:55].strip(), line[56:64].strip(), line[65:]
        m = re.match(r"(.*)  \[(.*)\]$", rest)
        yield name, value, unit, m.group(2) if m else ""


def main():
    repo, hvsim = pathlib.Path(sys.argv[1]), sys.argv[2]
    me = pathlib.Path(__file__).resolve()
    bad = []
    for f in files(repo):
        if f.resolve() == me:
            continue
        text = f.read_text(errors="replace")
        for pat in BANNED:
            for m in re.finditer(pat, text):
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{f.relative_to(repo)}:{line}: refers to '{m.group(0)}', which is not in the repository")
        # docs/NAME.md mentioned anywhere must exist.
        for m in re.finditer(r"\bdocs/([\w.-]+\.md)", text):
            if not (repo / "docs" / m.group(1)).exists():
                bad.append(f"{f.relative_to(repo)}: names docs/{m.group(1)}, which does not exist")
    # Relative links in the Markdown files resolve.
    for f in [repo / "README.md"] + sorted((repo / "docs").glob("*.md")):
        for m in re.finditer(r"\]\(([^)#:]+)(#[^)]*)?\)", f.read_text()):
            if not (f.parent / m.group(1)).exists():
                bad.append(f"{f.relative_to(repo)}: link to {m.group(1)} does not resolve")
    # docs/sources.md: every parameter of every preset, value and source as `hvsim params` has them.
    sources = (repo / "docs" / "sources.md").read_text()
    sections = re.split(r"\n## ", sources)
    for platform in ("zen4-genoa", "sapphire-rapids", "neoverse-n2"):
        sec = next((s for s in sections if s.split("\n", 1)[0].split(" ")[1:2] == [platform + ":"]), None)
        if sec is None:
            bad.append(f"docs/sources.md: no section for {platform}")
            continue
        for name, value, unit, source in preset_rows(hvsim, platform):
            row = f"| `{name}` | {value.replace('|', '/')} | {unit} | {source.replace('|', '/')} |"
            if row not in sec:
                bad.append(f"docs/sources.md, {platform}: expected the row {row}")
    for b in bad[:40]:
        print(b)
    print(f"check_docs: {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
