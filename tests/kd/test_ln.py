"""ln: the symbol at or before an address, the one after it, and the exact matches."""
import pytest

import kdsim
from kdsim.kd.commands.symbols import nearest, symbolize


def test_ln_exact_match_on_x64(x64):
    assert x64.debugger.execute("ln nt!MmHighestUserAddress") == (
        "(fffff800`02c1f368)   nt!MmHighestUserAddress   |  "
        "(fffff800`02c1f370)   nt!MmUserProbeAddress\n"
        "Exact matches:\n"
        "    nt!MmHighestUserAddress = <no type information>\n")


def test_ln_exact_match_on_x86(x86):
    assert x86.debugger.execute("ln 82b4f354") == (
        "(82b4f354)   nt!MmHighestUserAddress   |  (82b4f358)   nt!MmUserProbeAddress\n"
        "Exact matches:\n"
        "    nt!MmHighestUserAddress = <no type information>\n")


def test_ln_inside_a_symbol_has_no_exact_matches(x64, x86):
    assert x64.debugger.execute("ln nt!MmZeroedPageListHead+0x10") == (
        "(fffff800`02c1f430)   nt!MmZeroedPageListHead+0x10   |  "
        "(fffff800`02c1f458)   nt!MmFreePageListHead\n")
    assert x86.debugger.execute("ln (nt!MmPagingFile + 0n60)") == (
        "(82b4f434)   nt!MmPagingFile+0x3c   |  (82b4f474)   nt!KeNumberProcessors\n")


def test_ln_after_the_last_symbol_prints_only_the_left_half(x64):
    assert x64.debugger.execute("ln nt!MmPagedPoolCommit+2") == \
        "(fffff800`02c1f5d8)   nt!MmPagedPoolCommit+0x2\n"


def test_ln_before_the_first_symbol_names_the_module(x64, x86):
    assert x64.debugger.execute("ln nt") == \
        "(fffff800`02a1f000)   nt   |  (fffff800`02a2f000)   nt!KiPageFault\n"
    assert x86.debugger.execute("ln nt+10") == \
        "(82a1f000)   nt+0x10   |  (82a2f000)   nt!KiTrap0E\n"
    assert x86.debugger.execute("ln hal+10") == "(82e2f000)   hal+0x10\n"


def test_ln_outside_every_module_prints_nothing(x64, x86):
    assert x64.debugger.execute("ln 0") == ""
    assert x64.debugger.execute("ln fffffa80`00000000") == ""
    assert x86.debugger.execute("ln 7ffe0000") == ""


def test_ln_errors(x64):
    d = x64.debugger
    assert d.execute("ln nt!Nope") == "Couldn't resolve error at 'nt!Nope'\n"
    assert d.execute("ln 1 +") == "            ^ Syntax error in 'ln 1 +'\n"
    # No address: the instruction pointer -- where the processor stopped (a fresh machine
    # has broken in at nt!RtlpBreakWithStatusInstruction)
    assert d.execute("ln") == (
        "(fffff800`02a4d000)   nt!RtlpBreakWithStatusInstruction   |  "
        "(fffff800`02bcf000)   nt!KiSystemStartup\n"
        "Exact matches:\n"
        "    nt!RtlpBreakWithStatusInstruction (<no parameter info>)\n")


@pytest.mark.parametrize("fixture", ["x64", "x86"])
def test_ln_of_every_symbol_plus_one_names_that_symbol_plus_one(fixture, request):
    booted = request.getfixturevalue(fixture)
    d = booted.debugger
    # the oracle's layout: the memory manager's variables and routines
    ordered = sorted({**booted.nt.symbols, **booted.nt.functions}.items(), key=lambda kv: kv[1])
    for i, (name, va) in enumerate(ordered):
        out = d.execute(f"ln {va + 1:x}")
        left = out.split("   |  ")[0]
        assert left.endswith(f")   nt!{name}+0x1\n" if i == len(ordered) - 1
                             else f")   nt!{name}+0x1"), (name, out)
        exact = d.execute(f"ln {va:x}")
        info = " = <no type information>" if name in booted.nt.symbols else " ("
        assert f"Exact matches:\n    nt!{name}{info}" in exact
        if i + 1 < len(ordered):
            assert f"   nt!{ordered[i + 1][0]}\n" in exact.splitlines(keepends=True)[0]


def test_symbolize_names_symbols_offsets_and_modules(x64):
    s = x64.debugger
    va = x64.nt.symbols["MmPfnDatabase"]
    assert symbolize(s, va) == "nt!MmPfnDatabase"
    assert symbolize(s, va + 5) == "nt!MmPfnDatabase+0x5"
    assert symbolize(s, 0xFFFFF80002A1F000 + 0x1234) == "nt+0x1234"
    assert symbolize(s, 0xFFFFF80003007000) == "hal"
    assert symbolize(s, 0xFFFFF80003007010) == "hal+0x10"
    assert symbolize(s, 0x10000) is None
    assert nearest(s, va + 5) == ("nt", "MmPfnDatabase", 5)


def test_ln_follows_the_loader_list_in_memory():
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    d = m.debugger
    nt_entry = int(d.execute("dq nt!PsLoadedModuleList L1").split()[1].replace("`", ""), 16)
    d.execute(f"eq {nt_entry + 0x40:x} 0")           # SizeOfImage 0: nothing lies in nt
    assert d.execute("ln fffff800`02c1f368") == ""


@pytest.mark.parametrize("target,want", [
    ("win7-x64", "(000007fe`fefe0000)   ntdll+0x1234\n"),
    ("win7-x86", "(77fe0000)   ntdll+0x1234\n"),
])
def test_ln_in_a_user_module_names_the_module_and_offset(target, want):
    """User modules have no symbols: an address in one is named module+offset, and dps
    names pointers into them the same way."""
    m = kdsim.boot(target, ram="256m", scenario="none")
    proc = m.nt.spawn("calc.exe")
    d = m.debugger
    d.execute(f".process /p /r {proc.ep:x}")
    assert d.execute("ln ntdll+1234") == want
    assert d.execute(f"ln {m.nt.sections['ntdll.dll'].base + 0x1234:x}") == want
    ptr = m.nt.ptr
    entry = proc.heap + (0x60 if ptr == 8 else 0x30)       # the exe's loader entry
    dll_base = entry + m.nt.ts.offset_of("_LDR_DATA_TABLE_ENTRY", "DllBase")
    assert d.execute(f"dps {dll_base:x} L1").rstrip().endswith(" calc")
