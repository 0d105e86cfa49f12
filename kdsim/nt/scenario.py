"""Scenarios: a recipe of memory-manager operations, run at boot.

A scenario is a TOML file (``kdsim/nt/scenarios/<name>.toml``, or any path) with an
optional ``targets = [...]`` restriction and a list of ``[[step]]`` tables, each naming
an ``op`` and its arguments:

    spawn      image, parent (a name), dlls (list), as (a name for later steps)
    alloc      process, size, address, commit (true), protect ("PAGE_READWRITE"),
               top_down (false), as
    commit     process, address, size, protect
    write      process, address, data (text) or fill (byte) + size
    touch      process, address, size (one page), access ("r" or "w")
    protect    process, address, size, protect
    decommit   process, address, size
    release    process, address
    trim       process, address, pages (1)
    terminate  process
    section    name, pages, kind ("pagefile" or "file")   a shared memory section or data file
    map        process, section, as                      map a view of it
    unmap      process, address
    writeout   limit (all)        the modified page writer
    pressure   pages              repurpose the oldest standby pages
    zero       pages (all)        the zero page thread

Addresses are integers or ``"name"`` / ``"name+0x2000"``: a named allocation's base, or
``"kernel32.dll"`` for an image's base.
A step that fails stops the boot with the step and the NTSTATUS.
"""
from __future__ import annotations

import importlib.resources
import pathlib
import re
import tomllib

from . import protect as pr
from .fault import access, touch

PAGE = 0x1000
_REF = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(?:\+\s*(0x[0-9a-fA-F]+|\d+))?\s*$")


class ScenarioError(Exception):
    pass


def load(name_or_path: str) -> dict:
    path = pathlib.Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            return tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ScenarioError(f"scenario file {name_or_path} not found") from None
    try:
        text = importlib.resources.files("kdsim.nt.scenarios").joinpath(
            f"{name_or_path}.toml").read_text()
    except FileNotFoundError:
        raise ScenarioError(f"unknown scenario {name_or_path!r} (see kdsim/nt/scenarios/)") \
            from None
    return tomllib.loads(text)


def names() -> list[str]:
    files = importlib.resources.files("kdsim.nt.scenarios").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml"))


def run(system, name_or_path: str) -> dict:
    """Run a scenario; returns the named processes and allocations."""
    doc = load(name_or_path)
    targets = doc.get("targets")
    if targets and system.profile.name not in targets:
        raise ScenarioError(f"scenario {name_or_path!r} is for {', '.join(targets)}, "
                            f"not {system.profile.name}")
    env = {"System": None}
    procs = {}
    for i, step in enumerate(doc.get("step", [])):
        try:
            _step(system, step, env, procs)
        except ScenarioError as e:
            raise ScenarioError(f"{name_or_path} step {i + 1} ({step.get('op')}): {e}") from None
    return {"processes": procs, "names": env}


def _addr(env, value, system=None) -> int:
    if isinstance(value, int):
        return value
    m = _REF.match(str(value))
    if m and system is not None and m.group(1).lower() in system.sections:
        base = system.sections[m.group(1).lower()].base
    elif m and m.group(1) in env:
        base = env[m.group(1)]
    else:
        raise ScenarioError(f"unknown address {value!r}")
    return base + (int(m.group(2), 0) if m.group(2) else 0)


def _protect(value) -> int:
    if isinstance(value, int):
        return value
    out = 0
    for part in str(value).split("|"):
        part = part.strip()
        if not hasattr(pr, part):
            raise ScenarioError(f"unknown protection {part!r}")
        out |= getattr(pr, part)
    return out


def _mm_protection(value) -> int:
    try:
        return pr.make_protection_mask(_protect(value))
    except pr.InvalidPageProtection:
        raise ScenarioError(f"invalid protection {value!r}") from None


def _check(status: int) -> None:
    if status:
        raise ScenarioError(f"{pr.status_name(status)} ({status:#010x})")


def _step(system, step: dict, env: dict, procs: dict) -> None:
    op = step.get("op")
    proc = None
    if "process" in step:
        proc = procs.get(step["process"])
        if proc is None:
            raise ScenarioError(f"unknown process {step['process']!r}")
    if op == "spawn":
        parent = procs.get(step.get("parent", ""))
        p = system.spawn(step["image"], parent, step.get("dlls", ()), step.get("session"))
        procs[step.get("as", step["image"])] = p
    elif op == "alloc":
        r = system.vm.allocate(proc, step["size"], _addr(env, step.get("address", 0)),
                               commit=step.get("commit", True),
                               protect=_protect(step.get("protect", "PAGE_READWRITE")),
                               top_down=step.get("top_down", False))
        _check(r.status)
        if "as" in step:
            env[step["as"]] = r.base
    elif op == "commit":
        r = system.vm.allocate(proc, step.get("size", PAGE), _addr(env, step["address"]),
                               reserve=False,
                               protect=_protect(step.get("protect", "PAGE_READWRITE")))
        _check(r.status)
    elif op == "write":
        data = step["data"].encode() if "data" in step else \
            bytes([step.get("fill", 0)]) * step.get("size", PAGE)
        _check(access(system, proc, _addr(env, step["address"], system), data, "w")[0])
    elif op == "touch":
        va, size = _addr(env, step["address"], system), step.get("size", PAGE)
        _check(touch(system, proc, va, size, step.get("access", "r"))[0])
    elif op == "protect":
        _check(system.vm.protect(proc, _addr(env, step["address"]), step.get("size", PAGE),
                                 _protect(step["protect"])).status)
    elif op == "decommit":
        _check(system.vm.free(proc, _addr(env, step["address"]), step.get("size", PAGE),
                              release=False).status)
    elif op == "release":
        _check(system.vm.free(proc, _addr(env, step["address"])).status)
    elif op == "trim":
        va = _addr(env, step["address"], system)
        for i in range(step.get("pages", 1)):
            system.trim_page(proc, va + i * PAGE)
    elif op == "section":
        system.create_section(step["name"], step["pages"], step.get("kind", "pagefile"),
                              _mm_protection(step.get("protect", "PAGE_READWRITE")))
    elif op == "map":
        sec = system.sections.get(step["section"].lower())
        if sec is None:
            raise ScenarioError(f"unknown section {step['section']!r}")
        base = sec.map_view(proc, _addr(env, step.get("address", 0)))
        if "as" in step:
            env[step["as"]] = base
    elif op == "unmap":
        base = _addr(env, step["address"], system)
        if base not in proc.views:
            raise ScenarioError(f"no view at {base:#x}")
        proc.views[base][0].unmap_view(proc, base)
    elif op == "writeout":
        system.write_modified(step.get("limit"))
    elif op == "pressure":
        system.repurpose(step["pages"])
    elif op == "zero":
        system.zero_pages(step.get("pages"))
    elif op == "terminate":
        system.terminate(proc)
        del procs[step["process"]]
    else:
        raise ScenarioError(f"unknown operation {op!r}")
