"""ea, eu, eza, ezu (strings), e (the last e* format) and the physical !eb/!ed: writes
print nothing, land in guest RAM where the page tables say, and fail as WinDbg words it."""
import pytest

import kdsim

SCRATCH = 0x1000            # nt+1000: a zero page of the nt image (physical 2a20000)


@pytest.fixture()
def x64():
    return kdsim.boot("win7-x64", ram="256m", scenario="none")


@pytest.fixture()
def x86():
    return kdsim.boot("win7-x86", ram="256m", scenario="none")


def _ram(m, offset, n):
    """Guest RAM behind nt+offset, read through the MMU and physical memory (the oracle)."""
    va = m.nt.profile.address_space.kernel_base + offset
    return m.core.read_physical(m.core.translate(va).pa, n)


def test_ea_writes_the_characters_without_a_null(x64):
    d = x64.debugger
    assert d.execute("eb nt+1000 7a 7a 7a 7a 7a") == ""
    assert d.execute('ea nt+1000 "abc"') == ""
    assert _ram(x64, SCRATCH, 5) == b"abczz"
    assert d.execute("db nt+1000 L5") == \
        "fffff800`02a20000  61 62 63 7a 7a                                   abczz\n"


def test_eza_adds_the_terminating_null(x86):
    d = x86.debugger
    d.execute("eb nt+1000 7a 7a 7a 7a 7a")
    assert d.execute('eza nt+1000 "abc"') == ""
    assert _ram(x86, SCRATCH, 5) == b"abc\0z"
    assert d.execute("da nt+1000") == '82a20000  "abc"\n'


def test_eu_and_ezu_write_utf16(x86):
    d = x86.debugger
    d.execute("eb nt+1000 7a 7a 7a 7a 7a 7a 7a 7a")
    assert d.execute('eu nt+1000 "hi"') == ""
    assert _ram(x86, SCRATCH, 6) == b"h\0i\0zz"
    assert d.execute('ezu nt+1000 "hi"') == ""
    assert _ram(x86, SCRATCH, 8) == b"h\0i\0\0\0zz"
    assert d.execute("du nt+1000") == '82a20000  "hi"\n'


def test_strings_keep_semicolons_spaces_and_backslashes(x64):
    d = x64.debugger
    assert d.execute(r'eza nt+1000 "a;b \n"; da nt+1000') == \
        'fffff800`02a20000  "a;b \\n"\n'
    assert _ram(x64, SCRATCH, 7) == b"a;b \\n\0"


def test_empty_strings(x64):
    d = x64.debugger
    d.execute("eb nt+1000 7a 7a")
    assert d.execute('ea nt+1000 ""') == ""
    assert _ram(x64, SCRATCH, 2) == b"zz"
    assert d.execute('ezu nt+1000 ""') == ""
    assert _ram(x64, SCRATCH, 2) == b"\0\0"


def test_e_repeats_the_last_enter_format_and_is_eb_at_first(x86):
    d = x86.debugger
    assert d.execute("e nt+1000 11 22") == ""
    assert _ram(x86, SCRATCH, 3) == b"\x11\x22\0"
    d.execute("ed nt+1000 0")
    assert d.execute("e nt+1000 44332211 88776655") == ""
    assert d.execute("dd nt+1000 L2") == "82a20000  44332211 88776655\n"
    d.execute('eza nt+1010 "x"')
    assert d.execute('e nt+1010 "yz"') == ""
    assert _ram(x86, SCRATCH + 0x10, 3) == b"yz\0"
    # After a string command the value must be a string.
    assert d.execute("e nt+1010 1") == " " * 17 + "^ Syntax error in 'e nt+1010 1'\n"


def test_string_syntax_errors(x64):
    d = x64.debugger
    assert d.execute("ea nt+1000 abc") == " " * 18 + "^ Syntax error in 'ea nt+1000 abc'\n"
    assert d.execute('ea nt+1000 "abc') == " " * 22 + "^ Syntax error in 'ea nt+1000 \"abc'\n"
    assert d.execute('eza nt+1000 "abc" x') == \
        " " * 25 + "^ Syntax error in 'eza nt+1000 \"abc\" x'\n"
    assert d.execute("ezu nt+1000") == " " * 18 + "^ Syntax error in 'ezu nt+1000'\n"
    assert d.execute('eu nosuch "a"') == "Couldn't resolve error at 'nosuch \"a\"'\n"
    assert _ram(x64, SCRATCH, 4) == b"\0\0\0\0"


def test_writes_to_unmapped_memory_fail(x64, x86):
    assert x64.debugger.execute('eza 10000 "x"') == "Memory access error at '10000'\n"
    assert x86.debugger.execute('eu 10000 "x"') == "Memory access error at '10000'\n"


def test_physical_eb_and_ed_write_ram_that_dd_then_reads(x64, x86):
    for m, addr in ((x64, "fffff800`02a20000"), (x86, "82a20000")):
        d = m.debugger
        assert d.execute("!eb 2a20000 41, 42,43 44") == ""
        assert m.core.read_physical(0x2A20000, 4) == b"ABCD"
        assert d.execute("!ed [c] 2a20004 11223344 55667788") == ""
        assert m.core.read_physical(0x2A20004, 8) == bytes.fromhex("4433221188776655")
        assert d.execute("dd nt+1000 L3") == f"{addr}  44434241 11223344 55667788\n"


def test_physical_enter_errors(x86):
    d = x86.debugger
    # 256 MB of RAM: nothing at 80000000 (a physical address is not sign-extended).
    assert d.execute("!eb 80000000 1") == "Physical memory write at 80000000 failed\n"
    assert d.execute("!ed 9effe 1") == "Physical memory write at 9f000 failed\n"
    assert d.execute("!ed 2a20000") == " " * 18 + "^ Syntax error in '!ed 2a20000'\n"
    assert d.execute("!eb nosuch 1") == "Couldn't resolve error at 'nosuch 1'\n"
