"""Script files: $<, $><, $$<, $$><, $$>a< -- file names, arguments, echo, one block or
line by line, errors, nesting, relative paths."""
import pytest

import kdsim
from kdsim.kd.session import Debugger
from kdsim.shell.runner import Runner


@pytest.fixture(scope="module")
def m64():
    return kdsim.boot("win7-x64", ram="256m", scenario="none")


@pytest.fixture(scope="module")
def m86():
    return kdsim.boot("win7-x86", ram="256m", scenario="none")


@pytest.fixture
def d(m64, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return Debugger(m64.debugger.target)


@pytest.fixture
def d86(m86, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return Debugger(m86.debugger.target)


def write(tmp_path, name, text):
    (tmp_path / name).write_text(text)


def caret(column, command):
    return " " * (7 + column) + f"^ Syntax error in '{command}'\n"


ARGS = (".echo The first argument is ${$arg1}.\n"
        ".echo The fifth argument is ${$arg5}.\n"
        ".echo The fourth argument is ${$arg4}.\n")


def test_msd_argument_example(d, tmp_path):
    """MSD's example, with the file in the current directory; its trailing "recx" (a
    user-mode register) is replaced by a command kdsim has."""
    write(tmp_path, "my script.txt", ARGS)
    assert d.execute('$$>a< "my script.txt" "First one" Two "Three More" Four; '
                     '.echo after') == \
        "The first argument is First one.\n" \
        "The fifth argument is ${$arg5}.\n" \
        "The fourth argument is Four.\n" \
        "after\n"


def test_msd_first_example_and_argument_forms(d, tmp_path):
    write(tmp_path, "myfile.txt", ".echo The first argument is ${$arg1}.\n"
                                  ".echo The second argument is ${$arg2}.\n")
    assert d.execute("$$>a<myfile.txt myFirstArg mySecondArg") == \
        "The first argument is myFirstArg.\nThe second argument is mySecondArg.\n"
    write(tmp_path, "forms.txt", ".echo $arg0 $arg1 [${/d:$arg1}${/d:$arg2}] "
                                 "[${/f:$arg2}] [${/n:$arg1}]\n")
    assert d.execute("$$>a<forms.txt one") == "forms.txt one [10] [] [$arg1]\n"
    # extra arguments are ignored; none at all is fine
    assert d.execute("$$>a<forms.txt a b c d") == "forms.txt a [11] [b] [$arg1]\n"
    assert d.execute("$$>a<forms.txt") == "forms.txt $arg1 [00] [] [${/n:$arg1}]\n"


BLOCKS = ('.if (1 == 2)\n{\n  .printf "No way!\\n";\n}\n.else\n{\n'
          '  .printf "That\'s what I thought\\n";\n}\n')


def test_line_by_line_echoes_and_goes_on_after_errors(d, tmp_path):
    """$< runs each line as if typed: prompt + line, then its output; braces on lines of
    their own are errors there (the published transcript of this very script)."""
    write(tmp_path, "blocktest.wds", BLOCKS)
    assert d.execute("$<blocktest.wds") == (
        "0: kd> .if (1 == 2)\n" + caret(11, ".if (1 == 2)") +
        "0: kd> {\n" + caret(0, "{") +
        '0: kd>   .printf "No way!\\n";\nNo way!\n' +
        "0: kd> }\n" + caret(0, "}") +
        "0: kd> .else\n" + caret(4, ".else") +
        "0: kd> {\n" + caret(0, "{") +
        "0: kd>   .printf \"That's what I thought\\n\";\nThat's what I thought\n" +
        "0: kd> }\n" + caret(0, "}"))


def test_one_block_forms_join_the_lines(d, tmp_path):
    write(tmp_path, "blocktest.wds", BLOCKS)
    assert d.execute("$><blocktest.wds") == "That's what I thought\n"
    assert d.execute("$$><blocktest.wds; .echo next") == "That's what I thought\nnext\n"
    assert d.execute("$$>< blocktest.wds") == "That's what I thought\n"


def test_file_names_with_semicolons_and_spaces(d, tmp_path):
    write(tmp_path, "a;b.txt", ".echo from a;b.txt\n")
    write(tmp_path, "two words.txt", ".echo spaced\n")
    assert d.execute("$<a;b.txt") == "0: kd> .echo from a;b.txt\nfrom a\n" + \
        caret(13, "b.txt")
    assert d.execute("$><a;b.txt") == "from a\n" + caret(13, "b.txt")
    assert d.execute("$$<a;b.txt") == "Couldn't open file 'a'\n"       # ';' ends the name
    assert d.execute("$$<two words.txt; .echo then") == "0: kd> .echo spaced\nspaced\nthen\n"
    assert d.execute('$$>a<"two words.txt"') == "spaced\n"


def test_paths_are_relative_to_the_current_directory(d, tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "s.txt", ".echo in sub\n")
    assert d.execute("$$><sub/s.txt") == "in sub\n"
    monkeypatch.chdir(tmp_path / "sub")
    assert d.execute("$$><s.txt") == "in sub\n"
    assert d.execute(f"$$><{tmp_path / 'sub' / 's.txt'}") == "in sub\n"


def test_missing_file(d):
    assert d.execute("$$><nofile.txt; .echo not run") == "Couldn't open file 'nofile.txt'\n"
    assert d.execute("$<nofile.txt") == "Couldn't open file 'nofile.txt'\n"
    assert d.execute('$$>a<"no file.txt" 1 2') == "Couldn't open file 'no file.txt'\n"
    assert d.execute("$$><") == caret(3, "$$><")


def test_an_error_ends_a_one_block_script_and_its_line(d, tmp_path):
    write(tmp_path, "bad.txt", ".echo start\nr nope\n.echo not reached\n")
    assert d.execute("$$><bad.txt; .echo not run") == "start\nBad register error\n"
    # ... but not a .catch around it, in the script or around the call
    write(tmp_path, "caught.txt", ".echo start\n.catch\n{\n  r nope\n  .echo no\n}\n"
                                  ".echo after catch\n")
    assert d.execute("$$><caught.txt") == "start\nBad register error\nafter catch\n"
    assert d.execute(".catch { $$><bad.txt }; .echo after") == \
        "start\nBad register error\nafter\n"
    # line by line: the next line runs
    assert d.execute("$$<bad.txt; .echo then") == \
        "0: kd> .echo start\nstart\n0: kd> r nope\nBad register error\n" \
        "0: kd> .echo not reached\nnot reached\nthen\n"


def test_a_script_is_a_program_over_many_lines(d86, tmp_path, m86):
    """MSD "Using Aliases": the alias set inside the .foreach block is seen one iteration
    late unless the .echo sits in a .block of its own."""
    late = ".foreach (value {dd nt L4})\n{\n   as /x ${/v:myAlias} value + 1\n" \
           "   .echo value myAlias\n}\n\nad myAlias\n"
    right = late.replace("   .echo value myAlias", "   .block{.echo value myAlias}")
    write(tmp_path, "Script02.txt", late)
    write(tmp_path, "Script01.txt", right)
    tokens = d86.execute("dd nt L4").split()
    plus = [f"0x{(int(t, 16) | (0xFFFFFFFF00000000 if int(t, 16) >> 31 else 0)) + 1:x}"
            for t in tokens]
    assert d86.execute("$$>< Script02.txt") == "".join(
        f"{t} {p}\n" for t, p in zip(tokens, ["myAlias"] + plus))
    assert d86.execute("$$>< Script01.txt") == "".join(
        f"{t} {p}\n" for t, p in zip(tokens, plus))
    assert d86.execute("al") == "  Alias            Value  \n -------          ------- \n"


def test_pointer_width_in_a_script(d, d86, tmp_path):
    write(tmp_path, "p.txt", '.printf "%p\\n", nt!MmPfnDatabase\n')
    assert d.execute("$$><p.txt") == "fffff800`02c1f3d8\n"
    assert d86.execute("$$><p.txt") == "82b4f38c\n"


def test_recursion_and_the_nesting_limit(d, tmp_path):
    write(tmp_path, "count.txt", "r $t1 = @$t1 + 1\n.if (@$t1 < 0n20) { $$><count.txt }\n")
    assert d.execute('r $t1 = 0; $$><count.txt; .printf "%d\\n", @$t1') == "20\n"
    write(tmp_path, "forever.txt", "r $t1 = @$t1 + 1; $$><forever.txt\n")
    assert d.execute('r $t1 = 0; $$><forever.txt; .echo not run') == \
        "Script files nested too deeply (the limit is 32): 'forever.txt'\n"
    assert d.execute('.printf "%d\\n", @$t1') == "32\n"
    assert (d.scripts, d.nesting, d.loops) == (0, 0, 0)


def test_break_does_not_leave_the_script(d, tmp_path):
    write(tmp_path, "brk.txt", ".break\n")
    assert d.execute(".while (1) { $$><brk.txt }; .echo not run") == caret(0, ".break")


def test_q_in_a_script_ends_everything(d, tmp_path):
    write(tmp_path, "quit.txt", ".echo bye\nq\n.echo not run\n")
    assert d.execute("$$<quit.txt; .echo not run") == "0: kd> .echo bye\nbye\n0: kd> q\n"
    assert d.quit_requested is True
    assert d.execute("$$><quit.txt") == "bye\n"
    assert d.quit_requested is True


def test_transcript_of_a_script(d, tmp_path):
    """What the shell prints for a line that runs a line-by-line script."""
    write(tmp_path, "t.txt", "r $t0 = 2\n.printf \"%d\\n\", @$t0\n")
    out = []
    runner = Runner(d, out.append)
    runner.run("$<t.txt", echo=True)
    assert "".join(out) == "0: kd> $<t.txt\n0: kd> r $t0 = 2\n0: kd> " \
                           ".printf \"%d\\n\", @$t0\n2\n"
