"""Boot: build in guest RAM what a Windows kernel has after start-up.

The order follows what a loader and MmInitSystem do: physical memory runs; the kernel
page tables with the target's self-map; nt and hal mapped with large pages; the
KUSER_SHARED_DATA page; the PFN database; nonpaged pool; the kernel variables; the
System process; finally one ``_MMPFN`` per physical page, derived by walking the
page tables that now exist (so every active page's PteAddress and PteFrame point at
the entry that really maps it) and the remaining RAM chained on the zeroed list.
"""
from __future__ import annotations

import struct

import numpy as np

from kdsim.machine import Machine, parse_size

from . import ntimage
from .guest import KernelMemory, WindowMemory
from .pfn import PfnDatabase, PfnLayout, ZEROED
from .physmem import address_space_size, ram_runs
from .pool import NONPAGED_POOL, PAGED_POOL, Pool
from .profiles import get_profile
from .system import NtSystem
from .tables import (A, D, ENTRY_LEVELS, G, KERNEL_TABLE, NX, P, PS, RW, SELF_MAP_ENTRY,
                     USER_TABLE, WRITE, Tables, is_self_map_entry)
from .types import TypeSystem

PAGE = 0x1000
MIN_RAM = 256 << 20
KERNEL_RW = P | RW | A | D | G | WRITE   # a dirty, writable, global kernel page (MP: 0x963)
LARGE_PAGE = {"x64": (1 << 21, 2), "pae": (1 << 21, 1), "x86": (1 << 22, 0)}
PAE_TOPS_PER_PAGE = PAGE // 32


class BootAllocator:
    """Physical pages for the boot, taken in order from the second RAM run upwards."""

    def __init__(self, machine: Machine, runs, start: int):
        self.m = machine
        self.runs = runs
        self.next = start
        self.taken: list[tuple[int, int]] = []

    def pages(self, n: int = 1) -> int:
        pa = self.next
        if not any(s <= pa and pa + n * PAGE <= s + ln for s, ln in self.runs):
            raise MemoryError("guest RAM too small for the boot allocations")
        self.next += n * PAGE
        self.taken.append((pa, n))
        return pa


