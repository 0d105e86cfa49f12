"""Pygments lexers for the kd command language and for kd transcripts, and a colour style.

Two lexers, one grammar:

* ``KdCommandLexer`` (alias ``kd-command``) reads text in which every line is a command
  line -- what is typed at the ``kd>`` prompt, or a debugger script.  The interactive
  prompt highlights its input with it (``PygmentsLexer(KdCommandLexer)``).
* ``KdLexer`` (aliases ``kd``, ``windbg``; files ``*.kd``, ``*.wds``) is the one
  ``pygmentize -l kd`` picks.  It looks at the whole text first: when some line starts
  with a kd prompt (``kd> ``, ``0: kd> ``, ``lkd> ``) the text is a transcript -- a prompt
  line is the prompt followed by a command line, any other line is the debugger's output;
  otherwise (a script file, a bare command) every line is a command line, as with
  ``KdCommandLexer``.

The command grammar follows the debugger's own: ``;`` separates commands and ``{ }``
delimit the blocks of ``.if``/``.for``/``.foreach``, so after either the next word is a
command word again; ``$$`` comments run to the next ``;``, ``*`` comments to the end of the
line; the script tokens ``$<``/``$><`` take the rest of the line as the file name.  Numbers
follow MASM: a bare number is hexadecimal (the default radix), ``0x``/``0n``/``0t``/``0y``
prefixes and the ``h`` suffix name the radix, and a backtick may split a 64-bit number;
a word made only of hex digits is a number (``abc``), as the evaluator reads it, and
``!abc``/``nt!abc`` force a symbol.

Every character gets a token (no ``Error`` tokens, even for malformed input): the lexer
colours what is typed at a prompt, where half a command is the normal case.

``KdStyle`` colours the tokens with the terminal's own ANSI palette, so it reads on a
dark and on a light background; ``prompt_toolkit.styles.style_from_pygments_cls(KdStyle)``
turns it into a prompt_toolkit style.

Only pygments is imported here: pygments loads every plugin lexer when it guesses a
lexer, so this module must stay cheap to import.
"""
from __future__ import annotations

import re

from pygments.lexer import RegexLexer, bygroups, default, include
from pygments.style import Style
from pygments.token import (Comment, Error, Generic, Keyword, Name, Number, Operator,
                            Punctuation, String, Text, Whitespace)

__all__ = ["KdCommandLexer", "KdLexer", "KdStyle", "PROMPT_RE"]

# The prompts kd prints: "kd> " (one processor), "0: kd> " (multiprocessor; N is the
# current processor) and "lkd> " (local kernel debugging).
PROMPT_RE = r"(?:\d+: )?l?kd>(?: |$)"
_PROMPT_LINE = re.compile("^" + PROMPT_RE, re.MULTILINE)

# MASM numbers: radix prefixes, the h suffix, a backtick inside 64-bit values.
_NUMBER = re.compile(r"(?i)(?:(0x)[0-9a-f`]*|(0n)[0-9`]*|(0t)[0-7`]*|(0y)[01`]*"
                     r"|[0-9a-f][0-9a-f`]*h?)")
_RADIX_TOKEN = {"0x": Number.Hex, "0n": Number.Integer, "0t": Number.Oct, "0y": Number.Bin}
_WORD_OPERATORS = {"and", "or", "xor", "mod"}

# A symbol after "module!" or a forcing "!": decorated C/C++ names may hold $ @ ? and ::.
_SYMBOL = r"[A-Za-z_$@?][\w$@?]*(?:::[A-Za-z_$@?][\w$@?]*)*"
_MODULE = r"[A-Za-z0-9_][\w]*"

# Meta-commands that steer a script; highlighted apart from the other meta-commands.
_CONTROL_FLOW = ("if", "elsif", "else", "for", "while", "do", "break", "continue", "block",
                 "foreach", "catch", "leave", "return")


def _expression_word(lexer, match):
    """A word of a MASM expression: an operator word, a number, or a symbol."""
    word = match.group()
    if word.lower() in _WORD_OPERATORS:
        yield match.start(), Operator.Word, word
        return
    number = _NUMBER.fullmatch(word)
    if number:
        prefix = next((g.lower() for g in number.groups() if g), None)
        yield match.start(), _RADIX_TOKEN.get(prefix, Number.Hex), word
    else:
        yield match.start(), Name, word


def _nothing(lexer, match):
    """The action of a look-ahead rule that only changes state."""
    return iter(())


_HEX = "[0-9a-fA-F?]"
# The cells of a d* dump line: db (16 bytes, '-' after the 8th), dw, dd/dc, dq -- one
# width per line, as the debugger prints them; ?? / ???????? stand for unreadable memory.
_DUMP_CELLS = (rf"(?:{_HEX}{{2}}[ -]){{0,15}}{_HEX}{{2}}"
               rf"|(?:{_HEX}{{4}} ){{0,7}}{_HEX}{{4}}"
               rf"|(?:{_HEX}{{8}} ){{0,3}}{_HEX}{{8}}"
               rf"|(?:{_HEX}{{8}}`{_HEX}{{8}} )?{_HEX}{{8}}`{_HEX}{{8}}")
