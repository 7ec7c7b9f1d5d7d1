#!/usr/bin/env python3
"""Generate the differential uAPI corpus for `hvsim diff-kvm` (scenarios/diff-kvm/).

One scenario file per sequence, named after what it checks (e.g. gmem-create-size-4095.json).
Every step carries an `expect` that is true for the SIMULATOR'S DEFAULT CONFIGURATION: a
distribution kernel with everything on (SMM, TDP, SEV/SNP/TDX, SW_PROTECTED VMs, generic memory
attributes, guest_memfd MMAP and INIT_SHARED) on the default kernel profile, kvm.profile
linux-6.18 (per-VM KVM_SET_MEMORY_ATTRIBUTES, no KVM_SET_MEMORY_ATTRIBUTES2, a second guest_memfd
binding is EINVAL). Sequences about another profile name it in their "params" (the
KVM_SET_MEMORY_ATTRIBUTES2 ones: kvm.profile inplace). The rules come from
docs/kvm-model.md and docs/ground-truth.md (what a real 6.18 kernel was checked to do wins) and
the Linux sources it cites. `hvsim diff-kvm` ignores these expectations: it compares the
simulated KVM, narrowed to the host's configuration, with the host's real KVM.

Usage:
  tools/gen_diffkvm_corpus.py [--out DIR]            write the corpus (removes stale files)
  tools/gen_diffkvm_corpus.py --check [--out DIR]    exit 1 if DIR differs from what would be written
  --profile NAME                                     expectations for another kernel profile
                                                     (linux-6.18 default, linux-7.2, inplace)
"""

import argparse
import json
import os
import sys

KiB = 1 << 10
MiB = 1 << 20
PAGE = 4 * KiB
M2 = 2 * MiB
UADDR = 0x400000000000          # VMM address of guest RAM (64 TiB: free in any x86-64 process)
MAXPHYADDR = 52                 # kvm.config.maxphyaddr default

# ---- uAPI constants (kernel/uapi.hpp) -------------------------------------------------------
GMEM_MMAP, GMEM_INIT_SHARED = 1 << 0, 1 << 1
MEM_LOG_DIRTY, MEM_READONLY, MEM_GUEST_MEMFD = 1 << 0, 1 << 1, 1 << 2
KEEP_SIZE, PUNCH_HOLE, COLLAPSE_RANGE, ZERO_RANGE, INSERT_RANGE, UNSHARE_RANGE = 0x1, 0x2, 0x8, 0x10, 0x20, 0x40
WRITE_ZEROES = 0x80             # Linux 6.17 (include/uapi/linux/falloc.h)
ATTR_PRIVATE = 1 << 3
USER_MEM_SLOTS = 32764
VM_TYPES = ["default", "sw_protected", "sev", "sev_es", "snp", "tdx"]
PRIVATE_MEM_TYPES = {"sw_protected", "snp", "tdx"}      # kvm_arch_has_private_mem
PROTECTED_STATE_TYPES = {"sev_es", "snp", "tdx"}        # has_protected_state: no KVM_MEM_READONLY

corpus = {}


def hx(v):
    return hex(v)


def add(name, description, steps, vm=None, profile=None):
    assert name not in corpus, name
    vm = dict(vm) if vm is not None else {"type": "default"}
    # uAPI sequences: no guest page tables, so `hvsim run/check` need no memslot for them.
    vm.setdefault("guest_paging", "none")
    sc = {"name": name, "description": description}
    if profile is not None:
        sc["params"] = {"kvm.profile": profile}
    sc.update({"vm": vm, "steps": steps})
    corpus[name] = sc


def ex(errno="ok", **more):
    e = {"errno": errno}
    e.update(more)
    return e


# ---- step builders --------------------------------------------------------------------------
def create_gmem(gid, size, flags=None, errno="ok"):
    a = {"id": gid, "size": size}
    if flags is not None:
        a["flags"] = flags
    return {"ioctl": {"create_guest_memfd": a}, "expect": ex(errno)}


def region(slot, size, gpa=0, flags=None, uaddr=UADDR, gmem=None, offset=None, as_id=None, errno="ok"):
    a = {"slot": slot}
    if as_id is not None:
        a["as_id"] = as_id
    if flags is not None:
        a["flags"] = flags
    a["gpa"] = hx(gpa)
    a["size"] = hx(size)
    if uaddr is not None:
        a["userspace_addr"] = hx(uaddr)
    if gmem is not None:
        a["guest_memfd"] = gmem
    if offset is not None:
        a["guest_memfd_offset"] = hx(offset)
    return {"ioctl": {"set_user_memory_region2": a}, "expect": ex(errno)}


def delete(slot, as_id=None, flags=None, errno="ok"):
    return region(slot, 0, flags=flags, uaddr=None, as_id=as_id, errno=errno)


def falloc(gmem, mode, offset, length, errno="ok"):
    return {"ioctl": {"fallocate": {"guest_memfd": gmem, "mode": mode, "offset": hx(offset), "len": hx(length)}},
            "expect": ex(errno)}


def host_write(size, value, gmem=None, offset=0, uaddr=None, errno="ok", signal=None):
    a = {"guest_memfd": gmem, "offset": hx(offset)} if gmem is not None else {"userspace_addr": hx(uaddr)}
    a["size"] = hx(size)
    a["value"] = hx(value)
    e = ex(errno)
    if signal:
        e["signal"] = signal
    return {"host": {"write": a}, "expect": e}


def host_read(size, gmem=None, offset=0, uaddr=None, errno="ok", signal=None, byte=None):
    a = {"guest_memfd": gmem, "offset": hx(offset)} if gmem is not None else {"userspace_addr": hx(uaddr)}
    a["size"] = hx(size)
    e = ex(errno)
    if signal:
        e["signal"] = signal
    if byte is not None:
        e["bytes"] = hx(byte)
    return {"host": {"read": a}, "expect": e}


def host_mmap(gmem, size, offset=0, shared=True, errno="ok"):
    return {"host": {"mmap": {"guest_memfd": gmem, "offset": hx(offset), "size": hx(size), "shared": shared}},
            "expect": ex(errno)}


def set_attrs(gpa, size, attributes=None, flags=None, errno="ok"):
    a = {"gpa": hx(gpa), "size": hx(size)}
    if attributes is not None:
        a["attributes"] = attributes
    if flags is not None:
        a["flags"] = flags
    return {"ioctl": {"set_memory_attributes": a}, "expect": ex(errno)}


def set_attrs2(gmem, offset, size, attributes, errno="ok", policy=None, inplace=False):
    if OPTS.vm_memory_attributes and not inplace:
        errno = "ENOTTY"   # per-VM attributes: the guest_memfd ioctl does not exist
    a = {"guest_memfd": gmem, "offset": hx(offset), "size": hx(size), "attributes": attributes}
    if policy is not None:
        a["content_policy"] = policy
    return {"ioctl": {"set_memory_attributes2": a}, "expect": ex(errno)}


def prefault(gpa, size, flags=None, errno="ok", remaining=None):
    a = {"vcpu": 0, "gpa": hx(gpa), "size": hx(size)}
    if flags is not None:
        a["flags"] = flags
    e = ex(errno)
    if remaining is not None:
        e["remaining"] = hx(remaining)
    return {"ioctl": {"pre_fault_memory": a}, "expect": e}


def enc_region(addr, size, reg=True, errno="ok"):
    name = "memory_encrypt_reg_region" if reg else "memory_encrypt_unreg_region"
    return {"ioctl": {name: {"addr": hx(addr), "size": hx(size)}}, "expect": ex(errno)}


def check_ext(cap, scope, value=None, errno="ok"):
    e = ex(errno)
    if value is not None:
        e["value"] = value
    return {"ioctl": {"check_extension": {"cap": cap, "scope": scope}}, "expect": e}


def close_vm(errno="ok"):
    return {"close": "vm", "expect": ex(errno)}


def close_gmem(gmem, errno="ok"):
    return {"close": {"guest_memfd": gmem}, "expect": ex(errno)}


def vm_with(gmems=(), slots=(), vm_type="default"):
    vm = {"type": vm_type}
    if gmems:
        vm["guest_memfd"] = [dict(id=g, size=hx(s), **({"flags": f} if f else {})) for g, s, f in gmems]
    if slots:
        vm["memslots"] = list(slots)
    return vm


def slot_decl(slot, gpa, size, gmem=None, offset=0, flags=None):
    d = {"slot": slot}
    if flags is not None:
        d["flags"] = flags
    elif gmem is not None:
        d["flags"] = ["guest_memfd"]
    d.update({"gpa": hx(gpa), "size": hx(size), "userspace_addr": hx(UADDR)})
    if gmem is not None:
        d["guest_memfd"] = gmem
        d["guest_memfd_offset"] = hx(offset)
    return d


