"""File objects: the FILE_OBJECT behind every image and data-file section.

A control area's FilePointer names the file the section maps, and the file's
SECTION_OBJECT_POINTERS lead back to the control area (ImageSectionObject for an image,
DataSectionObject for a data file) -- nt-structures.md §9.1.  kdsim writes one FILE_OBJECT
per section, an executive object in nonpaged pool (pool tag 'File', an _OBJECT_HEADER in
front), and keeps its SECTION_OBJECT_POINTERS and its name buffer in the same block (a
real one has them in the file system's FCB and in a pool block of their own: kdsim's
choice, so one allocation carries a file).

Full names, as FILE_OBJECT.FileName holds them (the path on the volume, without the
drive; the Windows directory is ``\\Windows`` on Windows 7 and ``\\WINDOWS`` on the
Server 2003 WRK, its system directory ``System32`` / ``system32``) -- kdsim's choices:

* a name with a backslash is a path already (a leading ``C:`` is dropped);
* DLLs (and .sys) are in the system directory: ``\\Windows\\System32\\ntdll.dll``;
* the shell and the programs Windows keeps in its own directory (explorer, notepad,
  regedit, hh, winhlp32) are there: ``\\Windows\\explorer.exe``;
* Windows' own processes (smss, csrss, wininit, winlogon, services, lsass, lsm,
  svchost, ...) are in the system directory;
* anything else -- a program the user runs, a data file -- is in a folder of the user
  profile: ``\\Users\\Public\\setup.exe``, ``\\Users\\Public\\desktop.ini`` (Windows 7),
  ``\\Documents and Settings\\All Users\\MemoryAlloc.exe`` (the WRK).
"""
from __future__ import annotations

from .pool import PROTECTED_TAG, tag_value

IO_TYPE_FILE = 5                     # FILE_OBJECT.Type (wdm.h IO_TYPE_FILE)
WINDOWS_DIR_PROGRAMS = {"explorer.exe", "notepad.exe", "regedit.exe", "hh.exe",
                        "winhlp32.exe"}
SYSTEM_PROGRAMS = {"smss.exe", "csrss.exe", "wininit.exe", "winlogon.exe", "services.exe",
                   "lsass.exe", "lsm.exe", "svchost.exe", "spoolsv.exe", "taskhost.exe",
                   "dwm.exe", "conhost.exe", "cmd.exe", "userinit.exe", "taskmgr.exe",
                   "calc.exe", "mspaint.exe", "alg.exe", "wuauclt.exe", "rundll32.exe"}


def file_path(profile, name: str) -> str:
    """The FILE_OBJECT name kdsim gives the file ``name`` on ``profile``'s system."""
    if "\\" in name:
        path = name[2:] if len(name) > 1 and name[1] == ":" else name
        return path if path.startswith("\\") else "\\" + path
    wrk = profile.name.startswith("wrk")
    windows = "\\WINDOWS" if wrk else "\\Windows"
    system = windows + ("\\system32" if wrk else "\\System32")
    users = "\\Documents and Settings\\All Users" if wrk else "\\Users\\Public"
    low = name.lower()
    if low.endswith(".sys"):
        return f"{system}\\drivers\\{name}"
    if low.endswith(".dll") or low in SYSTEM_PROGRAMS:
        return f"{system}\\{name}"
    if low in WINDOWS_DIR_PROGRAMS:
        return f"{windows}\\{name}"
    return f"{users}\\{name}"


def fast_ref_count(ts) -> int:
    """MAX_FAST_REFS: the references an _EX_FAST_REF caches in its low bits (7 on x86,
    15 on x64); 0 where FilePointer is a plain pointer (the WRK).  ObInitializeFastReference
    leaves the count full, and the object's PointerCount includes them."""
    if not ts.has_field("_CONTROL_AREA", "FilePointer.RefCnt"):
        return 0
    return (1 << ts.field("_CONTROL_AREA", "FilePointer.RefCnt").bit_width) - 1


def create_file_object(system, path: str) -> tuple[int, int]:
    """Write a FILE_OBJECT named ``path`` (with its SECTION_OBJECT_POINTERS and name);
    returns (the FILE_OBJECT's VA, the SECTION_OBJECT_POINTERS' VA)."""
    ts, kmem = system.ts, system.kmem
    body_off = ts.offset_of("_OBJECT_HEADER", "Body")
    fo_size, sop_size = ts.sizeof("_FILE_OBJECT"), ts.sizeof("_SECTION_OBJECT_POINTERS")
    name = path.encode("utf-16-le")
    block = system.nonpaged_pool.alloc(body_off + fo_size + sop_size + len(name) + 2,
                                       tag_value("File") | PROTECTED_TAG)
    fo = block + body_off
    sop = fo + fo_size
    buf = sop + sop_size
    kmem.write(block, ts.pack("_OBJECT_HEADER", {
        "PointerCount": 1 + fast_ref_count(ts), "HandleCount": 0})[:body_off])
    kmem.write(fo, ts.pack("_FILE_OBJECT", {
        "Type": IO_TYPE_FILE, "Size": fo_size, "SectionObjectPointer": sop,
        "ReadAccess": 1, "SharedRead": 1,
        "FileName.Length": len(name), "FileName.MaximumLength": len(name) + 2,
        "FileName.Buffer": buf}))
    kmem.write(buf, name + b"\0\0")
    return fo, sop


def free_file_object(system, fo: int) -> None:
    system.nonpaged_pool.free(fo - system.ts.offset_of("_OBJECT_HEADER", "Body"))
