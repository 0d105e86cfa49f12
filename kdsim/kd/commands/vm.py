"""``!vm [Flags]``: virtual-memory usage of the whole system (windbg-formats.md §11.1, era-3
layout): the paging files, then one ``Label:  pages (  KB Kb)`` line per counter, then with
flags 0 the commit charge of every process.

Every number is read from the target: kernel variables at their symbol addresses, the
``_MMPFNLIST`` heads, ``_MMPAGING_FILE`` structures behind ``MmPagingFile``, the PFN entries
of the modified list, the kernel page tables over the pool ranges and the process list.
Counters kdsim does not model (kernel stacks, MDLs, AWE, most of the per-category system
commit, ...) print as 0, each marked below.

Flag 0x20 (kernel VA usage, Vista and later) reads nt!MiSystemVaType and the
MiSystemVaTypeCount / MiSystemVaTypeCountPeak arrays (Windows 7 32-bit).  The reference
has no sample of its output, so the format is kdsim's: after the usual lines, one
``Name:  regions (  Kb Kb)  Peak: regions`` line per MI_SYSTEM_VA_TYPE (the counter
layout of the lines above), then the byte map as runs of regions of one type, low to
high.  A target without MiSystemVaType (the WRK's fixed layout, Windows 7 x64's fixed
regions) prints the usual output only, the flag ignored as a debugger does for a kernel
that lacks what the flag shows.
"""
from __future__ import annotations

from kdsim.nt.pte import PteCodec
from kdsim.nt.sysva import VA_TYPES

from ..registry import REGISTRY
from .ca import parse_args, read_struct, unreadable
from .process import directory_table_base, process_list
from .ptov import mappings

PAGE = 0x1000
VALUE_END = 33          # the value column ends at col 33; the label takes >= 19 columns

# Counters kdsim has no model of: printed as 0 (era-3 line set of the reference sample).
UNMODELED = ("Processor Commit", "Session Commit", "Shared Commit", "Special Pool",
             "Kernel Stacks", "Pages For MDLs", "ContigMem Pages", "Partition Pages",
             "Pages For AWE", "NonPagedPool Commit", "Driver Commit",
             "Boot Commit", "PFN Array Commit", "SmallNonPagedPtesCommit",
             "SlabAllocatorPages", "SkPagesInUnchargedSlabs", "System PageTables",
             "ProcessLockedFilePages", "Pagefile Hash Pages")


def count_line(label: str, pages: int) -> str:
    """``Physical Memory:          2037490 (    8149960 Kb)``.  The sample's overflowing
    lines (``PagedPool Commit:  18446735300397918280``, ``Sum System Commit: 1844...``)
    show the label padded to 19 columns (at least one space) and the value right-aligned
    to column 33."""
    head = label + ":"
    pad = max(19, len(head) + 1)
    return f"{head:<{pad}}{pages:>{VALUE_END - pad}} ({pages * 4:>11} Kb)"


class _Kernel:
    """nt's variables read from memory (pointer-sized unless the symbol is a ULONG)."""

    ULONGS = ("MmNumberOfPhysicalPages", "MmNumberOfPagingFiles", "MmTotalFreeSystemPtes")

    def __init__(self, session):
        self.s = session
        self.t = session.target
        self.syms = self.t.symbols("nt")

    def address(self, name: str) -> int:
        return self.t.kernel_base + self.syms[name]

    def has(self, name: str) -> bool:
        return name in self.syms

    def var(self, name: str) -> int:
        size = 4 if name in self.ULONGS else self.t.pointer_size
        value = self.s._read_int(self.address(name), size)
        if value is None:
            raise unreadable(f"nt!{name}", self.address(name), self.t.pointer_size)
        return value


def _paging_files(session, k: _Kernel) -> list[str]:
    t, ptr = session.target, session.target.pointer_size
    out = []
    count = min(k.var("MmNumberOfPagingFiles"), 16)       # MAX_PAGE_FILES
    for i in range(count):
        slot = k.address("MmPagingFile") + i * ptr
        va = session._read_int(slot, ptr)
        pf = read_struct(session, "_MMPAGING_FILE", va) if va else None
        if pf is None:
            raise unreadable("_MMPAGING_FILE", va if va is not None else slot, ptr)
        length, buf = pf["PageFileName.Length"], pf["PageFileName.Buffer"]
        name = t.read_virtual(buf, length) if length and buf else None
        if name is not None and name.complete:
            out.append("Page File: " + name.data.decode("utf-16-le", "replace"))
        else:
            out.append("No Name for Paging File")
        out.append(f"  Current: {pf['Size'] * 4:>9} Kb  Free Space: {pf['FreeSpace'] * 4:>9} Kb")
        out.append(f"  Minimum: {pf['MinimumSize'] * 4:>9} Kb  "
                   f"Maximum:    {pf['MaximumSize'] * 4:>9} Kb")
    return out


