"""Control-flow tokens of debugger command programs (MSD "Control Flow Tokens"):
``.if``/``.elsif``/``.else``, ``.for``, ``.while``, ``.do``, ``.break``, ``.continue``,
``.block``, ``.catch``/``.leave`` and ``.foreach``.

Syntax kdsim accepts (the MSD pages and their examples):

* Every block is in braces, even of one command; the last command before '}' needs no ';'.
  Between a token's parts (condition, '{', '}', .elsif/.else, .do's condition) there may be
  white space and ';' -- that is what a script condensed by ``$$><`` has where its lines
  ended, so a program laid out on many lines runs the same as on one.
* A condition is a MASM expression (commands are not allowed: ``.while (r ebx)`` is a syntax
  error); the parentheses around it are optional (``.elsif @$t0==2``).  It ends at '{' or
  ';' outside parentheses and quotes.  Non-zero is true.
* ``.for (Init; Condition; Increment[; Increment...])``: Init and the increments are
  commands (several increments are separated by ';', MSD).
* ``.break``/``.continue`` act on the innermost .for/.while/.do/.foreach; ``.leave`` leaves
  the innermost ``.catch``.  Outside one they are syntax errors (kdsim's choice).
* ``.foreach [/pS n] [/ps n] (Var { Commands }) { OutCommands }``, ``/s (Var "String")``,
  ``/f (Var "File")``: the output of Commands (not shown), the string or the file is split
  at spaces, tabs and line breaks; /pS skips tokens first, /ps after each one used (MSD).
  In OutCommands Var is replaced where it stands alone or as ``${Var}``; an alias of the
  same name is not touched.  An error in Commands is shown and ends the .foreach.

Loops have no iteration limit: ``.while (1) { }`` runs until Ctrl-C (KeyboardInterrupt is
never caught here).  A block's aliases are replaced each time it is entered (alias.py).
"""
from __future__ import annotations

from ..expr import ExprError
from ..registry import REGISTRY
from ..session import (Abort, Break, CommandError, Continue, Leave, closing, skip_separators,
                       statement, statement_end)
from .alias import replaced_here, substitute

_HELP = ("Blocks need braces; the condition is a MASM expression, its parentheses "
         "optional.  Between the parts there may be ';' and line breaks (a $$>< script).")


def _row(name: str, syntax: str, summary: str, help: str = _HELP):
    """The command-table row of a token (for .help, .hh and completion); the token runs as
    a statement of the line, never through this handler."""
    def handler(session, args: str, offset: int) -> str:
        raise CommandError(f"kdsim: {name} runs as a statement of a command line\n")
    REGISTRY.command(name, syntax=syntax, summary=summary, help=help)(handler)


_row(".if", ".if (Condition) { Commands } [.elsif ...] [.else { Commands }]",
     "run commands if a condition is true")
_row(".elsif", ".elsif (Condition) { Commands }", "another condition after .if")
_row(".else", ".else { Commands }", "what runs when no .if/.elsif condition held")
_row(".for", ".for (Init; Condition; Increment) { Commands }", "a loop, as for in C",
     "Init and Increment are commands (r $t0 = 0); several increments are separated by "
     "';'.  .break and .continue work as in C.")
_row(".while", ".while (Condition) { Commands }", "a loop while a condition holds")
_row(".do", ".do { Commands } (Condition)", "a loop that runs at least once")
_row(".break", ".break", "leave the innermost loop", "Inside .for, .while, .do or .foreach.")
_row(".continue", ".continue", "go to the next iteration of the innermost loop",
     "Inside .for, .while, .do or .foreach.")
_row(".block", ".block { Commands }", "a block (its aliases are replaced on entry)",
     "Aliases set earlier on the same line are seen inside the block: "
     "aS /x a 1+1; .block { .echo a } prints 0x2.")
_row(".catch", ".catch { Commands }", "an error inside ends the block, not the program",
     "The error is shown, the rest of the block is skipped and the program goes on "
     "after it.  .leave leaves the block.")
_row(".leave", ".leave", "leave the innermost .catch block")
_row(".foreach", '.foreach [/pS n] [/ps n] (Var { Commands }) { Commands }',
     "run commands for each token of an output",
     "(Var { Commands }): the tokens of what the commands print (not shown); "
     '/s (Var "String"): of a string; /f (Var "File"): of a file.  /pS n skips n tokens '
     "first, /ps n skips n after each one used.  Var is replaced where it stands alone, "
     "or as ${Var}.")


# -- parsing --------------------------------------------------------------------------------

def _quote(text: str, start: int) -> str:
    """The statement as error messages quote it."""
    return text[start:statement_end(text, start)].strip()


def _clamp(text: str, i: int) -> int:
    # A part missing at the end of the text is reported under its last character, as the
    # transcript of ".if (1 == 2)" alone on a line shows (caret under ')').
    return min(i, max(len(text) - 1, 0))


