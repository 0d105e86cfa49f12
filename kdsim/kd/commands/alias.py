"""Aliases: ``as``/``aS`` (set), ``ad`` (delete), ``al`` (list), and the replacement of
alias names in command text, ``${Alias}`` with its /d: /f: /n: /v: switches (MSD "Using
Aliases", "as, aS (Set Alias)", "${ } (Alias Interpreter)").

The replacement rules kdsim implements:

* When a line is run, and again each time a block is entered (a loop's block on every
  iteration), aliases in its text are replaced before anything in it runs.  So ``aS x 1;
  .echo x`` prints ``x``, and ``aS x 1; .block { .echo x }`` prints ``1`` (MSD).
* A text (line or block) that begins with ``as``, ``aS``, ``ad`` or ``al`` gets no
  replacement at all; a ';' or a space in front of the command defeats the rule (MSD "Using
  Aliases").  The same holds for a .foreach variable.
* A user-named alias is replaced where it stands alone: at the start of the text or after
  a space, tab, line break, ';' or '"', and up to the end or one of those characters.
  ``${Name}`` is replaced anywhere; an undefined name keeps its literal text.
* One pass, left to right: the replacement text is not searched again for aliases, so an
  alias cannot expand forever.
* Automatic aliases: ``$ntnsym`` and ``$ntsym`` are ``nt`` (kernel debugging, native
  mode).  kdsim has no fixed-name aliases ($u0-$u9, set through ``r $.u0=``).
"""
from __future__ import annotations

from ..registry import REGISTRY
from ..session import Abort, CommandError, statement, statement_end

DELIMITERS = " \t\r\n;\""
AUTOMATIC = {"$ntnsym": "nt", "$ntsym": "nt"}
NO_REPLACEMENT = ("as", "aS", "ad", "al")


def replaced_here(text: str) -> bool:
    """False for a text that starts with an alias command (MSD "Using Aliases")."""
    return not text.startswith(NO_REPLACEMENT)


