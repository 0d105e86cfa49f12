"""MM protections, Win32 PAGE_* conversion, MmProtectToPteMask and the status codes."""
import pytest

from kdsim.nt import protect as P
from kdsim.nt.profiles import PROFILE_NAMES
from kdsim.nt.types import TypeSystem

ACCESS = (P.PAGE_NOACCESS, P.PAGE_READONLY, P.PAGE_READWRITE, P.PAGE_WRITECOPY,
          P.PAGE_EXECUTE, P.PAGE_EXECUTE_READ, P.PAGE_EXECUTE_READWRITE,
          P.PAGE_EXECUTE_WRITECOPY)

# WRK miglobal.c MmProtectToValue[32], spelled out.
WRK_PROTECT_TO_VALUE = [
    0x01, 0x02, 0x10, 0x20, 0x04, 0x08, 0x40, 0x80,
    0x01, 0x202, 0x210, 0x220, 0x204, 0x208, 0x240, 0x280,
    0x01, 0x102, 0x110, 0x120, 0x104, 0x108, 0x140, 0x180,
    0x01, 0x402, 0x410, 0x420, 0x404, 0x408, 0x440, 0x480,
]
# WRK miglobal.c MmMakeProtectNotWriteCopy[32].
WRK_NOT_WRITE_COPY = [
    0x18, 1, 2, 3, 4, 4, 6, 6,
    0x18, 9, 10, 11, 12, 12, 14, 14,
    0x18, 17, 18, 19, 20, 20, 22, 22,
    0x18, 25, 26, 27, 28, 28, 30, 30,
]


@pytest.mark.parametrize("win32, mm", [
    (P.PAGE_NOACCESS, 0x18), (P.PAGE_READONLY, 1), (P.PAGE_READWRITE, 4),
    (P.PAGE_WRITECOPY, 5), (P.PAGE_EXECUTE, 2), (P.PAGE_EXECUTE_READ, 3),
    (P.PAGE_EXECUTE_READWRITE, 6), (P.PAGE_EXECUTE_WRITECOPY, 7),
    (P.PAGE_READWRITE | P.PAGE_GUARD, 0x14), (P.PAGE_READWRITE | P.PAGE_NOCACHE, 0x0C),
    (P.PAGE_READWRITE | P.PAGE_WRITECOMBINE, 0x1C),
    (P.PAGE_EXECUTE_READ | P.PAGE_GUARD, 0x13),
])
def test_make_protection_mask_follows_mimakeprotectionmask(win32, mm):
    assert P.make_protection_mask(win32) == mm


@pytest.mark.parametrize("win32", [
    0, 0x3, 0x11, 0x30, 0x800, 0x1000, -1,
    P.PAGE_NOACCESS | P.PAGE_GUARD, P.PAGE_NOACCESS | P.PAGE_NOCACHE,
    P.PAGE_NOACCESS | P.PAGE_WRITECOMBINE,
    P.PAGE_READWRITE | P.PAGE_GUARD | P.PAGE_NOCACHE,
    P.PAGE_READWRITE | P.PAGE_GUARD | P.PAGE_WRITECOMBINE,
    P.PAGE_READWRITE | P.PAGE_NOCACHE | P.PAGE_WRITECOMBINE,
    P.PAGE_GUARD, P.PAGE_NOCACHE,
])
def test_invalid_win32_protections_raise_status_invalid_page_protection(win32):
    with pytest.raises(P.InvalidPageProtection) as info:
        P.make_protection_mask(win32)
    assert info.value.status == P.STATUS_INVALID_PAGE_PROTECTION == 0xC0000045
    assert isinstance(info.value, ValueError)


def test_every_accepted_win32_protection_reads_back_unchanged_through_mmprotecttovalue():
    accepted = []
    for win32 in range(0x800):
        try:
            mm = P.make_protection_mask(win32)
        except P.InvalidPageProtection:
            continue
        accepted.append(win32)
        assert 0 <= mm < 32
        assert P.protect_to_value(mm) == win32
    # NOACCESS alone, then 7 accesses x {plain, GUARD, NOCACHE, WRITECOMBINE}
    assert len(accepted) == 1 + 7 * 4
    assert set(a & 0xFF for a in accepted) == set(ACCESS)


def test_protect_to_value_matches_the_wrk_table():
    assert [P.protect_to_value(p) for p in range(32)] == WRK_PROTECT_TO_VALUE


