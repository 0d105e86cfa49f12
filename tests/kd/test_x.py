"""x: the symbols that match a pattern, at the addresses nt's variables occupy."""
import pytest

from kdsim.kd.commands.symbols import wildcard


def test_x_one_symbol_on_x64(x64):
    assert x64.debugger.execute("x nt!MmHighestUserAddress") == \
        "fffff800`02c1f368 nt!MmHighestUserAddress = <no type information>\n"


def test_x_one_symbol_on_x86_pads_the_address_to_17_columns(x86):
    assert x86.debugger.execute("x nt!MmHighestUserAddress") == \
        "82b4f354          nt!MmHighestUserAddress = <no type information>\n"


def test_x_wildcard_lists_by_address_on_x64(x64):
    assert x64.debugger.execute("x nt!MmSystem*") == (
        "fffff800`02c1f378 nt!MmSystemRangeStart = <no type information>\n"
        "fffff800`02c1f3a8 nt!MmSystemCacheStart = <no type information>\n"
        "fffff800`02c1f3b0 nt!MmSystemCacheEnd = <no type information>\n"
        "fffff800`02c1f3b8 nt!MmSystemPtesStart = <no type information>\n"
        "fffff800`02c1f3c0 nt!MmSystemPtesEnd = <no type information>\n"
        "fffff800`02c1f5b0 nt!MmSystemPteBase = <no type information>\n")


def test_x_wildcard_on_x86(x86):
    assert x86.debugger.execute("x nt!MmSystem*") == (
        "82b4f35c          nt!MmSystemRangeStart = <no type information>\n"
        "82b4f374          nt!MmSystemCacheStart = <no type information>\n"
        "82b4f378          nt!MmSystemCacheEnd = <no type information>\n"
        "82b4f37c          nt!MmSystemPtesStart = <no type information>\n"
        "82b4f380          nt!MmSystemPtesEnd = <no type information>\n"
        "82b4f47c          nt!MmSystemPteBase = <no type information>\n")


def test_x_is_case_insensitive_and_question_mark_is_one_character(x64):
    d = x64.debugger
    want = "fffff800`02c1f3d8 nt!MmPfnDatabase = <no type information>\n"
    assert d.execute("x NT!mmpfndatabase") == want
    assert d.execute("x nt!MmPfnDataba?e") == want
    assert d.execute("x nt!MmPfnDataba??e") == ""


def test_x_star_module_searches_every_module(x64):
    assert x64.debugger.execute("x *!MmPfn*") == \
        "fffff800`02c1f3d8 nt!MmPfnDatabase = <no type information>\n"
    assert x64.debugger.execute("x h*!*") == ""        # hal: no symbols in kdsim


def test_x_without_a_module_searches_the_local_scope_which_kdsim_lacks(x64):
    assert x64.debugger.execute("x Mm*") == ""
    assert x64.debugger.execute("x *") == ""
    assert x64.debugger.execute("x") == ""


def test_x_no_match_prints_nothing(x64, x86):
    assert x64.debugger.execute("x nt!mm*demand*zero*") == ""
    assert x86.debugger.execute("x nt!Nope") == ""


def test_x_unknown_module_cannot_be_resolved(x64):
    assert x64.debugger.execute("x foo!Mm*") == "Couldn't resolve error at 'foo!Mm*'\n"
    assert x64.debugger.execute("x  zz*!Mm*") == "Couldn't resolve error at 'zz*!Mm*'\n"


def test_x_display_options(x64, x86):
    assert x64.debugger.execute("x /0 nt!MmPfnDatabase") == "fffff800`02c1f3d8\n"
    assert x64.debugger.execute("x /1 nt!MmPfnDatabase") == "nt!MmPfnDatabase\n"
    assert x64.debugger.execute("x /2 nt!MmPfnDatabase") == \
        "fffff800`02c1f3d8 nt!MmPfnDatabase\n"
    assert x86.debugger.execute("x /2 nt!MmPfnDatabase") == \
        "82b4f38c          nt!MmPfnDatabase\n"
    assert x86.debugger.execute("x /0 nt!MmPfnDatabase") == "82b4f38c\n"
    # options that change nothing kdsim can show are accepted
    assert x64.debugger.execute("x /t /p /D nt!MmPfnDatabase") == \
        x64.debugger.execute("x nt!MmPfnDatabase")


