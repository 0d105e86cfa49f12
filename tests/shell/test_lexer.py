"""The pygments lexers for kd command lines and kd transcripts (kdsim/shell/lexer.py), the
style the prompt uses, and the pygments entry point that makes `pygmentize -l kd` work."""
import importlib
import importlib.metadata
import os
import subprocess
import sys
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pygments.token import (Comment, Error, Generic, Keyword, Name, Number, Operator,
                            Punctuation, String, Text)

import kdsim
from kdsim.shell.lexer import KdCommandLexer, KdLexer, KdStyle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tokens(text, lexer=KdCommandLexer):
    """The (token type, text) pairs of ``text``, whitespace left out."""
    return [(t, v) for _, t, v in lexer().get_tokens_unprocessed(text) if v.strip()]


def round_trip(text, lexer):
    return "".join(v for _, v in lexer(stripnl=False).get_tokens(text))


# -- command lines --------------------------------------------------------------------------

NT = [(Name.Namespace, "nt"), (Punctuation, "!")]


@pytest.mark.parametrize("line, expected", [
    ("dd nt!MmSystemRangeStart L4",
     [(Keyword, "dd"), *NT, (Name, "MmSystemRangeStart"), (Keyword.Type, "L"),
      (Number.Hex, "4")]),
    ("db fffff800`02c1f378 L?0x10",
     [(Keyword, "db"), (Number.Hex, "fffff800`02c1f378"), (Keyword.Type, "L?"),
      (Number.Hex, "0x10")]),
    ("? poi(@$proc+0x10) and 0n10 mod 0y101 xor 0t17",
     [(Keyword, "?"), (Name.Builtin, "poi"), (Punctuation, "("),
      (Name.Variable.Magic, "@$proc"), (Operator, "+"), (Number.Hex, "0x10"),
      (Punctuation, ")"), (Operator.Word, "and"), (Number.Integer, "0n10"),
      (Operator.Word, "mod"), (Number.Bin, "0y101"), (Operator.Word, "xor"),
      (Number.Oct, "0t17")]),
    # A word of hex digits is a number; '!' or a module forces a symbol.
    ("? abc + !abc + nt!abc + 4ab3h",
     [(Keyword, "?"), (Number.Hex, "abc"), (Operator, "+"), (Punctuation, "!"),
      (Name, "abc"), (Operator, "+"), *NT, (Name, "abc"), (Operator, "+"),
      (Number.Hex, "4ab3h")]),
    ("? dwo(@cr3) >= $t0",
     [(Keyword, "?"), (Name.Builtin, "dwo"), (Punctuation, "("), (Name.Variable, "@cr3"),
      (Punctuation, ")"), (Operator, ">="), (Name.Variable.Magic, "$t0")]),
    ("r $t0 = @$peb", [(Keyword, "r"), (Name.Variable.Magic, "$t0"), (Operator, "="),
                       (Name.Variable.Magic, "@$peb")]),
    ("r cr4", [(Keyword, "r"), (Name.Variable, "cr4")]),
    ("!pte @$proc; .process /p /r fffffa80`03000290",
     [(Name.Function, "!pte"), (Name.Variable.Magic, "@$proc"), (Punctuation, ";"),
      (Keyword.Pseudo, ".process"), (Name.Attribute, "/p"), (Name.Attribute, "/r"),
      (Number.Hex, "fffffa80`03000290")]),
    ("!sim.alloc notepad.exe 1000 commit",
     [(Name.Function, "!sim.alloc"), (Name, "notepad.exe"), (Number.Hex, "1000"),
      (Name, "commit")]),
    ("dt -r1 nt!_EPROCESS Pcb.DirectoryTableBase @$proc",
     [(Keyword, "dt"), (Name.Attribute, "-r1"), *NT, (Name.Class, "_EPROCESS"),
      (Name, "Pcb.DirectoryTableBase"), (Name.Variable.Magic, "@$proc")]),
    ("lmvm nt", [(Keyword, "lm"), (Name.Attribute, "vm"), (Name, "nt")]),
    ("x nt!Mm*", [(Keyword, "x"), *NT, (Name, "Mm*")]),
    ("!address -summary", [(Name.Function, "!address"), (Name.Attribute, "-summary")]),
    # $$ comments end at ';', * comments at the end of the line.
    ("$$ note; dd 0", [(Comment.Single, "$$ note"), (Punctuation, ";"), (Keyword, "dd"),
                       (Number.Hex, "0")]),
    ("* all of it; dd 0", [(Comment.Single, "* all of it; dd 0")]),
    ('.echo a ${x} b; eb 1000 "s;t" ff',
     [(Keyword.Pseudo, ".echo"), (Text, " a "), (String.Interpol, "${x}"), (Text, " b"),
      (Punctuation, ";"), (Keyword, "eb"), (Number.Hex, "1000"), (String.Double, '"'),
      (String.Double, "s;t"), (String.Double, '"'), (Number.Hex, "ff")]),
    ('.printf "%p\\n", @$proc',
     [(Keyword.Pseudo, ".printf"), (String.Double, '"'), (String.Interpol, "%p"),
      (String.Escape, "\\n"), (String.Double, '"'), (Punctuation, ","),
      (Name.Variable.Magic, "@$proc")]),
    (".if (@$t0 != 0) { dd 0 L1 } .else { q }",
     [(Keyword.Reserved, ".if"), (Punctuation, "("), (Name.Variable.Magic, "@$t0"),
      (Operator, "!="), (Number.Hex, "0"), (Punctuation, ")"), (Punctuation, "{"),
      (Keyword, "dd"), (Number.Hex, "0"), (Keyword.Type, "L"), (Number.Hex, "1"),
      (Punctuation, "}"), (Keyword.Reserved, ".else"), (Punctuation, "{"), (Keyword, "q"),
      (Punctuation, "}")]),
    # Inside .for's parentheses each ';'-separated part is a command again.
    (".for (r $t0 = 0; @$t0 < 5; r $t0 = @$t0 + 1) {}",
     [(Keyword.Reserved, ".for"), (Punctuation, "("), (Keyword, "r"),
      (Name.Variable.Magic, "$t0"), (Operator, "="), (Number.Hex, "0"), (Punctuation, ";"),
      (Name.Variable.Magic, "@$t0"), (Operator, "<"), (Number.Hex, "5"), (Punctuation, ";"),
      (Keyword, "r"), (Name.Variable.Magic, "$t0"), (Operator, "="),
      (Name.Variable.Magic, "@$t0"), (Operator, "+"), (Number.Hex, "1"), (Punctuation, ")"),
      (Punctuation, "{"), (Punctuation, "}")]),
    ('$$>a<"my script.txt" 1 two; q',
     [(Keyword, "$$>a<"), (String.Other, '"my script.txt"'), (Number.Hex, "1"),
      (Name, "two"), (Punctuation, ";"), (Keyword, "q")]),
    # $< takes the rest of the line as the file name, ';' included.
    ("$<c:\\a;b.txt", [(Keyword, "$<"), (String.Other, "c:\\a;b.txt")]),
    ("$$><s.txt; dd", [(Keyword, "$$><"), (String.Other, "s.txt"), (Punctuation, ";"),
                       (Keyword, "dd")]),
])
def test_command_line_tokens(line, expected):
    assert tokens(line) == expected


