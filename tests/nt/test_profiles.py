"""Target profiles: names, self-map arithmetic, address-space constants, version facts."""
import dataclasses

import pytest

from kdsim.nt.profiles import (DEFAULT_PROFILE, PAGE_SIZE, PROFILE_NAMES, Profile,
                               get_profile)


def test_profile_names_are_the_four_targets_with_win7_x64_first():
    assert PROFILE_NAMES == ("win7-x64", "win7-x86pae", "win7-x86", "wrk-x86")
    assert DEFAULT_PROFILE == "win7-x64"
    assert get_profile().name == "win7-x64"


def test_get_profile_accepts_case_and_underscores_and_profiles():
    p = get_profile("WIN7_X86PAE")
    assert p.name == "win7-x86pae"
    assert get_profile(p) is p


def test_unknown_profile_raises_value_error_listing_valid_names():
    with pytest.raises(ValueError) as e:
        get_profile("win10-x64")
    msg = str(e.value)
    assert "win10-x64" in msg
    for name in PROFILE_NAMES:
        assert name in msg


def test_profiles_are_immutable_and_hashable(target):
    p = get_profile(target)
    assert {p: 1}[get_profile(target)] == 1 and hash(p.paging) == hash(p.paging_mode)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.pointer_size = 2
    with pytest.raises(TypeError):
        p.symbols["MmPfnDatabase"] = 0


@pytest.mark.parametrize("name, ptr, mode, pte_size", [
    ("win7-x64", 8, "x64", 8),
    ("win7-x86pae", 4, "pae", 8),
    ("win7-x86", 4, "x86", 4),
    ("wrk-x86", 4, "x86", 4),
])
def test_pointer_size_paging_mode_and_pte_size(name, ptr, mode, pte_size):
    p = get_profile(name)
    assert (p.pointer_size, p.paging_mode, p.pte_size) == (ptr, mode, pte_size)


# nt-structures.md §3, "Worked examples".
WORKED_EXAMPLES = [
    # target, level, va, entry address
    ("win7-x86", "pte", 0x7FFE0000, 0xC01FFF80),
    ("win7-x86", "pde", 0x7FFE0000, 0xC03007FC),
    ("win7-x86", "pte", 0x80000000, 0xC0200000),
    ("win7-x86", "pde", 0x80000000, 0xC0300800),
    ("win7-x86", "pte", 0xFFDF0000, 0xC03FF7C0),
    ("win7-x86", "pde", 0xFFDF0000, 0xC0300FFC),
    ("wrk-x86", "pte", 0x80000000, 0xC0200000),
    ("win7-x86pae", "pte", 0x7FFE0000, 0xC03FFF00),
    ("win7-x86pae", "pde", 0x7FFE0000, 0xC0601FF8),
    ("win7-x86pae", "pte", 0x80000000, 0xC0400000),
    ("win7-x86pae", "pde", 0x80000000, 0xC0602000),
    ("win7-x86pae", "pte", 0xFFDF0000, 0xC07FEF80),
    ("win7-x86pae", "pde", 0xFFDF0000, 0xC0603FF0),
    ("win7-x86pae", "pte", 0x001F0000, 0xC0000F80),     # MANU `!pte 0x001f0000`
    ("win7-x86pae", "pde", 0x001F0000, 0xC0600000),
    ("win7-x64", "pte", 0x7FFE0000, 0xFFFFF680003FFF00),
    ("win7-x64", "pde", 0x7FFE0000, 0xFFFFF6FB40001FF8),
    ("win7-x64", "ppe", 0x7FFE0000, 0xFFFFF6FB7DA00008),
    ("win7-x64", "pxe", 0x7FFE0000, 0xFFFFF6FB7DBED000),
    ("win7-x64", "pte", 0xFFFFF78000000000, 0xFFFFF6FBC0000000),
    ("win7-x64", "pde", 0xFFFFF78000000000, 0xFFFFF6FB7DE00000),
    ("win7-x64", "ppe", 0xFFFFF78000000000, 0xFFFFF6FB7DBEF000),
    ("win7-x64", "pxe", 0xFFFFF78000000000, 0xFFFFF6FB7DBEDF78),
]


