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
        self.next_display = {}        # where d* and !d* without a range continue
        self.context_cr3 = None       # the process context (None: the loaded CR3)
        self.implicit_process = None  # the EPROCESS set by .process
        self.quit_requested = False   # q was the last line's last command

    # -- expressions ----------------------------------------------------------------------

    def evaluator(self) -> Evaluator:
        t = self.target
        return Evaluator(t.pointer_size, self.resolve, self._read_int, self._register,
                         self.radix)

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
        """Loaded kernel modules by debugger name -> (base, size), walking
        PsLoadedModuleList in guest memory (the kernel image is always "nt")."""
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
        return out

    def _read_int(self, addr: int, size: int) -> int | None:
        r = self.target.read_virtual(addr, size)
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
        return {"$ptrsize": self.target.pointer_size, "$pagesize": 0x1000}.get(name)

    # -- running commands -----------------------------------------------------------------

    def execute(self, line: str) -> str:
        """Run one input line (commands separated by ';'); returns what kd prints."""
        out: list[str] = []
        self.run_line(line, out.append)
        return "".join(out)

    def run_line(self, line: str, write) -> None:
        """Run one input line, handing each piece of output to ``write`` as soon as it is
        made: a long dump shows as it goes, and Ctrl-C (KeyboardInterrupt, which passes
        through) stops it after what it printed."""
        self.quit_requested = False            # set by q; the shell ends the session
        for offset, text in split_commands(line):
            if self.quit_requested:
                break                          # nothing after q on its line runs
            if text.strip():
                self._run(text, offset, write)

    def _run(self, text: str, offset: int, write) -> None:
        lead = len(text) - len(text.lstrip())
        body = text.strip()
        cmd, length = REGISTRY.match(body)
        if cmd is None:
            write(self.caret(offset + lead, "Syntax", body))
            return
        args_at = lead + length
        try:
            result = cmd.handler(self, text[args_at:], offset + args_at)
            if isinstance(result, str):
                write(result)
            else:                              # a generator: output a piece at a time
                for piece in result:
                    write(piece)
        except ExprError as e:
            if e.kind == "syntax":
                write(self.caret(offset + args_at + e.pos, "Syntax", body))
            else:
                write(e.message + "\n")
        except CommandError as e:
            write(e.text)
        except Exception as e:             # a bug in kdsim: one line, the session goes on
            if self.debug:
                write(traceback.format_exc())
            else:
                write(f"kdsim internal error: {type(e).__name__}: {e}\n")

    def caret(self, column: int, kind: str, command: str) -> str:
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


class _Mem:
    """The target's virtual memory as the type layer's memory interface."""

    def __init__(self, session):
        self.s = session

    def read(self, addr: int, n: int) -> bytes:
        r = self.s.target.read_virtual(addr, n, cr3=self.s.context_cr3)
        if not r.complete:
            raise ExprError("memory", 0, "")
        return r.data
