"""The typed-view layer: a target's structure layouts, looked up by name and path.

The memory manager writes structures through it and `dt` reads them through it, so a
layout bug cannot hide on one side only.

    ts = TypeSystem("win7-x64")
    loc = ts.field("_MMPFN", "u3.e1.PageLocation")        # resolve once ...
    loc.write(mem, pfn_va, 6)                              # ... use in the hot loop
    pfn = ts.view(mem, "_MMPFN", pfn_va)
    pfn.u3.e1.PageLocation, int(pfn.PteAddress), pfn.OriginalPte.u.Long
    ts.pack("_MMVAD_SHORT", {"StartingVpn": 0x340, "u.VadFlags.Protection": 4})

Layouts are package data (``kdsim/nt/profiles/*.types.json``), loaded once per target.
Type names may carry a module: ``nt!_MMPFN``. The KDBG structures, which are not in the nt
PDB, are only found as ``wdbgexts!_KDDEBUGGER_DATA64``.
"""
from __future__ import annotations

import difflib
import functools
import importlib.resources
import json
import re
from typing import Iterator, Mapping, Optional

from .fields import CompositeField, Field, FloatField
from .profiles import DEFAULT_PROFILE, Profile, get_profile
from .typemodel import (SIGNED_BASES, ArrayType, BaseType, BitfieldType, EnumRef, EnumType,
                        PointerType, StructRef, StructType, TypeDesc, TypeLookupError,
                        UnknownFieldError, UnknownTypeError, parse_enum, parse_struct)
from .typeview import ArrayView, EnumValue, Pointer, StructView

__all__ = ["TypeSystem", "Field", "StructView", "ArrayView", "Pointer", "EnumValue",
           "StructType", "EnumType", "TypeLookupError", "UnknownTypeError", "UnknownFieldError"]

NT = "nt"
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\s*(?:0[xX][0-9a-fA-F]+|\d+)\s*\])*)$")
_INDEX = re.compile(r"\[\s*(0[xX][0-9a-fA-F]+|\d+)\s*\]")


class _Layout:
    """Everything parsed from one ``*.types.json``, plus the resolved-field caches.
    Shared by every TypeSystem of that target."""

    def __init__(self, doc: dict):
        self.target: str = doc["target"]
        self.source: str = doc["source"]
        self.pointer_size: int = doc["pointer_size"]
        self.structs: dict[str, StructType] = {
            name: parse_struct(name, t) for name, t in doc["types"].items()}
        for name, t in doc["supplementary_types"].items():
            self.structs[name] = parse_struct(name, t, t.get("module", "wdbgexts"))
        if "_LDR_DATA_TABLE_ENTRY" not in self.structs:     # not in the PDB dumps
            from .profiles.ldr import layout as ldr_layout
            self.structs["_LDR_DATA_TABLE_ENTRY"] = parse_struct(
                "_LDR_DATA_TABLE_ENTRY", ldr_layout(self.pointer_size))
        self._add_io_types()
        if "_MM_SESSION_SPACE" not in self.structs:          # not in the PDB dumps either
            from .profiles.session import layout as session_layout
            self.structs["_MM_SESSION_SPACE"] = parse_struct(
                "_MM_SESSION_SPACE", session_layout(self.pointer_size,
                                                    self.target.startswith("wrk")))
        self.enums: dict[str, EnumType] = {
            name: parse_enum(name, e) for name, e in doc["enums"].items()}
        self.notes: dict[str, dict] = doc.get("notes", {})
        self.fields: dict[tuple[str, str], Field] = {}
        self.leaves: dict[str, tuple[Field, ...]] = {}

    def _add_io_types(self) -> None:
        """File objects, image information and the PEB's loader data: public layouts the
        PDB dumps lack (kdsim/nt/profiles/fileobj.py, imageinfo.py and ldr.py say where
        they come from)."""
        from .profiles import fileobj, imageinfo
        from .profiles.ldr import peb_ldr_data
        p, later = self.pointer_size, not self.target.startswith("wrk")
        info = imageinfo.section_image_information(p, later)
        extra = {"_KEVENT": fileobj.kevent(self.structs["_DISPATCHER_HEADER"].size),
                 "_SECTION_OBJECT_POINTERS": fileobj.section_object_pointers(p),
                 "_FILE_OBJECT": fileobj.file_object(p, later),
                 "_PEB_LDR_DATA": peb_ldr_data(p, later),
                 "_SECTION_IMAGE_INFORMATION": info}
        if later:                        # Windows 7's segment points at the wrapper
            extra["_MI_EXTRA_IMAGE_INFORMATION"] = imageinfo.mi_extra_image_information()
            extra["_MI_SECTION_IMAGE_INFORMATION"] = \
                imageinfo.mi_section_image_information(info["size"])
        for name, layout in extra.items():
            if name not in self.structs:
                self.structs[name] = parse_struct(name, layout)


