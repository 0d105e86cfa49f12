"""Script files: ``$<``, ``$><``, ``$$<``, ``$$><`` and ``$$>a<`` (MSD "$<, $><, $$<, $$><,
$$>a< (Run Script File)").

| token   | file name may hold ';' | ;cmd may follow | run as one block | arguments |
|---------|------------------------|-----------------|------------------|-----------|
| $<      | yes (rest of line)     | no              | no: line by line | no        |
| $><     | yes (rest of line)     | no              | yes              | no        |
| $$<     | no (ends at ';')       | yes             | no: line by line | no        |
| $$><    | no                     | yes             | yes              | no        |
| $$>a<   | no                     | yes             | yes              | yes       |

* Line by line ($<, $$<): each line of the file runs as if typed at the prompt: the prompt
  and the line are printed first, then its output.  As for a typed line, an error ends the
  rest of that line and the next line still runs (the verbatim transcript of ``$<`` on a
  script whose braces sit on lines of their own shows one Syntax error per line, and the
  lines between them running).  So blocks must be complete on one line in these forms.
* As one block ($><, $$><, $$>a<): the lines are joined with ';' ("replace all carriage
  returns with semicolons, and execute the resulting text as a single command block") and
  run like one typed line, blocks spanning lines included.  Nothing is echoed -- the
  transcripts of $>< and $$>< show only the commands' output (MSD's table says these echo
  too; kdsim follows the transcripts).  An error ends the script (unless inside .catch),
  and the command that ran it fails, which ends the rest of its own line too.
* ``$$>a<File arg1 "arg two" ...``: a file name with spaces is quoted; arguments are
  separated by spaces, quoted when they hold spaces.  Before the script runs,
  ``${$argN}`` (and the switched forms ``${/d:$argN}``...) and ``$argN`` standing alone are
  replaced by argument N; ``$arg0`` is the file name as given.  An argument that was not
  given stays literal (``${$arg5}``), extra arguments are ignored.
* Files are opened relative to the current directory.  One that cannot be read prints
  ``Couldn't open file '<name>'`` (WinDbg's wording for this is not documented; kdsim's
  follows its "Couldn't ..." messages).  Scripts may call scripts, themselves included, up
  to 32 deep (kdsim's limit; WinDbg documents none): one level more prints
  ``Script files nested too deeply (the limit is 32): '<name>'`` and ends the program.
"""
from __future__ import annotations

from ..registry import REGISTRY
from ..session import Abort, CommandError, statement, statement_end
from .alias import substitute

MAX_SCRIPT_DEPTH = 32

_FORMS = {  # token: (file name to the end of the line, one block, arguments)
    "$<": (True, False, False),
    "$><": (True, True, False),
    "$$<": (False, False, False),
    "$$><": (False, True, False),
    "$$>a<": (False, True, True),
}
_SUMMARY = {
    "$<": "run a script file line by line (the name may hold ';')",
    "$><": "run a script file as one command block (the name may hold ';')",
    "$$<": "run a script file line by line",
    "$$><": "run a script file as one command block",
    "$$>a<": "run a script file as one block, with arguments ${$arg1}...",
}


def read_file(s, name: str, write) -> str:
    try:
        with open(name, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        s.fail(f"Couldn't open file '{name}'", write)


def _words(text: str) -> list[str]:
    """Space-separated words, a "quoted one" with its spaces (no quotes inside, MSD)."""
    words, i, n = [], 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return words
        if text[i] == '"':
            close = text.find('"', i + 1)
            close = n if close < 0 else close
            words.append(text[i + 1:close])
            i = close + 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            words.append(text[i:j])
            i = j


def _unquote(name: str) -> str:
    name = name.strip()
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] == '"' else name


def _make(token: str):
    whole_line, one_block, with_args = _FORMS[token]

    @REGISTRY.command(token, syntax=f"{token}File" + (" [arg1 arg2 ...]" if with_args else ""),
                      summary=_SUMMARY[token])
    def row(session, args: str, offset: int) -> str:
        raise CommandError(f"kdsim: {token} runs as a statement of a command line\n")

    @statement(token)
    def run(s, text, start, at, base, write) -> int:
        end = len(text) if whole_line else statement_end(text, start)
        spec = text[at:end]
        if with_args:
            words = _words(spec)
            name, args = (words[0], words[1:]) if words else ("", [])
        else:
            name, args = _unquote(spec), []
        if not name:
            s.syntax(base + min(at, max(len(text) - 1, 0)), text[start:end].strip(), write)
        if s.scripts >= MAX_SCRIPT_DEPTH:
            s.fail(f"Script files nested too deeply (the limit is {MAX_SCRIPT_DEPTH}): "
                   f"'{name}'", write)
        content = read_file(s, name, write)
        if with_args:
            content = substitute(content, {f"$arg{k}": v
                                           for k, v in enumerate([name] + args)}, final=False)
        run_script(s, content, one_block, write)
        return end

    return run


def run_script(s, content: str, one_block: bool, write) -> None:
    """Run a script's text; .break/.leave do not reach loops outside the script."""
    loops, catches = s.loops, s.catches
    s.loops = s.catches = 0
    s.scripts += 1
    try:
        if one_block:
            s.run_program(";".join(content.splitlines()), 0, write)
            return
        for line in content.splitlines():
            write(s.prompt + line + "\n")
            try:
                s.run_program(line, 0, write)
            except Abort:
                pass
    finally:
        s.scripts -= 1
        s.loops, s.catches = loops, catches


for _token in _FORMS:
    _make(_token)
