#!/usr/bin/env python3
"""Seeds the uapi fuzz corpus from the shipped scenarios: each scenario's steps are mapped
onto the fuzz decoder's menu (tests/fuzz/uapi_decoder.cpp), every argument to the nearest
value the decoder can express. The result is a starting point that already reaches the
paths the shipped scenarios reach; libFuzzer mutates from there.

    tests/fuzz/seed_uapi_corpus.py scenarios/ tests/fuzz/corpus/uapi/
"""
import hashlib, json, os, re, sys

KiB, MiB = 1024, 1024 * 1024
SIZES = [0, 1, 4 * KiB, 8 * KiB, 2 * MiB - 4 * KiB, 2 * MiB, 4 * MiB, 16 * MiB, 4 * KiB + 1, 1024 * MiB]
OFFSETS = [0, 4 * KiB, 2 * MiB - 4 * KiB, 2 * MiB, 6 * MiB, 16 * MiB - 4 * KiB, 16 * MiB, 1, 32 * MiB]
GMEM_SIZES = [2 * MiB, 16 * MiB, 4 * KiB, 32 * MiB]
ACCESS_SIZES = [64, 4 * KiB, 8 * KiB, 64 * KiB]
HOST_SIZES = [1, 64, 4 * KiB, 8 * KiB, 2 * MiB]
UNITS = {"KiB": KiB, "MiB": MiB, "GiB": 1024 * MiB, "TiB": 1024 * 1024 * MiB}


def num(v):
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        m = re.fullmatch(r"(\d+)\s*([KMGT]iB)", v)
        if m:
            return int(m.group(1)) * UNITS[m.group(2)]
        return int(v, 0)
    return 0


def near(table, v):
    v = num(v)
    return min(range(len(table)), key=lambda i: abs(table[i] - v))


def strip_comments(text):
    return re.sub(r"^\s*//.*$", "", text, flags=re.M)


def encode(s):
    vm = s.get("vm", {})
    t = vm.get("type", "default")
    params = s.get("params", {})
    if t == "default":
        shape = 0
    elif t in ("sw_protected", "pkvm"):
        shape = 2 if params.get("kvm.config.vm_memory_attributes") is False else 1
    else:
        shape = 3
    if params.get("host.thp", True):
        shape |= 0x10
    if vm.get("private"):
        shape |= 0x20
    ids = {g["id"]: i for i, g in enumerate(vm.get("guest_memfd", []))}
    if shape % 4 and not ids:
        ids = {"g0": 0}
    out = [shape]

    def gm(ref):
        return ids.get(ref, 0) if isinstance(ref, str) else 0

    for st in s.get("steps", []):
        if "ioctl" in st:
            (name, a), = st["ioctl"].items()
            if name == "create_guest_memfd":
                f = a.get("flags", [])
                f = (("mmap" in f) | (("init_shared" in f) << 1)) if isinstance(f, list) else 0
                ids[a.get("id", "x")] = len(ids)
                out += [0, f, near(GMEM_SIZES, a.get("size", 0))]
            elif name == "set_user_memory_region2":
                f = a.get("flags", [])
                f = f if isinstance(f, list) else []
                b = a.get("slot", 0) % 3
                if "guest_memfd" in f: b |= 4
                if "log_dirty_pages" in f: b |= 8
                if "readonly" in f: b |= 16
                out += [1, b, near(OFFSETS, a.get("gpa", 0)), near(SIZES, a.get("size", 0)), 0]
                if b & 4:
                    out += [gm(a.get("guest_memfd")), near(OFFSETS, a.get("guest_memfd_offset", 0))]
            elif name == "set_memory_attributes":
                out += [2, near(OFFSETS, a.get("gpa", 0)), near(SIZES, a.get("size", 0)),
                        int("private" in (a.get("attributes") or []))]
            elif name == "set_memory_attributes2":
                pol = ["zero", "preserve", "none"].index(a.get("content_policy", "zero")) if isinstance(a.get("content_policy"), str) else 0
                out += [3, gm(a.get("guest_memfd")), near(OFFSETS, a.get("offset", 0)), near(SIZES, a.get("size", 0)),
                        int("private" in (a.get("attributes") or [])), pol]
            elif name == "fallocate":
                mode = a.get("mode", [])
                m = 1 if isinstance(mode, list) and "punch_hole" in mode else 2 if mode else 0
                out += [4, m, gm(a.get("guest_memfd")), near(OFFSETS, a.get("offset", 0)), near(SIZES, a.get("len", 0))]
            elif name == "pre_fault_memory":
                out += [5, near(OFFSETS, a.get("gpa", 0)), near(SIZES, a.get("size", 0))]
        elif "host" in st:
            (name, a), = st["host"].items()
            if name in ("write", "read"):
                out += [6 if name == "write" else 7, near(HOST_SIZES, a.get("size", 0))]
                if "guest_memfd" in a:
                    out += [1, gm(a["guest_memfd"]), near(OFFSETS, a.get("offset", 0))]
                else:
                    out += [0, near(OFFSETS, num(a.get("userspace_addr", 0x7f0000000000)) - 0x7f0000000000)]
                if name == "write":
                    out += [num(a.get("value", 0)) & 0xff]
            elif name == "mmap":
                out += [8, gm(a.get("guest_memfd")), near(OFFSETS, a.get("offset", 0)), near(SIZES, a.get("size", 0)),
                        int(a.get("shared", True))]
            elif name in ("pin", "unpin"):
                out += [9, near(OFFSETS, num(a.get("userspace_addr", 0x7f0000000000)) - 0x7f0000000000),
                        near(HOST_SIZES, a.get("size", 0)), int(name == "pin")]
        elif "access" in st:
            a = st["access"]
            f = int(a.get("op") == "write")
            if "private" in a:
                f |= 2 | (4 * bool(a["private"]))
            if st.get("vcpu") == 1:
                f |= 8
            if "exit" in st.get("expect", {}):
                f |= 0x80
            out += [10, f, near(OFFSETS, a.get("gpa", 0)), near(ACCESS_SIZES, a.get("size", 0))]
            if f & 1:
                out += [num(a.get("value", 0)) & 0xff]
        elif "hypercall" in st:
            a = st["hypercall"].get("map_gpa_range", {})
            out += [11, (2 if a.get("to") == "private" else 0) | (st.get("vcpu") == 1),
                    near(OFFSETS, a.get("gpa", 0)), near(SIZES, a.get("size", 0))]
    return bytes(b & 0xff for b in out)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    n = 0
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith(".json") or f.endswith(".schema.json"):
                continue
            try:
                s = json.loads(strip_comments(open(os.path.join(root, f)).read()))
            except ValueError:
                continue
            if not isinstance(s, dict) or len(s.get("steps", [])) < 2:
                continue
            data = encode(s)
            if len(data) < 4:
                continue
            open(os.path.join(dst, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb").write(data)
            n += 1
    print(f"{n} seeds written to {dst}")


if __name__ == "__main__":
    main()