def boot_system(target: str = "win7-x64", ram: str | int = "2g", seed: int = 0) -> NtSystem:
    profile = get_profile(target)
    ts = TypeSystem(profile)
    mode = profile.paging
    ptr = profile.pointer_size
    aspace = profile.address_space
    ram_bytes = parse_size(ram)
    if ram_bytes < MIN_RAM:
        raise ValueError(f"kdsim needs at least {MIN_RAM >> 20} MB of guest RAM")
    # 32-bit Windows 7 client and Server 2003 Standard stop at 4 GB (kdsim choice for PAE).
    limit = 1 << 32 if ptr == 4 else 1 << 46
    runs = ram_runs(ram_bytes, limit)
    machine = Machine(address_space_size(runs), runs)
    highest_pfn = address_space_size(runs) // PAGE - 1

    large, large_depth = LARGE_PAGE[mode.name]
    nt_pa = aspace.kernel_base - aspace.kseg0_base
    hal_va = aspace.kernel_base + ntimage.NT_IMAGE_SIZE[ptr]
    image_end = hal_va + ntimage.HAL_IMAGE_SIZE[ptr] - aspace.kseg0_base
    image_lo, image_hi = nt_pa & ~(large - 1), -(-image_end // large) * large
    alloc = BootAllocator(machine, runs, image_hi)
    nx = NX if mode.pte_size == 8 else 0

    # -- the kernel's top-level table and the self-map ------------------------------------
    if mode.name == "pae":
        pae_top_page = alloc.pages()            # PDPTs live in nonpaged pool pages (procpae.c)
        pds = [alloc.pages() for _ in range(4)]
        top = pae_top_page
        for i, pd in enumerate(pds):
            machine.write_physical(top + 8 * i, struct.pack("<Q", pd | P))
    else:
        top = alloc.pages()

    def table_page(level: int, va: int, parent: int) -> int:
        return alloc.pages()

    def upper(va: int) -> int:
        return KERNEL_TABLE | WRITE if va >= aspace.system_range_start else USER_TABLE | WRITE

    kt = Tables(machine, mode, top, table_page, upper)
    sm = profile.self_map
    if mode.name == "x64":
        kt.write(top + sm.index * 8, top | SELF_MAP_ENTRY)
    elif mode.name == "x86":
        kt.write(top + sm.index * 4, top | SELF_MAP_ENTRY)
    else:   # PAE: PDEs 0x600..0x603 (in PD 3) map the four page directories
        for i, pd in enumerate(pds):
            kt.write(pds[3] + 8 * i, pd | SELF_MAP_ENTRY)

    # -- nt and hal: large pages at KSEG0 + physical address ------------------------------
    for pa in range(image_lo, image_hi, large):
        kt.set_large(aspace.kseg0_base + pa, pa | KERNEL_RW, large_depth)

    # -- KUSER_SHARED_DATA ---------------------------------------------------------------
    shared_pa = alloc.pages()
    kt.set(aspace.shared_user_data_va, shared_pa | KERNEL_RW | nx)

    # -- the PFN database: physically contiguous, mapped at MmPfnDatabase ------------------
    layout = PfnLayout(ts)
    pfn_bytes = (highest_pfn + 1) * layout.size
    pfn_pages = -(-pfn_bytes // PAGE)
    pfn_pa = alloc.pages(pfn_pages)
    kt.map_run(aspace.pfn_database, pfn_pa, pfn_pages, KERNEL_RW | nx)
    pfn_window = WindowMemory(machine, pfn_pa, pfn_pages * PAGE, aspace.pfn_database)

    # -- nonpaged and paged pool; pages from the boot allocator until the PFN lists exist --
    machine.set_paging(mode.name, top)
    kmem = KernelMemory(machine)
    system = NtSystem(profile, ts, machine, kmem, kt)
    system.seed = seed
    nonpaged_start = max(aspace.nonpaged_pool_start,
                         -(-(aspace.pfn_database + pfn_pages * PAGE) // large) * large)

    def boot_map(va: int, nx: int = nx) -> int:
        pa = alloc.pages()
        kt.set(va, pa | KERNEL_RW | nx)
        return pa

    # Nonpaged pool is executable before Windows 8 (NonPagedPoolNx came with it): its PTEs
    # carry no NX on every kdsim target.  Paged pool keeps NX.
    system.nonpaged_pool = Pool(ts, kmem, NONPAGED_POOL, nonpaged_start,
                                aspace.nonpaged_pool_end, lambda va: boot_map(va, 0))
    system.paged_pool = Pool(ts, kmem, PAGED_POOL, aspace.paged_pool_start,
                             aspace.paged_pool_end, boot_map)
    if mode.name == "pae":   # the page of PDPTs is the first page of nonpaged pool
        pae_va = system.nonpaged_pool.next_page
        kt.set(pae_va, pae_top_page | KERNEL_RW)
        system.nonpaged_pool.next_page += PAGE
        system.pae_tops = [pae_va, pae_top_page, 1]     # VA, PA, slots used (System: 0)

    # -- kernel variables in nt's .data -----------------------------------------------------
    nt_window = WindowMemory(machine, nt_pa, ntimage.NT_IMAGE_SIZE[ptr], aspace.kernel_base)
    system.nt_data = nt_window
    system.symbols = place_variables(profile, ts)
    system.functions = {name: aspace.kernel_base + rva for name, rva in
                        ntimage.function_rvas(profile.name, ptr).items()}
    for name, va in system.functions.items():   # each routine's prologue (ntimage.FUNCTIONS);
        # the break-in routine is an int 3 (RtlpBreakWithStatusInstruction: int 3; ret 4)
        nt_window.write(va, ntimage.INT3 if name == "RtlpBreakWithStatusInstruction"
                        else ntimage.PROLOGUE[ptr])
    system.modules = [(name, short, aspace.kernel_base if short == "nt" else hal_va, size[ptr])
                      for name, short, size in ntimage.MODULES]

    pfn = PfnDatabase(layout, pfn_window.buf[:pfn_bytes], nt_window,   # one entry a page
                      {i: system.symbols[name] for i, name in enumerate(ntimage.LIST_HEADS)},
                      machine, pfn_pa)
    system.pfn = pfn
    pfn.init_heads()

    system.shared_data_pa = shared_pa
    system.runs = runs
    system.highest_pfn = highest_pfn
    system.nonpaged_start = nonpaged_start
    system.write_kernel_variables()
    system.create_system_process()
    system_va(system, kt, aspace.kseg0_base + image_lo, aspace.kseg0_base + image_hi,
              pfn_pages)

    # -- one _MMPFN per page: active ones from the tables, the rest zeroed ----------------
    active = derive_active_pages(system)
    in_ram = np.zeros(highest_pfn + 1, dtype=bool)
    for start, length in runs:
        in_ram[start // PAGE:(start + length) // PAGE] = True
    taken = np.zeros(highest_pfn + 1, dtype=bool)
    for pa, n in alloc.taken:
        taken[pa // PAGE:pa // PAGE + n] = True
    unmapped = np.flatnonzero(taken & ~active)
    if len(unmapped):
        raise AssertionError(f"boot pages not mapped anywhere: {unmapped[:8]}")
    pfn.recount_shares(active)
    free = np.concatenate(([False], in_ram & ~active, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(free))            # run starts and ends, alternating
    pfn.link_all(ZEROED, list(zip(edges[::2].tolist(), edges[1::2].tolist())))
    system.boot_done(nx)
    return system


def system_va(system: NtSystem, kt: Tables, image_lo: int, image_hi: int,
              pfn_pages: int) -> None:
    """The system PTE pool (its page tables, the free chain) and, on Windows 7 32-bit,
    MiSystemVaType for what the boot has placed (kdsim/nt/sysva.py)."""
    from .sysva import (BOOT_LOADED, HAL, NONPAGED_POOL, PAGED_POOL, PFN_DATABASE,
                        PROCESS_SPACE, SystemVa, pool_range)
    profile, a = system.profile, system.profile.address_space
    first, count = pool_range(profile)
    span = 1 << kt.levels[-2][0]                  # the VA one page table maps
    # The pool's page tables come from the top of RAM downwards (kdsim choice), so the
    # pages the boot and the first processes take stay where they were before the pool.
    run_start, run_len = system.runs[-1]
    top = [run_start + run_len]

    def from_top(level: int, va: int, parent: int) -> int:
        top[0] -= PAGE
        return top[0]

    boot_alloc, kt.alloc = kt.alloc, from_top
    for va in range(first, first + count * PAGE, span):
        kt.leaf(va, create=True)
    kt.alloc = boot_alloc
    sva = system.sysva = SystemVa(system)
    sva.assign(profile.self_map.pte_base, profile.pte_top, PROCESS_SPACE)
    sva.assign(a.hyper_space_start, a.hyper_space_end, PROCESS_SPACE)
    sva.assign(image_lo, image_hi - 1, BOOT_LOADED)
    sva.assign(a.pfn_database, a.pfn_database + pfn_pages * PAGE - 1, PFN_DATABASE)
    sva.init_pool()
    for pool, kind in ((system.nonpaged_pool, NONPAGED_POOL),
                       (system.paged_pool, PAGED_POOL)):
        if pool.next_page > pool.start:
            sva.assign(pool.start, pool.next_page - 1, kind)
    system.set_var("MmPagedPoolCommit", (system.paged_pool.next_page -
                                         system.paged_pool.start) // PAGE)
    sva.assign(a.hal_reserved_start, (1 << 8 * profile.pointer_size) - 1, HAL)


def place_variables(profile, ts) -> dict[str, int]:
    """The address of every kernel variable (ntimage.VARIABLES, laid out in order)."""
    ptr = profile.pointer_size
    va = profile.address_space.kernel_base + ntimage.DATA_RVA[ptr]
    out = {}
    for v in ntimage.VARIABLES:
        if v.targets and profile.name not in v.targets:
            continue
        size = {"ptr": ptr, "ulong": 4, "uchar": 1, "list": 2 * ptr}.get(v.kind)
        if size is None:
            size = ts.sizeof(v.kind)
        align = min(size, 8) if v.kind in ("ptr", "ulong") else ptr
        va = -(-va // align) * align
        out[v.name] = va
        va += size * v.count
    return out


def derive_active_pages(system: NtSystem) -> np.ndarray:
    """Fill the PFN entry of every page the kernel tables map (and of the tables
    themselves) from the entry that maps it; returns a mask of those pages."""
    profile, kt, pfn = system.profile, system.kernel_tables, system.pfn
    mode = profile.paging
    active = np.zeros(system.highest_pfn + 1, dtype=bool)
    names = ENTRY_LEVELS[mode.name]
    last = len(kt.levels) - 1

    def self_map_va(depth: int, va: int) -> int:
        return profile.entry_address(va, names[depth])

    def mark(frame: int, pte_va: int, pte_frame: int, original: int = 0):
        pfn.make_active(frame, pte_va, pte_frame, original, new_reference=False)
        active[frame] = True

    in_ram = np.zeros(system.highest_pfn + 1, dtype=bool)
    for start, length in system.runs:
        in_ram[start // PAGE:(start + length) // PAGE] = True
    per_table = 1 << kt.levels[last][1]
    idx = np.arange(per_table, dtype=np.uint64)

    def leaves(pt_pa: int, va: int) -> None:
        """The 4 KB leaves of one page table, all at once."""
        entries = kt.words.table(pt_pa, per_table).astype(np.uint64)
        present = (entries & np.uint64(P)) != 0
        frames = (entries & np.uint64(kt.addr_mask)) >> np.uint64(12)
        ok = present & (frames <= system.highest_pfn)
        ok[ok] &= in_ram[frames[ok].astype(np.int64)]
        frames = frames[ok].astype(np.int64)
        pte_vas = np.uint64(profile.entry_address(va, "pte")) + idx[ok] * np.uint64(kt.esize)
        pfn.make_active_many(frames, pte_vas, np.full(len(frames), pt_pa >> 12),
                             new_reference=False)
        active[frames] = True

    def descend(depth: int, va: int, value: int) -> bool:
        return depth < last - 1 and not is_self_map_entry(profile, depth, va)

    for depth, va, epa, e in kt.walk(descend):
        frame = (e & kt.addr_mask) >> 12
        if mode.name == "pae" and depth == 0:
            continue   # PDPTEs are not self-mapped; the PDs get their PFN from PDEs 0x600..3
        pte_va = self_map_va(depth, va)
        if e & PS and kt.can_be_large(depth):
            span = 1 << (kt.levels[depth][0] - 12)
            first = (e & kt.addr_mask & ~((span << 12) - 1)) >> 12
            for f in range(first, first + span):
                if f <= system.highest_pfn and in_ram[f]:
                    mark(f, pte_va, epa >> 12)
            continue
        mark(frame, pte_va, epa >> 12)
        if depth == last - 1 and not is_self_map_entry(profile, depth, va):
            leaves(e & kt.addr_mask, va)
    return active
