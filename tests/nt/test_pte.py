"""The PTE codec: reference examples, layout agreement, decode order and round trips."""
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kdsim.nt import protect as P
from kdsim.nt.profiles import PROFILE_NAMES, get_profile
from kdsim.nt.pte import KINDS, PteCodec
from kdsim.nt.types import TypeSystem

CODECS = {t: PteCodec(t) for t in PROFILE_NAMES}
TS = {t: TypeSystem(t) for t in PROFILE_NAMES}
FAST = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
U64 = (1 << 64) - 1
X64, PAE, X86, WRK = "win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"
NX_TARGETS = (X64, PAE)

protections = st.integers(0, 31)
valid_protections = st.sampled_from(
    [p for p in range(32) if not P.is_no_access(p) and not P.is_guard(p)])


def field(target, type_name, name):
    return TS[target].field(type_name, name)


def width(target, type_name, name):
    return field(target, type_name, name).mask


# -- the reference's examples ---------------------------------------------------------
@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_demand_zero_read_write_is_0x80_and_kernel_no_access_is_0x300(target):
    c = CODECS[target]
    assert c.demand_zero(P.MM_READWRITE) == 0x80
    assert c.demand_zero(P.MM_NOACCESS) == 0x300
    assert c.decode(0x80).kind == "demand_zero" and c.decode(0x80).protection == 4


def test_x64_vad_prototype_pte_values():
    c = CODECS[X64]
    assert c.vad_prototype(P.MM_READWRITE) == 0xFFFFFFFF00000480
    assert c.vad_prototype(P.MM_READONLY) == 0xFFFFFFFF00000420      # Rekall's comment
    d = c.decode(0xFFFFFFFF00000480)
    assert (d.kind, d.protection) == ("vad_prototype", 4)


def test_x86_vad_prototype_uses_the_20_bit_lookup_value():
    assert CODECS[X86].vad_prototype(P.MM_READWRITE) == 0xFFFFF480
    assert CODECS[WRK].lookup_needed == 0xFFFFF and CODECS[PAE].lookup_needed == 0xFFFFFFFF


def test_x64_prototype_pointer_is_the_va_shifted_to_bit_16():
    c = CODECS[X64]
    va = 0xFFFFF8A000123458
    assert c.prototype(va) == ((va << 16) | 0x400) & U64              # WRK miamd.h
    d = c.decode(0xC182CC1FFDF80400)                                  # !pte sample
    assert (d.kind, d.proto_address) == ("prototype", 0xFFFFC182CC1FFDF8)


def test_pae_prototype_pointer_is_the_high_dword():
    c = CODECS[PAE]
    assert c.prototype(0x8A123458) == 0x8A12345800000400
    assert c.decode(0x8A12345800000400).proto_address == 0x8A123458


def test_valid_clean_writable_page_has_only_the_software_write_bit():
    c = CODECS[X86]
    assert c.valid(0x1234, P.MM_READWRITE) == 0x1234000 | 0x800 | 0x21
    assert c.valid(0x1234, P.MM_READWRITE, owner=True) == 0x1234825
    x64 = CODECS[X64]
    assert x64.valid(0x1234, P.MM_EXECUTE_READWRITE, owner=True) == 0x1234825
    assert x64.valid(0x1234, P.MM_READWRITE, owner=True) == 0x8000000001234825


def test_valid_dirty_writable_page_adds_0x842():
    c = CODECS[X64]
    v = c.valid(0x1BC4, P.MM_READWRITE, owner=True, dirty=True)
    assert v == 0x8000000001BC4867 and v & 0x842 == 0x842             # !pte sample value
    assert c.make_dirty(c.valid(0x1BC4, P.MM_READWRITE, owner=True)) == v
    assert c.make_clean(v) == c.valid(0x1BC4, P.MM_READWRITE, owner=True)


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_copy_on_write_keeps_bit_9_with_bits_1_and_11_clear(target):
    v = CODECS[target].valid(0x42, P.MM_EXECUTE_WRITECOPY)
    assert v & 0x200 and not v & 0x802
    with pytest.raises(ValueError):
        CODECS[target].valid(0x42, P.MM_WRITECOPY, dirty=True)


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_global_and_large_bits(target):
    c = CODECS[target]
    align = 1 << (get_profile(target).paging.shift("pde") - 12)
    v = c.valid(align * 3, P.MM_EXECUTE_READ, global_=True, large=True)
    assert v & 0x1A1 == 0x1A1                                         # -GL-A--K-EV
    with pytest.raises(ValueError):
        c.valid(align + 1, P.MM_EXECUTE_READ, large=True)


