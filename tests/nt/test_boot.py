"""Boot builds a consistent kernel in guest RAM, on every target; read back through the MMU."""
import struct

import pytest

import kdsim
from tests.nt.helpers import ram_digest
from kdsim.nt.guest import KernelMemory
from kdsim.nt.invariants import check
from kdsim.nt.pfn import ACTIVE, ZEROED

TARGETS = ["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"]


@pytest.fixture(scope="module", params=TARGETS)
def booted(request):
    return kdsim.boot(request.param, ram="512m", scenario="none")


def read_ptr(m, va):
    ps = m.nt.ptr
    return struct.unpack("<Q" if ps == 8 else "<I", m.core.read_virtual(va, ps))[0]


EXPECTED = {
    "win7-x64": (0x000007FFFFFEFFFF, 0xFFFF080000000000, 0x000007FFFFFF0000),
    "win7-x86pae": (0x7FFEFFFF, 0x80000000, 0x7FFF0000),
    "win7-x86": (0x7FFEFFFF, 0x80000000, 0x7FFF0000),
    "wrk-x86": (0x7FFEFFFF, 0x80000000, 0x7FFF0000),
}


def test_address_space_variables_read_through_the_mmu_at_their_symbols(booted):
    s = booted.nt.symbols
    got = tuple(read_ptr(booted, s[n]) for n in
                ("MmHighestUserAddress", "MmSystemRangeStart", "MmUserProbeAddress"))
    assert got == EXPECTED[booted.target]


def test_wrk_has_the_workshop_variables():
    m = kdsim.boot("wrk-x86", ram="512m")
    s = m.nt.symbols
    assert read_ptr(m, s["MiSystemCacheEndExtra"]) == 0xC0000000
    assert read_ptr(m, s["MmNonPagedSystemStart"]) >= 0xEB000000
    assert "MiSystemCacheEndExtra" not in kdsim.boot("win7-x86", ram="256m").nt.symbols


def test_invariants_hold_after_boot(booted):
    assert check(booted.core, booted.nt.profile, booted.nt.symbols) == []


def test_system_is_the_only_process_and_psinitialsystemprocess_points_at_it(booted):
    nt, ts = booted.nt, booted.nt.ts
    head = nt.symbols["PsActiveProcessHead"]
    first = read_ptr(booted, head)
    ep = first - ts.offset_of("_EPROCESS", "ActiveProcessLinks")
    assert read_ptr(booted, first) == head            # one entry
    assert read_ptr(booted, nt.symbols["PsInitialSystemProcess"]) == ep
    name = booted.core.read_virtual(ep + ts.offset_of("_EPROCESS", "ImageFileName"), 7)
    assert name == b"System\0"
    assert ts.field("_EPROCESS", "UniqueProcessId").read(KernelMemory(booted.core), ep) == 4
    hdr = booted.core.read_virtual(ep, 4)
    assert hdr[0] == 3 and hdr[2] == ts.sizeof("_KPROCESS") // 4   # Volatility's DTB signature


def test_directory_table_base_is_the_loaded_cr3_and_the_self_map_maps_the_tables(booted):
    nt, core = booted.nt, booted.core
    prof = nt.profile
    # The PTE of any kernel VA, read through the self-map, is the entry the MMU used.
    va = nt.symbols["MmPfnDatabase"]
    t = core.translate(prof.address_space.pfn_database)
    leaf_pa, leaf_value = t.levels[-1]
    pte_va = prof.pte_address(prof.address_space.pfn_database)
    assert core.translate(pte_va).pa == leaf_pa
    raw = core.read_virtual(pte_va, prof.pte_size)
    assert int.from_bytes(raw, "little") == leaf_value
    assert va


def test_the_nt_image_is_mapped_with_large_pages(booted):
    prof = booted.nt.profile
    t = booted.core.translate(prof.address_space.kernel_base)
    assert t.page_size == (4 << 20 if prof.paging.name == "x86" else 2 << 20)
    assert t.pa == prof.address_space.kernel_base - prof.address_space.kseg0_base


def test_a_pfn_entry_points_back_at_its_pte(booted):
    nt, core = booted.nt, booted.core
    va = nt.profile.address_space.shared_user_data_va
    t = core.translate(va)
    pfn = t.pa >> 12
    assert nt.pfn.location(pfn) == ACTIVE
    assert int(nt.pfn.e["pte"][pfn]) == nt.profile.pte_address(va)
    assert nt.pfn.get(pfn, nt.pfn.lay.frame) == t.levels[-1][0] >> 12


def test_kdbg_header_and_pointers(booted):
    nt, ts = booted.nt, booted.nt.ts
    kdbg = nt.symbols["KdDebuggerDataBlock"]
    v = ts.view(KernelMemory(booted.core), "wdbgexts!_KDDEBUGGER_DATA64", kdbg)
    assert v.Header.OwnerTag == 0x4742444B and v.Header.Size == nt.profile.version.kdbg_size
    ext = (lambda a: a | 0xFFFFFFFF00000000) if nt.ptr == 4 else (lambda a: a)
    assert v.MmPfnDatabase == ext(nt.symbols["MmPfnDatabase"])
    assert v.PsActiveProcessHead == ext(nt.symbols["PsActiveProcessHead"])
    assert v.KernBase == ext(nt.profile.address_space.kernel_base)


