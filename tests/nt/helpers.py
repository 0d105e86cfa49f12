"""Helpers for the nt tests: a bytearray-backed memory and the reference layouts."""
import json
from pathlib import Path

import pytest

# The reference dumps the packaged data was converted from. Tests that compare against
# them skip when the checkout has no ../shared next to it.
REFERENCE_LAYOUTS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "layouts"


class FakeMemory:
    """The memory interface views use: read(addr, n) -> bytes, write(addr, data)."""

    def __init__(self, size=0x10000, fill=0):
        self.data = bytearray([fill]) * size

    def read(self, addr, n):
        if addr < 0 or addr + n > len(self.data):
            raise IndexError("read outside fake memory: %#x+%#x" % (addr, n))
        return bytes(self.data[addr:addr + n])

    def write(self, addr, data):
        if addr < 0 or addr + len(data) > len(self.data):
            raise IndexError("write outside fake memory: %#x+%#x" % (addr, len(data)))
        self.data[addr:addr + len(data)] = data


def load_reference(target):
    path = REFERENCE_LAYOUTS / (target + ".json")
    if not path.exists():
        pytest.skip("reference layouts not available at %s" % REFERENCE_LAYOUTS)
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def reference_field(doc, type_name, name):
    for f in doc["types"][type_name]["fields"]:
        if f["name"] == name:
            return f
    raise KeyError("%s.%s" % (type_name, name))


def ram_digest(target: str, ram: str, scenario: str) -> str:
    """SHA-256 of every RAM run of a freshly booted machine."""
    import kdsim
    return ram_digest_of(kdsim.boot(target, ram=ram, scenario=scenario))


def ram_digest_of(machine) -> str:
    """SHA-256 of every RAM run of a booted machine."""
    import hashlib
    h = hashlib.sha256()
    for start, length in machine.nt.runs:
        h.update(machine.core.read_physical(start, length))
    return h.hexdigest()