def _list_total(session, k: _Kernel, head: str) -> int:
    lst = read_struct(session, "_MMPFNLIST", k.address(head))
    if lst is None:
        raise unreadable(f"nt!{head}", k.address(head), session.target.pointer_size)
    return lst["Total"]


def modified_for_paging_file(session, k: _Kernel) -> int:
    """Pages on the modified list bound for a paging file (MmTotalPagesForPagingFile):
    those whose OriginalPte is not a subsection PTE (a mapped file's page goes back to
    its file).  Walks the list through u1.Flink in the PFN database."""
    t, ts = session.target, session.target.types
    head = read_struct(session, "_MMPFNLIST", k.address("MmModifiedPageListHead"))
    if head is None:
        return 0
    base = k.var("MmPfnDatabase")
    size = ts.sizeof("_MMPFN")
    empty = (1 << (8 * ts.field("_MMPFN", "u1.Flink").size)) - 1     # MM_EMPTY_LIST
    proto = "u4.PrototypePte" if ts.has_field("_MMPFN", "u4.PrototypePte") \
        else "u3.e1.PrototypePte"
    codec = PteCodec(t.profile)
    count, pfn = 0, head["Flink"]
    for _ in range(head["Total"]):
        if pfn == empty:
            break
        entry = read_struct(session, "_MMPFN", base + pfn * size)
        if entry is None:
            break
        d = codec.decode(entry["OriginalPte"], in_prototype_array=bool(entry[proto]))
        count += d.kind != "subsection"
        pfn = entry["u1.Flink"]
    return count