def test_every_registered_command_name_is_lexed_as_a_command_word():
    from kdsim.kd.registry import REGISTRY
    importlib.import_module("kdsim.kd.commands")          # fills the table
    for name in REGISTRY.by_name:
        first = tokens(name + " 1")[0]
        if name in ("$$", "*"):
            assert first[0] is Comment.Single, name
        else:
            assert first == (first[0], name) and first[0] in (
                Keyword, Keyword.Pseudo, Keyword.Reserved, Name.Function), (name, first)


def test_a_kd_script_without_prompts_lexes_as_command_lines():
    script = "$$ setup\nr $t0 = 1\n.if (@$t0) { !pte 0 }\ndd nt!MmPfnDatabase L1\n"
    assert tokens(script, KdLexer) == tokens(script, KdCommandLexer)
    assert (Comment.Single, "$$ setup") in tokens(script, KdLexer)


# -- transcripts ----------------------------------------------------------------------------

COMMANDS = ["? poi(MmHighestUserAddress)", "dd nt!MmSystemRangeStart L4", "dq @$proc L2",
            "db 0 L10", "dc 0 L4", "!pte 7ffe0000", "!pte fffff78000000000", "!process 0 0",
            "dt nt!_MMPFN", "!pfn 1", "lm", "x nt!MmPfn*", "ln nt!MmPfnDatabase", "dd foo",
            "r @cr3", "r $t0", "!vad", ".formats 0n100", "bogus", "!vtop 0 fffff78000000000",
            "du 0", "dps @$proc L2", "vertarget", "!vm", ".echo hello; ? 1+2*3", ""]


