"""``!pfn``: one entry of the PFN database, read from guest memory (windbg-formats.md §7).

The debugger knows the database the way kdexts does: ``nt!MmPfnDatabase`` holds its
address, ``nt!MmHighestPhysicalPage`` its last entry, and the ``_MMPFN`` layout of the
target's symbols says where every field is (nt-structures.md §5).  :class:`PfnDatabase`
is that knowledge; ``!memusage`` reads the database through it too, in big chunks.

Layout choices (the reference has verbatim samples of Active pages only):

* win7-x64 prints the x64 layout of the RF2 sample (``used entry count``, the cache
  attribute, ``Priority``); the Windows 7 x86 targets print the x86 layout of the Win7
  PAE sample (era 2).  wrk-x86 (Server 2003, before Vista) prints lines 3-5 as the
  x86 sample of the debugger documentation does (MSD-pfn, the same in workshops.md D-5):
  ``reference count`` followed by ``color`` only, no cache attribute and no priority --
  although the WRK's _MMPFN has u4.Priority, no pre-Vista transcript prints it.  The
  build is told by its profile's major version (< 6), the fields by name in the
  target's layout (the WRK keeps PageColor in u3.e1, Win7 in u4).
* The location word is the MMLISTS name the reference gives (``Zeroed``, ``Free``,
  ``Standby``, ``Modified``, ``ModNoWrt``, ``Bad``, ``Active``, ``Transition``) in a
  10-column field, as the samples' ``Active     M`` spacing implies.
* Flags are the four of the reference: R ReadInProgress, W WriteInProgress, M Modified,
  P ParityError (the reference infers P from a WinDbg-compatible tool).  The letters are
  written together after the location, padded to 8 columns (the x64 sample's ``M`` and
  7 blanks); the names follow on the next line, separated by one space, padded to 24
  columns (the sample's ``Modified`` and 16 blanks).  The same widths are used on x86,
  whose sample lost its trailing blanks.
* The cache attribute (MI_PFN_CACHE_ATTRIBUTE) is named NonCached, Cached, WriteCombined
  or NotMapped in a 10-column field (only ``Cached`` is verified).
* Hex fields print at least as many digits as the samples and grow as needed, like a
  ``%08I64X`` does: an x64 MM_EMPTY_LIST link prints as FFFFFFFFFFFFFFFF.

Arguments: a page frame number, or an address inside the PFN database (the entry that
contains it; the header then names that entry's start).  Errors (no verbatim text is
known; kdsim's wording): a number above MmHighestPhysicalPage gives
``PFN <n> is beyond the highest physical page (<h>)``; an entry that cannot be read prints
its header line and then ``Memory read error <address>`` (the wording of §19's ``dt``).
``!pfn 0 1`` (the undocumented whole-database dump) is not supported.
"""
from __future__ import annotations

from ..fmt import pointer
from ..registry import REGISTRY
from ..session import CommandError

LOCATIONS = ("Zeroed", "Free", "Standby", "Modified", "ModNoWrt", "Bad", "Active", "Transition")
CACHE = ("NonCached", "Cached", "WriteCombined", "NotMapped")
FLAGS = (("R", "ReadInProgress"), ("W", "WriteInProgress"), ("M", "Modified"),
         ("P", "ParityError"))
LETTERS_WIDTH, NAMES_WIDTH = 8, 24
CHUNK = 1 << 20                       # bytes of PFN database per guest read


def _first(ts, paths):
    """The first of ``paths`` the target's ``_MMPFN`` has (builds move fields around)."""
    for path in paths:
        if ts.has_field("_MMPFN", path):
            return ts.field("_MMPFN", path)
    return None


