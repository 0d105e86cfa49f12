"""Virtual reads and writes, batch translation, and the paging state's argument checks."""
import numpy as np
import pytest

from kdsim.machine import (BAD_PA, PF_P, PF_U, PF_W, STATUS, KdArgumentError, Machine,
                           VirtualMemoryError)
from tests.core.builder import KB4, MB2, P, RW, US, A, D, PageTables

BASE = 0x0000_0000_1000_0000


@pytest.fixture
def m():
    m = Machine(64 << 20)
    pt = PageTables(m, "x64")
    pt.map(BASE, 0x400000, KB4, P | RW | US)
    pt.map(BASE + KB4, 0x402000, KB4, P | US)           # read-only, not contiguous
    pt.map(BASE + 3 * KB4, 0x403000, KB4, P | RW | US)  # BASE + 2 pages is unmapped
    pt.activate()
    m.pt = pt
    return m


def test_read_spanning_pages_follows_each_translation(m):
    m.write_physical(0x400FFC, b"abcd")
    m.write_physical(0x402000, b"efgh")
    assert m.read_virtual(BASE + KB4 - 4, 8) == b"abcdefgh"


def test_read_stops_at_the_first_failing_page_with_what_it_read(m):
    m.write_physical(0x402FFE, b"yz")
    with pytest.raises(VirtualMemoryError) as e:
        m.read_virtual(BASE + 2 * KB4 - 2, 16)
    err = e.value
    assert (err.done, err.data, err.va) == (2, b"yz", BASE + 2 * KB4)
    t = err.translation
    assert (t.page_fault, t.fault_level, t.error_code, t.va) == (True, 1, 0, BASE + 2 * KB4)


def test_cpu_write_needs_write_rights_and_sets_dirty(m):
    with pytest.raises(VirtualMemoryError) as e:
        m.write_virtual(BASE + KB4 - 1, b"XY", user=True, probe=False)
    assert e.value.done == 1
    assert e.value.translation.error_code == PF_P | PF_W | PF_U
    assert m.read_physical(0x400FFF, 1) == b"X"
    leaf = m.pt.entry_address(BASE, 3)
    assert m.pt.read_entry(leaf) & (A | D) == A | D


def test_debugger_write_needs_only_a_present_mapping_and_leaves_no_trace(m):
    leaf = m.pt.entry_address(BASE + KB4, 3)
    before = m.pt.read_entry(leaf)
    m.write_virtual(BASE + KB4, b"patched")  # read-only page, probe write
    assert m.read_physical(0x402000, 7) == b"patched"
    assert m.pt.read_entry(leaf) == before
    with pytest.raises(VirtualMemoryError):
        m.write_virtual(BASE + 2 * KB4, b"x")


def test_user_read_of_a_supervisor_page_faults(m):
    m.pt.map(BASE + 4 * KB4, 0x404000, KB4, P | RW)
    with pytest.raises(VirtualMemoryError) as e:
        m.read_virtual(BASE + 4 * KB4, 4, user=True, probe=False)
    assert e.value.translation.error_code == PF_P | PF_U


def test_page_mapped_into_a_hole_stops_with_a_physical_error():
    m = Machine(64 << 20, runs=[(0, 32 << 20), (48 << 20, 16 << 20)])
    pt = PageTables(m, "x64")
    pt.map(BASE, 40 << 20, KB4, P | RW)
    pt.activate()
    assert m.translate(BASE).pa == 40 << 20  # the MMU does not know about holes
    with pytest.raises(VirtualMemoryError) as e:
        m.read_virtual(BASE, 4)
    assert e.value.status == STATUS["phys"]


def test_range_wrapping_past_the_top_of_the_address_space_is_refused(m):
    with pytest.raises(KdArgumentError):
        m.read_virtual((1 << 64) - 4, 8)


def test_execute_read_checks_nx(m):
    m.pt.map(BASE + 5 * KB4, 0x405000, KB4, P | RW | US | (1 << 63))
    with pytest.raises(VirtualMemoryError):
        m.read_virtual(BASE + 5 * KB4, 4, access="x", probe=False)
    assert m.read_virtual(BASE + 5 * KB4, 4) == bytes(4)


def test_batch_agrees_with_single_translations(m):
    m.pt.map(0xFFFF_F800_0000_0000, 0x600000, MB2, P | RW)
    vas = np.array([BASE, BASE + KB4 + 5, BASE + 2 * KB4, 1 << 47, 0xFFFF_F800_0001_2345,
                    BASE + 3 * KB4 + 0xFFF], dtype=np.uint64)
    pas, status = m.translate_batch(vas)
    assert status.tolist() == [0, 0, STATUS["page_fault"], STATUS["noncanonical"], 0, 0]
    assert pas.tolist() == [0x400000, 0x402005, BAD_PA, BAD_PA, 0x612345, 0x403FFF]
    for va, pa in zip(vas.tolist(), pas.tolist()):
        t = m.translate(va)
        assert (t.pa if t.ok else BAD_PA) == pa
        assert m.translate_pa(va) == (None if pa == BAD_PA else pa)


def test_batch_of_cpu_writes_faults_on_read_only_and_fills_the_tlb(m):
    pas, status = m.translate_batch([BASE, BASE + KB4], "w", user=True, probe=False)
    assert status.tolist() == [0, STATUS["page_fault"]]
    assert m.tlb_entries == (1, 0)


@pytest.mark.parametrize("call", [
    lambda m: m.set_paging("x64", 0x1001),
    lambda m: m.set_paging("x86", 0x1800),
    lambda m: m.set_paging("pae", 0x1010),
    lambda m: m.set_paging("pae", 1 << 32),
    lambda m: m.set_paging("x64", 1 << 52),
    lambda m: m.set_paging("long", 0),
    lambda m: m.translate(0, "rw"),
    lambda m: m.translate(-1),
    lambda m: m.translate(1 << 64),
    lambda m: m.translate_pa(1 << 64),
    lambda m: m.translate_batch([0], "q"),
    lambda m: m.read_virtual(0, 4, access="w"),
    lambda m: m.read_virtual(0, 1 << 62),
    lambda m: m.set_maxphyaddr(60),
    lambda m: m.invlpg(-5),
])
def test_bad_arguments_are_typed_errors_not_crashes(m, call):
    with pytest.raises(KdArgumentError):
        call(m)


def test_refused_cr3_leaves_the_paging_state_as_it_was(m):
    before = m.paging
    with pytest.raises(KdArgumentError):
        m.cr3 = 0x1234
    assert m.paging == before
    assert m.paging.mode == "x64" and m.paging.wp and m.paging.nxe


def test_translate_pa_keeps_working_after_the_machine_object_is_gone():
    import gc
    m = Machine(16 << 20)
    pt = PageTables(m, "x64")
    pt.map(BASE, 0x300000)
    pt.activate()
    probe = m.translate_pa
    del m, pt
    gc.collect()
    assert probe(BASE + 8) == 0x300008 and probe(BASE + KB4) is None
    with pytest.raises(TypeError):
        probe("not an address")
