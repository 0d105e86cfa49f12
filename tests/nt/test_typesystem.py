"""TypeSystem: look-up, paths, fields, views, pack/unpack and the errors they raise."""
import struct

import pytest

from kdsim.nt.profiles import get_profile
from kdsim.nt.types import (ArrayView, EnumValue, Field, Pointer, StructView, TypeSystem,
                            UnknownFieldError, UnknownTypeError)
from tests.nt.helpers import FakeMemory

X64 = TypeSystem("win7-x64")
X86 = TypeSystem("win7-x86")


# -- loading and look-up ---------------------------------------------------------------

def test_type_systems_of_one_target_share_one_load():
    a, b = TypeSystem("win7-x64"), TypeSystem(get_profile("win7-x64"))
    assert a.get_type("_MMPFN") is b.get_type("_MMPFN")
    assert a.field("_MMPFN", "PteAddress") is b.field("_MMPFN", "PteAddress")
    assert "7601" in a.source


def test_lookup_with_and_without_the_nt_module():
    assert X64.get_type("nt!_MMPFN") is X64.get_type("_MMPFN")
    assert X64.get_type("NT!_MMPFN").name == "_MMPFN"
    assert X64.sizeof("nt!_MMPFN") == 0x30
    assert "_MMPFN" in X64.type_names()
    assert not any(n.startswith("__unnamed") for n in X64.type_names())
    assert "_KDDEBUGGER_DATA64" in X64.type_names(module="wdbgexts")


def test_members_are_in_pdb_order_with_dt_text():
    st = X64.get_type("_MMPTE_HARDWARE")
    assert [m.name for m in st.members][:3] == ["Valid", "Dirty1", "Owner"]
    assert st.members[0].type.dt_text() == "Pos 0, 1 Bit"
    pfn = X64.get_type("_MMPFN")
    assert pfn.member("PteAddress").type.dt_text() == "Ptr64 _MMPTE"
    assert pfn.member("u1").type.dt_text() == "<unnamed-tag>"
    assert X86.get_type("_PEB").member("PostProcessInitRoutine").type.dt_text() == "Ptr32     void "
    assert X86.get_type("_PEB").member("ProcessHeaps").type.dt_text() == "Ptr32 Ptr32 Void"
    assert X64.get_type("_KPROCESS").member("BasePriority").type.dt_text() == "Char"


def test_union_and_struct_kinds():
    assert X64.get_type("_LARGE_INTEGER").kind == "union"
    assert X64.get_type("_MMPFN").kind == "struct"
    assert X64.get_type(X64.field("_MMPTE", "u").ref).kind == "union"


def test_enum_lookup_and_names():
    e = X64.enum("nt!_MMLISTS")
    assert e.name_of(6) == "ActiveAndValid" and e.value_of("ZeroedPageList") == 0
    assert e.name_of(99) is None
    assert X64.sizeof("_MMLISTS") == 4
    assert X64.note_enum("_MI_VAD_TYPE").name_of(2) == "VadImageMap"


def test_unknown_type_names_the_type_and_target():
    with pytest.raises(UnknownTypeError) as e:
        X64.get_type("_MMPFM")
    assert "_MMPFM" in str(e.value) and "win7-x64" in str(e.value)
    assert "_MMPFN" in str(e.value)                     # the close match as a hint
    assert e.value.type_name == "_MMPFM"
    with pytest.raises(UnknownTypeError, match="_NOPE"):
        X64.sizeof("_NOPE")
    with pytest.raises(UnknownTypeError, match="_NOPE"):
        X64.enum("_NOPE")
    with pytest.raises(UnknownTypeError, match="_NOPE"):
        X64.view(FakeMemory(), "_NOPE", 0)


def test_kdbg_is_not_an_nt_type():
    with pytest.raises(UnknownTypeError, match="wdbgexts!_KDDEBUGGER_DATA64"):
        X64.get_type("nt!_KDDEBUGGER_DATA64")
    with pytest.raises(UnknownTypeError):
        X64.get_type("_KDDEBUGGER_DATA64")
    assert X64.sizeof("wdbgexts!_KDDEBUGGER_DATA64") == 0x340
    assert X64.offset_of("wdbgexts!_KDDEBUGGER_DATA64", "Header.List.Blink") == 8