_ADDRESS = r"[0-9a-fA-F]{8}(?:`?[0-9a-fA-F]{8})?"


def _dump_line(lexer, match):
    """``ADDR  cells[  ascii]``: the address, each cell, then the character column."""
    yield match.start(1), Name.Label, match.group(1)
    yield match.start(2), Whitespace, match.group(2)
    pos = match.start(3)
    for piece in re.finditer(r"[^ -]+|[ -]", match.group(3)):
        text = piece.group()
        token = (Whitespace if text == " " else Punctuation if text == "-"
                 else Comment.Special if "?" in text else Number.Hex)
        yield pos + piece.start(), token, text
    if match.group(4):
        yield match.start(4), Whitespace, match.group(4)
        yield match.start(5), Generic.Output, match.group(5)


_PREFIXED_HEX = re.compile(r"0[xX][0-9a-fA-F]*")
_HEX_WORD = re.compile(r"[0-9a-fA-F]+(?:`[0-9a-fA-F]+)?")


def _output_word(lexer, match):
    """A word of the debugger's output: a number when it reads as one, else plain text.
    Words of 8/16 digits, backticked, 0x-prefixed or mixing digits and a-f are hex;
    decimal digits are a decimal number unless a leading 0 pads them (Cid: 0004); words
    of a-f letters only are numbers from 8 letters on, so "Bad" or "add" stays text."""
    word = match.group()
    if _PREFIXED_HEX.fullmatch(word):
        token = Number.Hex
    elif not _HEX_WORD.fullmatch(word):
        token = Generic.Output
    elif word.isdigit():
        token = (Number.Hex if len(word) in (8, 16) or word[0] == "0" and len(word) > 1
                 else Number.Integer)
    elif word.isalpha():
        token = Number.Hex if len(word) >= 8 else Generic.Output
    else:
        token = Number.Hex
    yield match.start(), token, word


# Lines of output that report a failure, worded as the debugger words them.
_ERROR_LINE = (r"^(?:Couldn't resolve error at |Memory access error at |Syntax error at "
               r"|Numeric expression missing from |Bad register error|Operand error"
               r"|kdsim internal error: |Memory read error |Physical memory (?:read|write) at "
               r"|Virtual address \S+ translation fails|Unable to |No export "
               r"|Symbol \S+ not found|PFN \S+ is beyond |\S+ is not a process object)[^\n]*")


