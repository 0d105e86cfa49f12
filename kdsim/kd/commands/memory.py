"""Display memory: db, dw, dd, dq, dc, dp (windbg-formats.md §2).  One ``display`` serves
the family; each row of the table below is a unit size, cells per line and ASCII column."""
from __future__ import annotations

from ..expr import ExprError
from ..fmt import hex64, pointer
from ..registry import REGISTRY, Command
from ..session import CommandError

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


def display(session, name: str, args: str, offset: int, physical: bool = False) -> str:
    """One d* command (``physical``: its !d* twin, which reads physical memory)."""
    t = session.target
    unit, per_line, ascii_col = FORMATS[name]
    if unit == "ptr":
        unit = t.pointer_size
        per_line = 16 // unit
    try:
        rng = parse_range(session, args, unit, DEFAULT_BYTES // unit)
    except _RangeError as e:
        cmd = ("!" if physical else "") + name
        raise CommandError(session.caret(offset + e.pos, "Range", cmd + args.rstrip()))
    key = "physical" if physical else "virtual"
    if rng is None:
        start, count = session.next_display.get(key, 0), DEFAULT_BYTES // unit
    else:
        start, count = rng
    mask = (1 << 64) - 1 if physical or t.pointer_size == 8 else 0xFFFFFFFF
    start &= mask
    if physical:
        data = t.read_physical(start, count * unit)
        good = data.readable_prefix // (per_line * unit) * per_line
        if good < count and not data.complete:
            count_shown = good
        else:
            count_shown = count
    else:
        data = t.read_virtual(start, count * unit, cr3=session.context_cr3)
        count_shown = count
    lines = []
    for first in range(0, count_shown, per_line):
        n = min(per_line, count_shown - first)
        cells = []
        for k in range(first, first + n):
            lo = k * unit
            if all(data.readable[lo:lo + unit]):
                v = int.from_bytes(data.data[lo:lo + unit], "little")
                cells.append(hex64(v) if unit == 8 else f"{v:0{2 * unit}x}")
            else:
                cells.append("????????`????????" if unit == 8 else "?" * (2 * unit))
        if name == "db":
            hexpart = " ".join(cells[:8])
            if len(cells) > 8:
                hexpart += "-" + " ".join(cells[8:])
            width = 16 * 3 - 1
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
    if count_shown < count:
        failed = start + data.readable_prefix
        lines.append(f"Physical memory read at {failed:x} failed\n")
    session.next_display[key] = (start + count * unit) & mask
    return "".join(lines)


def _register(name: str, unit_text: str) -> None:
    def handler(session, args, offset, _name=name):
        return display(session, _name, args, offset)

    def physical(session, args, offset, _name=name):
        return display(session, _name, args, offset, physical=True)
    REGISTRY.add(Command((name,), f"{name} [Range]", f"display memory as {unit_text}", handler))
    REGISTRY.add(Command(("!" + name,), f"!{name} [PhysicalAddress] [L Count]",
                         f"display physical memory as {unit_text}", physical))


for _name, _what in (("db", "bytes and ASCII"), ("dw", "words"), ("dd", "double words"),
                     ("dq", "quad words"), ("dc", "double words and ASCII"),
                     ("dp", "pointer-sized values")):
    _register(_name, _what)


ENTER = {"eb": 1, "ew": 2, "ed": 4, "eq": 8, "ep": "ptr"}


def enter(session, name: str, args: str, offset: int) -> str:
    """e*: write values at an address the way a debugger does (no faults, no A/D bits),
    into the address space the current process context sees.  Prints nothing."""
    t = session.target
    unit = t.pointer_size if ENTER[name] == "ptr" else ENTER[name]
    ev = session.evaluator()
    text = args.rstrip()
    i = len(text) - len(text.lstrip())
    addr, i = ev.parse(text, i)
    addr_text = text[len(text) - len(text.lstrip()):i]
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
    if not values:
        raise ExprError("syntax", len(text))
    mask = 0xFFFFFFFF if t.pointer_size == 4 else (1 << 64) - 1
    data = b"".join((v & ((1 << 8 * unit) - 1)).to_bytes(unit, "little") for v in values)
    if t.write_virtual(addr & mask, data, cr3=session.context_cr3) < len(data):
        raise CommandError(f"Memory access error at '{addr_text}'\n")
    return ""


for _name in ENTER:
    REGISTRY.add(Command((_name,), f"{_name} Address Values", "enter values into memory",
                         lambda s, a, o, _n=_name: enter(s, _n, a, o)))
