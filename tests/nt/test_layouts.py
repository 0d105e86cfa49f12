"""Layout facts per target: the type system against the reference PDB dumps, and key
facts from nt-structures.md written out by hand."""
import pytest

from kdsim.nt.types import TypeSystem
from tests.nt.helpers import load_reference, reference_field


def _base_size(desc):
    return desc["of"]["size"] if desc["kind"] == "bitfield" else None


def test_every_type_and_member_matches_the_reference(ts, target):
    doc = load_reference(target)
    assert ts.pointer_size == doc["pointer_size"]
    for name, ref in doc["types"].items():
        st = ts.get_type(name)
        assert (st.size, st.kind) == (ref["size"], ref["kind"]), name
        assert [m.name for m in st.members] == [f["name"] for f in ref["fields"]], name
        for m, f in zip(st.members, ref["fields"]):
            where = "%s.%s" % (name, m.name)
            assert m.offset == f["offset"], where
            field = ts.field(name, m.name)
            assert field.offset == f["offset"], where
            if f["type"]["kind"] == "bitfield":
                assert (field.bit_pos, field.bit_width, field.size) == (
                    f["type"]["pos"], f["type"]["bits"], _base_size(f["type"])), where
            else:
                assert field.kind == f["type"]["kind"] or field.kind == "float", where


def test_enums_keep_their_names_and_values(ts, target):
    doc = load_reference(target)
    for name, ref in doc["enums"].items():
        e = ts.enum(name)
        assert e.size == ref["size"]
        assert list(e.values) == [(v["name"], v["value"]) for v in ref["values"]]


def test_supplementary_types_are_present_but_not_nt_types(ts, target):
    doc = load_reference(target)
    for name, ref in doc["supplementary_types"].items():
        qualified = name if name == "LIST_ENTRY64" else "wdbgexts!" + name
        assert ts.sizeof(qualified) == ref["size"]
    assert not ts.has_type("nt!_KDDEBUGGER_DATA64")
    assert ts.has_type("nt!LIST_ENTRY64")        # it is in the nt PDB


def test_missing_roots_are_missing(ts, target):
    for name in load_reference(target)["missing_roots"]:
        assert not ts.has_type(name)


# -- facts written out by hand (nt-structures.md §4-§7, checked against the dumps) ------

@pytest.mark.parametrize("target, size", [
    ("win7-x64", 0x30), ("win7-x86pae", 0x1C), ("win7-x86", 0x18), ("wrk-x86", 0x18)])
def test_mmpfn_size(target, size):
    assert TypeSystem(target).sizeof("_MMPFN") == size
    assert load_reference(target)["types"]["_MMPFN"]["size"] == size


@pytest.mark.parametrize("target, bits", [
    ("win7-x64", 36), ("win7-x86pae", 26), ("win7-x86", 20), ("wrk-x86", 20)])
def test_hardware_pte_page_frame_number_is_bits_12_up(target, bits):
    f = TypeSystem(target).field("_MMPTE_HARDWARE", "PageFrameNumber")
    assert (f.offset, f.bit_pos, f.bit_width) == (0, 12, bits)
    assert f.desc.dt_text() == "Pos 12, %d Bits" % bits
    ref = reference_field(load_reference(target), "_MMPTE_HARDWARE", "PageFrameNumber")
    assert (ref["type"]["pos"], ref["type"]["bits"]) == (12, bits)


@pytest.mark.parametrize("target, offset, length", [
    ("win7-x64", 0x2E0, 15), ("win7-x86pae", 0x16C, 15), ("win7-x86", 0x16C, 15),
    ("wrk-x86", 0x164, 16)])
def test_eprocess_image_file_name(target, offset, length):
    ts = TypeSystem(target)
    f = ts.field("_EPROCESS", "ImageFileName")
    assert (f.offset, f.kind, f.count, f.stride) == (offset, "array", length, 1)
    assert f.desc.dt_text() == "[%d] UChar" % length
    assert ts.offset_of("nt!_EPROCESS", "ImageFileName[3]") == offset + 3


@pytest.mark.parametrize("target, pos, flags_size", [
    ("win7-x64", 56, 8), ("win7-x86pae", 24, 4), ("win7-x86", 24, 4), ("wrk-x86", 24, 4)])
def test_vad_flags_protection_is_five_bits(target, pos, flags_size):
    ts = TypeSystem(target)
    f = ts.field("_MMVAD_FLAGS", "Protection")
    assert (f.bit_pos, f.bit_width, f.size) == (pos, 5, flags_size)
    via_vad = ts.field("_MMVAD_SHORT", "u.VadFlags.Protection")
    assert via_vad.offset == ts.offset_of("_MMVAD_SHORT", "u")
    assert via_vad.bit_pos == pos


@pytest.mark.parametrize("target, vad_short, starting_vpn", [
    ("win7-x64", 0x40, 0x18), ("win7-x86pae", 0x20, 0x0C), ("win7-x86", 0x20, 0x0C),
    ("wrk-x86", 0x18, 0x0C)])
def test_mmvad_short_size_and_starting_vpn(target, vad_short, starting_vpn):
    ts = TypeSystem(target)
    assert ts.sizeof("_MMVAD_SHORT") == vad_short
    assert ts.offset_of("_MMVAD_SHORT", "StartingVpn") == starting_vpn


def test_win7_mmpfn_order_differs_from_wrk():
    # Win7: u1, u2, PteAddress ...; WRK/2003: u1, PteAddress, u2 ... (nt-structures.md §12)
    assert [m.name for m in TypeSystem("win7-x86").get_type("_MMPFN").members][:3] == \
        ["u1", "u2", "PteAddress"]
    assert [m.name for m in TypeSystem("wrk-x86").get_type("_MMPFN").members][:3] == \
        ["u1", "PteAddress", "u2"]


def test_pae_mmpfn_u4_moved_to_0x18():
    assert TypeSystem("win7-x86pae").offset_of("_MMPFN", "u4") == 0x18
    assert TypeSystem("win7-x86").offset_of("_MMPFN", "u4") == 0x14


@pytest.mark.parametrize("target, u3, pos", [
    ("win7-x64", 0x18, 0), ("win7-x86pae", 0x0C, 0), ("win7-x86", 0x0C, 0), ("wrk-x86", 0x0C, 8)])
def test_page_location_is_three_bits_of_u3_e1(target, u3, pos):
    # e1 (_MMPFNENTRY) sits at u3+2; WRK's e1 is a USHORT with PageLocation at bit 8.
    f = TypeSystem(target).field("_MMPFN", "u3.e1.PageLocation")
    assert (f.offset, f.bit_pos, f.bit_width) == (u3 + 2, pos, 3)
