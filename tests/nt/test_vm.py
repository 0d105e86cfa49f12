"""Processes and private memory: VirtualAlloc/Free/Protect, page faults, trimming --
each result checked through guest memory (PTEs, VADs, the PFN database)."""
import pytest

import kdsim
from kdsim.nt import protect as pr
from kdsim.nt.fault import access
from kdsim.nt.invariants import check
from kdsim.nt.pfn import ACTIVE, MODIFIED, STANDBY

TARGETS = ["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"]
BASE = 0x340000


@pytest.fixture(params=TARGETS)
def sysp(request):
    m = kdsim.boot(request.param, ram="256m", scenario="none")
    return m, m.nt, m.nt.spawn("MemoryAlloc.exe")


def kind(nt, proc, va):
    pte = proc.tables.get(va)
    return nt.codec.decode(pte or 0).kind


def test_a_reservation_is_a_vad_without_commit_and_touching_it_is_an_access_violation(sysp):
    m, nt, p = sysp
    r = nt.vm.allocate(p, 0x1000, BASE + 0x123, commit=False)
    assert (r.status, r.base, r.size) == (0, BASE, 0x2000 - 0x0)  # 64 KB aligned, whole pages
    vad = nt.vm.vad_at(p, BASE)
    assert (vad.start, vad.end, vad.mem_commit, vad.private) == (BASE, BASE + 0x2000, 0, 1)
    assert access(nt, p, BASE, 1)[0] == pr.STATUS_ACCESS_VIOLATION
    assert check(m.core, nt.profile, nt.symbols) == []


def test_committed_page_is_demand_zero_then_valid_and_modified_after_a_read(sysp):
    m, nt, p = sysp
    nt.vm.allocate(p, 0x10000, BASE, commit=False)
    assert nt.vm.allocate(p, 0x1000, BASE, reserve=False).ok
    assert kind(nt, p, BASE) == "demand_zero"
    status, data = access(nt, p, BASE, 8)
    assert (status, data) == (0, bytes(8))
    pte = nt.codec.decode(p.tables.get(BASE))
    # MiResolveDemandZeroFault: MiInitializePfn(..., 1), and a writable page's PTE is
    # made dirty -- even though the access was a read.
    assert pte.kind == "valid" and pte.dirty and pte.owner
    assert nt.pfn.location(pte.pfn) == ACTIVE
    assert nt.pfn.get(pte.pfn, nt.pfn.lay.modified) == 1
    assert int(nt.pfn.e["pte"][pte.pfn]) == nt.profile.pte_address(BASE)
    assert check(m.core, nt.profile, nt.symbols) == []


def test_a_read_only_demand_zero_page_is_modified_but_its_pte_is_not_dirty(sysp):
    m, nt, p = sysp
    nt.vm.allocate(p, 0x1000, BASE, protect=pr.PAGE_READONLY)
    assert access(nt, p, BASE, 1) == (0, b"\0")
    pte = nt.codec.decode(p.tables.get(BASE))
    assert pte.kind == "valid" and not pte.dirty
    assert nt.pfn.get(pte.pfn, nt.pfn.lay.modified) == 1
    nt.trim_page(p, BASE)                        # no copy anywhere: the modified list
    assert nt.pfn.location(pte.pfn) == MODIFIED


def test_first_write_to_a_clean_page_sets_the_dirty_bits(sysp):
    m, nt, p = sysp
    nt.vm.allocate(p, 0x1000, BASE)
    access(nt, p, BASE, b"v", "w")
    nt.trim_page(p, BASE)                        # dirty: the modified list
    nt.write_modified()                          # written out: standby, clean
    assert access(nt, p, BASE, 1) == (0, b"v")  # soft fault: valid, clean (Write bit only)
    assert not nt.codec.decode(p.tables.get(BASE)).dirty
    before = nt.faults.counts["dirty bit"]
    assert access(nt, p, BASE, b"w", "w")[0] == 0
    assert nt.codec.decode(p.tables.get(BASE)).dirty
    assert nt.faults.counts["dirty bit"] == before + 1
    assert check(m.core, nt.profile, nt.symbols) == []


