""".printf: C conversions on MASM expressions, %p in the target's pointer format, strings
read from the target (%ma %mu %msa %msu), %y symbols, escapes and errors."""
import pytest

import kdsim
from kdsim.kd.session import Debugger


@pytest.fixture(scope="module")
def m64():
    return kdsim.boot("win7-x64", ram="256m", scenario="default")


@pytest.fixture(scope="module")
def m86():
    return kdsim.boot("win7-x86", ram="256m", scenario="default")


@pytest.fixture
def d64(m64):
    return Debugger(m64.debugger.target)


@pytest.fixture
def d86(m86):
    return Debugger(m86.debugger.target)


NUMBERS = ('.printf "%x|%X|%d|%u|%I64x|%llx|%08x|%-6d|%5u|%o|%c|%%|%#x|%.4x\\n", -1, '
           '0xabc, -2, -2, -1, 0x123456789, 0x1f, 7, 0n42, 8, 0x41, 0n255, 0n255')


@pytest.mark.parametrize("machine", ["d64", "d86"])
def test_integer_conversions_take_32_bits_unless_i64(machine, request):
    d = request.getfixturevalue(machine)
    assert d.execute(NUMBERS) == \
        "ffffffff|ABC|-2|4294967294|ffffffffffffffff|123456789|0000001f|7     |   42|10|A|%" \
        "|0xff|00ff\n"


def test_p_is_the_debugger_pointer_format(d64, d86):
    assert d64.execute('.printf "%p %p\\n", nt, 80000000') == \
        "fffff800`02a1f000 00000000`80000000\n"
    assert d86.execute('.printf "%p %p\\n", nt, 80000000') == "82a1f000 80000000\n"
    # the same digits ? prints after the '='
    for d in (d64, d86):
        q = d.execute("? nt!MmPfnDatabase").split(" = ")[1].strip()
        assert d.execute('.printf "%p\\n", nt!MmPfnDatabase') == q + "\n"


def test_y_names_the_symbol_as_ln_does(d64, d86):
    assert d64.execute('.printf "%y|%y\\n", nt!MmPfnDatabase, nt!MmPfnDatabase+2') == \
        "nt!MmPfnDatabase|nt!MmPfnDatabase+0x2\n"
    assert d86.execute('.printf "%y\\n", nt!MmPfnDatabase+2') == "nt!MmPfnDatabase+0x2\n"
    assert d64.execute('.printf "%ly\\n", nt!MmPfnDatabase') == "nt!MmPfnDatabase\n"
    for d in (d64, d86):
        ln = d.execute("ln nt!MmHighestUserAddress+5").split()[1]
        assert d.execute('.printf "%y\\n", nt!MmHighestUserAddress+5') == ln + "\n"
    # outside every module: the address
    assert d64.execute('.printf "%y\\n", 1234') == "00000000`00001234\n"
    assert d86.execute('.printf "%y\\n", 1234') == "00001234\n"


@pytest.mark.parametrize("machine", ["d64", "d86"])
def test_strings_are_read_from_the_target(machine, request):
    d = request.getfixturevalue(machine)
    assert d.execute('eza nt+1800 "hello"; ezu nt+1900 "wide"') == ""
    assert d.execute('.printf "[%ma] [%7ma] [%-7ma] [%.3ma] [%mu] [%s]\\n", nt+1800, '
                     'nt+1800, nt+1800, nt+1800, nt+1900, nt+1800') == \
        "[hello] [  hello] [hello  ] [hel] [wide] [hello]\n"
    # a quoted argument of %s is printed as it is (kdsim's reading of %s)
    assert d.execute('.printf "%s-%5s\\n", "quoted", "ab"') == "quoted-   ab\n"
    # unreadable memory: nothing
    assert d.execute('.printf "[%ma][%mu]\\n", 0, 0') == "[][]\n"