class KdCommandLexer(RegexLexer):
    """Lines of kd commands: what is typed at the ``kd>`` prompt, or a debugger script."""

    name = "kd command line"
    aliases = ["kd-command"]
    filenames: list[str] = []
    mimetypes = ["text/x-kd-command"]
    url = "https://learn.microsoft.com/windows-hardware/drivers/debuggercmds/"

    tokens = {
        "root": [
            (r"\n", Whitespace),
            include("command"),
        ],
        # Where a command word is expected: the start of a line, after ';', '{' or '}'.
        "command": [
            (r"[^\S\n]+", Whitespace),
            (r"[;{}()]", Punctuation),
            # Scripts: $$>a< passes arguments; $$< and $$>< end their file name at ';';
            # $< and $>< take the rest of the line, ';' included.
            (r"(\$\$>a<|\$\$><|\$\$<)([^\S\n]*)(\"[^\"\n]*\"?|[^\s;]*)",
             bygroups(Keyword, Whitespace, String.Other), "args"),
            (r"(\$><|\$<)([^\n]*)", bygroups(Keyword, String.Other)),
            (r"\$\$[^;\n]*", Comment.Single),              # $$ comment: to the next ';'
            (r"\*[^\n]*", Comment.Single),                 # * comment: to the end of line
            (r"\?\?|\?", Keyword, "expression"),
            (r"(\.for)([^\S\n]*)(\()", bygroups(Keyword.Reserved, Whitespace, Punctuation)),
            (r"\.(?:if|elsif|while)(?![\w.])", Keyword.Reserved, "expression"),
            (r"\.(?:%s)(?![\w.])" % "|".join(_CONTROL_FLOW), Keyword.Reserved, "args"),
            (r"\.echo(?![\w.])", Keyword.Pseudo, "echo"),
            (r"\.[A-Za-z_][\w.]*", Keyword.Pseudo, "args"),        # .process, .formats, ...
            (r"![A-Za-z_][\w.]*", Name.Function, "args"),          # !pte, !sim.alloc, ...
            (r"~[\d.#*]*[A-Za-z]*", Keyword, "args"),              # processor selection
            (r"(?i)(lm)([a-z]*)", bygroups(Keyword, Name.Attribute), "args"),  # lmvm nt
            (r"(?i)r(?![\w.])", Keyword, "registers"),
            (r"(?i)x(?![\w.])", Keyword, "symbol-pattern"),
            (r"(?i)dt(?![\w.])", Keyword, "type"),
            (r"[A-Za-z]+", Keyword, "args"),                       # d*, e*, ln, q, ...
            # Anything else (an expression inside .for's parentheses, an alias) is an
            # argument text without a command word.
            (r"(?=[^\s;{}()])", _nothing, "args"),
        ],
        # Arguments: options, L counts, then an expression.
        "args": [
            (r"(?<=\s)[-/][A-Za-z?][\w:]*", Name.Attribute),       # /p, -r1, -summary
            # L count, L? count (no size limit), L- count (ending at the address).
            (r"(?<![\w`!$@.])[lL](?:[?-]|(?=[^\S\n]|[0-9(@$]|(?:0[xntyXNTY])?[0-9a-fA-F`]+h?"
             r"(?![\w`])))", Keyword.Type),
            include("expression"),
        ],
        # A MASM expression; the command ends at ';', '{', '}' or the end of the line.
        "expression": [
            (r"[^\S\n]+", Whitespace),
            (r"\"", String.Double, "string"),
            (r"'[^'\n]*'?", String.Char),
            (r"\$\{[^}\n]*\}?", String.Interpol),                  # alias: ${name}, ${$arg1}
            (r"(?i)(poi|dwo|qwo|wo|by|hi|low|not|\$p(?:by|wo|dwo|qwo|poi)|\$scmp|\$sicmp"
             r"|\$spat|\$vvalid|\$iment|\$fnsucc)([^\S\n]*)(\()",
             bygroups(Name.Builtin, Whitespace, Punctuation)),
            (r"@@(?:c\+\+|masm)?", Keyword.Pseudo),               # evaluator switch
            (r"@?\$\w+", Name.Variable.Magic),                     # $t0, @$proc, $peb
            (r"@\w+", Name.Variable),                              # @cr3, @rax
            (rf"({_MODULE})(!)({_SYMBOL})", bygroups(Name.Namespace, Punctuation, Name)),
            (rf"(!)({_SYMBOL})", bygroups(Punctuation, Name)),     # !abc: a symbol, not hex
            (r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", Name),           # dt field paths: Pcb.x
            (r"[\w`]+", _expression_word),
            (r">>>|<<|>>|==|!=|<=|>=|[-+*/%&|^=<>~!]", Operator),
            (r"[(),\[\]:]", Punctuation),
            (r"\.(?![\w])", Name.Builtin.Pseudo),                  # '.': the current address
            (r"[^;{}\n]", Text),
            default("#pop"),
        ],
        "string": [
            (r"\"", String.Double, "#pop"),
            (r"\\(?:[\\\"abfnrtv0]|x[0-9a-fA-F]{1,2})", String.Escape),
            # .printf: %p %x %d %u %s %ma %mu %msa %msu %y ...
            (r"%%|%[-+ #0]*(?:\d+)?(?:\.\d+)?(?:I64|I32|ll|l|h|N)?"
             r"(?:ma|mu|msa|msu|[pxXdiuoscSCyNbB])", String.Interpol),
            (r"\$\{[^}\n]*\}?", String.Interpol),
            (r"[^\"\\%$\n]+", String.Double),
            (r"[\\%$]", String.Double),
            default("#pop"),                                       # unterminated
        ],
        # .echo prints its text as it stands, up to ';'.
        "echo": [
            (r"\$\{[^}\n]*\}?", String.Interpol),
            (r"\"[^\"\n]*\"?", String.Double),
            (r"[^;{}$\"\n]+", Text),
            (r"\$", Text),
            default("#pop"),
        ],
        # r [Register[=Value]]: register names, then the value's expression.
        "registers": [
            (r"[^\S\n]+", Whitespace),
            (r"@?\$\w+", Name.Variable.Magic),
            (r"@?[A-Za-z_]\w*", Name.Variable),
            (r",", Punctuation),
            (r"=", Operator, ("#pop", "expression")),
            default(("#pop", "expression")),
        ],
        # x [Options] Module!Pattern: the pattern may hold * and ? wildcards.
        "symbol-pattern": [
            (r"(?<=\s)/[A-Za-z]\w*", Name.Attribute),
            (r"([\w*?\[\]]+)(!)([\w*?\[\]$@:]*)", bygroups(Name.Namespace, Punctuation, Name)),
            (r"[A-Za-z_*?][\w*?\[\]$@:]*", Name),
            include("args"),
        ],
        # dt [module!]Type ...: type names begin with '_' (_EPROCESS, nt!_MMPFN).
        "type": [
            (rf"(?:({_MODULE})(!))?(_[\w*]*)", bygroups(Name.Namespace, Punctuation,
                                                        Name.Class)),
            include("args"),
        ],
    }


class KdLexer(KdCommandLexer):
    """kd transcripts (prompt lines and the debugger's output), or kd command lines when
    the text has no prompt (a script file, a command typed at the prompt)."""

    name = "kd"
    aliases = ["kd", "windbg"]
    filenames = ["*.kd", "*.wds"]
    mimetypes = ["text/x-kd"]

    def get_tokens_unprocessed(self, text, stack=None):
        if stack is None:
            stack = ("transcript",) if _PROMPT_LINE.search(text) else ("root",)
        return super().get_tokens_unprocessed(text, stack)

    def analyse_text(text):
        return 0.8 if _PROMPT_LINE.search(text) else 0.0

    tokens = {
        "transcript": [
            ("^" + PROMPT_RE, Generic.Prompt, "command-line"),
            default("output"),
        ],
        "command-line": [
            (r"\n", Whitespace, "#pop"),
            include("command"),
        ],
        "output": [
            (r"\n", Whitespace, "#pop"),
            (r"^( +)(\^ [^\n]*)", bygroups(Whitespace, Generic.Error)),  # caret errors
            (_ERROR_LINE, Generic.Error),
            (r"^(?:\*\*\*\* |--- )[^\n]*", Generic.Heading),           # !process, !address
            (rf"^({_ADDRESS})(  )({_DUMP_CELLS})(?:(  )([^\n]*))?$", _dump_line),
            (rf"^{_ADDRESS}(?=[ \t])", Name.Label),                    # x, lm, dps, !vad
            (r"^([ \t]+)(\+0x[0-9a-fA-F]+)([ \t]+)([^\s:]+)",           # dt: +0x010 Field
             bygroups(Whitespace, Number.Hex, Whitespace, Name.Attribute)),
            (r"(Image)(:)([ \t]+)([^\n]+)",                          # !process: the image
             bygroups(Name.Attribute, Punctuation, Whitespace, String)),
            (r"(?<![\w$])(\$?[A-Za-z]\w*)(=)(?=[0-9a-fA-F])",           # r: cr3=...
             bygroups(Name.Variable, Operator)),
            (r"\bPROCESS\b", Keyword),
            (r"\b(?:not valid|LARGE PAGE)\b", Generic.Strong),
            # !pte flags, C G L D A N T U/K W/R E V: ---DA--UWEV
            (r"(?<![\w-])[-C][-G][-L][-D][-A][-N][-T][-UK][-WR][-E][-V](?![\w-])",
             Keyword.Constant),
            (r"\b([A-Z][A-Za-z0-9]*)(:)(?=[ \t]|$)", bygroups(Name.Attribute, Punctuation)),
            (rf"\b({_MODULE})(!)({_SYMBOL})", bygroups(Name.Namespace, Punctuation, Name)),
            (r"\"[^\"\n]*\"", String.Double),
            (r"(?<!\w)'[^'\n]*'(?!\w)", String.Single),
            (r"\?{2,}", Comment.Special),                              # unreadable memory
            (r"[\w`]+", _output_word),
            (r"[^\S\n]+", Whitespace),
            (r"[^\w\s`?\"']+|[?\"'`]", Generic.Output),
        ],
    }


class KdStyle(Style):
    """Colours in the terminal's ANSI palette (readable on dark and light backgrounds:
    no blue or yellow text, which one of the two usually washes out)."""

    name = "kd"
    styles = {
        Comment: "italic ansibrightblack",
        Comment.Special: "ansibrightblack",           # ?? cells
        Keyword: "bold ansicyan",                     # command words, meta-commands
        Keyword.Reserved: "bold ansimagenta",         # .if .for .foreach ...
        Keyword.Type: "nobold ansicyan",              # L / L? counts
        Keyword.Constant: "nobold ansicyan",          # !pte flag strings
        Name.Function: "bold ansigreen",              # extensions: !pte, !sim.alloc
        Name.Builtin: "ansicyan",                     # poi( dwo( ...
        Name.Variable: "ansimagenta",                 # @cr3, $t0, @$proc
        Name.Namespace: "ansimagenta",                # the module of module!symbol
        Name.Class: "underline",                      # dt type names
        Name.Attribute: "ansicyan",                   # options, field labels
        Name.Label: "ansimagenta",                    # the address column of a dump
        Number: "ansigreen",
        Operator.Word: "ansicyan",
        String: "ansired",
        String.Escape: "bold ansired",
        String.Interpol: "bold ansired",              # ${alias}, %p
        Generic.Prompt: "bold",
        Generic.Error: "bold ansired",
        Generic.Heading: "bold",
        Generic.Strong: "bold",
        Error: "bold ansired",
    }