# ---- default-configuration rules used by the sweeps -----------------------------------------
def gmem_supported_flags(vm_type="default"):
    # kvm_gmem_get_supported_flags(): MMAP, plus INIT_SHARED where the arch allows it (x86:
    # no private memory) -- with in-place conversion (vm_memory_attributes=false) INIT_SHARED
    # is allowed for every VM type.
    if vm_type in PRIVATE_MEM_TYPES and OPTS.vm_memory_attributes:
        return GMEM_MMAP
    return GMEM_MMAP | GMEM_INIT_SHARED


def memslot_flags_errno(flags, vm_type="default"):
    # check_memory_region_flags() (virt/kvm/kvm_main.c).
    valid = MEM_LOG_DIRTY | MEM_GUEST_MEMFD
    if flags & MEM_GUEST_MEMFD:
        valid &= ~MEM_LOG_DIRTY
    if vm_type not in PROTECTED_STATE_TYPES and not flags & MEM_GUEST_MEMFD:
        valid |= MEM_READONLY
    return "ok" if not flags & ~valid else "EINVAL"


def size_name(v):
    for unit, n in ((1 << 60, "eib"), (1 << 40, "tib"), (1 << 30, "gib"), (MiB, "mib"), (KiB, "kib")):
        if v >= unit and v % unit == 0:
            return f"{v // unit}{n}"
    return str(v)


# ======================================================================================
# guest_memfd creation
# ======================================================================================
def gen_gmem_create():
    # kvm_gmem_create(): size <= 0 as loff_t, or not page aligned -> EINVAL.
    sizes = [0, 1, 2, 64, 511, 512, 1000, 2048, 4000, 4094, 4095, 4096, 4097, 6144, 8191, 8192, 12288,
             M2, M2 + PAGE, M2 - 1, 1 << 30, 1 << 40]
    for s in sizes:
        ok = s > 0 and s % PAGE == 0
        add(f"gmem-create-size-{s}", f"KVM_CREATE_GUEST_MEMFD with size {s}: {'accepted' if ok else 'EINVAL'}",
            [create_gmem("g", s, errno="ok" if ok else "EINVAL")])
    big = [("2p62", 1 << 62, "ok"), ("2p62-plus-4096", (1 << 62) + PAGE, "ok"),
           ("2p63-minus-4096", (1 << 63) - PAGE, "ok"), ("2p63", 1 << 63, "EINVAL"),
           ("2p63-plus-4096", (1 << 63) + PAGE, "EINVAL"), ("2p64-minus-4096", (1 << 64) - PAGE, "EINVAL")]
    for n, s, e in big:
        add(f"gmem-create-size-{n}",
            f"KVM_CREATE_GUEST_MEMFD with size {hx(s)}: {'accepted, no memory reserved' if e == 'ok' else 'negative loff_t, EINVAL'}",
            [create_gmem("g", hx(s), errno=e)])
    add("gmem-create-many", "several guest_memfds of one VM, distinct files",
        [create_gmem(f"g{i}", hx(PAGE * (i + 1))) for i in range(8)])
    add("gmem-create-after-failure", "a failed create leaves nothing behind; the next one succeeds",
        [create_gmem("bad", 4095, errno="EINVAL"), create_gmem("good", hx(PAGE)),
         falloc("good", ["keep_size"], 0, PAGE), falloc("bad", ["keep_size"], 0, PAGE, errno="EBADF")])


def gen_gmem_flags():
    supported = gmem_supported_flags()
    for bit in range(64):
        e = "ok" if supported >> bit & 1 else "EINVAL"
        add(f"gmem-create-flag-bit-{bit:02d}", f"guest_memfd flag bit {bit} alone: {e}",
            [create_gmem("g", hx(PAGE), flags=1 << bit, errno=e)])
    add("gmem-create-flags-mmap-init-shared", "MMAP | INIT_SHARED", [create_gmem("g", hx(PAGE), ["mmap", "init_shared"])])
    add("gmem-create-flags-init-shared-only", "INIT_SHARED without MMAP is accepted at creation",
        [create_gmem("g", hx(PAGE), ["init_shared"])])
    add("gmem-create-flags-all-ones", "every flag bit set: EINVAL",
        [create_gmem("g", hx(PAGE), (1 << 64) - 1, errno="EINVAL")])
    add("gmem-create-flags-mmap-plus-bit2", "a supported flag with an unknown one: EINVAL",
        [create_gmem("g", hx(PAGE), GMEM_MMAP | 4, errno="EINVAL")])
    add("gmem-create-flags-checked-before-size", "flags are checked before the size (both invalid: EINVAL)",
        [create_gmem("g", 1, 1 << 5, errno="EINVAL")])


# ======================================================================================
# guest_memfd mmap and host access
# ======================================================================================
def gen_gmem_mmap():
    MS = ["mmap", "init_shared"]
    add("gmem-mmap-shared", "MAP_SHARED of a MMAP guest_memfd", [create_gmem("g", hx(4 * PAGE), ["mmap"]),
                                                                   host_mmap("g", 4 * PAGE)])
    add("gmem-mmap-shared-init-shared", "MAP_SHARED of a MMAP|INIT_SHARED guest_memfd",
        [create_gmem("g", hx(4 * PAGE), MS), host_mmap("g", 4 * PAGE)])
    add("gmem-mmap-private", "MAP_PRIVATE of a MMAP guest_memfd: EINVAL (kvm_gmem_mmap wants VM_SHARED)",
        [create_gmem("g", hx(4 * PAGE), MS), host_mmap("g", 4 * PAGE, shared=False, errno="EINVAL")])
    add("gmem-mmap-without-mmap-flag", "mmap of a guest_memfd without MMAP: ENODEV",
        [create_gmem("g", hx(4 * PAGE)), host_mmap("g", 4 * PAGE, errno="ENODEV")])
    add("gmem-mmap-init-shared-without-mmap", "INIT_SHARED without MMAP: created, mmap ENODEV",
        [create_gmem("g", hx(4 * PAGE), ["init_shared"]), host_mmap("g", 4 * PAGE, errno="ENODEV")])
    add("gmem-mmap-private-without-mmap-flag", "MAP_PRIVATE without MMAP: ENODEV (the MMAP check comes first)",
        [create_gmem("g", hx(4 * PAGE)), host_mmap("g", 4 * PAGE, shared=False, errno="ENODEV")])
    add("gmem-mmap-unaligned-offset", "mmap offset not page aligned: EINVAL from mmap(2)",
        [create_gmem("g", hx(4 * PAGE), MS), host_mmap("g", PAGE, offset=1, errno="EINVAL")])
    add("gmem-mmap-size-0", "mmap of length 0: EINVAL from mmap(2)",
        [create_gmem("g", hx(4 * PAGE), MS), host_mmap("g", 0, errno="EINVAL")])
    add("gmem-mmap-beyond-eof", "a mapping past i_size is created; only touching it faults",
        [create_gmem("g", hx(PAGE), MS), host_mmap("g", 4 * PAGE, offset=PAGE)])
    add("gmem-mmap-partial", "mapping a middle part of the file",
        [create_gmem("g", hx(4 * PAGE), MS), host_mmap("g", PAGE, offset=2 * PAGE)])
    add("gmem-mmap-fd-memfd", "host mmap of a memfd is an ordinary shared mapping",
        [host_mmap({"fd": "memfd"}, PAGE)])
    add("gmem-mmap-fd-invalid", "host mmap of a closed descriptor: EBADF", [host_mmap({"fd": "invalid"}, PAGE, errno="EBADF")])