def test_msu_reads_a_unicode_string_structure(d64, d86):
    # A UNICODE_STRING built by hand: Length 8, MaximumLength 10, Buffer -> "wide".
    assert d64.execute('ezu nt+1900 "wide"; ew nt+1a00 8 a; eq nt+1a08 nt+1900') == ""
    assert d64.execute('.printf "<%msu>\\n", nt+1a00') == "<wide>\n"
    assert d64.execute('eza nt+1800 "ansi"; ew nt+1a40 3 4; eq nt+1a48 nt+1800') == ""
    assert d64.execute('.printf "<%msa>\\n", nt+1a40') == "<ans>\n"
    assert d86.execute('ezu nt+1900 "wide"; ew nt+1a00 6 a; ed nt+1a04 nt+1900') == ""
    assert d86.execute('.printf "<%msu>\\n", nt+1a00') == "<wid>\n"


def test_ma_agrees_with_the_process_list(m64, d64):
    """%ma on EPROCESS.ImageFileName gives the names the memory manager wrote."""
    offset = m64.debugger.target.types.field("_EPROCESS", "ImageFileName").offset
    ts = m64.debugger.target.types
    for ep in m64.nt.processes:
        raw = m64.core.read_physical(
            m64.debugger.target.translate(ep + offset).pa, 15).split(b"\0")[0].decode()
        assert d64.execute(f'.printf "%ma\\n", {ep:x}+{offset:x}') == raw + "\n"
    assert ts.sizeof("_EPROCESS") > offset


def test_escapes_and_raw_strings(d64):
    assert d64.execute(r'.printf "a\tb \\ \"q\" C:\Temp\file.txt\n"') == \
        'a\tb \\ "q" C:Tempfile.txt\n'
    assert d64.execute(r'.printf @"c:\dir\n"; .printf "\n"') == "c:\\dir\\n\n"
    assert d64.execute('.printf "no newline"') == "no newline"
    assert d64.execute('.printf "a;b\\n"; .printf "c\\n"') == "a;b\nc\n"
    assert d64.execute('.printf /D /oe "options change nothing\\n"') == \
        "options change nothing\n"
    assert d64.execute('.printf "%q %%\\n"') == "%q %\n"


def test_floats(d64):
    assert d64.execute('.printf "%f %lf %.2e\\n", 3f800000, 3ff8000000000000, 0') == \
        "1.000000 1.500000 0.00e+00\n"


def test_errors(d64, d86):
    # what was formatted before a failing argument is printed first (a transcript shows
    # "v=Couldn't resolve error at ..." for .printf "v=%d", with a bad argument)
    assert d64.execute('.printf "%d %d\\n", 1') == \
        "1 " + " " * 26 + "^ Syntax error in '.printf \"%d %d\\n\", 1'\n"
    assert d64.execute('.printf "a=%d b=%d\\n", 1, nope, 3') == \
        "a=1 b=Couldn't resolve error at 'nope, 3'\n"
    assert d64.execute('.printf "a=%d\\n", 1, nope') == \
        "a=1\nCouldn't resolve error at 'nope'\n"
    assert d64.execute('.printf "%x\\n", foo') == "Couldn't resolve error at 'foo'\n"
    assert d64.execute(".printf nope") == " " * 15 + "^ Syntax error in '.printf nope'\n"
    assert d64.execute('.printf /Z "x"') == " " * 15 + "^ Syntax error in '.printf /Z \"x\"'\n"
    assert d86.execute('.printf "%x" 1') == " " * 20 + "^ Syntax error in '.printf \"%x\" 1'\n"
    assert d64.execute('.printf "%x\\n", poi(0)') == "Memory access error at ')'\n"
    # an error ends the rest of the line
    assert d64.execute('.printf "%x\\n", foo; .echo not run') == \
        "Couldn't resolve error at 'foo'\n"


def test_h_takes_16_bits(d64, d86):
    for d in (d64, d86):
        assert d.execute('.printf "%hx %hd %hu\\n", 12345678, ffff, ffff') == "5678 -1 65535\n"
