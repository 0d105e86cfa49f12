"""System address space the kernel keeps account of in its own data: the system PTE pool
with its chain of free PTEs, and (Windows 7 32-bit) the MiSystemVaType byte map.

System PTEs (WRK sysptes.c, MiInitializeSystemPtes / MiReserveSystemPtes /
MiReleaseSystemPtes): one pool, SystemPteSpace, from the start of the target's system PTE
range.  Its page tables exist from boot, so every PTE of the pool sits at its self-map
address.  Free PTEs are chained in the PTEs themselves as ``_MMPTE_LIST`` entries
(nt-structures.md §4.6): the first PTE of a free cluster holds in NextEntry the index
(from MmSystemPteBase, in PTEs) of the next cluster's first PTE, MM_EMPTY_PTE_LIST ending
the chain, and OneEntry set when the cluster is a single PTE; otherwise the cluster's
second PTE holds its size in NextEntry.  ``MmFirstFreeSystemPte[0]`` heads the chain (its
NextEntry indexes the first cluster), ``MmSystemPtesStart[0]`` / ``MmSystemPtesEnd[0]``
are the pool's first and last PTE (addresses of PTEs, as on the WRK), MmSystemPteBase is
MiGetPteAddress(0), MmTotalFreeSystemPtes[0] and MmTotalSystemPtes count PTEs.  The
chain is ordered by address and neighbouring free clusters are merged, as WRK's
MiReleaseSystemPtes does.  Windows 7 keeps its system PTEs in bitmaps
(MiSystemPteInfo, a type the layouts lack); kdsim uses the WRK's chain on every target
(kdsim choice) so that ``!sysptes`` has one structure to read.  The
NonPagedPoolExpansion pool (element [1]) is not laid out: kdsim's nonpaged pool has a
range of its own.

MiSystemVaType (Windows Vista and later, 32-bit only): a byte per PDE-sized region of
system space from MmSystemRangeStart -- 0x200 regions of 4 MB (x86), 0x400 of 2 MB
(PAE) -- holding the MI_SYSTEM_VA_TYPE the region was handed out for;
MiSystemVaTypeCount[type] counts the regions of each type and MiSystemVaTypeCountPeak
the most there ever were.  The memory manager assigns a region when it first maps
something there (pool growth) or reserves it at boot (page tables and hyperspace, the
boot-loaded images, the PFN database, the system PTE pool, the HAL's 4 MB).  64-bit
Windows has no such map: its regions are fixed (Windows Internals 7th ed., ch. 5, "64-bit
versions of Windows have no need to use the allocator"), so win7-x64 has none.
"""
from __future__ import annotations

PAGE = 0x1000

# _MI_SYSTEM_VA_TYPE of Windows 7 SP1 (6.1), from the public PDB's type dump; the
# Windows 8.1 and 10 values quoted in workshops.md WI-7 renumber these.
VA_TYPES = ("MiVaUnused", "MiVaSessionSpace", "MiVaProcessSpace", "MiVaBootLoaded",
            "MiVaPfnDatabase", "MiVaNonPagedPool", "MiVaPagedPool", "MiVaSpecialPool",
            "MiVaSystemCache", "MiVaSystemPtes", "MiVaHal", "MiVaSessionGlobalSpace",
            "MiVaDriverImages")
MI_VA_MAXIMUM_TYPE = len(VA_TYPES)           # 13: the length of the count arrays
(UNUSED, SESSION_SPACE, PROCESS_SPACE, BOOT_LOADED, PFN_DATABASE, NONPAGED_POOL,
 PAGED_POOL, SPECIAL_POOL, SYSTEM_CACHE, SYSTEM_PTES, HAL, SESSION_GLOBAL,
 DRIVER_IMAGES) = range(MI_VA_MAXIMUM_TYPE)

# kdsim choice: the system PTE pool covers the target's system PTE range up to 256 MB
# (all of it on the 32-bit targets; the first 256 MB of win7-x64's 128 GB range, whose
# page tables alone would take 256 MB of RAM).
MAX_POOL_BYTES = 256 << 20


