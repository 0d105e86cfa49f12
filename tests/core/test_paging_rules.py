"""The architectural walk, rule by rule, in every paging mode and page size."""
import pytest

from kdsim.machine import PF_ID, PF_P, PF_RSVD, PF_U, PF_W, STATUS, Machine
from tests.core.builder import (GB1, KB4, MB2, MB4, NX, P, PS, RW, US, A, D, G,
                                PageTables)

# (mode, page size, number of entries read)
CASES = [("x86", KB4, 2), ("x86", MB4, 1), ("pae", KB4, 3), ("pae", MB2, 2),
         ("x64", KB4, 4), ("x64", MB2, 3), ("x64", GB1, 2)]
IDS = [f"{m}-{s >> 10}k" for m, s, _ in CASES]
TOP_LEVEL = {"x86": 2, "pae": 3, "x64": 4}
VA = {"x86": 0x40000000, "pae": 0x40000000, "x64": 0x0000_7F00_4000_0000}
FRAME = 0x40000000  # 1 GB aligned, so every page size can use it


@pytest.fixture
def machine():
    return Machine(2 << 30)


def build(machine, mode, size, flags=P | RW | US, upper=P | RW | US, **paging):
    pt = PageTables(machine, mode)
    leaf = pt.map(VA[mode], FRAME, size, flags, upper)
    pt.activate(**paging)
    return pt, leaf


def leaf_depth(n_entries):
    return n_entries - 1


@pytest.mark.parametrize("mode,size,n", CASES, ids=IDS)
def test_present_mapping_translates_with_offset_and_records_every_level(machine, mode, size, n):
    pt, leaf = build(machine, mode, size)
    off = size - 8 if size > KB4 else 0x123
    t = machine.translate(VA[mode] + off)
    assert t.ok and t.pa == FRAME + off and t.page_size == size
    assert len(t.levels) == n
    assert t.levels[-1] == (leaf, pt.read_entry(leaf))
    assert t.levels[0][0] == pt.entry_address(VA[mode], 0)
    assert machine.translate_pa(VA[mode] + off) == FRAME + off


@pytest.mark.parametrize("mode,size,n", CASES, ids=IDS)
def test_not_present_at_each_level_faults_there_with_access_bits(machine, mode, size, n):
    for depth in range(n):
        pt, _ = build(machine, mode, size)
        pt.set_flags(VA[mode], depth, clear_bits=P)
        level = TOP_LEVEL[mode] - depth
        t = machine.translate(VA[mode])
        assert (t.ok, t.page_fault, t.fault_level, t.error_code) == (False, True, level, 0)
        assert len(t.levels) == depth + 1
        t = machine.translate(VA[mode], "w", user=True)
        assert (t.fault_level, t.error_code) == (level, PF_W | PF_U)


@pytest.mark.parametrize("mode,size,n", CASES, ids=IDS)
def test_user_access_needs_us_at_every_level(machine, mode, size, n):
    assert machine.translate  # fixture used below per depth
    for depth in range(n):
        if mode == "pae" and depth == 0:
            continue  # PAE PDPTEs have no U/S bit
        pt, _ = build(machine, mode, size)
        pt.set_flags(VA[mode], depth, clear_bits=US)
        t = machine.translate(VA[mode], user=True)
        assert (t.ok, t.error_code, t.fault_level) == (False, PF_P | PF_U, TOP_LEVEL[mode] - n + 1)
        assert machine.translate(VA[mode]).ok  # the kernel may read it
        assert not machine.translate(VA[mode]).user


@pytest.mark.parametrize("mode,size,n", CASES, ids=IDS)
def test_write_to_read_only_faults_for_user_and_for_kernel_only_with_wp(machine, mode, size, n):
    for depth in range(n):
        if mode == "pae" and depth == 0:
            continue
        for wp in (True, False):
            pt, _ = build(machine, mode, size, wp=wp)
            pt.set_flags(VA[mode], depth, clear_bits=RW)
            user = machine.translate(VA[mode], "w", user=True)
            assert (user.ok, user.error_code) == (False, PF_P | PF_W | PF_U)
            kernel = machine.translate(VA[mode], "w")
            if wp:
                assert (kernel.ok, kernel.error_code) == (False, PF_P | PF_W)
            else:
                assert kernel.ok and not kernel.writable
            assert machine.translate(VA[mode], "r", user=True).ok


@pytest.mark.parametrize("mode,size,n", [c for c in CASES if c[0] != "x86"],
                         ids=[i for i, c in zip(IDS, CASES) if c[0] != "x86"])