class PfnDatabase:
    """The PFN database as the debugger finds it in guest memory."""

    def __init__(self, session):
        t = self.target = session.target
        self.cr3 = session.context_cr3
        self.ptr = t.pointer_size
        ts = t.types
        self.size = ts.sizeof("_MMPFN")
        self.base = self.variable("MmPfnDatabase")
        self.highest = self.variable("MmHighestPhysicalPage")
        f = lambda path: ts.field("_MMPFN", path)  # noqa: E731
        self.f_flink, self.f_blink = f("u1.Flink"), f("u2.Blink")
        self.f_pte, self.f_orig = f("PteAddress"), f("OriginalPte.u.Long")
        self.f_reference, self.f_frame = f("u3.e2.ReferenceCount"), f("u4.PteFrame")
        self.f_location, self.f_cache = f("u3.e1.PageLocation"), f("u3.e1.CacheAttribute")
        self.f_color = _first(ts, ("u4.PageColor", "u3.e1.PageColor"))
        self.f_priority = _first(ts, ("u3.e1.Priority", "u4.Priority"))
        self.f_used = _first(ts, ("UsedPageTableEntries",))
        self.f_flags = [(letter, name, f("u3.e1." + name)) for letter, name in FLAGS]

    def variable(self, name: str) -> int:
        """A pointer-sized nt variable (MmPfnDatabase, MmHighestPhysicalPage, ...)."""
        t = self.target
        addr = t.kernel_base + t.symbols("nt")[name]
        r = t.read_virtual(addr, self.ptr, cr3=self.cr3)
        if not r.complete:
            raise CommandError(f"Unable to read nt!{name} at {pointer(addr, self.ptr)}\n")
        return int.from_bytes(r.data, "little")

    @property
    def end(self) -> int:
        """The first address past the last entry."""
        return self.base + (self.highest + 1) * self.size

    def address(self, pfn: int) -> int:
        return self.base + pfn * self.size

    def contains(self, va: int) -> bool:
        return self.base <= va < self.end

    def read(self, first: int, count: int):
        """``(first_pfn, Read)`` pieces covering entries first..first+count-1, each at most
        CHUNK bytes: one guest read per piece, never one per field."""
        per = max(1, CHUNK // self.size)
        for lo in range(first, first + count, per):
            n = min(per, first + count - lo)
            yield lo, self.target.read_virtual(self.address(lo), n * self.size, cr3=self.cr3)

    def decode(self, buf: bytes, at: int = 0) -> dict:
        """The fields ``!pfn`` prints, from the entry at ``buf[at:]``."""
        def get(fld):
            return 0 if fld is None else fld.unpack_from(buf, at) & ((1 << 8 * fld.size) - 1)
        return {"flink": get(self.f_flink), "blink": get(self.f_blink),
                "pte": get(self.f_pte), "orig": get(self.f_orig),
                "reference": get(self.f_reference), "frame": get(self.f_frame),
                "location": get(self.f_location), "cache": get(self.f_cache),
                "color": get(self.f_color), "priority": get(self.f_priority),
                "used": get(self.f_used),
                "flags": [(letter, name) for letter, name, fld in self.f_flags if get(fld)]}


def format_entry(pfn: int, address: int, e: dict, ptr: int, before_vista: bool = False) -> str:
    digits = 2 * ptr
    letters = "".join(letter for letter, _ in e["flags"])
    names = " ".join(name for _, name in e["flags"])
    cache = CACHE[e["cache"]]
    head = (f"    PFN {pfn:08X} at address {address:0{digits}X}\n"
            f"    flink       {e['flink']:08X}  blink / share count {e['blink']:08X}"
            f"  pteaddress {e['pte']:0{digits}X}\n")
    if before_vista:
        # The pre-Vista debugger's lines (windbg-formats.md §7.3, the MSD-pfn x86 sample
        # and workshops.md D-5): no cache attribute and no priority on line 3, the
        # containing page right-justified in 14 columns after "page", the location in 9, each flag
        # letter as "  M" padded to 8, and the names padded to 18 -- or a line holding one
        # blank when there are none, as the sample prints it.
        flags = "".join(f"  {letter:<6}" for letter, _ in e["flags"])
        return head + "\n".join((
            f"    reference count {e['reference']:04X}{'':33}color {e['color']:X}",
            f"    restore pte {e['orig']:08X}  containing page{format(e['frame'], '06X'):>14}"
            f"  {LOCATIONS[e['location']]:<9}{flags}",
            f"    {names:<18}" if names else " ",
        )) + "\n"
    if ptr == 8:
        counts = (f"    reference count {e['reference']:04X}    used entry count  {e['used']:04X}"
                  f"      {cache:<10}color {e['color']:X}   Priority {e['priority']}")
    else:
        counts = (f"    reference count {e['reference']:04X}   {cache:<10} color {e['color']:X}"
                  f"   Priority {e['priority']}")
    return head + "\n".join((
        counts,
        f"    restore pte {e['orig']:08X}  containing page {e['frame']:06X}"
        f"  {LOCATIONS[e['location']]:<10} {letters:<{LETTERS_WIDTH}}",
        f"    {names:<{NAMES_WIDTH}}",
    )) + "\n"


@REGISTRY.command("!pfn", syntax="!pfn PageFrame | PfnEntryAddress",
                  summary="display a page's entry in the PFN database",
                  help="PageFrame is a physical page number (hex, as !pte prints it); an\n"
                       "address inside the PFN database names the entry that holds it.")
def pfn(session, args: str, offset: int) -> str:
    value = session.evaluator().evaluate(args)
    db = PfnDatabase(session)
    if db.ptr == 4:
        value &= 0xFFFFFFFF
    if db.contains(value):
        number = (value - db.base) // db.size
    elif value > db.highest:
        raise CommandError(f"PFN {value:X} is beyond the highest physical page "
                           f"({db.highest:X})\n")
    else:
        number = value
    address = db.address(number)
    r = db.target.read_virtual(address, db.size, cr3=db.cr3)
    if not r.complete:
        return (f"    PFN {number:08X} at address {address:0{2 * db.ptr}X}\n"
                f"Memory read error {pointer(address, db.ptr)}\n")
    return format_entry(number, address, db.decode(r.data), db.ptr,
                        db.target.profile.version.major < 6)
