"""Memory-manager protections, the Win32 constants around them, and the status codes.

    make_protection_mask(PAGE_READWRITE | PAGE_GUARD)   -> 0x14   (MiMakeProtectionMask)
    protect_to_value(0x14)                              -> 0x104  (MmProtectToValue)
    protect_to_pte_mask(MM_READWRITE, "win7-x64")       -> 0x8000000000000800
    pte_protect_name(4), vad_protect_name(4)            -> "ReadWrite", "READWRITE"

An MM protection is the 5-bit ``Protection`` field of software PTEs, VAD flags and
subsections (nt-structures.md §4.8): the low 3 bits pick the access, the high 2 bits are a
modifier (NOCACHE 0x08, GUARD 0x10, WRITECOMBINE 0x18). Pure values: nothing here reads
guest memory. Constants are WRK ``mi.h`` / ``ntmmapi.h`` / ``ntstatus.h`` values.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

# -- MM protection codes (WRK mi.h:148-190) ---------------------------------------------
MM_ZERO_ACCESS = 0                 # "this value is not used"
MM_READONLY = 1
MM_EXECUTE = 2
MM_EXECUTE_READ = 3
MM_READWRITE = 4                   # bit 2 = writable
MM_WRITECOPY = 5
MM_EXECUTE_READWRITE = 6
MM_EXECUTE_WRITECOPY = 7
MM_NOCACHE = 0x08
MM_GUARD_PAGE = 0x10
MM_DECOMMIT = 0x10                 # the guard modifier on no access: a decommitted page
MM_NOACCESS = 0x18                 # what PAGE_NOACCESS becomes
MM_WRITECOMBINE = 0x18             # as a modifier on a non-zero access
MM_INVALID_PROTECTION = 0xFFFFFFFF  # MiMakeProtectionMask's failure value (ULONG -1)

MM_PROTECTION_WRITE_MASK = 4
MM_PROTECTION_COPY_MASK = 1
MM_PROTECTION_EXECUTE_MASK = 2
MM_PROTECTION_OPERATION_MASK = 7   # masks off guard page and nocache
MM_COPY_ON_WRITE_MASK = 5          # (prot & 5) == 5 means copy-on-write
MM_PROTECTION_MODIFIER_MASK = 0x18
MM_PROTECTION_LIMIT = 32           # the Protection fields are 5 bits wide

# -- Win32 PAGE_* (ntmmapi.h:308-318) ---------------------------------------------------
PAGE_NOACCESS = 0x01
PAGE_READONLY = 0x02
PAGE_READWRITE = 0x04
PAGE_WRITECOPY = 0x08
PAGE_EXECUTE = 0x10
PAGE_EXECUTE_READ = 0x20
PAGE_EXECUTE_READWRITE = 0x40
PAGE_EXECUTE_WRITECOPY = 0x80
PAGE_GUARD = 0x100
PAGE_NOCACHE = 0x200
PAGE_WRITECOMBINE = 0x400

# -- MEM_* and SEC_* (ntmmapi.h) --------------------------------------------------------
MEM_COMMIT = 0x1000
MEM_RESERVE = 0x2000
MEM_DECOMMIT = 0x4000
MEM_RELEASE = 0x8000
MEM_FREE = 0x10000
MEM_PRIVATE = 0x20000
MEM_MAPPED = 0x40000
MEM_RESET = 0x80000
MEM_TOP_DOWN = 0x100000
MEM_WRITE_WATCH = 0x200000
MEM_PHYSICAL = 0x400000
MEM_IMAGE = 0x1000000
MEM_LARGE_PAGES = 0x20000000

SEC_BASED = 0x200000
SEC_NO_CHANGE = 0x400000
SEC_FILE = 0x800000
SEC_IMAGE = 0x1000000              # == MEM_IMAGE
SEC_RESERVE = 0x4000000
SEC_COMMIT = 0x8000000
SEC_NOCACHE = 0x10000000
SEC_WRITECOMBINE = 0x40000000
SEC_LARGE_PAGES = 0x80000000

# -- NTSTATUS values the memory manager returns (ntstatus.h) ----------------------------
STATUS_SUCCESS = 0x00000000
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_GUARD_PAGE_VIOLATION = 0x80000001
STATUS_ACCESS_VIOLATION = 0xC0000005
STATUS_IN_PAGE_ERROR = 0xC0000006
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_NO_MEMORY = 0xC0000017
STATUS_INVALID_PARAMETER_2 = 0xC00000F0     # NtAllocateVirtualMemory: the base address
STATUS_INVALID_PARAMETER_4 = 0xC00000F2     # NtAllocateVirtualMemory: the region size
STATUS_CONFLICTING_ADDRESSES = 0xC0000018
STATUS_UNABLE_TO_FREE_VM = 0xC000001A
STATUS_ALREADY_COMMITTED = 0xC0000021
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_NOT_COMMITTED = 0xC000002D
STATUS_INVALID_PAGE_PROTECTION = 0xC0000045
STATUS_SECTION_PROTECTION = 0xC000004E
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
STATUS_FREE_VM_NOT_AT_BASE = 0xC000009F
STATUS_MEMORY_NOT_ALLOCATED = 0xC00000A0
STATUS_COMMITMENT_LIMIT = 0xC000012D


def _names(prefix: str) -> dict[int, str]:
    return {v: k for k, v in globals().items() if k.startswith(prefix) and isinstance(v, int)}


STATUS_NAMES: dict[int, str] = _names("STATUS_")
PAGE_NAMES: dict[int, str] = _names("PAGE_")
MEM_NAMES: dict[int, str] = _names("MEM_")
SEC_NAMES: dict[int, str] = _names("SEC_")


def status_name(status: int) -> str:
    """``"STATUS_ACCESS_VIOLATION"``, or the value as ``0x%08X`` when not one of ours."""
    return STATUS_NAMES.get(status & 0xFFFFFFFF, "0x%08X" % (status & 0xFFFFFFFF))


def nt_success(status: int) -> bool:
    """NT_SUCCESS: severity success or informational (the top bit clear)."""
    return (status & 0x80000000) == 0


class NtStatusError(Exception):
    """An operation failed with an NTSTATUS a real kernel would return (``.status``)."""

    status = STATUS_INVALID_PARAMETER

    def __init__(self, message: str = "", status: int | None = None):
        if status is not None:
            self.status = status
        super().__init__(message or status_name(self.status))


class InvalidPageProtection(NtStatusError, ValueError):
    """MiMakeProtectionMask returned MM_INVALID_PROTECTION: STATUS_INVALID_PAGE_PROTECTION."""

    status = STATUS_INVALID_PAGE_PROTECTION


# -- predicates on MM protections (WRK mi.h macros) -------------------------------------
def _check(protection: int) -> int:
    if not isinstance(protection, int) or not 0 <= protection < MM_PROTECTION_LIMIT:
        raise ValueError("MM protection must be 0..0x1f, got %r" % (protection,))
    return protection


def is_no_access(protection: int) -> bool:
    """0, 0x08, 0x10 (decommit) and 0x18: every code whose access part is zero."""
    return _check(protection) & MM_PROTECTION_OPERATION_MASK == 0


def is_writable(protection: int) -> bool:
    """Write or write-copy access (MM_PROTECTION_WRITE_MASK)."""
    return bool(_check(protection) & MM_PROTECTION_WRITE_MASK)


def is_write_copy(protection: int) -> bool:
    return _check(protection) & MM_COPY_ON_WRITE_MASK == MM_COPY_ON_WRITE_MASK


def is_executable(protection: int) -> bool:
    return bool(_check(protection) & MM_PROTECTION_EXECUTE_MASK)


def shared_page_protection(section: int, copy_on_write: bool, writable: bool) -> int:
    """What VirtualQuery reports for a valid page of a view that still maps the
    section's shared page: ``section`` is the section page's protection; the hardware
    PTE narrows it (a copy-on-write PTE; a read-only PTE under a writable protection)."""
    executable = is_executable(section)
    if copy_on_write:
        return MM_EXECUTE_WRITECOPY if executable else MM_WRITECOPY
    if not writable and is_writable(section):
        return MM_EXECUTE_READ if executable else MM_READONLY
    return section


def is_guard(protection: int) -> bool:
    # MI_IS_GUARD tests only the modifier; 0x10 alone is MM_DECOMMIT, not a guard page.
    return _check(protection) & 0x18 == MM_GUARD_PAGE and protection & 7 != 0


def is_nocache(protection: int) -> bool:
    return _check(protection) & 0x18 == MM_NOCACHE and protection & 7 != 0


def is_writecombine(protection: int) -> bool:
    return _check(protection) & 0x18 == MM_WRITECOMBINE and protection & 7 != 0


def make_protect_not_write_copy(protection: int) -> int:
    """MmMakeProtectNotWriteCopy[]: the protection after a copy-on-write fault copied the
    page (WRITECOPY -> READWRITE, EXECUTE_WRITECOPY -> EXECUTE_READWRITE, modifier kept)."""
    if is_no_access(protection):
        return MM_NOACCESS                       # all four no-access codes map to 0x18
    if is_write_copy(protection):
        return protection ^ MM_PROTECTION_COPY_MASK   # 5 -> 4, 7 -> 6
    return protection


# -- Win32 <-> MM (WRK mmsup.c MiMakeProtectionMask, miglobal.c MmProtectToValue) -----------
_USER_TO_MASK1 = {0x1: MM_NOACCESS, 0x2: MM_READONLY, 0x4: MM_READWRITE, 0x8: MM_WRITECOPY}
_USER_TO_MASK2 = {0x1: MM_EXECUTE, 0x2: MM_EXECUTE_READ, 0x4: MM_EXECUTE_READWRITE,
                  0x8: MM_EXECUTE_WRITECOPY}
_BASE_TO_VALUE = (PAGE_NOACCESS, PAGE_READONLY, PAGE_EXECUTE, PAGE_EXECUTE_READ,
                  PAGE_READWRITE, PAGE_WRITECOPY, PAGE_EXECUTE_READWRITE,
                  PAGE_EXECUTE_WRITECOPY)
_MODIFIER_TO_VALUE = {0: 0, MM_NOCACHE: PAGE_NOCACHE, MM_GUARD_PAGE: PAGE_GUARD,
                      MM_WRITECOMBINE: PAGE_WRITECOMBINE}


def make_protection_mask(win32_protect: int) -> int:
    """MiMakeProtectionMask: a Win32 ``PAGE_*`` combination to the 5-bit MM protection.

    Raises :class:`InvalidPageProtection` (STATUS_INVALID_PAGE_PROTECTION) where Windows
    returns MM_INVALID_PROTECTION: unknown bits, no or two access values, or GUARD /
    NOCACHE / WRITECOMBINE combined with each other or with PAGE_NOACCESS.
    """
    def bad(why):
        return InvalidPageProtection("invalid page protection 0x%x (%s)" % (win32_protect, why))

    if not isinstance(win32_protect, int) or not 0 <= win32_protect < PAGE_WRITECOMBINE * 2:
        raise bad("unknown bits")
    field1, field2 = win32_protect & 0xF, (win32_protect >> 4) & 0xF
    if (field1 == 0) == (field2 == 0):
        raise bad("exactly one access value is required")
    code = _USER_TO_MASK1.get(field1) if field1 else _USER_TO_MASK2.get(field2)
    if code is None:
        raise bad("not a single access value")
    guard, nocache = win32_protect & PAGE_GUARD, win32_protect & PAGE_NOCACHE
    wcombine = win32_protect & PAGE_WRITECOMBINE
    if guard:
        if code == MM_NOACCESS or nocache or wcombine:
            raise bad("guard with no access, nocache or writecombine")
        code |= MM_GUARD_PAGE
    if nocache:
        if code == MM_NOACCESS or wcombine:
            raise bad("nocache with no access or writecombine")
        code |= MM_NOCACHE
    if wcombine:
        if code == MM_NOACCESS:
            raise bad("writecombine with no access")
        code |= MM_WRITECOMBINE
    return code


def protect_to_value(protection: int) -> int:
    """MmProtectToValue[]: the Win32 protection ``VirtualQuery`` reports for an MM code.
    0, 0x08, 0x10 and 0x18 all read back as PAGE_NOACCESS."""
    if is_no_access(protection):
        return PAGE_NOACCESS
    return _BASE_TO_VALUE[protection & 7] | _MODIFIER_TO_VALUE[protection & 0x18]


def win32_protect_name(value: int) -> str:
    """``PAGE_READWRITE | PAGE_GUARD``: the access name first, then the modifiers."""
    parts = [PAGE_NAMES[b] for b in (0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80) if value & b]
    parts += [PAGE_NAMES[b] for b in (PAGE_GUARD, PAGE_NOCACHE, PAGE_WRITECOMBINE)
              if value & b]
    if value & ~0x7FF or not parts:
        parts.append("0x%x" % (value & ~0x7FF))
    return " | ".join(parts)


# -- names as the debugger prints them (windbg-formats.md §5.3, §8.2) ---------------------
# `!vad` prints the access in capitals (READONLY, EXECUTE_WRITECOPY, verbatim samples);
# `!pte` prints "Protect: 4 - ReadWrite" (only ReadWrite verbatim; the other seven access
# names follow the same CamelCase pattern, windbg-formats.md §5.3 [INFERRED]). No
# transcript shows a modifier; kdsim's choice: "<MODIFIER> <access>", with the
# no-access codes named NO_ACCESS / NoAccess and 0x10 alone DECOMMITTED / Decommitted.
_VAD_BASE = ("NO_ACCESS", "READONLY", "EXECUTE", "EXECUTE_READ", "READWRITE", "WRITECOPY",
             "EXECUTE_READWRITE", "EXECUTE_WRITECOPY")
_PTE_BASE = ("NoAccess", "ReadOnly", "Execute", "ExecuteRead", "ReadWrite", "WriteCopy",
             "ExecuteReadWrite", "ExecuteWriteCopy")


def _name_table(base, nocache, guard, wcombine, decommitted):
    mods = {0: "", MM_NOCACHE: nocache + " ", MM_GUARD_PAGE: guard + " ",
            MM_WRITECOMBINE: wcombine + " "}
    table = []
    for p in range(MM_PROTECTION_LIMIT):
        if p == MM_DECOMMIT:
            table.append(decommitted)
        elif p & 7 == 0:
            table.append(base[0])
        else:
            table.append(mods[p & 0x18] + base[p & 7])
    return tuple(table)


VAD_PROTECT_NAMES: tuple[str, ...] = _name_table(
    _VAD_BASE, "NOCACHE", "GUARD", "WRITECOMBINE", "DECOMMITTED")
PTE_PROTECT_NAMES: tuple[str, ...] = _name_table(
    _PTE_BASE, "NoCache", "Guard", "WriteCombine", "Decommitted")


def _mm_name(p: int) -> str:
    alone = {0: "MM_ZERO_ACCESS", MM_NOCACHE: "MM_NOCACHE", MM_DECOMMIT: "MM_DECOMMIT",
             MM_NOACCESS: "MM_NOACCESS"}
    if p in alone:
        return alone[p]
    mod = {0: "", MM_NOCACHE: "MM_NOCACHE | ", MM_GUARD_PAGE: "MM_GUARD_PAGE | ",
           MM_WRITECOMBINE: "MM_WRITECOMBINE | "}[p & 0x18]
    return mod + "MM_" + _VAD_BASE[p & 7]


MM_PROTECTION_NAMES: tuple[str, ...] = tuple(_mm_name(p) for p in range(MM_PROTECTION_LIMIT))


def vad_protect_name(protection: int) -> str:
    """The protection word of a `!vad` row (``EXECUTE_WRITECOPY``)."""
    return VAD_PROTECT_NAMES[_check(protection)]


def pte_protect_name(protection: int) -> str:
    """The name after ``Protect: <n> - `` in `!pte` (``ReadWrite``)."""
    return PTE_PROTECT_NAMES[_check(protection)]


# -- MM protection -> hardware PTE bits (MmProtectToPteMask, WRK miglobal.c:635) ----------
class HardwarePteBits(NamedTuple):
    """The valid-PTE bits MmProtectToPteMask uses, from ``_MMPTE_HARDWARE``."""
    write: int                 # software Write, bit 11
    copy_on_write: int         # software CopyOnWrite, bit 9
    cache_disable: int         # PCD, bit 4
    nx: int                    # bit 63, or 0 where the PTE has no NX bit (x86 non-PAE)


@functools.lru_cache(maxsize=None)
def hardware_pte_bits(target="win7-x64") -> HardwarePteBits:
    """Read the bits from the target's layout (a profile or its name)."""
    from .types import TypeSystem              # deferred: keeps the constants import-light
    ts = TypeSystem(target)

    def bit(name):
        f = ts.field("_MMPTE_HARDWARE", name)
        return f.mask << f.bit_pos

    nx = 0
    if any(f.path == "NoExecute" for f in ts.fields("_MMPTE_HARDWARE")):
        nx = bit("NoExecute")                  # x64 names it
    elif ts.sizeof("_MMPTE_HARDWARE") == 8:
        # Win7 PAE has no named NoExecute field: NX is bit 63 inside reserved1, which
        # the kernel sets through MmPaeMask = 0x8000000000000000 (WRK init386.c).
        reserved = ts.field("_MMPTE_HARDWARE", "reserved1")
        nx = 1 << (reserved.bit_pos + reserved.bit_width - 1)
    # Win7 MP PTEs keep "writable" in software bit 11 (MM_PTE_WRITE_MASK = 0x800, the
    # hardware R/W bit 1 is set only once dirty); copy-on-write is software bit 9.
    return HardwarePteBits(bit("Write"), bit("CopyOnWrite"), bit("CacheDisable"), nx)


