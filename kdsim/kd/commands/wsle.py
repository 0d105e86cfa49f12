"""``!wsle [Flags [Address]]``: a process's working-set list -- the ``_MMWSL`` header at
its hyperspace address and the ``_MMWSLE`` array it points at -- read in the implicit
process's address space.

Layout: the header is the Windows 7 one of a real transcript (``Working Set @
fffff70001080000`` / ``    FirstFree    2dd88  FirstDynamic        0`` / ...: labels
padded, values ``%8x``); the per-entry table (flag 1) and the summary (flag 2) follow
Microsoft's !wsle documentation sample (``Virtual Address           Age  Locked
ReferenceCount``, rows ``%16p %10x %8x %8x`` with the entry's raw value as the address,
``Valid WSLE entries = 0x..``, ``found end @ wsle index 0x..``).  Flag 4 (the free
entries) has no sample and adds nothing in kdsim.
"""
from __future__ import annotations

from ..registry import REGISTRY
from .ca import parse_args, read_struct, unreadable
from .process import current_process

PAGE = 0x1000
MAX_ENTRIES = 1 << 20          # a sanity bound on LastEntry read from memory


def working_set_list(session) -> int:
    """The default working-set list: the implicit process's Vm.VmWorkingSetList, or the
    build's MmWorkingSetList address (the same hyperspace VA in every process)."""
    t = session.target
    ep = session.implicit_process or current_process(session)
    f = t.types.field("_EPROCESS", "Vm.VmWorkingSetList")
    value = session._read_int(ep + f.offset, f.size) if ep else None
    return value or t.profile.address_space.working_set_list


def _reference_count(session, va: int, pfn_db: int) -> tuple[int | None, str]:
    """The ReferenceCount of the page mapped at ``va`` (from its PFN entry), or None and
    which paging entry is not valid."""
    t = session.target
    tr = t.translate(va, cr3=session.context_cr3)
    if not tr.ok:
        level = "PTE" if len(tr.levels) == len(t.profile.paging.index_bits) else "PDE"
        return None, level
    pfn = tr.pa >> 12
    entry = read_struct(session, "_MMPFN", pfn_db + pfn * t.types.sizeof("_MMPFN"))
    return (None, "PFN") if entry is None else (entry["u3.e2.ReferenceCount"], "")


@REGISTRY.command("!wsle", syntax="!wsle [Flags [Address]]",
                  summary="display the working-set list entries of the implicit process",
                  help="Flags: 1 every valid entry (address, age, locked, reference count), "
                       "2 the count of valid entries and where the list ends.  Address is "
                       "the working-set list (default: the implicit process's).")
def wsle(session, args: str, offset: int) -> str:
    t = session.target
    ptr = t.pointer_size
    mask = (1 << 8 * ptr) - 1
    values = parse_args(session, args, 2) + [0, 0]
    flags, address = values[0], values[1] & mask
    wsl_va = address or working_set_list(session)
    wsl = read_struct(session, "_MMWSL", wsl_va)
    if wsl is None:
        raise unreadable("_MMWSL", wsl_va, ptr)
    lines = ["", f"Working Set @ {wsl_va:0{2 * ptr}x}",
             f"    FirstFree {wsl['FirstFree']:>8x}  FirstDynamic {wsl['FirstDynamic']:>8x}",
             f"    LastEntry {wsl['LastEntry']:>8x}  NextSlot     {wsl['NextSlot']:>8x}  "
             f"LastInitialized {wsl['LastInitializedWsle']:>8x}",
             # Win7's _MMWSL has no HashTable/HashTableSize (the WRK's has): 0 there, as the
             # Win7 transcript shows.
             f"    NonDirect {wsl['NonDirectCount']:>8x}  HashTable    {wsl['HashTable']:>8x}  "
             f"HashTableSize   {wsl['HashTableSize']:>8x}"]
    if flags & 3:
        entries = _entries(session, wsl)
        valid = [(i, e) for i, e in enumerate(entries) if e & 1]
        if flags & 1:
            lines += _rows(session, wsl, valid)
        if flags & 2:
            lines += ["", "Reading the WSLE data...",
                      f"Valid WSLE entries = 0x{len(valid):x}",
                      f"found end @ wsle index 0x{wsl['LastInitializedWsle']:x}"]
    return "\n".join(lines) + "\n"


def _entries(session, wsl) -> list[int]:
    """The raw entries 0..LastEntry of the _MMWSLE array."""
    t = session.target
    esize = t.types.sizeof("_MMWSLE")
    count = min(wsl["LastEntry"] + 1, MAX_ENTRIES)    # free entries are skipped later
    base = wsl["Wsle"]
    r = t.read_virtual(base, count * esize, cr3=session.context_cr3)
    if not r.complete:
        raise unreadable("_MMWSLE", base, t.pointer_size)
    return [int.from_bytes(r.data[i:i + esize], "little") for i in range(0, len(r.data), esize)]


def _rows(session, wsl, valid) -> list[str]:
    t, ts = session.target, session.target.types
    ptr = t.pointer_size
    age_f = ts.field("_MMWSLE", "u1.e1.Age")
    locked_fs = [ts.field("_MMWSLE", "u1.e1." + n) for n in ("LockedInWs", "LockedInMemory")
                 if ts.has_field("_MMWSLE", "u1.e1." + n)]
    pfn_db_var = t.kernel_base + t.symbols("nt")["MmPfnDatabase"]
    pfn_db = session._read_int(pfn_db_var, ptr)
    if pfn_db is None:
        raise unreadable("nt!MmPfnDatabase", pfn_db_var, ptr)
    out = ["", "Reading the WSLE data...", "",
           "Virtual Address           Age  Locked  ReferenceCount"]
    for index, e in valid:
        # Win7 entries have no lock bits: the locked ones are those below FirstDynamic.
        locked = any(f.extract(e) for f in locked_fs) if locked_fs else \
            int(index < wsl["FirstDynamic"])
        va = e & ~(PAGE - 1)
        refs, bad = _reference_count(session, va, pfn_db)
        row = f"{e:0{2 * ptr}x}".rjust(16) + f" {age_f.extract(e):>10x} {int(locked):>8x}"
        # The documentation says an invalid PTE or PDE is shown too; the wording is kdsim's.
        out.append(row + (f" {refs:>8x}" if refs is not None else f"  {bad} not valid"))
    return out

