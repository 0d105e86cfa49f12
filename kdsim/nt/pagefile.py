"""Paging files and the threads that move pages between memory and them.

A paging file is an ``_MMPAGING_FILE`` in nonpaged pool, named by ``MmPagingFile[n]``,
with its allocation bitmap (an ``_RTL_BITMAP`` and its buffer) in guest memory.  Its
contents live outside guest RAM, as a file on disk does: here a dict of page slots.

* the modified page writer writes each page of the modified list to a free slot, records
  the slot in the page's OriginalPte (a paging-file PTE) and moves it to the standby list;
* memory pressure repurposes standby pages: the PTE that still names the page in
  transition gets the page's OriginalPte back (a paging-file PTE, or demand zero for a
  page that never held data), and the page goes to the free list;
* the zero page thread zeroes free pages onto the zeroed list;
* a hard fault reads the slot back into a new page; the slot stays allocated until the
  page is dirtied (MiSetDirtyBit frees it) or the address space lets go of it.
"""
from __future__ import annotations

import itertools

from .pfn import FREE, MODIFIED, STANDBY, ZEROED

PAGE = 0x1000
MAX_SLOTS = 0x100000          # kdsim choice: the file is as large as RAM, at most 4 GB


class PagingFile:
    def __init__(self, system, number: int, size_pages: int,
                 name: str = "\\??\\C:\\pagefile.sys"):
        self.s = system
        self.number = number
        self.size = size_pages
        ts, k = system.ts, system.kmem
        pool = system.nonpaged_pool
        self.va = pool.alloc(ts.sizeof("_MMPAGING_FILE"), "MmPf")
        self.bitmap_header = pool.alloc(ts.sizeof("_RTL_BITMAP"), "MmPf")
        self.bitmap_bytes = -(-size_pages // 32) * 4
        self.bitmap = pool.alloc(self.bitmap_bytes, "MmPf")
        encoded = name.encode("utf-16-le")
        name_buf = system.paged_pool.alloc(len(encoded) + 2, "MmPf")
        k.write(name_buf, encoded + b"\0\0")
        self.bits = bytearray(self.bitmap_bytes)      # mirror of the guest bitmap
        self.store: dict[int, bytes] = {}
        self._highest: int | None = 0
        self.hint = 1
        self.used = 0
        self.peak = 0
        k.write(self.bitmap_header, ts.pack("_RTL_BITMAP",
                                            {"SizeOfBitMap": size_pages, "Buffer": self.bitmap}))
        values = {"Size": size_pages, "MaximumSize": size_pages, "MinimumSize": size_pages,
                  "PageFileName.Length": len(encoded),
                  "PageFileName.MaximumLength": len(encoded) + 2,
                  "PageFileName.Buffer": name_buf, "Bitmap": self.bitmap_header,
                  "PageFileNumber": number}
        k.write(self.va, ts.pack("_MMPAGING_FILE", values))
        self._set_bit(0, True)     # page 0 of a paging file is never handed out (WRK)
        self._write_counters()
        system.write_ptr(system.symbols["MmPagingFile"] + number * system.ptr, self.va)
        system.set_var("MmNumberOfPagingFiles", number + 1)

    def _set_bit(self, slot: int, value: bool) -> None:
        byte, bit = slot // 8, 1 << (slot % 8)
        self.bits[byte] = (self.bits[byte] | bit) if value else (self.bits[byte] & ~bit)
        self.s.kmem.write(self.bitmap + byte, bytes([self.bits[byte]]))

    def _write_counters(self) -> None:
        ts, k = self.s.ts, self.s.kmem
        used = self.used + 1                       # page 0 counts as used
        self.peak = max(self.peak, used)
        values = {"FreeSpace": self.size - used, "PeakUsage": self.peak,
                  "HighestPage": self.highest}
        if ts.has_field("_MMPAGING_FILE", "CurrentUsage"):
            values["CurrentUsage"] = used
        for path, v in values.items():
            ts.field("_MMPAGING_FILE", path).write(k, self.va, v)

    @property
    def highest(self) -> int:
        """The highest slot holding a page (kept as slots are written and released: the
        modified page writer writes thousands, and max() over them each time is slow)."""
        if self._highest is None:
            self._highest = max(self.store, default=0)
        return self._highest

    def allocate(self) -> int:
        for slot in itertools.chain(range(self.hint, self.size), range(1, self.hint)):
            if not self.bits[slot // 8] & (1 << (slot % 8)):
                self._set_bit(slot, True)
                self.hint = slot + 1
                self.used += 1
                self._write_counters()
                return slot
        raise MemoryError("the paging file is full")

    def release(self, slot: int) -> None:
        self._set_bit(slot, False)
        self.store.pop(slot, None)
        if slot == self._highest:
            self._highest = None                  # found again when next asked
        self.used -= 1
        self._write_counters()

    def write(self, slot: int, data: bytes) -> None:
        self.store[slot] = bytes(data)
        if self._highest is not None:
            self._highest = max(self._highest, slot)

    def read(self, slot: int) -> bytes:
        return self.store.get(slot, bytes(PAGE))



def release_backing(system, pte_value: int) -> None:
    """The address space lets go of a paging-file PTE (or a page whose OriginalPte is one)."""
    d = system.codec.decode(pte_value)
    if d.kind == "pagefile":
        system.paging_files[d.page_file_low].release(d.page_file_high)


def write_modified(system, limit: int | None = None) -> int:
    """The modified page writer: modified list -> paging file -> standby list."""
    pfn_db, codec, pf = system.pfn, system.codec, system.paging_files[0]
    written = 0
    for pfn in list(pfn_db.walk(MODIFIED, limit)):
        orig = codec.decode(int(pfn_db.e["orig"][pfn]),
                            in_prototype_array=bool(pfn_db.get(pfn, pfn_db.lay.prototype)))
        if orig.kind == "subsection":
            # A mapped data file's page goes back to its file, not to the paging file.
            section, index = system.section_of_proto(int(pfn_db.e["pte"][pfn]))
            section.written[index] = system.machine.read_physical(pfn * PAGE, PAGE)
            pfn_db.unlink(pfn)
            pfn_db.put(pfn, pfn_db.lay.modified, 0)
            pfn_db.insert(STANDBY, pfn)
            written += 1
            continue
        if orig.kind == "pagefile":
            slot = orig.page_file_high
        else:
            slot = pf.allocate()
        pf.write(slot, system.machine.read_physical(pfn * PAGE, PAGE))
        pfn_db.e["orig"][pfn] = codec.pagefile(pf.number, slot, orig.protection)
        pfn_db.unlink(pfn)
        pfn_db.put(pfn, pfn_db.lay.modified, 0)
        pfn_db.insert(STANDBY, pfn)
        written += 1
    system.update_counters()
    return written


def repurpose(system, count: int) -> int:
    """Memory pressure: the oldest standby pages lose their contents' last link; the PTE
    naming each in transition gets its OriginalPte back, the page goes to the free list."""
    pfn_db, codec = system.pfn, system.codec
    done = 0
    for pfn in list(pfn_db.walk(STANDBY, count)):
        pte_frame = pfn_db.get(pfn, pfn_db.lay.frame)
        pte_pa = pte_frame * PAGE + (int(pfn_db.e["pte"][pfn]) & (PAGE - 1))
        words = system.kernel_tables.words
        current = codec.decode(words.get(pte_pa))
        if current.kind != "transition" or current.pfn != pfn:
            raise AssertionError(f"standby page {pfn:#x}: its PTE is {current.kind}")
        words.set(pte_pa, int(pfn_db.e["orig"][pfn]))
        if pfn_db.get(pfn, pfn_db.lay.prototype):          # a section's page leaves memory
            system.section_of_proto(int(pfn_db.e["pte"][pfn]))[0].count_pfn(-1)
        pfn_db.unlink(pfn)
        pfn_db.e["orig"][pfn] = 0
        pfn_db.release(pfn)
        done += 1
    system.update_counters()
    return done


def zero_pages(system, count: int | None = None) -> int:
    """The zero page thread: free list -> zeroed list."""
    pfn_db = system.pfn
    done = 0
    while count is None or done < count:
        pfn = pfn_db.pop(FREE)
        if pfn is None:
            break
        system.machine.discard_pages(pfn * PAGE, PAGE)
        pfn_db.insert(ZEROED, pfn)
        done += 1
    system.update_counters()
    return done
