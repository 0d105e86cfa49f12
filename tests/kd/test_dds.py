"""dds, dps, dqs: one value a line, followed by the symbol it points at when it is an
address inside a loaded module; 128 bytes by default; continuation; unreadable values."""
import re

import pytest

import kdsim
from kdsim.kd.commands.symbols import symbolize


def test_dps_names_the_list_head_a_module_entry_points_back_to(x64, x86):
    assert x64.debugger.execute("dps poi(PsLoadedModuleList) L2") == (
        "fffffa80`030000c0  fffffa80`030001c0\n"
        "fffffa80`030000c8  fffff800`02c1f350 nt!PsLoadedModuleList\n")
    assert x86.debugger.execute("dps poi(PsLoadedModuleList) L2") == (
        "86000090  86000138\n"
        "86000094  82b4f348 nt!PsLoadedModuleList\n")


def test_dds_is_dps_on_x86_and_dqs_is_dps_on_x64(x64, x86):
    assert x86.debugger.execute("dds poi(PsLoadedModuleList) L6") == \
        x86.debugger.execute("dps poi(PsLoadedModuleList) L6")
    assert x64.debugger.execute("dqs poi(PsLoadedModuleList) L6") == \
        x64.debugger.execute("dps poi(PsLoadedModuleList) L6")


def test_dds_on_x64_shows_double_words(x64):
    assert x64.debugger.execute("dds poi(PsLoadedModuleList)+8 L2") == (
        "fffffa80`030000c8  02c1f350\n"
        "fffffa80`030000cc  fffff800\n")


def test_dqs_on_x86_backticks_quad_words_and_names_only_sign_extended_ones(x86):
    assert x86.debugger.execute("dqs poi(PsLoadedModuleList) L2") == (
        "86000090  82b4f348`86000138\n"
        "86000098  86000098`86000098\n")
    m = kdsim.boot("win7-x86", ram="256m", scenario="none")
    d = m.debugger
    d.execute("eq nt+1000 ffffffff`82b4f348; eq nt+1008 00000000`82b4f348")
    assert d.execute("dqs nt+1000 L2") == (
        "82a20000  ffffffff`82b4f348 nt!PsLoadedModuleList\n"
        "82a20008  00000000`82b4f348\n")


def test_a_symbol_with_a_displacement():
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    d = m.debugger
    d.execute("eq nt+1000 nt!MmPfnDatabase+3; eq nt+1008 nt!MmPfnDatabase")
    assert d.execute("dps nt+1000 L2") == (
        "fffff800`02a20000  fffff800`02c1f3db nt!MmPfnDatabase+0x3\n"
        "fffff800`02a20008  fffff800`02c1f3d8 nt!MmPfnDatabase\n")


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86"])
def test_a_symbol_appears_exactly_when_the_value_is_inside_a_loaded_module(target):
    m = kdsim.boot(target, ram="256m", scenario="default")
    spans = [(base, base + size) for _, _, base, size in m.nt.modules]   # the oracle
    d = m.debugger
    out = d.execute("dps poi(PsLoadedModuleList) L40")
    assert len(out.splitlines()) == 0x40
    named = 0
    for line in out.splitlines():
        _, value, *symbol = re.split(r"  | ", line, maxsplit=2)
        v = int(value.replace("`", ""), 16)
        inside = any(lo <= v < hi for lo, hi in spans)
        assert bool(symbol) == inside, line
        if inside:
            named += 1
            assert symbol[0] == symbolize(d, v)
    assert named >= 3


def test_default_counts_are_128_bytes_and_dps_continues(x64, x86):
    d64, d86 = x64.debugger, x86.debugger
    assert len(d64.execute("dps nt").splitlines()) == 16
    assert len(d64.execute("dds nt").splitlines()) == 32
    assert len(d86.execute("dps nt").splitlines()) == 32
    assert len(d86.execute("dqs nt").splitlines()) == 16
    d86.execute("dps poi(PsLoadedModuleList) L2")
    assert d86.execute("dps").splitlines()[0] == "86000098  86000098"
    d64.execute("dqs nt L1")
    assert d64.execute("dqs").splitlines()[0] == "fffff800`02a1f008  00000000`00000000"


def test_unreadable_values_and_errors(x64, x86):
    assert x64.debugger.execute("dps 10000 L2") == (
        "00000000`00010000  ????????`????????\n"
        "00000000`00010008  ????????`????????\n")
    assert x64.debugger.execute("dds 10000 L1") == "00000000`00010000  ????????\n"
    assert x86.debugger.execute("dps 10000 L1") == "00010000  ????????\n"
    assert x86.debugger.execute("dqs 10000 L1") == "00010000  ????????`????????\n"
    assert x64.debugger.execute("dqs nosuch") == "Couldn't resolve error at 'nosuch'\n"
    assert x64.debugger.execute("dqs 10000 L 2000001") == \
        " " * 25 + "^ Range error in 'dqs 10000 L 2000001'\n"