def _condition(s, text: str, start: int, i: int, base: int, write) -> tuple[str, int, int]:
    """(condition text, where it starts, where it ends): up to '{' or ';' outside
    parentheses and quotes."""
    depth, j, n = 0, i, len(text)
    while j < n:
        c = text[j]
        if c == '"':
            close = text.find('"', j + 1)
            j = n if close < 0 else close + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth <= 0 and c in "{;":
            break
        j += 1
    if not text[i:j].strip():
        s.syntax(base + _clamp(text, skip_separators(text, i)), _quote(text, start), write)
    return text[i:j], i, j


def _block(s, text: str, start: int, i: int, base: int, write) -> tuple[str, int, int]:
    """(inside of the block, where it starts, the index after its '}'), after white space
    and ';' from ``i``."""
    j = skip_separators(text, i)
    if j >= len(text) or text[j] != "{":
        s.syntax(base + _clamp(text, j), _quote(text, start), write)
    k = closing(text, j)
    if k < 0:                                # unbalanced: the '{' has no '}'
        s.syntax(base + j, _quote(text, start), write)
    return text[j + 1:k], j + 1, k + 1


def _token(text: str, i: int, names: tuple[str, ...]) -> str | None:
    """Which of ``names`` starts at ``i`` (case-insensitive, ending at a non-letter)."""
    for name in names:
        end = i + len(name)
        if text[i:end].lower() == name and not text[end:end + 1].isalpha():
            return name
    return None


def _true(s, cond: str, at: int, base: int, quoted: str, write) -> bool:
    try:
        return s.evaluator().evaluate(cond) != 0
    except ExprError as e:
        s.fail(s.expr_message(e, base + at, quoted), write)


def _run_loop_body(s, block: str, at: int, base: int, write) -> bool:
    """Run a loop's block; False when .break ended the loop."""
    try:
        s.run_program(block, base + at, write)
    except Break:
        return False
    except Continue:
        pass
    return True


# -- the tokens -----------------------------------------------------------------------------

@statement(".if")
def if_(s, text, start, at, base, write) -> int:
    quoted = _quote(text, start)
    cond, cond_at, i = _condition(s, text, start, at, base, write)
    block, block_at, i = _block(s, text, start, i, base, write)
    branches = [(cond, cond_at, block, block_at)]
    while True:
        j = skip_separators(text, i)
        token = _token(text, j, (".elsif", ".else"))
        if token is None:
            break
        if token == ".elsif":
            cond, cond_at, k = _condition(s, text, j, j + len(token), base, write)
        else:
            cond, cond_at, k = None, 0, j + len(token)
        block, block_at, i = _block(s, text, j, k, base, write)
        branches.append((cond, cond_at, block, block_at))
        if token == ".else":
            break
    for cond, cond_at, block, block_at in branches:
        if cond is None or _true(s, cond, cond_at, base, quoted, write):
            s.run_program(block, base + block_at, write)
            break
    return i


@statement(".elsif")
@statement(".else")
def stray_else(s, text, start, at, base, write) -> int:
    # Without an .if in front (e.g. a script run line by line has it on another line):
    # the caret sits under the token's last character, as in that transcript.
    s.syntax(base + at - 1, _quote(text, start), write)


@statement(".block")
def block_(s, text, start, at, base, write) -> int:
    block, block_at, end = _block(s, text, start, at, base, write)
    s.run_program(block, base + block_at, write)
    return end


@statement(".catch")
def catch(s, text, start, at, base, write) -> int:
    block, block_at, end = _block(s, text, start, at, base, write)
    s.catches += 1
    try:
        s.run_program(block, base + block_at, write)
    except (Abort, Leave):      # the error was shown; go on after the block (MSD)
        pass
    finally:
        s.catches -= 1
    return end


def _jump(s, text, start, at, base, write, depth: int, signal) -> int:
    end = statement_end(text, start)
    if depth == 0:                      # not inside a loop (.catch for .leave)
        s.syntax(base + start, _quote(text, start), write)
    if text[at:end].strip():            # .break takes no argument
        s.syntax(base + at + len(text[at:end]) - len(text[at:end].lstrip()),
                 _quote(text, start), write)
    raise signal


@statement(".break")
def break_(s, text, start, at, base, write) -> int:
    return _jump(s, text, start, at, base, write, s.loops, Break)


@statement(".continue")
def continue_(s, text, start, at, base, write) -> int:
    return _jump(s, text, start, at, base, write, s.loops, Continue)


@statement(".leave")
def leave(s, text, start, at, base, write) -> int:
    return _jump(s, text, start, at, base, write, s.catches, Leave)


@statement(".while")
def while_(s, text, start, at, base, write) -> int:
    quoted = _quote(text, start)
    cond, cond_at, i = _condition(s, text, start, at, base, write)
    block, block_at, end = _block(s, text, start, i, base, write)
    s.loops += 1
    try:
        while _true(s, cond, cond_at, base, quoted, write):
            if not _run_loop_body(s, block, block_at, base, write):
                break
    finally:
        s.loops -= 1
    return end


