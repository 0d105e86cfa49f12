"""Page tables for the rule-by-rule tests: tables.TableBuilder plus looking at and
editing single entries by depth (0 = the top level)."""
from __future__ import annotations

from tests.core.tables import TableBuilder

P, RW, US, PWT, PCD, A, D, PS, G = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100
NX = 1 << 63
KB4, MB2, MB4, GB1 = 1 << 12, 1 << 21, 1 << 22, 1 << 30


class PageTables(TableBuilder):
    def read_entry(self, pa: int) -> int:
        return self._read(pa)

    def write_entry(self, pa: int, value: int) -> None:
        self._write(pa, value)

    def entry_address(self, va: int, depth: int) -> int | None:
        """Physical address of ``va``'s entry at ``depth``, or None if a table above it
        is missing."""
        table = self.root
        for i, level in enumerate(self.geo.levels):
            epa = table + ((va >> level.shift) & ((1 << level.index_bits) - 1)) * \
                self.geo.entry_size
            if i == depth:
                return epa
            e = self._read(epa)
            if not e & P:
                return None
            table = e & (0xFFFFF000 if self.geo.entry_size == 4 else 0x000FFFFFFFFFF000)
        return None

    def set_flags(self, va: int, depth: int, set_bits: int = 0, clear_bits: int = 0) -> int:
        epa = self.entry_address(va, depth)
        self._write(epa, (self._read(epa) | set_bits) & ~clear_bits)
        return epa

    def activate(self, **kw) -> None:
        self.m.set_paging(self.mode, self.cr3, **kw)