@pytest.fixture(scope="module")
def transcript():
    booted = kdsim.boot("win7-x64", ram="256m", seed=0, scenario="none")
    prompt = booted.debugger.prompt
    return "".join(prompt + c + "\n" + booted.debugger.execute(c) for c in COMMANDS)


def test_engine_transcript_lexes_without_error_tokens_and_round_trips(transcript):
    assert transcript.startswith("0: kd> ")
    assert round_trip(transcript, KdLexer) == transcript
    toks = tokens(transcript, KdLexer)
    assert not [v for t, v in toks if t in Error]
    # Every prompt is a prompt, and what follows it a command.
    assert [v for t, v in toks if t is Generic.Prompt] == ["0: kd> "] * len(COMMANDS)
    after_prompt = [toks[i + 1] for i, (t, _) in enumerate(toks[:-1]) if t is Generic.Prompt]
    assert after_prompt[:4] == [(Keyword, "?"), (Keyword, "dd"), (Keyword, "dq"),
                                (Keyword, "db")]


def test_transcript_output_highlights(transcript):
    toks = tokens(transcript, KdLexer)
    errors = [v for t, v in toks if t is Generic.Error]
    assert errors == ["Couldn't resolve error at 'foo'", "^ Syntax error in 'bogus'"]
    assert (Name.Label, "fffff800`02c1f378") in toks            # the dd line's address
    assert (Comment.Special, "??") in toks and (Comment.Special, "????????") in toks
    assert (Keyword, "PROCESS") in toks and (String, "System") in toks
    assert (Generic.Strong, "not valid") in toks
    assert (Keyword.Constant, "-G-DA--KW-V") in toks               # !pte flags
    assert (Generic.Heading, "**** NT ACTIVE PROCESS DUMP ****") in toks
    assert (Name, "MmPfnDatabase") in toks                          # x / ln output
    assert (Name.Variable, "cr3") in toks and (Name.Variable, "$t0") in toks
    assert (Number.Hex, "000007ff`fffeffff") in toks
    # Words of prose stay text even when they are made of hex letters.
    assert (Generic.Output, "Evaluate") in toks and (Number.Hex, "Bad") not in toks


@pytest.mark.parametrize("prompt", ["kd> ", "0: kd> ", "12: kd> ", "lkd> "])
def test_every_kd_prompt_starts_a_command_line(prompt):
    text = f"{prompt}dd 0\nkd> dd 0\n00000000  ????????\n"
    toks = tokens(text, KdLexer)
    assert toks[:2] == [(Generic.Prompt, prompt), (Keyword, "dd")]
    assert (Name.Label, "00000000") in toks