def test_wrk_lacks_the_win7_only_types():
    wrk = TypeSystem("wrk-x86")
    for name in ("_MMPTE_TIMESTAMP", "_MMVAD_FLAGS3", "_MSUBSECTION"):
        assert not wrk.has_type(name)
        assert X64.has_type(name)


# -- field paths -----------------------------------------------------------------------

def test_field_descriptor_for_a_nested_bitfield():
    f = X64.field("_MMPFN", "u3.e1.PageLocation")
    assert isinstance(f, Field)
    assert (f.type_name, f.path, f.offset, f.size, f.bit_pos, f.bit_width, f.signed) == \
        ("_MMPFN", "u3.e1.PageLocation", 0x1A, 1, 0, 3, False)
    assert f.kind == "bitfield" and f.is_bitfield and f.base == "unsigned char"
    assert X64.field("_MMPFN", "u3.e1.PageLocation") is f      # cached


def test_fields_are_immutable():
    f = X64.field("_MMPFN", "PteAddress")
    with pytest.raises(AttributeError):
        f.offset = 0


def test_flattened_anonymous_union_members_share_an_offset():
    offs = {n: X64.offset_of("_MMPFN", n) for n in ("PteAddress", "VolatilePteAddress", "Lock",
                                                    "PteLong")}
    assert set(offs.values()) == {0x10}


def test_array_index_in_paths():
    f = X64.field("_EPROCESS", "ImageFileName[0x2]")
    assert f.offset == 0x2E2 and f.path == "ImageFileName[2]" and f.size == 1
    assert X64.offset_of("_KUSER_SHARED_DATA", "ProcessorFeatures[3]") == \
        X64.offset_of("_KUSER_SHARED_DATA", "ProcessorFeatures") + 3


def test_member_of_an_array_element_of_structs():
    run = X86.field("_PHYSICAL_MEMORY_DESCRIPTOR", "Run")
    assert (run.kind, run.count, run.stride) == ("array", 1, 8)
    assert run.elem.ref == "_PHYSICAL_MEMORY_RUN"
    f = X86.field("_PHYSICAL_MEMORY_DESCRIPTOR", "Run[0].PageCount")
    assert f.offset == run.offset + 4 and f.path == "Run[0].PageCount"


def test_trailing_one_element_arrays_can_be_indexed_past_their_length_on_request():
    ptes = X64.field("_SEGMENT", "ThePtes")
    assert ptes.count == 1
    with pytest.raises(IndexError):
        ptes.at(5)
    fifth = ptes.at(5, bounded=False)
    assert (fifth.offset, fifth.path, fifth.ref) == (ptes.offset + 40, "ThePtes[5]", "_MMPTE")


@pytest.mark.parametrize("path, detail", [
    ("Nope", "'Nope'"),
    ("u3.e1.Nope", "no member 'Nope' in u3.e1"),
    ("PteAddress.Long", "PteAddress is not a structure"),
    ("PteAddress[1]", "PteAddress is not an array"),
    ("u3..e1", "bad path syntax"),
    ("", "bad path syntax"),
])
def test_unknown_field_names_the_type_and_path(path, detail):
    with pytest.raises(UnknownFieldError) as e:
        X64.field("_MMPFN", path)
    assert "_MMPFN" in str(e.value) and detail in str(e.value)
    assert e.value.type_name == "_MMPFN" and e.value.path == path


def test_array_index_out_of_range_in_a_path():
    with pytest.raises(IndexError, match=r"ImageFileName\[15\]"):
        X64.field("_EPROCESS", "ImageFileName[15]")


def test_unknown_field_is_also_an_attribute_error_on_views():
    v = X64.view(FakeMemory(), "_MMPFN", 0)
    assert not hasattr(v, "Nope")
    with pytest.raises(UnknownFieldError, match="Nope"):
        v.Nope = 1


# -- signedness and ranges -------------------------------------------------------------

def test_signed_char_reads_negative():
    mem = FakeMemory()
    kp = X64.view(mem, "_KPROCESS", 0x100)
    f = X64.field("_KPROCESS", "BasePriority")
    mem.write(0x100 + f.offset, b"\xff")
    assert kp.BasePriority == -1
    kp.BasePriority = -128
    assert mem.read(0x100 + f.offset, 1) == b"\x80"
    kp.BasePriority = 127
    assert kp.BasePriority == 127