def test_x_sort_options(x64):
    d = x64.debugger
    names = (lambda out: [line.split()[1] for line in out.splitlines()])
    by_address = names(d.execute("x nt!MmSystem*"))
    assert names(d.execute("x /a nt!MmSystem*")) == by_address
    assert names(d.execute("x /A nt!MmSystem*")) == by_address[::-1]
    assert names(d.execute("x /n nt!MmSystem*")) == [
        "nt!MmSystemCacheEnd", "nt!MmSystemCacheStart", "nt!MmSystemPteBase",
        "nt!MmSystemPtesEnd",
        "nt!MmSystemPtesStart", "nt!MmSystemRangeStart"]
    assert names(d.execute("x /N nt!MmSystem*")) == names(d.execute("x /n nt!MmSystem*"))[::-1]
    assert names(d.execute("x /z nt!MmSystem*")) == by_address     # sizes unknown


def test_x_option_errors(x64):
    d = x64.debugger
    assert d.execute("x /k nt!*") == "          ^ Syntax error in 'x /k nt!*'\n"
    assert d.execute("x /v nt!MmPfnDatabase") == (
        "kdsim: x /v is not supported (kdsim's symbol files hold no symbol sizes or "
        "types)\n")


def test_every_address_x_prints_is_what_the_expression_and_the_memory_manager_say(x64, x86):
    for booted in (x64, x86):
        d = booted.debugger
        lines = d.execute("x nt!*").splitlines()
        # the memory manager's own layout: its variables and its routines
        placed = {**booted.nt.symbols, **booted.nt.functions}
        assert sorted(line.split()[1][3:] for line in lines) == sorted(placed)
        for line in lines:
            addr, name = line.split()[:2]
            value = int(addr.replace("`", ""), 16)
            assert value == placed[name[3:]]
            assert d.execute(f"? {name}").endswith(f"= {addr}\n")
        addrs = [int(line.split()[0].replace("`", ""), 16) for line in lines]
        assert addrs == sorted(addrs)


def test_x_reads_the_module_base_from_the_loader_list_in_memory():
    import kdsim
    m = kdsim.boot("win7-x86", ram="256m", scenario="none")
    d = m.debugger
    entry = int(d.execute("dd nt!PsLoadedModuleList L1").split()[1], 16)
    d.execute(f"ed {entry + 0x18:x} 82a2f000")          # DllBase of nt's loader entry
    assert d.execute("x nt!MmPfnDatabase") == \
        "82b5f38c          nt!MmPfnDatabase = <no type information>\n"


@pytest.mark.parametrize("pattern, name, hit", [
    ("Mm*", "MmPfnDatabase", True), ("mm*", "MmPfnDatabase", True),
    ("Mm?fn*", "MmPfnDatabase", True), ("Mm?fn", "MmPfnDatabase", False),
    ("Mm[OP]fn*", "MmPfnDatabase", True), ("Mm[a-f]fn*", "MmPfnDatabase", False),
    ("Mm[n-q]fn*", "MmPfnDatabase", True), ("Lo#p", "Lp", True), ("Lo#p", "Looop", True),
    ("Lo+p", "Lp", False), ("Lo+p", "Loop", True), ("m[ia]#n", "miain", True),
    ("a\\*b", "a*b", True), ("a\\*b", "axb", False), ("*Pool*", "MmPagedPoolEnd", True),
])
def test_wildcard_syntax(pattern, name, hit):
    assert bool(wildcard(pattern).fullmatch(name)) is hit


def test_a_leading_underscore_stands_for_any_number_of_underscores():
    assert wildcard("_Foo", symbol=True).fullmatch("Foo")
    assert wildcard("_Foo", symbol=True).fullmatch("__Foo")
    assert not wildcard("_Foo").fullmatch("Foo")        # module and file patterns: literal