def test_make_protect_not_write_copy_matches_the_wrk_table():
    assert [P.make_protect_not_write_copy(p) for p in range(32)] == WRK_NOT_WRITE_COPY


def test_protection_predicates():
    assert [p for p in range(32) if P.is_no_access(p)] == [0, 8, 16, 24]
    assert [p for p in range(8) if P.is_writable(p)] == [4, 5, 6, 7]
    assert [p for p in range(8) if P.is_write_copy(p)] == [5, 7]
    assert [p for p in range(8) if P.is_executable(p)] == [2, 3, 6, 7]
    assert [p for p in range(32) if P.is_guard(p)] == list(range(17, 24))
    assert [p for p in range(32) if P.is_nocache(p)] == list(range(9, 16))
    assert [p for p in range(32) if P.is_writecombine(p)] == list(range(25, 32))
    with pytest.raises(ValueError):
        P.is_writable(32)


# -- MmProtectToPteMask ---------------------------------------------------------------
def _wrk_pte_mask_table(write, nx):
    """WRK miglobal.c MmProtectToPteMask with the MP masks, then the NX loop."""
    cow, pcd = 0x200, 0x10
    access = [0, 0, 0, 0, write, cow, write, cow]
    table = []
    for i in range(32):
        base, mod = i & 7, i & 0x18
        mask = 0 if base == 0 else access[base] | (pcd if mod in (0x08, 0x18) else 0)
        if base in (1, 4, 5):
            mask |= nx
        table.append(mask)
    return table


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_pte_mask_table_is_mmprotecttoptemask_with_the_mp_write_bit(target):
    nx = (1 << 63) if target in ("win7-x64", "win7-x86pae") else 0
    assert list(P.pte_mask_table(target)) == _wrk_pte_mask_table(0x800, nx)


def test_pte_mask_examples():
    assert P.protect_to_pte_mask(P.MM_READWRITE, "win7-x86") == 0x800
    assert P.protect_to_pte_mask(P.MM_WRITECOPY, "win7-x86") == 0x200
    assert P.protect_to_pte_mask(P.MM_READWRITE | P.MM_NOCACHE, "win7-x86") == 0x810
    assert P.protect_to_pte_mask(P.MM_READWRITE, "win7-x64") == 0x8000000000000800
    assert P.protect_to_pte_mask(P.MM_EXECUTE_READWRITE, "win7-x64") == 0x800
    assert P.protect_to_pte_mask(P.MM_READONLY, "win7-x86pae") == 1 << 63
    assert P.protect_to_pte_mask(P.MM_READONLY, "win7-x86pae", nx=False) == 0
    assert P.protect_to_pte_mask(P.MM_GUARD_PAGE | P.MM_READWRITE, "win7-x86") == 0x800
    assert P.protect_to_pte_mask(P.MM_NOACCESS, "win7-x64") == 0


def test_nx_cannot_be_asked_of_a_non_pae_target():
    with pytest.raises(ValueError):
        P.pte_mask_table("win7-x86", nx=True)


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_hardware_pte_bits_are_the_layout_fields(target):
    ts = TypeSystem(target)
    bits = P.hardware_pte_bits(target)

    def bit(name):
        return 1 << ts.field("_MMPTE_HARDWARE", name).bit_pos

    assert bits.write == bit("Write") == 0x800
    assert bits.copy_on_write == bit("CopyOnWrite") == 0x200
    assert bits.cache_disable == bit("CacheDisable") == 0x10
    if target == "win7-x64":
        assert bits.nx == bit("NoExecute") == 1 << 63
    else:
        assert bits.nx == (1 << 63 if target == "win7-x86pae" else 0)


# -- names ----------------------------------------------------------------------------
def test_vad_names_are_the_words_vad_prints():
    assert P.vad_protect_name(P.MM_READONLY) == "READONLY"
    assert P.vad_protect_name(P.MM_READWRITE) == "READWRITE"
    assert P.vad_protect_name(P.MM_EXECUTE_READ) == "EXECUTE_READ"
    assert P.vad_protect_name(P.MM_EXECUTE_READWRITE) == "EXECUTE_READWRITE"
    assert P.vad_protect_name(P.MM_EXECUTE_WRITECOPY) == "EXECUTE_WRITECOPY"
    assert P.vad_protect_name(P.MM_NOACCESS) == "NO_ACCESS"
    assert P.vad_protect_name(P.MM_DECOMMIT) == "DECOMMITTED"
    assert P.vad_protect_name(0x14) == "GUARD READWRITE"


