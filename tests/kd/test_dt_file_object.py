"""dt on the types kdsim adds to the PDB layouts: _FILE_OBJECT (with its name shown as dt
shows a _UNICODE_STRING), _SECTION_OBJECT_POINTERS and the PEB's _PEB_LDR_DATA, read
from the objects the memory manager wrote."""
import pytest

import kdsim

FILE_OBJECT_X86 = (
    "   +0x000 Type             : 0n5\n"
    "   +0x002 Size             : 0n128\n"
    "   +0x004 DeviceObject     : (null) \n"
    "   +0x008 Vpb              : (null) \n"
    "   +0x00c FsContext        : (null) \n"
    "   +0x010 FsContext2       : (null) \n"
    "   +0x014 SectionObjectPointer : 0x86000c10 _SECTION_OBJECT_POINTERS\n"
    "   +0x018 PrivateCacheMap  : (null) \n"
    "   +0x01c FinalStatus      : 0n0\n"
    "   +0x020 RelatedFileObject : (null) \n"
    "   +0x024 LockOperation    : 0 ''\n"
    "   +0x025 DeletePending    : 0 ''\n"
    "   +0x026 ReadAccess       : 0x1 ''\n"
    "   +0x027 WriteAccess      : 0 ''\n"
    "   +0x028 DeleteAccess     : 0 ''\n"
    "   +0x029 SharedRead       : 0x1 ''\n"
    "   +0x02a SharedWrite      : 0 ''\n"
    "   +0x02b SharedDelete     : 0 ''\n"
    "   +0x02c Flags            : 0\n"
    "   +0x030 FileName         : _UNICODE_STRING \"\\Windows\\System32\\ntdll.dll\"\n"
    "   +0x038 CurrentByteOffset : _LARGE_INTEGER 0x0\n"
    "   +0x040 Waiters          : 0\n"
    "   +0x044 Busy             : 0\n"
    "   +0x048 LastLock         : (null) \n"
    "   +0x04c Lock             : _KEVENT\n"
    "   +0x05c Event            : _KEVENT\n"
    "   +0x06c CompletionContext : (null) \n"
    "   +0x070 IrpListLock      : 0\n"
    "   +0x074 IrpList          : _LIST_ENTRY [ 0x0 - 0x0 ]\n"
    "   +0x07c FileObjectExtension : (null) \n")

PEB_LDR_DATA_X86 = (
    "   +0x000 Length           : 0x30\n"
    "   +0x004 Initialized      : 0x1 ''\n"
    "   +0x008 SsHandle         : (null) \n"
    "   +0x00c InLoadOrderModuleList : _LIST_ENTRY [ 0x110030 - 0x1101d0 ]\n"
    "   +0x014 InMemoryOrderModuleList : _LIST_ENTRY [ 0x110038 - 0x1101d8 ]\n"
    "   +0x01c InInitializationOrderModuleList : _LIST_ENTRY [ 0x1100c8 - 0x1101e0 ]\n"
    "   +0x024 EntryInProgress  : (null) \n"
    "   +0x028 ShutdownInProgress : 0 ''\n"
    "   +0x02c ShutdownThreadId : (null) \n")


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86", "wrk-x86"])
def calc(request):
    m = kdsim.boot(request.param, ram="256m", scenario="none")
    return m, m.nt.spawn("calc.exe")


def test_dt_file_object_on_x86():
    m = kdsim.boot("win7-x86", ram="256m", scenario="none")
    m.nt.spawn("calc.exe")
    fo = m.nt.sections["ntdll.dll"].file_object
    assert fo == 0x86000B90
    assert m.debugger.execute(f"dt nt!_FILE_OBJECT {fo:x}") == FILE_OBJECT_X86


def test_dt_file_object_filename_names_each_sections_file(calc):
    m, _ = calc
    d, ts = m.debugger, m.nt.ts
    off = ts.offset_of("_FILE_OBJECT", "FileName")
    for sec in m.nt.sections.values():
        assert d.execute(f"dt nt!_FILE_OBJECT {sec.file_object:x} FileName") == \
            f"   +0x{off:03x} FileName : _UNICODE_STRING \"{sec.path}\"\n"
    names = {s.name: s.path for s in m.nt.sections.values()}
    windows = "\\WINDOWS\\system32" if m.target == "wrk-x86" else "\\Windows\\System32"
    assert names["ntdll.dll"] == windows + "\\ntdll.dll"
    assert names["calc.exe"] == windows + "\\calc.exe"


def test_the_wrk_file_object_ends_with_its_completion_context(calc):
    """Server 2003's FILE_OBJECT is 0x70 bytes: no IrpList or FileObjectExtension."""
    m, _ = calc
    out = m.debugger.execute(f"dt nt!_FILE_OBJECT {m.nt.sections['ntdll.dll'].file_object:x}")
    last = out.splitlines()[-1]
    if m.target == "wrk-x86":
        assert last == "   +0x06c CompletionContext : (null) "
    elif m.target == "win7-x64":
        assert last == "   +0x0d0 FileObjectExtension : (null) "


def test_section_object_pointers_lead_back_to_the_control_area(calc):
    m, _ = calc
    d, ts, ptr = m.debugger, m.nt.ts, m.nt.ptr
    sop = ts.offset_of("_FILE_OBJECT", "SectionObjectPointer")
    for sec in m.nt.sections.values():
        out = d.execute(f"dt nt!_SECTION_OBJECT_POINTERS poi({sec.file_object + sop:x})")
        rows = {line.split()[1]: line.split(": ")[1] for line in out.splitlines()}
        ca = f"0x{sec.ca:08x}" if ptr == 4 else f"0x{sec.ca >> 32:08x}`{sec.ca & 0xFFFFFFFF:08x}"
        which = "ImageSectionObject" if sec.kind == "image" else "DataSectionObject"
        assert rows[which] == ca + " Void"
        assert rows["SharedCacheMap"] == "(null) "


def test_dt_peb_ldr_and_the_loader_data(calc):
    m, proc = calc
    d = m.debugger
    d.execute(f".process /p /r {proc.ep:x}")
    off = m.nt.ts.offset_of("_PEB", "Ldr")
    ldr = "0x00110000" if m.nt.ptr == 4 else "0x00000000`00110000"
    assert d.execute("dt nt!_PEB @$peb Ldr") == f"   +0x{off:03x} Ldr : {ldr} _PEB_LDR_DATA\n"
    out = d.execute(f"dt nt!_PEB_LDR_DATA poi(@$peb+{off:x})")
    if m.target == "win7-x86":
        assert out == PEB_LDR_DATA_X86
    elif m.target == "wrk-x86":              # Server 2003's ends with EntryInProgress
        assert out.splitlines()[-1] == "   +0x024 EntryInProgress  : (null) "
    d.execute(".process 0")
