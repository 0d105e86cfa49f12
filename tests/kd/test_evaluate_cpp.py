"""`??` (the C++ evaluator) and `@@c++( )` / `@@( )` inside MASM expressions."""
import pytest

import kdsim


@pytest.fixture(scope="module")
def machines():
    return {t: kdsim.boot(t, ram="256m", scenario="none")
            for t in ("win7-x64", "win7-x86", "win7-x86pae", "wrk-x86")}


@pytest.fixture(scope="module")
def x64(machines):
    return machines["win7-x64"].debugger


@pytest.fixture(scope="module")
def x86(machines):
    return machines["win7-x86"].debugger


@pytest.mark.parametrize("target, printed", [
    ("win7-x64", "unsigned int64 0x30\n"), ("win7-x86", "unsigned int 0x18\n"),
    ("win7-x86pae", "unsigned int 0x1c\n"), ("wrk-x86", "unsigned int 0x18\n")])
def test_sizeof_mmpfn_is_size_t_of_the_target(machines, target, printed):
    d = machines[target].debugger
    for form in ("nt!_MMPFN", "_MMPFN", " nt!_MMPFN "):
        assert d.execute(f"?? sizeof({form})") == printed
    # ... and it is the stride of the PFN database: !pfn's "at address" of page 1 minus
    # that of page 0, and the layout the memory manager writes through.
    at = [int(d.execute(f"!pfn {n}").split()[4], 16) for n in (0, 1)]
    assert int(printed.split()[-1], 16) == at[1] - at[0] == machines[target].nt.ts.sizeof("_MMPFN")


def test_sizeof_of_basic_types_pointers_and_expressions(x64, x86):
    assert x64.execute("?? sizeof(int)") == "unsigned int64 4\n"
    assert x64.execute("?? sizeof(void*)") == "unsigned int64 8\n"
    assert x86.execute("?? sizeof(void *)") == "unsigned int 4\n"
    assert x64.execute("?? sizeof(unsigned __int64)") == "unsigned int64 8\n"
    assert x64.execute("?? sizeof(UCHAR)") == "unsigned int64 1\n"
    assert x64.execute("?? sizeof 1") == "unsigned int64 4\n"
    assert x64.execute("?? sizeof(1 + 2i64)") == "unsigned int64 8\n"
    assert x64.execute("?? sizeof(_MMPTE)") == "unsigned int64 8\n"
    assert x86.execute("?? sizeof(nt!_EPROCESS)") == "unsigned int 0x2c0\n"


def test_names_without_underscore_do_not_resolve_as_in_dt(x64):
    assert x64.execute("?? sizeof(nt!MMPFN)") == "Couldn't resolve error at 'nt!MMPFN)'\n"
    assert x64.execute("dt nt!MMPFN") == "Symbol nt!MMPFN not found.\n"
    assert x64.execute("?? sizeof(_NOSUCH) + 1") == \
        "Couldn't resolve error at '_NOSUCH) + 1'\n"


def test_literals_take_their_c_types(x64):
    cases = {
        "1+2": "int 0n3", "-1": "int 0n-1", "0x10": "int 0n16", "010": "int 0n8",
        "0x80000000": "unsigned int 0x80000000", "3000000000": "unsigned long 0xb2d05e00",
        "5u": "unsigned int 5", "10u": "unsigned int 0xa", "7L": "long 0n7",
        "1i64": "int64 0n1", "2ui64": "unsigned int64 2", "0x10`00000000": "int64 0n68719476736",
        "0xffffffff`ffffffff": "unsigned int64 0xffffffff`ffffffff",
        "(unsigned __int64)0 - 1": "unsigned int64 0xffffffff`ffffffff",
        "(ULONG)-1": "unsigned long 0xffffffff", "(int)0xffffffff": "int 0n-1",
    }
    for text, printed in cases.items():
        assert x64.execute(f"?? {text}") == printed + "\n", text


