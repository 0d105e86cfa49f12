"""The PFN database, in guest memory at MmPfnDatabase, and the page lists.

One ``_MMPFN`` per physical page, laid out by the target's profile.  The memory
manager reaches the entries through a numpy record view of the database's physical
pages (no copy): a record has the words ``u1``, ``u2``, ``pte`` (PteAddress), ``u3``,
``orig`` (OriginalPte) and ``u4`` at the profile's offsets, and the bit fields inside
``u3``/``u4`` (PageLocation, Modified, ReferenceCount, PteFrame, ...) are reached by
shift and mask from the layout.  The list heads are ``_MMPFNLIST`` structures at their
symbol addresses; pages on a list are linked through u1.Flink / u2.Blink by PFN number,
MM_EMPTY_LIST (-1) ending the chain (nt-structures.md §5).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

# MMLISTS (PageLocation)
ZEROED, FREE, STANDBY, MODIFIED, MODIFIED_NO_WRITE, BAD, ACTIVE, TRANSITION = range(8)
LIST_NAMES = ("ZeroedPageList", "FreePageList", "StandbyPageList", "ModifiedPageList",
              "ModifiedNoWritePageList", "BadPageList", "ActiveAndValid", "TransitionPage")
AVAILABLE_LISTS = (ZEROED, FREE, STANDBY)     # what MmAvailablePages counts
MI_PFN_CACHED = 1                              # MI_PFN_CACHE_ATTRIBUTE MiCached
DEFAULT_PRIORITY = 3                           # MI_DEFAULT_PFN_PRIORITY (WRK mi.h)


class Bits(NamedTuple):
    """A bit field inside one of the record's words."""
    word: str
    shift: int
    mask: int

    def get(self, value: int) -> int:
        return (value >> self.shift) & self.mask

    def put(self, value: int, field: int) -> int:
        return (value & ~(self.mask << self.shift)) | ((field & self.mask) << self.shift)


def _uint(size: int):
    return {2: np.uint16, 4: np.uint32, 8: np.uint64}[size]


class PfnLayout:
    """Where the words and bit fields of ``_MMPFN`` are on one target."""

    def __init__(self, ts):
        self.size = ts.sizeof("_MMPFN")
        f = lambda path: ts.field("_MMPFN", path)  # noqa: E731
        words = {"u1": f("u1"), "u2": f("u2"), "pte": f("PteAddress"), "u3": f("u3"),
                 "orig": f("OriginalPte"), "u4": f("u4")}
        self.word_size = {k: v.size for k, v in words.items()}
        self.dtype = np.dtype({"names": list(words),
                               "formats": [_uint(v.size) for v in words.values()],
                               "offsets": [v.offset for v in words.values()],
                               "itemsize": self.size})
        self.empty = (1 << (8 * words["u1"].size)) - 1     # MM_EMPTY_LIST as a PFN_NUMBER

        def bits(path: str, word: str) -> Bits:
            fld = f(path)
            shift = (fld.offset - words[word].offset) * 8 + (fld.bit_pos or 0)
            return Bits(word, shift, (1 << fld.bit_width) - 1 if fld.bit_width else
                        (1 << (8 * fld.size)) - 1)

        self.location = bits("u3.e1.PageLocation", "u3")
        self.modified = bits("u3.e1.Modified", "u3")
        self.reference = bits("u3.e2.ReferenceCount", "u3")
        self.cache = bits("u3.e1.CacheAttribute", "u3")
        self.frame = bits("u4.PteFrame", "u4")
        # Win7 keeps PrototypePte and Priority in u4 / u3.e1; the WRK in u3.e1 / u4.
        self.prototype = (bits("u4.PrototypePte", "u4") if ts.has_field("_MMPFN", "u4.PrototypePte")
                          else bits("u3.e1.PrototypePte", "u3"))
        self.priority = (bits("u3.e1.Priority", "u3") if ts.has_field("_MMPFN", "u3.e1.Priority")
                         else bits("u4.Priority", "u4"))
        head = lambda path: ts.field("_MMPFNLIST", path)  # noqa: E731
        self.head_total, self.head_name = head("Total"), head("ListName")
        self.head_flink, self.head_blink = head("Flink"), head("Blink")



