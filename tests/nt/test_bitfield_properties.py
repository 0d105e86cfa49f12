"""Properties of field access, stated in the test names and checked with hypothesis."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdsim.nt.profiles import PROFILE_NAMES
from kdsim.nt.types import TypeSystem
from tests.nt.helpers import FakeMemory

TYPES = ("_MMPTE_HARDWARE", "_MMPTE", "_MMPFN", "_MMVAD_FLAGS")
CASES = [(t, n) for t in PROFILE_NAMES for n in TYPES]
BASE = 0x40                                   # structures start off address zero
# Few examples per case, many cases (4 targets x 4 types): the whole file runs in seconds.
FAST = settings(max_examples=30, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def _bitfields(target, type_name):
    return [f for f in TypeSystem(target).leaves(type_name) if f.kind == "bitfield"]


def _value_in_range(f):
    if f.signed:
        return st.integers(-(1 << (f.bit_width - 1)), (1 << (f.bit_width - 1)) - 1)
    return st.integers(0, (1 << f.bit_width) - 1)


def _field_and_value(target, type_name):
    return st.sampled_from(_bitfields(target, type_name)).flatmap(
        lambda f: st.tuples(st.just(f), _value_in_range(f)))


def _struct_bits(f):
    """The bits of the whole structure that field f owns."""
    return f.mask << (8 * f.offset + f.bit_pos)


@pytest.mark.parametrize("target, type_name", CASES)
def test_writing_any_in_range_value_to_a_bitfield_reads_it_back_and_changes_no_other_bit(
        target, type_name):
    ts = TypeSystem(target)
    size = ts.sizeof(type_name)

    @FAST
    @given(fv=_field_and_value(target, type_name), initial=st.binary(min_size=size, max_size=size))
    def check(fv, initial):
        f, value = fv
        mem = FakeMemory(size=BASE + size + 16, fill=0x5A)
        mem.write(BASE, initial)
        before = int.from_bytes(mem.read(0, len(mem.data)), "little")
        view = ts.view(mem, type_name, BASE)
        view[f.path] = value
        assert view[f.path] == value
        assert f.read(mem, BASE) == value
        after = int.from_bytes(mem.read(0, len(mem.data)), "little")
        assert (before ^ after) & ~(_struct_bits(f) << 8 * BASE) == 0

    check()


@pytest.mark.parametrize("target, type_name", CASES)
def test_out_of_range_values_raise_and_leave_memory_unchanged(target, type_name):
    ts = TypeSystem(target)

    @FAST
    @given(f=st.sampled_from(_bitfields(target, type_name)), data=st.data())
    def check(f, data):
        lo = -(1 << (f.bit_width - 1)) if f.signed else 0
        hi = (1 << (f.bit_width - 1)) - 1 if f.signed else (1 << f.bit_width) - 1
        bad = data.draw(st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1)))
        mem = FakeMemory(size=BASE + ts.sizeof(type_name), fill=0xC3)
        before = bytes(mem.data)
        with pytest.raises(ValueError, match=f.path.split(".")[-1]):
            f.write(mem, BASE, bad)
        assert bytes(mem.data) == before

    check()


@pytest.mark.parametrize("target, type_name", CASES)
def test_insert_then_extract_on_an_integer_round_trips_and_keeps_other_bits(target, type_name):
    ts = TypeSystem(target)
    bits = 8 * ts.sizeof(type_name)

    @FAST
    @given(fv=_field_and_value(target, type_name), word=st.integers(0, (1 << bits) - 1))
    def check(fv, word):
        f, value = fv
        new = f.insert(word, value)
        assert f.extract(new) == value
        assert (new ^ word) & ~_struct_bits(f) == 0
        assert 0 <= new < 1 << bits

    check()


@pytest.mark.parametrize("target", PROFILE_NAMES)
@pytest.mark.parametrize("type_name", ["_MMPFN", "_MMVAD_SHORT", "_MMPTE"])
def test_pack_of_unpack_reproduces_every_byte_a_field_covers(target, type_name):
    ts = TypeSystem(target)
    size = ts.sizeof(type_name)
    covered = 0
    for f in ts.leaves(type_name):
        covered |= _struct_bits(f)

    @FAST
    @given(raw=st.binary(min_size=size, max_size=size))
    def check(raw):
        packed = ts.pack(type_name, ts.unpack(type_name, raw))
        assert int.from_bytes(packed, "little") == int.from_bytes(raw, "little") & covered

    check()


@pytest.mark.parametrize("target", PROFILE_NAMES)
def test_unpack_of_pack_returns_the_values_of_non_overlapping_fields(target):
    ts = TypeSystem(target)
    leaves = ts.leaves("_MMVAD_SHORT")

    @FAST
    @given(data=st.data())
    def check(data):
        chosen, used = {}, 0
        for f in data.draw(st.permutations(leaves)):
            if _struct_bits(f) & used:
                continue                           # union alternative of a chosen field
            used |= _struct_bits(f)
            chosen[f.path] = data.draw(_value_in_range(f))
        got = ts.unpack("_MMVAD_SHORT", ts.pack("_MMVAD_SHORT", chosen))
        assert {p: got[p] for p in chosen} == chosen

    check()
