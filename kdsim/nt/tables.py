"""Page tables in guest RAM, as the memory manager builds and edits them.

One class for the three paging modes: the levels come from the profile's paging mode
(index bits per level, entry size).  Tables are reached by physical address; a new
table page comes from the caller's allocator, which also records it in the PFN
database.  What Windows writes into the entries (valid, software, transition,
prototype PTEs) is the caller's business; this module places values.
"""
from __future__ import annotations

from typing import Callable

from kdsim.machine import Machine

from .guest import RamWords

PAGE = 0x1000
# Hardware bits (nt-structures.md §1) and the Windows MP software write bit.
P, RW, US, A, D, PS, G = 0x1, 0x2, 0x4, 0x20, 0x40, 0x80, 0x100
WRITE = 0x800                  # Win7/WRK MP: "page is writable" lives in software bit 11
NX = 1 << 63
# A table entry: present, writable, accessed and dirty (as MiMakeValid... leaves it).
KERNEL_TABLE = P | RW | A | D
USER_TABLE = P | RW | US | A | D
# kdsim choice: the self-map entry without the software Write bit.
SELF_MAP_ENTRY = P | RW | A | D


class Tables:
    """The tree under one top-level table (a PML4, a page directory, or a PAE PDPT).

    ``alloc(level, va, parent_entry_pa)`` returns the physical address of a fresh zeroed
    page for a new table at ``level`` (3 PDPT .. 1 PT) that will map ``va``, to be hung
    from the entry at ``parent_entry_pa``; ``upper(va)`` gives the flags of a new
    non-leaf entry for ``va``; ``linked(depth, va, entry_pa, value)``, if given, hears of
    every new non-leaf entry once it is written."""

    def __init__(self, machine: Machine, mode, top: int,
                 alloc: Callable[[int, int, int], int], upper: Callable[[int], int],
                 linked: Callable[[int, int, int, int], None] | None = None):
        self.m = machine
        self.mode = mode                     # profiles.paging.PagingMode
        self.top = top                       # CR3 (PDPT address on PAE)
        self.alloc = alloc
        self.upper = upper
        self.linked = linked
        self.esize = mode.pte_size
        self.fmt = "<Q" if self.esize == 8 else "<I"
        self.words = RamWords(machine, self.esize)
        self.addr_mask = 0x000FFFFFFFFFF000 if self.esize == 8 else 0xFFFFF000
        bits = mode.index_bits
        shifts, s = [], 12
        for b in reversed(bits):
            shifts.append(s)
            s += b
        self.levels = list(zip(reversed(shifts), bits))   # top first: (shift, bits)

    def read(self, pa: int) -> int:
        return self.words.get(pa)

    def write(self, pa: int, value: int) -> None:
        self.words.set(pa, value)

    def index(self, va: int, depth: int) -> int:
        shift, bits = self.levels[depth]
        return (va >> shift) & ((1 << bits) - 1)

    def can_be_large(self, depth: int) -> bool:
        """PS=1 maps a page at this depth: not in a PML4E or a PAE PDPTE, nor in a PTE."""
        return depth < len(self.levels) - 1 and (depth > 0 or self.mode.name == "x86")

    def level_of(self, depth: int) -> int:
        return len(self.levels) - depth

    def entry(self, va: int, depth: int, create: bool = False) -> int | None:
        """Physical address of the entry at ``depth`` (0 = top) for ``va``; tables above
        it are created when ``create``, else None if one is missing or large."""
        table = self.top & (~0x1F if self.mode.name == "pae" else ~0xFFF)
        for d in range(depth):
            epa = table + self.index(va, d) * self.esize
            e = self.read(epa)
            if not e & P:
                if not create:
                    return None
                new = self.alloc(self.level_of(d) - 1, va, epa)
                flags = P if (self.mode.name == "pae" and d == 0) else self.upper(va)
                e = new | flags
                self.write(epa, e)
                if self.linked:
                    self.linked(d, va, epa, e)
            elif e & PS and self.can_be_large(d):
                return None                   # a large page maps this range
            table = e & self.addr_mask
        return table + self.index(va, depth) * self.esize

    def leaf(self, va: int, create: bool = False) -> int | None:
        """The 4 KB PTE's physical address for ``va``."""
        return self.entry(va, len(self.levels) - 1, create)

    def set(self, va: int, value: int) -> int:
        """Write the PTE for ``va`` (creating tables); returns its physical address."""
        pa = self.leaf(va, create=True)
        self.write(pa, value)
        return pa

    def get(self, va: int) -> int | None:
        pa = self.leaf(va)
        return None if pa is None else self.read(pa)

    def set_large(self, va: int, value: int, depth: int) -> int:
        """A large-page leaf at ``depth`` (the PDE for 2/4 MB, the PDPTE for 1 GB)."""
        pa = self.entry(va, depth, create=True)
        self.write(pa, value | PS)
        return pa

    def walk(self, descend=lambda depth, va, value: True):
        """Every present entry: ``(depth, va, entry_pa, value)``, tables before what
        they map, in address order.  ``descend`` decides whether to follow a table
        pointer (the self-map entry must not be followed: it leads back to the top)."""
        self._descend = descend
        yield from self._walk(self.top & (~0x1F if self.mode.name == "pae" else ~0xFFF),
                              0, 0)

    def _walk(self, table: int, depth: int, base: int):
        shift, bits = self.levels[depth]
        values = self.words.table(table, 1 << bits).tolist()
        last = depth == len(self.levels) - 1
        for i, e in enumerate(values):
            if not e & P:
                continue
            va = self.mode.canonical(base | (i << shift))
            yield depth, va, table + i * self.esize, e
            if not last and not (e & PS and self.can_be_large(depth)) and \
                    self._descend(depth, va, e):
                yield from self._walk(e & self.addr_mask, depth + 1, base | (i << shift))

    def map_run(self, va: int, pa: int, npages: int, flags: int) -> None:
        """Map ``npages`` consecutive 4 KB pages ``va`` -> ``pa``, a page table at a time."""
        import numpy as np
        per_table = 1 << self.levels[-1][1]
        dtype = np.uint64 if self.esize == 8 else np.uint32
        done = 0
        while done < npages:
            cur = va + done * PAGE
            first = self.leaf(cur, create=True)
            slot = self.index(cur, len(self.levels) - 1)
            n = min(npages - done, per_table - slot)
            frames = pa + (done + np.arange(n, dtype=np.uint64)) * PAGE
            values = (frames | np.uint64(flags)).astype(dtype)
            self.m.write_physical(first, values.tobytes())
            done += n


# The self-map level names of each depth of the hardware walk (PAE's PDPT has none).
ENTRY_LEVELS = {"x64": ("pxe", "ppe", "pde", "pte"), "pae": (None, "pde", "pte"),
                "x86": ("pde", "pte")}


def is_self_map_entry(profile, depth: int, va: int) -> bool:
    """Whether the entry at ``depth`` for ``va`` is the self-map (a walk must not follow it:
    it leads back to the tables themselves)."""
    mode, sm = profile.paging, profile.self_map
    if mode.name == "x64":
        return depth == 0 and va == mode.canonical(sm.index << 39)
    if mode.name == "x86":
        return depth == 0 and va == sm.index << 22
    return depth == 1 and sm.pte_base <= va < sm.pte_base + (4 << 21)
