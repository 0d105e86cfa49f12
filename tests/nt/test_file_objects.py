"""File objects and loader data in guest memory: every image and data-file section's
control area points at a FILE_OBJECT (an _EX_FAST_REF on Windows 7) naming the file,
whose SECTION_OBJECT_POINTERS lead back to the control area; image segments carry their
BasedAddress and ImageCommitment, which each view charges; each process's PEB.Ldr links
one loader entry per module it maps."""
import pytest

import kdsim
from kdsim.nt.fileobject import file_path
from kdsim.nt.guest import KernelMemory
from kdsim.nt.invariants import check
from kdsim.nt.pool import PROTECTED_TAG, tag_value
from kdsim.nt import protect as pr
from kdsim.nt.profiles import get_profile

TARGETS = ["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"]


@pytest.fixture(scope="module", params=TARGETS)
def m(request):
    return kdsim.boot(request.param, ram="256m", scenario="default")


def _get(nt, type_name, va, path):
    return nt.ts.field(type_name, path).read(nt.kmem, va)


def _text(mem, va, n):
    return mem.read(va, n).decode("utf-16-le")


def test_every_file_backed_control_area_points_at_its_file_object(m):
    nt = m.nt
    win7 = not m.target.startswith("wrk")
    refs = (15 if nt.ptr == 8 else 7) if win7 else 0
    for sec in nt.sections.values():
        pointer = _get(nt, "_CONTROL_AREA", sec.ca, "FilePointer" + (".Value" if win7 else ""))
        if sec.kind == "pagefile":
            assert pointer == 0 and sec.file_object == 0
            continue
        assert pointer == sec.file_object | refs, sec.name      # the fast ref's count is full
        fo = sec.file_object
        assert _get(nt, "_FILE_OBJECT", fo, "Type") == 5
        assert _get(nt, "_FILE_OBJECT", fo, "Size") == nt.ts.sizeof("_FILE_OBJECT")
        n = _get(nt, "_FILE_OBJECT", fo, "FileName.Length")
        assert _get(nt, "_FILE_OBJECT", fo, "FileName.MaximumLength") == n + 2
        assert _text(nt.kmem, _get(nt, "_FILE_OBJECT", fo, "FileName.Buffer"), n) == sec.path
        sop = _get(nt, "_FILE_OBJECT", fo, "SectionObjectPointer")
        image, data = (_get(nt, "_SECTION_OBJECT_POINTERS", sop, f)
                       for f in ("ImageSectionObject", "DataSectionObject"))
        assert (image, data) == ((sec.ca, 0) if sec.kind == "image" else (0, sec.ca))
        header = fo - nt.ts.offset_of("_OBJECT_HEADER", "Body")
        assert _get(nt, "_OBJECT_HEADER", header, "PointerCount") == 1 + refs
        tag = int.from_bytes(nt.kmem.read(header - nt.ts.sizeof("_POOL_HEADER") +
                                          nt.ts.offset_of("_POOL_HEADER", "PoolTag"), 4),
                             "little")
        assert tag == tag_value("File") | PROTECTED_TAG
        flags = {f: _get(nt, "_CONTROL_AREA", sec.ca, "u.Flags." + f) for f in ("Image", "File")}
        assert flags == {"Image": int(sec.kind == "image"), "File": 1}


def test_image_segments_carry_their_base_and_commitment_and_views_charge_it(m):
    nt = m.nt
    for sec in nt.sections.values():
        if sec.kind != "image":
            continue
        writecopy = sum(n for _, n, prot in sec.layout if prot == pr.MM_WRITECOPY)
        assert sec.image_commitment == writecopy > 0
        assert _get(nt, "_SEGMENT", sec.segment, "BasedAddress") == sec.base
        assert _get(nt, "_SEGMENT", sec.segment, "u1.ImageCommitment") == writecopy
    for proc in nt.process_objects.values():
        for base, (sec, node) in proc.views.items():
            charge = _get(nt, "_MMVAD_SHORT", node, "u.VadFlags.CommitCharge")
            assert charge == sec.image_commitment
    assert check(m.core, nt.profile, nt.symbols) == []       # EPROCESS.CommitCharge agrees


def test_unmapping_an_image_view_gives_its_commit_back():
    m = kdsim.boot("win7-x86", ram="256m", scenario="none")
    nt = m.nt
    proc = nt.spawn("a.exe")
    before = proc.get_field("CommitCharge")
    user32 = nt.image_section("user32.dll")
    base = user32.map_view(proc)
    assert proc.get_field("CommitCharge") == before + user32.image_commitment
    user32.unmap_view(proc, base)
    assert proc.get_field("CommitCharge") == before
    assert check(m.core, nt.profile, nt.symbols) == []


def _walk(mem, ts, head, link):
    """The entries on a LIST_ENTRY ring through field ``link``, checking each Blink."""
    off = ts.offset_of("_LDR_DATA_TABLE_ENTRY", link)
    ptr = ts.pointer_size
    out, prev, cur = [], head, int.from_bytes(mem.read(head, ptr), "little")
    while cur != head:
        assert int.from_bytes(mem.read(cur + ptr, ptr), "little") == prev
        out.append(cur - off)
        prev, cur = cur, int.from_bytes(mem.read(cur, ptr), "little")
        assert len(out) < 64
    assert int.from_bytes(mem.read(head + ptr, ptr), "little") == prev
    return out