def test_signed_bitfield_reads_negative():
    # x64 _MMPTE_PROTOTYPE.ProtoAddress is a 48-bit signed (LONGLONG) bit field.
    f = X64.field("_MMPTE_PROTOTYPE", "ProtoAddress")
    assert f.signed and (f.bit_pos, f.bit_width) == (16, 48)
    pte = f.insert(0, -0x75F)
    assert pte >> 16 == (1 << 48) - 0x75F
    assert f.extract(pte) == -0x75F
    balance = X64.field("_MMADDRESS_NODE", "u1.Balance")
    assert balance.signed and balance.extract(0b11) == -1


def test_signed_base_types():
    mem = FakeMemory()
    assert not X86.field("_EPROCESS", "ActiveThreads").signed    # ULONG
    lock = X64.field("_MMPFN", "Lock")                           # LONG
    assert lock.signed
    lock.write(mem, 0, -2)
    assert lock.size == 4
    assert mem.read(lock.offset, 4) == b"\xfe\xff\xff\xff"
    assert lock.read(mem, 0) == -2


@pytest.mark.parametrize("path, bad", [
    ("u3.e1.PageLocation", 8), ("u3.e1.PageLocation", -1),
    ("PteAddress", 1 << 64), ("PteAddress", -1),
    ("u3.ReferenceCount", 0x10000),
])
def test_values_that_do_not_fit_raise_value_error_and_write_nothing(path, bad):
    mem = FakeMemory(fill=0xA5)
    v = X64.view(mem, "_MMPFN", 0x40)
    before = bytes(mem.data)
    with pytest.raises(ValueError, match=path.split(".")[-1]):
        v[path] = bad
    with pytest.raises(ValueError):
        X64.pack("_MMPFN", {path: bad})
    assert bytes(mem.data) == before


def test_signed_one_bit_field_takes_0_and_minus_1():
    f = X64.field("_KPROCESS", "AutoAlignment")
    assert f.signed and f.bit_width == 1
    assert f.extract(f.insert(0, -1)) == -1
    with pytest.raises(ValueError, match="AutoAlignment"):
        f.insert(0, 1)


def test_non_int_values_are_type_errors():
    with pytest.raises(TypeError):
        X64.pack("_MMPFN", {"u3.e1.PageLocation": "6"})


# -- views -----------------------------------------------------------------------------

def test_view_reads_and_writes_nested_bitfields_in_place():
    mem = FakeMemory(fill=0xFF)
    v = X64.view(mem, "_MMPFN", 0x300)
    assert isinstance(v, StructView) and isinstance(v.u3.e1, StructView)
    assert (v.addr, v.type_name, v.sizeof) == (0x300, "_MMPFN", 0x30)
    assert v.u3.e1.PageLocation == 7
    v.u3.e1.PageLocation = 5
    assert v.u3.e1.PageLocation == 5
    assert mem.data[0x300 + 0x1A] == 0xFD                  # only bits 0-2 of the byte
    assert v["u3.e1.PageLocation"] == 5
    v["u3.e1.PageLocation"] = 6
    assert v.u3.e1.PageLocation == 6
    assert v.raw() == bytes(mem.data[0x300:0x330])


def test_pointer_fields_are_ints_that_dereference():
    mem = FakeMemory()
    pfn = X64.view(mem, "_MMPFN", 0x100)
    pfn.PteAddress = 0x800
    p = pfn.PteAddress
    assert isinstance(p, Pointer) and int(p) == 0x800 and p == 0x800
    assert p.target == "_MMPTE"
    mem.write(0x800, struct.pack("<Q", 0x1234867))
    assert p.deref().u.Hard.PageFrameNumber == 0x1234
    assert X64.view(mem, "_MMPFN", 0x100).PteAddress.deref() == X64.view(mem, "_MMPTE", 0x800)


def test_pointer_size_per_target():
    assert X64.field("_MMPFN", "PteAddress").size == 8
    for target in ("win7-x86pae", "win7-x86", "wrk-x86"):
        assert TypeSystem(target).field("_MMPFN", "PteAddress").size == 4


def test_enum_fields_read_as_named_ints():
    mem = FakeMemory()
    ts = TypeSystem("win7-x86")
    path = "NtProductType"
    ts.view(mem, "_KUSER_SHARED_DATA", 0)[path] = 1
    val = ts.view(mem, "_KUSER_SHARED_DATA", 0).NtProductType
    assert isinstance(val, EnumValue) and val == 1 and val.name == "NtProductWinNt"