def test_trimmed_pages_come_back_by_soft_fault_with_their_bytes(sysp):
    m, nt, p = sysp
    nt.vm.allocate(p, 0x2000, BASE)
    access(nt, p, BASE, b"dirty page", "w")
    access(nt, p, BASE + 0x1000, 4)              # only read, but born modified
    nt.trim_page(p, BASE)
    nt.trim_page(p, BASE + 0x1000)
    d0, d1 = (nt.codec.decode(p.tables.get(v)) for v in (BASE, BASE + 0x1000))
    assert (d0.kind, d1.kind) == ("transition", "transition")
    assert (nt.pfn.location(d0.pfn), nt.pfn.location(d1.pfn)) == (MODIFIED, MODIFIED)
    nt.write_modified(1)                         # the modified page writer takes the first
    assert (nt.pfn.location(d0.pfn), nt.pfn.location(d1.pfn)) == (STANDBY, MODIFIED)
    assert check(m.core, nt.profile, nt.symbols) == []
    assert access(nt, p, BASE, 10) == (0, b"dirty page")
    assert nt.codec.decode(p.tables.get(BASE)).pfn == d0.pfn
    assert access(nt, p, BASE + 0x1000, 4) == (0, bytes(4))
    assert nt.codec.decode(p.tables.get(BASE + 0x1000)).pfn == d1.pfn
    assert check(m.core, nt.profile, nt.symbols) == []


def test_guard_page_fails_once_then_works(sysp):
    m, nt, p = sysp
    nt.vm.allocate(p, 0x1000, BASE, protect=pr.PAGE_READWRITE | pr.PAGE_GUARD)
    assert access(nt, p, BASE, 1)[0] == pr.STATUS_GUARD_PAGE_VIOLATION
    assert access(nt, p, BASE, 1)[0] == pr.STATUS_SUCCESS


def test_protect_returns_the_old_protection_and_read_only_refuses_writes(sysp):
    m, nt, p = sysp
    nt.vm.allocate(p, 0x2000, BASE)
    access(nt, p, BASE, b"x", "w")
    r = nt.vm.protect(p, BASE, 0x2000, pr.PAGE_READONLY)
    assert (r.status, r.old_protect) == (0, pr.PAGE_READWRITE)
    assert access(nt, p, BASE, b"y", "w")[0] == pr.STATUS_ACCESS_VIOLATION
    assert access(nt, p, BASE, 1) == (0, b"x")
    assert nt.vm.protect(p, BASE, 0x1000, pr.PAGE_NOACCESS).ok
    assert kind(nt, p, BASE) == "transition"     # made invalid, like Windows
    assert access(nt, p, BASE, 1)[0] == pr.STATUS_ACCESS_VIOLATION
    assert nt.vm.protect(p, BASE, 0x1000, pr.PAGE_READWRITE).old_protect == pr.PAGE_NOACCESS
    assert access(nt, p, BASE, 1) == (0, b"x")
    assert check(m.core, nt.profile, nt.symbols) == []


def test_decommit_and_release(sysp):
    m, nt, p = sysp
    nt.vm.allocate(p, 0x3000, BASE)
    access(nt, p, BASE, b"abc", "w")
    commit = p.get_field("CommitCharge")
    assert nt.vm.free(p, BASE, 0x1000, release=False).ok
    assert p.get_field("CommitCharge") == commit - 1
    assert access(nt, p, BASE, 1)[0] == pr.STATUS_ACCESS_VIOLATION
    assert nt.vm.free(p, BASE + 0x1000).status == pr.STATUS_FREE_VM_NOT_AT_BASE
    assert nt.vm.free(p, BASE).ok
    assert nt.vm.vad_at(p, BASE) is None
    assert p.get_field("CommitCharge") == commit - 3
    assert nt.vm.free(p, BASE).status == pr.STATUS_MEMORY_NOT_ALLOCATED
    assert check(m.core, nt.profile, nt.symbols) == []


def test_conflicts_and_bad_protections(sysp):
    m, nt, p = sysp
    assert nt.vm.allocate(p, 0x1000, BASE).ok
    assert nt.vm.allocate(p, 0x1000, BASE + 0x800).status == pr.STATUS_CONFLICTING_ADDRESSES
    assert nt.vm.allocate(p, 0x1000, 0x500000, reserve=False).status == \
        pr.STATUS_CONFLICTING_ADDRESSES
    assert nt.vm.allocate(p, 0x1000, protect=0x1234).status == pr.STATUS_INVALID_PAGE_PROTECTION


