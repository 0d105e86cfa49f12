"""A process's working set: ``_MMWSL`` at MmWorkingSetList in its hyperspace, followed
by the ``_MMWSLE`` array; each valid entry holds a virtual page of the process, and
the page's PFN entry holds the entry's index (u1.WsIndex).

The Python side keeps which index holds which page and the free indexes; the guest's
entries and counters (Vm.WorkingSetSize, Vm.PeakWorkingSetSize) are the record.
"""
from __future__ import annotations

PAGE = 0x1000
WSLE_VALID = 0x1


class WorkingSet:
    def __init__(self, system, proc):
        self.system, self.proc = system, proc
        ts = system.ts
        self.base = system.profile.address_space.working_set_list
        self.esize = ts.sizeof("_MMWSLE")
        hdr = ts.sizeof("_MMWSL")
        self.wsle = self.base + -(-hdr // self.esize) * self.esize
        self.mapped = 0                      # bytes mapped from base
        self.entries: dict[int, int] = {}    # page VA -> index
        self.free: list[int] = []
        self.next_index = 0
        self.peak = 0
        # Valid | Direct; Direct is bit 3 on Windows 7 and bit 9 in the WRK's _MMWSLENTRY.
        self.entry_flags = WSLE_VALID | (1 << ts.field("_MMWSLE", "u1.e1.Direct").bit_pos)
        self.f_next_free = ts.field("_MMWSLE", "u1.e2.NextFree") \
            if ts.has_field("_MMWSLE", "u1.e2.NextFree") else None
        self.first_dynamic = 0                # entries below it are locked (FirstDynamic)
        self.f_locked = ts.field("_MMWSLE", "u1.e1.LockedInWs") \
            if ts.has_field("_MMWSLE", "u1.e1.LockedInWs") else None
        self._grow()
        self._write_header()

    def insert_locked(self, page_va: int, pfn: int) -> int:
        """An entry the working-set manager never trims (the process's page directory,
        hyperspace table, VAD bitmap and list pages): before FirstDynamic, with
        LockedInWs where the entry layout has it (the WRK's)."""
        index = self.insert(page_va, pfn)
        if index != self.first_dynamic:
            raise AssertionError("locked working-set entries come first")
        if self.f_locked is not None:
            self._write_entry(index, self.f_locked.insert(page_va | self.entry_flags, 1))
        self.first_dynamic += 1
        self._write_header()
        return index

    def _grow(self) -> None:
        va = self.base + self.mapped
        pa = self.proc.map_private_kernel_page(va)
        self.mapped += PAGE
        return pa

    def capacity(self) -> int:
        return (self.base + self.mapped - self.wsle) // self.esize

    def _write_entry(self, index: int, value: int) -> None:
        self.proc.kwrite(self.wsle + index * self.esize,
                         value.to_bytes(self.esize, "little"))

    def _write_header(self) -> None:
        sysm, ep = self.system, self.proc.ep
        last = max(self.next_index - 1, 0)
        first_free = self.free[-1] if self.free else self.next_index
        values = {"FirstFree": first_free, "FirstDynamic": self.first_dynamic,
                  "LastEntry": last,
                  "NextSlot": 0, "Wsle": self.wsle,
                  "LastInitializedWsle": self.capacity() - 1}
        for name, v in values.items():
            f = sysm.ts.field("_MMWSL", name)
            f.write(self.proc.kmem, self.base, v)
        size = len(self.entries)
        self.peak = max(self.peak, size)
        for path, v in (("Vm.WorkingSetSize", size), ("Vm.PeakWorkingSetSize", self.peak),
                        ("Vm.VmWorkingSetList", self.base)):
            if sysm.ts.has_field("_EPROCESS", path):
                sysm.ts.field("_EPROCESS", path).write(sysm.kmem, ep, v)

    def insert(self, page_va: int, pfn: int) -> int:
        if self.free:
            index = self.free.pop()
        else:
            if self.next_index >= self.capacity():
                self._grow()
            index = self.next_index
            self.next_index += 1
        self._write_entry(index, page_va | self.entry_flags)
        self.entries[page_va] = index
        self.system.pfn.e["u1"][pfn] = index            # u1.WsIndex
        self._write_header()
        return index

    def insert_many(self, page_vas, pfns) -> None:
        """Add many pages at once (fresh indexes; one guest write per run of entries)."""
        import numpy as np
        n = len(page_vas)
        while self.next_index + n > self.capacity():
            self._grow()
        first = self.next_index
        self.next_index += n
        values = np.asarray(page_vas, dtype=np.uint64) | np.uint64(self.entry_flags)
        dtype = np.uint64 if self.esize == 8 else np.uint32
        self.proc.kwrite(self.wsle + first * self.esize, values.astype(dtype).tobytes())
        indexes = np.arange(first, first + n)
        self.entries.update(zip(page_vas.tolist() if hasattr(page_vas, "tolist") else page_vas,
                                indexes.tolist()))
        self.system.pfn.e["u1"][pfns] = indexes
        self._write_header()

    def remove(self, page_va: int) -> None:
        index = self.entries.pop(page_va)
        nxt = self.free[-1] if self.free else self.next_index
        value = 0
        if self.f_next_free is not None:
            value = self.f_next_free.insert(0, nxt)
        self._write_entry(index, value)
        self.free.append(index)
        self._write_header()

    def __contains__(self, page_va: int) -> bool:
        return page_va in self.entries

    def __len__(self) -> int:
        return len(self.entries)