def gen_host_access():
    MS = ["mmap", "init_shared"]
    add("host-rw-gmem-fresh-reads-zero", "a never-touched shared guest_memfd page reads as zeros",
        [create_gmem("g", hx(2 * PAGE), MS), host_read(PAGE, gmem="g", byte=0)])
    add("host-rw-gmem-readback", "write through the shared mapping, read it back; the next page is untouched",
        [create_gmem("g", hx(2 * PAGE), MS), host_write(PAGE, 0x5a, gmem="g"),
         host_read(PAGE, gmem="g", byte=0x5a), host_read(PAGE, gmem="g", offset=PAGE, byte=0)])
    add("host-rw-gmem-readback-whole-file", "write and read the whole 2 MiB file",
        [create_gmem("g", hx(M2), MS), host_write(M2, 0xa5, gmem="g"), host_read(M2, gmem="g", byte=0xa5)])
    add("host-rw-gmem-unaligned", "byte-granular host access inside a page",
        [create_gmem("g", hx(PAGE), MS), host_write(16, 0x07, gmem="g", offset=0x123),
         host_read(16, gmem="g", offset=0x123, byte=0x07), host_read(1, gmem="g", offset=0x122, byte=0),
         host_read(1, gmem="g", offset=0x133, byte=0)])
    add("host-rw-gmem-punch-then-read-zero", "punch a written page: it reads zeros again, its neighbour keeps its data",
        [create_gmem("g", hx(2 * PAGE), MS), host_write(2 * PAGE, 0x5a, gmem="g"),
         falloc("g", ["keep_size", "punch_hole"], 0, PAGE), host_read(PAGE, gmem="g", byte=0),
         host_read(PAGE, gmem="g", offset=PAGE, byte=0x5a)])
    add("host-rw-gmem-punch-middle", "punch the middle two of four written pages",
        [create_gmem("g", hx(4 * PAGE), MS), host_write(4 * PAGE, 0x33, gmem="g"),
         falloc("g", ["keep_size", "punch_hole"], PAGE, 2 * PAGE), host_read(PAGE, gmem="g", byte=0x33),
         host_read(2 * PAGE, gmem="g", offset=PAGE, byte=0), host_read(PAGE, gmem="g", offset=3 * PAGE, byte=0x33),
         {"host": {"read": {"guest_memfd": "g", "offset": "0x0", "size": hx(4 * PAGE)}}, "expect": ex()}])
    add("host-rw-gmem-allocate-then-read-zero", "fallocate allocates zeroed pages",
        [create_gmem("g", hx(2 * PAGE), MS), falloc("g", ["keep_size"], 0, 2 * PAGE),
         host_read(2 * PAGE, gmem="g", byte=0)])
    add("host-rw-gmem-allocate-keeps-data", "fallocate over written pages keeps their contents",
        [create_gmem("g", hx(2 * PAGE), MS), host_write(PAGE, 0x42, gmem="g"),
         falloc("g", ["keep_size"], 0, 2 * PAGE), host_read(PAGE, gmem="g", byte=0x42)])
    add("host-rw-gmem-sigbus-read-beyond-eof", "reading at i_size: SIGBUS (kvm_gmem_fault_user_mapping)",
        [create_gmem("g", hx(2 * PAGE), MS), host_read(PAGE, gmem="g", offset=2 * PAGE, signal="SIGBUS")])
    add("host-rw-gmem-sigbus-write-beyond-eof", "writing past i_size: SIGBUS",
        [create_gmem("g", hx(PAGE), MS), host_write(8, 1, gmem="g", offset=PAGE, signal="SIGBUS")])
    add("host-rw-gmem-sigbus-straddling-eof", "an access that starts inside the file and runs past its end: SIGBUS",
        [create_gmem("g", hx(PAGE), MS), host_read(2 * PAGE, gmem="g", signal="SIGBUS"),
         host_write(2 * PAGE, 9, gmem="g", signal="SIGBUS")])
    add("host-rw-gmem-sigbus-far-beyond-eof", "far past i_size: SIGBUS",
        [create_gmem("g", hx(PAGE), MS), host_read(8, gmem="g", offset=1 << 30, signal="SIGBUS")])
    add("host-rw-gmem-sigbus-without-init-shared", "MMAP without INIT_SHARED: memory is private, host access SIGBUS",
        [create_gmem("g", hx(2 * PAGE), ["mmap"]), host_read(8, gmem="g", signal="SIGBUS"),
         host_write(8, 1, gmem="g", signal="SIGBUS")])
    add("host-rw-gmem-sigbus-without-init-shared-allocated",
        "fallocate does not make private memory host-accessible",
        [create_gmem("g", hx(2 * PAGE), ["mmap"]), falloc("g", ["keep_size"], 0, 2 * PAGE),
         host_read(8, gmem="g", signal="SIGBUS")])
    add("host-rw-gmem-without-mmap-flag", "host access through a guest_memfd without MMAP: its mmap fails, ENODEV",
        [create_gmem("g", hx(PAGE)), host_read(8, gmem="g", errno="ENODEV"),
         host_write(8, 1, gmem="g", errno="ENODEV")])
    add("host-rw-gmem-size-0", "a zero-length host access touches nothing",
        [create_gmem("g", hx(PAGE), MS), host_read(0, gmem="g"), host_write(0, 1, gmem="g")])
    add("host-rw-gmem-bound-to-slot", "host access through a guest_memfd bound to a memslot",
        [create_gmem("g", hx(M2), MS), region(0, M2, flags=["guest_memfd"], gmem="g", offset=0),
         host_write(PAGE, 0x5a, gmem="g"), host_read(PAGE, gmem="g", byte=0x5a)])
    add("host-rw-uaddr-readback", "host access through the VMM's userspace_addr mapping",
        [host_read(PAGE, uaddr=UADDR, byte=0), host_write(2 * PAGE, 0x5a, uaddr=UADDR + PAGE),
         host_read(PAGE, uaddr=UADDR + PAGE, byte=0x5a), host_read(PAGE, uaddr=UADDR + 3 * PAGE, byte=0)])
    add("host-rw-uaddr-and-gmem-diverge",
        "a gmem slot's userspace_addr and its guest_memfd are separate memory (checked against a real 6.18 kernel, docs/ground-truth.md)",
        [create_gmem("g", hx(M2), MS), region(0, M2, flags=["guest_memfd"], gmem="g", offset=0),
         host_write(PAGE, 0x11, uaddr=UADDR), host_read(PAGE, gmem="g", byte=0),
         host_write(PAGE, 0x22, gmem="g"), host_read(PAGE, uaddr=UADDR, byte=0x11)])


# ======================================================================================
# fallocate
# ======================================================================================
def gen_fallocate():
    vm = vm_with(gmems=[("g", 4 * PAGE, None)])
    size = 4 * PAGE
    # Mode sweep: vfs_fallocate() then kvm_gmem_fallocate(); only KEEP_SIZE and
    # KEEP_SIZE|PUNCH_HOLE are accepted, everything else is EOPNOTSUPP.
    modes = [
        ("0", 0), ("keep-size", KEEP_SIZE), ("punch-hole", PUNCH_HOLE), ("keep-size-punch-hole", KEEP_SIZE | PUNCH_HOLE),
        ("collapse-range", COLLAPSE_RANGE), ("keep-size-collapse-range", KEEP_SIZE | COLLAPSE_RANGE),
        ("zero-range", ZERO_RANGE), ("keep-size-zero-range", KEEP_SIZE | ZERO_RANGE),
        ("insert-range", INSERT_RANGE), ("keep-size-insert-range", KEEP_SIZE | INSERT_RANGE),
        ("unshare-range", UNSHARE_RANGE), ("keep-size-unshare-range", KEEP_SIZE | UNSHARE_RANGE),
        ("write-zeroes", WRITE_ZEROES), ("keep-size-write-zeroes", KEEP_SIZE | WRITE_ZEROES),
        ("unknown-0x100", 0x100), ("keep-size-unknown-0x100", KEEP_SIZE | 0x100),
        ("keep-size-punch-hole-zero-range", KEEP_SIZE | PUNCH_HOLE | ZERO_RANGE),
        ("keep-size-punch-hole-unknown-0x100", KEEP_SIZE | PUNCH_HOLE | 0x100),
        ("all-bits", 0x7fffffff),
    ]
    for n, m in modes:
        ok = m in (KEEP_SIZE, KEEP_SIZE | PUNCH_HOLE)
        add(f"fallocate-mode-{n}", f"fallocate mode {hx(m)} on a guest_memfd: {'accepted' if ok else 'EOPNOTSUPP'}",
            [falloc("g", m, 0, PAGE, "ok" if ok else "EOPNOTSUPP")], vm=vm)
    K, KP = ["keep_size"], ["keep_size", "punch_hole"]
    cases = [
        ("allocate-whole-file", K, 0, size, "ok", "allocate every page"),
        ("allocate-offset-unaligned", K, 1, PAGE, "EINVAL", "offset not page aligned"),
        ("allocate-offset-4095", K, 4095, PAGE, "EINVAL", "offset not page aligned"),
        ("allocate-len-unaligned", K, 0, 1, "EINVAL", "len not page aligned"),
        ("allocate-len-4095", K, 0, 4095, "EINVAL", "len not page aligned"),
        ("allocate-len-0", K, 0, 0, "EINVAL", "len 0 (vfs_fallocate: len <= 0)"),
        ("allocate-past-eof", K, size, PAGE, "EINVAL", "allocate starting at i_size"),
        ("allocate-straddling-eof", K, size - PAGE, 2 * PAGE, "EINVAL", "allocate running past i_size"),
        ("allocate-last-page", K, size - PAGE, PAGE, "ok", "allocate the last page"),
        ("allocate-negative-offset", K, 1 << 63, PAGE, "EINVAL", "offset negative as loff_t"),
        ("allocate-negative-len", K, 0, 1 << 63, "EINVAL", "len negative as loff_t"),
        ("punch-whole-file", KP, 0, size, "ok", "punch every page"),
        ("punch-offset-unaligned", KP, 1, PAGE, "EINVAL", "offset not page aligned"),
        ("punch-len-unaligned", KP, 0, 100, "EINVAL", "len not page aligned"),
        ("punch-len-0", KP, 0, 0, "EINVAL", "len 0"),
        ("punch-past-eof", KP, size, PAGE, "ok", "punch past i_size is allowed (no-op)"),
        ("punch-far-past-eof", KP, 1 << 40, M2, "ok", "punch far past i_size"),
        ("punch-straddling-eof", KP, size - PAGE, 4 * PAGE, "ok", "punch running past i_size"),
        ("punch-negative-offset", KP, 1 << 63, PAGE, "EINVAL", "offset negative as loff_t"),
        ("mode-before-alignment", 0, 1, 1, "EOPNOTSUPP", "mode 0 with unaligned offset: the mode is checked first"),
        ("punch-only-before-alignment", ["punch_hole"], 1, PAGE, "EOPNOTSUPP",
         "PUNCH_HOLE without KEEP_SIZE with unaligned offset: mode first"),
        ("mode-0-len-0", 0, 0, 0, "EINVAL", "len 0 beats an unsupported mode (vfs_fallocate checks it first)"),
        ("mode-0-negative-offset", 0, 1 << 63, PAGE, "EINVAL", "negative offset beats an unsupported mode"),
    ]
    for n, mode, off, length, e, why in cases:
        add(f"fallocate-{n}", f"fallocate: {why}: {e}", [falloc("g", mode, off, length, e)], vm=vm)
    add("fallocate-allocate-then-punch-then-allocate", "allocate, punch, allocate again",
        [falloc("g", K, 0, size), falloc("g", KP, PAGE, PAGE), falloc("g", K, 0, size)], vm=vm)
    add("fallocate-huge-file-sparse", "a 2^62-byte guest_memfd: allocate one page near its end, punch it",
        [create_gmem("h", hx(1 << 62)), falloc("h", K, (1 << 62) - PAGE, PAGE), falloc("h", KP, (1 << 62) - PAGE, PAGE),
         falloc("h", K, 1 << 62, PAGE, "EINVAL")])
    add("fallocate-bound-slot-punch", "punch a guest_memfd range bound to a memslot (at a file offset)",
        [create_gmem("b", hx(4 * M2)), region(0, M2, gpa=0, flags=["guest_memfd"], gmem="b", offset=M2),
         falloc("b", K, M2, M2), falloc("b", KP, M2 + PAGE, 2 * PAGE), falloc("b", KP, 0, 4 * M2)])
    add("fallocate-fd-kvm", "fallocate on /dev/kvm: not a regular file, ENODEV",
        [falloc({"fd": "kvm"}, K, 0, PAGE, "ENODEV")])
    add("fallocate-fd-vm", "fallocate on the VM fd (an anonymous inode): ENODEV",
        [falloc({"fd": "vm"}, K, 0, PAGE, "ENODEV")])
    add("fallocate-fd-memfd", "fallocate on a memfd (shmem) works", [falloc({"fd": "memfd"}, K, 0, PAGE)])
    add("fallocate-fd-invalid", "fallocate on a closed descriptor: EBADF", [falloc({"fd": "invalid"}, K, 0, PAGE, "EBADF")])


