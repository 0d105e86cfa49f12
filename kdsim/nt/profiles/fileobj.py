"""``_FILE_OBJECT``, ``_SECTION_OBJECT_POINTERS`` and ``_KEVENT``: the file side of a section.

The reference's layouts come from the memory-manager PDB dumps and do not include these
(``_CONTROL_AREA.FilePointer`` and ``_MMPAGING_FILE.File`` only point at a _FILE_OBJECT),
so kdsim states them here, in the *.types.json schema, from their public definitions
(wdm.h's FILE_OBJECT and SECTION_OBJECT_POINTERS; ``dt nt!_FILE_OBJECT`` as published
for Windows 7 and for Server 2003, whose FILE_OBJECT is 0x70 bytes and ends with
CompletionContext -- IrpListLock, IrpList and FileObjectExtension came with Vista).
Offsets: x86 SectionObjectPointer +0x14, FileName +0x30, size 0x80 (Win7) / 0x70 (WRK);
x64 +0x28, +0x58, size 0xd8.  ``_KEVENT`` is a bare dispatcher header (its only member).
"""
from __future__ import annotations


def _base(name: str, size: int) -> dict:
    return {"kind": "base", "name": name, "size": size}


def _ptr(p: int, to: str | None = None) -> dict:
    target = {"kind": "struct", "name": to} if to else {"kind": "void"}
    return {"kind": "pointer", "size": p, "to": target}


def _struct(fields, size: int) -> dict:
    return {"kind": "struct", "size": size,
            "fields": [{"name": n, "offset": o, "type": t} for n, o, t in fields]}


def kevent(dispatcher_header_size: int) -> dict:
    return _struct([("Header", 0, {"kind": "struct", "name": "_DISPATCHER_HEADER"})],
                   dispatcher_header_size)


def section_object_pointers(p: int) -> dict:
    return _struct([("DataSectionObject", 0, _ptr(p)), ("SharedCacheMap", p, _ptr(p)),
                    ("ImageSectionObject", 2 * p, _ptr(p))], 3 * p)


def file_object(p: int, vista_or_later: bool) -> dict:
    uchar, ulong = _base("unsigned char", 1), _base("unsigned long", 4)
    ev = 0x10 if p == 4 else 0x18                     # sizeof(KEVENT)
    us = 8 if p == 4 else 16                          # sizeof(UNICODE_STRING)
    fields = [("Type", 0, _base("short", 2)), ("Size", 2, _base("short", 2)),
              ("DeviceObject", p, _ptr(p, "_DEVICE_OBJECT")), ("Vpb", 2 * p, _ptr(p, "_VPB")),
              ("FsContext", 3 * p, _ptr(p)), ("FsContext2", 4 * p, _ptr(p)),
              ("SectionObjectPointer", 5 * p, _ptr(p, "_SECTION_OBJECT_POINTERS")),
              ("PrivateCacheMap", 6 * p, _ptr(p)), ("FinalStatus", 7 * p, _base("long", 4)),
              ("RelatedFileObject", 8 * p, _ptr(p, "_FILE_OBJECT"))]
    o = 9 * p
    for name in ("LockOperation", "DeletePending", "ReadAccess", "WriteAccess",
                 "DeleteAccess", "SharedRead", "SharedWrite", "SharedDelete"):
        fields.append((name, o, uchar))
        o += 1
    fields.append(("Flags", o, ulong))
    o = -(-(o + 4) // p) * p
    fields.append(("FileName", o, {"kind": "struct", "name": "_UNICODE_STRING"}))
    o += us
    fields += [("CurrentByteOffset", o, {"kind": "struct", "name": "_LARGE_INTEGER"}),
               ("Waiters", o + 8, ulong), ("Busy", o + 12, ulong),
               ("LastLock", o + 16, _ptr(p))]
    o += 16 + p
    fields += [("Lock", o, {"kind": "struct", "name": "_KEVENT"}),
               ("Event", o + ev, {"kind": "struct", "name": "_KEVENT"}),
               ("CompletionContext", o + 2 * ev, _ptr(p, "_IO_COMPLETION_CONTEXT"))]
    o += 2 * ev + p
    if vista_or_later:
        fields += [("IrpListLock", o, _base("unsigned long" if p == 4 else
                                            "unsigned long long", p)),
                   ("IrpList", o + p, {"kind": "struct", "name": "_LIST_ENTRY"}),
                   ("FileObjectExtension", o + 3 * p, _ptr(p))]
        o += 4 * p
    return _struct(fields, o)
