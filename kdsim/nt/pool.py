"""Executive pool: small kernel allocations with a ``_POOL_HEADER`` in front of each.

Blocks are carved from pages the pool maps into its VA range as it grows.  Each block
carries the header Windows would give it (BlockSize and PreviousSize in pool units,
PoolType + 1 while allocated, the four-byte tag), so a pool-tag scanner finds kdsim's
EPROCESS ('Proc') and VAD ('VadS', 'Vad ') blocks.  Which page each block sits in and
the free blocks are kept on the Python side: a convenience beside the headers, which
are the record.
"""
from __future__ import annotations

import struct

PAGE = 0x1000
NONPAGED_POOL, PAGED_POOL = 0, 1
PROTECTED_TAG = 0x80000000   # Win7 executive-object tags carry the "protected" bit


def tag_value(tag: str | bytes | int) -> int:
    if isinstance(tag, int):
        return tag
    raw = tag.encode("latin-1") if isinstance(tag, str) else tag
    return struct.unpack("<I", raw.ljust(4, b" ")[:4])[0]


class Pool:
    """One pool (nonpaged or paged) in ``[start, end]``.

    ``map_page(va) -> pa`` maps a fresh page at ``va`` (the memory manager decides where
    the physical page comes from and records it in the PFN database)."""

    def __init__(self, ts, kmem, pool_type: int, start: int, end: int, map_page):
        self.ts = ts
        self.kmem = kmem
        self.pool_type = pool_type
        self.start, self.end = start, end
        self.map_page = map_page
        self.unit = 16 if ts.pointer_size == 8 else 8
        self.header = ts.sizeof("_POOL_HEADER")
        f = lambda p: ts.field("_POOL_HEADER", p)  # noqa: E731
        self.f_prev, self.f_index = f("PreviousSize"), f("PoolIndex")
        self.f_size, self.f_type, self.f_tag = f("BlockSize"), f("PoolType"), f("PoolTag")
        self.next_page = start        # next VA to map
        self.cursor = None            # (page VA, offset of the next free byte, last block offset)
        self.free_blocks: dict[int, list[int]] = {}   # units -> header VAs
        self.block_units: dict[int, int] = {}          # body VA -> units, while allocated
        self.pages_in_use = 0

    def _write_header(self, hva: int, prev_units: int, units: int, allocated: bool, tag: int):
        raw = bytearray(self.header)
        self.f_prev.pack_into(raw, prev_units)
        self.f_index.pack_into(raw, 0)
        self.f_size.pack_into(raw, units if units < (1 << self.f_size.bit_width) else 0)
        self.f_type.pack_into(raw, self.pool_type + 1 if allocated else 0)
        self.f_tag.pack_into(raw, tag)
        self.kmem.write(hva, bytes(raw))

    def _new_page(self) -> int:
        va = self.next_page
        if va + PAGE - 1 > self.end:
            raise MemoryError("pool exhausted")
        self.map_page(va)
        self.next_page += PAGE
        self.pages_in_use += 1
        return va

    def alloc(self, size: int, tag, *, align: int = 0) -> int:
        """A zeroed block of ``size`` bytes; returns the VA of its body (after the header).
        ``align`` (a power of two) aligns the body, for a PAE PDPT's 32 bytes."""
        tagv = tag_value(tag)
        units = -(-(size + self.header) // self.unit)
        if units * self.unit > PAGE:
            return self._alloc_pages(size, tagv)
        reuse = self.free_blocks.get(units)
        if reuse and not align:
            hva = reuse.pop()
            prev = self.f_prev.read(self.kmem, hva)
            self._write_header(hva, prev, units, True, tagv)
            body = hva + self.header
            self.kmem.write(body, bytes(units * self.unit - self.header))
            self.block_units[body] = units
            return body
        if self.cursor is None:
            self.cursor = (self._new_page(), 0, 0)
        page, off, last = self.cursor
        if align:
            pad = (-(page + off + self.header)) % align
            if pad:
                if off + pad + units * self.unit > PAGE:
                    page, off, last, pad = self._new_page(), 0, 0, (-self.header) % align
                if pad:   # a free filler block before the aligned one
                    self._write_header(page + off, last, pad // self.unit, False, 0)
                    last, off = pad // self.unit, off + pad
        if off + units * self.unit > PAGE:
            page, off, last = self._new_page(), 0, 0
        hva = page + off
        self._write_header(hva, last, units, True, tagv)
        body = hva + self.header
        self.cursor = (page, off + units * self.unit, units)
        self.block_units[body] = units
        return body

    def _alloc_pages(self, size: int, tag: int) -> int:
        npages = -(-(size + self.header) // PAGE)
        first = self._new_page()
        for _ in range(npages - 1):
            self._new_page()
        self._write_header(first, 0, 0, True, tag)   # BlockSize 0: a whole-page block
        body = first + self.header
        self.block_units[body] = -npages
        return body

    def free(self, body: int) -> None:
        units = self.block_units.pop(body)
        hva = body - self.header
        prev = self.f_prev.read(self.kmem, hva)
        tag = self.f_tag.read(self.kmem, hva)
        self._write_header(hva, prev, max(units, 0), False, tag)
        if units > 0:
            self.free_blocks.setdefault(units, []).append(hva)
