"""`?`, `.echo`, comments and the command line's error wording, through machine.debugger."""
import pytest

import kdsim


@pytest.fixture(scope="module")
def x86():
    return kdsim.boot("win7-x86", ram="256m", scenario="none").debugger


@pytest.fixture(scope="module")
def x64():
    return kdsim.boot("win7-x64", ram="256m", scenario="none").debugger


def test_evaluate_on_x86(x86):
    assert x86.execute("?0x1000") == "Evaluate expression: 4096 = 00001000\n"
    assert x86.execute("?0x0 - 0x1001") == "Evaluate expression: -4097 = ffffefff\n"
    assert x86.execute("? poi(MmHighestUserAddress)") == \
        "Evaluate expression: 2147418111 = 7ffeffff\n"
    assert x86.execute("? poi(nt!MmSystemRangeStart)") == \
        "Evaluate expression: -2147483648 = 80000000\n"


def test_evaluate_on_x64(x64):
    assert x64.execute("? fffff803`426c8340 + (0271c104 >> 4)") == \
        "Evaluate expression: -8782091149488 = fffff803`42939f50\n"
    assert x64.execute("? poi(MmHighestUserAddress)") == \
        "Evaluate expression: 8796092956671 = 000007ff`fffeffff\n"
    assert x64.execute("? poi(MmSystemRangeStart)") == \
        "Evaluate expression: -272678883688448 = ffff0800`00000000\n"
    assert x64.execute("? @$ptrsize") == "Evaluate expression: 8 = 00000000`00000008\n"


def test_errors_are_worded_as_windbg_words_them(x64):
    assert x64.execute("? foo") == "Couldn't resolve error at 'foo'\n"
    assert x64.execute("? poi(0)") == "Memory access error at ')'\n"
    # The caret sits under the error, counting the prompt "0: kd> " (7 columns).
    assert x64.execute("? (1+2") == " " * 13 + "^ Syntax error in '? (1+2'\n"
    assert x64.execute("zzz") == " " * 7 + "^ Syntax error in 'zzz'\n"


def test_echo_and_comments(x64):
    assert x64.execute('.echo hello; $$ not shown; .echo "two words"') == "hello\ntwo words\n"
    assert x64.execute("* all of this; .echo is a comment") == ""
    assert x64.execute(".echo a;;.echo b") == "a\nb\n"


def test_peb_pseudo_register_follows_the_implicit_process():
    import kdsim
    m = kdsim.boot("win7-x86", ram="256m")
    d = m.debugger
    proc = m.nt.process_objects[max(m.nt.process_objects)]
    ep, peb = proc.ep, proc.peb
    assert ep == m.nt.processes[-1]
    assert d.execute("? @$peb") == "Evaluate expression: 0 = 00000000\n"   # System: none
    d.execute(f".process /p {ep:x}")
    assert d.execute("? @$peb") == f"Evaluate expression: {peb} = {peb:08x}\n"
    assert d.execute("? $peb") == d.execute("? @$peb")
    image_base = int(d.execute("dd @$peb+8 L1").split()[1], 16)   # PEB.ImageBaseAddress
    assert image_base == proc.get_field("SectionBaseAddress") != 0
