#!/usr/bin/env python3
"""The documentation stands on its own: no references to documents that are not in the
repository (design notes, reference files, mailing-list seeds by number), every link and
docs/ path mentioned resolves, and docs/sources.md lists every parameter of every preset
with the value and source `hvsim params` prints.
Usage: check_docs.py REPO HVSIM [--write-sources]   (the last rewrites the preset tables)"""
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
        if not line.strip():
            break   # the parameter table ends; the kernel profiles follow (not preset values)
        name, value, unit, rest = line[0:40].strip(), line[41:55].strip(), line[56:64].strip(), line[65:]
        m = re.match(r"(.*)  \[(.*)\]$", rest)
        yield name, value, unit, m.group(2) if m else ""


def write_sources(repo, hvsim):
    """Rewrites the parameter table of each preset's section of docs/sources.md from
    `hvsim params` (after a parameter is added or a source changes)."""
    path = repo / "docs" / "sources.md"
    lines = path.read_text().split("\n")
    out, platform, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            words = line.split(" ")
            platform = words[2].rstrip(":") if len(words) > 2 else None
        if line.startswith("| parameter | value | unit | source |") and platform:
            out += [line, lines[i + 1]]
            i += 2
            while i < len(lines) and lines[i].startswith("| `"):
                i += 1
            for name, value, unit, source in preset_rows(hvsim, platform):
                out.append(f"| `{name}` | {value.replace('|', '/')} | {unit} | {source.replace('|', '/')} |")
            continue
        out.append(line)
        i += 1
    path.write_text("\n".join(out))


def main():
    repo, hvsim = pathlib.Path(sys.argv[1]), sys.argv[2]
    if len(sys.argv) > 3 and sys.argv[3] == "--write-sources":
        write_sources(repo, hvsim)
        return 0
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
