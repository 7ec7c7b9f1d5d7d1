#!/usr/bin/env python3
"""Checks scenarios/scenario.schema.json against the loader's own test data and every
scenario under the given folders: the schema must be a valid draft 2020-12 schema, accept
every scenario the loader accepts (tests/loader/data/good, scenarios/**), and reject the
shapes below that the loader rejects. Exits 77 (CTest: skipped) without python jsonschema."""
import json
import pathlib
import re
import sys

try:
    import jsonschema
except ImportError:
    print("check_schema: python jsonschema is not installed; skipped")
    sys.exit(77)


def strip_comments(text):
    # The loader accepts // and /* */ comments (JSONC); json.loads does not.
    return re.sub(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', lambda m: m.group(1) or "", text, flags=re.S)


def load(path):
    return json.loads(strip_comments(path.read_text()))


def main():
    schema_path = pathlib.Path(sys.argv[1])
    schema = json.loads(schema_path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    failures = 0
    files = []
    for arg in sys.argv[2:]:
        p = pathlib.Path(arg)
        files += [p] if p.is_file() else sorted(f for f in p.rglob("*.json") if not f.name.endswith(".schema.json"))
    for f in files:
        errors = sorted(validator.iter_errors(load(f)), key=lambda e: list(e.absolute_path))
        for e in errors[:3]:
            print(f"{f}: {e.json_path}: {e.message[:300]}")
        failures += bool(errors)

    # Shapes the loader rejects; the schema must reject them too.
    bad = {
        "unknown top-level key": {"stpes": []},
        "unknown vm key": {"vm": {"vcpu": 2}},
        "unknown parameter": {"params": {"mmu.l2_tlb.entrys": 1}},
        "parameter of the wrong type": {"params": {"kvm.config.smm": "no"}},
        "negative size": {"vm": {"guest_memfd": [{"id": "g", "size": -1}]}},
        "bad size suffix": {"vm": {"guest_memfd": [{"id": "g", "size": "1GB"}]}},
        "unknown platform": {"platform": "zen4-genao"},
        "bad errno": {"steps": [{"close": "vm", "expect": {"errno": "EINVL"}}]},
        "two operations in a step": {"steps": [{"close": "vm", "ioctl": {"check_extension": {"cap": 1}}}]},
        "vcpu on an ioctl step": {"steps": [{"vcpu": 0, "close": "vm"}]},
        "access without vcpu": {"steps": [{"access": {"gpa": 0, "size": 1}}]},
        "unknown flag name": {"vm": {"memslots": [{"slot": 0, "gpa": 0, "size": 4096, "flags": ["readonly_mem"]}]}},
        "nested parallel": {"steps": [{"parallel": [{"close": "vm"}, {"parallel": []}]}]},
        "two ioctls": {"steps": [{"ioctl": {"check_extension": {"cap": 1}, "fallocate": {"guest_memfd": "g", "len": 1}}}]},
        "content_policy and flags": {"steps": [{"ioctl": {"set_memory_attributes2": {
            "guest_memfd": "g", "size": 1, "content_policy": "zero", "flags": 1}}}]},
        "host read through both": {"steps": [{"host": {"read": {"guest_memfd": "g", "userspace_addr": 0, "size": 1}}}]},
        "metric name with spaces": {"expect": {"metrics": {"Faults Private": 1}}},
        "who on a pin": {"steps": [{"host": {"pin": {"userspace_addr": 0, "size": 4096, "who": "kernel"}}}]},
    }
    for what, doc in bad.items():
        if validator.is_valid(doc):
            print(f"schema accepts what the loader rejects: {what}: {json.dumps(doc)}")
            failures += 1
    print(f"check_schema: {len(files)} files, {len(bad)} rejected shapes, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
