"""The outcome of one address translation, as a value with its evidence."""
from __future__ import annotations

import struct

from ._kdcore import ffi, lib

# kd_walk read in one unpack: va, pa, page_size, entry_pa[4], entry_val[4], nlevels,
# status, fault_level, error_code, perms, tlb_hit.
_WALK = struct.Struct("<11Q3i3I")
assert ffi.sizeof("kd_walk") == _WALK.size and ffi.offsetof("kd_walk", "nlevels") == 88


def unpack_walk(walk) -> tuple:
    """The fields of a ``kd_walk *`` as a tuple, in declaration order."""
    return _WALK.unpack(ffi.buffer(walk))

LEVEL_NAMES = {
    "x64": {4: "PML4E", 3: "PDPTE", 2: "PDE", 1: "PTE"},
    "pae": {3: "PDPTE", 2: "PDE", 1: "PTE"},
    "x86": {2: "PDE", 1: "PTE"},
    "none": {},
}


class Translation:
    """What the MMU did for one virtual address.

    ``levels`` lists ``(entry_pa, entry_value)`` for every paging-structure entry
    read, top level first.  On failure ``fault_level`` names the failing entry's
    level (4 PML4E, 3 PDPTE, 2 PDE, 1 PTE; 0 for a fault before the walk, such
    as a non-canonical address) and ``error_code`` holds the x86 page-fault error
    code (``KD_PF_*`` bits)."""

    __slots__ = ("va", "status", "pa", "page_size", "levels", "fault_level",
                 "error_code", "perms", "tlb_hit", "mode")

    def __init__(self, raw: tuple, mode: str):
        (self.va, pa, page_size, e0, e1, e2, e3, v0, v1, v2, v3, n,
         self.status, self.fault_level, self.error_code, perms, tlb_hit) = raw
        self.mode = mode
        self.levels = tuple(zip((e0, e1, e2, e3)[:n], (v0, v1, v2, v3)[:n]))
        self.tlb_hit = bool(tlb_hit)
        ok = self.status == lib.KD_OK
        self.pa = pa if ok else None
        self.page_size = page_size if ok else None
        self.perms = perms if ok else 0

    @property
    def ok(self) -> bool:
        return self.status == lib.KD_OK

    @property
    def page_fault(self) -> bool:
        return self.status == lib.KD_E_PAGE_FAULT

    @property
    def noncanonical(self) -> bool:
        return self.status == lib.KD_E_NONCANONICAL

    @property
    def writable(self) -> bool:
        return bool(self.perms & lib.KD_PERM_WRITE)

    @property
    def user(self) -> bool:
        return bool(self.perms & lib.KD_PERM_USER)

    @property
    def executable(self) -> bool:
        return bool(self.perms & lib.KD_PERM_EXEC)

    @property
    def global_page(self) -> bool:
        return bool(self.perms & lib.KD_PERM_GLOBAL)

    @property
    def dirty(self) -> bool:
        return bool(self.perms & lib.KD_PERM_DIRTY)

    @property
    def fault_level_name(self) -> str | None:
        return LEVEL_NAMES[self.mode].get(self.fault_level)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        if self.ok:
            return (f"<Translation {self.va:#x} -> {self.pa:#x} "
                    f"({self.page_size:#x} page, perms {self.perms:#x})>")
        return (f"<Translation {self.va:#x} failed: status {self.status}, "
                f"level {self.fault_level}, error code {self.error_code:#x}>")
