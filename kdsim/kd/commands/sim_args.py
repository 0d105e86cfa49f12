"""The !sim extension's arguments: words, keywords, quoted strings, PAGE_* protections,
MASM expressions, and processes named by image name, process ID or EPROCESS address
(found by walking PsActiveProcessHead in guest memory, as !process does).  Also the
wording helpers its commands share."""
from __future__ import annotations

import re

from ...nt import protect as pr
from ..expr import ExprError
from ..session import CommandError
from .process import process_list

PROTECTION = re.compile(r"PAGE_\w+(?:\s*\|\s*PAGE_\w+)*", re.IGNORECASE)
BAD_NAME = re.compile(r'[\\/:*?"<>|\s]|[^\x21-\x7e]')
BAD_SECTION = re.compile(r'[/*?"<>|\s]|[^\x21-\x7e]')    # a file path may have \ and :


def machine(session):
    """The handle on the machine's memory manager (kdsim.simulate.Simulator)."""
    sim = getattr(session, "sim", None)
    if sim is None:
        raise CommandError("kdsim: !sim drives an emulated machine; this target has none "
                           "(a dump cannot be driven)\n")
    return sim


def call(sim, fn, *args):
    """Run one operation; a request the machine refuses becomes a one-line error."""
    try:
        return fn(*args)
    except sim.Error as e:
        raise CommandError(f"kdsim: {e}\n") from None


def status(sim, value: int) -> str:
    return f"{sim.status_name(value)} (0x{value & 0xFFFFFFFF:08X})"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def faults(sim, kinds: dict) -> str:
    """The faults an access resolved, in the fault handler's order of kinds."""
    if not kinds:
        return "no page faults"
    order = list(sim.RESOLVED_KINDS) + sorted(k for k in kinds if k not in sim.RESOLVED_KINDS)
    return "page faults: " + ", ".join(f"{k} {kinds[k]}" for k in order if k in kinds)


def protect_name(value: int) -> str:
    return pr.win32_protect_name(value).replace(" | ", "|")


def check_file_name(name: str, what: str) -> None:
    stem = name.rsplit(".", 1)[0]
    if BAD_NAME.search(name) or not stem:
        raise CommandError(f"kdsim: '{name}' is not a file name for {what}\n")


class Process:
    def __init__(self, ep: int, pid: int, name: str):
        self.ep, self.pid, self.name = ep, pid, name


def processes(session) -> list[Process]:
    """Every process on PsActiveProcessHead, read from guest memory."""
    t, ts = session.target, session.target.types
    f_pid = ts.field("_EPROCESS", "UniqueProcessId")
    f_name = ts.field("_EPROCESS", "ImageFileName")
    out = []
    for ep in process_list(session):
        pid = session._read_int(ep + f_pid.offset, f_pid.size)
        raw = t.read_virtual(ep + f_name.offset, f_name.size).data
        name = raw.split(b"\0")[0].decode("ascii", "replace")
        out.append(Process(ep, pid if pid is not None else -1, name))
    return out


class Args:
    """The arguments of one !sim command, read left to right: words, keywords, quoted
    strings, protections and MASM expressions (positions relative to ``text``, so a bad
    expression gets the usual caret)."""

    def __init__(self, session, syntax: str, text: str):
        self.s, self.syntax, self.text, self.i = session, syntax, text, 0
        self.mask = (1 << 8 * session.target.pointer_size) - 1

    def usage(self) -> CommandError:
        return CommandError(f"Usage: {self.syntax}\n")

    def _skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t":
            self.i += 1

    def done(self) -> bool:
        self._skip()
        return self.i >= len(self.text)

    def peek(self) -> str:
        self._skip()
        j = self.i
        while j < len(self.text) and self.text[j] not in " \t":
            j += 1
        return self.text[self.i:j]

    def word(self) -> str:
        w = self.peek()
        if not w:
            raise self.usage()
        self.i += len(w)
        return w

    def keyword(self, *options: str) -> str | None:
        w = self.peek().lower()
        if w in options:
            self.i += len(w)
            return w
        return None

    def number_and_keyword(self, *options: str) -> tuple[int | None, str | None]:
        """The rest of the arguments: at most one number and one of ``options``, in
        either order (``touch P A 2000 w``, ``touch P A w``)."""
        number, word = None, None
        while not self.done():
            at = self.i
            kw = self.keyword(*options)
            if kw and word is None:
                word = kw
                continue
            if kw or word is not None or number is not None:
                raise ExprError("syntax", at)
            number = self.number()
        return number, word

    def number(self) -> int:
        if self.done():
            raise self.usage()
        value, self.i = self.s.evaluator().parse(self.text, self.i)
        return value & self.mask

    def protection(self) -> int | None:
        """A PAGE_* name or names joined with '|' at this point, or None."""
        self._skip()
        m = PROTECTION.match(self.text, self.i)
        if not m or (m.end() < len(self.text) and self.text[m.end()] not in " \t"):
            return None
        value = 0
        for part in re.split(r"\s*\|\s*", m.group(0)):
            bit = getattr(pr, part.upper(), None)
            if not isinstance(bit, int) or not part.upper().startswith("PAGE_"):
                raise CommandError(f"kdsim: unknown protection '{part}'\n")
            value |= bit
        self.i = m.end()
        return value

    def string(self) -> str | None:
        """A quoted string here (its text, as it is), or None."""
        self._skip()
        if self.i >= len(self.text) or self.text[self.i] != '"':
            return None
        close = self.text.find('"', self.i + 1)
        if close < 0:
            raise ExprError("syntax", len(self.text.rstrip()))
        value = self.text[self.i + 1:close]
        self.i = close + 1
        return value

    def end(self) -> None:
        if not self.done():
            raise ExprError("syntax", self.i)

    def process(self) -> Process:
        """Image name, process ID or EPROCESS address."""
        if self.done():
            raise self.usage()
        word = self.peek()
        procs = processes(self.s)
        key = word.lower()
        width = self.s.target.types.field("_EPROCESS", "ImageFileName").size - 1
        named = [p for p in procs if p.name.lower() in (key, key[:width], (key + ".exe")[:width])]
        if named:
            if len(named) > 1:
                cids = ", ".join(f"{p.pid:04x}" for p in named)
                raise CommandError(f"kdsim: {len(named)} processes run {named[0].name} "
                                   f"(Cid {cids}); name one by Cid or EPROCESS address\n")
            self.i += len(word)
            return named[0]
        try:
            value = self.number()
        except ExprError as e:
            if e.kind == "resolve":
                raise CommandError(f"kdsim: no process is named '{word}' "
                                   "(!process 0 0 lists them)\n") from None
            raise
        for p in procs:
            if value in (p.ep & self.mask, p.pid):
                return p
        raise CommandError(f"kdsim: {value:x} is not a process ID or an EPROCESS address "
                           "(!process 0 0 lists them)\n")
