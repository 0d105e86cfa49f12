"""Image sections: one prototype-PTE array per file, views in every process, shared pages
with one PFN and a share count, copy-on-write -- checked in guest memory."""
import pytest

import kdsim
from kdsim.nt.fault import access
from kdsim.nt.guest import KernelMemory
from kdsim.nt.invariants import check
from kdsim.nt.pfn import ACTIVE, STANDBY
from kdsim.nt.section import VAD_IMAGE_MAP, file_page

TARGETS = ["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"]


@pytest.fixture(params=TARGETS)
def two(request):
    m = kdsim.boot(request.param, ram="256m", scenario="none")
    nt = m.nt
    return m, nt, nt.spawn("a.exe"), nt.spawn("b.exe", dlls=["user32.dll"])


def test_a_dll_page_is_one_pfn_in_two_processes_with_share_count_2(two):
    m, nt, a, b = two
    nd = nt.image_section("ntdll.dll")
    pa, pb = (m.core.translate(nd.base, cr3=p.cr3).pa for p in (a, b))
    assert pa == pb
    pfn = pa >> 12
    assert nt.pfn.location(pfn) == ACTIVE and int(nt.pfn.e["u2"][pfn]) == 2
    assert nt.pfn.get(pfn, nt.pfn.lay.prototype) == 1
    assert int(nt.pfn.e["pte"][pfn]) == nd.proto                 # the prototype PTE
    proto = int.from_bytes(KernelMemory(m.core).read(nd.proto, nt.profile.pte_size), "little")
    assert nt.codec.decode(proto).pfn == pfn
    assert m.core.read_physical(pa, 2) == b"MZ"
    assert check(m.core, nt.profile, nt.symbols) == []


def test_the_view_is_an_image_vad_naming_the_prototype_ptes(two):
    m, nt, a, b = two
    nd = nt.image_section("ntdll.dll")
    vad = nt.vm.vad_at(a, nd.base)
    assert (vad.start, vad.end, vad.private, vad.first_proto) == \
        (nd.base, nd.base + nd.pages * 0x1000, 0, nd.proto)
    node = vad.node
    assert nt.ts.field("_MMVAD", "u.VadFlags.VadType").read(nt.kmem, node) == VAD_IMAGE_MAP
    assert nt.vm.vad_at(a, nt.image_section("user32.dll").base) is None   # only b has it
    assert nt.vm.vad_at(b, nt.image_section("user32.dll").base) is not None


def test_copy_on_write_gives_the_writer_a_private_copy(two):
    m, nt, a, b = two
    nd = nt.image_section("ntdll.dll")
    data = nd.base + (nd.pages - 1) * 0x1000                     # .data, write-copy
    original = file_page("ntdll.dll", nd.pages - 1)[:4]
    assert access(nt, a, data, 4) == (0, original)
    assert access(nt, b, data, 4) == (0, original)
    shared = m.core.translate(data, cr3=a.cr3).pa
    assert access(nt, a, data, b"mine", "w")[0] == 0
    mine = m.core.translate(data, cr3=a.cr3).pa
    assert mine != shared and m.core.translate(data, cr3=b.cr3).pa == shared
    assert access(nt, a, data, 4) == (0, b"mine") and access(nt, b, data, 4) == (0, original)
    assert int(nt.pfn.e["u2"][shared >> 12]) == 1
    assert nt.pfn.get(mine >> 12, nt.pfn.lay.prototype) == 0
    assert check(m.core, nt.profile, nt.symbols) == []


def test_a_shared_page_trimmed_from_both_goes_to_standby_and_comes_back(two):
    m, nt, a, b = two
    nd = nt.image_section("ntdll.dll")
    pfn = m.core.translate(nd.base, cr3=a.cr3).pa >> 12
    nt.trim_page(a, nd.base)
    assert nt.codec.decode(a.tables.get(nd.base)).kind == "prototype"
    assert int(nt.pfn.e["u2"][pfn]) == 1 and nt.pfn.location(pfn) == ACTIVE
    nt.trim_page(b, nd.base)
    assert nt.pfn.location(pfn) == STANDBY
    assert check(m.core, nt.profile, nt.symbols) == []
    assert access(nt, a, nd.base, 2) == (0, b"MZ")
    assert m.core.translate(nd.base, cr3=a.cr3).pa >> 12 == pfn          # a soft fault
    nt.trim_page(a, nd.base)
    nt.repurpose(nt.pfn.total(STANDBY))
    assert access(nt, b, nd.base, 2) == (0, b"MZ")                       # read from the file
    assert check(m.core, nt.profile, nt.symbols) == []


def test_terminating_both_leaves_the_section_pages_on_standby(two):
    m, nt, a, b = two
    nd = nt.image_section("ntdll.dll")
    pfn = m.core.translate(nd.base, cr3=a.cr3).pa >> 12
    nt.terminate(a)
    nt.terminate(b)
    assert nt.pfn.location(pfn) == STANDBY
    assert check(m.core, nt.profile, nt.symbols) == []


def test_pagefile_backed_section_is_shared_memory_that_survives_a_page_out(two):
    m, nt, a, b = two
    sec = nt.create_section("SharedMem", 4)
    va, vb = sec.map_view(a), sec.map_view(b)
    assert access(nt, a, va + 0x10, b"written by a", "w")[0] == 0
    assert access(nt, b, vb + 0x10, 12) == (0, b"written by a")
    assert m.core.translate(va, cr3=a.cr3).pa == m.core.translate(vb, cr3=b.cr3).pa
    nt.trim_page(a, va)
    nt.trim_page(b, vb)
    assert nt.write_modified() >= 1
    nt.repurpose(nt.pfn.total(STANDBY))
    proto = nt.codec.decode(int.from_bytes(KernelMemory(m.core).read(sec.proto,
                                                                     nt.profile.pte_size),
                                           "little"), in_prototype_array=True)
    assert proto.kind == "pagefile"
    assert check(m.core, nt.profile, nt.symbols) == []
    assert access(nt, b, vb + 0x10, 12) == (0, b"written by a")
    sec.unmap_view(a, va)
    sec.unmap_view(b, vb)
    assert nt.paging_files[0].used == 0 and "sharedmem" not in nt.sections
    assert check(m.core, nt.profile, nt.symbols) == []


