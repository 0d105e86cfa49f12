"""``_LDR_DATA_TABLE_ENTRY``: the entries on PsLoadedModuleList (and a PEB's loader lists).

The reference's layouts come from the memory-manager PDB dumps and do not include it, so
kdsim states it here, in the same form as the generated layouts (the *.types.json
schema), from the structure's public definition for Windows XP through 7 (winternl.h's
leading fields; offsets for 32- and 64-bit).  Only the fields up to TimeDateStamp, which
every debugger reads, are listed; the type's size covers them.
"""
from __future__ import annotations


def _base(name: str, size: int) -> dict:
    return {"kind": "base", "name": name, "size": size}


def layout(pointer_size: int) -> dict:
    p = pointer_size
    ptr = {"kind": "pointer", "size": p, "to": {"kind": "void"}}
    ulong, ushort = _base("unsigned long", 4), _base("unsigned short", 2)
    lst = {"kind": "struct", "name": "_LIST_ENTRY"}
    ustr = {"kind": "struct", "name": "_UNICODE_STRING"}
    us = 8 if p == 4 else 16                       # sizeof(UNICODE_STRING)
    fields = [("InLoadOrderLinks", 0, lst), ("InMemoryOrderLinks", 2 * p, lst),
              ("InInitializationOrderLinks", 4 * p, lst), ("DllBase", 6 * p, ptr),
              ("EntryPoint", 7 * p, ptr), ("SizeOfImage", 8 * p, ulong),
              ("FullDllName", 9 * p, ustr), ("BaseDllName", 9 * p + us, ustr),
              ("Flags", 9 * p + 2 * us, ulong), ("LoadCount", 9 * p + 2 * us + 4, ushort),
              ("TlsIndex", 9 * p + 2 * us + 6, ushort),
              ("HashLinks", 9 * p + 2 * us + 8, lst),
              ("TimeDateStamp", 9 * p + 2 * us + 8 + 2 * p, ulong)]
    size = fields[-1][1] + 4
    size = -(-size // p) * p
    return {"kind": "struct", "size": size,
            "fields": [{"name": n, "offset": o, "type": t} for n, o, t in fields]}


def peb_ldr_data(pointer_size: int, vista_or_later: bool) -> dict:
    """``_PEB_LDR_DATA`` (PEB.Ldr): the heads of the process's three module lists.  Public
    layout, not in the PDB dumps either: Length, Initialized, SsHandle, the three lists,
    EntryInProgress (size 0x28 on Server 2003 x86); Vista and 7 add ShutdownInProgress
    and ShutdownThreadId (0x30 x86, 0x58 x64)."""
    p = pointer_size
    ptr = {"kind": "pointer", "size": p, "to": {"kind": "void"}}
    uchar = _base("unsigned char", 1)
    lst = {"kind": "struct", "name": "_LIST_ENTRY"}
    o = 8                                          # SsHandle: the first pointer after 5 bytes
    fields = [("Length", 0, _base("unsigned long", 4)), ("Initialized", 4, uchar),
              ("SsHandle", o, ptr), ("InLoadOrderModuleList", o + p, lst),
              ("InMemoryOrderModuleList", o + 3 * p, lst),
              ("InInitializationOrderModuleList", o + 5 * p, lst),
              ("EntryInProgress", o + 7 * p, ptr)]
    size = o + 8 * p
    if vista_or_later:
        fields += [("ShutdownInProgress", size, uchar), ("ShutdownThreadId", size + p, ptr)]
        size += 2 * p
    return {"kind": "struct", "size": size,
            "fields": [{"name": n, "offset": o, "type": t} for n, o, t in fields]}