def test_commit_beyond_the_limit_fails(sysp):
    m, nt, p = sysp
    limit = nt.read_ptr(nt.symbols["MmTotalCommitLimit"])
    used = nt.read_ptr(nt.symbols["MmTotalCommittedPages"])
    assert limit > nt.ram_pages()                    # RAM plus the paging file
    r = nt.vm.allocate(p, (limit - used + 1) * 0x1000)
    assert r.status == pr.STATUS_COMMITMENT_LIMIT
    assert nt.vm.allocate(p, (limit - used) * 0x1000, commit=False).ok   # reserving is free
    assert nt.vm.allocate(p, 0x1000).ok


def test_top_down_allocation_takes_the_highest_free_64k(sysp):
    m, nt, p = sysp
    r = nt.vm.allocate(p, 0x1000, top_down=True)
    assert r.ok and r.base % 0x10000 == 0
    assert r.base + 0x10000 > nt.profile.address_space.highest_vad_address - 0x100000


def test_processes_are_isolated_and_terminate_frees_their_pages(sysp):
    m, nt, p = sysp
    q = nt.spawn("other.exe")
    for proc, text in ((p, b"in p"), (q, b"in q")):
        nt.vm.allocate(proc, 0x1000, BASE)
        access(nt, proc, BASE, text, "w")
    assert access(nt, p, BASE, 4) == (0, b"in p")
    assert access(nt, q, BASE, 4) == (0, b"in q")
    avail = nt.pfn.total(0) + nt.pfn.total(1)
    nt.terminate(q)
    assert nt.pfn.total(0) + nt.pfn.total(1) > avail
    assert access(nt, p, BASE, 4) == (0, b"in p")
    assert check(m.core, nt.profile, nt.symbols) == []


def test_paged_out_page_comes_back_by_hard_fault_and_dirtying_frees_its_slot(sysp):
    m, nt, p = sysp
    pf = nt.paging_files[0]
    nt.vm.allocate(p, 0x1000, BASE)
    access(nt, p, BASE, b"to the paging file", "w")
    nt.trim_page(p, BASE)
    assert nt.write_modified() == 1 and pf.used == 1
    assert nt.pfn.location(nt.codec.decode(p.tables.get(BASE)).pfn) == STANDBY
    nt.repurpose(nt.pfn.total(STANDBY))
    d = nt.codec.decode(p.tables.get(BASE))
    assert (d.kind, d.page_file_low) == ("pagefile", 0)
    assert check(m.core, nt.profile, nt.symbols) == []
    assert access(nt, p, BASE, 18) == (0, b"to the paging file")
    assert nt.faults.counts["hard fault"] == 1 and pf.used == 1    # the copy stays valid
    access(nt, p, BASE, b"T", "w")
    assert pf.used == 0                                              # MiSetDirtyBit
    assert check(m.core, nt.profile, nt.symbols) == []


def test_zero_page_thread_moves_free_pages_to_the_zeroed_list(sysp):
    m, nt, p = sysp
    nt.vm.allocate(p, 0x4000, BASE)
    access(nt, p, BASE, b"\xff" * 0x4000, "w")
    nt.vm.free(p, BASE)
    free = nt.pfn.total(1)
    assert free >= 4
    first = next(nt.pfn.walk(1))
    assert nt.zero_pages() == free and nt.pfn.total(1) == 0
    assert m.core.read_physical(first * 0x1000, 0x1000) == bytes(0x1000)
    assert check(m.core, nt.profile, nt.symbols) == []


def test_checker_catches_a_wrong_commit_charge_a_working_set_and_a_vad_tree(sysp):
    m, nt, p = sysp
    assert check(m.core, nt.profile, nt.symbols) == []
    p.set_field("CommitCharge", p.get_field("CommitCharge") + 1)
    assert any("CommitCharge" in x for x in check(m.core, nt.profile, nt.symbols))
    p.set_field("CommitCharge", p.get_field("CommitCharge") - 1)
    p.set_field("Vm.WorkingSetSize", p.get_field("Vm.WorkingSetSize") + 1)
    assert any("WorkingSetSize" in x for x in check(m.core, nt.profile, nt.symbols))
    p.set_field("Vm.WorkingSetSize", p.get_field("Vm.WorkingSetSize") - 1)
    root = p.vads.root
    f = nt.ts.field("_MMVAD_SHORT", "EndingVpn")
    f.write(nt.kmem, root, f.read(nt.kmem, root) + 0x100000)      # overlaps its right side
    assert any("VAD tree" in x for x in check(m.core, nt.profile, nt.symbols))


