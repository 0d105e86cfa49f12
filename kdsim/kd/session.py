"""A debugger session: runs command lines, words errors the way WinDbg does, keeps the
session state (pseudo-registers, radix, aliases, the log file).  It reads the target only
through the Target interface.

A line is a *debugger command program* (MSD "Using Debugger Command Programs"): statements
separated by ';', where a statement is a command or a control-flow token with blocks in
braces (``.if (c) { ... } .else { ... }``).  The parts of the language live in
commands/flow.py (control flow), commands/alias.py (aliases), commands/script.py (script
files), commands/printf.py and commands/log.py; this module holds what they share: the
statement scanner, the block runner and the error rules.

Errors.  A command that fails (a caret ``Syntax error``, ``Couldn't resolve error at``, any
WinDbg-worded failure) prints its message and ends the rest of the program it is part of --
the rest of the typed line, the rest of a ``$$><`` script -- up to an enclosing
``.catch { }`` (MSD ".catch": "If one of these commands generates an error, the error message
is displayed, all remaining commands within the braces are ignored").
"""
from __future__ import annotations

import traceback
from typing import Callable

from .expr import Evaluator, ExprError
from .registry import REGISTRY
from .target import Target

PROMPT = "0: kd> "

# Blocks and scripts inside one another.  WinDbg's limit is not documented; kdsim stops
# well before Python's own recursion limit with a clear message (see run_program).
MAX_NESTING = 100


