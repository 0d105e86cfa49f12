"""The outcome of one address translation, as a value with its evidence."""
from __future__ import annotations

from ._kdcore import lib

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

    def __init__(self, walk, mode: str):
        self.va = walk.va
        self.status = walk.status
        self.mode = mode
        n = walk.nlevels
        self.levels = tuple((walk.entry_pa[i], walk.entry_val[i]) for i in range(n))
        self.fault_level = walk.fault_level
        self.error_code = walk.error_code
        self.tlb_hit = bool(walk.tlb_hit)
        ok = walk.status == lib.KD_OK
        self.pa = walk.pa if ok else None
        self.page_size = walk.page_size if ok else None
        self.perms = walk.perms if ok else 0

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
