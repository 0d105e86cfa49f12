"""A debugger session: splits a command line, dispatches each command, words errors the
way WinDbg does, keeps the session state (pseudo-registers, radix).  It reads the target
only through the Target interface."""
from __future__ import annotations

import traceback

from .expr import Evaluator, ExprError
from .registry import REGISTRY
from .target import Target

PROMPT = "0: kd> "


class CommandError(Exception):
    """A WinDbg-worded failure of one command: ``text`` is printed as is."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class Debugger:
    def __init__(self, target: Target, prompt: str = PROMPT, debug: bool = False):
        from . import commands  # noqa: F401  (registers the commands)
        self.target = target
        self.prompt = prompt
        self.debug = debug
        self.pseudo = {f"$t{i}": 0 for i in range(20)}
        self.radix = 16

    # -- expressions ----------------------------------------------------------------------

    def evaluator(self) -> Evaluator:
        t = self.target
        return Evaluator(t.pointer_size, self.resolve, self._read_int, self._register,
                         self.radix)

    def resolve(self, name: str) -> int | None:
        module, _, symbol = name.rpartition("!")
        module = module.lower() or "nt"
        if module not in ("nt", "nt!"):
            return None
        table = {k.lower(): v for k, v in self.target.symbols("nt").items()}
        rva = table.get(symbol.lower())
        return None if rva is None else self.target.kernel_base + rva

    def _read_int(self, addr: int, size: int) -> int | None:
        r = self.target.read_virtual(addr, size)
        return int.from_bytes(r.data, "little") if r.complete else None

    def _register(self, name: str) -> int | None:
        if name in self.pseudo:
            return self.pseudo[name]
        return {"cr3": self.target.cr3, "$ptrsize": self.target.pointer_size,
                "$pagesize": 0x1000}.get(name)

    # -- running commands -----------------------------------------------------------------

    def execute(self, line: str) -> str:
        """Run one input line (commands separated by ';'); returns what kd prints."""
        out = []
        for offset, text in split_commands(line):
            if not text.strip():
                continue
            out.append(self._run(text, offset))
        return "".join(out)

    def _run(self, text: str, offset: int) -> str:
        lead = len(text) - len(text.lstrip())
        body = text.strip()
        cmd, length = REGISTRY.match(body)
        if cmd is None:
            return self._caret(offset + lead, "Syntax", body)
        args_at = lead + length
        try:
            return cmd.handler(self, text[args_at:], offset + args_at)
        except ExprError as e:
            if e.kind == "syntax":
                return self._caret(offset + args_at + e.pos, "Syntax", body)
            return e.message + "\n"
        except CommandError as e:
            return e.text
        except Exception as e:             # a bug in kdsim: one line, the session goes on
            if self.debug:
                return traceback.format_exc()
            return f"kdsim internal error: {type(e).__name__}: {e}\n"

    def _caret(self, column: int, kind: str, command: str) -> str:
        return " " * (len(self.prompt) + column) + f"^ {kind} error in '{command}'\n"

    def expression(self, args: str, offset: int) -> int:
        """Evaluate the whole argument text as one expression (positions relative to it)."""
        return self.evaluator().evaluate(args)


def split_commands(line: str):
    """``(offset, text)`` of each command on a line: ';' separates them, except inside
    quotes; ``$$`` comments run to the next ';', ``*`` comments to the end of the line."""
    start, i, quote = 0, 0, False
    n = len(line)
    while i < n:
        c = line[i]
        if c == '"':
            quote = not quote
        elif not quote and c == "*" and not line[start:i].strip():
            yield start, line[start:]          # a '*' comment swallows the rest
            return
        elif not quote and c == ";":
            yield start, line[start:i]
            start = i + 1
        i += 1
    yield start, line[start:]