def test_physical_memory_block_has_the_holes(booted):
    ts = booted.nt.ts
    block = read_ptr(booted, booted.nt.symbols["MmPhysicalMemoryBlock"])
    mem = KernelMemory(booted.core)
    d = ts.view(mem, "_PHYSICAL_MEMORY_DESCRIPTOR", block)
    assert d.NumberOfRuns == 2
    first = ts.view(mem, "_PHYSICAL_MEMORY_RUN",
                    block + ts.offset_of("_PHYSICAL_MEMORY_DESCRIPTOR", "Run"))
    assert (first.BasePage, first.PageCount) == (1, 0x9E)


def test_above_3_gb_the_pci_hole_splits_ram_on_x64():
    m = kdsim.boot("win7-x64", ram="5g")
    runs = m.nt.runs
    assert runs[1][0] + runs[1][1] < 0xC0000000 and runs[2][0] == 1 << 32
    assert check(m.core, m.nt.profile, m.nt.symbols) == []


def test_same_target_and_seed_give_the_same_ram():
    first = ram_digest("win7-x86pae", "256m", "none")
    assert ram_digest("win7-x86pae", "256m", "none") == first


def test_too_little_ram_is_refused():
    with pytest.raises(ValueError, match="at least"):
        kdsim.boot("win7-x64", ram="64m")


# -- the checker must be able to fail ---------------------------------------------------

@pytest.fixture
def fresh():
    return kdsim.boot("win7-x86", ram="256m", scenario="none")


def test_checker_catches_a_wrong_pte_address(fresh):
    nt = fresh.nt
    pfn = fresh.core.translate(nt.profile.address_space.shared_user_data_va).pa >> 12
    nt.pfn.e["pte"][pfn] += 4
    assert any("PteAddress" in p for p in check(fresh.core, nt.profile, nt.symbols))


def test_checker_catches_a_broken_list_and_a_wrong_total(fresh):
    nt = fresh.nt
    first = next(nt.pfn.walk(ZEROED))
    second = int(nt.pfn.e["u1"][first])
    nt.pfn.e["u2"][second] = 0x1234
    problems = check(fresh.core, nt.profile, nt.symbols)
    assert any("Blink" in p for p in problems)
    nt.pfn.e["u2"][second] = first
    nt.pfn._set_head(ZEROED, nt.pfn.total(ZEROED) + 1, first, nt.pfn._head(ZEROED)[2])
    assert any("Total" in p for p in check(fresh.core, nt.profile, nt.symbols))


def test_checker_catches_a_page_lost_from_every_list(fresh):
    nt = fresh.nt
    nt.pfn.unlink(next(nt.pfn.walk(ZEROED)))     # off the list, but still says Zeroed
    problems = check(fresh.core, nt.profile, nt.symbols)
    assert any("neither mapped nor on a list" in p for p in problems)


def test_checker_catches_an_unmapped_active_page(fresh):
    nt = fresh.nt
    pfn = nt.pfn.pop(ZEROED)
    nt.pfn.make_active(pfn, 0xC0001000, 0, 0)
    assert any("no valid PTE maps it" in p for p in check(fresh.core, nt.profile, nt.symbols))


def test_psloadedmodulelist_has_nt_and_hal_with_their_headers(booted):
    nt, ts = booted.nt, booted.nt.ts
    k = KernelMemory(booted.core)
    head = nt.symbols["PsLoadedModuleList"]
    names, cur = [], read_ptr(booted, head)
    while cur != head:
        v = ts.view(k, "_LDR_DATA_TABLE_ENTRY", cur)
        name = k.read(int(v.BaseDllName.Buffer), int(v.BaseDllName.Length)).decode("utf-16-le")
        names.append((name, int(v.DllBase), int(v.SizeOfImage)))
        assert k.read(int(v.DllBase), 2) == b"MZ"
        cur = read_ptr(booted, cur)
    base = nt.profile.address_space.kernel_base
    assert [n for n, _, _ in names] == ["ntoskrnl.exe", "hal.dll"]
    assert names[0][1] == base and names[1][1] == base + names[0][2]


def test_long_free_runs_are_generated_on_touch_with_the_same_bytes(monkeypatch):
    """A 2 GB boot leaves most of its PFN database to be generated on first touch; the
    guest reads the very bytes an eager boot writes (same PFN database, same lists)."""
    import numpy as np

    import kdsim
    from kdsim.nt import pfn as pfn_module
    lazy = kdsim.boot("win7-x64", ram="2g", scenario="none")
    assert lazy.core.lazy_pages > 1000
    monkeypatch.setattr(pfn_module, "LAZY_RUN", 1 << 62)
    eager = kdsim.boot("win7-x64", ram="2g", scenario="none")
    assert eager.core.lazy_pages == 0
    db = lazy.nt.pfn
    n = db.count * db.lay.size
    pa = lazy.nt.pfn.pa
    assert eager.nt.pfn.pa == pa
    assert np.array_equal(lazy.core.view_physical(pa, n), eager.core.view_physical(pa, n))
    assert lazy.debugger.execute("!memusage 8") == eager.debugger.execute("!memusage 8")


@pytest.mark.parametrize("target", ["win7-x86pae", "wrk-x86"])
def test_a_4_gb_machine_boots_on_the_32_bit_targets(target):
    """The PFN database's pages need not hold a whole number of entries (a 28-byte PAE
    entry, 4 GB of RAM with the PCI window moved above it)."""
    import kdsim
    from kdsim.nt.invariants import check
    m = kdsim.boot(target, ram="4g", scenario="none")
    total = int(m.debugger.execute("!memusage 8").split("TOTAL:")[1].split()[0])
    assert total == m.nt.ram_pages()
    assert check(m.core, m.nt.profile, m.nt.symbols) == []