def test_nx_at_any_level_forbids_execution_with_nxe(machine, mode, size, n):
    for depth in range(n):
        if mode == "pae" and depth == 0:
            continue  # XD is reserved in PAE PDPTEs
        pt, _ = build(machine, mode, size)
        pt.set_flags(VA[mode], depth, set_bits=NX)
        t = machine.translate(VA[mode], "x", user=True)
        assert (t.ok, t.error_code) == (False, PF_P | PF_U | PF_ID)
        assert machine.translate(VA[mode], "r", user=True).ok
        assert not machine.translate(VA[mode]).executable
        # With EFER.NXE off, bit 63 is a reserved bit.
        machine.set_paging(mode, pt.cr3, nxe=False)
        t = machine.translate(VA[mode], "x")
        assert (t.ok, t.error_code, t.fault_level) == (False, PF_P | PF_RSVD,
                                                      TOP_LEVEL[mode] - depth)


def test_pae_pdpte_with_nx_is_a_reserved_bit_fault(machine):
    pt, _ = build(machine, "pae", KB4)
    pt.set_flags(VA["pae"], 0, set_bits=NX)
    t = machine.translate(VA["pae"])
    assert (t.fault_level, t.error_code) == (3, PF_P | PF_RSVD)


@pytest.mark.parametrize("bit", [0x2, 0x4, 0x20, 0x40, 0x80, 0x100])
def test_pae_pdpte_reserved_bits_fault_at_level_3(machine, bit):
    pt, _ = build(machine, "pae", KB4)
    pt.set_flags(VA["pae"], 0, set_bits=bit)
    t = machine.translate(VA["pae"], "w", user=True)
    assert (t.ok, t.fault_level, t.error_code) == (False, 3, PF_P | PF_RSVD | PF_W | PF_U)


def test_instruction_fetch_reports_id_only_with_nxe_outside_32_bit_mode(machine):
    pt, _ = build(machine, "x86", KB4)
    pt.set_flags(VA["x86"], 1, clear_bits=P)
    assert machine.translate(VA["x86"], "x").error_code == 0
    for nxe, expected in ((True, PF_ID), (False, 0)):
        pt, _ = build(machine, "x64", KB4, nxe=nxe)
        pt.set_flags(VA["x64"], 3, clear_bits=P)
        assert machine.translate(VA["x64"], "x").error_code == expected


def test_32_bit_mode_has_no_nx_bit(machine):
    pt, _ = build(machine, "x86", KB4)
    t = machine.translate(VA["x86"], "x", user=True)
    assert t.ok and t.executable


@pytest.mark.parametrize("mode,size,bit", [
    ("x64", MB2, 1 << 13), ("x64", MB2, 1 << 20), ("x64", GB1, 1 << 13), ("x64", GB1, 1 << 29),
    ("pae", MB2, 1 << 13), ("pae", MB2, 1 << 20), ("x86", MB4, 1 << 21),
    ("x64", KB4, 1 << 48), ("x64", KB4, 1 << 51), ("pae", KB4, 1 << 50), ("pae", KB4, 1 << 62),
])
def test_reserved_bits_in_leaf_entries_fault_with_rsvd(machine, mode, size, bit):
    pt, leaf = build(machine, mode, size)
    pt.write_entry(leaf, pt.read_entry(leaf) | bit)
    t = machine.translate(VA[mode])
    assert (t.ok, t.error_code & (PF_P | PF_RSVD)) == (False, PF_P | PF_RSVD)
    assert t.levels[-1] == (leaf, pt.read_entry(leaf))


def test_x64_pml4e_with_ps_is_reserved(machine):
    pt, _ = build(machine, "x64", KB4)
    pt.set_flags(VA["x64"], 0, set_bits=PS)
    t = machine.translate(VA["x64"])
    assert (t.fault_level, t.error_code) == (4, PF_P | PF_RSVD)


def test_maxphyaddr_decides_which_address_bits_are_reserved(machine):
    pt, leaf = build(machine, "x64", KB4)
    pt.write_entry(leaf, pt.read_entry(leaf) | (1 << 40))
    assert machine.translate(VA["x64"]).pa == FRAME | (1 << 40)
    machine.set_maxphyaddr(40)
    assert machine.translate(VA["x64"]).error_code == PF_P | PF_RSVD
    assert machine.paging.maxphyaddr == 40


def test_x86_pde_ps_is_ignored_without_pse(machine):
    pt, _ = build(machine, "x86", MB4, pse=False)
    t = machine.translate(VA["x86"])
    # The 4 MB frame is read as a page table: its first entry is zero.
    assert (t.ok, t.fault_level, len(t.levels)) == (False, 1, 2)
    assert t.levels[1][0] == FRAME + ((VA["x86"] >> 12) & 0x3FF) * 4


