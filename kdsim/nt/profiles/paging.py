"""Paging modes as a table, and the self-map arithmetic that reads it.

Windows maps its own page tables at a fixed VA (the self-map), so the PTE for any VA is
``base[level] + (va >> shift[level]) * pte_size`` (MiGetPteAddress and friends,
nt-structures.md §3). The modes differ only in the numbers below, never in the code.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PagingMode:
    """One x86 paging mode as Windows uses it.

    ``index_bits`` lists the hardware levels top-down (PAE's top level is the 4-entry
    PDPT). ``self_map_shifts`` lists the levels reachable through the self-map; PAE's PDPT
    is not (it lives in ``EPROCESS.PaeTop``), so PAE self-maps only PTEs and PDEs.
    """

    name: str
    pte_size: int
    va_bits: int                      # 32, or 48 for 4-level (canonical, sign-extended)
    index_bits: tuple[int, ...]
    self_map_shifts: dict[str, int]   # level name (lowest first) -> VA bits one entry maps

    def __hash__(self) -> int:          # self_map_shifts is a dict
        return hash(self.name)

    @property
    def va_mask(self) -> int:
        return (1 << self.va_bits) - 1

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self.self_map_shifts)

    def entry_address(self, base: int, level: str, va: int) -> int:
        return base + ((va & self.va_mask) >> self.shift(level)) * self.pte_size

    def va_mapped_by(self, base: int, level: str, entry: int) -> int:
        """The first VA mapped by the paging entry at ``entry`` (MiGetVirtualAddressMappedByPte)."""
        va = ((entry - base) // self.pte_size) << self.shift(level)
        return self.canonical(va & self.va_mask)

    def table_top(self, base: int, level: str) -> int:
        """Last byte of the self-mapped array for ``level`` (PTE_TOP, PDE_TOP, ...)."""
        return base + ((1 << self.va_bits) >> self.shift(level)) * self.pte_size - 1

    def canonical(self, va: int) -> int:
        if self.va_bits == 32:
            return va
        sign = 1 << (self.va_bits - 1)      # x64: bits 63:48 copy bit 47
        return va | (~self.va_mask & 0xFFFFFFFFFFFFFFFF) if va & sign else va

    def shift(self, level: str) -> int:
        """VA bits one entry of ``level`` maps; ValueError if the mode does not self-map it."""
        try:
            return self.self_map_shifts[level]
        except KeyError:
            raise ValueError("%s paging has no self-mapped %s level (levels: %s)"
                             % (self.name, level.upper(), ", ".join(self.levels))) from None


PAGING_MODES = {
    "x86": PagingMode("x86", pte_size=4, va_bits=32, index_bits=(10, 10),
                      self_map_shifts={"pte": 12, "pde": 22}),
    "pae": PagingMode("pae", pte_size=8, va_bits=32, index_bits=(2, 9, 9),
                      self_map_shifts={"pte": 12, "pde": 21}),
    "x64": PagingMode("x64", pte_size=8, va_bits=48, index_bits=(9, 9, 9, 9),
                      self_map_shifts={"pte": 12, "pde": 21, "ppe": 30, "pxe": 39}),
}