def has_va_type_map(profile) -> bool:
    """Windows Vista+ 32-bit kernels: nt!MiSystemVaType exists."""
    return profile.pointer_size == 4 and profile.version.major >= 6


def region_shift(profile) -> int:
    """log2 of the VA one PDE maps: 22 (x86), 21 (PAE and x64)."""
    return 22 if profile.paging.name == "x86" else 21


def va_type_entries(profile) -> int:
    a = profile.address_space
    return ((1 << 32) - a.system_range_start) >> region_shift(profile)


def empty_pte_list(profile) -> int:
    """MM_EMPTY_PTE_LIST: every bit of NextEntry (20 bits x86, 32 PAE and x64)."""
    return 0xFFFFF if profile.paging.name == "x86" else 0xFFFFFFFF


def system_pte_base(profile) -> int:
    """MmSystemPteBase, what free-list indexes count from: MiGetPteAddress(0) on the
    32-bit targets (WRK); on x64 a 32-bit NextEntry cannot reach from PTE_BASE to the
    system PTEs' PTEs, so kdsim counts from the PTE of the lowest kernel address
    (MM_KSEG0_BASE, 0xFFFFF800`00000000) -- inferred, the reference has no x64 value."""
    if profile.pointer_size == 8:
        return profile.pte_address(profile.address_space.kseg0_base)
    return profile.self_map.pte_base


def pool_range(profile) -> tuple[int, int]:
    """(first VA, number of PTEs) of the system PTE pool."""
    a = profile.address_space
    size = min(a.system_pte_end + 1 - a.system_pte_start, MAX_POOL_BYTES)
    return a.system_pte_start, size // PAGE


