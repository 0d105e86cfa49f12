"""``!ptov DirBase``: every physical page an address space maps and the virtual address it
is mapped at (Microsoft's !ptov documentation: one ``<physical> <virtual>`` line per page,
after an ``Amd64PtoV:``/``X86PtoV:`` header).

The walk reads whole table pages with ``read_physical`` -- the way a debugger reads the
tables of a process that is not loaded -- and follows every present entry, the self-map
included, so the page tables themselves show up at their self-map addresses (as in the
documentation's ``fffff680`00001000`` lines).  ``mappings()`` is also what ``!vm`` uses to
count the pages mapped in the pool ranges.
"""
from __future__ import annotations

import struct

from ..expr import ExprError
from ..registry import REGISTRY
from ..session import CommandError

PAGE = 0x1000
MASK64 = (1 << 64) - 1

# The hardware levels of each paging mode, top-down: (VA shift, index bits, may map a
# large page with PS=1).  Architectural facts (Intel SDM vol. 3 ch. 4), as the C MMU has them.
LEVELS = {
    "x64": ((39, 9, False), (30, 9, True), (21, 9, True), (12, 9, False)),
    "pae": ((30, 2, False), (21, 9, True), (12, 9, False)),
    "x86": ((22, 10, True), (12, 10, False)),
}
P, PS = 0x1, 0x80
ADDR8, ADDR4 = 0x000FFFFFFFFFF000, 0xFFFFF000
PAE_PDPTE_RESERVED = 0x1E6        # PDPTE bits 1-2 and 5-8 are reserved (SDM 4.4.1)


def _bits(hi: int, lo: int) -> int:
    return ((1 << (hi - lo + 1)) - 1) << lo


def _large_reserved(mode: str, shift: int) -> int:
    """Bits that must be clear in a large-page entry (independent of MAXPHYADDR)."""
    if mode == "x86":
        return 1 << 21                      # 4 MB PDE: bit 21 is always reserved
    return _bits(shift - 1, 13)             # 2 MB: bits 20:13, 1 GB: bits 29:13


def top_table(mode: str, dirbase: int) -> int:
    """Where the walk starts: CR3's address bits (PAE: the 32-byte aligned PDPT)."""
    if mode == "pae":
        return dirbase & 0xFFFFFFE0
    return dirbase & (ADDR4 if mode == "x86" else ADDR8)


class _Tables:
    """Table pages read from physical memory, each once per walk."""

    def __init__(self, target, esize: int):
        self.t, self.esize = target, esize
        self.cache: dict[tuple[int, int], tuple[int, ...] | None] = {}

    def entries(self, pa: int, count: int):
        key = (pa, count)
        if key not in self.cache:
            r = self.t.read_physical(pa, count * self.esize)
            self.cache[key] = struct.unpack(f"<{count}{'Q' if self.esize == 8 else 'I'}",
                                            r.data) if r.complete else None
        return self.cache[key]


def mappings(target, dirbase: int, lo: int = 0, hi: int = MASK64):
    """``(va, pa, size)`` of every leaf mapping under ``dirbase`` that overlaps
    ``[lo, hi]``, in ascending VA order (canonical VAs on x64).  Only present entries are
    followed; an entry with architecturally reserved bits set maps nothing (the CPU would
    fault on it).  Raises LookupError if the top-level table cannot be read."""
    mode = target.profile.paging.name
    levels = LEVELS[mode]
    esize = 8 if mode != "x86" else 4
    addr_mask = ADDR8 if esize == 8 else ADDR4
    va_bits = levels[0][0] + levels[0][1]
    lo, hi = lo & ((1 << va_bits) - 1), hi & ((1 << va_bits) - 1)   # x64: drop the sign
    tables = _Tables(target, esize)
    top = top_table(mode, dirbase)
    if tables.entries(top, 1 << levels[0][1]) is None:
        raise LookupError(top)

    def canonical(va: int) -> int:
        if va_bits == 48 and va >> 47 & 1:
            return va | (MASK64 ^ ((1 << 48) - 1))
        return va

    def walk(depth: int, table: int, base: int):
        shift, bits, can_large = levels[depth]
        entries = tables.entries(table, 1 << bits)
        if entries is None:                 # a table outside RAM: nothing to show
            return
        size = 1 << shift
        first = max(0, (lo - base) >> shift) if lo > base else 0
        last_va = base + (size << bits) - 1
        end = (1 << bits) - 1 if hi >= last_va else (hi - base) >> shift
        leaf_level = depth == len(levels) - 1
        for i in range(first, end + 1):
            e = entries[i]
            if not e & P:
                continue
            va = base + i * size
            if mode == "pae" and depth == 0:
                if e & PAE_PDPTE_RESERVED:
                    continue
                yield from walk(depth + 1, e & addr_mask, va)
                continue
            large = can_large and bool(e & PS)
            if mode == "x64" and depth == 0 and e & PS:
                continue                    # PS is reserved in a PML4E
            if large and e & _large_reserved(mode, shift):
                continue
            if leaf_level or large:
                if esize == 8:
                    pa = e & addr_mask & ~(size - 1)
                elif large:                 # PSE-36: bits 20:13 are PA bits 39:32
                    pa = (e & 0xFFC00000) | (((e >> 13) & 0xFF) << 32)
                else:
                    pa = e & ADDR4
                yield canonical(va), pa, size
            else:
                yield from walk(depth + 1, e & addr_mask, va)

    yield from walk(0, top, 0)


def address_text(value: int) -> str:
    """How !ptov prints a number: plain hex below 4 GB, ``hi`lo`` above (documentation
    sample: ``a757c000`` next to ``00000001`034fb000`` and ``fffff680`00001000``)."""
    if value >> 32:
        return f"{value >> 32:08x}`{value & 0xFFFFFFFF:08x}"
    return f"{value:x}"


@REGISTRY.command("!ptov", syntax="!ptov DirBase",
                  summary="display every physical-to-virtual mapping of an address space",
                  help="DirBase is the physical address of the top-level table (what "
                       "!process shows as DirBase); 0 means the implicit process.  Large "
                       "pages are listed one 4 KB page per line (kdsim choice).")
def ptov(session, args: str, offset: int) -> str:
    t = session.target
    mode = t.profile.paging.name
    if not args.strip():
        raise ExprError("syntax", len(args))
    dirbase = session.evaluator().evaluate(args)
    if t.pointer_size == 4:
        dirbase &= 0xFFFFFFFF
    if dirbase == 0:                       # as !vtop: 0 names the implicit process
        dirbase = session.context_cr3 if session.context_cr3 is not None else t.cr3
    # Header: Amd64PtoV (x64) and "X86PtoV: ..., PAE enabled." (PAE) are documented;
    # non-PAE x86 has no sample -- kdsim prints the header without the PAE remark.
    if mode == "x64":
        lines = [f"Amd64PtoV: pagedir {dirbase:x}"]
    elif mode == "pae":
        lines = [f"X86PtoV: pagedir {dirbase:x}, PAE enabled."]
    else:
        lines = [f"X86PtoV: pagedir {dirbase:x}"]
    try:
        for va, pa, size in mappings(t, dirbase):
            for off in range(0, size, PAGE):
                lines.append(f"{address_text(pa + off)} {address_text(va + off)}")
    except LookupError:
        # kdsim wording, as !db words an unreadable physical address.
        raise CommandError(lines[0] + "\n" + f"Physical memory read at "
                           f"{top_table(mode, dirbase):x} failed\n") from None
    return "\n".join(lines) + "\n"
