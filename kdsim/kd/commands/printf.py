"""``.printf [/D] [/o?] "FormatString" [, Argument, ...]`` (MSD ".printf").

Conversions "work exactly as in C" on ULONG64 arguments, which are MASM expressions:

* ``%d %i %u %x %X %o %c`` take the low 32 bits (``%d`` signed) unless the ``I64`` or
  ``ll`` modifier asks for 64 (``h``: 16) (MSD: "%I64x can be used to print a 64-bit hexadecimal
  number"); flags, width and precision as in C.
* ``%p`` a pointer in the debugger's address format: 8 digits on 32-bit targets,
  ``hi`lo`` on 64-bit ones; it takes no modifiers (MSD).
* ``%ma %mu`` the NUL-terminated ASCII / Unicode string at an address of the target,
  ``%msa %msu`` the ANSI_STRING / UNICODE_STRING there (both have the layout of
  _UNICODE_STRING: Length, MaximumLength, Buffer); memory that cannot be read ends the
  string (unreadable from the first byte: nothing is printed).  Strings stop after 4096
  characters.
* ``%y`` (and ``%ly``: kdsim has no line numbers) the symbol and displacement, as ln names
  them; an address outside every module prints as ``%p`` would.
* ``%s``: WinDbg documents no string arguments; kdsim prints a quoted argument
  (``.printf "%s\\n", "text"``) as it is and treats a number as the address of an ASCII
  string (``%ma``).
* ``%f %e %g``: the low 32 bits as a float, or with ``l`` the 64 bits as a double (MSD).
* ``%%`` a percent sign; anything else after ``%`` is printed as it stands.

Escapes in the format string: ``\\n \\t \\r \\\\ \\" \\'``; any other backslash pair keeps
just its character (a transcript shows ``.printf "C:\\Temp\\file.txt"`` printing
``C:Tempfile.txt``).  ``@"..."`` strings are taken literally.  Too few arguments is a
syntax error at the end of the command; extra arguments are ignored, as in C.
"""
from __future__ import annotations

import re
import struct

from ..expr import ExprError
from ..fmt import pointer
from ..registry import REGISTRY

MAX_STRING = 4096
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
_OPTIONS = {"/D", "/od", "/oD", "/oe", "/on", "/op", "/oP", "/os", "/ov", "/ow"}
_SPEC = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<prec>\d*))?"
                   r"(?P<size>I64|I32|ll|l|h|I)?"
                   r"(?P<conv>msa|msu|ma|mu|y|[diuxXocspNfeEgG%])")


def _address(session, value: int) -> int:
    return value & 0xFFFFFFFF if session.target.pointer_size == 4 else value


def _read(session, addr: int, n: int) -> bytes:
    """The bytes at ``addr`` up to the first that cannot be read."""
    r = session.target.read_virtual(_address(session, addr), n, cr3=session.context_cr3)
    return r.data[:r.readable_prefix]


def read_string(session, addr: int, kind: str) -> str | None:
    """The string of a %ma / %mu / %msa / %msu conversion; None when nothing is readable."""
    if kind in ("msa", "msu"):
        ts = session.target.types
        f_len = ts.field("_UNICODE_STRING", "Length")
        f_buf = ts.field("_UNICODE_STRING", "Buffer")
        head = _read(session, addr, f_buf.offset + f_buf.size)
        if len(head) < f_buf.offset + f_buf.size:
            return None
        length = int.from_bytes(head[f_len.offset:f_len.offset + 2], "little")
        buffer = int.from_bytes(head[f_buf.offset:], "little")
        data = _read(session, buffer, min(length, 2 * MAX_STRING))
        wide = kind == "msu"
    else:
        wide = kind == "mu"
        data = _read(session, addr, (2 if wide else 1) * MAX_STRING)
        if wide:      # a UTF-16 NUL sits on an even offset
            end = next((k for k in range(0, len(data) - 1, 2)
                        if data[k:k + 2] == b"\0\0"), -1)
        else:
            end = data.find(b"\0")
        data = data if end < 0 else data[:end]
    if not data and kind in ("ma", "mu") and not _read(session, addr, 1):
        return None
    if wide:
        return data[:len(data) & ~1].decode("utf-16-le", "replace")
    return data.decode("latin-1")


