"""``!memusage``: how the physical pages are used, counted by reading the whole PFN
database from guest memory (windbg-formats.md §11.2).

The pages counted are the RAM runs of ``nt!MmPhysicalMemoryBlock`` (the holes of the
physical address space have entries but no pages, so TOTAL is the number of physical
pages).  Each run's entries are read in 1 MB pieces and their PageLocation decoded with
numpy, so a 2 GB machine (512K entries) takes one read per megabyte, not one per field.

Choices (kdsim's; the reference has one verbatim sample, of flags 0):

* The progress lines are printed once, finished, as the sample shows them.
* ``SLIST/Temp`` is 0: kdsim keeps no pages on SLISTs.  ``Unknown`` counts entries that
  cannot be read (an unmapped piece of the database), which a live kdsim machine never has.
* Flags 8 prints the summary only (MSD).  Flags 0 adds the kernel-map and PFN-scan
  progress lines and the ``Usage Summary (in Kb)`` table, one ``mapped_file( name )`` row
  per control area of a mapped file (an image or a data file) with pages in memory, in
  control-area order: the sample's columns (Valid %6d, Standby %7d, then %6d each) in KB.
  A page belongs to the control area whose subsection its PFN's OriginalPte names (a
  prototype page's restore PTE is a subsection PTE); Valid counts active pages, Standby
  standby ones, Dirty modified ones, Shared the active pages more than one PTE maps.
  Locked and PageTables are 0 (kdsim locks no section pages; a file has no page tables).
  The name is the last part of FILE_OBJECT.FileName, or ``Can't read file name buffer
  at <addr>`` as the sample shows.  Left out: the ``Dangling`` counts and the rows for
  processes, drivers, pools and pagefile-backed sections (their per-page attribution
  would have to be invented).  Flags 1 and 2 (the modified-no-write summary and detail)
  print the summary: kdsim never puts a page on that list.
"""
from __future__ import annotations

import numpy as np

from kdsim.nt.pte import PteCodec

from ..registry import REGISTRY
from ..session import CommandError
from .pfn import PfnDatabase
from .vad import file_object

ROWS = (("Zeroed", 0), ("Free", 1), ("Standby", 2), ("Modified", 3), ("ModifiedNoWrite", 4),
        ("Active/Valid", 6), ("Transition", 7), ("SLIST/Temp", None), ("Bad", 5),
        ("Unknown", "unknown"))
PROGRESS = ("loading PFN database\n"
            "loading (100% complete)\n"
            "Compiling memory usage data (99% Complete).\n")


def physical_runs(session, db: PfnDatabase) -> list[tuple[int, int]]:
    """``(BasePage, PageCount)`` of every run in nt!MmPhysicalMemoryBlock."""
    t, ts = session.target, session.target.types
    desc = db.variable("MmPhysicalMemoryBlock")
    head = ts.offset_of("_PHYSICAL_MEMORY_DESCRIPTOR", "Run")
    run_size = ts.sizeof("_PHYSICAL_MEMORY_RUN")
    r = t.read_virtual(desc, head, cr3=db.cr3)
    if not r.complete:
        raise CommandError(f"Unable to read the physical memory block at {desc:x}\n")
    count = ts.field("_PHYSICAL_MEMORY_DESCRIPTOR", "NumberOfRuns").unpack_from(r.data)
    body = t.read_virtual(desc + head, count * run_size, cr3=db.cr3)
    if count > 1024 or not body.complete:
        raise CommandError(f"Unable to read the physical memory block at {desc:x}\n")
    f_base = ts.field("_PHYSICAL_MEMORY_RUN", "BasePage")
    f_count = ts.field("_PHYSICAL_MEMORY_RUN", "PageCount")
    return [(f_base.unpack_from(body.data, i * run_size),
             f_count.unpack_from(body.data, i * run_size)) for i in range(count)]


def _column(f, data: bytes, n: int, size: int) -> np.ndarray:
    """Field ``f`` of ``n`` consecutive entries of ``size`` bytes in ``data``."""
    rows = np.frombuffer(data, dtype=np.uint8, count=n * size).reshape(n, size)
    unit = np.zeros(n, dtype=np.uint64)
    for i in range(f.size):
        unit |= rows[:, f.offset + i].astype(np.uint64) << np.uint64(8 * i)
    if f.bit_width:
        unit = (unit >> np.uint64(f.bit_pos)) & np.uint64(f.mask)
    return unit


def _locations(db: PfnDatabase, data: bytes, n: int) -> np.ndarray:
    """PageLocation of ``n`` consecutive entries in ``data``."""
    return _column(db.f_location, data, n, db.size).astype(np.uint32)


def count_pages(session, db: PfnDatabase, files: bool = False):
    """How many pages of RAM are at each PageLocation, how many entries could not be
    read, and -- with ``files`` -- the pages of mapped files by control area (one pass
    over the database serves both)."""
    counts = np.zeros(8, dtype=np.int64)
    unknown = 0
    usage = _FileUsage(session, db) if files else None
    for base_page, pages in physical_runs(session, db):
        last = min(base_page + pages, db.highest + 1)
        for lo, r in db.read(base_page, max(0, last - base_page)):
            n = len(r.data) // db.size
            loc = _locations(db, r.data, n)
            readable = None
            if r.complete:
                counts += np.bincount(loc, minlength=8)
            else:
                ok = np.frombuffer(bytes(r.readable), dtype=np.uint8).reshape(n, db.size)
                readable = ok.all(axis=1)
                counts += np.bincount(loc[readable], minlength=8)
                unknown += int(n - readable.sum())
            if usage is not None:
                usage.add(r.data, n, loc, readable)
    totals = [int(c) for c in counts]
    return (totals, unknown, usage.rows) if files else (totals, unknown)


