"""Typed views over guest memory: ``view.u3.e1.PageLocation = 5``.

A view is (type system, memory, type name, address) and nothing else: every attribute read
goes to memory, every attribute write is a read-modify-write of just that field's bits, so
views never go stale. Scalars come back as ints (pointers as :class:`Pointer`, enums as
:class:`EnumValue`, both ints); embedded structs and unions as sub-views; arrays as
:class:`ArrayView`. Hot loops should use ``TypeSystem.field`` descriptors directly.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional

from .fields import Field

if TYPE_CHECKING:                      # pragma: no cover
    from .types import TypeSystem


class Pointer(int):
    """A pointer value that remembers what it points at; ``int(p)`` is the address."""

    def __new__(cls, value: int, ts: "TypeSystem", mem, target: Optional[str]):
        self = int.__new__(cls, value)
        self._ts, self._mem, self.target = ts, mem, target
        return self

    def deref(self) -> "StructView":
        if self.target is None:
            raise TypeError("cannot dereference a pointer to a non-structure type")
        return StructView(self._ts, self._mem, self.target, int(self))

    def __repr__(self) -> str:
        return "Pointer(%#x, %s)" % (int(self), self.target or "?")


class EnumValue(int):
    """An enum field's value; ``.name`` is the enumerator (None if the value has none)."""

    def __new__(cls, value: int, enum: str, name: Optional[str]):
        self = int.__new__(cls, value)
        self.enum, self.name = enum, name
        return self

    def __repr__(self) -> str:
        return "EnumValue(%d, %s)" % (int(self), self.name)


def value_of(ts: "TypeSystem", f: Field, mem, addr: int):
    """What a view returns for field ``f`` of the structure at ``addr``."""
    kind = f.kind
    if kind == "struct":
        return StructView._bind(ts, mem, f.ref, addr + f.offset)
    if kind == "array":
        return ArrayView(ts, mem, f, addr + f.offset)
    v = f.read(mem, addr)
    if kind == "pointer":
        return Pointer(v, ts, mem, f.ref)
    if kind == "enum":
        return EnumValue(v, f.ref, ts.enum(f.ref).name_of(v))
    return v


class StructView:
    __slots__ = ("_ts", "_mem", "_type", "_addr")

    def __init__(self, ts: "TypeSystem", mem, type_name: str, addr: int):
        object.__setattr__(self, "_ts", ts)
        object.__setattr__(self, "_mem", mem)
        object.__setattr__(self, "_type", ts.get_type(type_name).qualified_name)
        object.__setattr__(self, "_addr", addr)

    @classmethod
    def _bind(cls, ts: "TypeSystem", mem, qualified_name: str, addr: int) -> "StructView":
        # For names the type system already resolved: skips the look-up in __init__.
        self = object.__new__(cls)
        init = object.__setattr__
        init(self, "_ts", ts)
        init(self, "_mem", mem)
        init(self, "_type", qualified_name)
        init(self, "_addr", addr)
        return self

    @property
    def addr(self) -> int:
        return self._addr

    @property
    def type_name(self) -> str:
        return self._type

    @property
    def sizeof(self) -> int:
        return self._ts.sizeof(self._type)

    def raw(self) -> bytes:
        return bytes(self._mem.read(self._addr, self.sizeof))

    def unpack(self) -> dict:
        """Every scalar field as ``{path: value}`` (see ``TypeSystem.unpack``)."""
        return self._ts.unpack(self._type, self.raw())

    def __getattr__(self, name: str):
        if name.startswith("_"):        # no PDB field starts with "_"; keeps copy/pickle sane
            raise AttributeError(name)
        return value_of(self._ts, self._ts.field(self._type, name), self._mem, self._addr)

    def __setattr__(self, name: str, value) -> None:
        self._ts.field(self._type, name).write(self._mem, self._addr, value)

    def __getitem__(self, path: str):
        return value_of(self._ts, self._ts.field(self._type, path), self._mem, self._addr)

    def __setitem__(self, path: str, value) -> None:
        self._ts.field(self._type, path).write(self._mem, self._addr, value)

    def __dir__(self):
        return [m.name for m in self._ts.get_type(self._type).members]

    def __eq__(self, other) -> bool:
        return (isinstance(other, StructView) and self._mem is other._mem
                and self._type == other._type and self._addr == other._addr)

    def __hash__(self) -> int:
        return hash((self._type, self._addr))

    def __repr__(self) -> str:
        return "<%s @ %#x>" % (self._type, self._addr)


class ArrayView:
    __slots__ = ("_ts", "_mem", "_field", "_addr")

    def __init__(self, ts: "TypeSystem", mem, field: Field, addr: int):
        self._ts, self._mem, self._field, self._addr = ts, mem, field, addr

    @property
    def addr(self) -> int:
        return self._addr

    def __len__(self) -> int:
        return self._field.count

    def _elem_addr(self, index: int) -> int:
        f = self._field
        if index < 0:
            index += f.count
        if not 0 <= index < f.count:
            raise IndexError("%s.%s[%d] is out of range (%d elements)"
                             % (f.type_name, f.path, index, f.count))
        return self._addr + index * f.stride

    def __getitem__(self, index: int):
        return value_of(self._ts, self._field.elem, self._mem, self._elem_addr(index))

    def __setitem__(self, index: int, value) -> None:
        self._field.elem.write(self._mem, self._elem_addr(index), value)

    def __iter__(self) -> Iterator:
        for i in range(self._field.count):
            yield self[i]

    def raw(self) -> bytes:
        return bytes(self._mem.read(self._addr, self._field.size))

    def __repr__(self) -> str:
        return "<%s.%s @ %#x>" % (self._field.type_name, self._field.path, self._addr)
