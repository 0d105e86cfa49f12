"""Display and enter memory (windbg-formats.md §2-§4): d, db, dw, dd, dq, dc, dp, da, du,
dds, dps, dqs and their physical !d* twins; e, eb, ew, ed, eq, ep, ea, eu, eza, ezu and the
physical !eb, !ed.  One ``display`` serves the cell family (each row of FORMATS is a unit
size, cells per line and ASCII column), one ``display_string`` the strings, one
``display_symbols`` the value-and-symbol family; ``enter`` and ``enter_string`` the writes."""
from __future__ import annotations

import re

from ..expr import ExprError
from ..fmt import hex64, pointer
from ..registry import REGISTRY, Command
from ..session import CommandError
from .symbols import symbolize

DEFAULT_BYTES = 0x80                 # every d* shows 128 bytes by default (8 lines)
RANGE_LIMIT = 256 << 20              # larger ranges need "L?" (Range error otherwise)

# name: (unit bytes or "ptr", cells per line or None for "16 bytes' worth", ASCII column)
FORMATS = {"db": (1, 16, True), "dw": (2, 8, False), "dd": (4, 4, False),
           "dq": (8, 2, False), "dc": (4, 4, True), "dp": ("ptr", None, False)}


def parse_range(session, args: str, unit: int, default_count: int):
    """``Address``, ``Address End``, ``Address L Count``, ``Address L? Count``: returns
    (start, count in units) or None when there is no range.  Positions in errors are
    relative to ``args``."""
    text = args.rstrip()
    i = len(text) - len(text.lstrip())
    if i >= len(text):
        return None
    ev = session.evaluator()
    start, i = ev.parse(text, i)
    while i < len(text) and text[i] in " \t":
        i += 1
    if i >= len(text):
        return start, default_count
    if text[i] in "lL":
        j = i + 1
        unlimited = j < len(text) and text[j] == "?"
        if unlimited:
            j += 1
        count, end = ev.parse(text, j)
        if text[end:].strip():
            raise ExprError("syntax", end + len(text[end:]) - len(text[end:].lstrip()))
        if not unlimited and count * unit > RANGE_LIMIT:
            raise _RangeError(end - 1)
        return start, count
    last, end = ev.parse(text, i)
    if text[end:].strip():
        raise ExprError("syntax", end + len(text[end:]) - len(text[end:].lstrip()))
    if last < start or (last - start + unit) > RANGE_LIMIT:
        raise _RangeError(end - 1)
    return start, (last - start) // unit + 1


class _RangeError(Exception):
    def __init__(self, pos: int):
        super().__init__(pos)
        self.pos = pos


# Physical commands take a caching flag ([c], [uc], [wc]) and -m (read one unit at a time).
# kdsim's memory has no caching attributes and no bus widths, so both are accepted and
# change nothing.
_PHYSICAL_OPTION = re.compile(r"[ \t]*(\[(?:c|uc|wc)\]|-m(?=[ \t]|$))", re.IGNORECASE)


def _physical_options(args: str) -> str:
    """``args`` with the leading physical options blanked out (positions stay the same)."""
    i = 0
    while True:
        m = _PHYSICAL_OPTION.match(args, i)
        if not m:
            return args
        args = args[:m.start(1)] + " " * len(m.group(1)) + args[m.end(1):]
        i = m.end()


# "/c Width" before the range: the number of cells a line (MSD-d "Options").  The width is
# an expression in the current radix, as the range is (kdsim's reading: "/c 1" and
# "/c 20" look the same in any radix in the transcripts that use it).
_COLUMNS = re.compile(r"[ \t]*(/c)(?=[ \t0-9(@$])", re.IGNORECASE)


def _columns(session, args: str) -> tuple[str, int | None]:
    """``args`` with a leading ``/c Width`` blanked out (positions stay the same) and the
    width, or None without the option.  A width of 0 is a syntax error."""
    m = _COLUMNS.match(args)
    if not m:
        return args, None
    width, end = session.evaluator().parse(args, m.end(1))
    if width == 0 or width > RANGE_LIMIT:
        raise ExprError("syntax", end - 1)
    return " " * end + args[end:], width


def _physical_address(session, value: int) -> int:
    """A physical address typed on a 32-bit target: the evaluator sign-extends 32-bit
    numbers as addresses (80000000 -> ffffffff`80000000), which a physical address is not."""
    if session.target.pointer_size == 4 and value >> 32 == 0xFFFFFFFF and value & 0x80000000:
        return value & 0xFFFFFFFF
    return value & ((1 << 64) - 1)