def test_mapped_data_file_pages_are_written_back_to_the_file(two):
    m, nt, a, b = two
    f = nt.create_section("notes.txt", 2, kind="file")
    v = f.map_view(a)
    assert access(nt, a, v, 16) == (0, b"notes.txt page 0")
    assert access(nt, a, v, b"NOTES", "w")[0] == 0
    nt.trim_page(a, v)
    assert nt.write_modified() == 1
    assert f.written[0].startswith(b"NOTES.txt page 0")
    nt.repurpose(nt.pfn.total(STANDBY))
    w = f.map_view(b)
    assert access(nt, b, w, 9) == (0, b"NOTES.txt")
    assert check(m.core, nt.profile, nt.symbols) == []


def test_protecting_a_view_page_as_write_copy_then_writing_gives_a_private_copy(two):
    from kdsim.nt import protect as pr
    m, nt, a, b = two
    sec = nt.create_section("Shared2", 2)
    va, vb = sec.map_view(a), sec.map_view(b)
    assert access(nt, a, va, b"both see this", "w")[0] == 0
    r = nt.vm.protect(b, vb, 0x1000, pr.PAGE_WRITECOPY)
    assert (r.status, r.old_protect) == (0, pr.PAGE_READWRITE)
    assert access(nt, b, vb, b"only b", "w")[0] == 0
    assert access(nt, b, vb, 13) == (0, b"only bee this")
    assert access(nt, a, va, 13) == (0, b"both see this")
    assert nt.vm.protect(b, vb + 0x1000, 0x1000, pr.PAGE_READONLY).ok
    assert nt.codec.decode(b.tables.get(vb + 0x1000) or 0).kind == "vad_prototype"
    assert access(nt, b, vb + 0x1000, b"x", "w")[0] == pr.STATUS_ACCESS_VIOLATION
    assert access(nt, b, vb + 0x1000, 1)[0] == 0
    assert access(nt, a, va + 0x1000, b"a writes", "w")[0] == 0          # a still may
    nt.trim_page(b, vb + 0x1000)                                          # keeps read-only
    assert access(nt, b, vb + 0x1000, b"x", "w")[0] == pr.STATUS_ACCESS_VIOLATION
    assert check(m.core, nt.profile, nt.symbols) == []


def test_an_image_view_cannot_be_made_writable_except_copy_on_write(two):
    from kdsim.nt import protect as pr
    m, nt, a, b = two
    nd = nt.image_section("ntdll.dll")
    assert nt.vm.protect(a, nd.base, 0x1000, pr.PAGE_READWRITE).status == \
        pr.STATUS_SECTION_PROTECTION
    r = nt.vm.protect(a, nd.base + 0x1000, 0x1000, pr.PAGE_EXECUTE_WRITECOPY)
    assert (r.status, r.old_protect) == (0, pr.PAGE_EXECUTE_READ)
    assert access(nt, a, nd.base + 0x1000, b"\xcc", "w")[0] == 0         # a breakpoint
    assert access(nt, b, nd.base + 0x1000, 1)[1] != b"\xcc"
    r = nt.vm.protect(a, nd.base, 0x1000, pr.PAGE_NOACCESS)
    assert access(nt, a, nd.base, 1)[0] == pr.STATUS_ACCESS_VIOLATION
    assert access(nt, b, nd.base, 2) == (0, b"MZ")
    assert check(m.core, nt.profile, nt.symbols) == []


def _resident_section_pages(nt, section) -> int:
    """Pages of ``section`` in memory, counted in the PFN database: prototype pages whose
    PteAddress lies in its prototype-PTE array, active or on the standby/modified list."""
    from kdsim.nt.pfn import MODIFIED
    e = nt.pfn.e
    import numpy as np
    pte = e["pte"].astype(np.uint64)
    lo = np.uint64(section.proto)
    inside = (pte >= lo) & (pte < lo + np.uint64(section.pages * section.pte_size))
    n = 0
    for pfn in inside.nonzero()[0]:
        if nt.pfn.get(int(pfn), nt.pfn.lay.prototype) and \
                nt.pfn.location(int(pfn)) in (ACTIVE, STANDBY, MODIFIED):
            n += 1
    return n


def test_number_of_pfn_references_counts_the_sections_pages_in_memory(two):
    m, nt, a, b = two
    nd = nt.image_section("ntdll.dll")
    f = nt.ts.field("_CONTROL_AREA", "NumberOfPfnReferences")

    def refs():
        return f.read(nt.kmem, nd.ca)
    assert refs() == _resident_section_pages(nt, nd) >= 2      # headers and first code page
    nt.trim_page(a, nd.base)
    nt.trim_page(b, nd.base)
    assert refs() == _resident_section_pages(nt, nd)          # standby pages still count
    before = refs()
    nt.repurpose(nt.pfn.total(STANDBY))
    assert refs() == _resident_section_pages(nt, nd) == before - 1
    assert access(nt, b, nd.base, 2) == (0, b"MZ")            # read from the file again
    assert refs() == _resident_section_pages(nt, nd) == before