def test_array_views_index_iterate_and_assign():
    mem = FakeMemory()
    ep = X64.view(mem, "_EPROCESS", 0x1000)
    name = ep.ImageFileName
    assert isinstance(name, ArrayView) and len(name) == 15
    X64.field("_EPROCESS", "ImageFileName").write(mem, 0x1000, b"System".ljust(15, b"\0"))
    assert bytes(name).startswith(b"System")
    assert name[0] == ord("S") and name[-1] == 0
    name[1] = ord("Y")
    assert name.raw()[:6] == b"SYstem"
    with pytest.raises(IndexError):
        name[15]


def test_embedded_struct_assignment_takes_int_or_exact_bytes():
    mem = FakeMemory()
    pfn = X64.view(mem, "_MMPFN", 0)
    pfn.OriginalPte = 0x80
    assert pfn.OriginalPte.u.Soft.Protection == 4
    pfn.OriginalPte = (0xA0).to_bytes(8, "little")
    assert pfn.OriginalPte.u.Long == 0xA0
    with pytest.raises(ValueError, match="8 bytes"):
        pfn.OriginalPte = b"\x00"


def test_double_fields_read_floats():
    f = X64.field("_QUAD", "DoNotUseThisField")             # the only double (dt: Float)
    assert f.kind == "float" and f.desc.dt_text() == "Float"
    mem = FakeMemory()
    f.write(mem, 8, 1.5)
    assert f.read(mem, 8) == 1.5
    assert X64.unpack("_QUAD", X64.pack("_QUAD", {"DoNotUseThisField": -2.25})) == \
        {"DoNotUseThisField": -2.25, "UseThisFieldToCopy": int.from_bytes(
            struct.pack("<d", -2.25), "little", signed=True)}


def test_supplementary_struct_views():
    mem = FakeMemory()
    k = X64.view(mem, "wdbgexts!_KDDEBUGGER_DATA64", 0x2000)
    k.Header.OwnerTag = 0x4742444B                      # 'KDBG'
    k.Header.Size = 0x340
    assert k.Header.List.type_name == "LIST_ENTRY64"
    assert mem.read(0x2000 + 0x10, 8) == b"KDBG\x40\x03\x00\x00"


# -- pack / unpack ---------------------------------------------------------------------

def test_pack_writes_named_paths_into_zeros():
    data = X64.pack("_MMVAD_SHORT", {"StartingVpn": 0x340, "EndingVpn": 0x34F,
                                     "u.VadFlags.Protection": 4, "u.VadFlags.PrivateMemory": 1})
    assert len(data) == 0x40
    assert struct.unpack_from("<QQ", data, 0x18) == (0x340, 0x34F)
    flags = struct.unpack_from("<Q", data, 0x28)[0]
    assert flags == (4 << 56) | (1 << 63)
    assert X64.pack("_MMVAD_SHORT") == bytes(0x40)


def test_unpack_lists_every_leaf_path():
    data = X86.pack("_MMPFN", {"u3.e1.PageLocation": 6, "PteAddress": 0xC0001000})
    values = X86.unpack("_MMPFN", data)
    assert values["u3.e1.PageLocation"] == 6
    assert values["PteAddress"] == 0xC0001000
    assert values["OriginalPte.u.Long"] == 0
    assert set(values) == {f.path for f in X86.leaves("_MMPFN")}
    with pytest.raises(ValueError, match="needs 24 bytes"):
        X86.unpack("_MMPFN", b"\0" * 4)


def test_leaves_expand_arrays_and_nested_types():
    paths = [f.path for f in X64.leaves("_EPROCESS")]
    assert "ImageFileName[14]" in paths
    assert "Pcb.Header.Type" in paths
    assert "VadRoot.BalancedRoot.u1.Balance" in paths


def test_extract_and_insert_work_on_whole_pte_values():
    valid = X64.field("_MMPTE", "u.Hard.Valid")
    pfn = X64.field("_MMPTE", "u.Hard.PageFrameNumber")
    nx = X64.field("_MMPTE", "u.Hard.NoExecute")
    pte = 0x8000000012345867
    assert (valid.extract(pte), pfn.extract(pte), nx.extract(pte)) == (1, 0x12345, 1)
    assert pfn.insert(pte, 0x777) == 0x8000000000777867
