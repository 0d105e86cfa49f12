"""A process's page tables: a new top-level table with the kernel half copied from the
System process (MmCreateProcessAddressSpace), its own self-map and hyperspace.

Per-process in the kernel half are only the self-map entries and hyperspace; every
other kernel top-level entry is the System process's, copied at creation and kept in
step afterwards (``propagate``), so the kernel half is the same in every process.
"""
from __future__ import annotations

import struct

from .system import DEMAND_ZERO_RW
from .tables import KERNEL_TABLE, P, SELF_MAP_ENTRY, USER_TABLE, WRITE, Tables

PAGE = 0x1000


def _private_ranges(profile):
    """Kernel VA ranges whose top-level entries each process has for itself."""
    a, sm = profile.address_space, profile.self_map
    top = profile.paging.table_top(sm.pte_base, "pte")
    return ((sm.pte_base, top), (a.hyper_space_start, a.hyper_space_end))


def top_level_span(profile) -> tuple[int, int]:
    """(depth, VA bits one entry covers) of the per-process top-level entries: the
    PML4Es (x64), the PDEs (x86, and PAE's four page directories)."""
    return {"x64": (0, 39), "x86": (0, 22), "pae": (1, 21)}[profile.paging.name]


def top_level_vas(profile):
    """The first VA of every top-level entry of the upper half (the kernel's side)."""
    mode = profile.paging
    _, bits = top_level_span(profile)
    width = 48 if mode.name == "x64" else 32
    for i in range(1 << (width - bits - 1), 1 << (width - bits)):
        yield mode.canonical(i << bits)


def is_shared_kernel_entry(profile, va: int) -> bool:
    if va < profile.address_space.system_range_start:
        return False
    return not any(lo <= va <= hi for lo, hi in _private_ranges(profile))


def new_tables(system, top: int) -> Tables:
    profile = system.profile
    sys_start = profile.address_space.system_range_start

    def upper(va: int) -> int:
        return (KERNEL_TABLE if va >= sys_start else USER_TABLE) | WRITE

    return Tables(system.machine, profile.paging, top, system.alloc_table_page, upper)


def create_address_space(system) -> tuple[Tables, int | None]:
    """A process's tables; returns them and (PAE) the VA of its PDPT (EPROCESS.PaeTop)."""
    profile, kt, m = system.profile, system.kernel_tables, system.machine
    mode = profile.paging
    depth, bits = top_level_span(profile)
    fmt = "<Q" if mode.pte_size == 8 else "<I"
    pae_top = None
    if mode.name == "pae":
        pae_top, top = take_pae_top(system)
        pds = []
        for i in range(4):
            pfn = system.take_page()
            pds.append(pfn * PAGE)
            m.write_physical(top + 8 * i, struct.pack("<Q", pfn * PAGE | P))
    else:
        top = system.take_page() * PAGE
    tables = new_tables(system, top)

    # Copy the kernel half's top-level entries, then this process's own self-map.
    for va in top_level_vas(profile):
        if not is_shared_kernel_entry(profile, va):
            continue
        src = kt.entry(va, depth)
        value = kt.read(src)
        if value & P:
            tables.write(tables.entry(va, depth, create=False), value)
    sm = profile.self_map
    if mode.name == "pae":
        for i in (3, 0, 1, 2):     # PD 3 holds the entries naming all four: it comes first
            pd = pds[i]
            m.write_physical(pds[3] + 8 * i, struct.pack(fmt, pd | SELF_MAP_ENTRY))
            system.pfn.make_active(pd // PAGE, profile.entry_address(sm.pte_base + i * (1 << 21),
                                                                     "pde"),
                                   pds[3] // PAGE, DEMAND_ZERO_RW)
    else:
        tables.write(top + sm.index * mode.pte_size, top | SELF_MAP_ENTRY)
        level = "pxe" if mode.name == "x64" else "pde"
        system.pfn.make_active(top // PAGE, profile.entry_address(sm.pte_base, level) if
                               mode.name == "x86" else
                               sm.pxe_base + sm.index * 8, top // PAGE, DEMAND_ZERO_RW)
    return tables, pae_top


def take_pae_top(system) -> tuple[int, int]:
    """A 32-byte PDPT (VA, PA) for a new PAE process: a freed one, else the next slot of a
    page of them in nonpaged pool (procpae.c keeps such pages), a new page when full."""
    free = system.pae_free
    if free:
        return free.pop()
    va, pa, used = system.pae_tops
    if used >= PAGE // 32:
        va = system.nonpaged_pool.next_page          # a whole pool page of PDPTs
        pa = system.nonpaged_pool.map_page(va)
        system.nonpaged_pool.next_page += PAGE
        used = 0
    system.pae_tops = [va, pa, used + 1]
    return va + 32 * used, pa + 32 * used


def release_pae_top(system, va: int, pa: int) -> None:
    system.machine.write_physical(pa, bytes(32))
    system.pae_free.append((va, pa))


def propagate(system, depth: int, va: int, entry_pa: int, value: int) -> None:
    """A new kernel top-level entry in the System tables: give every process the same."""
    tdepth, _ = top_level_span(system.profile)
    if depth != tdepth or not is_shared_kernel_entry(system.profile, va):
        return
    for proc in system.process_objects.values():
        pa = proc.tables.entry(va, depth)
        if pa is not None and pa != entry_pa:
            proc.tables.write(pa, value)
