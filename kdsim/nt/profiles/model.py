"""The shape of a target profile. The values live in one data module per target.

Conventions for every address below: ``*_start`` is the first byte and ``*_end`` the last
byte of a range (inclusive, like PTE_TOP). Kernel variables that hold an exclusive end
(WRK's MmNonPagedPoolEnd = MM_NONPAGED_POOL_END) are ``*_end + 1``. ``None`` means the
target has no such thing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional

from .paging import PAGING_MODES, PagingMode

# nt-structures.md §2.1: the same on every target.
PAGE_SIZE = 0x1000
PAGE_SHIFT = 12
MM_ALLOCATION_GRANULARITY = 0x10000
MM_LOWEST_USER_ADDRESS = 0x10000
MM_SHARED_USER_DATA_VA = 0x7FFE0000      # user-mode view of KUSER_SHARED_DATA, x86 and x64
MAX_PAGE_FILES = 16
MM_PROTECT_FIELD_SHIFT = 5


@dataclass(frozen=True)
class SelfMap:
    """Where the page tables map themselves (nt-structures.md §2, §3).

    ``index`` is the entry of the top self-mapped table that points back at the tables:
    PML4[0x1ED] on x64, PD[0x300] on x86, and on PAE the first of the four PDEs
    0x600..0x603 (counted across the four contiguous page directories).
    """

    index: int
    pte_base: int
    pde_base: int
    ppe_base: Optional[int] = None
    pxe_base: Optional[int] = None

    def base(self, level: str) -> Optional[int]:
        return getattr(self, level + "_base")


@dataclass(frozen=True)
class AddressSpace:
    """System address-space layout: the values kdsim's boot code writes into the Mm*
    variables, and where it places the PFN database, pools and system PTEs."""

    highest_user_address: int            # MmHighestUserAddress
    user_probe_address: int              # MmUserProbeAddress
    system_range_start: int              # MmSystemRangeStart
    shared_user_data_va: int             # KUSER_SHARED_DATA, kernel VA (KI_USER_SHARED_DATA)
    hyper_space_start: int
    hyper_space_end: int
    working_set_list: int                # MmWorkingSetList (per-process, in hyperspace)
    system_cache_working_set: int        # MM_SYSTEM_CACHE_WORKING_SET
    kseg0_base: int                      # loader mappings: nt, hal, boot drivers
    kernel_base: int                     # where the boot code loads nt by default
    pfn_database: int                    # MmPfnDatabase
    nonpaged_pool_start: int             # MmNonPagedPoolStart
    nonpaged_pool_end: int
    paged_pool_start: int                # MmPagedPoolStart
    paged_pool_end: int                  # MmPagedPoolEnd
    system_pte_start: int
    system_pte_end: int
    system_cache_start: int              # MmSystemCacheStart
    system_cache_end: int                # MmSystemCacheEnd
    session_space_start: int             # MmSessionBase
    session_space_end: int
    nonpaged_system_start: int           # MmNonPagedSystemStart
    hal_reserved_start: int              # last 4 MB, reserved for the HAL
    system_cache_end_extra: Optional[int] = None   # MiSystemCacheEndExtra (WRK only)
    # The WRK's per-process VAD bitmap page in hyperspace, just below the working-set list
    # (x86); None where kdsim maps none.  With it, the working-set list also names the
    # process's own table pages (the Server 2003 !wsle sample, D-7).
    vad_bitmap: Optional[int] = None
    shared_user_data_user_va: int = MM_SHARED_USER_DATA_VA
    lowest_user_address: int = MM_LOWEST_USER_ADDRESS

    @property
    def highest_vad_address(self) -> int:
        # WRK mi.h: MM_HIGHEST_VAD_ADDRESS = MmHighestUserAddress - 64 KB
        return self.highest_user_address - 0x10000


@dataclass(frozen=True)
class KernelVersion:
    """What `vertarget` and the version fields of KUSER_SHARED_DATA / KDBG report."""

    product_name: str          # "Windows 7"
    major: int                 # NtMajorVersion
    minor: int                 # NtMinorVersion
    build: int                 # NtBuildNumber & 0xFFFF
    qfe: int                   # file-version revision of the kernel image
    service_pack: int
    csd_version: str           # "Service Pack 1"
    build_lab: str             # NtBuildLab, printed after "Built by: "
    product_type: str          # _NT_PRODUCT_TYPE without the NtProduct prefix
    suite: str
    platform: str              # "x64", or "x86 compatible" for 32-bit kernels
    machine_type: int          # IMAGE_FILE_MACHINE_*; dump headers and KDBG
    kernel_image: str          # file name of the kernel image
    pdb_name: str              # the PDB the layouts come from
    kdbg_size: int             # _KDDEBUGGER_DATA64 Header.Size

    def banner(self, processors: int) -> str:
        """The first line of `vertarget` (every kdsim kernel is a multiprocessor build).

        windbg-formats.md has no `vertarget` sample; the shape follows public Win7
        transcripts ("Windows 7 Kernel Version 7601 MP (1 procs) Free x86 compatible",
        then "Built by: 7601.17514.x86fre.win7sp1_rtm.101119-1850")."""
        return "%s Kernel Version %d (%s) MP (%d procs) Free %s" % (
            self.product_name, self.build, self.csd_version, processors, self.platform)

    @property
    def product_line(self) -> str:
        return "Product: %s, suite: %s" % (self.product_type, self.suite)

    @property
    def built_by(self) -> str:
        return "Built by: " + self.build_lab


@dataclass(frozen=True)
class Profile:
    """One emulated Windows build. Pure data plus the self-map arithmetic."""

    name: str
    description: str
    pointer_size: int
    paging_mode: str                     # key of PAGING_MODES: "x64", "pae", "x86"
    types_resource: str                  # package data in kdsim.nt.profiles
    self_map: SelfMap
    address_space: AddressSpace
    version: KernelVersion
    # Kernel symbol -> address for symbols the build pins. Empty on every target today:
    # the boot code lays out nt's variables and keeps their addresses in the machine's
    # symbol table, which is where the debugger looks them up.
    symbols: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.paging_mode not in PAGING_MODES:
            raise ValueError("%s: unknown paging mode %r" % (self.name, self.paging_mode))
        object.__setattr__(self, "symbols", MappingProxyType(dict(self.symbols)))

    def __hash__(self) -> int:          # the symbols mapping is not hashable; names are unique
        return hash(self.name)

    # -- derived facts ------------------------------------------------------------------
    @property
    def paging(self) -> PagingMode:
        return PAGING_MODES[self.paging_mode]

    @property
    def pte_size(self) -> int:
        return self.paging.pte_size

    @property
    def is_64bit(self) -> bool:
        return self.pointer_size == 8

    @property
    def pte_top(self) -> int:
        return self.paging.table_top(self.self_map.pte_base, "pte")

    @property
    def pde_top(self) -> int:
        return self.paging.table_top(self.self_map.pde_base, "pde")

    @property
    def self_map_entry(self) -> int:
        """VA of the (first) paging entry that maps the tables onto themselves:
        0xC0300C00 (x86), 0xC0603000 (PAE), 0xFFFFF6FB7DBEDF68 (x64 PXE_SELFMAP)."""
        top = self.paging.levels[-1]
        return self.entry_address(self.self_map.pte_base, top)

    # -- self-map arithmetic (MiGetPteAddress and friends) -----------------------------
    def entry_address(self, va: int, level: str) -> int:
        """VA of the ``level`` ("pte", "pde", "ppe", "pxe") entry mapping ``va``."""
        return self.paging.entry_address(self._base(level), level, va)

    def pte_address(self, va: int) -> int:
        return self.entry_address(va, "pte")

    def pde_address(self, va: int) -> int:
        return self.entry_address(va, "pde")

    def ppe_address(self, va: int) -> int:
        return self.entry_address(va, "ppe")

    def pxe_address(self, va: int) -> int:
        return self.entry_address(va, "pxe")

    def va_mapped_by(self, entry: int, level: str = "pte") -> int:
        """First VA mapped by the paging entry at VA ``entry`` (the inverse of the above)."""
        return self.paging.va_mapped_by(self._base(level), level, entry)

    def _base(self, level: str) -> int:
        self.paging.shift(level)                 # ValueError naming the mode's levels
        return self.self_map.base(level)
