"""Tab completion at the ``kd>`` prompt, in two stages.

Stage one, :func:`suggest`, is a pure function of the text before the cursor: it says what
kind of thing is expected there (a command name, a symbol, a type, a process image name, a
field, a file path, a ``!sim`` sub-command or argument) and which word the completion
replaces.  Stage two, :class:`KdCompleter`, maps each kind to candidates, read through the
debugger (its command table, its target's symbols and types, the process list in guest
memory) and never through the memory manager.  Matching ignores case, as WinDbg does."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Union

from prompt_toolkit.completion import Completer, Completion

# -- stage one: what is expected at the cursor --------------------------------------------


@dataclass(frozen=True)
class CommandName:
    word: str                      # the command word typed so far ("!pr", ".", "")


@dataclass(frozen=True)
class Symbol:
    module: Optional[str]          # "nt" for "nt!Mm"; None for a bare name
    word: str


@dataclass(frozen=True)
class TypeName:
    module: Optional[str]
    word: str


@dataclass(frozen=True)
class ProcessName:
    word: str


@dataclass(frozen=True)
class FieldName:
    type: str                      # the type as typed after dt ("nt!_EPROCESS")
    word: str                      # a field path so far ("Vm.Wor")


@dataclass(frozen=True)
class Path:
    word: str                      # the path so far, without an opening quote


@dataclass(frozen=True)
class SimCommand:
    word: str                      # "!sim.al"


@dataclass(frozen=True)
class SimArgument:
    command: str                   # the sub-command without "!sim." ("alloc")
    index: int                     # which argument (0: the first)
    word: str


Suggestion = Union[CommandName, Symbol, TypeName, ProcessName, FieldName, Path,
                   SimCommand, SimArgument]

# Script files: $< and $>< take the rest of the line as the file name (semicolons
# included); $$<, $$>< and $$>a< end at a semicolon, and $$>a< has arguments after the name.
SCRIPT_TOKENS = ("$$>a<", "$$><", "$$<", "$><", "$<")
_COMMAND = re.compile(r"\$\$|\*|\?\??|[!.]?(?:[A-Za-z_][\w.]*)?")
_NO_ARGUMENTS = {".echo", ".cls", "q", "qq", "vertarget", "version", "lm", ".logclose",
                 ".logfile", "$$", "*", "!sim", "al", "ad", ".break", ".continue", ".leave"}
_HELP = {".help", ".hh"}                         # .hh Command, .help !sim: a command name
_LOG_FILE = {".logopen", ".logappend"}
_RANGE = re.compile(r"!?d[a-z]*$|u$")          # d*, !d* and u take a range: Address L<count>
_SYMBOL_TAIL = re.compile(r"[\w!]*$")
_ADDRESS_WORD = re.compile(r"(0[xX])?[0-9a-fA-F`]*[0-9`][0-9a-fA-F`]*$")   # hex with a digit
_FIELD_WORD = re.compile(r"[A-Za-z_][\w.]*$")


def suggest(text_before_cursor: str) -> list[Suggestion]:
    """What may be completed at the end of ``text_before_cursor`` (one input line)."""
    segment, in_quote = _current_command(text_before_cursor)
    stripped = segment.lstrip()
    lower = stripped.lower()
    for token in SCRIPT_TOKENS:
        if lower.startswith(token):
            return _script_file(stripped[len(token):], with_arguments=token == "$$>a<")
    if in_quote:
        return []
    if not any(c.isspace() for c in stripped) and any(
            t.startswith(lower) for t in SCRIPT_TOKENS):
        return [CommandName(stripped)]                   # "$", "$$>", "$$>a"
    name = _COMMAND.match(stripped).group(0)
    if stripped and not name:
        return []                                        # not a command: "(", "12"
    rest = stripped[len(name):]
    if not rest:                                         # still in the command word
        if lower.startswith("!sim."):
            return [SimCommand(name)]
        return [CommandName(name)]
    return _arguments(name.lower(), rest)


def _current_command(text: str) -> tuple[str, bool]:
    """The command the cursor is in (what follows the last ';', '{' or '}' outside quotes
    and aliases) and whether the cursor is inside a quoted string."""
    start, quote, alias = 0, False, 0
    for i, c in enumerate(text):
        if c == '"':
            quote = not quote
        elif quote:
            continue
        elif not text[start:i].strip() and (c == "*" or text.startswith(("$<", "$><"), i)):
            return text[i:], text.count('"', i) % 2 == 1   # takes the rest of the line
        elif c == "{" and text[i - 1:i] == "$":
            alias += 1                                   # ${name} is an alias, not a block
        elif c == "}" and alias:
            alias -= 1
        elif c in ";{}":
            start = i + 1
    return text[start:], quote


def _tokens(args: str) -> tuple[list[str], str]:
    """The blank-separated words before the cursor and the word at it ("" after a blank).
    Blanks inside parentheses do not split (``dt _MMPFN (x + 5) Flags``)."""
    words, cur, depth = [], "", 0
    for c in args:
        if c.isspace() and depth == 0:
            if cur:
                words.append(cur)
            cur = ""
            continue
        cur += c
        depth += (c == "(") - (c == ")" and depth > 0)
    return words, cur


def _arguments(command: str, args: str) -> list[Suggestion]:
    words, cur = _tokens(args)
    if command in _NO_ARGUMENTS or command.startswith("$$"):
        return []
    if cur.startswith(("-", "/")):
        return []                                        # an option being typed
    if command in _HELP:
        return [CommandName(cur)] if not words else []
    if command in _LOG_FILE:
        return [Path(cur)]
    if command == "dt":
        return _dt(words, cur)
    if command == "!process":
        if not words:
            return _symbol(cur)
        if len(words) == 2 and _is_zero(words[0]):
            return [ProcessName(cur)]                    # !process 0 Flags ImageName
        return []
    if command.startswith("!sim."):
        return [SimArgument(command[5:], len(words), cur)]
    if _RANGE.match(command):
        arguments = [w for w in words if not w.startswith(("-", "/"))]
        if arguments and any(w[:1] in ("l", "L") for w in arguments + [cur]):
            return []                                    # L<count>: a length, not a symbol
    if command == "x" and any(c in cur for c in "*?"):
        return []                                        # a wildcard pattern
    return _symbol(cur)


def _symbol(token: str) -> list[Suggestion]:
    """The symbol being typed at the end of an expression token (``poi(nt!Mm``)."""
    word = _SYMBOL_TAIL.search(token).group(0)
    before = token[:len(token) - len(word)][-1:]
    if before in ("@", "$", "`") or word[:1].isdigit() or word.count("!") > 1:
        return []                                        # a register or a number
    module, bang, _ = word.partition("!")
    return [Symbol(module.lower() if bang else None, word)]


def _dt(words: list[str], cur: str) -> list[Suggestion]:
    """dt [options] [module!]Type [[-y|-n] Field ...] [Address]; also dt Address Type."""
    plain, named = [], False
    for w in words:
        if w.startswith("-") and w[1:2].isalpha() and not named:
            named = any(c in "yYnN" for c in w[1:])      # -y/-n: the next word is a name
        else:
            plain.append(w)
            named = False
    if not plain or (len(plain) == 1 and _ADDRESS_WORD.match(plain[0])):
        return [_type(cur)]
    type_text = plain[1] if _ADDRESS_WORD.match(plain[0]) and len(plain) > 1 else plain[0]
    after = plain[plain.index(type_text) + 1:]
    have_address = plain[0] != type_text or any(not _FIELD_WORD.match(w) or "!" in w
                                                for w in after)
    field = [FieldName(type_text, cur)] if not cur or _FIELD_WORD.match(cur) else []
    if named or have_address or "." in cur:
        return field
    return field + _symbol(cur)


def _type(word: str) -> TypeName:
    module, bang, _ = word.rpartition("!")
    return TypeName(module.lower() if bang else None, word)


def _is_zero(word: str) -> bool:
    return re.fullmatch(r"(0[xXnN])?0+", word) is not None


def _script_file(rest: str, with_arguments: bool) -> list[Suggestion]:
    """The file name after a script token; may contain blanks unless it has arguments
    after it ($$>a<), where a name with blanks is quoted."""
    text = rest.lstrip()
    if text.startswith('"'):
        return [] if '"' in text[1:] else [Path(text[1:])]
    if with_arguments and any(c.isspace() for c in text):
        return []                                        # an argument of the script
    return [Path(text)]


# -- stage two: candidates ----------------------------------------------------------------

# Shown when the command table has no row for a script token yet (the script commands are
# the shell's; the descriptions say what WinDbg's do).
_SCRIPT_SUMMARIES = {
    "$<": "run a script file (the rest of the line is the file name)",
    "$><": "run a script file as one command block (the rest of the line is the name)",
    "$$<": "run a script file",
    "$$><": "run a script file as one command block",
    "$$>a<": "run a script file with arguments ($arg1 ...)",
}


def sim_subcommands() -> dict[str, tuple[str, str]]:
    """``!sim`` sub-commands (name -> (syntax, summary)) from the extension's own table;
    nothing when the extension is not there."""
    try:
        from kdsim.kd.commands import sim
    except Exception:
        return {}
    table = getattr(sim, "SUBCOMMANDS", {})
    return table if isinstance(table, dict) else {}


def sim_programs() -> list[str]:
    """The programs ``!sim.run`` can start, from the extension; none without it."""
    try:
        from kdsim.kd.commands import sim
        return list(sim.PROGRAMS())
    except Exception:
        return []


def process_names(debugger) -> list[str]:
    """The image names of the processes on PsActiveProcessHead, read from guest memory
    (EPROCESS.ImageFileName, as !process reads it), sorted, each once."""
    from kdsim.kd.commands.process import process_list
    t = debugger.target
    f = t.types.field("_EPROCESS", "ImageFileName")
    names = set()
    for ep in process_list(debugger):
        r = t.read_virtual(ep + f.offset, f.size)
        if r.complete:
            name = r.data.split(b"\0")[0].decode("ascii", "replace")
            if name:
                names.add(name)
    return sorted(names, key=lambda n: (n.lower(), n))


def _starts(name: str, prefix: str) -> bool:
    return name.lower().startswith(prefix.lower())


def _sorted(items):
    return sorted(items, key=lambda item: (item[0].lower(), item[0]))


class KdCompleter(Completer):
    """Completions for one debugger.  Symbol and type tables are read once (a symbol file
    does not change); processes and modules are read from memory each time."""

    def __init__(self, debugger):
        self.debugger = debugger
        self._symbols: dict[str, list[str]] = {}
        self._types: dict[str, list[str]] = {}
        self._table = {CommandName: self.commands, Symbol: self.symbols,
                       TypeName: self.types, ProcessName: self.processes,
                       FieldName: self.fields, Path: self.paths,
                       SimCommand: self.sim_commands, SimArgument: self.sim_arguments}

    def get_completions(self, document, complete_event):
        seen = set()
        for s in suggest(document.text_before_cursor):
            try:
                found = self.candidates(s)
            except Exception:        # unreadable memory, a bad name: no candidates
                continue
            for text, meta in found:
                if text not in seen:
                    seen.add(text)
                    yield Completion(text, -len(s.word), display_meta=meta)

    def candidates(self, s: Suggestion) -> list[tuple[str, str]]:
        """(replacement text, one-line description) for one suggestion."""
        return self._table[type(s)](s)

    # -- one function per kind ------------------------------------------------------------

    def commands(self, s: CommandName) -> list[tuple[str, str]]:
        from kdsim.kd.registry import REGISTRY
        rows = {name: cmd.summary for cmd in REGISTRY.commands for name in cmd.names}
        for name, summary in _SCRIPT_SUMMARIES.items():
            rows.setdefault(name, summary)
        for name, (_syntax, summary) in sim_subcommands().items():
            rows.setdefault("!sim." + name, summary)
        return _sorted((n, m) for n, m in rows.items() if _starts(n, s.word))

    def _module_symbols(self, module: str) -> list[str]:
        if module not in self._symbols:
            self._symbols[module] = sorted(self.debugger.target.symbols(module))
        return self._symbols[module]

    def symbols(self, s: Symbol) -> list[tuple[str, str]]:
        if s.module is not None:
            prefix = s.word.partition("!")[2]
            return _sorted((f"{s.module}!{n}", "symbol")
                           for n in self._module_symbols(s.module) if _starts(n, prefix))
        out = []
        for module in self.debugger.modules():
            if _starts(module, s.word):
                out.append((module + "!", "module"))
            out += [(f"{module}!{n}", "symbol") for n in self._module_symbols(module)
                    if _starts(n, s.word)]
        return _sorted(out)

    def _module_types(self, module: str) -> list[str]:
        if module not in self._types:
            ts = self.debugger.target.types
            names = ts.type_names(module)
            if module == "nt":
                names = names + ts.enum_names()          # dt shows enums too
            self._types[module] = sorted(set(names))
        return self._types[module]

    def types(self, s: TypeName) -> list[tuple[str, str]]:
        if s.module is not None:
            prefix = s.word.rpartition("!")[2]
            return _sorted((f"{s.module}!{n}", "type")
                           for n in self._module_types(s.module) if _starts(n, prefix))
        out = [(m + "!", "module") for m in self.debugger.modules()
               if _starts(m, s.word) and self._module_types(m)]
        return _sorted(out + [(n, "type") for n in self._module_types("nt")
                              if _starts(n, s.word)])

    def processes(self, s: ProcessName) -> list[tuple[str, str]]:
        return [(n, "process") for n in process_names(self.debugger) if _starts(n, s.word)]

    def fields(self, s: FieldName) -> list[tuple[str, str]]:
        ts = self.debugger.target.types
        module, bang, bare = s.type.rpartition("!")
        names = {n.lower(): n for n in self._module_types(module.lower() if bang else "nt")}
        type_name = names.get(bare.lower())
        *parents, prefix = s.word.split(".")
        path = ""
        for part in parents:                         # Vm.WorkingSetSize: into Vm's type
            members = {f.path.lower(): f for f in ts.fields(type_name)}
            f = members.get(part.lower())
            if f is None or f.kind != "struct":
                return []
            type_name, path = f.ref, path + f.path + "."
        return [(path + f.path, "field") for f in ts.fields(type_name)
                if _starts(f.path, prefix)]

    def paths(self, s: Path) -> list[tuple[str, str]]:
        head, sep, base = s.word.rpartition("/")
        if not sep and s.word.startswith("~") and os.path.isdir(os.path.expanduser(s.word)):
            return [(s.word + "/", "directory")]
        directory = os.path.expanduser(head + sep) if sep else "."
        out = []
        for entry in os.listdir(directory):
            if _starts(entry, base) and (base.startswith(".") or not entry.startswith(".")):
                is_dir = os.path.isdir(os.path.join(directory, entry))
                out.append((head + sep + entry + ("/" if is_dir else ""),
                            "directory" if is_dir else "file"))
        return _sorted(out)

    def sim_commands(self, s: SimCommand) -> list[tuple[str, str]]:
        return _sorted(("!sim." + name, summary)
                       for name, (_syntax, summary) in sim_subcommands().items()
                       if _starts("!sim." + name, s.word))

    def sim_arguments(self, s: SimArgument) -> list[tuple[str, str]]:
        """From the sub-command's syntax: a Process argument takes image names, a
        Protection one PAGE_* names, ``[a|b]`` the words a and b.  Optional arguments may be
        left out, so an argument at position p may be typed at any index up to p."""
        row = {k.lower(): v for k, v in sim_subcommands().items()}.get(s.command.lower())
        if row is None:
            return []
        out = []
        for position, kind, words in _syntax_arguments(row[0]):
            if kind == "process" and position == s.index:
                out += self.processes(ProcessName(s.word))
            elif kind == "protection" and position >= s.index:
                from kdsim.nt.protect import PAGE_NAMES
                head, bar, last = s.word.rpartition("|")     # PAGE_READWRITE|PAGE_GUARD
                out += [(head.upper() + bar + n, "protection") for _v, n in sorted(PAGE_NAMES.items())
                        if _starts(n, last)]
            elif kind == "words" and position >= s.index:
                out += [(w, "keyword") for w in words if _starts(w, s.word)]
            elif kind == "program" and position == s.index:
                out += [(n, "program") for n in sim_programs() if _starts(n, s.word)]
        return out


def _syntax_arguments(syntax: str):
    """(position, kind, words) of each argument in a syntax line such as ``!sim.alloc
    <process> <size> [address] [reserve|commit] [protection]``."""
    parts = syntax.split()
    if parts and parts[0].lower().startswith("!sim"):
        parts = parts[1:]
    position = 0
    for part in parts:
        if part.strip(".…") == "":
            continue                                 # "..." repeats the one before
        text = part.strip("[]")
        if text == "|":
            continue                                 # "[Pages | Address]": one argument
        lower = text.lower()
        if "process" in lower:
            yield position, "process", ()
        elif "protect" in lower:
            yield position, "protection", ()
        elif lower == "program":
            yield position, "program", ()
        elif "|" in text and not text.startswith("<"):
            words = tuple(w for w in text.split("|") if re.fullmatch(r"[a-z][\w-]*", w))
            if words:
                yield position, "words", words
        position += 1