class SystemVa:
    """Writes the system PTE pool and the VA type map into nt's data."""

    def __init__(self, system):
        self.s = system
        self.profile = system.profile
        self.esize = self.profile.pte_size
        self.list_next = system.ts.field("_MMPTE_LIST", "NextEntry")
        self.list_one = system.ts.field("_MMPTE_LIST", "OneEntry")
        self.base = system_pte_base(self.profile)           # MmSystemPteBase
        self.empty = empty_pte_list(self.profile)
        self.maps = has_va_type_map(self.profile)
        if self.maps:
            self.shift = region_shift(self.profile)
            self.types = bytearray(va_type_entries(self.profile))
            self.counts = [0] * MI_VA_MAXIMUM_TYPE
            self.peaks = [0] * MI_VA_MAXIMUM_TYPE

    # -- MiSystemVaType ---------------------------------------------------------------------

    def assign(self, first: int, last: int, kind: int) -> None:
        """Hand the regions holding ``[first, last]`` to ``kind`` (those not yet handed
        out: a region keeps the type it got first)."""
        if not self.maps:
            return
        start = self.profile.address_space.system_range_start
        lo = (max(first, start) - start) >> self.shift
        hi = (last - start) >> self.shift
        changed = False
        for i in range(lo, min(hi, len(self.types) - 1) + 1):
            if self.types[i] == UNUSED:
                self.types[i] = kind
                self.counts[kind] += 1
                self.peaks[kind] = max(self.peaks[kind], self.counts[kind])
                changed = True
        if changed:
            self._write_map()

    def kind_of(self, va: int) -> int:
        """The type kdsim's layout gives the range holding ``va`` (pool growth)."""
        a = self.profile.address_space
        if a.nonpaged_pool_start <= va <= a.nonpaged_pool_end:
            return NONPAGED_POOL
        if a.paged_pool_start <= va <= a.paged_pool_end:
            return PAGED_POOL
        raise ValueError(f"no system VA type for {va:#x}")

    def mapped(self, va: int) -> None:
        """The kernel mapped a page at ``va`` (pool): its region is now in use."""
        if self.maps:
            self.assign(va, va, self.kind_of(va))

    def _write_map(self) -> None:
        s = self.s
        s.nt_data.write(s.symbols["MiSystemVaType"], bytes(self.types))
        for name, values in (("MiSystemVaTypeCount", self.counts),
                             ("MiSystemVaTypeCountPeak", self.peaks)):
            s.nt_data.write(s.symbols[name], b"".join(v.to_bytes(4, "little")
                                                       for v in values))

    # -- system PTEs ------------------------------------------------------------------------

    def index(self, pte_va: int) -> int:
        return (pte_va - self.base) // self.esize

    def _list_entry(self, next_entry: int, one: bool = False) -> int:
        buf = bytearray(self.esize)
        self.list_next.pack_into(buf, next_entry)
        self.list_one.pack_into(buf, int(one))
        return int.from_bytes(buf, "little")

    def _write_pte(self, pte_va: int, value: int) -> None:
        self.s.kmem.write(pte_va, value.to_bytes(self.esize, "little"))

    def init_pool(self) -> None:
        """MiInitializeSystemPtes: the whole pool is one free cluster."""
        s = self.s
        first_va, count = pool_range(self.profile)
        first = self.profile.pte_address(first_va)
        self.pool_first, self.pool_count = first, count
        self.free: list[tuple[int, int]] = [(first, count)]     # (first PTE VA, PTEs)
        s.set_var("MmSystemPteBase", self.base)
        s.set_var("MmTotalSystemPtes", count)
        s.set_var("MmSystemPtesStart", first)
        s.set_var("MmSystemPtesEnd", first + (count - 1) * self.esize)
        self._write_chain([])
        self.assign(first_va, first_va + count * PAGE - 1, SYSTEM_PTES)

    def _write_chain(self, old: list[tuple[int, int]]) -> None:
        """Write the chain of ``self.free``; the heads of clusters in ``old`` (the chain
        before) are cleared first."""
        for pte, n in old:
            self._write_pte(pte, 0)
            if n > 1:
                self._write_pte(pte + self.esize, 0)
        for i, (pte, n) in enumerate(self.free):
            nxt = self.index(self.free[i + 1][0]) if i + 1 < len(self.free) else self.empty
            self._write_pte(pte, self._list_entry(nxt, n == 1))
            if n > 1:
                self._write_pte(pte + self.esize, self._list_entry(n))
        head = self._list_entry(self.index(self.free[0][0]) if self.free else self.empty)
        sym = self.s.symbols["MmFirstFreeSystemPte"]
        self.s.nt_data.write(sym, head.to_bytes(self.esize, "little"))
        self.s.nt_data.write(self.s.symbols["MmTotalFreeSystemPtes"],
                             sum(n for _, n in self.free).to_bytes(4, "little"))

    def reserve(self, count: int) -> int:
        """MiReserveSystemPtes: ``count`` PTEs from the first cluster big enough (taken
        from its end, so the cluster's head stays where it is); returns the VA they map.
        The PTEs are left zero for the caller to fill."""
        if count < 1:
            raise ValueError("count must be positive")
        old = list(self.free)
        for i, (pte, n) in enumerate(self.free):
            if n >= count:
                if n == count:
                    del self.free[i]
                else:
                    self.free[i] = (pte, n - count)
                taken = pte + (n - count) * self.esize
                self._write_chain(old)
                for k in range(count):      # the PTEs handed out read zero
                    self._write_pte(taken + k * self.esize, 0)
                return self.profile.va_mapped_by(taken)
        raise MemoryError("no free system PTEs")

    def release(self, va: int, count: int) -> None:
        """MiReleaseSystemPtes: the PTEs mapping ``[va, va + count pages)`` are free
        again (their contents are the caller's to have cleared), merged with free
        neighbours."""
        pte = self.profile.pte_address(va)
        end = self.pool_first + self.pool_count * self.esize
        if count < 1 or pte < self.pool_first or pte + count * self.esize > end:
            raise ValueError("not system PTEs of the pool")
        old = list(self.free)
        for f, n in self.free:
            if f < pte + count * self.esize and pte < f + n * self.esize:
                raise ValueError("system PTEs released twice")
        merged = sorted(self.free + [(pte, count)])
        self.free = []
        for f, n in merged:
            if self.free and self.free[-1][0] + self.free[-1][1] * self.esize == f:
                self.free[-1] = (self.free[-1][0], self.free[-1][1] + n)
            else:
                self.free.append((f, n))
        self._write_chain(old)