@pytest.mark.parametrize("name, level, va, expected", WORKED_EXAMPLES)
def test_self_map_address_matches_worked_example(name, level, va, expected):
    p = get_profile(name)
    assert getattr(p, level + "_address")(va) == expected


@pytest.mark.parametrize("name, level, va, entry", WORKED_EXAMPLES)
def test_va_mapped_by_inverts_the_self_map(name, level, va, entry):
    p = get_profile(name)
    shift = p.paging.shift(level)
    assert p.va_mapped_by(entry, level) == va & ~((1 << shift) - 1)


@pytest.mark.parametrize("name", ["win7-x86pae", "win7-x86", "wrk-x86"])
def test_32_bit_targets_have_no_ppe_or_pxe_self_map(name):
    p = get_profile(name)
    for level in ("ppe", "pxe"):
        with pytest.raises(ValueError, match=level.upper()):
            getattr(p, level + "_address")(0x1000)
    assert p.self_map.ppe_base is None and p.self_map.pxe_base is None


def test_x64_bases_follow_the_general_self_map_formula():
    # nt-structures.md §3: PTE_BASE = 0xFFFF000000000000 | i << 39, and so on.
    p = get_profile("win7-x64")
    i = p.self_map.index
    assert i == 0x1ED
    pte = 0xFFFF000000000000 | (i << 39)
    pde = pte | (i << 30)
    ppe = pde | (i << 21)
    pxe = ppe | (i << 12)
    sm = p.self_map
    assert (sm.pte_base, sm.pde_base, sm.ppe_base, sm.pxe_base) == (pte, pde, ppe, pxe)
    assert p.self_map_entry == pxe + i * 8 == 0xFFFFF6FB7DBEDF68
    assert p.pte_top == 0xFFFFF6FFFFFFFFFF and p.pde_top == 0xFFFFF6FB7FFFFFFF


@pytest.mark.parametrize("name, entry, pte_top, pde_top", [
    ("win7-x86", 0xC0300C00, 0xC03FFFFF, 0xC0300FFF),
    ("wrk-x86", 0xC0300C00, 0xC03FFFFF, 0xC0300FFF),
    ("win7-x86pae", 0xC0603000, 0xC07FFFFF, 0xC0603FFF),
])
def test_32_bit_self_map_entry_and_table_tops(name, entry, pte_top, pde_top):
    p = get_profile(name)
    assert p.self_map_entry == entry
    assert p.pde_address(p.self_map.pte_base) == entry
    assert (p.pte_top, p.pde_top) == (pte_top, pde_top)


def test_self_map_index_is_the_top_level_index_of_pte_base(target):
    p = get_profile(target)
    top = p.paging.levels[-1]
    index_of_pte_base = (p.self_map.pte_base & p.paging.va_mask) >> p.paging.shift(top)
    assert index_of_pte_base == p.self_map.index


def test_every_self_mapped_table_lies_inside_the_pte_array(target):
    # The self-map means the PDEs (and PPEs, PXEs) are themselves PTEs of the PTE array.
    p = get_profile(target)
    for level in p.paging.levels[1:]:
        base = p.self_map.base(level)
        assert p.self_map.pte_base <= base <= p.pte_top
        assert p.pte_address(p.va_mapped_by(base, "pte")) == base


def test_user_and_system_boundaries(target):
    a = get_profile(target).address_space
    assert a.user_probe_address == a.highest_user_address + 1
    # The 64 KB no-access region sits between the user probe address and system space
    # on 32-bit targets (KSEG0_BASE - 0x10000).
    if get_profile(target).pointer_size == 4:
        assert a.system_range_start == a.user_probe_address + 0x10000 == 0x80000000
    assert a.highest_vad_address == a.highest_user_address - 0x10000
    assert a.shared_user_data_user_va == 0x7FFE0000 < a.highest_user_address
    assert a.lowest_user_address == 0x10000