LAZY_RUN = 1 << 16          # runs of free pages longer than this are generated on touch


class PfnDatabase:
    """The entries (a record view of guest RAM) and the list heads (``heads[list_id]`` is
    the VA of its ``_MMPFNLIST`` in ``kmem``)."""

    def __init__(self, layout: PfnLayout, raw: np.ndarray, kmem, heads: dict[int, int],
                 machine=None, pa: int | None = None):
        self.lay = layout
        self.e = raw.view(layout.dtype)
        self.kmem = kmem
        self.heads = heads
        self.machine, self.pa = machine, pa      # where the entries are in guest RAM

    @property
    def count(self) -> int:
        return len(self.e)

    # -- one entry -------------------------------------------------------------------

    def get(self, pfn: int, bits: Bits) -> int:
        return bits.get(int(self.e[bits.word][pfn]))

    def put(self, pfn: int, bits: Bits, value: int) -> None:
        w = self.e[bits.word]
        w[pfn] = bits.put(int(w[pfn]), value)

    def location(self, pfn: int) -> int:
        return self.get(pfn, self.lay.location)

    def make_active(self, pfn: int, pte_va: int, pte_frame: int, original_pte: int, *,
                    share: int = 1, reference: int = 1, prototype: bool = False,
                    modified: bool = False, new_reference: bool = True,
                    priority: int = DEFAULT_PRIORITY) -> None:
        """The page now backs the PTE at ``pte_va`` (in page-table page ``pte_frame``).

        As MiInitializePfn does, a page newly named by a PTE adds one to the share count
        of the page holding that PTE (``new_reference``; not for a page coming back from
        a transition PTE, which never stopped naming it)."""
        lay, rec = self.lay, self.e[pfn]
        if new_reference and pte_frame != pfn and 0 <= pte_frame < len(self.e):
            self.e["u2"][pte_frame] += 1
        rec["u1"] = 0                               # WsIndex: set by the working set
        rec["u2"] = share                           # ShareCount
        rec["pte"] = pte_va
        rec["orig"] = original_pte
        u3 = lay.location.put(0, ACTIVE)
        u3 = lay.reference.put(u3, reference)
        u3 = lay.modified.put(u3, int(modified))
        u3 = lay.cache.put(u3, MI_PFN_CACHED)
        if lay.priority.word == "u3":
            u3 = lay.priority.put(u3, priority)
        u4 = lay.frame.put(0, pte_frame)
        if lay.prototype.word == "u3":
            u3 = lay.prototype.put(u3, int(prototype))
        else:
            u4 = lay.prototype.put(u4, int(prototype))
        if lay.priority.word == "u4":
            u4 = lay.priority.put(u4, priority)
        rec["u3"] = u3
        rec["u4"] = u4

    # -- lists -----------------------------------------------------------------------

    def _head(self, list_id: int) -> tuple[int, int, int]:
        va, lay, k = self.heads[list_id], self.lay, self.kmem
        return (lay.head_total.read(k, va), lay.head_flink.read(k, va),
                lay.head_blink.read(k, va))

    def _set_head(self, list_id: int, total: int, flink: int, blink: int) -> None:
        va, lay, k = self.heads[list_id], self.lay, self.kmem
        lay.head_total.write(k, va, total)
        lay.head_flink.write(k, va, flink)
        lay.head_blink.write(k, va, blink)

    def init_heads(self) -> None:
        for list_id, va in self.heads.items():
            self.lay.head_name.write(self.kmem, va, list_id)
            self._set_head(list_id, 0, self.lay.empty, self.lay.empty)

    def total(self, list_id: int) -> int:
        return self._head(list_id)[0]

    def insert(self, list_id: int, pfn: int, *, head: bool = False) -> None:
        """Put a page on a list (at the tail, or the head), as MiInsertPageInList."""
        empty = self.lay.empty
        total, first, last = self._head(list_id)
        rec = self.e[pfn]
        if head:
            rec["u1"], rec["u2"] = first, empty
            if first != empty:
                self.e["u2"][first] = pfn
            else:
                last = pfn
            first = pfn
        else:
            rec["u1"], rec["u2"] = empty, last
            if last != empty:
                self.e["u1"][last] = pfn
            else:
                first = pfn
            last = pfn
        u3 = self.lay.location.put(int(rec["u3"]), list_id)
        rec["u3"] = self.lay.reference.put(u3, 0)
        self._set_head(list_id, total + 1, first, last)

    def release(self, pfn: int, list_id: int = FREE) -> None:
        """The page stops being named by its PTE (MiDecrementShareCount on its PteFrame)
        and goes to a list of pages nobody needs (free, or zeroed)."""
        frame = self.get(pfn, self.lay.frame)
        if frame != pfn and 0 <= frame < len(self.e) and self.location(frame) == ACTIVE \
                and int(self.e["u2"][frame]):
            self.e["u2"][frame] -= 1
        self.e["pte"][pfn] |= 1         # MI_SET_PFN_DELETED: no PTE names the page any more
        self.insert(list_id, pfn)

    def recount_shares(self, active: np.ndarray) -> None:
        """Boot: every active page's share count is one (the PTE that maps it, or for a
        table page the entry above) plus the active pages whose PteFrame it is."""
        frames = np.flatnonzero(active)
        parents = (self.e["u4"][frames].astype(np.uint64) >> np.uint64(self.lay.frame.shift)) \
            & np.uint64(self.lay.frame.mask)
        parents = parents.astype(np.int64)
        keep = parents != frames
        counts = np.bincount(parents[keep], minlength=len(self.e))
        self.e["u2"][frames] = 1 + counts[frames]

    def unlink(self, pfn: int) -> int:
        """Take a page off whichever list it is on; returns that list."""
        empty = self.lay.empty
        list_id = self.location(pfn)
        if list_id not in self.heads:
            raise ValueError(f"page {pfn:#x} is not on a list ({LIST_NAMES[list_id]})")
        total, first, last = self._head(list_id)
        nxt, prv = int(self.e["u1"][pfn]), int(self.e["u2"][pfn])
        if prv != empty:
            self.e["u1"][prv] = nxt
        else:
            first = nxt
        if nxt != empty:
            self.e["u2"][nxt] = prv
        else:
            last = prv
        self._set_head(list_id, total - 1, first, last)
        return list_id

    def pop_many(self, list_id: int, count: int) -> np.ndarray:
        """The first ``count`` pages of a list, taken off it in one step."""
        total, first, last = self._head(list_id)
        if count > total:
            raise ValueError(f"{LIST_NAMES[list_id]} has {total} pages, not {count}")
        out = np.empty(count, dtype=np.int64)
        u1 = self.e["u1"]
        cur = first
        for i in range(count):
            out[i] = cur
            cur = int(u1[cur])
        empty = self.lay.empty
        if cur != empty:
            self.e["u2"][cur] = empty
        else:
            last = empty
        self._set_head(list_id, total - count, cur, last)
        return out

    def pop(self, list_id: int) -> int | None:
        """The first page of a list, taken off it; None if the list is empty."""
        first = self._head(list_id)[1]
        if first == self.lay.empty:
            return None
        self.unlink(first)
        return first

    def link_all(self, list_id: int, runs: list[tuple[int, int]]) -> None:
        """Boot: chain the pages of ``runs`` (ascending ``(first, end)`` PFN ranges) as the
        whole of an empty list.  A 64 GB guest has 16 M pages: the entries are built a
        chunk at a time and copied into the database as bytes."""
        runs = [(lo, hi) for lo, hi in runs if hi > lo]
        if not runs:
            return
        if self.total(list_id):
            raise ValueError("link_all needs an empty list")
        empty = self.lay.empty
        lay = self.lay
        raw = self.e.view(np.uint8).reshape(-1)
        u3 = lay.location.put(0, list_id)
        u3 = lay.cache.put(u3, MI_PFN_CACHED)
        if lay.priority.word == "u3":
            u3 = lay.priority.put(u3, DEFAULT_PRIORITY)
        u4 = lay.priority.put(0, DEFAULT_PRIORITY) if lay.priority.word == "u4" else 0
        chunk = 1 << 18
        rec = np.zeros(chunk, dtype=lay.dtype)
        for i, (lo, hi) in enumerate(runs):
            if self.machine is not None and hi - lo > LAZY_RUN:
                # The inside of a long run: entry k links k+1 and k-1, all else equal.
                # The core writes those pages on first touch (a 64 GB guest's database
                # is 768 MB, nearly all of it this); the two ends are written below.
                template = np.zeros(1, dtype=lay.dtype)
                template["u3"], template["u4"] = u3, u4
                fields = [(lay.dtype.fields[name][1], lay.dtype.fields[name][0].itemsize,
                           delta) for name, delta in (("u1", 1), ("u2", -1))]
                self.machine.lazy_records(self.pa + (lo + 1) * lay.size, template.tobytes(),
                                          hi - lo - 2, lo + 1, fields)
                for pfn in (lo, hi - 1):
                    r = rec[:1]
                    r["u1"], r["u2"], r["pte"], r["orig"] = pfn + 1, pfn - 1, 0, 0
                    r["u3"], r["u4"] = u3, u4
                    if pfn == hi - 1:
                        r["u1"] = runs[i + 1][0] if i + 1 < len(runs) else empty
                    if pfn == lo:
                        r["u2"] = runs[i - 1][1] - 1 if i else empty
                    raw[pfn * lay.size:(pfn + 1) * lay.size] = r.view(np.uint8).reshape(-1)
                continue
            for c0 in range(lo, hi, chunk):
                c1 = min(c0 + chunk, hi)
                r = rec[:c1 - c0]
                r["u1"] = np.arange(c0 + 1, c1 + 1, dtype=np.int64)
                r["u2"] = np.arange(c0 - 1, c1 - 1, dtype=np.int64)
                r["pte"] = 0
                r["orig"] = 0
                r["u3"] = u3
                r["u4"] = u4
                if c1 == hi:
                    r["u1"][-1] = runs[i + 1][0] if i + 1 < len(runs) else empty
                if c0 == lo:
                    r["u2"][0] = runs[i - 1][1] - 1 if i else empty
                raw[c0 * lay.size:c1 * lay.size] = r.view(np.uint8).reshape(-1)
        total = sum(hi - lo for lo, hi in runs)
        self._set_head(list_id, total, runs[0][0], runs[-1][1] - 1)

    def make_active_many(self, frames: np.ndarray, pte_vas: np.ndarray, pte_frames: np.ndarray,
                         original: int = 0, modified: bool = False,
                         new_reference: bool = True, priority: int = DEFAULT_PRIORITY) -> None:
        """``make_active`` for many pages at once (share and reference 1)."""
        lay, e = self.lay, self.e
        if new_reference:
            np.add.at(e["u2"], pte_frames[pte_frames != frames], 1)
        u3 = lay.location.put(0, ACTIVE)
        u3 = lay.reference.put(u3, 1)
        u3 = lay.modified.put(u3, int(modified))
        u3 = lay.cache.put(u3, MI_PFN_CACHED)
        if lay.priority.word == "u3":
            u3 = lay.priority.put(u3, priority)
        e["u1"][frames] = 0
        e["u2"][frames] = 1
        e["pte"][frames] = pte_vas
        e["orig"][frames] = original
        e["u3"][frames] = u3
        u4 = (pte_frames.astype(np.uint64) & np.uint64(lay.frame.mask)) << np.uint64(lay.frame.shift)
        if lay.priority.word == "u4":
            u4 |= np.uint64(lay.priority.put(0, priority))
        e["u4"][frames] = u4.astype(e["u4"].dtype)

    def walk(self, list_id: int, limit: int | None = None):
        """PFNs on a list, first to last (reads guest memory only)."""
        empty = self.lay.empty
        pfn = self._head(list_id)[1]
        seen = 0
        while pfn != empty and (limit is None or seen < limit):
            yield pfn
            pfn = int(self.e["u1"][pfn])
            seen += 1