ALPHABET = st.sampled_from(list("dbx r!$@`'\"?*;{}()<>=-/%.,:\\\n\t0189afLlnty_") +
                           ["kd> ", "0: kd> ", "$$>a<", "${", "poi(", ".if", ".echo ",
                            "0x", "nt!", "??", "^ "])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_any_text_round_trips_without_error_tokens(text):
    for lexer in (KdLexer, KdCommandLexer):
        text_nl = text + "\n"
        assert round_trip(text_nl, lexer) == text_nl
        assert not [v for _, t, v in lexer().get_tokens_unprocessed(text) if t in Error]


# -- the prompt -----------------------------------------------------------------------------

def test_prompt_toolkit_highlights_input_with_the_command_lexer_and_style():
    from prompt_toolkit.document import Document
    from prompt_toolkit.lexers import PygmentsLexer
    from prompt_toolkit.styles import style_from_pygments_cls
    line = PygmentsLexer(KdCommandLexer).lex_document(Document("dd @$proc L4"))(0)
    assert line[0] == ("class:pygments.keyword", "dd")
    assert ("class:pygments.keyword.type", "L") in line
    style = style_from_pygments_cls(KdStyle)
    attrs = style.get_attrs_for_style_str("class:pygments.keyword")
    assert attrs.color == "ansicyan" and attrs.bold
    counts = style.get_attrs_for_style_str("class:pygments.keyword.type")
    assert counts.color == "ansicyan" and not counts.bold
    # Only the terminal's palette: no fixed RGB that suits one background only.
    assert all(word.startswith(("ansi", "no")) or word in ("bold", "italic", "underline")
               for value in KdStyle.styles.values() for word in value.split())


# -- the pygments entry point ---------------------------------------------------------------

def lexer_entry_points():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["entry-points"]["pygments.lexers"]


def test_pyproject_declares_the_lexers_as_pygments_plugins():
    assert lexer_entry_points() == {"kd": "kdsim.shell.lexer:KdLexer",
                                    "kd-command": "kdsim.shell.lexer:KdCommandLexer"}


def installed_metadata(tmp_path):
    """The metadata `pip install` writes for kdsim, entry points taken from pyproject: a
    dist-info directory that, put on the path, is what pygments' plugin look-up reads."""
    info = tmp_path / "kdsim-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kdsim\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[pygments.lexers]\n" + "".join(f"{k} = {v}\n" for k, v in
                                        lexer_entry_points().items()))
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))


def test_pygmentize_highlights_a_transcript_through_the_entry_point(tmp_path, transcript):
    env = installed_metadata(tmp_path)
    path = tmp_path / "transcript.txt"
    path.write_text(transcript)
    r = subprocess.run([sys.executable, "-m", "pygments", "-l", "kd", "-f", "terminal",
                        str(path)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr == ""
    assert "\x1b[" in r.stdout and "kd>" in r.stdout and "PROCESS" in r.stdout
    # The file name picks the lexer too (*.kd scripts).
    r = subprocess.run([sys.executable, "-m", "pygments", "-N", "script.kd"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.stdout.strip() == "kd"


def installed():
    try:
        importlib.metadata.distribution("kdsim")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not installed(), reason="kdsim is not installed (pip install -e .): "
                    "no package metadata to hold the entry point")
def test_the_installed_package_registers_the_lexers():
    eps = importlib.metadata.entry_points(group="pygments.lexers")
    assert {ep.name: ep.value for ep in eps if ep.value.startswith("kdsim.")} == \
        lexer_entry_points()
    r = subprocess.run(
        [sys.executable, "-c", "import pygments.lexers as L; "
         "print(type(L.get_lexer_by_name('kd')).__name__, "
         "type(L.get_lexer_by_name('windbg')).__name__, "
         "type(L.get_lexer_by_name('kd-command')).__name__)"],
        capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["KdLexer", "KdLexer", "KdCommandLexer"]
