"""The MASM evaluator, and `?` lines as WinDbg prints them (windbg-formats.md §15, §16)."""
import pytest

from kdsim.kd.expr import Evaluator, ExprError
from kdsim.kd.fmt import evaluate_line, hex64, pointer

MEM = {0x1000: 0x80001234, 0x2000: 0xFFFFF80002A1F000}


def ev(ptr=8, **kw):
    syms = {"nt!mmhighestuseraddress": 0xFFFFF80002C1F368, "mmpfndatabase": 0xFFFFF80002C1F3A0}

    def read(addr, size):
        for base, value in MEM.items():
            if base <= addr < base + 8:
                return (value >> 8 * (addr - base)) & ((1 << 8 * size) - 1)
        return None
    return Evaluator(ptr, lambda n: syms.get(n.lower().replace("nt!", "nt!")) or
                     syms.get(n.lower().split("!")[-1]), read,
                     lambda r: {"$t0": 0x10, "cr3": 0x187000}.get(r), **kw)


@pytest.mark.parametrize("text,ptr,line", [
    ("0x1000", 4, "Evaluate expression: 4096 = 00001000"),
    ("0x1001", 4, "Evaluate expression: 4097 = 00001001"),
    ("0x0 - 0x1000", 4, "Evaluate expression: -4096 = fffff000"),
    ("0x0 - 0x1001", 4, "Evaluate expression: -4097 = ffffefff"),
    ("fffff803`426c8340 + (0271c104 >> 4)", 8, "Evaluate expression: -8782091149488 = fffff803`42939f50"),
])
def test_question_mark_lines_match_windbg(text, ptr, line):
    assert evaluate_line(ev(ptr).evaluate(text), ptr) == line


@pytest.mark.parametrize("text,value", [
    ("10", 0x10), ("0n10", 10), ("0t10", 8), ("0y101", 5), ("4ab3h", 0x4AB3), ("0x", 0),
    ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("1 + 2 == 3", 1), ("1 < 2 and 4", 0),
    ("7 mod 4", 3), ("1 << 4 | 1", 0x11), ("6 xor 3", 5), ("-1 >>> 4", (1 << 64) - 1),
    ("-1 >> 3c", 0xF), ("-1 >> 0n60", 0xF), ("not(0)", 1), ("hi(12345678)", 0x1234), ("low(12345678)", 0x5678),
    ("@$t0 + 1", 0x11), ("$t0", 0x10), ("@cr3", 0x187000),
    ("poi(2000)", 0xFFFFF80002A1F000), ("dwo(2000)", 0x02A1F000), ("by(2000)", 0),
    ("wo(2001)", 0xA1F0), ("nt!MmHighestUserAddress", 0xFFFFF80002C1F368),
    ("MmPfnDatabase + 8", 0xFFFFF80002C1F3A8),
])
def test_values(text, value):
    assert ev().evaluate(text) == value


def test_32_bit_targets_sign_extend_numbers_and_pointers_but_not_backticked_ones():
    e = ev(4)
    assert e.evaluate("80000000") == 0xFFFFFFFF80000000
    assert e.evaluate("00000000`80000000") == 0x80000000
    assert e.evaluate("poi(1000)") == 0xFFFFFFFF80001234
    assert e.evaluate("dwo(1000)") == 0x80001234


def test_the_expression_ends_where_a_command_argument_begins():
    assert ev().parse("80000000 L4") == (0x80000000, 8)
    assert ev().parse("nt!MmPfnDatabase + 10 L?4", 0) == (0xFFFFF80002C1F3B0, 21)


@pytest.mark.parametrize("text,kind,pos,message", [
    ("foo", "resolve", 0, "Couldn't resolve error at 'foo'"),
    ("1 + nosuch + 2", "resolve", 4, "Couldn't resolve error at 'nosuch + 2'"),
    ("poi(0)", "memory", 5, "Memory access error at ')'"),
    ("poi(0) == 0x100", "memory", 5, "Memory access error at ') == 0x100'"),
    ("1 / 0", "operand", 2, "Operand error"),
    ("@nosuch", "register", 0, "Bad register error"),
    ("(1 + 2", "syntax", 6, "Syntax error"),
    ("1 +", "syntax", 2, "Syntax error"),
    ("", "syntax", 0, "Syntax error"),
])
def test_errors_carry_their_kind_position_and_wording(text, kind, pos, message):
    with pytest.raises(ExprError) as e:
        ev().evaluate(text)
    assert (e.value.kind, e.value.pos, e.value.message) == (kind, pos, message)


def test_formatting_helpers():
    assert hex64(0x7FFFFFEFFFF) == "000007ff`fffeffff"
    assert pointer(0xFFFFFFFF80000000, 4) == "80000000"
    assert pointer(0xFFFF080000000000, 8) == "ffff0800`00000000"


def test_string_operators_spat_scmp_sicmp():
    import kdsim
    d = kdsim.boot("win7-x86", ram="256m").debugger
    assert d.execute('? $spat("notepad.exe", "note*")') == "Evaluate expression: 1 = 00000001\n"
    assert d.execute('? $spat("notepad.exe", "NOTE?AD.*")') == \
        "Evaluate expression: 1 = 00000001\n"                  # case-insensitive
    assert d.execute('? $spat("notepad.exe", "calc*")') == "Evaluate expression: 0 = 00000000\n"
    assert d.execute('? $scmp("a", "b")') == "Evaluate expression: -1 = ffffffff\n"
    assert d.execute('? $scmp("b", "a") + $sicmp("ABC", "abc")') == \
        "Evaluate expression: 1 = 00000001\n"
    assert d.execute('? $spat("x" "y")') == " " * 19 + "^ Syntax error in '? $spat(\"x\" \"y\")'\n"
    # the usual script idiom: the image names of !process 0 0 that end in .exe
    out = d.execute('.foreach (w {!process 0 0}) { .if ($spat("w", "*.exe")) { .echo w } }')
    assert out.split() == [line.split()[1] for line in d.execute("!process 0 0").splitlines()
                           if line.strip().startswith("Image:")][1:]


def test_field_offset_comes_from_the_targets_types():
    import kdsim
    for target, offset in (("win7-x64", 0x2E0), ("win7-x86", 0x16C)):
        m = kdsim.boot(target, ram="256m", scenario="none")
        d, ts = m.debugger, m.nt.ts
        assert ts.offset_of("_EPROCESS", "ImageFileName") == offset
        assert d.execute("? #FIELD_OFFSET(nt!_EPROCESS, ImageFileName) == "
                         f"0x{offset:x}").split("=")[0] == "Evaluate expression: 1 "
        assert d.execute("? #FIELD_OFFSET(_MMPFN, u3.e1)").split()[2] == \
            str(ts.offset_of("_MMPFN", "u3.e1"))
        assert d.execute("da @$proc + #FIELD_OFFSET(_EPROCESS, ImageFileName)").endswith(
            '"System"\n')
        assert d.execute("? #FIELD_OFFSET(_FOO, Bar)") == "Couldn't resolve error at '_FOO'\n"