def test_private_memory_refuses_write_copy(sysp):
    m, nt, p = sysp
    assert nt.vm.allocate(p, 0x1000, protect=pr.PAGE_WRITECOPY).status == \
        pr.STATUS_INVALID_PAGE_PROTECTION
    assert nt.vm.allocate(p, 0x1000, BASE).ok
    assert nt.vm.protect(p, BASE, 0x1000, pr.PAGE_EXECUTE_WRITECOPY).status == \
        pr.STATUS_INVALID_PAGE_PROTECTION


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", ["r", "w"])
def test_touching_a_range_leaves_guest_ram_as_one_access_at_a_time_does(target, kind):
    from kdsim.nt.fault import touch
    from tests.nt.helpers import ram_digest_of

    def run(bulk):
        m = kdsim.boot(target, ram="256m", scenario="none")
        nt = m.nt
        p = nt.spawn("t.exe")
        nt.vm.allocate(p, 0x30000, BASE, commit=False)
        nt.vm.allocate(p, 0x8000, BASE, reserve=False)               # demand-zero PTEs
        nt.vm.allocate(p, 0x8000, BASE + 0x8000, reserve=False, protect=pr.PAGE_READONLY)
        nt.vm.allocate(p, 0x4000, BASE + 0x20000, reserve=False,
                       protect=pr.PAGE_READWRITE | pr.PAGE_GUARD)
        nt.vm.allocate(p, 0x10000, BASE + 0x10000, reserve=False)
        if bulk:
            got = touch(nt, p, BASE, 0x30000, kind)
        else:
            got = None
            for i in range(0x30):           # fresh pages: writing a zero keeps them as they are
                page = BASE + i * 0x1000
                status, _ = access(nt, p, page, b"\0", "w") if kind == "w" else \
                    access(nt, p, page, 1)
                if status:
                    got = (status, i)
                    break
        assert check(m.core, nt.profile, nt.symbols) == []
        return got, ram_digest_of(m), dict(nt.faults.counts)

    bulk, single = run(True), run(False)
    expected = (pr.STATUS_GUARD_PAGE_VIOLATION, 0x20) if kind == "r" else \
        (pr.STATUS_ACCESS_VIOLATION, 0x8)                # writing the read-only pages
    assert bulk[0] == expected and single[0] == expected
    assert bulk[1] == single[1]                          # byte-identical guest RAM
    assert bulk[2] == single[2]                          # the same faults, by kind


def test_a_running_process_keeps_its_tlb_and_a_switch_flushes_it(sysp):
    m, nt, p = sysp
    q = nt.spawn("q.exe")
    nt.vm.allocate(p, 0x1000, BASE)
    access(nt, p, BASE, b"p", "w")
    access(nt, p, BASE, 1)
    t = m.core.translate(BASE, user=True, probe=False)
    assert t.tlb_hit                                   # no CR3 reload between accesses
    access(nt, q, 0x7FFE0000, 1)                       # another process runs
    assert m.core.cr3 == q.cr3
    t = m.core.translate(BASE, user=True, probe=False)  # p's entry went with the CR3 load
    assert not t.ok and not t.tlb_hit


def test_releasing_part_of_a_reservation_shrinks_or_splits_its_vad(sysp):
    from kdsim.nt.fault import touch
    m, nt, p = sysp
    nt.vm.allocate(p, 0x10000, BASE)
    touch(nt, p, BASE, 0x10000, "w")
    charge = p.get_field("CommitCharge")
    assert nt.vm.free(p, BASE + 0x4000, 0x2000).ok                      # the middle
    left, right = nt.vm.vad_at(p, BASE), nt.vm.vad_at(p, BASE + 0x6000)
    assert (left.start, left.end, right.start, right.end) == \
        (BASE, BASE + 0x4000, BASE + 0x6000, BASE + 0x10000)
    assert (left.commit_charge, right.commit_charge) == (4, 10)
    assert nt.vm.vad_at(p, BASE + 0x4000) is None
    assert p.get_field("CommitCharge") == charge - 2
    assert access(nt, p, BASE + 0x4000, 1)[0] == pr.STATUS_ACCESS_VIOLATION
    assert nt.vm.free(p, BASE, 0x1000).ok                               # the front
    assert nt.vm.vad_at(p, BASE + 0x1000).start == BASE + 0x1000
    assert nt.vm.free(p, BASE + 0x2000).status == pr.STATUS_FREE_VM_NOT_AT_BASE
    assert check(m.core, nt.profile, nt.symbols) == []


