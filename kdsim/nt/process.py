"""Processes: EPROCESS objects in nonpaged pool, linked on PsActiveProcessHead.

An EPROCESS is an executive object: a pool block tagged 'Proc' (with the protected
bit Win7 sets) holding an ``_OBJECT_HEADER`` and then the body.  kdsim writes the
fields a debugger and the memory manager use; the rest stay zero, at their true
offsets, so ``dt`` shows the whole structure.
"""
from __future__ import annotations

from .avl import AvlTable
from .pool import PROTECTED_TAG, tag_value

PROCESS_OBJECT = 3                 # _DISPATCHER_HEADER.Type of a process (ProcessObject)
PROCESS_TYPE_INDEX = 7             # Win7 ObTypeIndexTable slot of the Process type (kdsim choice)
# EPROCESS.Flags: AddressSpaceInitialized (bits 10-11) = 2, HasAddressSpace 18,
# ProcessInserted 26 -- what a running process has (nt-structures.md §7.1).
PROCESS_FLAGS = (2 << 10) | (1 << 18) | (1 << 26)
MIN_WS, MAX_WS = 50, 345           # default working-set limits in pages (MmMinimumWorkingSetSize ...)


def create_eprocess(system, image_name: str, pid: int, parent_pid: int, cr3: int,
                    pae_top: int | None) -> int:
    """Allocate and fill an EPROCESS, link it on PsActiveProcessHead; returns its VA."""
    ts, kmem = system.ts, system.kmem
    body_off = ts.offset_of("_OBJECT_HEADER", "Body")
    size = ts.sizeof("_EPROCESS")
    block = system.nonpaged_pool.alloc(body_off + size, tag_value("Proc") | PROTECTED_TAG)
    ep = block + body_off
    header = {"PointerCount": 1, "HandleCount": 0}
    if ts.has_type("_OBJECT_HEADER") and _has(ts, "_OBJECT_HEADER", "TypeIndex"):
        header["TypeIndex"] = PROCESS_TYPE_INDEX
    kmem.write(block, ts.pack("_OBJECT_HEADER", header)[:body_off])

    dtb = "Pcb.DirectoryTableBase[0]" if _is_array(ts, "Pcb.DirectoryTableBase") \
        else "Pcb.DirectoryTableBase"
    values = {
        "Pcb.Header.Type": PROCESS_OBJECT,
        "Pcb.Header.Size": ts.sizeof("_KPROCESS") // 4,
        dtb: cr3,
        "UniqueProcessId": pid,
        "InheritedFromUniqueProcessId": parent_pid,
        "CreateTime": system.clock,
        "Flags": PROCESS_FLAGS,
        "Vm.MinimumWorkingSetSize": MIN_WS,
        "Vm.MaximumWorkingSetSize": MAX_WS,
    }
    if pae_top is not None:
        values["PaeTop"] = pae_top
    raw = bytearray(ts.pack("_EPROCESS", values))
    name = image_name.encode("ascii", "replace")[:ts.field("_EPROCESS", "ImageFileName").size - 1]
    off = ts.offset_of("_EPROCESS", "ImageFileName")
    raw[off:off + len(name)] = name
    kmem.write(ep, bytes(raw))
    AvlTable(ts, kmem, ep + ts.offset_of("_EPROCESS", "VadRoot")).init()
    for head in ("Pcb.ThreadListHead", "Pcb.ProfileListHead", "ThreadListHead"):
        if _has(ts, "_EPROCESS", head):
            system.init_list_head(ep + ts.offset_of("_EPROCESS", head))
    system.insert_tail_list(system.symbols["PsActiveProcessHead"],
                            ep + ts.offset_of("_EPROCESS", "ActiveProcessLinks"))
    system.processes.append(ep)
    return ep


def _has(ts, type_name: str, path: str) -> bool:
    try:
        ts.field(type_name, path)
        return True
    except Exception:
        return False


def _is_array(ts, path: str) -> bool:
    return ts.field("_EPROCESS", path).count > 0