def test_x86_pse36_large_page_reaches_above_4_gb():
    machine = Machine(8 << 30)
    pt = PageTables(machine, "x86")
    leaf = pt.map(0x00400000, 0, MB4)
    pt.write_entry(leaf, 0x00800000 | (0x1 << 13) | P | RW | PS)  # PA bit 32 via bit 13
    pt.activate()
    assert machine.translate(0x00400010).pa == (1 << 32) | 0x00800010


def test_large_page_frames_drop_the_pat_bit(machine):
    pt, leaf = build(machine, "x64", MB2)
    pt.write_entry(leaf, pt.read_entry(leaf) | (1 << 12))  # PAT in a 2 MB leaf
    assert machine.translate(VA["x64"] + 5).pa == FRAME + 5


def test_x64_non_canonical_address_is_a_general_protection_fault(machine):
    build(machine, "x64", KB4)
    for va in (0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_FFFF, 0x1234_0000_0000_0000):
        t = machine.translate(va)
        assert t.noncanonical and t.fault_level == 0 and t.levels == ()
    assert machine.translate(0xFFFF_8000_0000_0000).page_fault


@pytest.mark.parametrize("mode", ["x86", "pae"])
def test_32_bit_modes_refuse_addresses_above_4_gb(machine, mode):
    build(machine, mode, KB4)
    t = machine.translate(1 << 32)
    assert t.status == STATUS["va_range"] and not t.ok


@pytest.mark.parametrize("mode,size,n", CASES, ids=IDS)
def test_cpu_access_sets_accessed_everywhere_and_dirty_on_write_only(machine, mode, size, n):
    pt, _ = build(machine, mode, size)
    addrs = [pt.entry_address(VA[mode], d) for d in range(n)]
    before = [pt.read_entry(a) for a in addrs]
    machine.translate(VA[mode], "w", probe=True)
    assert [pt.read_entry(a) for a in addrs] == before  # probes change nothing
    t = machine.translate(VA[mode], "r", probe=False)
    after = [pt.read_entry(a) for a in addrs]
    for depth, (b, a) in enumerate(zip(before, after)):
        if mode == "pae" and depth == 0:
            assert a == b  # no A bit in a PAE PDPTE
        else:
            assert a == b | A
    assert not after[-1] & D and not t.dirty
    machine.flush_tlb()
    t = machine.translate(VA[mode], "w", probe=False)
    assert pt.read_entry(addrs[-1]) == before[-1] | A | D and t.dirty
    assert all(not pt.read_entry(x) & D for x in addrs[:-1])


def test_failed_cpu_access_leaves_the_leaf_untouched(machine):
    pt, leaf = build(machine, "x64", KB4, flags=P | US)  # read-only
    t = machine.translate(VA["x64"], "w", user=True, probe=False)
    assert not t.ok
    assert pt.read_entry(leaf) == FRAME | P | US
    assert pt.read_entry(pt.entry_address(VA["x64"], 0)) & A  # upper levels were used


def test_global_bit_counts_only_with_pge(machine):
    pt, _ = build(machine, "x64", KB4, flags=P | RW | G)
    assert machine.translate(VA["x64"]).global_page
    machine.set_paging("x64", pt.cr3, pge=False)
    assert not machine.translate(VA["x64"]).global_page


@pytest.mark.parametrize("mode", ["x86", "pae", "x64"])
def test_table_outside_ram_stops_the_walk_with_a_physical_error(machine, mode):
    pt, _ = build(machine, mode, KB4)
    epa = pt.entry_address(VA[mode], 0)
    far = 0xFFFFF000 if mode != "x64" else 0x7F_FFFF_F000
    pt.write_entry(epa, far | P | (RW | US if mode != "pae" else 0))
    t = machine.translate(VA[mode])
    assert (t.ok, t.status, t.fault_level) == (False, STATUS["phys"], TOP_LEVEL[mode] - 1)


def test_table_in_a_hole_is_a_physical_error():
    machine = Machine(64 << 20, runs=[(0, 32 << 20), (48 << 20, 16 << 20)])
    pt = PageTables(machine, "x64", table_base=0x100000)
    pt.map(0x5000, 0x200000)
    pde = pt.entry_address(0x5000, 2)
    pt.write_entry(pde, (40 << 20) | P | RW | US)  # the page table now lies in the hole
    pt.activate()
    t = machine.translate(0x5000)
    assert (t.status, t.fault_level) == (STATUS["phys"], 1)


def test_paging_off_maps_linear_to_physical(machine):
    t = machine.translate(0x1234_5678, "w", user=True)
    assert t.ok and t.pa == 0x1234_5678 and t.levels == ()