@functools.lru_cache(maxsize=None)
def pte_mask_table(target="win7-x64", nx: bool | None = None) -> tuple[int, ...]:
    """MmProtectToPteMask[32] for ``target`` (a profile or its name), multiprocessor
    kernel, after the NX fix-up. ``nx=None`` turns NX on wherever the PTE has an NX bit
    (PAE and x64, as Win7 does with EFER.NXE set); 32-bit non-PAE PTEs never get one."""
    from .profiles import get_profile
    profile = get_profile(target)
    write, cow, pcd, nx_bit = hardware_pte_bits(profile)
    if nx and not nx_bit:
        raise ValueError("%s PTEs have no NX bit" % profile.name)
    use_nx = nx_bit if nx is None or nx else 0
    access = (0, 0, 0, 0, write, cow, write, cow)          # READONLY/EXECUTE* -> 0
    table = []
    for p in range(MM_PROTECTION_LIMIT):
        base = p & 7
        mask = access[base]
        # MM_PTE_NOCACHE = PCD; MM_PTE_WRITECOMBINE defaults to PCD too (no PAT);
        # MM_PTE_GUARD is 0 ("not expressible"); the no-access codes are MM_PTE_NOACCESS = 0.
        if base and p & 0x18 in (MM_NOCACHE, MM_WRITECOMBINE):
            mask |= pcd
        # initamd.c / init386.c: MmPaeMask goes on READONLY, READWRITE and WRITECOPY
        # (j = i & 7 in {1, 4, 5}); the EXECUTE codes stay executable.
        if base in (MM_READONLY, MM_READWRITE, MM_WRITECOPY):
            mask |= use_nx
        table.append(mask)
    return tuple(table)


def protect_to_pte_mask(protection: int, target="win7-x64", nx: bool | None = None) -> int:
    """MmProtectToPteMask[protection] for ``target`` (see :func:`pte_mask_table`)."""
    return pte_mask_table(target, nx)[_check(protection)]
