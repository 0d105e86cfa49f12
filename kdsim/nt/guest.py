"""How the memory manager reads and writes guest memory.

Every object here has ``read(addr, n) -> bytes`` and ``write(addr, data)``, the memory
interface of :mod:`kdsim.nt.types`.  The kernel's own virtual memory is reached through
the kernel page tables in guest RAM (a debugger-style probe: no TLB, no A/D side
effects); the translations of pages the kernel never unmaps are cached here, which is
a convenience, not a second record: the page tables stay the truth.
"""
from __future__ import annotations

import numpy as np

from kdsim.machine import Machine, VirtualMemoryError

PAGE = 0x1000


class PhysicalMemory:
    """Guest physical memory."""

    def __init__(self, machine: Machine):
        self.m = machine

    def read(self, pa: int, n: int) -> bytes:
        return self.m.read_physical(pa, n)

    def write(self, pa: int, data) -> None:
        self.m.write_physical(pa, data)


class WindowMemory:
    """A physically contiguous range seen at a virtual base (a numpy view, no copy):
    the nt image's data, the PFN database.  Addresses are the virtual ones."""

    def __init__(self, machine: Machine, pa: int, size: int, va: int):
        self.buf = machine.view_physical(pa, size)
        self.va = va
        self.pa = pa
        self.size = size

    def contains(self, va: int, n: int = 1) -> bool:
        return self.va <= va and va + n <= self.va + self.size

    def read(self, va: int, n: int) -> bytes:
        off = va - self.va
        if off < 0 or off + n > self.size:
            raise ValueError(f"{va:#x}+{n:#x} outside the window at {self.va:#x}")
        return self.buf[off:off + n].tobytes()

    def write(self, va: int, data) -> None:
        off = va - self.va
        if off < 0 or off + len(data) > self.size:
            raise ValueError(f"{va:#x}+{len(data):#x} outside the window at {self.va:#x}")
        self.buf[off:off + len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)


class KernelMemory:
    """Kernel virtual memory through the page tables of whatever CR3 is loaded (the
    kernel half is the same in every address space), or -- with ``cr3`` -- as one
    address space's tables map it, the kernel attached to that process (a debugger's
    ``.process /p``: probes under that CR3, no CR3 load)."""

    def __init__(self, machine: Machine, cr3: int | None = None):
        self.m = machine
        self.cr3 = cr3
        self._pages: dict[int, int] = {}

    def forget(self, va: int, size: int = PAGE) -> None:
        """The kernel unmapped or remapped ``[va, va+size)``: drop cached translations."""
        for page in range(va & ~(PAGE - 1), va + size, PAGE):
            self._pages.pop(page, None)

    def _pa(self, va: int) -> int:
        page = va & ~(PAGE - 1)
        pa = self._pages.get(page)
        if pa is None:
            t = self.m.translate(page, cr3=self.cr3)
            if not t.ok:
                raise VirtualMemoryError(t.status, va, t)
            pa = self._pages[page] = t.pa
        return pa + (va & (PAGE - 1))

    def read(self, va: int, n: int) -> bytes:
        out = bytearray()
        while n:
            chunk = min(n, PAGE - (va & (PAGE - 1)))
            out += self.m.read_physical(self._pa(va), chunk)
            va += chunk
            n -= chunk
        return bytes(out)

    def write(self, va: int, data) -> None:
        data = bytes(data)
        while data:
            chunk = min(len(data), PAGE - (va & (PAGE - 1)))
            self.m.write_physical(self._pa(va), data[:chunk])
            va += chunk
            data = data[chunk:]


class RamWords:
    """Aligned 4- or 8-byte words of guest RAM by physical address (page-table entries):
    numpy views of the RAM runs, one element access per word."""

    def __init__(self, machine: Machine, size: int):
        cache = machine.__dict__.setdefault("_word_views", {})
        if size not in cache:
            dtype = np.uint64 if size == 8 else np.uint32
            cache[size] = [(start, start + length,
                            machine.view_physical(start, length, dtype=dtype))
                           for start, length in machine.runs]
        self.views = cache[size]
        self.size = size

    def _at(self, pa: int):
        for start, end, view in self.views:
            if start <= pa < end:
                return view, (pa - start) // self.size
        raise ValueError(f"physical address {pa:#x} is not RAM")

    def get(self, pa: int) -> int:
        view, i = self._at(pa)
        return int(view[i])

    def set(self, pa: int, value: int) -> None:
        view, i = self._at(pa)
        view[i] = value

    def table(self, pa: int, count: int):
        """``count`` words from ``pa`` (inside one run) as a numpy view."""
        view, i = self._at(pa)
        return view[i:i + count]