def _range(session, typed: str, args: str, offset: int, unit: int, default: int,
           physical: bool):
    """(start, count, continuation key, address mask) of a display command; without a
    range it continues where the last display of its kind (virtual or physical) ended."""
    t = session.target
    try:
        rng = parse_range(session, _physical_options(args) if physical else args, unit,
                          default)
    except _RangeError as e:
        raise CommandError(session.caret(offset + e.pos, "Range", typed + args.rstrip()))
    key = "physical" if physical else "virtual"
    mask = (1 << 64) - 1 if physical or t.pointer_size == 8 else 0xFFFFFFFF
    if rng is None:
        return session.next_display.get(key, 0), default, key, mask
    start, count = rng
    start = _physical_address(session, start) if physical else start & mask
    return start, count, key, mask


CHUNK_LINES = 1024                   # a long dump is read and printed this many lines at a time


def display(session, name: str, args: str, offset: int, physical: bool = False,
            typed: str | None = None):
    """One d* command (``physical``: its !d* twin, which reads physical memory).  A
    generator: a long dump is read and printed a chunk at a time, so it stops at once on
    Ctrl-C after what it printed so far, and needs no more memory than a chunk."""
    t = session.target
    unit, per_line, ascii_col = FORMATS[name]
    if unit == "ptr":
        unit = t.pointer_size
        per_line = 16 // unit
    if not physical:         # the !d* extensions take no options but their own (MSD-physd)
        args, columns = _columns(session, args)
        per_line = columns or per_line
    typed = typed or ("!" if physical else "") + name
    start, count, key, mask = _range(session, typed, args, offset, unit,
                                     DEFAULT_BYTES // unit, physical)
    if not physical:
        session.last_display = name
    step = per_line * CHUNK_LINES
    for first in range(0, count, step):
        n = min(step, count - first)
        at = (start + first * unit) & mask
        if physical:
            data = t.read_physical(at, n * unit)
            good = data.readable_prefix // (per_line * unit) * per_line
            if good < n and not data.complete:
                yield _cell_lines(t, name, data, at, good, unit, per_line, ascii_col, physical)
                yield f"Physical memory read at {at + data.readable_prefix:x} failed\n"
                session.next_display[key] = (start + count * unit) & mask
                return
        else:
            data = t.read_virtual(at, n * unit, cr3=session.context_cr3)
        yield _cell_lines(t, name, data, at, n, unit, per_line, ascii_col, physical)
    session.next_display[key] = (start + count * unit) & mask


def _cell_lines(t, name, data, start, count, unit, per_line, ascii_col, physical) -> str:
    """``count`` cells of ``data`` (read at ``start``) as d* lines."""
    lines = []
    for first in range(0, count, per_line):
        n = min(per_line, count - first)
        cells = []
        for k in range(first, first + n):
            lo = k * unit
            if all(data.readable[lo:lo + unit]):
                v = int.from_bytes(data.data[lo:lo + unit], "little")
                cells.append(hex64(v) if unit == 8 else f"{v:0{2 * unit}x}")
            else:
                cells.append("????????`????????" if unit == 8 else "?" * (2 * unit))
        if name == "db":
            # The hyphen after every eighth byte that has another after it on the line:
            # after the 8th of the default 16; with "/c N" after the 8th, 16th ... (kdsim's
            # choice; the transcripts show only /c 1, where there is none).
            hexpart = "".join(c + ("-" if k % 8 == 7 else " ")
                              for k, c in enumerate(cells[:-1])) + cells[-1]
            width = per_line * 3 - 1
        else:
            hexpart = " ".join(cells)
            width = per_line * (2 * unit + (1 if unit == 8 else 0) + 1) - 1
        if physical:      # "#" and the address right-justified in 8 columns, one space
            line = f"#{start + first * unit:8x} {hexpart}"
        else:
            line = f"{pointer(start + first * unit, t.pointer_size)}  {hexpart}"
        if ascii_col:
            raw = data.data[first * unit:(first + n) * unit]
            ok = data.readable[first * unit:(first + n) * unit]
            chars = "".join((chr(b) if 0x20 <= b <= 0x7E else ".") if r else "?"
                            for b, r in zip(raw, ok))
            gap = " " if physical else "  "
            line = f"{line:<{len(line) + width - len(hexpart)}}{gap}{chars}"
        lines.append(line + "\n")
    return "".join(lines)


def _register(name: str, unit_text: str) -> None:
    def handler(session, args, offset, _name=name):
        return display(session, _name, args, offset)

    def physical(session, args, offset, _name=name):
        return display(session, _name, args, offset, physical=True)
    REGISTRY.add(Command((name,), f"{name} [/c Width] [Range]", f"display memory as {unit_text}", handler))
    REGISTRY.add(Command(("!" + name,), f"!{name} [PhysicalAddress] [L Count]",
                         f"display physical memory as {unit_text}", physical))


for _name, _what in (("db", "bytes and ASCII"), ("dw", "words"), ("dd", "double words"),
                     ("dq", "quad words"), ("dc", "double words and ASCII"),
                     ("dp", "pointer-sized values")):
    _register(_name, _what)


# -- da, du, !du: strings ------------------------------------------------------------------

# Characters shown without a range.  The documentation says only "until the first null";
# kdsim stops after 128 characters (the d* family's default count of 0x80 units), an
# inferred limit.  !du's default of 16 characters is documented.
STRING_DEFAULT = 0x80
PHYSICAL_STRING_DEFAULT = 16
STRING_LINE = 32        # characters per line, as every modern da/du transcript shows


def _printable(code: int) -> str:
    # Non-printable characters show as '.' (documented).  kdsim also prints '.' for every
    # character above 0x7e, so transcripts stay ASCII whatever the host's code page.
    return chr(code) if 0x20 <= code <= 0x7E else "."


def display_string(session, name: str, args: str, offset: int, physical: bool = False,
                   typed: str | None = None):
    """da/du (and !du): ``ADDR  "text"`` lines of up to 32 characters, stopping at the
    terminating null or after the count.  Unreadable virtual memory shows as '?' and ends
    the display with its line (kdsim's choice: no transcript shows it); an unreadable
    physical page ends it with WinDbg's read-failure line.  The next display continues
    after the terminating null (or after the last character shown)."""
    t = session.target
    unit = 1 if name == "da" else 2
    typed = typed or ("!" if physical else "") + name
    default = PHYSICAL_STRING_DEFAULT if physical else STRING_DEFAULT
    start, count, key, mask = _range(session, typed, args, offset, unit, default, physical)
    if not physical:
        session.last_display = name
    shown, ended, failed, unreadable = 0, False, None, False
    while shown < count and not ended and failed is None and not unreadable:
        n = min(STRING_LINE, count - shown)
        at = (start + shown * unit) & mask
        data = (t.read_physical(at, n * unit) if physical
                else t.read_virtual(at, n * unit, cr3=session.context_cr3))
        text = []
        for k in range(n):
            lo = k * unit
            if not all(data.readable[lo:lo + unit]):
                if physical:
                    failed = at + lo
                    break
                text.append("?")
                unreadable = True       # the string ends with the line that met it
                continue
            code = int.from_bytes(data.data[lo:lo + unit], "little")
            if code == 0:
                ended = True
                break
            text.append(_printable(code))
        if text or (shown == 0 and failed is None):
            quoted = '"' + "".join(text) + '"'
            yield (f"#{at:8x} {quoted}\n" if physical
                   else f"{pointer(at, t.pointer_size)}  {quoted}\n")
        shown += len(text)
    if failed is not None:
        yield f"Physical memory read at {failed:x} failed\n"
    session.next_display[key] = (start + (shown + ended) * unit) & mask


REGISTRY.add(Command(("da",), "da [Range]", "display memory as an ASCII string",
                     lambda s, a, o: display_string(s, "da", a, o),
                     help="Stops at the first null byte or after the range (128 characters "
                          "without one); 32 characters a line."))
REGISTRY.add(Command(("du",), "du [Range]", "display memory as a Unicode string",
                     lambda s, a, o: display_string(s, "du", a, o),
                     help="Stops at the first null character or after the range (128 "
                          "characters without one); 32 characters a line."))
REGISTRY.add(Command(("!du",), "!du [PhysicalAddress] [L Count]",
                     "display physical memory as a Unicode string",
                     lambda s, a, o: display_string(s, "du", a, o, physical=True),
                     help="16 characters by default, or up to the first null character."))


# -- dds, dps, dqs: values and the symbols they point at -----------------------------------

SYMBOL_FORMATS = {"dds": 4, "dqs": 8, "dps": "ptr"}


def display_symbols(session, name: str, args: str, offset: int,
                    typed: str | None = None):
    """``ADDR  VALUE SYMBOL``: one value a line, the symbol only when the value is an
    address inside a loaded module (windbg-formats.md §2.5).  128 bytes by default."""
    t = session.target
    unit = t.pointer_size if SYMBOL_FORMATS[name] == "ptr" else SYMBOL_FORMATS[name]
    args, columns = _columns(session, args)
    per_line = columns or 1
    start, count, key, mask = _range(session, typed or name, args, offset, unit,
                                     DEFAULT_BYTES // unit, False)
    session.last_display = name
    spans = [(base, base + size) for base, size in session.modules().values()]
    step = CHUNK_LINES * per_line
    for first in range(0, count, step):
        n = min(step, count - first)
        at = (start + first * unit) & mask
        data = t.read_virtual(at, n * unit, cr3=session.context_cr3)
        yield _symbol_lines(session, data, at, n, unit, spans, per_line)
    session.next_display[key] = (start + count * unit) & mask


def _symbol_lines(session, data, start: int, count: int, unit: int, spans,
                  per_line: int = 1) -> str:
    """One value a line with its symbol; with "/c N" N values a line, each followed by
    its symbol when it has one (kdsim's choice: MSD-dds advises one column, and no
    transcript shows more)."""
    t = session.target
    lines = []
    for first in range(0, count, per_line):
        cells = [_symbol_cell(session, data, k * unit, unit, spans)
                 for k in range(first, min(count, first + per_line))]
        lines.append(f"{pointer(start + first * unit, t.pointer_size)}  {' '.join(cells)}\n")
    return "".join(lines)


def _symbol_cell(session, data, lo: int, unit: int, spans) -> str:
    """The value at ``data[lo:]`` and its symbol, if it is an address inside a module."""
    t = session.target
    if not all(data.readable[lo:lo + unit]):
        return "????????`????????" if unit == 8 else "????????"
    value = int.from_bytes(data.data[lo:lo + unit], "little")
    cell = hex64(value) if unit == 8 else f"{value:08x}"
    target = value
    if t.pointer_size == 4 and unit == 8:
        # A 32-bit target's addresses are sign-extended: a quad word names one only
        # when it is the sign extension of its low half.
        low = value & 0xFFFFFFFF
        extended = low | 0xFFFFFFFF00000000 if low & 0x80000000 else low
        target = low if value == extended else None
    symbol = None
    if target is not None and any(b <= target < e for b, e in spans):
        symbol = symbolize(session, target)
    return f"{cell} {symbol}" if symbol else cell


for _name, _what in (("dds", "double words"), ("dqs", "quad words"),
                     ("dps", "pointer-sized values")):
    REGISTRY.add(Command((_name,), f"{_name} [/c Width] [Range]", f"display {_what} and their symbols",
                         lambda s, a, o, _n=_name: display_symbols(s, _n, a, o)))


# -- d: the last display format ------------------------------------------------------------

def _displayer(name: str):
    if name in FORMATS:
        return lambda s, a, o, typed: display(s, name, a, o, typed=typed)
    if name in SYMBOL_FORMATS:
        return lambda s, a, o, typed: display_symbols(s, name, a, o, typed=typed)
    return lambda s, a, o, typed: display_string(s, name, a, o, typed=typed)


@REGISTRY.command("d", syntax="d [/c Width] [Range]",
                  summary="display memory in the format of the last d* command",
                  help="db when no display command has run yet.  The physical !d* "
                       "extensions do not count.")
def repeat_display(session, args: str, offset: int) -> str:
    return _displayer(getattr(session, "last_display", "db"))(session, args, offset, "d")


# -- e*: enter values ----------------------------------------------------------------------

ENTER = {"eb": 1, "ew": 2, "ed": 4, "eq": 8, "ep": "ptr"}
ENTER_UNITS = {"eb": "bytes", "ew": "words", "ed": "double words", "eq": "quad words",
               "ep": "pointer-sized values"}


def _address(session, text: str):
    """The address expression at the start of ``text``: (value, where it ends, its text)."""
    i = len(text) - len(text.lstrip())
    addr, end = session.evaluator().parse(text, i)
    return addr, end, text[i:end]


def enter(session, name: str, args: str, offset: int) -> str:
    """e*: write values at an address the way a debugger does (no faults, no A/D bits),
    into the address space the current process context sees.  Prints nothing."""
    t = session.target
    unit = t.pointer_size if ENTER[name] == "ptr" else ENTER[name]
    ev = session.evaluator()
    text = args.rstrip()
    addr, i, addr_text = _address(session, text)
    values = []
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        if i >= len(text):
            break
        if name == "eb" and text[i] == "'" and i + 2 < len(text) and text[i + 2] == "'":
            values.append(ord(text[i + 1]))
            i += 3
            continue
        value, i = ev.parse(text, i)
        values.append(value)
    if not values:      # WinDbg would prompt for values; kdsim reads no input here
        raise ExprError("syntax", len(text))
    session.last_enter = name
    data = b"".join((v & ((1 << 8 * unit) - 1)).to_bytes(unit, "little") for v in values)
    return _write_virtual(session, addr, data, addr_text)


def _write_virtual(session, addr: int, data: bytes, addr_text: str) -> str:
    t = session.target
    mask = 0xFFFFFFFF if t.pointer_size == 4 else (1 << 64) - 1
    if t.write_virtual(addr & mask, data, cr3=session.context_cr3) < len(data):
        raise CommandError(f"Memory access error at '{addr_text}'\n")
    return ""


for _name in ENTER:
    REGISTRY.add(Command((_name,), f"{_name} Address Values",
                         f"enter {ENTER_UNITS[_name]} into memory",
                         lambda s, a, o, _n=_name: enter(s, _n, a, o)))


STRINGS = {"ea": ("an ASCII string", 1, False), "eu": ("a Unicode string", 2, False),
           "eza": ("a null-terminated ASCII string", 1, True),
           "ezu": ("a null-terminated Unicode string", 2, True)}


def enter_string(session, name: str, args: str, offset: int) -> str:
    """ea/eu/eza/ezu Address "String": the characters between the quotes, as they are (no
    C escapes); eza and ezu add the terminating null."""
    _, unit, terminated = STRINGS[name]
    text = args.rstrip()
    addr, i, addr_text = _address(session, text)
    while i < len(text) and text[i] in " \t":
        i += 1
    if i >= len(text) or text[i] != '"':
        raise ExprError("syntax", i)
    close = text.find('"', i + 1)
    if close < 0:
        raise ExprError("syntax", len(text))
    if text[close + 1:].strip():
        rest = text[close + 1:]
        raise ExprError("syntax", close + 1 + len(rest) - len(rest.lstrip()))
    string = text[i + 1:close] + ("\0" if terminated else "")
    session.last_enter = name
    # ASCII: one byte a character (characters beyond Latin-1 become '?').
    data = (string.encode("latin-1", "replace") if unit == 1
            else string.encode("utf-16-le", "surrogatepass"))
    return _write_virtual(session, addr, data, addr_text) if data else ""


for _name, (_what, _, _) in STRINGS.items():
    REGISTRY.add(Command((_name,), f'{_name} Address "String"', f"enter {_what} into memory",
                         lambda s, a, o, _n=_name: enter_string(s, _n, a, o)))


@REGISTRY.command("e", syntax="e Address Values",
                  summary="enter values in the format of the last e* command",
                  help="eb when no e* command has run yet.  After ea, eu, eza or ezu the "
                       "value is a quoted string.")
def repeat_enter(session, args: str, offset: int) -> str:
    name = getattr(session, "last_enter", "eb")
    return (enter_string if name in STRINGS else enter)(session, name, args, offset)


PHYSICAL_ENTER = {"!eb": 1, "!ed": 4}


def enter_physical(session, name: str, args: str, offset: int) -> str:
    """!eb/!ed [Flag] PhysicalAddress Data [...]: values separated by spaces or commas."""
    unit = PHYSICAL_ENTER[name]
    text = _physical_options(args).rstrip()
    ev = session.evaluator()
    pa, i, _ = _address(session, text)
    pa = _physical_address(session, pa)
    values = []
    while True:
        while i < len(text) and text[i] in " \t,":
            i += 1
        if i >= len(text):
            break
        value, i = ev.parse(text, i)
        values.append(value)
    if not values:
        raise ExprError("syntax", len(text))
    data = b"".join((v & ((1 << 8 * unit) - 1)).to_bytes(unit, "little") for v in values)
    written = session.target.write_physical(pa, data)
    if written < len(data):
        # No transcript of a failed !eb/!ed is known; kdsim words it as the read failure.
        raise CommandError(f"Physical memory write at {pa + written:x} failed\n")
    return ""


for _name, _what in (("!eb", "bytes"), ("!ed", "double words")):
    REGISTRY.add(Command((_name,), f"{_name} [Flag] PhysicalAddress Data [...]",
                         f"write {_what} to physical memory",
                         lambda s, a, o, _n=_name: enter_physical(s, _n, a, o),
                         help="Flag ([c], [uc] or [wc]) is accepted and changes nothing in "
                              "kdsim; values are separated by spaces or commas."))
