"""Invariants of the system VA bookkeeping (kdsim/nt/sysva.py), read from guest memory:

* the free system PTE chain from MmFirstFreeSystemPte: every cluster inside
  [MmSystemPtesStart, MmSystemPtesEnd], in address order, not touching its neighbour,
  no PTE of a free cluster valid, MmTotalFreeSystemPtes the sum of the sizes;
* MiSystemVaType (Windows 7 32-bit): every PDE-sized region of system space whose PDE is
  valid in the System process's tables has a type, and that type is the one of the range
  kdsim's layout puts there; MiSystemVaTypeCount is the histogram of the byte map and
  MiSystemVaTypeCountPeak never below it (MiVaUnused is not counted).
"""
from __future__ import annotations

from .sysva import (BOOT_LOADED, HAL, MI_VA_MAXIMUM_TYPE, NONPAGED_POOL, PAGED_POOL,
                    PFN_DATABASE, PROCESS_SPACE, SYSTEM_PTES, UNUSED, VA_TYPES,
                    empty_pte_list, has_va_type_map, region_shift, va_type_entries)
from .tables import P, PS

MAX_CLUSTERS = 1 << 20


def check_system_va(r, ts, profile, symbols, system_tables, bad) -> None:
    check_pte_chain(r, ts, profile, symbols, bad)
    if has_va_type_map(profile):
        check_va_types(r, profile, symbols, system_tables, bad)


def _pte(r, va: int, size: int) -> int:
    return int.from_bytes(r.read(va, size), "little")


def check_pte_chain(r, ts, profile, symbols, bad) -> None:
    size = profile.pte_size
    nxt = ts.field("_MMPTE_LIST", "NextEntry")
    one = ts.field("_MMPTE_LIST", "OneEntry")

    def field(f, value):
        return f.unpack_from(value.to_bytes(size, "little"))

    base = r.ptr_at(symbols["MmSystemPteBase"])
    start, end = r.ptr_at(symbols["MmSystemPtesStart"]), r.ptr_at(symbols["MmSystemPtesEnd"])
    empty = empty_pte_list(profile)
    index = field(nxt, _pte(r, symbols["MmFirstFreeSystemPte"], size))
    total, prev_end = 0, None
    for _ in range(MAX_CLUSTERS):
        if index == empty:
            break
        pte = base + index * size
        if not start <= pte <= end:
            bad(f"system PTE chain: cluster at {pte:#x} outside the pool")
            return
        head = _pte(r, pte, size)
        count = 1 if field(one, head) else field(nxt, _pte(r, pte + size, size))
        if count < 1 or pte + (count - 1) * size > end:
            bad(f"system PTE chain: cluster at {pte:#x} of {count:#x} PTEs overruns the pool")
            return
        if prev_end is not None and pte <= prev_end:
            bad(f"system PTE chain: cluster at {pte:#x} out of order or adjacent")
        raw = r.read(pte, count * size)
        for k in range(0, count * size, size):
            if int.from_bytes(raw[k:k + size], "little") & P:
                bad(f"system PTE chain: free PTE at {pte + k:#x} is valid")
                break
        total += count
        prev_end = pte + count * size        # a neighbour starting here should be merged
        index = field(nxt, head)
    else:
        bad("system PTE chain does not end")
    got = r.ulong(symbols["MmTotalFreeSystemPtes"])
    if got != total:
        bad(f"MmTotalFreeSystemPtes {got:#x}, the chain holds {total:#x}")


def _expected(profile, r, symbols, va: int) -> set[int]:
    """The types kdsim's layout allows for the region at ``va``."""
    a, sm = profile.address_space, profile.self_map
    pfn = r.ptr_at(symbols["MmPfnDatabase"])
    kinds = set()
    for lo, hi, kind in ((sm.pte_base, profile.pte_top, PROCESS_SPACE),
                         (a.hyper_space_start, a.hyper_space_end, PROCESS_SPACE),
                         (a.kernel_base & ~0x3FFFFF, a.kernel_base + 0x7FFFFF, BOOT_LOADED),
                         (pfn, a.nonpaged_pool_start - 1, PFN_DATABASE),
                         (a.nonpaged_pool_start, a.nonpaged_pool_end, NONPAGED_POOL),
                         (a.paged_pool_start, a.paged_pool_end, PAGED_POOL),
                         (a.system_pte_start, a.system_pte_end, SYSTEM_PTES),
                         (a.hal_reserved_start, 0xFFFFFFFF, HAL)):
        if lo <= va <= hi:
            kinds.add(kind)
    return kinds


def check_va_types(r, profile, symbols, system_tables, bad) -> None:
    shift = region_shift(profile)
    n = va_type_entries(profile)
    start = profile.address_space.system_range_start
    types = r.read(symbols["MiSystemVaType"], n)
    counts = [0] * MI_VA_MAXIMUM_TYPE
    pde_depth = len(system_tables.levels) - 2
    for i, kind in enumerate(types):
        va = start + (i << shift)
        if kind >= MI_VA_MAXIMUM_TYPE:
            bad(f"MiSystemVaType[{i:#x}] ({va:#x}) = {kind:#x}, not an MI_SYSTEM_VA_TYPE")
            continue
        counts[kind] += 1
        epa = system_tables.entry(va, pde_depth)
        valid = epa is not None and bool(system_tables.read(epa) & (P | PS))
        if valid and kind == UNUSED:
            bad(f"MiSystemVaType[{i:#x}]: {va:#x} is mapped but MiVaUnused")
        elif kind != UNUSED and kind not in _expected(profile, r, symbols, va):
            bad(f"MiSystemVaType[{i:#x}]: {va:#x} is {VA_TYPES[kind]}, which kdsim does "
                "not place there")
    counts[UNUSED] = 0                   # free regions are not counted (WI-7's first 0)
    raw = r.read(symbols["MiSystemVaTypeCount"], 4 * MI_VA_MAXIMUM_TYPE)
    peak = r.read(symbols["MiSystemVaTypeCountPeak"], 4 * MI_VA_MAXIMUM_TYPE)
    for k in range(MI_VA_MAXIMUM_TYPE):
        got = int.from_bytes(raw[4 * k:4 * k + 4], "little")
        top = int.from_bytes(peak[4 * k:4 * k + 4], "little")
        if got != counts[k]:
            bad(f"MiSystemVaTypeCount[{VA_TYPES[k]}] {got}, the map has {counts[k]}")
        if top < got:
            bad(f"MiSystemVaTypeCountPeak[{VA_TYPES[k]}] {top} below the count {got}")