# ======================================================================================
# memslots
# ======================================================================================
def gen_memslot_flags():
    vm = vm_with(gmems=[("g", 4 * M2, None)])
    for bit in range(32):
        e = memslot_flags_errno(1 << bit)
        add(f"memslot-flag-bit-{bit:02d}", f"KVM_SET_USER_MEMORY_REGION2 flags bit {bit} alone: {e}",
            [region(0, M2, flags=1 << bit, gmem="g", offset=0, errno=e)], vm=vm)
    combos = [("gmem-log-dirty", ["guest_memfd", "log_dirty_pages"]), ("gmem-readonly", ["guest_memfd", "readonly"]),
              ("log-dirty-readonly", ["log_dirty_pages", "readonly"]),
              ("all-three", ["guest_memfd", "log_dirty_pages", "readonly"]),
              ("gmem-bit3", MEM_GUEST_MEMFD | 8), ("all-ones", 0xffffffff)]
    for n, f in combos:
        val = f if isinstance(f, int) else sum({"guest_memfd": 4, "log_dirty_pages": 1, "readonly": 2}[x] for x in f)
        e = memslot_flags_errno(val)
        add(f"memslot-flags-{n}", f"memslot flags {hx(val)}: {e}", [region(0, M2, flags=f, gmem="g", offset=0, errno=e)],
            vm=vm)
    add("memslot-delete-with-bad-flags", "flags are checked even for a delete (absent slot: still EINVAL for the flag)",
        [delete(0, flags=1 << 3, errno="EINVAL")])
    add("memslot-delete-existing-with-bad-flags", "a delete with an unknown flag fails and the slot stays",
        [region(0, M2), delete(0, flags=1 << 3, errno="EINVAL"), region(1, M2, gpa=0, errno="EEXIST"), delete(0)])


def gen_memslot_validation():
    vm = vm_with(gmems=[("g", 4 * M2, None)])
    G = ["guest_memfd"]
    cases = [
        ("gpa-unaligned", dict(gpa=PAGE + 1), "EINVAL", "guest_phys_addr not page aligned"),
        ("gpa-0x800", dict(gpa=0x800), "EINVAL", "guest_phys_addr not page aligned"),
        ("size-unaligned", dict(size=PAGE + 1), "EINVAL", "memory_size not page aligned"),
        ("size-2047", dict(size=2047), "EINVAL", "memory_size not page aligned"),
        ("uaddr-unaligned", dict(uaddr=UADDR + 1), "EINVAL", "userspace_addr not page aligned"),
        ("uaddr-0", dict(uaddr=0), "ok", "userspace_addr 0 is a legal address"),
        ("uaddr-kernel-half", dict(uaddr=0xff00000000000000), "EINVAL", "userspace_addr fails access_ok"),
        ("uaddr-wraps", dict(uaddr=(1 << 64) - PAGE, size=2 * PAGE), "EINVAL", "userspace_addr + size wraps"),
        ("gmem-offset-unaligned", dict(flags=G, gmem="g", offset=1), "EINVAL", "guest_memfd_offset not page aligned"),
        ("gmem-offset-unaligned-ignored", dict(gmem="g", offset=1), "ok",
         "guest_memfd_offset is ignored without KVM_MEM_GUEST_MEMFD"),
        ("gmem-offset-wraps", dict(flags=G, gmem="g", offset=(1 << 64) - PAGE, size=2 * PAGE), "EINVAL",
         "guest_memfd_offset + size wraps"),
        ("gmem-offset-beyond-file", dict(flags=G, gmem="g", offset=4 * M2), "EINVAL", "offset at the end of the file"),
        ("gmem-range-beyond-file", dict(flags=G, gmem="g", offset=3 * M2, size=2 * M2), "EINVAL",
         "offset + size past the end of the file"),
        ("gmem-range-to-end-of-file", dict(flags=G, gmem="g", offset=2 * M2, size=2 * M2), "ok",
         "offset + size exactly at the end of the file"),
        ("gmem-slot-larger-than-file", dict(flags=G, gmem="g", size=8 * M2), "EINVAL", "slot larger than the file"),
        ("gpa-wraps", dict(gpa=(1 << 64) - PAGE, size=2 * PAGE), "EINVAL", "guest_phys_addr + size wraps"),
        ("gpa-at-maxphyaddr", dict(gpa=1 << MAXPHYADDR, size=PAGE), "EINVAL",
         "last gfn beyond the MMU's maximum gfn (kvm.config.maxphyaddr 52)"),
        ("gpa-last-page-below-maxphyaddr", dict(gpa=(1 << MAXPHYADDR) - PAGE, size=PAGE), "ok",
         "the last page below 2^52"),
        ("gpa-crossing-maxphyaddr", dict(gpa=(1 << MAXPHYADDR) - PAGE, size=2 * PAGE), "EINVAL",
         "a slot running past 2^52"),
        ("gpa-2p63", dict(gpa=1 << 63, size=PAGE), "EINVAL", "gpa far beyond MAXPHYADDR"),
        ("size-max-pages-plus-one", dict(size=(1 << 31) * PAGE), "EINVAL", "npages > KVM_MEM_MAX_NR_PAGES"),
        ("slot-32763", dict(slot=USER_MEM_SLOTS - 1), "ok", "the last user slot id"),
        ("slot-32764", dict(slot=USER_MEM_SLOTS), "EINVAL", "first internal slot id"),
        ("slot-32767", dict(slot=32767), "EINVAL", "internal slot id"),
        ("slot-65535", dict(slot=65535), "EINVAL", "slot id 0xffff"),
        ("as-id-1", dict(as_id=1), "ok", "address space 1 (SMM) on a default VM"),
        ("as-id-2", dict(as_id=2), "EINVAL", "address space 2 does not exist"),
        ("as-id-0xffff", dict(as_id=0xffff), "EINVAL", "address space 0xffff"),
        ("readonly", dict(flags=["readonly"]), "ok", "a read-only slot"),
        ("log-dirty", dict(flags=["log_dirty_pages"]), "ok", "a dirty-logged slot"),
        ("gmem-basic", dict(flags=G, gmem="g", offset=0), "ok", "a guest_memfd slot"),
        ("gmem-at-offset", dict(flags=G, gmem="g", offset=M2), "ok", "a guest_memfd slot bound at a file offset"),
        ("gmem-uaddr-unaligned", dict(flags=G, gmem="g", offset=0, uaddr=UADDR + 8), "EINVAL",
         "userspace_addr is validated for guest_memfd slots too"),
        ("gmem-fd-kvm", dict(flags=G, gmem={"fd": "kvm"}), "EINVAL", "guest_memfd is /dev/kvm: not a guest_memfd"),
        ("gmem-fd-vm", dict(flags=G, gmem={"fd": "vm"}), "EINVAL", "guest_memfd is the VM fd"),
        ("gmem-fd-memfd", dict(flags=G, gmem={"fd": "memfd"}), "EINVAL", "guest_memfd is a memfd"),
        ("gmem-fd-invalid", dict(flags=G, gmem={"fd": "invalid"}), "EBADF", "guest_memfd is a closed descriptor"),
        ("gmem-fd-raw-unused", dict(flags=G, gmem={"fd": 99999}), "EBADF", "guest_memfd is a number nothing uses"),
        ("gmem-fd-invalid-ignored", dict(gmem={"fd": "invalid"}), "ok",
         "guest_memfd is ignored without KVM_MEM_GUEST_MEMFD"),
    ]
    for n, kw, e, why in cases:
        kw = dict(kw)
        slot = kw.pop("slot", 0)
        size = kw.pop("size", M2)
        add(f"memslot-{n}", f"KVM_SET_USER_MEMORY_REGION2: {why}: {e}", [region(slot, size, errno=e, **kw)], vm=vm)
    add("memslot-delete-absent", "size 0 deletes; an absent slot: EINVAL", [delete(0, errno="EINVAL")])
    add("memslot-delete-absent-as-id-1", "deleting an absent slot in address space 1: EINVAL",
        [delete(0, as_id=1, errno="EINVAL")])
    add("memslot-as-id-1-same-gpa", "address spaces have separate gpa ranges: the same gpa in 0 and 1",
        [region(0, M2), region(0, M2, as_id=1), region(1, M2, as_id=1, errno="EEXIST"), delete(0, as_id=1), delete(0)])
    add("memslot-many-ids", "slot ids are independent of gpa order",
        [region(i * 997 % USER_MEM_SLOTS, M2, gpa=i * M2) for i in range(1, 9)])


