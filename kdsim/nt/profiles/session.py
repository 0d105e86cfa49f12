"""``_MM_SESSION_SPACE``: the memory manager's per-session structure, reached through
``EPROCESS.Session`` (nt-structures.md §7.1 says the field is "really _MM_SESSION_SPACE*").

The reference's layouts do not include it, so kdsim states it here, in the same form as
the generated layouts (the *.types.json schema), from the structure's public definitions:
the WRK's ``MM_SESSION_SPACE`` (base/ntos/mm/mi.h: GlobalVirtualAddress, ReferenceCount,
u, SessionId, ProcessList, ...) and the Windows 7 symbol files (ReferenceCount, u,
SessionId, ProcessReferenceToSession, ProcessList, ...).  Only the leading fields, up to
the process list, are listed; the type's size covers them.  A debugger prints a
process's "SessionId" from ``Session->SessionId``.
"""
from __future__ import annotations


def _base(name: str, size: int) -> dict:
    return {"kind": "base", "name": name, "size": size}


def layout(pointer_size: int, wrk: bool) -> dict:
    p = pointer_size
    ptr = {"kind": "pointer", "size": p, "to": {"kind": "struct", "name": "_MM_SESSION_SPACE"}}
    long_, ulong = _base("long", 4), _base("unsigned long", 4)
    lst = {"kind": "struct", "name": "_LIST_ENTRY"}
    if wrk:       # GlobalVirtualAddress first (x86 only in kdsim)
        fields = [("GlobalVirtualAddress", 0, ptr), ("ReferenceCount", p, long_),
                  ("u", p + 4, ulong), ("SessionId", p + 8, ulong),
                  ("ProcessList", p + 12, lst)]
    else:
        fields = [("ReferenceCount", 0, long_), ("u", 4, ulong), ("SessionId", 8, ulong),
                  ("ProcessReferenceToSession", 12, long_), ("ProcessList", 16, lst)]
    size = fields[-1][1] + 2 * p
    return {"kind": "struct", "size": size,
            "fields": [{"name": n, "offset": o, "type": t} for n, o, t in fields]}
