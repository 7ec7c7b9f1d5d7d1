"""hvsim re-executes itself with glibc.malloc.hugetlb=1 (sim/host_tuning.hpp): results.json says
so in host.heap_thp, HVSIM_HOST_THP=0 keeps 4 KiB pages, and the results are the same."""
import json
import os
import platform
import shutil
import subprocess
import sys

hvsim, scenario, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
runs = {}
for name, thp in (("on", None), ("off", "0")):
    env = {k: v for k, v in os.environ.items() if k not in ("HVSIM_HOST_THP", "HVSIM_HOST_THP_SET", "GLIBC_TUNABLES")}
    if thp is not None:
        env["HVSIM_HOST_THP"] = thp
    out = os.path.join(work, name)
    subprocess.run([hvsim, "run", "--quiet", "--no-progress", "-o", out, scenario], env=env, check=True)
    with open(os.path.join(out, "results.json")) as f:
        runs[name] = json.load(f)
lib, ver = platform.libc_ver()
major, minor = (int(x) for x in (ver.split(".") + ["0"])[:2]) if lib == "glibc" else (0, 0)
want = lib == "glibc" and (major, minor) >= (2, 35)
errors = []
if runs["on"]["host"]["heap_thp"] != want:
    errors.append(f"default run: host.heap_thp {runs['on']['host']['heap_thp']}, expected {want} ({lib} {ver})")
if runs["off"]["host"]["heap_thp"]:
    errors.append("HVSIM_HOST_THP=0: host.heap_thp true")
for r in runs.values():
    del r["host"]
if runs["on"] != runs["off"]:
    errors.append("results.json differ apart from host")
# A value that is neither 0 nor 1: one line on stderr, exit 2, no results.
env = {k: v for k, v in os.environ.items() if k not in ("HVSIM_HOST_THP_SET", "GLIBC_TUNABLES")}
env["HVSIM_HOST_THP"] = "off"
out = os.path.join(work, "bad")
p = subprocess.run([hvsim, "run", "--quiet", "--no-progress", "-o", out, scenario], env=env,
                   capture_output=True, text=True)
want_err = 'hvsim: HVSIM_HOST_THP: expected 0 or 1, got "off"\n'
if p.returncode != 2 or p.stderr != want_err or p.stdout or os.path.exists(out):
    errors.append(f"HVSIM_HOST_THP=off: exit {p.returncode}, stderr {p.stderr!r}, stdout {p.stdout!r}")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