def gen_memslot_changes():
    vm = vm_with(gmems=[("g", 4 * M2, None)])
    G = ["guest_memfd"]
    add("memslot-normal-lifecycle", "create, identical no-op, move, dirty-log on and off, delete, delete again",
        [region(0, M2), region(0, M2), region(0, M2, gpa=2 * M2), region(0, M2, gpa=2 * M2, flags=["log_dirty_pages"]),
         region(0, M2, gpa=2 * M2), delete(0), delete(0, errno="EINVAL")])
    add("memslot-normal-change-uaddr", "a slot's userspace_addr cannot change", [region(0, M2),
                                                                                 region(0, M2, uaddr=UADDR + M2, errno="EINVAL")])
    add("memslot-normal-change-size", "a slot's size cannot change", [region(0, M2), region(0, 2 * M2, errno="EINVAL")])
    add("memslot-normal-shrink", "a slot cannot shrink either", [region(0, 2 * M2), region(0, M2, errno="EINVAL")])
    add("memslot-normal-toggle-readonly", "READONLY cannot be toggled",
        [region(0, M2), region(0, M2, flags=["readonly"], errno="EINVAL"), region(1, M2, gpa=M2, flags=["readonly"]),
         region(1, M2, gpa=M2, errno="EINVAL")])
    add("memslot-normal-add-gmem-flag", "a normal slot can never gain KVM_MEM_GUEST_MEMFD",
        [region(0, M2), region(0, M2, flags=G, gmem="g", offset=0, errno="EINVAL")], vm=vm)
    add("memslot-normal-move-and-dirty-log", "a move may change dirty logging at the same time",
        [region(0, M2), region(0, M2, gpa=M2, flags=["log_dirty_pages"])])
    add("memslot-move-into-overlap", "a move onto another slot's range: EEXIST",
        [region(0, M2), region(1, M2, gpa=2 * M2), region(1, M2, gpa=M2 // 2, errno="EEXIST"), region(1, M2, gpa=4 * M2)])
    add("memslot-recreate-after-delete", "a deleted slot id can be reused with new parameters",
        [region(0, M2), delete(0), region(0, 2 * M2, gpa=8 * M2, uaddr=UADDR + 8 * M2)])
    mods = [
        ("drop-gmem-flag", dict(), "flags 0"),
        ("log-dirty", dict(flags=["log_dirty_pages"]), "LOG_DIRTY_PAGES instead of GUEST_MEMFD"),
        ("gmem-plus-log-dirty", dict(flags=["guest_memfd", "log_dirty_pages"], gmem="g", offset=0),
         "GUEST_MEMFD|LOG_DIRTY_PAGES"),
        ("move", dict(flags=G, gmem="g", offset=0, gpa=2 * M2), "move"),
        ("move-without-gmem-flag", dict(gpa=2 * M2), "move with flags 0"),
        ("identical", dict(flags=G, gmem="g", offset=0), "the identical request"),
        ("resize", dict(flags=G, gmem="g", offset=0, size=2 * M2), "a different size"),
        ("change-uaddr", dict(flags=G, gmem="g", offset=0, uaddr=UADDR + M2), "a different userspace_addr"),
        ("change-offset", dict(flags=G, gmem="g", offset=M2), "a different guest_memfd_offset"),
        ("readonly", dict(flags=["readonly"]), "READONLY"),
    ]
    for n, kw, why in mods:
        kw = dict(kw)
        size = kw.pop("size", M2)
        add(f"memslot-gmem-modify-{n}", f"a guest_memfd memslot can only be deleted: {why} is EINVAL",
            [region(0, M2, flags=G, gmem="g", offset=0), region(0, size, errno="EINVAL", **kw), delete(0),
             region(0, M2, flags=G, gmem="g", offset=0)], vm=vm)
    add("memslot-gmem-delete-and-rebind", "deleting a guest_memfd slot unbinds its file range",
        [region(0, M2, flags=G, gmem="g", offset=0), region(1, M2, gpa=M2, flags=G, gmem="g", offset=0, errno="EINVAL"),
         delete(0), region(1, M2, gpa=M2, flags=G, gmem="g", offset=0)], vm=vm)


def gen_memslot_overlap():
    vm = vm_with(gmems=[("g", 4 * M2, None)])
    G = ["guest_memfd"]
    add("memslot-overlap-same-range", "two slots at the same gpa range: EEXIST", [region(0, M2), region(1, M2, errno="EEXIST")])
    add("memslot-overlap-partial", "a slot overlapping the tail of another: EEXIST",
        [region(0, M2), region(1, M2, gpa=M2 // 2, errno="EEXIST")])
    add("memslot-overlap-inside", "a slot inside another: EEXIST", [region(0, 4 * M2), region(1, PAGE, gpa=M2, errno="EEXIST")])
    add("memslot-overlap-covering", "a slot covering another: EEXIST", [region(0, PAGE, gpa=M2),
                                                                        region(1, 4 * M2, errno="EEXIST")])
    add("memslot-adjacent", "adjacent slots do not overlap", [region(0, M2), region(1, M2, gpa=M2),
                                                              region(2, M2, gpa=2 * M2)])
    add("memslot-overlap-gmem", "guest_memfd slots overlapping in gpa: EEXIST (checked before binding)",
        [region(0, M2, flags=G, gmem="g", offset=0), region(1, M2, flags=G, gmem="g", offset=M2, errno="EEXIST")], vm=vm)
    add("memslot-overlap-gmem-and-binding", "gpa and binding both overlap: EEXIST wins",
        [region(0, M2, flags=G, gmem="g", offset=0), region(1, M2, flags=G, gmem="g", offset=0, errno="EEXIST")], vm=vm)
    # kvm_gmem_bind(): EINVAL up to Linux 7.1, EEXIST from 7.2 (kvm.profile linux-7.2).
    bind_errno = "EEXIST" if OPTS.gmem_bind_eexist else "EINVAL"
    add("memslot-gmem-binding-overlap", f"same file range bound twice at different gpas: {bind_errno}",
        [region(0, M2, flags=G, gmem="g", offset=0), region(1, M2, gpa=M2, flags=G, gmem="g", offset=0, errno=bind_errno)],
        vm=vm)
    add("memslot-gmem-binding-overlap-partial", f"file ranges overlapping by one page: {bind_errno}",
        [region(0, M2, flags=G, gmem="g", offset=0),
         region(1, M2, gpa=M2, flags=G, gmem="g", offset=M2 - PAGE, errno=bind_errno)], vm=vm)
    add("memslot-gmem-binding-overlap-linux-7-2", "same file range bound twice on Linux 7.2: EEXIST",
        [region(0, M2, flags=G, gmem="g", offset=0), region(1, M2, gpa=M2, flags=G, gmem="g", offset=0, errno="EEXIST")],
        vm=vm, profile="linux-7.2")
    add("memslot-gmem-two-slots-disjoint-offsets", "one guest_memfd bound by two slots at disjoint offsets",
        [region(0, M2, flags=G, gmem="g", offset=0), region(1, M2, gpa=4 * M2, flags=G, gmem="g", offset=M2)], vm=vm)
    add("memslot-gmem-four-slots-whole-file", "four slots binding the whole file in reverse gpa order",
        [region(i, M2, gpa=(3 - i) * M2, flags=G, gmem="g", offset=i * M2) for i in range(4)], vm=vm)
    add("memslot-gmem-two-files", "two guest_memfds, one slot each",
        [create_gmem("h", hx(M2)), region(0, M2, flags=G, gmem="g", offset=0),
         region(1, M2, gpa=M2, flags=G, gmem="h", offset=0)], vm=vm)
    add("memslot-gmem-mmap-file", "a guest_memfd with MMAP|INIT_SHARED bound to a slot (gmem-only slot)",
        [create_gmem("m", hx(M2), ["mmap", "init_shared"]), region(0, M2, flags=G, gmem="m", offset=0)])
    add("memslot-gmem-normal-overlap", "a normal slot over a guest_memfd slot's gpa: EEXIST",
        [region(0, M2, flags=G, gmem="g", offset=0), region(1, M2, errno="EEXIST")], vm=vm)
    add("memslot-setup-from-vm-declaration", "slots declared in vm.memslots exist when the steps start",
        [region(0, M2, flags=G, gmem="g0", offset=0, errno="EINVAL"), region(2, M2, gpa=2 * M2, flags=G, gmem="g0",
                                                                              offset=0, errno="EINVAL"),
         region(2, M2, gpa=2 * M2, flags=G, gmem="g0", offset=2 * M2), delete(1), delete(0)],
        vm=vm_with(gmems=[("g0", 4 * M2, None)], slots=[slot_decl(0, 0, M2, gmem="g0", offset=0),
                                                        slot_decl(1, M2, M2, flags=[])]))


# ======================================================================================
# memory attributes, pre-fault, SEV regions, capabilities
# ======================================================================================
def attrs_errno(vm_type, gpa, size, attributes, flags):
    # kvm_vm_ioctl_set_mem_attributes(); ENOTTY when attributes live in guest_memfd.
    if not OPTS.vm_memory_attributes:
        return "ENOTTY"
    supported = ATTR_PRIVATE if vm_type in PRIVATE_MEM_TYPES else 0
    if flags:
        return "EINVAL"
    if attributes & ~supported:
        return "EINVAL"
    if size == 0 or gpa + size >= 1 << 64:
        return "EINVAL"
    if gpa % PAGE or size % PAGE:
        return "EINVAL"
    return "ok"


def gen_attributes():
    cases = [("private-2mib", 0, M2, ATTR_PRIVATE, 0), ("shared-2mib", 0, M2, 0, 0), ("flags-1", 0, M2, 0, 1),
             ("size-0", 0, 0, 0, 0), ("gpa-unaligned", 1, PAGE, 0, 0), ("size-unaligned", 0, 1, 0, 0),
             ("wraps", (1 << 64) - PAGE, 2 * PAGE, 0, 0), ("unknown-attribute", 0, PAGE, 1, 0),
             ("no-memslot-needed", 1 << 40, PAGE, 0, 0)]
    for n, gpa, size, attrs, flags in cases:
        e = attrs_errno("default", gpa, size, attrs, flags)
        add(f"attrs-default-vm-{n}", f"KVM_SET_MEMORY_ATTRIBUTES on a default VM: {e}",
            [set_attrs(gpa, size, attributes=attrs, flags=flags, errno=e)])
    e = attrs_errno("sw_protected", 0, M2, ATTR_PRIVATE, 0)
    add("attrs-sw-protected-private", f"KVM_SET_MEMORY_ATTRIBUTES PRIVATE on a SW_PROTECTED VM: {e}",
        [set_attrs(0, M2, attributes=["private"], errno=e)], vm={"type": "sw_protected"})
    # KVM_SET_MEMORY_ATTRIBUTES2 (proposed: the KVM_SET_MEMORY_ATTRIBUTES2 content-policy series): a guest_memfd ioctl of the in-place
    # conversion model, so these sequences name kvm.profile inplace.
    ip = "(in-place conversion: kvm.profile inplace)"
    sw = {"type": "sw_protected"}
    add("attrs2-size-0", f"KVM_SET_MEMORY_ATTRIBUTES2 with size 0: EINVAL {ip}",
        [create_gmem("g", hx(M2), ["mmap"]), set_attrs2("g", 0, 0, ["private"], errno="EINVAL", inplace=True)],
        vm=sw, profile="inplace")
    add("attrs2-beyond-file", f"KVM_SET_MEMORY_ATTRIBUTES2 past i_size: EINVAL {ip}",
        [create_gmem("g", hx(M2), ["mmap"]), set_attrs2("g", M2, PAGE, ["private"], errno="EINVAL", inplace=True)],
        vm=sw, profile="inplace")
    add("attrs2-unaligned", f"KVM_SET_MEMORY_ATTRIBUTES2 with an unaligned offset: EINVAL {ip}",
        [create_gmem("g", hx(M2), ["mmap"]), set_attrs2("g", 1, PAGE, ["private"], errno="EINVAL", inplace=True)],
        vm=sw, profile="inplace")
    add("attrs2-to-shared-and-back", f"convert a range to shared and back to private on a SW_PROTECTED VM {ip}",
        [create_gmem("g", hx(M2), ["mmap"]), set_attrs2("g", 0, M2, 0, inplace=True),
         set_attrs2("g", 0, M2, ["private"], inplace=True)], vm=sw, profile="inplace")
    add("attrs2-default-profile-enotty", "KVM_SET_MEMORY_ATTRIBUTES2 on Linux 6.18: ENOTTY (no such ioctl)",
        [create_gmem("g", hx(M2), ["mmap"]),
         {"ioctl": {"set_memory_attributes2": {"guest_memfd": "g", "offset": "0x0", "size": hx(M2),
                                               "attributes": ["private"]}}, "expect": ex("ENOTTY")}],
        vm=sw, profile="linux-6.18")


def gen_prefault():
    add("prefault-flags-nonzero", "KVM_PRE_FAULT_MEMORY flags != 0: EINVAL, nothing done",
        [prefault(0, PAGE, flags=1, errno="EINVAL", remaining=PAGE)])
    add("prefault-gpa-unaligned", "gpa not page aligned: EINVAL", [prefault(1, PAGE, errno="EINVAL", remaining=PAGE)])
    add("prefault-size-unaligned", "size not page aligned: EINVAL", [prefault(0, 1, errno="EINVAL", remaining=1)])
    add("prefault-size-0", "size 0 (gpa + size <= gpa): EINVAL", [prefault(0, 0, errno="EINVAL", remaining=0)])
    add("prefault-wraps", "gpa + size wraps: EINVAL",
        [prefault((1 << 64) - PAGE, 2 * PAGE, errno="EINVAL", remaining=2 * PAGE)])
    add("prefault-no-memslot", "a valid range with no memslot at all: ENOENT without progress",
        [prefault(0, PAGE, errno="ENOENT", remaining=PAGE)])
    add("prefault-outside-memslot", "a valid range outside the only memslot: ENOENT without progress",
        [region(0, M2), prefault(4 * M2, PAGE, errno="ENOENT", remaining=PAGE)])
    add("prefault-in-memslot", "pre-fault 2 MiB of a slot backed by VMM memory",
        [region(0, M2), host_write(M2, 0, uaddr=UADDR), prefault(0, M2, remaining=0)])
    add("prefault-crossing-slot-end", "pre-fault crossing the slot end: progress, then stop with 4 KiB left (ok)",
        [region(0, M2), host_write(M2, 0, uaddr=UADDR), prefault(M2 - PAGE, 2 * PAGE, remaining=PAGE)])
    add("prefault-gmem-slot", "pre-fault a guest_memfd-only slot (MMAP guest_memfd)",
        [create_gmem("g", hx(M2), ["mmap", "init_shared"]), region(0, M2, flags=["guest_memfd"], gmem="g", offset=0),
         prefault(0, 4 * PAGE, remaining=0)])


def gen_sev_regions():
    add("sev-reg-region-default-vm", "KVM_MEMORY_ENCRYPT_REG_REGION on a default VM: ENOTTY (not an SEV guest)",
        [enc_region(UADDR, PAGE, errno="ENOTTY")])
    add("sev-reg-region-default-vm-size-0", "size 0 on a default VM: ENOTTY before any argument check",
        [enc_region(UADDR, 0, errno="ENOTTY")])
    add("sev-unreg-region-default-vm", "KVM_MEMORY_ENCRYPT_UNREG_REGION on a default VM: ENOTTY",
        [enc_region(UADDR, PAGE, reg=False, errno="ENOTTY")])
    add("sev-reg-region-sev-vm", "register, unregister with a different size (EINVAL), then exactly",
        [host_write(2 * PAGE, 0, uaddr=UADDR), enc_region(UADDR, 2 * PAGE), enc_region(UADDR, PAGE, reg=False, errno="EINVAL"),
         enc_region(UADDR, 2 * PAGE, reg=False)], vm={"type": "sev"})
    add("sev-reg-region-sev-vm-size-0", "size 0 on an SEV VM: EINVAL", [enc_region(UADDR, 0, errno="EINVAL")],
        vm={"type": "sev"})
    add("sev-reg-region-sev-vm-wraps", "addr + size wraps: EINVAL",
        [enc_region((1 << 64) - PAGE, 2 * PAGE, errno="EINVAL")], vm={"type": "sev"})


def default_caps(scope):
    mem_attrs = 0
    if OPTS.vm_memory_attributes and scope == "system":
        mem_attrs = ATTR_PRIVATE
    return {
        "nr_memslots": USER_MEM_SLOTS,
        "readonly_mem": 1,
        "multi_address_space": 2,        # CONFIG_KVM_SMM: KVM_MAX_NR_ADDRESS_SPACES / as_ids of a default VM
        "exit_hypercall": 1 << 12,        # KVM_EXIT_HYPERCALL_VALID_MASK = BIT(KVM_HC_MAP_GPA_RANGE)
        "user_memory2": 1,
        "memory_attributes": mem_attrs,
        "guest_memfd": 1,
        "vm_types": (1 << len(VM_TYPES)) - 1,
        "pre_fault_memory": 1,            # tdp_enabled
        "guest_memfd_flags": GMEM_MMAP | GMEM_INIT_SHARED,
    }


def gen_caps():
    for scope in ("vm", "system"):
        for cap, value in default_caps(scope).items():
            add(f"cap-{cap.replace('_', '-')}-{scope}", f"KVM_CHECK_EXTENSION({cap}) at {scope} scope: {value}",
                [check_ext(cap, scope, value)])
        add(f"cap-unknown-9999-{scope}", f"an unknown capability number answers 0 at {scope} scope",
            [check_ext(9999, scope, 0)])


def gen_close():
    MS = ["mmap", "init_shared"]
    vmg = vm_with(gmems=[("g", 4 * PAGE, MS)])
    add("close-vm-then-create-gmem", "after closing the VM fd, VM ioctls fail with EBADF",
        [close_vm(), create_gmem("h", hx(PAGE), errno="EBADF")], vm=vmg)
    add("close-vm-then-memslot", "KVM_SET_USER_MEMORY_REGION2 on a closed VM fd: EBADF",
        [close_vm(), region(0, M2, errno="EBADF")])
    add("close-vm-then-check-extension", "check_extension: VM scope EBADF, /dev/kvm still answers",
        [close_vm(), check_ext("guest_memfd", "vm", errno="EBADF"), check_ext("guest_memfd", "system", 1)])
    add("close-vm-then-set-attributes", "KVM_SET_MEMORY_ATTRIBUTES on a closed VM fd: EBADF",
        [close_vm(), set_attrs(0, PAGE, errno="EBADF")])
    add("close-vm-then-encrypt-region", "KVM_MEMORY_ENCRYPT_REG_REGION on a closed VM fd: EBADF",
        [close_vm(), enc_region(UADDR, PAGE, errno="EBADF")])
    add("close-vm-twice", "closing the VM fd twice: EBADF", [close_vm(), close_vm(errno="EBADF")])
    add("close-vm-gmem-fallocate-still-works", "the guest_memfd keeps the VM alive: fallocate works after the VM fd is closed",
        [close_vm(), falloc("g", ["keep_size"], 0, 4 * PAGE), falloc("g", ["keep_size", "punch_hole"], 0, PAGE),
         falloc("g", ["keep_size"], 4 * PAGE, PAGE, "EINVAL")], vm=vmg)
    add("close-vm-gmem-rw-still-works", "host access through the guest_memfd after the VM fd is closed",
        [host_write(PAGE, 0x5a, gmem="g"), close_vm(), host_read(PAGE, gmem="g", byte=0x5a),
         host_write(PAGE, 0x6b, gmem="g", offset=PAGE), host_read(PAGE, gmem="g", offset=PAGE, byte=0x6b),
         host_read(8, gmem="g", offset=4 * PAGE, signal="SIGBUS")], vm=vmg)
    add("close-vm-gmem-mmap-still-works", "mmap of the guest_memfd after the VM fd is closed",
        [close_vm(), host_mmap("g", 4 * PAGE)], vm=vmg)
    add("close-vm-with-bound-slot", "closing the VM fd while a guest_memfd slot is bound; the file still works",
        [region(0, 4 * PAGE, flags=["guest_memfd"], gmem="g", offset=0), close_vm(),
         falloc("g", ["keep_size", "punch_hole"], 0, 4 * PAGE), host_read(PAGE, gmem="g", byte=0)], vm=vmg)
    add("close-gmem-then-fallocate", "fallocate on a closed guest_memfd: EBADF",
        [close_gmem("g"), falloc("g", ["keep_size"], 0, PAGE, "EBADF")], vm=vmg)
    add("close-gmem-then-bind", "binding a closed guest_memfd: EBADF",
        [close_gmem("g"), region(0, 4 * PAGE, flags=["guest_memfd"], gmem="g", offset=0, errno="EBADF")], vm=vmg)
    add("close-gmem-then-mmap", "mmap of a closed guest_memfd: EBADF", [close_gmem("g"), host_mmap("g", PAGE, errno="EBADF")],
        vm=vmg)
    add("close-gmem-then-host-read", "host access needs a mapping of the closed guest_memfd: EBADF",
        [close_gmem("g"), host_read(PAGE, gmem="g", errno="EBADF")], vm=vmg)
    add("close-gmem-twice", "closing a guest_memfd twice: EBADF", [close_gmem("g"), close_gmem("g", "EBADF")], vm=vmg)
    add("close-gmem-bound-then-delete-slot", "a slot bound to a closed guest_memfd can still be deleted",
        [region(0, 4 * PAGE, flags=["guest_memfd"], gmem="g", offset=0), close_gmem("g"), delete(0),
         region(0, 4 * PAGE, flags=["guest_memfd"], gmem="g", offset=0, errno="EBADF")], vm=vmg)
    add("close-gmem-bound-slot-stays", "a slot bound to a closed guest_memfd still occupies its gpa range",
        [region(0, 4 * PAGE, flags=["guest_memfd"], gmem="g", offset=0), close_gmem("g"),
         region(1, 4 * PAGE, errno="EEXIST")], vm=vmg)
    add("close-fd-invalid", "close of a closed descriptor: EBADF", [close_gmem({"fd": "invalid"}, "EBADF")])
    add("close-fd-memfd", "close of the VMM's memfd", [close_gmem({"fd": "memfd"}),
                                                       falloc({"fd": "memfd"}, ["keep_size"], 0, PAGE, "EBADF")])


def gen_vm_types():
    for t in VM_TYPES[1:]:
        tn = t.replace("_", "-")
        add(f"vmtype-{tn}-create-gmem", f"a guest_memfd on a {t} VM", [create_gmem("g", hx(M2))], vm={"type": t})
        add(f"vmtype-{tn}-gmem-slot", f"a guest_memfd memslot on a {t} VM",
            [create_gmem("g", hx(M2)), region(0, M2, flags=["guest_memfd"], gmem="g", offset=0)], vm={"type": t})
        # kvm_arch_nr_memslot_as_ids(): 1 for private-memory VMs, 2 otherwise (SMM).
        e = "EINVAL" if t in PRIVATE_MEM_TYPES else "ok"
        add(f"vmtype-{tn}-as-id-1", f"address space 1 on a {t} VM: {e}", [region(0, M2, as_id=1, errno=e)],
            vm={"type": t})
        # kvm_arch_has_readonly_mem(): not for VMs with protected state.
        e = memslot_flags_errno(MEM_READONLY, t)
        add(f"vmtype-{tn}-readonly-slot", f"a read-only memslot on a {t} VM: {e}",
            [region(0, M2, flags=["readonly"], errno=e)], vm={"type": t})
        e = "ok" if gmem_supported_flags(t) & GMEM_INIT_SHARED else "EINVAL"
        add(f"vmtype-{tn}-gmem-init-shared", f"INIT_SHARED on a {t} VM: {e}",
            [create_gmem("g", hx(M2), ["mmap", "init_shared"], errno=e)], vm={"type": t})
    add("vmtype-pkvm-create-gmem", "an arm64 pKVM protected VM (not runnable on an x86 host)",
        [create_gmem("g", hx(M2), ["mmap"])], vm={"type": "pkvm"})


def gen_mixed():
    add("mixed-guest-steps-skipped", "vCPU accesses and hypercalls are not uAPI calls: diff-kvm skips them",
        [create_gmem("g", hx(M2), ["mmap", "init_shared"]), region(0, M2, flags=["guest_memfd"], gmem="g", offset=0),
         {"vcpu": 0, "access": {"gpa": "0x0", "size": hx(PAGE), "op": "write", "value": "0x5a"}},
         {"vcpu": 0, "hypercall": {"map_gpa_range": {"gpa": "0x0", "size": hx(PAGE), "to": "shared"}}},
         host_read(PAGE, gmem="g", offset=M2 - PAGE, byte=0)])
    add("mixed-parallel-members-run-in-order", "members of a parallel group run in order on the host and are not compared",
        [create_gmem("g", hx(4 * PAGE), ["mmap", "init_shared"]),
         {"parallel": [falloc("g", ["keep_size"], 0, PAGE), falloc("g", ["keep_size", "punch_hole"], PAGE, PAGE)]},
         host_read(PAGE, gmem="g", byte=0)])


# ======================================================================================
# named host mappings (mmap id, munmap) and v1 KVM_SET_USER_MEMORY_REGION
# ======================================================================================
def named_mmap(gmem, size, mid, offset=0, errno="ok"):
    return {"host": {"mmap": {"guest_memfd": gmem, "offset": hx(offset), "size": hx(size), "id": mid}},
            "expect": ex(errno)}


def via(op, mid, size, offset=0, value=None, errno="ok", signal=None, byte=None):
    a = {"mapping": mid, "offset": hx(offset), "size": hx(size)}
    if value is not None:
        a["value"] = hx(value)
    e = ex(errno)
    if signal:
        e["signal"] = signal
    if byte is not None:
        e["bytes"] = hx(byte)
    return {"host": {op: a}, "expect": e}


def gen_named_mappings():
    MS = ["mmap", "init_shared"]
    add("map-named-readback", "write and read back through the pointer mmap returned",
        [create_gmem("g", hx(2 * PAGE), MS), named_mmap("g", 2 * PAGE, "m"), via("write", "m", 2 * PAGE, value=0x5a),
         via("read", "m", 2 * PAGE, byte=0x5a)])
    add("map-named-offset", "a mapping at file offset 4 KiB sees the file's second page at its start",
        [create_gmem("g", hx(2 * PAGE), MS), named_mmap("g", 2 * PAGE, "all"), via("write", "all", PAGE, offset=PAGE,
                                                                                  value=0x77),
         named_mmap("g", PAGE, "second", offset=PAGE), via("read", "second", PAGE, byte=0x77)])
    add("map-named-beyond-eof", "a mapping 4x the file: SIGBUS past EOF, the bytes before it were written",
        [create_gmem("g", hx(PAGE), MS), named_mmap("g", 4 * PAGE, "m"),
         via("write", "m", 4 * PAGE, value=0xaa, signal="SIGBUS"), via("read", "m", 1, offset=PAGE, signal="SIGBUS"),
         via("read", "m", PAGE, byte=0xaa)])
    add("map-named-munmap-then-access", "after munmap the pointer is dangling: SIGSEGV, the file keeps its data",
        [create_gmem("g", hx(PAGE), MS), named_mmap("g", PAGE, "m"), via("write", "m", PAGE, value=0x11),
         via("munmap", "m", PAGE), via("read", "m", 1, signal="SIGSEGV"), via("write", "m", 1, value=1, signal="SIGSEGV"),
         host_read(PAGE, gmem="g", byte=0x11)])
    add("map-named-munmap-part", "munmap of the second page: the first still works, the second faults",
        [create_gmem("g", hx(2 * PAGE), MS), named_mmap("g", 2 * PAGE, "m"), via("write", "m", 2 * PAGE, value=0x22),
         via("munmap", "m", PAGE, offset=PAGE), via("read", "m", PAGE, byte=0x22),
         via("read", "m", 1, offset=PAGE, signal="SIGSEGV"), via("read", "m", 2 * PAGE, signal="SIGSEGV")])
    add("map-named-munmap-unaligned", "munmap at an unaligned address: EINVAL",
        [create_gmem("g", hx(PAGE), MS), named_mmap("g", PAGE, "m"), via("munmap", "m", PAGE, offset=1, errno="EINVAL"),
         via("read", "m", PAGE, byte=0)])
    add("map-named-munmap-twice", "munmap of an unmapped range succeeds",
        [create_gmem("g", hx(PAGE), MS), named_mmap("g", PAGE, "m"), via("munmap", "m", PAGE), via("munmap", "m", PAGE)])
    add("map-named-munmap-then-punch", "punch hole after munmap: the file page is freed, a new mapping reads zeros",
        [create_gmem("g", hx(PAGE), MS), named_mmap("g", PAGE, "m"), via("write", "m", PAGE, value=0x33),
         via("munmap", "m", PAGE), falloc("g", ["keep_size", "punch_hole"], 0, PAGE), named_mmap("g", PAGE, "m2"),
         via("read", "m2", PAGE, byte=0)])
    add("map-named-close-keeps-mapping", "closing the fd keeps the mapping (it holds the file)",
        [create_gmem("g", hx(PAGE), MS), named_mmap("g", PAGE, "m"), via("write", "m", PAGE, value=0x44), close_gmem("g"),
         via("read", "m", PAGE, byte=0x44), via("munmap", "m", PAGE)])
    add("map-named-private-memory", "MMAP without INIT_SHARED: the mapping exists, every access SIGBUS",
        [create_gmem("g", hx(PAGE), ["mmap"]), named_mmap("g", PAGE, "m"), via("read", "m", 1, signal="SIGBUS"),
         via("munmap", "m", PAGE)])


def gen_memslot_v1_flags():
    # kvm_vm_ioctl(KVM_SET_USER_MEMORY_REGION): v1 takes only LOG_DIRTY_PAGES | READONLY.
    for bit in range(32):
        f = 1 << bit
        e = "EINVAL" if f & ~(MEM_LOG_DIRTY | MEM_READONLY) else memslot_flags_errno(f)
        add(f"memslot-v1-flag-bit-{bit:02d}", f"KVM_SET_USER_MEMORY_REGION (v1) flags bit {bit} alone: {e}",
            [{"ioctl": {"set_user_memory_region": {"slot": 0, "flags": hx(f), "gpa": "0x0", "size": hx(M2),
                                                   "userspace_addr": hx(UADDR)}}, "expect": ex(e)}])
    add("memslot-v1-create-delete", "v1 creates and deletes a slot; v2 sees it in between",
        [{"ioctl": {"set_user_memory_region": {"slot": 0, "gpa": "0x0", "size": hx(M2), "userspace_addr": hx(UADDR)}},
          "expect": ex()},
         region(1, M2, gpa=0, errno="EEXIST"),
         {"ioctl": {"set_user_memory_region": {"slot": 0, "gpa": "0x0", "size": "0x0"}}, "expect": ex()},
         region(1, M2, gpa=0)])


GENERATORS = [gen_gmem_create, gen_gmem_flags, gen_gmem_mmap, gen_host_access, gen_fallocate, gen_memslot_flags,
              gen_memslot_validation, gen_memslot_changes, gen_memslot_overlap, gen_attributes, gen_prefault,
              gen_sev_regions, gen_caps, gen_close, gen_vm_types, gen_mixed, gen_named_mappings, gen_memslot_v1_flags]


def render(sc):
    return json.dumps(sc, indent=2) + "\n"


def main():
    global OPTS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "scenarios", "diff-kvm"))
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    ap.add_argument("--profile", default="linux-6.18", choices=["linux-6.18", "linux-7.2", "inplace"],
                    help="expectations for this kernel profile (kvm.profile)")
    OPTS = ap.parse_args()
    OPTS.vm_memory_attributes = OPTS.profile != "inplace"
    OPTS.gmem_bind_eexist = OPTS.profile == "linux-7.2"
    for g in GENERATORS:
        g()
    files = {f"{name}.json": render(sc) for name, sc in sorted(corpus.items())}
    out = os.path.normpath(OPTS.out)
    existing = set()
    if os.path.isdir(out):
        existing = {f for f in os.listdir(out) if f.endswith(".json")}
    if OPTS.check:
        bad = []
        for f, text in files.items():
            p = os.path.join(out, f)
            if not os.path.exists(p):
                bad.append(f"missing {f}")
            elif open(p, encoding="utf-8").read() != text:
                bad.append(f"differs {f}")
        bad += [f"stale {f}" for f in sorted(existing - set(files))]
        for b in bad:
            print(f"gen_diffkvm_corpus: {b}", file=sys.stderr)
        if bad:
            print(f"gen_diffkvm_corpus: {out} is out of date; run tools/gen_diffkvm_corpus.py", file=sys.stderr)
            return 1
        print(f"gen_diffkvm_corpus: {len(files)} scenarios up to date in {out}")
        return 0
    os.makedirs(out, exist_ok=True)
    for f in sorted(existing - set(files)):
        os.remove(os.path.join(out, f))
    for f, text in files.items():
        p = os.path.join(out, f)
        if not os.path.exists(p) or open(p, encoding="utf-8").read() != text:
            with open(p, "w", encoding="utf-8") as fh:
                fh.write(text)
    print(f"gen_diffkvm_corpus: wrote {len(files)} scenarios to {out}")
    return 0


OPTS = None

if __name__ == "__main__":
    sys.exit(main())
