"""``!address``: what a virtual address is -- its region, state, protection and type -- and
``!address -summary``, read from the VAD tree and the page tables in guest memory
(windbg-formats.md §10).

User addresses (up to MmHighestUserAddress) are answered for the implicit process the way
VirtualQuery answers (WRK MiQueryAddressState), so the regions are the ones a user-mode
``!address`` lists:

* a region is a run of pages of one VAD with the same state and protection; the space
  between VADs is one MEM_FREE region.  Allocation Base/Protect are the VAD's start and
  VadFlags.Protection.
* private memory: a zero PTE (or no page table) is committed iff the VAD has MemCommit, with
  the VAD's protection; any other PTE is committed unless its protection is MM_DECOMMIT,
  with the PTE's protection -- for a valid PTE, the PFN's OriginalPte's (MiGetPageProtection:
  a hardware PTE cannot hold guard or no-cache).
* a mapped view: a page is committed iff its prototype PTE is non-zero (an uncommitted page
  of a SEC_RESERVE section has a zero one).  Its protection is the PTE's when the PTE
  carries one ("look it up in the VAD" prototype PTEs, and transition, paging-file and
  demand-zero PTEs, which only a private copy has); a page of this process's own
  (copy-on-write) copy takes its PFN's OriginalPte's; a shared valid page takes its
  subsection's protection as the PTE narrows it (a copy-on-write PTE: WRITECOPY, a
  read-only PTE of a writable page: READONLY, each with its execute bit); any other page
  its subsection's protection.
* Usage: Free; Image (VadImageMap); MappedFile (a view of a file control area); PEB (the
  VAD holding EPROCESS.Peb); Heap (the VAD at PEB.ProcessHeap); <unknown> for the rest --
  kdsim has no thread objects, so stacks and TEBs cannot be told apart.

Output follows the verbatim era-3 blocks: labels 24 wide, ``00001000          MEM_COMMIT``
(8 hex digits, 10 spaces, the name), ``<info not present at the target>`` for a reserved
region's protection and a free region's type, sizes as ``(  24.000 kB)``.  The
``Mapping ...`` progress lines, ``More info:`` and ``Content source:`` lines are not
printed (the kernel-mode sample of MSD-0x50 has none of them).

Kernel addresses get the kernel-mode answer: a loaded module (PsLoadedModuleList) prints
the MSD-0x50 block (Usage Module, VA Type BootLoaded, module name and path); any other
kernel address names the system range holding it (kdsim's choice, no transcript):
``Usage: <unknown>`` and a ``VA Type`` -- PageTables, HyperSpace, PfnDatabase,
NonPagedPool, PagedPool, SystemPtes, SystemCache, SessionSpace, or Unused between them --
with the range's bounds read from the Mm* variables (the page tables and hyperspace from
the build's constants).

``-summary`` covers the implicit process's user address space, [0, MmHighestUserAddress]
(WinDbg documents no kernel-mode summary; windbg-formats.md §10 GAP): the Usage, Type,
State and Protect tables of the verbatim user-mode summary, rows by size (largest first),
and the largest region of each usage.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial

from kdsim.nt import protect as pr
from kdsim.nt.pte import PteCodec

from ..fmt import pointer
from ..registry import REGISTRY
from ..session import CommandError
from .vad import (VAD_IMAGE_MAP, TreeError, Vad, control_area_flags, implicit_process,
                  plain_pointer, process_vads, read_bytes, user_limit)

PAGE = 0x1000
MAX_VIEW_PAGES = 1 << 20          # a view larger than 4 GB is a corrupt VAD: its pages are
                                  # not examined (they count as committed)
NOT_PRESENT = "<info not present at the target>"
MEM_NAMES = {pr.MEM_COMMIT: "MEM_COMMIT", pr.MEM_RESERVE: "MEM_RESERVE",
             pr.MEM_FREE: "MEM_FREE", pr.MEM_PRIVATE: "MEM_PRIVATE",
             pr.MEM_MAPPED: "MEM_MAPPED", pr.MEM_IMAGE: "MEM_IMAGE"}


@lru_cache(maxsize=None)
def _codec(profile) -> PteCodec:
    return PteCodec(profile)


@dataclass(frozen=True)
class Region:
    base: int
    size: int
    state: int                      # MEM_COMMIT / MEM_RESERVE / MEM_FREE
    protect: int                    # Win32 PAGE_* (0 when not committed)
    type: int                       # MEM_PRIVATE / MEM_MAPPED / MEM_IMAGE, 0 when free
    alloc_base: int = 0
    alloc_protect: int = 0
    usage: str = "Free"

    @property
    def end(self) -> int:
        return self.base + self.size


# -- reading the state of each page ---------------------------------------------------------

class _Reader:
    """Guest-memory reads for one process's address space."""

    def __init__(self, session):
        self.s = session
        t = session.target
        self.t, self.ts, self.prof = t, t.types, t.profile
        self.cr3 = session.context_cr3
        self.codec = _codec(t.profile)
        self.pte_size = t.profile.pte_size
        base = session._read_int(t.kernel_base + t.symbols("nt")["MmPfnDatabase"],
                                 t.pointer_size)
        self.pfn_base = base or 0
        self.pfn_size = self.ts.sizeof("_MMPFN")
        self.f_orig = self.ts.field("_MMPFN", "OriginalPte.u.Long")
        self.f_proto = self.ts.field("_MMPFN", "u4.PrototypePte") \
            if self.ts.has_field("_MMPFN", "u4.PrototypePte") \
            else self.ts.field("_MMPFN", "u3.e1.PrototypePte")

    def ptes(self, start: int, pages: int) -> list[tuple[int, list[int] | None]]:
        """The PTEs of ``pages`` pages from ``start``, read through the self-map, as chunks
        ``(pages, values)``; ``values`` is None for a run whose page table is not there
        (a higher-level entry is not valid), which is read as zero PTEs without reading
        every one of them -- a reservation of terabytes costs a few reads."""
        paging, size = self.prof.paging, self.pte_size
        uppers = sorted(((paging.shift(lv), lv) for lv in paging.levels if lv != "pte"),
                        reverse=True)
        table_span = 1 << paging.shift("pde")            # what one page table maps
        out: list[tuple[int, list[int] | None]] = []
        va, end = start, start + pages * PAGE
        while va < end:
            skip = 0
            for shift, level in uppers:
                r = self.t.read_virtual(self.prof.entry_address(va, level), size, cr3=self.cr3)
                if not r.complete or not int.from_bytes(r.data, "little") & 1:
                    skip = (((va >> shift) + 1) << shift) - va
                    break
            if skip:
                n = min(skip, end - va) // PAGE
                out.append((n, None))
            else:
                n = (min(((va // table_span) + 1) * table_span, end) - va) // PAGE
                data = self.t.read_virtual(self.prof.pte_address(va), n * size,
                                           cr3=self.cr3).data
                out.append((n, [int.from_bytes(data[i:i + size], "little")
                                for i in range(0, len(data), size)]))
            va += n * PAGE
        return out

    def _pfn(self, pfn: int) -> bytes | None:
        return read_bytes(self.s, self.pfn_base + pfn * self.pfn_size, self.pfn_size)

    def pfn_protection(self, pfn: int) -> int | None:
        raw = self._pfn(pfn)
        return None if raw is None else \
            self.codec.decode(self.f_orig.unpack_from(raw)).protection

    def pfn_is_prototype(self, pfn: int) -> bool:
        raw = self._pfn(pfn)
        return bool(raw is not None and self.f_proto.unpack_from(raw))

    def subsections(self, vad: Vad) -> list[tuple[int, int, int]]:
        """``(first proto PTE, count, protection)`` of each subsection of a view's
        section: from VAD.Subsection (Win7), or the one after the control area (WRK)."""
        ts = self.ts
        sub = vad.subsection or (vad.control_area + ts.sizeof("_CONTROL_AREA")
                                 if vad.control_area else 0)
        f_base = ts.field("_SUBSECTION", "SubsectionBase")
        f_count = ts.field("_SUBSECTION", "PtesInSubsection")
        f_prot = ts.field("_SUBSECTION", "u.SubsectionFlags.Protection")
        f_next = ts.field("_SUBSECTION", "NextSubsection")
        out = []
        while sub and len(out) < 256:
            raw = read_bytes(self.s, sub, ts.sizeof("_SUBSECTION"))
            if raw is None:
                break
            out.append((f_base.unpack_from(raw), f_count.unpack_from(raw),
                        f_prot.unpack_from(raw)))
            sub = f_next.unpack_from(raw)
        return out

    # -- MiQueryAddressState --------------------------------------------------------------
    def pages(self, vad: Vad, count: int) -> list[tuple[int, bool, int]]:
        """Runs ``(pages, committed, MM protection)`` over the first ``count`` pages of a
        VAD."""
        chunks = self.ptes(vad.start, count)
        decode = self.codec.decode
        out: list[tuple[int, bool, int]] = []

        def add(n, committed, prot):
            prot = prot if committed else 0         # a reserved page has no protection
            if out and out[-1][1:] == (committed, prot):
                out[-1] = (out[-1][0] + n, committed, prot)
            else:
                out.append((n, committed, prot))

        if vad.private:
            zero = (bool(vad.flags["MemCommit"]), vad.protection)
            for n, ptes in chunks:
                for pte in ptes if ptes is not None else ():
                    if pte == 0:
                        add(1, *zero)
                        continue
                    d = decode(pte)
                    prot = self.pfn_protection(d.pfn) if d.kind == "valid" else d.protection
                    prot = vad.protection if prot is None else prot
                    add(1, prot != pr.MM_DECOMMIT, prot)
                if ptes is None:
                    add(n, *zero)
            return out
        if count > MAX_VIEW_PAGES:
            return [(count, True, vad.protection)]
        n = self.pte_size
        raw = read_bytes(self.s, vad.first_proto, count * n) if vad.first_proto else None
        protos = [int.from_bytes(raw[i:i + n], "little") for i in range(0, len(raw), n)] \
            if raw else [1] * count
        subs = self.subsections(vad)
        ptes = [p for k, chunk in chunks for p in (chunk if chunk is not None else [0] * k)]
        for i, pte in enumerate(ptes):
            base = vad.protection
            proto_va = vad.first_proto + i * n
            for first, cnt, prot in subs:
                if first <= proto_va < first + cnt * n:
                    base = prot
                    break
            add(1, protos[i] != 0, self._view_page(decode(pte), base))
        return out

    def _view_page(self, d, base: int) -> int:
        if d.kind in ("vad_prototype", "transition", "pagefile", "demand_zero", "lookup_vad"):
            return d.protection
        if d.kind != "valid":
            return base
        if not self.pfn_is_prototype(d.pfn):            # this process's own copy
            own = self.pfn_protection(d.pfn)
            return base if own is None else own
        return pr.shared_page_protection(base, d.copy_on_write, d.writable)


def _usage(session, vad: Vad, peb: int, heap: int | None) -> str:
    if vad.vad_type == VAD_IMAGE_MAP:
        return "Image"
    if not vad.private and vad.control_area:
        got = control_area_flags(session, vad.control_area)
        if got is not None and "File" in got[1] and "Image" not in got[1]:
            return "MappedFile"
    if peb and vad.start <= peb < vad.end:
        return "PEB"
    if heap and vad.start == heap:
        return "Heap"
    return "<unknown>"


def user_regions(session, ep: int) -> list[Region]:
    """Every VirtualQuery region of ``ep``'s user address space, in address order."""
    reader = _Reader(session)
    ts, ptr = session.target.types, session.target.pointer_size
    limit = user_limit(session) + 1
    vads = process_vads(session, ep)
    peb = session._read_int(ep + ts.offset_of("_EPROCESS", "Peb"), ptr) or 0
    heap = None
    if peb:
        f = ts.field("_PEB", "ProcessHeap")
        raw = read_bytes(session, peb + f.offset, f.size, cr3=session.context_cr3)
        heap = int.from_bytes(raw, "little") if raw else None
    out: list[Region] = []
    cursor = 0
    for vad in vads:
        if vad.start < cursor or vad.end > limit or vad.end <= vad.start:
            continue                    # not a sound tree: what overlaps or escapes is left out
        if vad.start > cursor:
            out.append(Region(cursor, vad.start - cursor, pr.MEM_FREE, pr.PAGE_NOACCESS, 0))
        kind = pr.MEM_PRIVATE if vad.private else \
            pr.MEM_IMAGE if vad.vad_type == VAD_IMAGE_MAP else pr.MEM_MAPPED
        usage = _usage(session, vad, peb, heap)
        alloc = pr.protect_to_value(vad.protection)
        va = vad.start
        for n, committed, prot in reader.pages(vad, (min(vad.end, limit) - vad.start) // PAGE):
            out.append(Region(va, n * PAGE, pr.MEM_COMMIT if committed else pr.MEM_RESERVE,
                              pr.protect_to_value(prot) if committed else 0, kind,
                              vad.start, alloc, usage))
            va += n * PAGE
        cursor = vad.end
    if cursor < limit:
        out.append(Region(cursor, limit - cursor, pr.MEM_FREE, pr.PAGE_NOACCESS, 0))
    return out


# -- formatting -------------------------------------------------------------------------------

def _size_text(size: int) -> str:
    """``  24.000 kB``: the size in the largest unit that keeps it at or above 1."""
    value, unit = size / 1024, "kB"
    for bigger in ("MB", "GB", "TB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:8.3f} {unit}"


def _code(value: int, name: str) -> str:
    return f"{value:08x}          {name}"


def _line(label: str, text: str) -> str:
    return f"{label:<24}{text}"


def region_block(session, r: Region) -> str:
    ptr = session.target.pointer_size
    p = partial(pointer, ptr_size=ptr)
    out = [_line("Usage:", r.usage), _line("Base Address:", p(r.base)),
           _line("End Address:", p(r.end)),
           _line("Region Size:", f"{p(r.size)} ({_size_text(r.size)})"),
           _line("State:", _code(r.state, MEM_NAMES[r.state]))]
    if r.state == pr.MEM_COMMIT or r.state == pr.MEM_FREE:
        out.append(_line("Protect:", _code(r.protect, pr.win32_protect_name(r.protect))))
    else:
        out.append(_line("Protect:", NOT_PRESENT))
    if r.state == pr.MEM_FREE:
        out.append(_line("Type:", NOT_PRESENT))
    else:
        out += [_line("Type:", _code(r.type, MEM_NAMES[r.type])),
                _line("Allocation Base:", p(r.alloc_base)),
                _line("Allocation Protect:",
                      _code(r.alloc_protect, pr.win32_protect_name(r.alloc_protect)))]
    return "\n".join(out) + "\n"


def kernel_block(session, va: int) -> str:
    t = session.target
    ptr = t.pointer_size
    p = partial(pointer, ptr_size=ptr)
    for name, base, size, full in _modules(session):
        if base <= va < base + size:
            return "\n".join([_line("Usage:", "Module"), _line("Base Address:", p(base)),
                              _line("End Address:", p(base + size)),
                              _line("Region Size:", p(size)),
                              _line("VA Type:", "BootLoaded"),
                              _line("Module name:", name),
                              _line("Module path:", f"[{full}]")]) + "\n"
    lo, hi, kind = _kernel_range(session, va)
    return "\n".join([_line("Usage:", "<unknown>"), _line("Base Address:", p(lo)),
                      _line("End Address:", p(hi)), _line("Region Size:", p(hi - lo)),
                      _line("VA Type:", kind)]) + "\n"


def _modules(session) -> list[tuple[str, int, int, str]]:
    """``(file name, base, size, full path)`` of each entry on PsLoadedModuleList."""
    t, ts = session.target, session.target.types
    ptr = t.pointer_size
    head = t.kernel_base + t.symbols("nt")["PsLoadedModuleList"]
    entry = "_LDR_DATA_TABLE_ENTRY"

    def string(cur, path):
        n = session._read_int(cur + ts.offset_of(entry, path + ".Length"), 2) or 0
        buf = session._read_int(cur + ts.offset_of(entry, path + ".Buffer"), ptr) or 0
        raw = read_bytes(session, buf, n) if n and buf else None
        return raw.decode("utf-16-le", "replace") if raw else ""

    out, cur = [], session._read_int(head, ptr)
    while cur and cur != head and len(out) < 1024:
        base = session._read_int(cur + ts.offset_of(entry, "DllBase"), ptr) or 0
        size = session._read_int(cur + ts.offset_of(entry, "SizeOfImage"), 4) or 0
        out.append((string(cur, "BaseDllName"), base, size, string(cur, "FullDllName")))
        cur = session._read_int(cur, ptr)
    return out


def _kernel_ranges(session) -> list[tuple[int, int, str]]:
    """``(first, end, VA type)`` of the system ranges kdsim's kernel keeps: from the Mm*
    variables in guest memory, the page tables and hyperspace from the build's layout."""
    t = session.target
    ptr, prof = t.pointer_size, t.profile
    sym = t.symbols("nt")

    def var(name):
        return session._read_int(t.kernel_base + sym[name], ptr) if name in sym else None

    out = []
    sm, a = prof.self_map, prof.address_space
    out.append((sm.pte_base, prof.paging.table_top(sm.pte_base, "pte") + 1, "PageTables"))
    out.append((a.hyper_space_start, a.hyper_space_end + 1, "HyperSpace"))
    pfn, top = var("MmPfnDatabase"), var("MmHighestPhysicalPage")
    if pfn and top is not None:
        size = -(-(top + 1) * t.types.sizeof("_MMPFN") // PAGE) * PAGE
        out.append((pfn, pfn + size, "PfnDatabase"))
    first_pte, last_pte = var("MmSystemPtesStart"), var("MmSystemPtesEnd")
    if first_pte and last_pte and last_pte >= first_pte:
        # MmSystemPtesStart/End[0] hold the pool's first and last PTE (WRK sysptes.c).
        out.append((prof.va_mapped_by(first_pte), prof.va_mapped_by(last_pte) + PAGE,
                    "SystemPtes"))
    for lo, hi, kind in (("MmNonPagedPoolStart", "MmNonPagedPoolEnd", "NonPagedPool"),
                         ("MmPagedPoolStart", "MmPagedPoolEnd", "PagedPool"),
                         ("MmSystemCacheStart", "MmSystemCacheEnd", "SystemCache")):
        start, end = var(lo), var(hi)
        if start and end and end > start:
            # MmNonPagedPoolEnd is exclusive on the WRK, the others hold the last byte
            # (nt-structures.md §2): an end on a page boundary is exclusive.
            out.append((start, end if end % PAGE == 0 else end + 1, kind))
    if a.session_space_start:
        out.append((a.session_space_start, a.session_space_end + 1, "SessionSpace"))
    # The HAL's last 4 MB (KUSER_SHARED_DATA's kernel VA is there); "Hal" is the VA type
    # name of Vista+ debuggers (MiVaHal), used for the WRK too.
    out.append((a.hal_reserved_start, 1 << 8 * ptr, "Hal"))
    return out


def _kernel_range(session, va: int) -> tuple[int, int, str]:
    ranges = _kernel_ranges(session)
    for lo, hi, kind in ranges:
        if lo <= va < hi:
            return lo, hi, kind
    t = session.target
    start = session._read_int(t.kernel_base + t.symbols("nt")["MmSystemRangeStart"],
                              t.pointer_size) or t.profile.address_space.system_range_start
    bounds = [user_limit(session) + 1, start, 1 << 8 * t.pointer_size]
    bounds += [x for lo_, hi_, _ in ranges for x in (lo_, hi_)]
    # Loaded modules end an unused stretch too (nt and hal inside the WRK's KSEG0).
    bounds += [x for _, base, size, _ in _modules(session) for x in (base, base + size)]
    return (max(b for b in bounds if b <= va), min(b for b in bounds if b > va), "Unused")


# -- -summary ---------------------------------------------------------------------------------

def _hi_lo(value: int) -> str:
    return f"{value >> 32:x}`{value & 0xFFFFFFFF:08x}"


def _table(title: str, groups: dict, busy: int, total: int, free_rows=()) -> list[str]:
    out = [title]
    for name, (count, size) in sorted(groups.items(), key=lambda kv: (-kv[1][1], kv[0])):
        of_busy = " " * 8 if name in free_rows or not busy else f"{100 * size / busy:7.2f}%"
        out.append(f"{name:<33}{count:>10}{_hi_lo(size):>18} ({_size_text(size)})"
                   f"{of_busy}{100 * size / total:8.2f}%")
    return out


def summary(session, regions: list[Region]) -> str:
    total = sum(r.size for r in regions)
    busy = sum(r.size for r in regions if r.state != pr.MEM_FREE)
    usage, kinds, states, protects, largest = {}, {}, {}, {}, {}

    def add(table, key, r):
        count, size = table.get(key, (0, 0))
        table[key] = (count + 1, size + r.size)

    for r in regions:
        add(usage, r.usage, r)
        add(states, MEM_NAMES[r.state], r)
        if r.state != pr.MEM_FREE:
            add(kinds, MEM_NAMES[r.type], r)
        if r.state == pr.MEM_COMMIT:
            add(protects, pr.win32_protect_name(r.protect).replace(" | ", "|"), r)
        if r.usage not in largest or r.size > largest[r.usage].size:
            largest[r.usage] = r
    tail = "RgnCount ----------- Total Size -------- %ofBusy %ofTotal"
    out = [""]
    out += _table("--- Usage Summary ---------------- " + tail, usage, busy, total, ("Free",))
    out += ["", *_table("--- Type Summary (for busy) ------ " + tail, kinds, busy, total)]
    out += ["", *_table("--- State Summary ---------------- " + tail, states, busy, total,
                        ("MEM_FREE",))]
    out += ["", *_table("--- Protect Summary (for commit) - " + tail, protects, busy, total)]
    out += ["", "--- Largest Region by Usage ----------- Base Address -------- Region Size "
                "----------"]
    for name in sorted(usage, key=lambda k: (-usage[k][1], k)):
        r = largest[name]
        out.append(f"{name:<33}{_hi_lo(r.base):>21}{_hi_lo(r.size):>18}"
                   f" ({_size_text(r.size)})")
    return "\n".join(out) + "\n"


# -- the command ------------------------------------------------------------------------------

def _unreadable(e: TreeError, ptr: int) -> str:
    return f"Unable to read VAD at {plain_pointer(e.addr, ptr)}\n"


@REGISTRY.command("!address", syntax="!address Address | !address -summary",
                  summary="display the region, state and protection of an address",
                  help="User addresses are looked up in the implicit process (its VAD tree "
                       "and page tables, as VirtualQuery does); kernel addresses name their "
                       "module or system range.  -summary sums the implicit process's user "
                       "address space by usage, type, state and protection.  kdsim has no "
                       "threads, so stacks and TEBs show as <unknown>.")
def bang_address(session, args: str, offset: int) -> str:
    text = args.strip()
    ptr = session.target.pointer_size
    if not text:
        raise CommandError("kdsim: !address needs an address or -summary\n")
    ep = implicit_process(session)
    if text.lower() in ("-summary", "/summary"):
        try:
            return summary(session, user_regions(session, ep))
        except TreeError as e:
            raise CommandError(_unreadable(e, ptr)) from None
    va = session.evaluator().evaluate(args) & ((1 << 8 * ptr) - 1)
    if va > user_limit(session):
        return kernel_block(session, va)
    try:
        regions = user_regions(session, ep)
    except TreeError as e:
        raise CommandError(_unreadable(e, ptr)) from None
    for r in regions:
        if r.base <= va < r.end:
            return region_block(session, r)
    raise CommandError(f"kdsim: no region holds {pointer(va, ptr)}\n")     # not reached
