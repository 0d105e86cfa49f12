"""Immutable descriptions of PDB types, built once from a profile's ``*.types.json``.

These are what `dt` walks to print a type: members in PDB order, each with its offset and
a type description that knows its own `dt` text (``Ptr64 _EPROCESS``, ``[15] UChar``,
``Pos 12, 36 Bits``; rules in the reference layouts README). Reading and writing memory is
:mod:`kdsim.nt.fields`' job.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union


class TypeLookupError(LookupError):
    """A type, enum or field name that the target's symbols do not have."""


class UnknownTypeError(TypeLookupError):
    def __init__(self, name: str, target: str = "", hint: str = ""):
        self.type_name = name
        where = " on %s" % target if target else ""
        super().__init__("unknown type %r%s%s" % (name, where, hint))


class UnknownFieldError(TypeLookupError, AttributeError):
    """Also an AttributeError, so ``hasattr(view, "Nope")`` and ``getattr(view, x, d)`` work."""

    def __init__(self, type_name: str, path: str, detail: str = ""):
        self.type_name = type_name
        self.path = path
        super().__init__("%s has no field %r%s" % (type_name, path, detail))


# dt's names for the PDB base types (layouts README, "base" row).
DT_BASE_NAMES = {
    "char": "Char", "unsigned char": "UChar", "short": "Int2B", "unsigned short": "Uint2B",
    "wchar": "Wchar", "long": "Int4B", "unsigned long": "Uint4B", "long long": "Int8B",
    "unsigned long long": "Uint8B", "double": "Float",
}
SIGNED_BASES = frozenset(("char", "short", "long", "long long"))


@dataclass(frozen=True)
class BaseType:
    name: str                  # PDB spelling: "unsigned long"
    size: int
    kind = "base"

    @property
    def signed(self) -> bool:
        return self.name in SIGNED_BASES

    @property
    def is_float(self) -> bool:
        return self.name == "double"

    def dt_text(self) -> str:
        return DT_BASE_NAMES.get(self.name, self.name)


@dataclass(frozen=True)
class VoidType:
    kind = "void"
    size = 0

    def dt_text(self) -> str:
        return "Void"


@dataclass(frozen=True)
class StructRef:
    """A struct or union embedded by name; ``TypeSystem.get_type(name)`` has its members."""

    name: str
    kind = "struct"

    @property
    def unnamed(self) -> bool:
        return self.name.startswith("__unnamed")

    def dt_text(self) -> str:
        return "<unnamed-tag>" if self.unnamed else self.name


@dataclass(frozen=True)
class EnumRef:
    name: str
    size: int
    kind = "enum"

    def dt_text(self) -> str:
        return self.name


@dataclass(frozen=True)
class PointerType:
    size: int
    to: "TypeDesc"
    returns: Optional["TypeDesc"] = None       # set for function pointers
    kind = "pointer"

    @property
    def is_function(self) -> bool:
        return self.returns is not None

    @property
    def target_struct(self) -> Optional[str]:
        return self.to.name if isinstance(self.to, StructRef) else None

    def dt_text(self) -> str:
        ptr = "Ptr%d" % (8 * self.size)
        if self.returns is not None:
            return "%s     %s " % (ptr, self.returns.dt_text().lower())
        return "%s %s" % (ptr, self.to.dt_text())


@dataclass(frozen=True)
class ArrayType:
    count: int
    of: "TypeDesc"
    kind = "array"

    def dt_text(self) -> str:
        return "[%d] %s" % (self.count, self.of.dt_text())


@dataclass(frozen=True)
class BitfieldType:
    pos: int
    bits: int
    of: BaseType
    kind = "bitfield"

    def dt_text(self) -> str:
        return "Pos %d, %d Bit%s" % (self.pos, self.bits, "" if self.bits == 1 else "s")


TypeDesc = Union[BaseType, VoidType, StructRef, EnumRef, PointerType, ArrayType, BitfieldType]


@dataclass(frozen=True)
class Member:
    name: str
    offset: int
    type: TypeDesc


@dataclass(frozen=True)
class StructType:
    name: str
    size: int
    kind: str                  # "struct" or "union" (visible only in `dt -v`)
    members: tuple[Member, ...]
    module: str = "nt"

    @property
    def unnamed(self) -> bool:
        return self.name.startswith("__unnamed")

    @property
    def qualified_name(self) -> str:
        """The name that finds this type again: bare for nt, ``module!name`` otherwise."""
        return self.name if self.module == "nt" else "%s!%s" % (self.module, self.name)

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise UnknownFieldError(self.name, name)


@dataclass(frozen=True)
class EnumType:
    name: str
    size: int
    base: str
    values: tuple[tuple[str, int], ...]        # (enumerator, value) in declaration order

    def name_of(self, value: int) -> Optional[str]:
        for n, v in self.values:
            if v == value:
                return n
        return None

    def value_of(self, name: str) -> int:
        for n, v in self.values:
            if n == name:
                return v
        raise UnknownFieldError(self.name, name, " (not an enumerator)")


def parse_desc(d: dict) -> TypeDesc:
    """JSON type description (layouts README, DESC) -> immutable TypeDesc."""
    kind = d["kind"]
    if kind == "base":
        return BaseType(d["name"], d["size"])
    if kind == "struct":
        return StructRef(d["name"])
    if kind == "pointer":
        returns = parse_desc(d["returns"]) if d.get("function") else None
        return PointerType(d["size"], parse_desc(d["to"]), returns)
    if kind == "array":
        return ArrayType(d["count"], parse_desc(d["of"]))
    if kind == "bitfield":
        return BitfieldType(d["pos"], d["bits"], parse_desc(d["of"]))
    if kind == "enum":
        return EnumRef(d["name"], d["size"])
    if kind == "void":
        return VoidType()
    raise ValueError("unknown type kind %r" % kind)


def parse_struct(name: str, d: dict, module: str = "nt") -> StructType:
    members = tuple(Member(f["name"], f["offset"], parse_desc(f["type"])) for f in d["fields"])
    return StructType(name, d["size"], d["kind"], members, module)


def parse_enum(name: str, d: dict) -> EnumType:
    return EnumType(name, d["size"], d.get("base", "long"),
                    tuple((v["name"], v["value"]) for v in d["values"]))
