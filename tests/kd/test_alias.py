"""Aliases: as/aS/ad/al, ${ } and its switches, where plain names are replaced, when
(lines and blocks as they are entered), and the MSD examples reproduced."""
import pytest

import kdsim
from kdsim.kd.session import Debugger

HEAD = "  Alias            Value  \n -------          ------- \n"


@pytest.fixture(scope="module")
def m64():
    return kdsim.boot("win7-x64", ram="256m", scenario="none")


@pytest.fixture(scope="module")
def m86():
    return kdsim.boot("win7-x86", ram="256m", scenario="none")


@pytest.fixture
def d(m64):
    return Debugger(m64.debugger.target)


@pytest.fixture
def d86(m86):
    return Debugger(m86.debugger.target)


def caret(column, command):
    return " " * (7 + column) + f"^ Syntax error in '{command}'\n"


def test_as_takes_the_rest_of_the_line_and_aS_a_phrase(d):
    assert d.execute("as Two .echo one; .echo two") == ""
    assert d.execute("Two") == "one\ntwo\n"              # an alias as a macro (MSD)
    assert d.execute("aS Phrase .echo p; .echo after") == "after\n"
    assert d.execute('aS Quoted "a;b c"') == ""
    assert d.execute("al") == HEAD + " Phrase           .echo p \n" \
                                     " Quoted           a;b c \n" \
                                     " Two              .echo one; .echo two \n"


def test_al_lists_sorted_and_ad_deletes(d):
    assert d.execute("al") == HEAD
    assert d.execute("aS b 2; aS A 1; aS #c 3") == ""
    assert d.execute("al") == HEAD + " #c               3 \n A                1 \n b                2 \n"
    assert d.execute("ad A") == ""
    assert d.execute("al") == HEAD + " #c               3 \n b                2 \n"
    assert d.execute("ad nope") == "No alias named 'nope'\n"
    assert d.execute("ad /q nope") == ""
    assert d.execute("ad *") == ""
    assert d.execute("al") == HEAD
    assert d.execute("ad") == caret(2, "ad")
    assert d.execute("ad a b") == caret(5, "ad a b")


def test_aliases_are_replaced_when_a_block_is_entered(d):
    # MSD "as, aS": the line was read before aS ran; a new block sees the alias
    assert d.execute("aS /x myAlias 5 + 1; .echo myAlias") == "myAlias\n"
    assert d.execute("ad myAlias") == ""
    assert d.execute("aS /x myAlias 5 + 1; .block{.echo myAlias}") == "0x6\n"
    # and a later line sees it too
    assert d.execute(".echo myAlias") == "0x6\n"


def test_where_a_plain_name_is_replaced(d):
    assert d.execute("aS foo bar") == ""
    assert d.execute('.echo foo xfoo foox "foo";.echo foo') == 'bar xfoo foox "bar"\nbar\n'
    # ${ } anywhere; undefined names stay as they are
    assert d.execute(".echo x${foo}y ${nope} $nope") == "xbary ${nope} $nope\n"


def test_alias_interpreter_switches(d):
    """The ${/d: /f: /n: /v:} forms, as MSD and a published transcript show them."""
    assert d.execute('aS AliasName "Alias value"') == ""
    lines = ['.printf "The value is >${AliasName}<\\n"', '.printf ">${UnkAliasName}<\\n"',
             '.printf ">${/d:AliasName}<\\n"', '.printf ">${/d:UnkAliasName}<\\n"',
             '.printf ">${/f:AliasName}<\\n"', '.printf ">${/f:UnkAliasName}<\\n"',
             '.printf ">${/n:AliasName}<\\n"', '.printf ">${/n:UnkAliasName}<\\n"',
             '.printf ">${/v:AliasName}<\\n"']
    assert [d.execute(line) for line in lines] == [
        "The value is >Alias value<\n", ">${UnkAliasName}<\n", ">1<\n", ">0<\n",
        ">Alias value<\n", "><\n", ">AliasName<\n", ">${/n:UnkAliasName}<\n",
        ">${/v:AliasName}<\n"]


