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
ENTRY_RVA = {"nt": 0x1B0000, "hal": 0x1000}      # kdsim choices (nt's: KiSystemStartup)


# -- functions ------------------------------------------------------------------------------
#
# The routines kdsim's guest threads pass through, as nt's public symbols name them, so
# that a breakpoint can be set on them and a stack walk can name its frames.  kdsim has no
# instructions: each routine's first bytes are the prologue its compiler emits (x86:
# ``mov edi,edi`` / ``push ebp`` / ``mov ebp,esp``, the hot-patchable prologue of Windows'
# x86 routines; x64: ``mov qword ptr [rsp+8],rbx``), which is what the debugger shows at a
# breakpoint and where it plants its int 3.  Where the routines sit (FUNCTION_RVA onwards,
# FUNCTION_SPACING apart, in this order) is a kdsim choice; so are the offsets of the call
# sites (CALL_SITES) and the x64 frame sizes (what the image's unwind data records).

class Function(NamedTuple):
    name: str
    args: int | None      # x86 __stdcall argument bytes (the "@N" of the decorated name);
                          # None: an assembler routine without a decorated name
    frame: int = 0x58     # x64: bytes the routine's prologue takes off rsp (its unwind data)
    targets: tuple[str, ...] = ()   # empty: every target
    rva: int | None = None          # a fixed place (else the next FUNCTION_SPACING slot)


FUNCTIONS = (
    # Trap and system-service entry (assembler: no decorated names).  x86 kernels enter a
    # page fault through KiTrap0E and system services through KiFastCallEntry; the x64
    # kernel through KiPageFault and KiSystemServiceCopyEnd.
    Function("KiTrap0E", None, targets=("wrk-x86", "win7-x86", "win7-x86pae")),
    Function("KiFastCallEntry", None, targets=("wrk-x86", "win7-x86", "win7-x86pae")),
    Function("KiPageFault", None, 0x158, targets=("win7-x64",)),
    Function("KiSystemServiceCopyEnd", None, 0x0, targets=("win7-x64",)),
    # The fault handler and how it resolves a fault (MmAccessFault -> MiDispatchFault ->
    # MiResolve*; WRK mm/pagfault.c; the stdcall sizes are Windows 7's, as x shows them).
    Function("MmAccessFault", 16, 0xd8),
    Function("MiDispatchFault", 32, 0xb8),
    Function("MiResolveDemandZeroFault", 24, 0x68),
    Function("MiResolveTransitionFault", 28, 0x88),
    Function("MiResolvePageFileFault", 28, 0x98),
    Function("MiResolveProtoPteFault", 32, 0xa8),
    Function("MiResolveMappedFileFault", 32, 0x78),
    Function("MiCopyOnWrite", 8, 0x88),
    # System services of the memory manager.
    Function("NtAllocateVirtualMemory", 24, 0x118),
    Function("NtFreeVirtualMemory", 16, 0xb8),
    Function("NtProtectVirtualMemory", 20, 0xc8),
    Function("NtMapViewOfSection", 40, 0xe8),
    Function("NtUnmapViewOfSection", 8, 0x58),
    # Where the processor stops when the debugger breaks in (Ctrl+Break, an idle machine).
    Function("RtlpBreakWithStatusInstruction", None, 0x0),
    # nt's entry point (the loader entry's EntryPoint, ENTRY_RVA below).
    Function("KiSystemStartup", 4, 0x28, rva=0x1B0000),
)

FUNCTION_RVA = {4: 0x10000, 8: 0x10000}
FUNCTION_SPACING = 0x2000
PROLOGUE = {4: bytes.fromhex("8bff558bec"), 8: bytes.fromhex("48895c2408")}
INT3 = b"\xcc"

# Return offsets of the calls one routine makes to another (caller, callee) -> offset in
# the caller of the instruction after the call; any other pair returns to +0x40.
CALL_SITES = {
    ("KiTrap0E", "MmAccessFault"): 0xdc,
    ("KiPageFault", "MmAccessFault"): 0x16e,
    ("MmAccessFault", "MiDispatchFault"): 0x1dc1,
    ("MiDispatchFault", "MiResolveDemandZeroFault"): 0x2f7,
    ("MiDispatchFault", "MiResolveTransitionFault"): 0x3a2,
    ("MiDispatchFault", "MiResolvePageFileFault"): 0x41b,
    ("MiDispatchFault", "MiResolveProtoPteFault"): 0x1a6,
    ("MiDispatchFault", "MiResolveMappedFileFault"): 0x4d0,
    ("MmAccessFault", "MiCopyOnWrite"): 0x8b4,
    ("KiFastCallEntry", "*"): 0x12a,
    ("KiSystemServiceCopyEnd", "*"): 0x13,
}


def functions_of(profile_name: str) -> tuple[Function, ...]:
    return tuple(f for f in FUNCTIONS if not f.targets or profile_name in f.targets)


def function_rvas(profile_name: str, ptr: int) -> dict[str, int]:
    """Each routine's offset from nt's base on this target."""
    return {f.name: f.rva if f.rva is not None else FUNCTION_RVA[ptr] + i * FUNCTION_SPACING
            for i, f in enumerate(functions_of(profile_name))}


def return_offset(caller: str, callee: str) -> int:
    return CALL_SITES.get((caller, callee), CALL_SITES.get((caller, "*"), 0x40))
