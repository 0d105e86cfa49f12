"""The emulated nt image: its size, the modules loaded beside it, and where its kernel
variables sit.  Data, not code: the boot writes the values, the debugger finds the
addresses through the symbol table built from this list.

Every address is ``kernel_base + rva``.  The variables follow one another from
DATA_RVA in the order below, each aligned to its size; that order (and so every
symbol's address) is a kdsim choice, the same on every run.
"""
from __future__ import annotations

from typing import NamedTuple

# Image sizes (SizeOfImage), kdsim choices in the range of the real files.
NT_IMAGE_SIZE = {4: 0x410000, 8: 0x5E8000}
HAL_IMAGE_SIZE = {4: 0x37000, 8: 0x49000}
DATA_RVA = {4: 0x130000, 8: 0x200000}    # nt's .data section (kdsim choice)


class Variable(NamedTuple):
    name: str
    kind: str      # "ptr" (pointer-sized), "ulong", "uchar", "list" (LIST_ENTRY), or a type name
    count: int = 1
    targets: tuple[str, ...] = ()   # empty: every target


# The kernel variables the memory manager and the debugger use (nt-structures.md §2, §5,
# §7, §8, §10).  Types are what the real symbols have: MmHighestUserAddress is a PVOID,
# MmNumberOfPhysicalPages a PFN_COUNT (ULONG), MmPfnDatabase a PMMPFN, ...
VARIABLES = (
    Variable("KdDebuggerDataBlock", "wdbgexts!_KDDEBUGGER_DATA64"),
    Variable("PsActiveProcessHead", "list"),
    Variable("PsLoadedModuleList", "list"),
    Variable("PsInitialSystemProcess", "ptr"),
    Variable("MmHighestUserAddress", "ptr"),
    Variable("MmUserProbeAddress", "ptr"),
    Variable("MmSystemRangeStart", "ptr"),
    Variable("MiSystemCacheEndExtra", "ptr", targets=("wrk-x86",)),
    Variable("MmNonPagedSystemStart", "ptr"),
    Variable("MmNonPagedPoolStart", "ptr"),
    Variable("MmNonPagedPoolEnd", "ptr"),
    Variable("MmPagedPoolStart", "ptr"),
    Variable("MmPagedPoolEnd", "ptr"),
    Variable("MmSystemCacheStart", "ptr"),
    Variable("MmSystemCacheEnd", "ptr"),
    Variable("MmSystemPtesStart", "ptr"),
    Variable("MmSystemPtesEnd", "ptr"),
    Variable("MmSessionBase", "ptr"),
    Variable("MmSubsectionBase", "ptr"),
    Variable("MmPfnDatabase", "ptr"),
    Variable("MmPhysicalMemoryBlock", "ptr"),
    Variable("MmLowestPhysicalPage", "ptr"),
    Variable("MmHighestPhysicalPage", "ptr"),
    Variable("MmNumberOfPhysicalPages", "ulong"),
    Variable("MmAvailablePages", "ptr"),
    Variable("MmResidentAvailablePages", "ptr"),
    Variable("MmTotalCommitLimit", "ptr"),
    Variable("MmTotalCommittedPages", "ptr"),
    Variable("MmSizeOfPagedPoolInBytes", "ptr"),
    Variable("MmMaximumNonPagedPoolInBytes", "ptr"),
    Variable("MmZeroedPageListHead", "_MMPFNLIST"),
    Variable("MmFreePageListHead", "_MMPFNLIST"),
    Variable("MmStandbyPageListHead", "_MMPFNLIST"),
    Variable("MmModifiedPageListHead", "_MMPFNLIST"),
    Variable("MmModifiedNoWritePageListHead", "_MMPFNLIST"),
    Variable("MmBadPageListHead", "_MMPFNLIST"),
    Variable("MmNumberOfPagingFiles", "ulong"),
    Variable("MmPagingFile", "ptr", 16),
    Variable("KeNumberProcessors", "ulong"),
    Variable("NtBuildNumber", "ulong"),
    # The system PTE pool (kdsim/nt/sysva.py; WRK sysptes.c: arrays of
    # MaximumPtePoolTypes = 2, SystemPteSpace and NonPagedPoolExpansion).
    Variable("MmSystemPteBase", "ptr"),
    Variable("MmFirstFreeSystemPte", "_MMPTE", 2),
    Variable("MmTotalFreeSystemPtes", "ulong", 2),
    Variable("MmTotalSystemPtes", "ulong"),
    Variable("MmPagedPoolCommit", "ptr"),        # paged pool pages in use (WRK, KDBG)
    # Vista+ 32-bit dynamic system VA: a byte per PDE-sized region from
    # MmSystemRangeStart (4 MB x86, 2 MB PAE) and counts per MI_SYSTEM_VA_TYPE (13 on
    # Windows 7).  None on x64 (fixed regions) nor on the WRK (fixed layout).
    Variable("MiSystemVaType", "uchar", 0x200, targets=("win7-x86",)),
    Variable("MiSystemVaType", "uchar", 0x400, targets=("win7-x86pae",)),
    Variable("MiSystemVaTypeCount", "ulong", 13, targets=("win7-x86", "win7-x86pae")),
    Variable("MiSystemVaTypeCountPeak", "ulong", 13, targets=("win7-x86", "win7-x86pae")),
)

# The list heads in MMLISTS order (PageLocation values 0..5).
LIST_HEADS = ("MmZeroedPageListHead", "MmFreePageListHead", "MmStandbyPageListHead",
              "MmModifiedPageListHead", "MmModifiedNoWritePageListHead", "MmBadPageListHead")

# Loaded modules (file name, debugger name, image size by pointer size); hal follows nt.
MODULES = (("ntoskrnl.exe", "nt", NT_IMAGE_SIZE), ("hal.dll", "hal", HAL_IMAGE_SIZE))
# Link timestamps written in their loader entries (kdsim choices, fixed for every run).
TIMESTAMPS = {"nt": 0x4CE7951A, "hal": 0x4CE7C669}
ENTRY_RVA = {"nt": 0x1B0000, "hal": 0x1000}      # kdsim choices