def test_a_line_that_starts_with_an_alias_command_is_not_replaced(d):
    assert d.execute("aS a 1") == ""
    assert d.execute("aS b a") == ""                       # "b" is "a", literally
    assert d.execute(";aS c a") == ""                      # after ';' it is replaced
    assert d.execute("al") == HEAD + " a                1 \n b                a \n" \
                                     " c                1 \n"


def test_msd_foreach_token_example(d86):
    """MSD "Using a .foreach Token in an Alias", both halves."""
    assert d86.execute("r $t0 = 5") == ""
    assert d86.execute("ad /q myAlias") == ""
    assert d86.execute(".foreach /pS 2 /ps 2 (Token {?@$t0}) {as myAlias Token}") == ""
    assert d86.execute("al") == HEAD + " myAlias          Token \n"
    assert d86.execute("ad myAlias") == ""
    assert d86.execute(".foreach /pS 2 /ps 2 (Token {?@$t0}) {;as myAlias Token}") == ""
    assert d86.execute("al") == HEAD + " myAlias          5 \n"


def test_v_switch_names_the_alias_for_aS(d):
    """A published transcript: without ${/v:} the name itself is replaced."""
    assert d.execute("aS MyVar 0n123;.block { aS /x MyVar ${MyVar}+1 }") == ""
    assert d.execute("al") == HEAD + " 0n123            0x7c \n MyVar            0n123 \n"
    assert d.execute("ad *") == ""
    assert d.execute("aS MyVar 123;.block { aS /x ${/v:MyVar} ${MyVar}+1 };al") == \
        HEAD + " MyVar            0x124 \n"


def test_an_alias_can_be_the_command(d):
    assert d.execute("aS my_printf .printf") == ""
    assert d.execute('my_printf "Hello world\\n"') == "Hello world\n"
    assert d.execute('${my_printf} "Hello\\n"') == "Hello\n"


def test_switches_x_c_ma_mu_f(d, d86, tmp_path):
    assert d.execute("r $t0 = 123; as /x v @$t0; as w @$t0") == ""
    # /x ends at ';' (MSD); plain "as" takes the rest of the line
    assert d.execute("al") == HEAD + " v                0x123 \n w                @$t0 \n"
    assert d86.execute("as /x neg 80000000") == ""       # 32-bit numbers sign-extend
    assert d86.execute(".echo neg") == "0xffffffff80000000\n"
    assert d.execute("as /c out .echo hi; .echo there") == ""
    assert d.execute('.printf "${out}"') == "hi\nthere\n"
    assert d.execute('eza nt+1800 "text"; ezu nt+1900 "wide"; aS /ma sa nt+1800; '
                     'aS /mu su nt+1900; .block { .echo sa su }') == "text wide\n"
    (tmp_path / "v.txt").write_text("from a file")
    assert d.execute(f"aS /f fa {tmp_path / 'v.txt'}; .block {{ .echo fa }}") == \
        "from a file\n"
    assert d.execute(f"aS /f fb {tmp_path / 'none.txt'}") == "Out of memory\n"


def test_automatic_aliases(d, d86):
    assert d.execute("? ${$ntsym}!MmPfnDatabase") == d.execute("? nt!MmPfnDatabase")
    assert d86.execute(".echo $ntnsym") == "nt\n"
    assert d.execute("al") == HEAD                           # al lists user-named ones


def test_alias_errors(d):
    assert d.execute("aS /z y 1") == caret(3, "aS /z y 1")
    assert d.execute("aS") == caret(1, "aS")
    assert d.execute("aS /x n foo") == "Couldn't resolve error at 'foo'\n"
    assert d.execute("aS /x n 1 +; .echo not run") == caret(10, "aS /x n 1 +")
    # ${MyVar} is not yet replaced on the line that sets it (a published transcript shows
    # "v=" then the evaluator's error)
    assert d.execute('aS MyVar 0n123;.printf "v=%d", ${MyVar}') == "v=Bad register error\n"
    assert d.execute('aS MyVar 0n123;.block { .printf "v=%d\\n", ${MyVar}; }') == "v=123\n"


def test_replacement_does_not_recurse(d):
    assert d.execute("aS a b; aS b a") == ""
    assert d.execute(".echo a b") == "b a\n"
    assert d.execute("as loop loop loop") == ""
    assert d.execute(".echo loop") == "loop loop\n"