@statement(".do")
def do(s, text, start, at, base, write) -> int:
    quoted = _quote(text, start)
    block, block_at, i = _block(s, text, start, at, base, write)
    cond, cond_at, end = _condition(s, text, start, skip_separators(text, i), base, write)
    s.loops += 1
    try:
        while _run_loop_body(s, block, block_at, base, write) and \
                _true(s, cond, cond_at, base, quoted, write):
            pass
    finally:
        s.loops -= 1
    return end


def _parts(text: str, i: int, k: int) -> list[tuple[int, int]]:
    """(start, end) of the ';'-separated parts of text[i:k]."""
    parts, j = [], i
    while True:
        e = min(statement_end(text, j), k)
        parts.append((j, e))
        if e >= k:
            return parts
        j = e + 1


@statement(".for")
def for_(s, text, start, at, base, write) -> int:
    quoted = _quote(text, start)
    i = skip_separators(text, at)
    if i >= len(text) or text[i] != "(":
        s.syntax(base + _clamp(text, i), quoted, write)
    k = closing(text, i)
    if k < 0:
        s.syntax(base + i, quoted, write)
    parts = _parts(text, i + 1, k)
    if len(parts) < 3:
        s.syntax(base + k, quoted, write)
    (init_at, init_end), (cond_at, cond_end) = parts[0], parts[1]
    next_at = parts[2][0]
    cond = text[cond_at:cond_end]
    if not cond.strip():
        s.syntax(base + cond_at, quoted, write)
    block, block_at, end = _block(s, text, start, k + 1, base, write)
    # Init, the condition and the increments were read when the enclosing block was
    # entered: their aliases are not replaced again.
    s.run_program(text[init_at:init_end], base + init_at, write, expand=False)
    s.loops += 1
    try:
        while _true(s, cond, cond_at, base, quoted, write):
            if not _run_loop_body(s, block, block_at, base, write):
                break
            s.run_program(text[next_at:k], base + next_at, write, expand=False)
    finally:
        s.loops -= 1
    return end


@statement(".foreach")
def foreach(s, text, start, at, base, write) -> int:
    quoted = _quote(text, start)
    first, each, source = 0, 0, "commands"
    i = skip_separators(text, at)
    while text.startswith("/", i):
        j = i
        while j < len(text) and not text[j].isspace() and text[j] != "(":
            j += 1
        option = text[i:j]
        if option in ("/pS", "/ps"):
            v = skip_separators(text, j)
            w = v
            while w < len(text) and not text[w].isspace() and text[w] not in "(;":
                w += 1
            number = _number(s, text[v:w], v, base, quoted, write)
            first, each = (number, each) if option == "/pS" else (first, number)
            i = skip_separators(text, w)
        elif option in ("/s", "/f"):
            source = "string" if option == "/s" else "file"
            i = skip_separators(text, j)
        else:
            s.syntax(base + i, quoted, write)
    if i >= len(text) or text[i] != "(":
        s.syntax(base + _clamp(text, i), quoted, write)
    close = closing(text, i)
    if close < 0:
        s.syntax(base + i, quoted, write)
    v = skip_separators(text, i + 1)
    w = v
    while w < close and not text[w].isspace() and text[w] not in '{"':
        w += 1
    var = text[v:w]
    if not var:
        s.syntax(base + v, quoted, write)
    src = skip_separators(text, w)
    out_block, out_at, end = _block(s, text, start, close + 1, base, write)
    if source == "commands":
        inner = closing(text, src) if src < close and text[src] == "{" else -1
        if inner < 0 or inner > close or text[inner + 1:close].strip():
            s.syntax(base + _clamp(text, src), quoted, write)
        captured: list[str] = []
        try:
            s.run_program(text[src + 1:inner], base + src + 1, captured.append)
        except Abort:                   # InCommands' output is not shown; its error is
            write(s.last_error)
            raise
        tokens = "".join(captured).split()
    else:
        q = closing_quote(text, src, close)
        if q < 0 or text[q + 1:close].strip():
            s.syntax(base + _clamp(text, src), quoted, write)
        string = text[src + 1:q]
        if source == "file":
            from .script import read_file
            string = read_file(s, string, write)
        tokens = string.split()
    s.loops += 1
    try:
        for token in tokens[first::each + 1]:
            body = substitute(out_block, {var: token}, final=False) \
                if replaced_here(out_block) else out_block
            if not _run_loop_body(s, body, out_at, base, write):
                break
    finally:
        s.loops -= 1
    return end


def closing_quote(text: str, i: int, limit: int) -> int:
    """The closing quote of a "..." at ``i`` (no escapes: a file name keeps its
    backslashes), before ``limit``; -1 if there is none."""
    if i >= limit or text[i] != '"':
        return -1
    q = text.find('"', i + 1, limit)
    return q


def _number(s, word: str, at: int, base: int, quoted: str, write) -> int:
    if not word:
        s.syntax(base + at, quoted, write)
    try:
        return s.evaluator().evaluate(word)
    except ExprError as e:
        s.fail(s.expr_message(e, base + at, quoted), write)
