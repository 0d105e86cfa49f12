"""Control-flow tokens: .if/.elsif/.else, .for, .while, .do, .break, .continue, .block,
.catch/.leave, .foreach; their syntax errors; Ctrl-C gets through any loop."""
import pytest

import kdsim
from kdsim.kd.session import Debugger


@pytest.fixture(scope="module")
def m64():
    return kdsim.boot("win7-x64", ram="256m", scenario="none")


@pytest.fixture(scope="module")
def m86():
    return kdsim.boot("win7-x86pae", ram="256m", scenario="none")


@pytest.fixture
def d(m64):
    return Debugger(m64.debugger.target)


@pytest.fixture
def d86(m86):
    return Debugger(m86.debugger.target)


def caret(column, command, prompt="0: kd> "):
    return " " * (len(prompt) + column) + f"^ Syntax error in '{command}'\n"


CHAIN = ('.if (@$t0 == 1) { .echo one } .elsif @$t0 == 2 { .echo two } '
         '.elsif (@$t0 == 3) { .echo three } .else { .echo other }')


@pytest.mark.parametrize("value, said", [(1, "one"), (2, "two"), (3, "three"), (7, "other")])
def test_if_elsif_else_takes_the_first_true_branch(d, d86, value, said):
    for x in (d, d86):
        assert x.execute(f"r $t0 = {value}; {CHAIN}; .echo end") == said + "\nend\n"


def test_if_without_else_and_layouts(d):
    assert d.execute(".if (0) { .echo no }; .echo after") == "after\n"
    assert d.execute(".if(1){.echo tight}") == "tight\n"
    assert d.execute(".IF (1) { .echo case } .ELSE { .echo no }") == "case\n"
    # ';' between the parts: what a script condensed by $$>< looks like
    assert d.execute(".if (0);{;.echo no;};.else;{;.echo yes;}") == "yes\n"
    # a condition is any MASM expression; a nested block
    assert d.execute(".if (nt!MmPfnDatabase > 0) and (2 >= 1) { .if 0 { .echo a } "
                     ".else { .echo nested } }") == "nested\n"


def test_for_loops_like_c(d, d86):
    line = ('.for (r $t0 = 0; @$t0 < 4; r $t0 = @$t0 + 1) { .printf "%d ", @$t0 }; '
            '.printf "\\n"')
    assert d.execute(line) == "0 1 2 3 \n"
    assert d86.execute(line) == "0 1 2 3 \n"
    # several increments, separated by ';' (MSD)
    assert d.execute('r $t1 = 0; .for (r $t0 = 0; @$t0 < 3; r $t0 = @$t0 + 1; '
                     'r $t1 = @$t1 + 10) { }; .printf "%x %x\\n", @$t0, @$t1') == "3 30\n"
    # a false condition: the body never runs
    assert d.execute(".for (r $t0 = 5; @$t0 < 3; r $t0 = @$t0 + 1) { .echo never }") == ""


def test_while_break_and_continue(d):
    line = ('r $t0 = 0; .while (@$t0 < 0n10) { r $t0 = @$t0 + 1; '
            '.if (@$t0 == 2) { .continue }; .if (@$t0 == 5) { .break }; '
            '.printf "%d,", @$t0 }; .printf "end %d\\n", @$t0')
    assert d.execute(line) == "1,3,4,end 5\n"
    assert d.execute(".while (0) { .echo never }") == ""


def test_do_runs_once_then_tests(d):
    assert d.execute('.do { .echo once } (0)') == "once\n"
    assert d.execute('r $t0 = 0; .do { r $t0 = @$t0 + 1 } (@$t0 < 3); .printf "%d\\n", '
                     '@$t0') == "3\n"
    assert d.execute('r $t0 = 0; .do { r $t0 = @$t0 + 1; .if (@$t0 == 2) { .break } } (1);'
                     ' .printf "%d\\n", @$t0') == "2\n"
    assert d.execute('.do;{;.echo condensed;};(0);.echo after') == "condensed\nafter\n"


def test_break_leaves_only_the_innermost_loop(d):
    line = ('.for (r $t0 = 0; @$t0 < 2; r $t0 = @$t0 + 1) { .for (r $t1 = 0; 1; '
            'r $t1 = @$t1 + 1) { .if (@$t1 == 2) { .break }; .printf "%d%d ", @$t0, @$t1 } };'
            ' .printf "\\n"')
    assert d.execute(line) == "00 01 10 11 \n"


def test_block_catch_and_leave(d):
    assert d.execute(".block { .echo in a block }") == "in a block\n"
    assert d.execute(".catch { .echo a; r nope; .echo not run }; .echo after") == \
        "a\nBad register error\nafter\n"
    assert d.execute(".catch { .echo a; .leave; .echo not run }; .echo after") == \
        "a\nafter\n"
    # .leave leaves the .catch from inside a loop
    assert d.execute(".catch { .while (1) { .leave } }; .echo out") == "out\n"
    # .break passes through .catch to its loop
    assert d.execute(".while (1) { .catch { .break } }; .echo out") == "out\n"


def test_an_error_ends_the_loop_and_the_line(d):
    assert d.execute('r $t0 = 0; .while (@$t0 < 5) { r $t0 = @$t0 + 1; .if (@$t0 == 3) '
                     '{ r nope }; .printf "%d\\n", @$t0 }; .echo not run') == \
        "1\n2\nBad register error\n"
    assert d.execute(".echo x") == "x\n"      # the session goes on