@functools.lru_cache(maxsize=None)
def _load(resource: str) -> _Layout:
    text = importlib.resources.files("kdsim.nt.profiles").joinpath(resource).read_text("utf-8")
    return _Layout(json.loads(text))


class TypeSystem:
    """Structure layouts of one target. Cheap to construct: the data is loaded once."""

    def __init__(self, profile: "Profile | str" = DEFAULT_PROFILE):
        self.profile: Profile = get_profile(profile)
        layout = _load(self.profile.types_resource)
        self.target: str = layout.target
        self.source: str = layout.source
        self.pointer_size: int = layout.pointer_size
        self._structs = layout.structs
        self._enums = layout.enums
        self._notes = layout.notes
        self._fields = layout.fields
        self._leaves = layout.leaves

    def __repr__(self) -> str:
        return "TypeSystem(%r)" % self.target

    # -- names -------------------------------------------------------------------------
    def get_type(self, name: str) -> StructType:
        """The struct/union called ``name`` (``_MMPFN``, ``nt!_MMPFN``, ``__unnamed_14fb``)."""
        module, bare = _split(name)
        st = self._structs.get(bare)
        if st is None:
            raise UnknownTypeError(name, self.target, self._hint(bare, self._structs))
        if st.module != (module or NT):
            hint = " (it is %s!%s)" % (st.module, bare)
            raise UnknownTypeError(name, self.target, hint)
        return st

    def has_field(self, type_name: str, path: str) -> bool:
        """Whether ``type_name`` has the field ``path`` on this target (builds differ)."""
        try:
            self.field(type_name, path)
            return True
        except TypeLookupError:
            return False

    def has_type(self, name: str) -> bool:
        try:
            self.get_type(name)
        except UnknownTypeError:
            return False
        return True

    def type_names(self, module: str = NT, unnamed: bool = False) -> list[str]:
        """Sorted names of the module's structs and unions (for completion and `dt *`)."""
        return sorted(n for n, t in self._structs.items()
                      if t.module == module and (unnamed or not t.unnamed))

    def enum(self, name: str) -> EnumType:
        module, bare = _split(name)
        e = self._enums.get(bare)
        if e is None or module not in (None, NT):
            raise UnknownTypeError(name, self.target, self._hint(bare, self._enums))
        return e

    def enum_names(self) -> list[str]:
        return sorted(self._enums)

    def note_enum(self, name: str) -> EnumType:
        """Value names the PDB lacks but the reference supplies, e.g. ``_MI_VAD_TYPE``
        (the values of ``_MMVAD_FLAGS.VadType``). Not visible to ``enum()`` or `dt`."""
        note = self._notes.get(name)
        if note is None:
            raise UnknownTypeError(name, self.target)
        return parse_enum(name, {"size": 4, "values": note["values"]})

    def sizeof(self, name: str) -> int:
        module, bare = _split(name)
        if bare in self._enums and module in (None, NT):
            return self._enums[bare].size
        return self.get_type(name).size

    # -- fields ------------------------------------------------------------------------
    def field(self, type_name: str, path: str) -> Field:
        """Resolve ``path`` ("u3.e1.PageLocation", "Ptes[3]", "Header.List.Flink") in
        ``type_name`` to a :class:`Field` whose offset is from the start of the type."""
        key = (type_name, path)
        f = self._fields.get(key)
        if f is None:
            f = self._fields[key] = self._resolve(type_name, path)
        return f

    def offset_of(self, type_name: str, path: str) -> int:
        return self.field(type_name, path).offset

    def fields(self, type_name: str) -> tuple[Field, ...]:
        """The type's own members as Fields, in PDB order (what `dt` prints)."""
        st = self.get_type(type_name)
        return tuple(self.field(st.qualified_name, m.name) for m in st.members)

    def leaves(self, type_name: str) -> tuple[Field, ...]:
        """Every scalar reachable by value (nested unions and structs, array elements),
        in PDB order. Union members overlap, so several leaves may share bits."""
        st = self.get_type(type_name)
        root = st.qualified_name
        got = self._leaves.get(root)
        if got is None:
            got = self._leaves[root] = tuple(self._expand_struct(root, "", 0, st))
        return got

    # -- memory ------------------------------------------------------------------------
    def view(self, mem, type_name: str, addr: int) -> StructView:
        return StructView(self, mem, type_name, addr)

    def pack(self, type_name: str, values: Optional[Mapping[str, object]] = None) -> bytes:
        """A whole structure as bytes: zeros, then each ``path: value`` written in order.
        Composite paths take ints or bytes of their size (see :mod:`kdsim.nt.fields`)."""
        st = self.get_type(type_name)
        buf = bytearray(st.size)
        for path, value in (values or {}).items():
            self.field(st.qualified_name, path).pack_into(buf, value)
        return bytes(buf)

    def unpack(self, type_name: str, data) -> dict[str, object]:
        """``{path: value}`` for every leaf of the structure at the start of ``data``."""
        st = self.get_type(type_name)
        if len(data) < st.size:
            raise ValueError("%s needs %d bytes, got %d" % (st.name, st.size, len(data)))
        return {f.path: f.unpack_from(data) for f in self.leaves(st.qualified_name)}

    # -- resolution --------------------------------------------------------------------
    def _resolve(self, type_name: str, path: str) -> Field:
        st: Optional[StructType] = self.get_type(type_name)
        root = st.qualified_name
        f: Optional[Field] = None
        done = ""
        for seg in path.split("."):
            m = _SEGMENT.match(seg.strip())
            if m is None:
                raise UnknownFieldError(root, path, " (bad path syntax at %r)" % seg)
            if st is None:
                raise UnknownFieldError(root, path, " (%s is not a structure)" % done)
            name = m.group(1)
            member = next((x for x in st.members if x.name == name), None)
            if member is None:
                where = " (no member %r in %s)" % (name, done) if done else ""
                raise UnknownFieldError(root, path, where)
            done = done + "." + name if done else name
            f = self._make(root, done, (f.offset if f else 0) + member.offset, member.type)
            for idx in _INDEX.findall(m.group(2)):
                if f.kind != "array":
                    raise UnknownFieldError(root, path, " (%s is not an array)" % f.path)
                f = f.at(int(idx, 0))
            done = f.path
            st = self.get_type(f.ref) if f.kind == "struct" else None
        if f is None:
            raise UnknownFieldError(root, path)
        return f

    def _make(self, root: str, path: str, offset: int, t: TypeDesc) -> Field:
        if isinstance(t, BitfieldType):
            return Field(root, path, offset, t.of.size, "bitfield", t, t.of.name,
                         t.pos, t.bits, t.of.signed)
        if isinstance(t, BaseType):
            cls = FloatField if t.is_float else Field
            return cls(root, path, offset, t.size, "float" if t.is_float else "base", t,
                       t.name, signed=t.signed)
        if isinstance(t, PointerType):
            return Field(root, path, offset, t.size, "pointer", t, t.dt_text(),
                         ref=t.target_struct)
        if isinstance(t, EnumRef):
            base = self.enum(t.name).base
            return Field(root, path, offset, t.size, "enum", t, base,
                         signed=base in SIGNED_BASES, ref=t.name)
        if isinstance(t, StructRef):
            st = self._structs[t.name]
            return CompositeField(root, path, offset, st.size, "struct", t, t.dt_text(),
                                  ref=st.qualified_name)
        if isinstance(t, ArrayType):
            elem = self._make(root, path + "[]", 0, t.of)
            return CompositeField(root, path, offset, t.count * elem.size, "array", t,
                                  t.dt_text(), elem=elem, count=t.count)
        raise TypeLookupError("%s.%s has no storage (%s)" % (root, path, t.dt_text()))

    def _expand_struct(self, root: str, prefix: str, offset: int,
                       st: StructType) -> Iterator[Field]:
        for m in st.members:
            yield from self._expand(root, self._make(root, prefix + m.name, offset + m.offset,
                                                     m.type))

    def _expand(self, root: str, f: Field) -> Iterator[Field]:
        if f.kind == "struct":
            yield from self._expand_struct(root, f.path + ".", f.offset, self.get_type(f.ref))
        elif f.kind == "array":
            for i in range(f.count):
                yield from self._expand(root, f.at(i))
        else:
            yield f

    @staticmethod
    def _hint(name: str, names) -> str:
        close = difflib.get_close_matches(name, list(names), n=1)
        return " (did you mean %s?)" % close[0] if close else ""


def _split(name: str) -> tuple[Optional[str], str]:
    """``"nt!_MMPFN"`` -> ``("nt", "_MMPFN")``; ``"_MMPFN"`` -> ``(None, "_MMPFN")``."""
    module, bang, bare = name.strip().rpartition("!")
    return (module.lower() if bang else None), bare