ACTIVE, STANDBY, MODIFIED, MODIFIED_NO_WRITE = 6, 2, 3, 4
TABLE_HEAD = ("  Building kernel map\n"
              "  Finished building kernel map\n"
              "Scanning PFN database - (100% complete) \n"
              "\n"
              "  Usage Summary (in Kb):\n"
              "Control       Valid Standby Dirty Shared Locked PageTables  name\n")


class _FileUsage:
    """Pages of mapped files by control area: [valid, standby, dirty, shared] counts."""

    def __init__(self, session, db: PfnDatabase):
        self.session, self.db = session, db
        ts = session.target.types
        # Win7 keeps PrototypePte in u4, the WRK in u3.e1.
        self.f_proto = ts.field("_MMPFN", "u4.PrototypePte"
                                if ts.has_field("_MMPFN", "u4.PrototypePte")
                                else "u3.e1.PrototypePte")
        self.f_share = ts.field("_MMPFN", "u2.ShareCount")
        self.f_ca = ts.field("_SUBSECTION", "ControlArea")
        self.codec = PteCodec(session.target.profile)
        self.ca_of_subsection: dict[int, int | None] = {}
        self.rows: dict[int, list[int]] = {}

    def add(self, data: bytes, n: int, loc, readable) -> None:
        """Count the prototype pages among ``n`` entries read in ``data``."""
        db = self.db
        keep = (_column(self.f_proto, data, n, db.size) == 1) & np.isin(
            loc, (ACTIVE, STANDBY, MODIFIED, MODIFIED_NO_WRITE))
        if readable is not None:
            keep &= readable
        for k in np.flatnonzero(keep):
            at = int(k) * db.size
            orig = db.f_orig.unpack_from(data, at) & ((1 << 8 * db.f_orig.size) - 1)
            try:
                d = self.codec.decode(orig, in_prototype_array=True)
            except ValueError:
                continue
            if d.kind != "subsection" or not d.subsection_address:
                continue                # a pagefile-backed section's page
            ca = self._control_area(d.subsection_address)
            if not ca:
                continue
            row = self.rows.setdefault(ca, [0, 0, 0, 0])
            where = int(loc[k])
            if where == ACTIVE:
                row[0] += 1
                if self.f_share.unpack_from(data, at) > 1:
                    row[3] += 1
            elif where == STANDBY:
                row[1] += 1
            else:
                row[2] += 1

    def _control_area(self, subsection: int) -> int | None:
        if subsection not in self.ca_of_subsection:
            self.ca_of_subsection[subsection] = self.session._read_int(
                subsection + self.f_ca.offset, self.f_ca.size)
        return self.ca_of_subsection[subsection]


def _file_label(session, ca: int) -> str:
    """The name a row shows: the last part of FILE_OBJECT.FileName."""
    ts = session.target.types
    fo = file_object(session, ca)
    length = ts.field("_FILE_OBJECT", "FileName.Length")
    buf = ts.field("_FILE_OBJECT", "FileName.Buffer")
    n = session._read_int(fo + length.offset, length.size) if fo else None
    p = session._read_int(fo + buf.offset, buf.size) if fo else None
    if not n or not p:
        return "No name for file"
    r = session.target.read_virtual(p, n, cr3=session.context_cr3)
    if not r.complete:
        return f"Can't read file name buffer at {p:0{2 * session.target.pointer_size}x}"
    return r.data.decode("utf-16-le", "replace").rsplit("\\", 1)[-1]


def usage_table(session, rows: dict[int, list[int]]) -> str:
    ptr = session.target.pointer_size
    lines = []
    for ca, (valid, standby, dirty, shared) in sorted(rows.items()):
        lines.append(f"{ca:0{2 * ptr}x}{4 * valid:6d}{4 * standby:7d}{4 * dirty:6d}"
                     f"{4 * shared:6d}{0:6d}{0:6d}  mapped_file( {_file_label(session, ca)} )")
    return TABLE_HEAD + "".join(line + "\n" for line in lines)


def summary(counts: list[int], unknown: int) -> str:
    lines = []
    for label, key in ROWS:
        n = unknown if key == "unknown" else 0 if key is None else counts[key]
        lines.append(f"{label + ':':>20}{n:9d} ({4 * n:8d} kb)")
    total = sum(counts) + unknown
    lines.append(f"{'TOTAL:':>20}{total:9d} ({4 * total:8d} kb)")
    return "\n".join(lines) + "\n"


@REGISTRY.command("!memusage", syntax="!memusage [Flags]",
                  summary="count the physical pages on each page list",
                  help="Reads the whole PFN database and counts the pages of RAM by where they\n"
                       "are (zeroed, free, standby, modified, active, ...).  No flags: then\n"
                       "the Usage Summary table, one mapped_file row per mapped file's\n"
                       "control area (kdsim leaves out the process, driver and pool rows).\n"
                       "Flags 8 (and 1, 2): the summary only.")
def memusage(session, args: str, offset: int) -> str:
    flags = session.evaluator().evaluate(args) if args.strip() else 0
    db = PfnDatabase(session)
    if flags:
        return PROGRESS + summary(*count_pages(session, db))
    counts, unknown, rows = count_pages(session, db, files=True)
    return PROGRESS + summary(counts, unknown) + usage_table(session, rows)
