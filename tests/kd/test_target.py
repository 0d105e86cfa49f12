"""The Target interface over a live machine: reads with unreadable cells, probes under a
chosen address space, debugger writes without side effects, nt's symbol file."""
import pytest

import kdsim
from kdsim.kd.target import LiveTarget


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86"])
def target(request):
    m = kdsim.boot(request.param, ram="256m")
    return m, LiveTarget(m)


def test_symbols_are_offsets_from_the_module_base(target):
    m, t = target
    nt = t.symbols("nt")
    base = t.profile.address_space.kernel_base
    va = base + nt["MmHighestUserAddress"]
    got = int.from_bytes(t.read_virtual(va, t.pointer_size).data, "little")
    assert got == t.profile.address_space.highest_user_address
    assert t.symbols("nosuchmodule") == {}


def test_reads_mark_unreadable_bytes(target):
    m, t = target
    r = t.read_virtual(0x10000 - 4, 8)                     # user memory of System: nothing
    assert not any(r.readable) and r.data == bytes(8)
    k = t.profile.address_space.kernel_base
    r = t.read_virtual(k, 2)
    assert r.complete and r.data == b"MZ"
    p = t.read_physical(0x9F000 - 2, 4)                    # the hole below 1 MB
    assert p.readable == b"\1\1\0\0" and p.readable_prefix == 2


def test_another_address_space_is_read_without_loading_it(target):
    m, t = target
    notepad = m.nt.scenario["processes"]["notepad"]
    buf = m.nt.scenario["names"]["np_buf"]
    before = m.core.cr3
    r = t.read_virtual(buf, 22, cr3=notepad.cr3)
    assert r.data == b"Hello from notepad.exe" and m.core.cr3 == before
    system_cr3 = m.nt.kernel_tables.top
    assert not t.read_virtual(buf, 1, cr3=system_cr3).readable[0]   # not in System's space


def test_a_debugger_write_changes_memory_but_not_the_tables(target):
    m, t = target
    k = t.profile.address_space.kernel_base + 0x40
    tr = t.translate(k)
    leaf_before = tr.levels[-1][1]
    assert t.write_virtual(k, b"kd") == 2
    assert t.read_virtual(k, 2).data == b"kd"
    assert t.translate(k).levels[-1][1] == leaf_before     # no A/D bits set by a probe
    assert t.write_virtual(0x10000, b"x") == 0             # not mapped: nothing written
