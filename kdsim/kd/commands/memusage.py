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
* Flags 8 prints the summary only (MSD).  Flags 0 prints the same: the detailed part of
  the real command (the ``Dangling`` counts and the per-control-area ``Usage Summary``)
  is left out, because kdsim's control areas have no file objects to name and the
  per-process attribution would have to be invented.  Flags 1 and 2 (the modified-no-write
  summary and detail) print the summary too: kdsim never puts a page on that list.
"""
from __future__ import annotations

import numpy as np

from ..registry import REGISTRY
from ..session import CommandError
from .pfn import PfnDatabase

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


def _locations(db: PfnDatabase, data: bytes, n: int) -> np.ndarray:
    """PageLocation of ``n`` consecutive entries in ``data``."""
    f = db.f_location
    rows = np.frombuffer(data, dtype=np.uint8, count=n * db.size).reshape(n, db.size)
    unit = np.zeros(n, dtype=np.uint32)
    for i in range(f.size):
        unit |= rows[:, f.offset + i].astype(np.uint32) << np.uint32(8 * i)
    return (unit >> np.uint32(f.bit_pos)) & np.uint32(f.mask)


def count_pages(session, db: PfnDatabase) -> tuple[list[int], int]:
    """How many pages of RAM are at each PageLocation, and how many entries could not
    be read."""
    counts = np.zeros(8, dtype=np.int64)
    unknown = 0
    for base_page, pages in physical_runs(session, db):
        last = min(base_page + pages, db.highest + 1)
        for lo, r in db.read(base_page, max(0, last - base_page)):
            n = len(r.data) // db.size
            loc = _locations(db, r.data, n)
            if r.complete:
                counts += np.bincount(loc, minlength=8)
                continue
            ok = np.frombuffer(bytes(r.readable), dtype=np.uint8).reshape(n, db.size)
            readable = ok.all(axis=1)
            counts += np.bincount(loc[readable], minlength=8)
            unknown += int(n - readable.sum())
    return [int(c) for c in counts], unknown


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
                       "are (zeroed, free, standby, modified, active, ...).  Flags 8: the\n"
                       "summary only; kdsim prints the summary for every flags value.")
def memusage(session, args: str, offset: int) -> str:
    if args.strip():
        session.evaluator().evaluate(args)        # the flags: every value prints the summary
    db = PfnDatabase(session)
    counts, unknown = count_pages(session, db)
    return PROGRESS + summary(counts, unknown)