def test_foreach_over_a_commands_output(d):
    assert d.execute(".foreach (t {.echo a b  c}) { .echo [ t ] }") == \
        "[ a ]\n[ b ]\n[ c ]\n"
    # next to other text only ${t} is replaced (MSD .foreach)
    assert d.execute(".foreach (t {.echo a b}) { .echo (t) ${t}x }") == \
        "(t) ax\n(t) bx\n"
    # the output of InCommands is not shown
    assert d.execute(".foreach (t {.echo x}) { }") == ""


def test_foreach_skips_with_pS_and_ps(d):
    assert d.execute('.foreach /pS 2 /ps 4 /s (t "1 2 3 4 5 6 7 8 9 a b c d e f 10 11 12 13")'
                     ' { .printf "${t} " }; .printf "\\n"') == "3 8 d 12 \n"
    assert d.execute('.foreach /ps 1 /s (t "a b c d e") { .echo t }') == "a\nc\ne\n"
    # the skip counts are expressions
    assert d.execute('r $t5 = 3; .foreach /pS @$t5 /s (t "a b c d e") { .echo t }') == \
        "d\ne\n"


def test_foreach_file(d, tmp_path, monkeypatch):
    (tmp_path / "lines.txt").write_text("This is\nline 2\n")
    monkeypatch.chdir(tmp_path)
    assert d.execute('.foreach /f (w "lines.txt") { .printf ">${w}<\\n" }') == \
        ">This<\n>is<\n>line<\n>2<\n"
    assert d.execute('.foreach /f (w "none.txt") { }; .echo no') == \
        "Couldn't open file 'none.txt'\n"


def test_foreach_tokens_agree_with_memory(m64, d):
    """The tokens of dd are the dwords the machine holds."""
    base = m64.debugger.target.kernel_base
    raw = m64.core.read_physical(m64.debugger.target.translate(base).pa, 16)
    words = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, 16, 4)]
    out = d.execute(".foreach /pS 1 (v {dd nt L4}) { .printf \"%x \", v }")
    assert out == "".join(f"{w:x} " for w in words)


def test_foreach_variable_does_not_touch_an_alias_of_that_name(d):
    assert d.execute("as t alias") == ""
    assert d.execute('.foreach /s (t "x y") { }') == ""
    assert d.execute("al") == "  Alias            Value  \n -------          ------- \n" \
                              " t                alias \n"
    # the line's aliases are replaced when it is entered, before .foreach runs
    assert d.execute('.foreach /s (t "x") { .echo t }') == "alias\n"


def test_syntax_errors(d, d86):
    assert d.execute(".if (1 == 2)") == caret(11, ".if (1 == 2)")      # transcript layout
    assert d.execute(".else") == caret(4, ".else")
    assert d86.execute(".elsif (1) { }") == caret(5, ".elsif (1) { }")
    assert d.execute("{") == caret(0, "{")
    assert d.execute(".echo a; }") == "a\n" + caret(9, "}")
    assert d.execute(".if (1) { .echo x") == caret(8, ".if (1) { .echo x")
    assert d.execute(".if { .echo x }") == caret(4, ".if { .echo x }")
    # the condition runs to '{' or ';': here the block is missing at the end
    assert d.execute(".if (1) .echo x") == caret(14, ".if (1) .echo x")
    # a command is no condition (MSD): kdsim's evaluator finds no symbol "r"
    assert d.execute(".while (r ebx) { }") == "Couldn't resolve error at 'r ebx) '\n"
    assert d.execute(".break") == caret(0, ".break")
    assert d.execute(".leave") == caret(0, ".leave")
    assert d.execute(".while (1) { .break now }") == caret(20, ".break now")
    assert d.execute(".for (r $t0 = 0) { }") == caret(15, ".for (r $t0 = 0) { }")
    assert d.execute(".foreach (t .echo) { }") == caret(12, ".foreach (t .echo) { }")
    assert d.execute(".foreach /x (t {.echo}) { }") == caret(9, ".foreach /x (t {.echo}) { }")


def test_condition_errors_are_the_evaluators(d):
    assert d.execute(".if (nope) { .echo x }; .echo not run") == \
        "Couldn't resolve error at 'nope) '\n"
    assert d.execute(".while (1 +) { }") == caret(11, ".while (1 +) { }")
    assert d.execute(".if (poi(0)) { }") == "Memory access error at ')) '\n"


def test_ctrl_c_stops_an_endless_loop(d, monkeypatch):
    """KeyboardInterrupt is not caught by loops, .catch or scripts, and the session's
    counters are back to rest afterwards."""
    calls = {"n": 0}
    real = Debugger.evaluator

    def evaluator(self):
        calls["n"] += 1
        if calls["n"] > 500:
            raise KeyboardInterrupt
        return real(self)
    monkeypatch.setattr(d, "evaluator", evaluator.__get__(d))
    with pytest.raises(KeyboardInterrupt):
        d.execute(".catch { .while (1) { .block { } } }")
    assert calls["n"] == 501
    assert (d.loops, d.catches, d.nesting, d.scripts) == (0, 0, 0, 0)
    monkeypatch.undo()
    assert d.execute(".while (1) { .break }; .echo fine") == "fine\n"


def test_deep_nesting_is_an_error_not_a_crash(d):
    ok = ".block {" * 98 + ".echo deep" + "}" * 98
    assert d.execute(ok) == "deep\n"
    deep = ".block {" * 120 + ".echo deep" + "}" * 120
    assert d.execute(deep) == "Command nesting too deep (the limit is 100 blocks and " \
                              "scripts inside one another)\n"
    assert d.nesting == 0