class CommandError(Exception):
    """A WinDbg-worded failure of one command: ``text`` is printed as is."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


# Control signals of the command language.  They derive from BaseException so that no
# ``except Exception`` on the way (a command's own error handling) can swallow them --
# KeyboardInterrupt is left alone in the same way.

class Abort(BaseException):
    """An error ended the program; its message has been written (``Debugger.last_error``)."""


class Quit(BaseException):
    """``q`` ran: nothing after it runs."""


class Break(BaseException):
    """``.break``: leave the innermost loop."""


class Continue(BaseException):
    """``.continue``: next iteration of the innermost loop."""


class Leave(BaseException):
    """``.leave``: leave the innermost ``.catch`` block."""


# Statements that parse the text after their own name themselves -- control-flow tokens
# (their blocks run past ';'), script files ($< takes the rest of the line), as/aS (the rest
# of the line is the alias).  handler(session, text, start, args_at, base, write) -> end:
# ``text[start:args_at]`` is the name as typed, ``base`` the column of ``text[0]`` for
# carets, and the result is where the statement ends in ``text``.
STATEMENTS: dict[str, Callable] = {}


def statement(name: str):
    def wrap(fn):
        STATEMENTS[name] = fn
        return fn
    return wrap


class Debugger:
    def __init__(self, target: Target, prompt: str = PROMPT, debug: bool = False):
        from . import commands  # noqa: F401  (registers the commands)
        self.target = target
        self.prompt = prompt
        self.debug = debug
        self.pseudo = {f"$t{i}": 0 for i in range(20)}
        self.radix = 16
        self.next_display = {}        # where d* and !d* without a range continue
        self.context_cr3 = None       # the process context (None: the loaded CR3)
        self.implicit_process = None  # the EPROCESS set by .process
        self.quit_requested = False   # q was the last line's last command
        self.aliases: dict[str, str] = {}   # user-named aliases (as, aS, ad, al)
        self.log = None               # the open log file (commands/log.py), or None
        self.last_error = ""          # the message of the last failed command
        self.nesting = 0              # blocks and scripts being run
        self.scripts = 0              # script files being run
        self.loops = 0                # loops around the running statement (.break)
        self.catches = 0              # .catch blocks around it (.leave)

    # -- expressions ----------------------------------------------------------------------

    def evaluator(self) -> Evaluator:
        t = self.target
        return Evaluator(t.pointer_size, self.resolve, self._read_int, self._register,
                         self.radix, self._field_offset, self._type_size)

    def _type_size(self, type_name: str) -> int | None:
        """sizeof(Type) in C++ expressions: a structure, union or enum of the target's
        symbols, ``nt!`` optional, named as dt names it (``_MMPFN``, not ``MMPFN``)."""
        from kdsim.nt.typemodel import TypeLookupError
        try:
            return self.target.types.sizeof(type_name)
        except TypeLookupError:
            return None

    def _field_offset(self, type_name: str, path: str) -> int | None:
        """#FIELD_OFFSET(Type, Field) from the target's types (``nt!`` optional)."""
        name = type_name.split("!")[-1]
        ts = self.target.types
        if ts.has_type(name) and ts.has_field(name, path):
            return ts.offset_of(name, path)
        return None

    def resolve(self, name: str) -> int | None:
        """A symbol's address: ``module!symbol``, a bare symbol of nt, or a module name
        (its base).  Module bases come from PsLoadedModuleList, read from memory."""
        module, bang, symbol = name.rpartition("!")
        bases = self.modules()
        if not bang and name.lower() in bases:
            return bases[name.lower()][0]
        module = module.lower() or "nt"
        if module not in bases:
            return None
        table = {k.lower(): v for k, v in self.target.symbols(module).items()}
        rva = table.get(symbol.lower())
        return None if rva is None else bases[module][0] + rva

    def modules(self) -> dict[str, tuple[int, int]]:
        """Loaded modules by debugger name -> (base, size): the kernel's, walking
        PsLoadedModuleList in guest memory (the kernel image is always "nt"), then the
        implicit process's user modules (its PEB.Ldr list)."""
        t, ts = self.target, self.target.types
        head = t.kernel_base + t.symbols("nt")["PsLoadedModuleList"]
        ptr = t.pointer_size
        out: dict[str, tuple[int, int]] = {}
        cur = self._read_int(head, ptr)
        f_base = ts.field("_LDR_DATA_TABLE_ENTRY", "DllBase")
        f_size = ts.field("_LDR_DATA_TABLE_ENTRY", "SizeOfImage")
        f_len = ts.field("_LDR_DATA_TABLE_ENTRY", "BaseDllName.Length")
        f_buf = ts.field("_LDR_DATA_TABLE_ENTRY", "BaseDllName.Buffer")
        first = True
        while cur is not None and cur != head and len(out) < 1024:
            entry = _Mem(self)
            base, size = f_base.read(entry, cur), f_size.read(entry, cur)
            raw = t.read_virtual(f_buf.read(entry, cur), f_len.read(entry, cur)).data
            name = raw.decode("utf-16-le", "replace").rsplit(".", 1)[0].lower()
            out["nt" if first else name] = (base, size)
            first = False
            cur = self._read_int(cur, ptr)
        from .commands.symbols import user_modules
        for m in user_modules(self):
            out.setdefault(m.key, (m.base, m.size))
        return out

    def _read_int(self, addr: int, size: int) -> int | None:
        """An integer at ``addr`` in the implicit process's address space (poi(), dwo(),
        the list walks): user addresses and page tables are that process's."""
        r = self.target.read_virtual(addr, size, cr3=self.context_cr3)
        return int.from_bytes(r.data, "little") if r.complete else None

    def _register(self, name: str) -> int | None:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in ("$proc", "$peb"):
            from .commands.process import current_process
            proc = self.implicit_process or current_process(self)
            if name == "$proc":
                return proc
            f = self.target.types.field("_EPROCESS", "Peb")     # the process's PEB pointer
            return self._read_int(proc + f.offset, f.size)
        if name in ("cr0", "cr2", "cr3", "cr4", "efer"):
            return self.target.control_registers()[name]
        regs = self.target.registers()
        alias = {"$ip": "ip", "$csp": "sp", "eip": "ip", "esp": "sp", "ebp": "bp"} \
            if self.target.pointer_size == 4 else \
            {"$ip": "ip", "$csp": "sp", "rip": "ip", "rsp": "sp", "rbp": "bp"}
        if name in alias:
            return regs[alias[name]]
        return {"$ptrsize": self.target.pointer_size, "$pagesize": 0x1000}.get(name)

    # -- running lines --------------------------------------------------------------------

    def execute(self, line: str) -> str:
        """Run one input line (commands separated by ';'); returns what kd prints."""
        out: list[str] = []
        self.run_line(line, out.append)
        return "".join(out)

    def run_line(self, line: str, write, typed: str | None = None) -> None:
        """Run one input line, handing each piece of output to ``write`` as soon as it is
        made: a long dump shows as it goes, and Ctrl-C (KeyboardInterrupt, which passes
        through) stops it after what it printed.

        With a log file open (.logopen) the log gets what the screen shows: the prompt and
        the line as the user typed it (``typed``, when the shell ran something else for
        it, e.g. the repeated command of an empty line), then every piece of output."""
        self.quit_requested = False            # set by q; the shell ends the session
        out = self._tee(write)
        if self.log is not None:
            self.log.write(self.prompt + (line if typed is None else typed) + "\n")
        try:
            self.run_program(line, 0, out)
        except (Abort, Quit, Break, Continue, Leave):   # the last three cannot get here:
            pass                                          # each is checked where raised
        except KeyboardInterrupt:
            if self.log is not None:
                self.log.write("^C\n")         # what the shell prints for it (runner.py)
            raise

    def _tee(self, write):
        def out(piece: str) -> None:
            write(piece)
            if self.log is not None:           # looked up each time: .logopen/.logclose
                self.log.write(piece)
        return out

    def run_program(self, text: str, base: int, write, expand: bool = True) -> None:
        """Run the statements of ``text`` (a line, a block's inside, a condensed script).
        ``expand``: replace aliases first -- "when each block is entered, all aliases within
        the block are evaluated" (MSD "{ } (Block Delimiter)").  Errors raise Abort."""
        if expand:
            from .commands.alias import expand as expand_aliases
            text = expand_aliases(self, text)
        if self.nesting >= MAX_NESTING:
            self.fail(f"Command nesting too deep (the limit is {MAX_NESTING} blocks and "
                      "scripts inside one another)", write)
        self.nesting += 1
        try:
            pos = skip_separators(text, 0)
            while pos < len(text):
                pos = skip_separators(text, self._statement(text, pos, base, write))
        finally:
            self.nesting -= 1

    def _statement(self, text: str, pos: int, base: int, write) -> int:
        if text[pos] in "{}":                  # a block needs a token in front (MSD)
            self.syntax(base + pos, text[pos:statement_end(text, pos)].strip(), write)
        cmd, length = REGISTRY.match(text[pos:])
        if cmd is not None and cmd.names[0] in STATEMENTS:
            end = STATEMENTS[cmd.names[0]](self, text, pos, pos + length, base, write)
        else:
            # A '*' comment takes the rest of the line, even past ';' (MSD "*").
            end = len(text) if cmd is not None and cmd.names[0] == "*" \
                else statement_end(text, pos)
            if not self._run(text[pos:end], base + pos, write):
                raise Abort
        if self.quit_requested:
            raise Quit
        return end

    def _run(self, text: str, offset: int, write) -> bool:
        """Run one command; False (after writing the message) when it failed."""
        lead = len(text) - len(text.lstrip())
        body = text.strip()
        cmd, length = REGISTRY.match(body)
        if cmd is None:
            return self._failed(self.caret(offset + lead, "Syntax", body), write)
        args_at = lead + length
        try:
            result = cmd.handler(self, text[args_at:], offset + args_at)
            if isinstance(result, str):
                write(result)
            else:                              # a generator: output a piece at a time
                for piece in result:
                    write(piece)
        except ExprError as e:
            return self._failed(self.expr_message(e, offset + args_at, body), write)
        except CommandError as e:
            return self._failed(e.text, write)
        except Exception as e:             # a bug in kdsim: one line, the session goes on
            if self.debug:
                return self._failed(traceback.format_exc(), write)
            return self._failed(f"kdsim internal error: {type(e).__name__}: {e}\n", write)
        return True

    # -- errors ---------------------------------------------------------------------------

    def _failed(self, message: str, write) -> bool:
        write(message)
        self.last_error = message
        return False

    def fail(self, message: str, write):
        """Print a WinDbg-worded error and end the program (Abort)."""
        self._failed(message if message.endswith("\n") else message + "\n", write)
        raise Abort

    def syntax(self, column: int, command: str, write):
        """The caret line under ``column`` of the line, then Abort."""
        self.fail(self.caret(column, "Syntax", command), write)

    def expr_message(self, e: ExprError, column: int, command: str) -> str:
        """An evaluator error: the caret line for a syntax error at ``column + e.pos``,
        the one-line message for the others."""
        if e.kind == "syntax":
            return self.caret(column + e.pos, "Syntax", command)
        return e.message + "\n"

    def caret(self, column: int, kind: str, command: str) -> str:
        return " " * (len(self.prompt) + column) + f"^ {kind} error in '{command}'\n"

    def expression(self, args: str, offset: int) -> int:
        """Evaluate the whole argument text as one expression (positions relative to it)."""
        return self.evaluator().evaluate(args)