def test_operators_follow_c(x64):
    cases = {
        "7/-2": "int 0n-3", "-7%2": "int 0n-1", "1<<4|1": "int 0n17", "~0": "int 0n-1",
        "!5": "bool false", "1==1": "bool true", "2 > 3": "bool false",
        "-1 < 0u": "bool false",              # -1 becomes 0xffffffff (usual conversions)
        "-1 < 0": "bool true", "1 && 0": "bool false", "0 || 2": "bool true",
        "1 ? 2 : 3u": "unsigned int 2", "0 ? 2 : 3": "int 0n3",
        "(1 + 2) * 3": "int 0n9", "1 + 2 * 3": "int 0n7", "0x30 >> 4": "int 0n3",
        "5u - 6": "unsigned int 0xffffffff", "5i64 - 6u": "int64 0n-1",
        "1 || 1/0": "bool true",                   # the right side is not evaluated
        "#FIELD_OFFSET(_MMPFN, PteAddress)": "long 0n16",
        "@@(10) + 1": "unsigned int64 0x11",        # MASM inside C++: hex, a ULONG64
        "@@masm(0n10)": "unsigned int64 0xa",
    }
    for text, printed in cases.items():
        assert x64.execute(f"?? {text}") == printed + "\n", text


def test_registers_are_unsigned_and_pointer_sized(x64, x86):
    x64.execute("r $t0 = 5")
    x86.execute("r $t0 = 5")
    assert x64.execute("?? @$t0") == "unsigned int64 5\n"
    assert x86.execute("?? @$t0") == "unsigned int 5\n"
    assert x64.execute("?? @$t0 + 4*@$t0") == "unsigned int64 0x19\n"
    cr3 = int(x64.execute("r cr3").split("=")[1], 16)
    assert x64.execute("?? @cr3") == f"unsigned int64 0x{cr3:x}\n"


def test_cpp_inside_masm(x64, x86):
    assert x64.execute("? @@c++(sizeof(nt!_MMPFN))") == \
        "Evaluate expression: 48 = 00000000`00000030\n"
    assert x86.execute("? @@(sizeof(_MMPFN)) * 2") == "Evaluate expression: 48 = 00000030\n"
    assert x64.execute("? @@(1+@@(10))") == "Evaluate expression: 17 = 00000000`00000011\n"
    assert x64.execute("? @@c++(-1)") == \
        "Evaluate expression: -1 = ffffffff`ffffffff\n"
    # The PFN entry of page 5 through sizeof is the one !pfn reads.
    x64.execute("r $t1 = poi(MmPfnDatabase) + 5 * @@c++(sizeof(nt!_MMPFN))")
    at = int(x64.execute("? @$t1").split("= ")[1].replace("`", ""), 16)
    assert f"PFN 00000005 at address {at:016X}" in x64.execute("!pfn 5")
    assert x64.execute("dd poi(MmPfnDatabase) + 5 * @@c++(sizeof(nt!_MMPFN)) L1") == \
        x64.execute(f"dd {at:x} L1")


def test_errors(x64):
    assert x64.execute("?? 1+") == " " * 7 + "    ^ Syntax error in '?? 1+'\n"
    assert x64.execute("??") == " " * 9 + "^ Syntax error in '??'\n"
    assert x64.execute("?? (1") == " " * 12 + "^ Syntax error in '?? (1'\n"
    assert x64.execute("?? 1 2") == " " * 12 + "^ Syntax error in '?? 1 2'\n"
    assert x64.execute("?? 09") == " " * 10 + "^ Syntax error in '?? 09'\n"
    assert x64.execute("? @@(1+") == " " * 13 + "^ Syntax error in '? @@(1+'\n"
    assert x64.execute("?? foo") == "Couldn't resolve error at 'foo'\n"
    assert x64.execute("?? @nosuch") == "Bad register error\n"
    assert x64.execute("?? 1/0") == "Operand error\n"
    assert x64.execute("?? @$proc").startswith("kdsim: @$proc is a typed pointer (EPROCESS*)")
    assert x64.execute("? @@(@@masm(@$proc)) == @$proc") == \
        "Evaluate expression: 1 = 00000000`00000001\n"


def test_absurd_nesting_is_a_syntax_error_not_a_crash(x64):
    for line in ("?? " + "(" * 400 + "1" + ")" * 400, "? " + "(" * 400 + "1" + ")" * 400,
                 "? " + "-" * 3000 + "1", "? " + "@@(" * 200 + "1" + ")" * 200):
        out = x64.execute(line)
        assert out.endswith(f"^ Syntax error in '{line}'\n"), out[:80]
    assert x64.execute("?? " + "(" * 20 + "1" + ")" * 20) == "int 0n1\n"