def test_kernel_ranges_are_page_aligned_in_system_space_and_do_not_overlap(target):
    p = get_profile(target)
    a = p.address_space
    ranges = {
        "nonpaged pool": (a.nonpaged_pool_start, a.nonpaged_pool_end),
        "paged pool": (a.paged_pool_start, a.paged_pool_end),
        "system PTEs": (a.system_pte_start, a.system_pte_end),
        "system cache": (a.system_cache_start, a.system_cache_end),
        "session space": (a.session_space_start, a.session_space_end),
        "hyperspace": (a.hyper_space_start, a.hyper_space_end),
        "PTE array": (p.self_map.pte_base, p.pte_top),
    }
    for name, (start, end) in ranges.items():
        assert start % PAGE_SIZE == 0 and (end + 1) % PAGE_SIZE == 0, name
        assert a.system_range_start <= start < end, name
        assert end < a.hal_reserved_start, name
    spans = sorted(ranges.items(), key=lambda kv: kv[1])
    for (n1, (_, end1)), (n2, (start2, _)) in zip(spans, spans[1:]):
        assert end1 < start2, "%s overlaps %s" % (n1, n2)
    assert a.hyper_space_start <= a.working_set_list < a.hyper_space_end
    assert a.nonpaged_pool_start > a.pfn_database
    assert a.kseg0_base <= a.kernel_base < a.pfn_database


def test_kuser_shared_data_and_pfn_database_addresses():
    x64 = get_profile("win7-x64").address_space
    assert x64.shared_user_data_va == 0xFFFFF78000000000
    assert x64.pfn_database == 0xFFFFFA8000000000
    assert x64.system_range_start == 0xFFFF080000000000
    assert x64.highest_user_address == 0x000007FFFFFEFFFF
    for name in ("win7-x86pae", "win7-x86", "wrk-x86"):
        assert get_profile(name).address_space.shared_user_data_va == 0xFFDF0000
    assert get_profile("win7-x86pae").address_space.pfn_database == 0x84000000


def test_wrk_fixed_regions_are_the_mi386_defaults():
    a = get_profile("wrk-x86").address_space
    assert a.system_cache_end_extra == 0xC0000000          # MiSystemCacheEndExtra
    assert a.nonpaged_system_start == 0xEB000000           # MM_LOWEST_NONPAGED_SYSTEM_START
    assert a.paged_pool_start == 0xE1000000                # MM_DEFAULT_PAGED_POOL_START
    assert a.nonpaged_pool_end + 1 == 0xFFBE0000           # MM_NONPAGED_POOL_END
    assert (a.system_cache_start, a.system_cache_end + 1) == (0xC1000000, 0xE1000000)
    assert (a.hyper_space_start, a.hyper_space_end) == (0xC0400000, 0xC07FFFFF)
    assert a.system_cache_working_set == 0xC0C00000
    for name in ("win7-x64", "win7-x86pae", "win7-x86"):
        assert get_profile(name).address_space.system_cache_end_extra is None


@pytest.mark.parametrize("name, banner", [
    ("win7-x64", "Windows 7 Kernel Version 7601 (Service Pack 1) MP (2 procs) Free x64"),
    ("win7-x86pae",
     "Windows 7 Kernel Version 7601 (Service Pack 1) MP (2 procs) Free x86 compatible"),
    ("win7-x86",
     "Windows 7 Kernel Version 7601 (Service Pack 1) MP (2 procs) Free x86 compatible"),
    ("wrk-x86", "Windows Server 2003 Kernel Version 3790 (Service Pack 1) MP (2 procs) "
                "Free x86 compatible"),
])
def test_vertarget_banner(name, banner):
    assert get_profile(name).version.banner(2) == banner


def test_version_facts():
    v = get_profile("win7-x64").version
    assert (v.major, v.minor, v.build) == (6, 1, 7601)
    assert v.built_by == "Built by: 7601.17514.amd64fre.win7sp1_rtm.101119-1850"
    assert v.product_line == "Product: WinNt, suite: TerminalServer SingleUserTS"
    w = get_profile("wrk-x86").version
    assert (w.major, w.minor, w.build, w.kdbg_size) == (5, 2, 3790, 0x318)
    assert get_profile("win7-x86pae").version.kernel_image == "ntkrnlpa.exe"


def test_symbols_is_an_empty_read_only_mapping_until_boot_fills_the_machine(target):
    assert dict(get_profile(target).symbols) == {}


def test_each_profile_names_its_own_packaged_layouts(target):
    p = get_profile(target)
    assert isinstance(p, Profile)
    assert p.types_resource == target.replace("-", "_") + ".types.json"
