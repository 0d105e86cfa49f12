"""Field accessors: the fast path for reading and writing one field of a structure.

A :class:`Field` is resolved once per (type, path) by ``TypeSystem.field`` and then used in
hot loops: reading is one ``mem.read`` plus a shift, a mask and a sign fix-up; writing a
bit field is one read-modify-write of its storage unit. No dict look-ups, no walking.

``mem`` is anything with ``read(addr, n) -> bytes`` and ``write(addr, data)``; ``addr`` is
always the address of the *structure* the field belongs to (``Field.offset`` is added).
Composite fields (embedded structs, arrays) read as the unsigned little-endian integer of
all their bytes and accept such an integer, or bytes of exactly their size, on write:
``pfn.OriginalPte = 0x80`` writes a whole ``_MMPTE``.
"""
from __future__ import annotations

import struct
from typing import Any, Optional

_LE = "little"
_DOUBLE = struct.Struct("<d")


class Field:
    """Where one field lives and how to encode it. Immutable; compare by ``(type_name, path)``.

    offset      byte offset from the start of the root structure
    size        bytes read/written (a bit field's storage unit)
    bit_pos     first bit within those bytes (0 unless a bit field)
    bit_width   width in bits (``8 * size`` unless a bit field)
    signed      values read back negative when the top bit is set
    kind        "base", "float", "pointer", "enum", "bitfield", "struct" or "array"
    base        PDB base type for scalars ("unsigned long"), else the type's dt text
    ref         struct name (struct), pointee struct (pointer) or enum name (enum), or None
    elem, count, stride   for arrays: the element's Field (offset 0), length, element size
    desc        the :mod:`typemodel` description, for `dt`
    """

    __slots__ = ("type_name", "path", "offset", "size", "bit_pos", "bit_width", "signed",
                 "kind", "base", "ref", "elem", "count", "stride", "desc",
                 "mask", "_sign", "_lo", "_hi", "_keep", "_whole", "_wshift")

    def __init__(self, type_name: str, path: str, offset: int, size: int, kind: str,
                 desc: Any, base: str, bit_pos: int = 0, bit_width: Optional[int] = None,
                 signed: bool = False, ref: Optional[str] = None,
                 elem: Optional["Field"] = None, count: int = 0):
        width = 8 * size if bit_width is None else bit_width
        mask = (1 << width) - 1
        sign = 1 << (width - 1) if signed else 0
        init = object.__setattr__
        for name, value in (
            ("type_name", type_name), ("path", path), ("offset", offset), ("size", size),
            ("bit_pos", bit_pos), ("bit_width", width), ("signed", signed), ("kind", kind),
            ("base", base), ("ref", ref), ("elem", elem), ("count", count),
            ("stride", elem.size if elem is not None else 0), ("desc", desc),
            ("mask", mask), ("_sign", sign),
            ("_lo", -sign if signed else 0), ("_hi", sign - 1 if signed else mask),
            ("_keep", ((1 << 8 * size) - 1) ^ (mask << bit_pos)),
            ("_whole", bit_pos == 0 and width == 8 * size),
            ("_wshift", 8 * offset + bit_pos),
        ):
            init(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("Field is immutable")

    def __eq__(self, other):
        return (isinstance(other, Field) and self.type_name == other.type_name
                and self.path == other.path and self.offset == other.offset)

    def __hash__(self):
        return hash((self.type_name, self.path, self.offset))

    def __repr__(self):
        bits = ", bits %d:%d" % (self.bit_pos, self.bit_width) if self.kind == "bitfield" else ""
        return "<Field %s.%s +0x%x size %d%s %s>" % (
            self.type_name, self.path, self.offset, self.size, bits, self.base)

    @property
    def is_bitfield(self) -> bool:
        return self.kind == "bitfield"

    @property
    def is_scalar(self) -> bool:
        return self.kind not in ("struct", "array")

    # -- guest memory ------------------------------------------------------------------
    def read(self, mem, addr: int):
        v = int.from_bytes(mem.read(addr + self.offset, self.size), _LE)
        v = (v >> self.bit_pos) & self.mask
        return v - ((v & self._sign) << 1)           # sign-extend; _sign is 0 if unsigned

    def write(self, mem, addr: int, value) -> None:
        if not self._lo <= value <= self._hi:
            raise self._misfit(value)
        a = addr + self.offset
        if self._whole:
            mem.write(a, (value & self.mask).to_bytes(self.size, _LE))
        else:
            old = int.from_bytes(mem.read(a, self.size), _LE)
            new = (old & self._keep) | ((value & self.mask) << self.bit_pos)
            mem.write(a, new.to_bytes(self.size, _LE))

    # -- byte buffers (a whole structure; base = where it starts in buf) ---------------
    def unpack_from(self, buf, base: int = 0):
        o = base + self.offset
        v = (int.from_bytes(buf[o:o + self.size], _LE) >> self.bit_pos) & self.mask
        return v - ((v & self._sign) << 1)

    def pack_into(self, buf: bytearray, value, base: int = 0) -> None:
        if not self._lo <= value <= self._hi:
            raise self._misfit(value)
        o = base + self.offset
        old = int.from_bytes(buf[o:o + self.size], _LE)
        new = (old & self._keep) | ((value & self.mask) << self.bit_pos)
        buf[o:o + self.size] = new.to_bytes(self.size, _LE)

    # -- integers holding a whole (small) structure, e.g. a PTE value -----------------
    def extract(self, word: int):
        v = (word >> self._wshift) & self.mask
        return v - ((v & self._sign) << 1)

    def insert(self, word: int, value) -> int:
        if not self._lo <= value <= self._hi:
            raise self._misfit(value)
        return (word & ~(self.mask << self._wshift)) | ((value & self.mask) << self._wshift)

    # -- helpers -----------------------------------------------------------------------
    def at(self, index: int, bounded: bool = True) -> "Field":
        """Element ``index`` of an array field, as a field of the same root structure.

        ``bounded=False`` allows indexes past the declared length, for the C idiom of a
        trailing ``[1]`` array that really holds more (``_SEGMENT.ThePtes``,
        ``_PHYSICAL_MEMORY_DESCRIPTOR.Run``)."""
        if self.elem is None:
            raise TypeError("%s.%s is not an array" % (self.type_name, self.path))
        if index < 0 or (bounded and index >= self.count):
            raise IndexError("%s.%s[%d] is out of range (%d elements)"
                             % (self.type_name, self.path, index, self.count))
        e = self.elem
        return e.__class__(self.type_name, "%s[%d]" % (self.path, index),
                           self.offset + index * self.stride, e.size, e.kind, e.desc, e.base,
                           e.bit_pos, e.bit_width, e.signed, e.ref, e.elem, e.count)

    def _misfit(self, value) -> Exception:
        if not isinstance(value, int):
            return TypeError("%s.%s takes an int, not %s"
                             % (self.type_name, self.path, type(value).__name__))
        return ValueError("%s does not fit %s.%s (%d-bit %s, %s..%s)" % (
            hex(value), self.type_name, self.path, self.bit_width,
            "signed" if self.signed else "unsigned", hex(self._lo), hex(self._hi)))


class CompositeField(Field):
    """An embedded struct or array: also takes ``bytes`` of exactly its size."""

    __slots__ = ()

    def write(self, mem, addr: int, value) -> None:
        if isinstance(value, (bytes, bytearray, memoryview)):
            mem.write(addr + self.offset, self._exact(value))
        else:
            Field.write(self, mem, addr, value)

    def pack_into(self, buf: bytearray, value, base: int = 0) -> None:
        if isinstance(value, (bytes, bytearray, memoryview)):
            o = base + self.offset
            buf[o:o + self.size] = self._exact(value)
        else:
            Field.pack_into(self, buf, value, base)

    def _exact(self, data) -> bytes:
        data = bytes(data)
        if len(data) != self.size:
            raise ValueError("%s.%s is %d bytes, got %d"
                             % (self.type_name, self.path, self.size, len(data)))
        return data


class FloatField(Field):
    """A ``double`` (dt: Float). Reads and writes Python floats."""

    __slots__ = ()

    def read(self, mem, addr: int) -> float:
        return _DOUBLE.unpack(mem.read(addr + self.offset, 8))[0]

    def write(self, mem, addr: int, value) -> None:
        mem.write(addr + self.offset, _DOUBLE.pack(value))

    def unpack_from(self, buf, base: int = 0) -> float:
        return _DOUBLE.unpack_from(buf, base + self.offset)[0]

    def pack_into(self, buf: bytearray, value, base: int = 0) -> None:
        _DOUBLE.pack_into(buf, base + self.offset, value)

    def extract(self, word: int) -> float:
        return _DOUBLE.unpack(((word >> self._wshift) & self.mask).to_bytes(8, _LE))[0]

    def insert(self, word: int, value) -> int:
        return Field.insert(self, word, int.from_bytes(_DOUBLE.pack(value), _LE))
