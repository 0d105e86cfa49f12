"""The system VA bookkeeping in guest memory: the system PTE pool's free chain and Windows
7's MiSystemVaType map, checked by the invariant checker against the page tables."""
import pytest

import kdsim
from kdsim.nt.invariants import check
from kdsim.nt.sysva import NONPAGED_POOL, PAGED_POOL, SYSTEM_PTES, VA_TYPES

TARGETS = ["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"]


def problems(b):
    return check(b.core, b.nt.profile, b.nt.symbols)


@pytest.mark.parametrize("target", TARGETS)
def test_the_pool_and_the_map_are_consistent_after_the_default_scenario(target):
    b = kdsim.boot(target, ram="256m", scenario="default")
    assert problems(b) == []


def test_windows_7_32_bit_has_the_map_and_x64_and_the_wrk_do_not():
    for target, entries in (("win7-x86", 0x200), ("win7-x86pae", 0x400)):
        b = kdsim.boot(target, ram="256m", scenario="none")
        assert len(b.nt.sysva.types) == entries
        assert {"MiSystemVaType", "MiSystemVaTypeCount", "MiSystemVaTypeCountPeak"} <= \
            set(b.nt.symbols)
    for target in ("win7-x64", "wrk-x86"):
        b = kdsim.boot(target, ram="256m", scenario="none")
        assert "MiSystemVaType" not in b.nt.symbols
    assert len(VA_TYPES) == 13            # Windows 7: MiVaMaximumType = 13


def test_pool_growth_hands_out_a_new_region_and_the_counts_follow():
    b = kdsim.boot("win7-x86pae", ram="256m", scenario="none")
    sva = b.nt.sysva
    before = list(sva.counts)
    b.nt.paged_pool.alloc(0x200000, "Big ")          # more than the first 2 MB region
    assert sva.counts[PAGED_POOL] == before[PAGED_POOL] + 1
    assert sva.types[(b.nt.paged_pool.start + 0x200000 - 0x80000000) >> 21] == PAGED_POOL
    assert sva.peaks[PAGED_POOL] == sva.counts[PAGED_POOL]
    assert problems(b) == []


def test_a_mapped_region_marked_unused_is_caught():
    b = kdsim.boot("win7-x86", ram="256m", scenario="none")
    sva = b.nt.sysva
    i = (b.nt.nonpaged_pool.start - 0x80000000) >> 22
    assert sva.types[i] == NONPAGED_POOL
    sva.types[i] = 0
    sva.counts[NONPAGED_POOL] -= 1
    sva._write_map()
    assert problems(b) == [f"MiSystemVaType[{i:#x}]: {b.nt.nonpaged_pool.start:#x} is "
                           "mapped but MiVaUnused"]


def test_a_type_kdsim_does_not_place_there_and_a_wrong_count_are_caught():
    b = kdsim.boot("win7-x86", ram="256m", scenario="none")
    sva = b.nt.sysva
    sva.types[0] = SYSTEM_PTES                      # 80000000 holds no system PTEs
    sva._write_map()
    assert problems(b) == [
        "MiSystemVaType[0x0]: 0x80000000 is MiVaSystemPtes, which kdsim does not place there",
        "MiSystemVaTypeCount[MiVaSystemPtes] 32, the map has 33"]


def test_reserve_takes_from_the_end_and_release_merges():
    b = kdsim.boot("wrk-x86", ram="256m", scenario="none")
    sva = b.nt.sysva
    a = sva.reserve(16)
    assert a == 0xFAFF0000                           # the last 16 pages of the pool
    assert sva.free == [(0xC03AC000, 0x10000 - 16)]
    assert problems(b) == []
    sva.release(a, 16)
    assert sva.free == [(0xC03AC000, 0x10000)]
    with pytest.raises(ValueError):
        sva.release(a, 1)                            # not reserved
    with pytest.raises(MemoryError):
        sva.reserve(0x10001)
    assert problems(b) == []


def test_a_valid_pte_inside_a_free_block_is_caught():
    b = kdsim.boot("wrk-x86", ram="256m", scenario="none")
    b.debugger.execute("ed c03ac010 00001963")       # a valid PTE in the free block
    assert "system PTE chain: free PTE at 0xc03ac010 is valid" in problems(b)
