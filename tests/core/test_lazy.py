"""Records generated on first touch (kd_phys_lazy_records): every way of reading or
writing guest RAM sees exactly the bytes an eager write would have left."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdsim.machine import Machine

MB = 1 << 20
GRANULE_PAGES = 16


def expected(template: bytes, count: int, index0: int, fields) -> bytes:
    out = bytearray()
    for i in range(count):
        rec = bytearray(template)
        for off, width, delta in fields:
            v = (index0 + i + delta) & ((1 << 64) - 1)
            rec[off:off + width] = v.to_bytes(8, "little")[:width]
        out += rec
    return bytes(out)


records = st.integers(8, 64).flatmap(lambda size: st.tuples(
    st.just(size),
    st.binary(min_size=size, max_size=size),
    st.integers(0, 40000),                                   # count
    st.integers(0, 2**40),                                   # index0
    st.lists(st.tuples(st.integers(0, size - 8), st.sampled_from([1, 2, 4, 8]),
                       st.integers(-3, 3)), max_size=4),
    st.integers(0, 0x3000)))                                 # where, from a page start


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(case=records)
def test_lazy_records_read_back_as_if_written(case):
    size, template, count, index0, fields, where = case
    m = Machine(4 * MB)
    pa = 0x2000 + where
    m.lazy_records(pa, template, count, index0, fields)
    want = expected(template, count, index0, fields)
    assert m.read_physical(pa, len(want)) == want
    assert m.lazy_pages == 0                                   # reading gave them all
    assert m.read_physical(0, 0x2000) == bytes(0x2000)         # nothing else written


def test_views_writes_walks_and_discards_see_the_generated_bytes():
    m = Machine(8 * MB)
    template = bytes(range(24))
    fields = [(0, 8, 1), (8, 8, -1)]
    count = 200000
    m.lazy_records(0x1018, template, count, 7, fields)
    want = expected(template, count, 7, fields)
    waiting = m.lazy_pages
    assert waiting >= (count * 24 // 4096) - 2 * GRANULE_PAGES
    # a numpy view reads a page in the middle
    v = m.view_physical(0x100000, 4096)
    assert v.tobytes() == want[0x100000 - 0x1018:0x100000 - 0x1018 + 4096]
    assert m.lazy_pages == waiting - GRANULE_PAGES
    # a write into a waiting page keeps the rest of its records
    m.write_physical(0x200010, b"\xAA" * 4)
    got = m.read_physical(0x200000, 64)
    exp = bytearray(want[0x200000 - 0x1018:0x200000 - 0x1018 + 64])
    exp[0x10:0x14] = b"\xAA" * 4
    assert got == bytes(exp)
    # a discarded page reads as zeros, its granule's other pages keep their records
    m.discard_pages(0x300000, 0x1000)
    assert m.read_physical(0x300000, 0x1000) == bytes(0x1000)
    off = 0x301000 - 0x1018
    assert m.read_physical(0x301000, 0x1000) == want[off:off + 0x1000]
    # a page table on a waiting page: the walk reads the generated entries
    m2 = Machine(8 * MB)
    entry = struct.pack("<Q", 0x5000 | 0x3)                     # present, writable
    m2.lazy_records(0x100000, entry, 512 * 64, 0, [])           # 0x100000-0x140000
    m2.set_paging("x86", 0)                 # 4-byte entries: 0x5003, 0, 0x5003, 0, ...
    m2.write_physical(0x0, struct.pack("<I", 0x120003))         # PDE 0 -> a waiting page
    before = m2.lazy_pages
    t = m2.translate(0x2000)                                    # PTE 2 of that table
    assert t.ok and t.pa == 0x5000 and m2.lazy_pages == before - GRANULE_PAGES
    assert not m2.translate(0x1000).ok                          # PTE 1 is 0
    m2.materialize()
    assert m2.lazy_pages == 0


def test_freeing_a_machine_with_waiting_pages_and_reusing_its_slots():
    for _ in range(300):                                        # more than the slot table
        m = Machine(4 * MB)
        m.lazy_records(0x1000, bytes(16), 100000, 0, [(0, 8, 1)])
        assert m.lazy_pages > 0
        del m
    m = Machine(4 * MB)
    m.lazy_records(0x1000, bytes(16), 100000, 0, [(0, 8, 1)])
    assert m.read_physical(0x1000 + 16 * 5000, 8) == (5001).to_bytes(8, "little")


@pytest.mark.parametrize("bad", [
    dict(template=b""), dict(template=bytes(65)), dict(fields=[(0, 9, 0)]),
    dict(fields=[(10, 8, 0)]), dict(fields=[(0, 1, 0)] * 5)])
def test_bad_arguments_are_refused(bad):
    from kdsim.machine.errors import KdArgumentError
    m = Machine(4 * MB)
    args = dict(pa=0x1000, template=bytes(16), count=10, index0=0, fields=[])
    args.update(bad)
    with pytest.raises(KdArgumentError):
        m.lazy_records(**args)
    assert m.lazy_pages == 0
