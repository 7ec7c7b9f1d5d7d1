#!/usr/bin/env python3
"""Every hvsim command in docs/guide.md's shell blocks runs: each line starting with
"build/hvsim" or "tools/setup.sh && build/hvsim" is run in order from a copy-free view of the
source tree (a work folder with the source's scenarios, sweeps, traces and tests linked in),
with build/hvsim the binary under test; every one must exit as the guide implies (0, or 1 for
--collect of an unrun sweep). Usage: check_guide.py HVSIM SRCDIR WORKDIR"""

import os
import re
import shlex
import shutil
import subprocess
import sys


def main():
    hvsim, src, work = sys.argv[1:4]
    hvsim = os.path.abspath(hvsim)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    for d in ("scenarios", "sweeps", "traces", "tests"):
        os.symlink(os.path.abspath(os.path.join(src, d)), os.path.join(work, d))
    text = open(os.path.join(src, "docs/guide.md")).read()
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("tools/setup.sh && "):
                line = line[len("tools/setup.sh && "):]
            if line.startswith("build/hvsim "):
                cmds.append(line)
    errors = []
    if len(cmds) < 15:
        errors.append(f"only {len(cmds)} commands found in the guide")
    for c in cmds:
        argv = [hvsim] + shlex.split(c)[1:]
        r = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=600)
        want = 1 if "--collect" in argv else 0
        if r.returncode != want:
            errors.append(f"{c}: exit {r.returncode} (expected {want}): {r.stderr.strip()[-300:]}")
    for e in errors:
        print(e)
    print(f"{len(errors)} problems; {len(cmds)} commands run")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
