#!/usr/bin/env python3
"""Catch2 test names CTest can run: catch_discover_tests (Catch2 v2) splits the names it
lists at ';' (a CMake list separator), so a TEST_CASE whose name holds ';' is registered as
pieces that match no test and never runs. This check fails on such a name; --fix rewrites
'; ' as ', ' in place.
Usage: check_test_names.py SRCDIR [--fix]"""

import pathlib
import re
import sys

LIT = re.compile(r'\s*"((?:[^"\\]|\\.)*)"')


def names(text):
    """(start, end, name) of each TEST_CASE's name: its adjacent string literals."""
    for m in re.finditer(r'\b(?:TEST_CASE|SCENARIO|TEMPLATE_TEST_CASE)\s*\(', text):
        i, parts, start = m.end(), [], None
        while True:
            lm = LIT.match(text, i)
            if not lm:
                break
            start = lm.start(1) if start is None else start
            parts.append(lm.group(1))
            i = lm.end()
        if parts:
            yield start, i, "".join(parts)


def main():
    src = pathlib.Path(sys.argv[1])
    fix = "--fix" in sys.argv[2:]
    bad = []
    for f in sorted((src / "tests").rglob("*.cpp")):
        text = f.read_text()
        out, last = [], 0
        for start, end, name in names(text):
            if ";" in name:
                bad.append(f"{f.relative_to(src)}: \"{name}\"")
                out.append(text[last:start])
                out.append(text[start:end].replace("; ", ", ").replace(";", ","))
                last = end
        if fix and out:
            out.append(text[last:])
            f.write_text("".join(out))
    for b in bad:
        print(("fixed: " if fix else "a ';' in a test name (CTest would never run it): ") + b)
    print(f"{len(bad)} test names with ';'")
    return 0 if fix or not bad else 1


if __name__ == "__main__":
    sys.exit(main())
