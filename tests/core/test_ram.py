"""Guest physical RAM: runs and holes, any length and alignment, zero-copy views, lazy backing."""
import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kdsim.machine import (KdArgumentError, Machine, PhysicalMemoryError, STATUS,
                           parse_size)

MB = 1 << 20


def test_fresh_ram_reads_as_zeros_and_keeps_what_is_written():
    m = Machine(16 * MB)
    assert m.read_physical(0x5000, 16) == bytes(16)
    m.write_physical(0xFFFE, b"abcd")  # across a page boundary
    assert m.read_physical(0xFFFC, 8) == b"\0\0abcd\0\0"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(pa=st.integers(0, 64 * 1024 - 1), data=st.binary(min_size=0, max_size=3 * 4096))
def test_any_length_and_alignment_round_trips(pa, data):
    m = _shared_machine()
    m.write_physical(pa, data)
    assert m.read_physical(pa, len(data)) == data


_MACHINE = []


def _shared_machine():
    if not _MACHINE:
        _MACHINE.append(Machine(1 * MB))
    return _MACHINE[0]


def test_holes_and_the_end_of_ram_are_errors_with_partial_counts():
    m = Machine(8 * MB, runs=[(0, 2 * MB), (4 * MB, 4 * MB)])
    assert m.runs == [(0, 2 * MB), (4 * MB, 4 * MB)]
    m.write_physical(2 * MB - 4, b"tail")
    with pytest.raises(PhysicalMemoryError) as e:
        m.read_physical(2 * MB - 4, 8)
    assert (e.value.done, e.value.data, e.value.pa, e.value.status) == (4, b"tail", 2 * MB,
                                                                        STATUS["phys"])
    with pytest.raises(PhysicalMemoryError):
        m.write_physical(3 * MB, b"x")
    with pytest.raises(PhysicalMemoryError):
        m.read_physical(8 * MB, 1)
    with pytest.raises(PhysicalMemoryError):
        m.read_physical(8 * MB - 2, 4)
    assert m.is_physical(4 * MB, 4 * MB) and not m.is_physical(2 * MB - 1, 2)
    assert not m.is_physical(1 << 64, 1) and not m.is_physical(-1)


def test_adjacent_runs_merge_and_bad_runs_are_refused():
    m = Machine(8 * MB, runs=[(2 * MB, MB), (0, MB), (MB, MB)])
    assert m.runs == [(0, 3 * MB)]
    for runs in ([(0, 2 * MB), (MB, 2 * MB)],      # overlap
                 [(0x800, 4096)],                   # misaligned
                 [(0, 9 * MB)],                     # beyond the end
                 [(0, 0)]):                         # empty
        with pytest.raises(KdArgumentError):
            m.set_runs(runs)
    assert m.runs == [(0, 3 * MB)]  # a refused change changes nothing


def test_numpy_view_is_zero_copy_both_ways():
    m = Machine(4 * MB)
    v = m.page_view(3, 2)
    assert v.shape == (8192,) and v.flags.writeable
    v[10:13] = [7, 8, 9]
    assert m.read_physical(3 * 4096 + 10, 3) == b"\x07\x08\x09"
    m.write_physical(4 * 4096, b"\xff")
    assert v[4096] == 0xFF
    q = m.view_physical(0x3000, 4096, dtype=np.uint64)
    assert q.shape == (512,)


def test_view_keeps_the_ram_alive_after_the_machine_is_dropped():
    m = Machine(4 * MB)
    m.write_physical(0x2000, b"alive")
    v = m.page_view(2)
    del m
    gc.collect()
    assert bytes(v[:5]) == b"alive"


def test_view_must_not_cross_a_hole():
    m = Machine(4 * MB, runs=[(0, MB), (2 * MB, 2 * MB)])
    with pytest.raises(PhysicalMemoryError):
        m.view_physical(MB - 4096, 8192)
    with pytest.raises(KdArgumentError):
        m.view_physical(0, 0)


def test_discarded_pages_read_as_zeros():
    m = Machine(4 * MB)
    m.write_physical(0x1000, b"\x55" * 8192)
    m.discard_pages(0x1000, 4096)
    assert m.read_physical(0x1000, 8192) == bytes(4096) + b"\x55" * 4096
    with pytest.raises(KdArgumentError):
        m.discard_pages(0x1800, 4096)
    m2 = Machine(4 * MB, runs=[(0, MB)])
    with pytest.raises(PhysicalMemoryError):
        m2.discard_pages(2 * MB, 4096)


@pytest.mark.parametrize("size", [0, 4095, (1 << 46) + 4096, 1 << 60, -4096, 1 << 64])
def test_absurd_ram_sizes_are_refused(size):
    with pytest.raises(KdArgumentError):
        Machine(size)


def test_absurd_lengths_and_addresses_are_errors():
    m = Machine(4 * MB)
    for pa, n in ((0, 1 << 62), (0, -1), (-1, 1), (1 << 64, 1)):
        with pytest.raises(KdArgumentError):
            m.read_physical(pa, n)
    with pytest.raises(PhysicalMemoryError):
        m.read_physical((1 << 64) - 2, 4)
    with pytest.raises(PhysicalMemoryError):
        m.write_physical((1 << 64) - 1, b"ab")


def test_one_terabyte_guest_is_cheap_and_usable_at_its_end():
    m = Machine(1 << 40)
    m.write_physical((1 << 40) - 8, b"lastbyte")
    assert m.read_physical((1 << 40) - 8, 8) == b"lastbyte"


def test_parse_size_understands_the_usual_suffixes():
    assert [parse_size(s) for s in ("512m", "2g", "64G", "4096", "1t", "8kb")] == \
        [512 * MB, 2 << 30, 64 << 30, 4096, 1 << 40, 8192]
    with pytest.raises(ValueError):
        parse_size("lots")


def test_64_gb_guest_touched_at_1000_scattered_pages_stays_under_100_mb_rss():
    # A child process, so the figure is this machine's and nothing else's.
    code = textwrap.dedent("""
        import random
        from kdsim.machine import Machine
        def rss():
            for line in open('/proc/self/status'):
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
        before = rss()
        m = Machine('64g')
        rnd = random.Random(1)
        pages = rnd.sample(range((64 << 30) // 4096), 1000)
        for p in pages:
            m.write_physical(p * 4096 + 8, b'touched!')
        assert all(m.read_physical(p * 4096 + 8, 8) == b'touched!' for p in pages)
        print(before, rss())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))))
    before, after = map(int, out.stdout.split())
    assert after < 100 * MB, f"RSS {after / MB:.1f} MB"
    assert after - before < 20 * MB, f"the guest cost {(after - before) / MB:.1f} MB"
