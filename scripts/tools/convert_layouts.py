#!/usr/bin/env python3
"""Convert the reference layout dumps into kdsim's packaged type data.

Dev-time only: kdsim never reads ../shared at run time. This reads
``<layouts>/<target>.json`` (the PDB dumps described in the reference
``layouts/README.md``) and writes ``kdsim/nt/profiles/<target_with_underscores>.types.json``:
compact, sorted keys, byte-for-byte deterministic, so a re-run on unchanged input
leaves ``git status`` clean.

What is kept: ``target``, ``pointer_size``, ``types``, ``enums``, ``supplementary_types``
(each tagged with the debugger module it is visible under) and the notes that carry data
(``_MI_VAD_TYPE``). What is dropped: provenance prose (corrections, source dicts, roots,
``kind_inferred``), replaced by one short ``source`` line naming the build.

Usage:
    python scripts/tools/convert_layouts.py [LAYOUTS_DIR] [--out DIR] [--check]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LAYOUTS = REPO.parent / "shared" / "reference" / "layouts"
DEFAULT_OUT = REPO / "kdsim" / "nt" / "profiles"

TARGETS = ("win7-x64", "win7-x86pae", "win7-x86", "wrk-x86")

# Notes that hold data the debugger needs, and the field each one decodes.
# _MI_VAD_TYPE is not a PDB enum in these builds; it names the values of a 3-bit field.
DATA_NOTES = {"_MI_VAD_TYPE": "_MMVAD_FLAGS.VadType"}

# Supplementary types whose "origin" says they come from the target's own nt PDB are
# real nt types (dt nt!LIST_ENTRY64 works on a real target); the others (KDBG) are the
# wdbgexts.h layout and must not be found by `dt nt!...`.
NT_ORIGIN = "the nt PDB dump of this target"
SUPPLEMENTARY_MODULE = "wdbgexts"

TYPE_KEYS = ("size", "kind", "fields", "unnamed")


def output_name(target: str) -> str:
    return target.replace("-", "_") + ".types.json"


def _source_line(doc: dict) -> str:
    src = doc["source"]
    return "%s; %s @%s" % (doc["description"], Path(src["file"]).name, src["commit"][:8])


def _clean_type(t: dict) -> dict:
    return {k: t[k] for k in TYPE_KEYS if k in t}


def convert(doc: dict) -> dict:
    """Reduce one reference layout document to kdsim's package data."""
    supplementary = {}
    for name, t in doc["supplementary_types"].items():
        entry = _clean_type(t)
        entry["module"] = "nt" if t.get("origin") == NT_ORIGIN else SUPPLEMENTARY_MODULE
        supplementary[name] = entry
    notes = {}
    for name, field in DATA_NOTES.items():
        if name in doc.get("notes", {}):
            notes[name] = {"field": field, "values": doc["notes"][name]["values"]}
    out = {
        "target": doc["target"],
        "source": _source_line(doc),
        "pointer_size": doc["pointer_size"],
        "types": {name: _clean_type(t) for name, t in doc["types"].items()},
        "enums": doc["enums"],
        "supplementary_types": supplementary,
        "notes": notes,
    }
    validate(out)
    return out


def _desc_size(desc: dict, types: dict, enums: dict) -> int:
    kind = desc["kind"]
    if kind in ("base", "pointer", "enum"):
        return desc["size"]
    if kind == "bitfield":
        return desc["of"]["size"]
    if kind == "array":
        return desc["count"] * _desc_size(desc["of"], types, enums)
    if kind == "struct":
        return types[desc["name"]]["size"]
    raise ValueError("type kind %r has no size" % kind)


def validate(out: dict) -> None:
    """Fail loudly on data the type layer could not use (the reference was checked,
    this guards the conversion)."""
    types = dict(out["types"])
    types.update(out["supplementary_types"])
    if set(out["types"]) & set(out["supplementary_types"]):
        raise ValueError("a supplementary type shadows an nt type")
    enums = out["enums"]
    ptr = out["pointer_size"]

    def check(desc: dict, where: str) -> None:
        kind = desc["kind"]
        if kind == "struct" and desc["name"] not in types:
            raise ValueError("%s: embedded type %s is missing" % (where, desc["name"]))
        if kind == "enum" and desc["name"] not in enums:
            raise ValueError("%s: enum %s is missing" % (where, desc["name"]))
        if kind == "pointer" and desc["size"] != ptr:
            raise ValueError("%s: pointer size %d != %d" % (where, desc["size"], ptr))
        if kind == "bitfield":
            if desc["of"]["kind"] != "base":
                raise ValueError("%s: bit field of a non-base type" % where)
            if desc["pos"] + desc["bits"] > 8 * desc["of"]["size"]:
                raise ValueError("%s: bit field outside its base" % where)
        for sub in ("of", "returns"):
            if sub in desc and kind != "bitfield":
                check(desc[sub], where)

    for name, t in types.items():
        for f in t["fields"]:
            where = "%s.%s" % (name, f["name"])
            check(f["type"], where)
            if f["offset"] + _desc_size(f["type"], types, enums) > t["size"]:
                raise ValueError("%s lies outside its type" % where)


def dumps(out: dict) -> str:
    return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("layouts", nargs="?", type=Path, default=DEFAULT_LAYOUTS,
                    help="directory holding <target>.json (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="where to write *.types.json (default: %(default)s)")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if a generated file is missing or stale")
    args = ap.parse_args(argv)

    stale = []
    for target in TARGETS:
        with open(args.layouts / (target + ".json"), encoding="utf-8") as fh:
            text = dumps(convert(json.load(fh)))
        dest = args.out / output_name(target)
        current = dest.read_text(encoding="utf-8") if dest.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(dest)
        else:
            dest.write_text(text, encoding="utf-8")
            print("wrote %s (%d bytes)" % (dest, len(text)))
    for dest in stale:
        print("stale: %s" % dest, file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