# -- scanning command text -----------------------------------------------------------------
#
# Quotes: ';' and braces inside "..." are text.  Inside a quoted string a backslash escapes
# the next character (.printf "a \"b\" c"), except in @"..." strings, which are literal
# (MSD ".printf"; a raw string keeps c:\dir\ as it is).

def _quote_end(text: str, i: int) -> int:
    """The index after the string that starts with the quote at ``i``."""
    raw = i > 0 and text[i - 1] == "@"
    n = len(text)
    i += 1
    while i < n:
        c = text[i]
        if c == "\\" and not raw:
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    return n


def statement_end(text: str, pos: int) -> int:
    """Where the command starting at ``pos`` ends: the next ';' outside quotes."""
    i, n = pos, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _quote_end(text, i)
            continue
        if c == ";":
            return i
        i += 1
    return n


def skip_separators(text: str, pos: int) -> int:
    """Past white space and ';' (empty commands do nothing)."""
    n = len(text)
    while pos < n and (text[pos] == ";" or text[pos].isspace()):
        pos += 1
    return pos


def closing(text: str, pos: int) -> int:
    """The index of the bracket that closes the one at ``pos`` ('{' or '('), skipping
    quoted strings; -1 when there is none."""
    opener = text[pos]
    closer = "}" if opener == "{" else ")"
    depth, i, n = 0, pos, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _quote_end(text, i)
            continue
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def split_commands(line: str):
    """``(offset, text)`` of each ';'-separated command of a line without blocks (quotes
    kept together; a '*' comment swallows the rest of the line)."""
    start = 0
    while True:
        if line[start:].lstrip().startswith("*"):
            yield start, line[start:]
            return
        end = statement_end(line, start)
        yield start, line[start:end]
        if end >= len(line):
            return
        start = end + 1


class _Mem:
    """The target's virtual memory as the type layer's memory interface."""

    def __init__(self, session):
        self.s = session

    def read(self, addr: int, n: int) -> bytes:
        r = self.s.target.read_virtual(addr, n, cr3=self.s.context_cr3)
        if not r.complete:
            raise ExprError("memory", 0, "")
        return r.data
