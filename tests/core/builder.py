"""Builds page tables in a Machine's guest RAM for tests (architecture facts only)."""
from __future__ import annotations

import struct

P, RW, US, PWT, PCD, A, D, PS, G = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100
NX = 1 << 63
KB4, MB2, MB4, GB1 = 1 << 12, 1 << 21, 1 << 22, 1 << 30

# (VA shift, index bits) per level, top first; the entry size.
GEOMETRY = {
    "x86": ([(22, 10), (12, 10)], 4),
    "pae": ([(30, 2), (21, 9), (12, 9)], 8),
    "x64": ([(39, 9), (30, 9), (21, 9), (12, 9)], 8),
}
LEAF_SHIFT = {KB4: 12, MB2: 21, MB4: 22, GB1: 30}


class PageTables:
    """A bump allocator of table pages from ``table_base`` and a ``map`` that creates
    the intermediate tables on the way.  ``upper`` are the flags of the tables'
    entries, ``flags`` those of the leaf."""

    def __init__(self, machine, mode: str, table_base: int = 0x100000):
        self.m = machine
        self.mode = mode
        self.levels, self.esize = GEOMETRY[mode]
        self.next_table = table_base
        self.root = self.alloc_table()
        # The PAE PDPT is 32 bytes; it lives at the start of its page.
        self.cr3 = self.root

    def alloc_table(self) -> int:
        pa = self.next_table
        self.next_table += KB4
        self.m.write_physical(pa, bytes(KB4))
        return pa

    def read_entry(self, pa: int) -> int:
        raw = self.m.read_physical(pa, self.esize)
        return struct.unpack("<Q" if self.esize == 8 else "<I", raw)[0]

    def write_entry(self, pa: int, value: int) -> None:
        self.m.write_physical(pa, struct.pack("<Q" if self.esize == 8 else "<I", value))

    def entry_address(self, va: int, depth: int) -> int | None:
        """Physical address of the entry at ``depth`` (0 = top) for ``va``, or None if an
        upper level is not present."""
        table = self.root
        for i, (shift, bits) in enumerate(self.levels):
            epa = table + ((va >> shift) & ((1 << bits) - 1)) * self.esize
            if i == depth:
                return epa
            e = self.read_entry(epa)
            if not e & P:
                return None
            table = e & (0xFFFFF000 if self.esize == 4 else 0x000FFFFFFFFFF000)
        return None

    def map(self, va: int, pa: int, size: int = KB4, flags: int = P | RW,
            upper: int = P | RW | US) -> int:
        """Map ``va`` -> ``pa`` with a leaf of ``size``; returns the leaf entry's address."""
        leaf_shift = LEAF_SHIFT[size]
        table = self.root
        for shift, bits in self.levels:
            epa = table + ((va >> shift) & ((1 << bits) - 1)) * self.esize
            if shift == leaf_shift:
                value = pa | flags | (PS if size != KB4 else 0)
                self.write_entry(epa, value)
                return epa
            e = self.read_entry(epa)
            if not e & P:
                sub = self.alloc_table()
                # PAE PDPTEs carry only P (R/W, U/S, A are reserved there).
                e = sub | (P if (self.mode == "pae" and shift == 30) else upper)
                self.write_entry(epa, e)
            table = e & (0xFFFFF000 if self.esize == 4 else 0x000FFFFFFFFFF000)
        raise ValueError(f"no level maps {size:#x} pages in {self.mode}")

    def set_flags(self, va: int, depth: int, set_bits: int = 0, clear_bits: int = 0) -> int:
        epa = self.entry_address(va, depth)
        self.write_entry(epa, (self.read_entry(epa) | set_bits) & ~clear_bits)
        return epa

    def activate(self, **kw) -> None:
        self.m.set_paging(self.mode, self.cr3, **kw)