def test_each_peb_ldr_lists_the_processs_modules_in_load_order(m):
    nt, ts = m.nt, m.nt.ts
    for proc in nt.process_objects.values():
        mem = KernelMemory(m.core, proc.cr3)
        ldr = ts.field("_PEB", "Ldr").read(mem, proc.peb)
        assert ldr == proc.heap                           # the first bytes of the heap
        assert ts.field("_PEB_LDR_DATA", "Length").read(mem, ldr) == ts.sizeof("_PEB_LDR_DATA")
        assert ts.field("_PEB_LDR_DATA", "Initialized").read(mem, ldr) == 1
        heads = {name: ldr + ts.offset_of("_PEB_LDR_DATA", name) for name in (
            "InLoadOrderModuleList", "InMemoryOrderModuleList",
            "InInitializationOrderModuleList")}
        load = _walk(mem, ts, heads["InLoadOrderModuleList"], "InLoadOrderLinks")
        assert _walk(mem, ts, heads["InMemoryOrderModuleList"], "InMemoryOrderLinks") == load
        assert _walk(mem, ts, heads["InInitializationOrderModuleList"],
                     "InInitializationOrderLinks") == load[1:]     # the exe is not on it
        got = []
        for entry in load:
            f = lambda path: ts.field("_LDR_DATA_TABLE_ENTRY", path).read(mem, entry)  # noqa
            full = _text(mem, f("FullDllName.Buffer"), f("FullDllName.Length"))
            base_name = _text(mem, f("BaseDllName.Buffer"), f("BaseDllName.Length"))
            assert full.endswith("\\" + base_name) and full.startswith("C:\\")
            assert f("LoadCount") == 0xFFFF
            got.append((f("DllBase"), f("SizeOfImage"), full))
        views = {base: sec for base, (sec, _) in proc.views.items() if sec.kind == "image"}
        exe = ts.field("_PEB", "ImageBaseAddress").read(mem, proc.peb)
        assert got[0][0] == exe and views[exe].name.lower() == proc.name.lower()
        assert sorted(got) == sorted((base, sec.pages * 0x1000, "C:" + sec.path)
                                     for base, sec in views.items())


@pytest.mark.parametrize("target,name,path", [
    ("win7-x64", "ntdll.dll", "\\Windows\\System32\\ntdll.dll"),
    ("win7-x86", "explorer.exe", "\\Windows\\explorer.exe"),
    ("win7-x86", "svchost.exe", "\\Windows\\System32\\svchost.exe"),
    ("win7-x64", "setup.exe", "\\Users\\Public\\setup.exe"),
    ("win7-x64", "desktop.ini", "\\Users\\Public\\desktop.ini"),
    ("win7-x64", "disk.sys", "\\Windows\\System32\\drivers\\disk.sys"),
    ("win7-x64", "C:\\data\\log.txt", "\\data\\log.txt"),
    ("wrk-x86", "ntdll.dll", "\\WINDOWS\\system32\\ntdll.dll"),
    ("wrk-x86", "notepad.exe", "\\WINDOWS\\notepad.exe"),
    ("wrk-x86", "MemoryAlloc.exe", "\\Documents and Settings\\All Users\\MemoryAlloc.exe"),
])
def test_file_names_follow_the_systems_directories(target, name, path):
    assert file_path(get_profile(target), name) == path


def test_image_segments_point_at_their_image_information(m):
    """u2.ImageInformation: right after the prototype PTEs, what the image's headers say
    (Windows 7 wraps it in _MI_SECTION_IMAGE_INFORMATION with the headers' and the
    image's sizes; the WRK points at the _SECTION_IMAGE_INFORMATION itself)."""
    nt = m.nt
    win7 = not m.target.startswith("wrk")
    for sec in nt.sections.values():
        info = _get(nt, "_SEGMENT", sec.segment, "u2.ImageInformation")
        if sec.kind != "image":
            assert info == 0
            continue
        assert info == sec.proto + sec.pages * sec.pte_size
        kind = "_MI_SECTION_IMAGE_INFORMATION" if win7 else "_SECTION_IMAGE_INFORMATION"
        pre = "ImageInformation." if win7 else ""
        get = lambda f: _get(nt, kind, info, pre + f)  # noqa: E731
        dll = sec.name.lower().endswith(".dll")
        assert get("Machine") == (0x8664 if nt.ptr == 8 else 0x14C)
        assert get("ImageCharacteristics") == \
            0x2 | (0x20 if nt.ptr == 8 else 0x100) | (0x2000 if dll else 0)
        assert (get("ImageContainsCode"), get("ImageFileSize"), get("TransferAddress")) == \
            (1, sec.pages * 0x1000, 0)
        assert (get("MaximumStackSize"), get("CommittedStackSize")) == (0x100000, 0x1000)
        if win7:
            assert _get(nt, kind, info, "InternalImageInformation.SizeOfImage") == \
                sec.pages * 0x1000
            assert _get(nt, kind, info, "InternalImageInformation.SizeOfHeaders") == 0x1000
