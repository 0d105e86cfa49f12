"""The software TLB: what CPU accesses see after the tables change, and what probes see."""
import pytest

from kdsim.machine import PF_P, PF_W, Machine
from tests.core.builder import KB4, MB2, MB4, P, RW, US, G, D, PageTables

VA = 0x0000_7F00_0000_5000


@pytest.fixture
def m():
    return Machine(256 << 20)


def setup_x64(m, flags=P | RW | US):
    pt = PageTables(m, "x64")
    leaf = pt.map(VA, 0x200000, KB4, flags)
    pt.activate()
    return pt, leaf


def test_cpu_access_keeps_a_stale_translation_until_invlpg(m):
    pt, leaf = setup_x64(m)
    assert m.translate(VA, probe=False).pa == 0x200000
    pt.write_entry(leaf, 0x300000 | P | RW | US)  # remap without invalidating
    stale = m.translate(VA + 4, probe=False)
    assert stale.tlb_hit and stale.pa == 0x200004
    assert m.translate(VA + 4).pa == 0x300004  # the probe reads the tables
    m.invlpg(VA + 0x123)
    fresh = m.translate(VA + 4, probe=False)
    assert not fresh.tlb_hit and fresh.pa == 0x300004


def test_unmapped_page_still_reads_through_the_tlb_until_invalidated(m):
    pt, leaf = setup_x64(m)
    m.write_physical(0x200000, b"before")
    assert m.read_virtual(VA, 6, probe=False) == b"before"
    pt.write_entry(leaf, 0)
    assert m.read_virtual(VA, 6, probe=False) == b"before"
    assert not m.translate(VA).ok
    m.invlpg(VA)
    assert not m.translate(VA, probe=False).ok


def test_cr3_load_flushes_non_global_entries_and_keeps_global_ones_with_pge(m):
    pt = PageTables(m, "x64")
    pt.map(VA, 0x200000, KB4, P | RW)
    pt.map(VA + KB4, 0x201000, KB4, P | RW | G)
    pt.activate()
    m.translate(VA, probe=False)
    m.translate(VA + KB4, probe=False)
    assert m.tlb_entries == (2, 1)
    m.cr3 = pt.cr3
    assert m.tlb_entries == (1, 1)
    assert m.translate(VA + KB4, probe=False).tlb_hit
    assert not m.translate(VA, probe=False).tlb_hit
    m.flush_tlb(all_=True)
    assert m.tlb_entries == (0, 0)


def test_without_pge_global_entries_do_not_survive_a_cr3_load(m):
    pt = PageTables(m, "x64")
    pt.map(VA, 0x200000, KB4, P | RW | G)
    pt.activate(pge=False)
    m.translate(VA, probe=False)
    m.cr3 = pt.cr3
    assert m.tlb_entries == (0, 0)


def test_flush_non_global_is_what_a_cr3_load_does(m):
    pt = PageTables(m, "x64")
    pt.map(VA, 0x200000, KB4, P | RW | G)
    pt.map(VA + KB4, 0x201000, KB4, P | RW)
    pt.activate()
    m.translate(VA, probe=False)
    m.translate(VA + KB4, probe=False)
    m.flush_tlb()
    assert m.tlb_entries == (1, 1)


def test_set_paging_flushes_everything(m):
    pt = PageTables(m, "x64")
    pt.map(VA, 0x200000, KB4, P | RW | G)
    pt.activate()
    m.translate(VA, probe=False)
    pt.activate()
    assert m.tlb_entries == (0, 0)


@pytest.mark.parametrize("mode,size", [("x64", MB2), ("pae", MB2), ("x86", MB4)])
def test_invlpg_anywhere_in_a_large_page_drops_all_of_it(m, mode, size):
    pt = PageTables(m, mode)
    base = 0x40000000
    leaf = pt.map(base, 0x800000, size, P | RW)
    pt.activate()
    for off in (0, KB4, size - KB4):
        assert m.translate(base + off, probe=False).pa == 0x800000 + off
    pt.write_entry(leaf, 0)
    assert m.translate(base + size - KB4, probe=False).tlb_hit
    m.invlpg(base + size // 2)
    for off in (0, KB4, size - KB4):
        assert not m.translate(base + off, probe=False).ok


def test_write_through_a_clean_entry_walks_again_and_sets_dirty(m):
    pt, leaf = setup_x64(m)
    m.translate(VA, "r", probe=False)
    assert not pt.read_entry(leaf) & D
    t = m.translate(VA, "w", probe=False)
    assert not t.tlb_hit and pt.read_entry(leaf) & D
    assert m.translate(VA, "w", probe=False).tlb_hit


def test_entry_that_forbids_the_access_is_dropped_and_the_tables_decide(m):
    pt, leaf = setup_x64(m, flags=P | US)  # read-only
    m.translate(VA, "r", user=True, probe=False)
    # Windows makes the page writable and flushes; without the flush the retry walks.
    pt.write_entry(leaf, 0x200000 | P | RW | US)
    t = m.translate(VA, "w", user=True, probe=False)
    assert t.ok and not t.tlb_hit
    pt.write_entry(leaf, 0x200000 | P | US)
    m.invlpg(VA)
    t = m.translate(VA, "w", user=True, probe=False)
    assert (t.ok, t.error_code) == (False, PF_P | PF_W | 0x4)


def test_probes_neither_use_nor_fill_the_tlb(m):
    setup_x64(m)
    m.translate(VA)
    m.translate_pa(VA)
    m.translate_batch([VA, VA])
    assert m.tlb_entries == (0, 0)


def test_counters_count_walks_hits_misses_and_faults(m):
    setup_x64(m)
    m.reset_stats()
    m.translate(VA, probe=False)              # miss + walk
    m.translate(VA, probe=False)              # hit
    m.translate(VA + KB4, probe=False)        # miss + walk + fault
    m.translate(VA)                           # probe walk
    m.invlpg(VA)
    s = m.stats
    assert (s["walks"], s["tlb_hits"], s["tlb_misses"], s["faults"], s["probes"], s["invlpg"]) \
        == (3, 1, 2, 1, 1, 1)


def test_conflicting_entry_evicts_the_stale_one(m):
    pt, leaf = setup_x64(m)
    from kdsim.machine._kdcore import lib
    other = VA + lib.KD_TLB_ENTRIES * KB4  # the same slot of the direct-mapped TLB
    pt.map(other, 0x400000, KB4, P | RW | US)
    m.translate(VA, probe=False)
    pt.write_entry(leaf, 0x300000 | P | RW | US)
    m.translate(other, probe=False)
    assert m.translate(VA, probe=False).pa == 0x300000


def test_probe_under_another_cr3_reads_those_tables_without_loading_them(m):
    a = PageTables(m, "x64", table_base=0x100000)
    a.map(VA, 0x200000)
    b = PageTables(m, "x64", table_base=0x800000)
    b.map(VA, 0x300000)
    a.activate()
    m.translate(VA, probe=False)                       # fills the TLB under A
    assert m.translate(VA, cr3=b.cr3).pa == 0x300000    # B's tables, probed
    assert m.cr3 == a.cr3 and m.translate(VA, probe=False).tlb_hit
    assert not m.translate(VA + KB4, cr3=b.cr3).ok
    import pytest as _pytest
    from kdsim.machine import KdArgumentError
    with _pytest.raises(KdArgumentError):
        m.translate(VA, cr3=0x1234)                      # misaligned, as a CR3 load refuses
    with _pytest.raises(KdArgumentError):
        m.translate(VA, probe=False, cr3=b.cr3)          # the CPU uses the loaded CR3 only