def _mapped_pages(session, dirbase: int, lo: int, hi: int) -> int:
    try:
        return sum(size // PAGE for _, _, size in mappings(session.target, dirbase, lo, hi))
    except LookupError:
        return 0


@REGISTRY.command("!vm", syntax="!vm [Flags]",
                  summary="display virtual memory usage (paging files, page lists, pool, "
                          "commit; per-process commit with flags 0)",
                  help="Flags 1 omits the per-process list.  Flags 0x20 adds kernel VA "
                       "usage on Windows 7 32-bit targets (MiSystemVaTypeCount and Peak per "
                       "MI_SYSTEM_VA_TYPE, then the MiSystemVaType map as runs; a kdsim "
                       "format, no sample exists); targets without MiSystemVaType ignore "
                       "it.  Flags 2, 4, 8 and 0x10 add nothing in kdsim (no MM threads, "
                       "sessions or write log to show).")
def vm(session, args: str, offset: int) -> str:
    t = session.target
    flags = (parse_args(session, args, 1) or [0])[0]
    k = _Kernel(session)
    lines = _paging_files(session, k)
    lines.append("")
    # The kernel half is shared by every address space; walk it in System's tables.
    system = k.var("PsInitialSystemProcess")
    kernel_dtb = directory_table_base(session, system) or t.cr3
    np_start, np_end = k.var("MmNonPagedPoolStart"), k.var("MmNonPagedPoolEnd")
    p_start, p_end = k.var("MmPagedPoolStart"), k.var("MmPagedPoolEnd")
    counts = [
        ("Physical Memory", k.var("MmNumberOfPhysicalPages")),
        ("Available Pages", k.var("MmAvailablePages")),
        ("ResAvail Pages", k.var("MmResidentAvailablePages")),
        ("Locked IO Pages", 0),                     # not modeled
        ("Free System PTEs", k.var("MmTotalFreeSystemPtes")),   # [0]: SystemPteSpace
        ("Modified Pages", _list_total(session, k, "MmModifiedPageListHead")),
        ("Modified PF Pages", modified_for_paging_file(session, k)),
        ("Modified No Write Pages", _list_total(session, k, "MmModifiedNoWritePageListHead")),
        # Pool usage: the pages mapped in the pool ranges (MmNonPagedPoolEnd is
        # exclusive, MmPagedPoolEnd the last byte), counted in the kernel page tables.
        ("NonPagedPool Usage", _mapped_pages(session, kernel_dtb, np_start, np_end - 1)),
        ("NonPagedPoolNx Usage", 0),                # Windows 8 and later
        ("NonPagedPool Max", k.var("MmMaximumNonPagedPoolInBytes") // PAGE),
        ("PagedPool Usage", _mapped_pages(session, kernel_dtb, p_start, p_end)),
        ("PagedPool Maximum", k.var("MmSizeOfPagedPoolInBytes") // PAGE),
    ]
    # kdsim charges commit to processes and to the boot as a whole, not per system
    # category: every category line is 0, so their sum is too.
    counts += [(name, 0) for name in UNMODELED]
    # PagedPool Commit (MmPagedPoolCommit) goes after NonPagedPool Commit, as in the sample.
    at = [name for name, _ in counts].index("NonPagedPool Commit") + 1
    counts.insert(at, ("PagedPool Commit", k.var("MmPagedPoolCommit")))
    system_commit = sum(v for name, v in counts
                        if name in UNMODELED or name == "PagedPool Commit")
    procs = []
    for ep in process_list(session):
        proc = read_struct(session, "_EPROCESS", ep)
        if proc is None:
            raise unreadable("_EPROCESS", ep, t.pointer_size)
        name = t.types.field("_EPROCESS", "ImageFileName")
        raw = proc.raw(name.offset, name.size).split(b"\0")[0].decode("ascii", "replace")
        procs.append((proc["UniqueProcessId"], raw, proc["CommitCharge"]))
    private = sum(c for _, _, c in procs)
    counts += [("Sum System Commit", system_commit), ("Total Private", private)]
    lines += [count_line(label, value) for label, value in counts]
    committed = k.var("MmTotalCommittedPages")
    if system_commit + private > committed:
        excess = (system_commit + private - committed) * 4
        lines += ["", "********** Sum of individual system commit + Process commit exceeds "
                      f"overall commit by {excess} Kb ? ********"]
    lines.append(count_line("Committed pages", committed))
    lines.append(count_line("Commit limit", k.var("MmTotalCommitLimit")))
    if not flags & 1:
        lines += ["", "  Pid ImageName                        Commit   SharedCommit        Debt",
                  ""]
        # Largest commit first (as the sample); equal ones keep the process-list order.
        # kdsim has no per-process shared commit or commit debt: both print 0.
        for pid, name, commit in sorted(procs, key=lambda p: -p[2]):
            lines.append(f"{pid:5x} {name:<16}{commit * 4:>20} Kb{0:>12} Kb{0:>9} Kb")
    if flags & 0x20 and k.has("MiSystemVaType"):
        lines += [""] + va_usage(session, k)
    return "\n".join(lines) + "\n"


def va_usage(session, k: _Kernel) -> list[str]:
    """Flag 0x20: the counts per MI_SYSTEM_VA_TYPE and the byte map, from guest memory."""
    t = session.target
    ntypes = len(VA_TYPES)
    start = k.var("MmSystemRangeStart")
    shift = 22 if t.profile.paging.name == "x86" else 21      # a PDE's span
    entries = ((1 << 32) - start) >> shift
    raw = {}
    for name, size in (("MiSystemVaTypeCount", 4 * ntypes),
                       ("MiSystemVaTypeCountPeak", 4 * ntypes), ("MiSystemVaType", entries)):
        r = t.read_virtual(k.address(name), size, cr3=session.context_cr3)
        if not r.complete:
            raise unreadable(f"nt!{name}", k.address(name), t.pointer_size)
        raw[name] = r.data
    region_kb = (1 << shift) >> 10
    out = [f"Kernel VA usage (MiSystemVaType: {entries:#x} regions of {region_kb} Kb "
           f"from {start:08x})", ""]
    for i, name in enumerate(VA_TYPES):
        count = int.from_bytes(raw["MiSystemVaTypeCount"][4 * i:4 * i + 4], "little")
        peak = int.from_bytes(raw["MiSystemVaTypeCountPeak"][4 * i:4 * i + 4], "little")
        head = name + ":"
        pad = max(23, len(head) + 1)
        out.append(f"{head:<{pad}}{count:>{VALUE_END - pad + 4}} "
                   f"({count * region_kb:>11} Kb)  Peak: {peak:>5}")
    out += ["", "Base     End      VA type"]
    types = raw["MiSystemVaType"]
    i = 0
    while i < entries:
        j = i
        while j + 1 < entries and types[j + 1] == types[i]:
            j += 1
        kind = VA_TYPES[types[i]] if types[i] < ntypes else f"{types[i]:#x} (unknown)"
        last = (start + ((j + 1) << shift) - 1) & 0xFFFFFFFF
        out.append(f"{start + (i << shift):08x} {last:08x} {kind}")
        i = j + 1
    return out