def test_transition_example_from_a_pte_transcript():
    d = CODECS[X64].decode(0x00000000166B7880)
    assert (d.kind, d.pfn, d.protection) == ("transition", 0x166B7, 4)
    assert CODECS[X64].transition(0x166B7, 4) == 0x166B7880


def test_pagefile_pte_layout_on_x64():
    c = CODECS[X64]
    assert c.pagefile(2, 0x1BBEDA, 4) == 0x001BBEDA00000084
    d = c.decode(0x001BBEDA00000084)
    assert (d.kind, d.page_file_low, d.page_file_high, d.page_file_offset) == (
        "pagefile", 2, 0x1BBEDA, 0x1BBEDA000)


def test_x86_prototype_decode_is_the_mpfs_formula():
    c = CODECS[X86]

    @FAST
    @given(st.integers(0, 0xFFFFFFFF))
    def check(pte):
        pte = (pte | 0x400) & ~1
        assume(pte >> 12 != 0xFFFFF)
        expect = 0x80000000 | ((pte >> 1) & 0x7FFFFC00) | ((pte << 1) & 0x3FC)
        assert c.decode(pte).proto_address == expect
    check()


def test_wrk_prototype_encode_and_decode_are_the_mi386_macros():
    c = CODECS[WRK]
    base = get_profile(WRK).address_space.paged_pool_start                # MmProtopte_Base

    @FAST
    @given(st.integers(0, (0xFFFFFFFF - base) // 4))
    def check(n):
        p = base + 4 * n
        assume(p - base < 0x3FFFFC00)
        encoded = (((p - base) >> 1) & 0xFE) | (((p - base) << 2) & 0xFFFFF800) | 0x400
        assert c.prototype(p) == encoded
        decoded = base + ((encoded >> 11) << 9) + (((encoded << 24) & 0xFFFFFFFF) >> 23)
        assert c.decode(encoded).proto_address == decoded == p
    check()


def test_mpfs_acceptance_masks_hold_for_system_prototype_pointers():
    assert CODECS[X86].prototype(0x8A123450) & 0x407 == 0x400
    assert CODECS[PAE].prototype(0x8A123458) & 0x8000000700000401 == 0x8000000000000400
    assert CODECS[X64].prototype(0xFFFFF8A000123458) & 0x8000000000070401 == \
        0x8000000000000400


# -- the codec reads its bits from the layouts ----------------------------------------
@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_codec_bits_are_the_layout_fields(target):
    c = CODECS[target]
    f = lambda t, n: field(target, t, n)                               # noqa: E731
    for p in range(1, 32):
        assert f("_MMPTE_SOFTWARE", "Protection").extract(c.demand_zero(p)) == p
    v = c.pagefile(3, 0x1234, 6)
    assert (f("_MMPTE_SOFTWARE", "PageFileLow").extract(v),
            f("_MMPTE_SOFTWARE", "PageFileHigh").extract(v),
            f("_MMPTE_SOFTWARE", "Protection").extract(v)) == (3, 0x1234, 6)
    v = c.transition(0x5678, 5, owner=True, write=True)
    assert (f("_MMPTE_TRANSITION", "PageFrameNumber").extract(v),
            f("_MMPTE_TRANSITION", "Protection").extract(v),
            f("_MMPTE_TRANSITION", "Transition").extract(v),
            f("_MMPTE_TRANSITION", "Owner").extract(v),
            f("_MMPTE_TRANSITION", "Write").extract(v)) == (0x5678, 5, 1, 1, 1)
    v = c.valid(0x9ABC, P.MM_READWRITE, owner=True, dirty=True)
    hw = "Dirty1" if target != WRK else "Writable"
    assert [f("_MMPTE_HARDWARE", n).extract(v) for n in (
        "Valid", hw, "Owner", "Accessed", "Dirty", "Write", "CopyOnWrite",
        "PageFrameNumber")] == [1, 1, 1, 1, 1, 1, 0, 0x9ABC]
    v = c.vad_prototype(4)
    assert (f("_MMPTE_SOFTWARE", "Prototype").extract(v),
            f("_MMPTE_SOFTWARE", "PageFileHigh").extract(v)) == (1, c.lookup_needed)
    v = c.list_entry(0x77, one_entry=True)
    assert (f("_MMPTE_LIST", "NextEntry").extract(v),
            f("_MMPTE_LIST", "OneEntry").extract(v)) == (0x77, 1)


def test_absolute_address_fields_hold_the_address():
    v = CODECS[X64].prototype(0xFFFFF8A000123458, readonly=True, protection=4)
    f = lambda n: field(X64, "_MMPTE_PROTOTYPE", n)                    # noqa: E731
    assert f("ProtoAddress").extract(v) == 0xFFFFF8A000123458 - (1 << 64)
    assert (f("ReadOnly").extract(v), f("Protection").extract(v)) == (1, 4)
    v = CODECS[PAE].subsection(0x86123458, 7)
    assert field(PAE, "_MMPTE_SUBSECTION", "SubsectionAddress").extract(v) == 0x86123458
    assert field(PAE, "_MMPTE_SUBSECTION", "Protection").extract(v) == 7


# -- decode order (nt-structures.md §4.7) ---------------------------------------------
@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_decode_order(target):
    c = CODECS[target]
    assert c.decode(0).kind == "zero"
    assert c.decode(0x401).kind == "valid"                            # Valid beats Prototype
    assert c.decode(0xC01).kind == "valid"
    assert c.decode(0xC00).kind == "prototype"                        # Prototype beats Transition
    assert c.decode(0xC00, in_prototype_array=True).kind == "subsection"
    assert c.decode(c.vad_prototype(4), in_prototype_array=True).kind == "subsection"
    assert c.decode(0x800).kind == "transition"
    assert c.decode(c.lookup_vad(4)).kind == "lookup_vad"
    assert c.decode(c.lookup_vad(0)).kind == "lookup_vad"
    assert c.decode(0x20).kind == "demand_zero"
    assert c.decode(0x2).kind == "pagefile"                           # file 1, page 0
    with pytest.raises(ValueError):
        c.decode(c.value_mask + 1)


# -- encoders refuse what the format cannot hold --------------------------------------
@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_encoders_reject_impossible_values(target):
    c = CODECS[target]
    bad = [
        lambda: c.valid(1, P.MM_NOACCESS), lambda: c.valid(1, 0x14),
        lambda: c.valid(1, P.MM_READONLY, dirty=True), lambda: c.valid(-1, 4),
        lambda: c.valid(width(target, "_MMPTE_HARDWARE", "PageFrameNumber") + 1, 4), lambda: c.demand_zero(0),
        lambda: c.demand_zero(32), lambda: c.pagefile(0, 0, 4),
        lambda: c.pagefile(16, 1, 4), lambda: c.pagefile(0, c.lookup_needed, 4),
        lambda: c.transition(1 << 40, 4), lambda: c.make_dirty(0x80),
        lambda: c.make_dirty(c.valid(1, P.MM_READONLY)),
        lambda: c.subsection(0x86123454), lambda: c.list_entry(c.empty_list + 1),
    ]
    for make in bad:
        with pytest.raises(ValueError):
            make()


def test_prototype_pointers_that_would_read_as_lookup_needed_are_refused():
    with pytest.raises(ValueError):
        CODECS[X64].prototype(0xFFFFFFFFFFFF0008)
    with pytest.raises(ValueError):
        CODECS[X86].prototype(0xFFFFF800)
    with pytest.raises(ValueError):
        CODECS[X86].prototype(0x7FFE0000)                             # not system space
    with pytest.raises(ValueError):
        CODECS[X64].prototype(0x0000800000000000)                     # not canonical
    with pytest.raises(ValueError):
        CODECS[X86].prototype(0x8A123452)                             # not PTE aligned
    with pytest.raises(ValueError):
        CODECS[X86].prototype(0x8A123450, protection=4)               # no such field
    with pytest.raises(ValueError):
        CODECS[WRK].prototype(0xE0FFFFFC)                             # below paged pool


# -- round trips: decode(encode(x)) == x, every kind, every target --------------------
def _canonical(target, pte_align):
    if target == X64:
        return st.integers(-(1 << 47), (1 << 47) - 1).map(
            lambda a: (a & ~(pte_align - 1)) & U64)
    return st.integers(0, 0xFFFFFFFF).map(lambda a: a & ~(pte_align - 1))


def proto_addresses(target):
    c = CODECS[target]
    if target in (X64, PAE):
        return _canonical(target, 8)
    if target == X86:
        return st.integers(0x80000000 // 4, 0xFFFFF7FC // 4).map(lambda n: 4 * n)
    return st.integers(0, (0xFFFFFFFF - c.proto_base) // 4).map(lambda n: c.proto_base + 4 * n)


def subsection_addresses(target):
    c = CODECS[target]
    if target in (X64, PAE):
        return _canonical(target, 8)
    if target == X86:
        return st.integers(0x80000000 // 8, 0xFFFFFFF8 // 8).map(lambda n: 8 * n)
    low = c.nonpaged_pool_end - (1 << 27) + 8
    return st.integers(low // 8, 0xFFFFFFF8 // 8).map(lambda n: 8 * n)


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_valid_round_trips(target):
    c = CODECS[target]
    pfns = st.integers(0, width(target, "_MMPTE_HARDWARE", "PageFrameNumber"))

    @FAST
    @given(pfns, valid_protections, st.booleans(), st.booleans(), st.booleans(),
           st.booleans(), st.booleans())
    def check(pfn, prot, owner, global_, dirty, accessed, large):
        dirty = dirty and prot & 7 in (4, 6)
        accessed = accessed or dirty                  # MiSetDirtyBit sets Accessed too
        if large:
            pfn -= pfn % c.large_pfn_align
        v = c.valid(pfn, prot, owner=owner, global_=global_, dirty=dirty,
                    accessed=accessed, large=large)
        assert v == (pfn << 12 | P.protect_to_pte_mask(prot, target) | 1
                     | 0x20 * accessed | 4 * owner | 0x100 * global_ | 0x42 * dirty
                     | 0x80 * large)
        d = c.decode(v)
        assert (d.kind, d.pfn, d.owner, d.global_, d.dirty, d.write, d.accessed, d.large) == (
            "valid", pfn, owner, global_, dirty, dirty, accessed, large)
        assert d.writable == (prot & 7 in (4, 6))
        assert d.copy_on_write == (prot & 7 in (5, 7))
        assert d.nx == (target in NX_TARGETS and prot & 7 in (1, 4, 5))
        assert d.cache_disable == (P.is_nocache(prot) or P.is_writecombine(prot))
    check()


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_software_kinds_round_trip(target):
    c = CODECS[target]
    pfh = width(target, "_MMPTE_SOFTWARE", "PageFileHigh")

    @FAST
    @given(protections, st.integers(0, 15), st.integers(1, pfh - 1))
    def check(prot, file_number, offset):
        if prot:
            d = c.decode(c.demand_zero(prot))
            assert (d.kind, d.protection) == ("demand_zero", prot)
        d = c.decode(c.pagefile(file_number, offset, prot))
        assert (d.kind, d.page_file_low, d.page_file_high, d.protection) == (
            "pagefile", file_number, offset, prot)
        d = c.decode(c.lookup_vad(prot))
        assert (d.kind, d.protection) == ("lookup_vad", prot)
        d = c.decode(c.vad_prototype(prot))
        assert (d.kind, d.protection) == ("vad_prototype", prot)
    check()


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_transition_round_trips(target):
    c = CODECS[target]
    pfns = st.integers(0, width(target, "_MMPTE_TRANSITION", "PageFrameNumber"))

    @FAST
    @given(pfns, protections, st.booleans(), st.booleans())
    def check(pfn, prot, owner, write):
        d = c.decode(c.transition(pfn, prot, owner=owner, write=write))
        assert (d.kind, d.pfn, d.protection, d.owner, d.write) == (
            "transition", pfn, prot, owner, write)
    check()


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_prototype_round_trips(target):
    c = CODECS[target]
    has_protection = target in (X64, PAE)

    @FAST
    @given(proto_addresses(target), st.one_of(st.none(), protections), st.booleans())
    def check(va, prot, readonly):
        prot = prot if has_protection else None
        try:
            v = c.prototype(va, prot, readonly)
        except ValueError:
            # only the addresses that would read as MI_PTE_LOOKUP_NEEDED are refused
            assert (va >> 16 == 0xFFFFFFFFFFFF if target == X64 else va >= 0xFFFFF800
                    if target == X86 else va - c.proto_base >= 0x3FFFFC00)
            return
        d = c.decode(v)
        assert (d.kind, d.proto_address, d.readonly) == ("prototype", va, readonly)
        assert d.protection == ((prot or 0) if has_protection else None)
    check()


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_subsection_round_trips(target):
    c = CODECS[target]
    has_protection = target != X86

    @FAST
    @given(subsection_addresses(target), protections)
    def check(va, prot):
        d = c.decode(c.subsection(va, prot), in_prototype_array=True)
        assert (d.kind, d.subsection_address) == ("subsection", va)
        assert d.protection == (prot if has_protection else None)
    check()


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_list_entries_round_trip(target):
    c = CODECS[target]

    @FAST
    @given(st.integers(0, c.empty_list), st.booleans())
    def check(nxt, one):
        assert tuple(c.decode_list_entry(c.list_entry(nxt, one_entry=one))) == (nxt, one)
    check()


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_any_value_decodes_to_one_of_the_kinds(target):
    c = CODECS[target]

    @FAST
    @given(st.integers(0, c.value_mask), st.booleans())
    def check(value, in_array):
        d = c.decode(value, in_prototype_array=in_array)
        assert d.kind in KINDS and d.value == value
    check()


def test_wrk_subsections_below_the_pool_use_the_distance_from_the_pool_end():
    c = CODECS[WRK]
    va = c.subsection_base - 0x1000
    v = c.subsection(va, 4)
    assert not v & 0x80000000                                         # WhichPool = 0
    assert c.decode(v, in_prototype_array=True).subsection_address == va
    assert c.subsection(c.subsection_base, 4) & 0x80000000