def test_pte_names_are_the_words_pte_prints():
    assert P.pte_protect_name(4) == "ReadWrite"
    assert [P.pte_protect_name(p) for p in range(1, 8)] == [
        "ReadOnly", "Execute", "ExecuteRead", "ReadWrite", "WriteCopy", "ExecuteReadWrite",
        "ExecuteWriteCopy"]
    assert P.pte_protect_name(0x0C) == "NoCache ReadWrite"


def test_every_protection_has_one_name_per_table():
    for table in (P.VAD_PROTECT_NAMES, P.PTE_PROTECT_NAMES, P.MM_PROTECTION_NAMES):
        assert len(table) == 32
        named = [n for p, n in enumerate(table) if not P.is_no_access(p)]
        assert len(set(named)) == 28
    assert P.MM_PROTECTION_NAMES[0x18] == "MM_NOACCESS"
    assert P.MM_PROTECTION_NAMES[0x15] == "MM_GUARD_PAGE | MM_WRITECOPY"


def test_win32_protect_name():
    assert P.win32_protect_name(0x20) == "PAGE_EXECUTE_READ"
    assert P.win32_protect_name(0x104) == "PAGE_READWRITE | PAGE_GUARD"
    assert P.win32_protect_name(0) == "0x0"


# -- status codes and the other constants ---------------------------------------------
def test_status_values_are_the_ntstatus_h_values():
    expected = {
        "STATUS_SUCCESS": 0, "STATUS_ACCESS_VIOLATION": 0xC0000005,
        "STATUS_GUARD_PAGE_VIOLATION": 0x80000001, "STATUS_COMMITMENT_LIMIT": 0xC000012D,
        "STATUS_CONFLICTING_ADDRESSES": 0xC0000018,
        "STATUS_INVALID_PAGE_PROTECTION": 0xC0000045, "STATUS_NO_MEMORY": 0xC0000017,
        "STATUS_INVALID_PARAMETER": 0xC000000D, "STATUS_MEMORY_NOT_ALLOCATED": 0xC00000A0,
        "STATUS_FREE_VM_NOT_AT_BASE": 0xC000009F, "STATUS_UNABLE_TO_FREE_VM": 0xC000001A,
        "STATUS_NOT_COMMITTED": 0xC000002D, "STATUS_ALREADY_COMMITTED": 0xC0000021,
        "STATUS_IN_PAGE_ERROR": 0xC0000006, "STATUS_SECTION_PROTECTION": 0xC000004E,
    }
    for name, value in expected.items():
        assert getattr(P, name) == value
        assert P.status_name(value) == name
    assert P.status_name(0xC0000999) == "0xC0000999"
    assert P.nt_success(P.STATUS_SUCCESS) and not P.nt_success(P.STATUS_GUARD_PAGE_VIOLATION)


def test_nt_status_error_carries_its_status():
    err = P.NtStatusError(status=P.STATUS_CONFLICTING_ADDRESSES)
    assert err.status == 0xC0000018 and str(err) == "STATUS_CONFLICTING_ADDRESSES"


def test_mem_and_sec_constants():
    assert (P.MEM_COMMIT, P.MEM_RESERVE, P.MEM_DECOMMIT, P.MEM_RELEASE) == (
        0x1000, 0x2000, 0x4000, 0x8000)
    assert (P.MEM_FREE, P.MEM_PRIVATE, P.MEM_MAPPED, P.MEM_TOP_DOWN, P.MEM_LARGE_PAGES) == (
        0x10000, 0x20000, 0x40000, 0x100000, 0x20000000)
    assert P.SEC_IMAGE == P.MEM_IMAGE == 0x1000000
    assert (P.SEC_FILE, P.SEC_RESERVE, P.SEC_COMMIT, P.SEC_NOCACHE) == (
        0x800000, 0x4000000, 0x8000000, 0x10000000)
    assert P.MEM_NAMES[P.MEM_COMMIT] == "MEM_COMMIT"
    assert P.SEC_NAMES[P.SEC_IMAGE] == "SEC_IMAGE"