def _format_string(fmt: str, raw: bool) -> str:
    if raw:
        return fmt
    out, i = [], 0
    while i < len(fmt):
        c = fmt[i]
        if c == "\\" and i + 1 < len(fmt):
            out.append(_ESCAPES.get(fmt[i + 1], fmt[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class _Arguments:
    """The ``, arg`` list after the format string, read as the conversions need them
    (what went before an argument that fails is printed, then the error): numbers, or
    ("str", text) for a quoted argument."""

    def __init__(self, session, args: str, i: int):
        self.args, self.i = args, i
        self.ev = session.evaluator()

    def _skip(self) -> None:
        while self.i < len(self.args) and self.args[self.i] in " \t":
            self.i += 1

    def more(self) -> bool:
        self._skip()
        return self.i < len(self.args)

    def next(self):
        args = self.args
        if not self.more():
            raise ExprError("syntax", max(len(args.rstrip()) - 1, 0))   # too few
        if args[self.i] != ",":
            raise ExprError("syntax", self.i)
        self.i += 1
        self._skip()
        if args.startswith('"', self.i):
            close = args.find('"', self.i + 1)
            if close < 0:
                raise ExprError("syntax", self.i)
            text, self.i = args[self.i + 1:close], close + 1
            return ("str", text)
        value, self.i = self.ev.parse(args, self.i)
        return value


def _int(spec, value: int) -> str:
    bits = {"I64": 64, "ll": 64, "h": 16}.get(spec["size"], 32)
    value &= (1 << bits) - 1
    conv = spec["conv"]
    if conv in "di" and value >> (bits - 1):
        value -= 1 << bits
    if conv == "c":
        return _pad(spec, chr(value & 0xFF))
    pyconv = "d" if conv in "diu" else conv
    prec = "" if spec["prec"] is None else "." + (spec["prec"] or "0")
    if prec and pyconv in "dxXo":
        # C's precision on integers is a minimum number of digits.
        digits = format(abs(value), pyconv if pyconv != "d" else "d").zfill(int(prec[1:]))
        text = ("-" if value < 0 else "") + digits
        if "#" in spec["flags"] and pyconv in "xX" and value:
            text = ("0x" if pyconv == "x" else "0X") + text
        return _pad(spec, text)
    return f"%{spec['flags']}{spec['width']}{pyconv}" % value


def _pad(spec, text: str) -> str:
    if spec["prec"] is not None and spec["conv"] in ("s", "ma", "mu", "msa", "msu"):
        text = text[:int(spec["prec"] or 0)]
    width = int(spec["width"] or 0)
    return text.ljust(width) if "-" in spec["flags"] else text.rjust(width)


def _float(spec, value: int) -> str:
    if spec["size"] == "l":
        number = struct.unpack("<d", (value & (1 << 64) - 1).to_bytes(8, "little"))[0]
    else:
        number = struct.unpack("<f", (value & 0xFFFFFFFF).to_bytes(4, "little"))[0]
    prec = "" if spec["prec"] is None else "." + (spec["prec"] or "0")
    return f"%{spec['flags']}{spec['width']}{prec}{spec['conv']}" % number


def render(session, fmt: str, values: _Arguments, out: list[str]) -> None:
    """Append the formatted text to ``out``, reading arguments as conversions need them."""
    i = 0
    ptr = session.target.pointer_size
    while i < len(fmt):
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        m = _SPEC.match(fmt, j)
        if m is None:
            out.append("%")
            i = j + 1
            continue
        i = m.end()
        conv = m["conv"]
        if conv == "%":
            out.append("%")
            continue
        if conv == "N":                       # a host pointer: kdsim shows no host memory
            out.append(m.group(0))
            continue
        arg = values.next()
        if isinstance(arg, tuple):            # a quoted argument
            out.append(_pad(m, arg[1]) if conv == "s" else "")
            continue
        if conv == "p":
            out.append(pointer(arg, ptr))
        elif conv in ("ma", "mu", "msa", "msu", "s"):
            out.append(_pad(m, read_string(session, arg, "ma" if conv == "s" else conv)
                            or ""))
        elif conv == "y":
            from .symbols import symbolize
            out.append(_pad(m, symbolize(session, _address(session, arg) if ptr == 4
                                         else arg) or pointer(arg, ptr)))
        elif conv in "feEgG":
            out.append(_float(m, arg))
        else:
            out.append(_int(m, arg))


@REGISTRY.command(".printf", syntax='.printf [/D] [/o?] "FormatString" [, Argument, ...]',
                  summary="print formatted text, as printf in C",
                  help="%p pointer, %d %u %x numbers (32 bits; %I64x 64), %ma %mu strings "
                       "at an address, %msa %msu ANSI_STRING/UNICODE_STRING, %y symbol, "
                       "%s a quoted argument; escapes \\n \\t \\\\ \\\".  /D (DML) and the "
                       "/o colour options are accepted and change nothing.")
def printf(session, args: str, offset: int):
    i = 0
    while True:
        while i < len(args) and args[i] in " \t":
            i += 1
        if not args.startswith("/", i):
            break
        j = i
        while j < len(args) and not args[j].isspace() and args[j] != '"':
            j += 1
        if args[i:j] not in _OPTIONS:
            raise ExprError("syntax", i)
        i = j
    raw = args.startswith('@"', i)
    if raw:
        i += 1
    if not args.startswith('"', i):
        raise ExprError("syntax", min(i, max(len(args.rstrip()) - 1, 0)))
    j = i + 1
    while j < len(args) and args[j] != '"':
        j += 2 if args[j] == "\\" and not raw else 1
    if j >= len(args):
        raise ExprError("syntax", i)
    fmt = _format_string(args[i + 1:j], raw)
    return _printed(session, fmt, _Arguments(session, args, j + 1))


def _printed(session, fmt: str, values: _Arguments):
    out: list[str] = []
    try:
        render(session, fmt, values, out)
        while values.more():           # arguments left over are evaluated, then ignored
            values.next()
    except ExprError:
        yield "".join(out)             # WinDbg prints what it formatted before the error
        raise
    yield "".join(out)