def test_a_page_tables_share_count_counts_the_pages_it_names(sysp):
    m, nt, p = sysp
    nt.vm.allocate(p, 0x4000, BASE)
    access(nt, p, BASE + 0x3000, b"x", "w")              # the page table comes to be
    pt = p.tables.leaf(BASE) >> 12
    before = int(nt.pfn.e["u2"][pt])
    for i in range(3):
        access(nt, p, BASE + i * 0x1000, b"x", "w")
    assert int(nt.pfn.e["u2"][pt]) == before + 3          # MiInitializePfn, three times
    nt.trim_page(p, BASE)                                 # transition: still named from it
    assert int(nt.pfn.e["u2"][pt]) == before + 3
    nt.vm.free(p, BASE + 0x1000, 0x1000, release=False)   # freed: no longer
    assert int(nt.pfn.e["u2"][pt]) == before + 2
    assert check(m.core, nt.profile, nt.symbols) == []
    nt.pfn.e["u2"][pt] += 1
    assert any("ShareCount" in x for x in check(m.core, nt.profile, nt.symbols))


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86pae"])
def test_executing_no_execute_memory_fails_without_making_pages(target):
    import kdsim
    from kdsim.nt import protect as pr
    from kdsim.nt.fault import touch
    from kdsim.nt.invariants import check
    m = kdsim.boot(target, ram="256m", scenario="none")
    nt = m.nt
    p = nt.spawn("nx.exe")
    r = nt.vm.allocate(p, 0x4000, protect=pr.PAGE_READWRITE)
    assert touch(nt, p, r.base, 0x4000, "x") == (pr.STATUS_ACCESS_VIOLATION, 0)
    assert nt.codec.decode(p.tables.get(r.base) or 0).kind in ("zero", "demand_zero")
    x = nt.vm.allocate(p, 0x4000, protect=pr.PAGE_EXECUTE_READWRITE)
    assert touch(nt, p, x.base, 0x4000, "x") == (pr.STATUS_SUCCESS, 4)
    assert check(m.core, nt.profile, nt.symbols) == []


def test_taking_a_page_repurposes_standby_when_nothing_is_free():
    import kdsim
    from kdsim.nt.pfn import FREE, STANDBY, ZEROED
    m = kdsim.boot("win7-x86", ram="256m", scenario="none")
    nt = m.nt
    p = nt.spawn("a.exe")
    nt.trim_page(p, p.peb)                     # a page goes to standby or modified
    nt.write_modified()
    assert nt.pfn.total(STANDBY) >= 1
    while nt.pfn.total(ZEROED) or nt.pfn.total(FREE):
        nt.take_page()
    standby = nt.pfn.total(STANDBY)
    nt.take_page()                             # from standby now, not MemoryError
    assert nt.pfn.total(STANDBY) == standby - 1


def test_protecting_a_page_read_back_from_the_paging_file_keeps_its_slot():
    import kdsim
    from kdsim.nt import protect as pr
    from kdsim.nt.fault import access
    from kdsim.nt.invariants import check
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    nt = m.nt
    p = nt.spawn("a.exe")
    r = nt.vm.allocate(p, 0x1000, protect=pr.PAGE_READWRITE)
    assert access(nt, p, r.base, b"kdsm", "w")[0] == 0
    nt.trim_page(p, r.base)
    nt.write_modified()
    nt.repurpose(nt.pfn.total(STANDBY))                  # now only in the paging file
    assert access(nt, p, r.base, 4) == (0, b"kdsm")      # a hard fault brings it back
    assert nt.vm.protect(p, r.base, 0x1000, pr.PAGE_READONLY).status == 0
    assert check(m.core, nt.profile, nt.symbols) == []   # the slot is still named
    nt.trim_page(p, r.base)
    nt.repurpose(nt.pfn.total(STANDBY))
    assert access(nt, p, r.base, 4) == (0, b"kdsm")      # from the paging file again
    assert check(m.core, nt.profile, nt.symbols) == []