def substitute(text: str, names, final: bool = True) -> str:
    """``text`` with the aliases of ``names`` (a mapping) replaced.  ``final`` is False
    for a partial pass (a .foreach variable, a script's $argN) that must leave the other
    ``${/d:...}``/``${/f:...}`` forms for the pass that knows every alias."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("${", i):
            j = text.find("}", i + 2)
            if j < 0:
                out.append(text[i:])
                break
            value = _interpret(text[i + 2:j], names, final)
            out.append(text[i:j + 1] if value is None else value)
            i = j + 1
            continue
        c = text[i]
        if c not in DELIMITERS and (i == 0 or text[i - 1] in DELIMITERS):
            j = i
            while j < n and text[j] not in DELIMITERS:
                j += 1
            if text[i:j] in names:
                out.append(names[text[i:j]])
                i = j
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _interpret(inner: str, names, final: bool) -> str | None:
    """What ``${inner}`` becomes; None keeps it literal."""
    switch, name = None, inner
    if inner[:1] == "/" and inner[2:3] == ":":
        switch, name = inner[1], inner[3:]
    defined = name in names
    if switch == "v":
        return None
    if switch == "d":
        return ("1" if defined else "0") if defined or final else None
    if switch == "f":
        return names[name] if defined else ("" if final else None)
    if switch not in (None, "n"):
        return None
    if not defined:
        return None
    return name if switch == "n" else names[name]


def expand(session, text: str) -> str:
    """The replacement done when a line or a block is entered."""
    if not replaced_here(text) or (not session.aliases and "${" not in text
                                   and "$nt" not in text):
        return text
    return substitute(text, {**AUTOMATIC, **session.aliases})


def alias_name(word: str) -> str:
    """``${/v:Name}`` as the name of as, aS and ad stands for Name (MSD "${ }")."""
    if word.startswith("${/v:") and word.endswith("}"):
        return word[5:-1]
    return word


# -- as / aS --------------------------------------------------------------------------------

_SWITCHES = ("/x", "/ma", "/mu", "/msa", "/msu", "/f", "/c")


@REGISTRY.command("as", syntax="as|aS [/x|/ma|/mu|/msa|/msu|/f|/c] Name Equivalent",
                  summary="set an alias",
                  help="as Name EquivalentLine: the rest of the line, ';' included.  "
                       "aS Name EquivalentPhrase: up to the next ';', or a \"quoted\" "
                       "phrase.  /x Expression: its value as 0x...; /ma, /mu Address: the "
                       "ASCII or Unicode string there; /msa, /msu Address: the "
                       "ANSI_STRING or UNICODE_STRING there; /f File: the file's contents; "
                       "/c Commands: what the commands print.  kdsim has no /e "
                       "(environment variables).")
def _as_row(session, args: str, offset: int) -> str:
    raise CommandError("kdsim: as runs as a statement of a command line\n")


@statement("as")
def set_alias(s, text: str, start: int, at: int, base: int, write) -> int:
    phrase = text[start:at] == "aS"           # "as" takes the rest of the line
    i = _skip_blanks(text, at)
    switch = None
    if text.startswith("/", i):
        j = i
        while j < len(text) and not text[j].isspace() and text[j] != ";":
            j += 1
        switch = text[i:j]
        if switch not in _SWITCHES:
            s.syntax(base + i, text[start:statement_end(text, start)].strip(), write)
        i = _skip_blanks(text, j)
    # Switches other than /c end at ';' for both forms (MSD); /c and plain "as" do not.
    rest_of_line = not phrase and switch in (None, "/c")
    end = len(text) if rest_of_line else statement_end(text, start)
    quoted = text[start:end].strip()
    j = i
    while j < end and not text[j].isspace():
        j += 1
    name = alias_name(text[i:j])
    if not name:
        s.syntax(base + min(i, max(len(text) - 1, 0)), quoted, write)
    v = _skip_blanks(text, j, end)
    value = text[v:end]
    if phrase and value.startswith('"'):      # "aS Name "phrase; with semicolons""
        close = value.find('"', 1)
        value = value[1:] if close < 0 else value[1:close]
    if switch == "/x":
        value = f"0x{_evaluate(s, value, base + v, quoted, write):x}"
    elif switch in ("/ma", "/mu", "/msa", "/msu"):
        from .printf import read_string
        addr = _evaluate(s, value, base + v, quoted, write)
        value = read_string(s, addr, switch[1:]) or ""
    elif switch == "/f":
        try:
            with open(value.strip(), encoding="utf-8", errors="replace") as f:
                value = f.read()
        except OSError:
            s.fail("Out of memory", write)   # what WinDbg says for a bad /f file (MSD)
    elif switch == "/c":
        captured: list[str] = []
        try:
            s.run_program(value, base + v, captured.append)
        except Abort:                         # the error is shown, not captured
            write(s.last_error)
            raise
        value = "".join(captured)
    s.aliases[name] = value
    return end


def _skip_blanks(text: str, i: int, end: int | None = None) -> int:
    end = len(text) if end is None else end
    while i < end and text[i] in " \t":
        i += 1
    return i


def _evaluate(s, expr: str, column: int, quoted: str, write) -> int:
    from ..expr import ExprError
    try:
        return s.evaluator().evaluate(expr)
    except ExprError as e:
        s.fail(s.expr_message(e, column, quoted), write)


# -- ad / al --------------------------------------------------------------------------------

@REGISTRY.command("ad", syntax="ad [/q] Name | ad *", summary="delete an alias",
                  help="ad * deletes every alias.  Deleting an alias that does not exist "
                       "prints No alias named 'Name' (kdsim's wording; WinDbg's is not "
                       "documented) unless /q is given.")
def delete_alias(session, args: str, offset: int) -> str:
    words = args.split()
    quiet = bool(words) and words[0] == "/q"
    if quiet:
        words = words[1:]
    if len(words) != 1:
        from ..expr import ExprError
        raise ExprError("syntax", len(args.rstrip()) if not words else
                        args.index(words[1]))
    name = alias_name(words[0])
    if name == "*":                           # every alias, even one named "*" (MSD)
        session.aliases.clear()
    elif name in session.aliases:
        del session.aliases[name]
    elif not quiet:
        raise CommandError(f"No alias named '{name}'\n")
    return ""


@REGISTRY.command("al", syntax="al", summary="list the user-named aliases")
def list_aliases(session, args: str, offset: int) -> str:
    # The layout of MSD's al sample (header, then " %-16s %s " rows, each line with its
    # trailing space), sorted by name as WinDbg's listings are.  With no aliases kdsim
    # prints the header alone (WinDbg's text for that case is not documented).
    lines = ["  Alias            Value  ", " -------          ------- "]
    lines += [f" {name:<16} {value} " for name, value in sorted(session.aliases.items())]
    return "\n".join(lines) + "\n"

