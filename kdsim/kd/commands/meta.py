"""Meta commands: ``?``, ``.formats``, ``.echo``, comments, ``.help``/``.hh``, ``.cls``, ``q``.

``command_table()`` is the one listing of the command table: ``.help``, ``.hh`` and ``?``
print it, and the README's command list is generated from it."""
from __future__ import annotations

import struct
import textwrap

from ..expr import ExprError
from ..fmt import evaluate_line, hex64, signed
from ..registry import REGISTRY


# -- the command listing -------------------------------------------------------------------

def _group(name: str) -> int:
    # The groups of WinDbg's debugger reference: commands, meta-commands (".name"),
    # extension commands ("!name").
    return 1 if name.startswith(".") else 2 if name.startswith("!") else 0


def _sort_key(cmd):
    name = cmd.names[0]
    # Within a group: WinDbg's own commands first, kdsim's extensions after them; then by
    # name without its "." or "!" (symbols such as "?" and "$$" sort before letters).
    return _group(name), cmd.kdsim_only, name.lstrip(".!").lower(), name


def command_table() -> list[tuple[str, str]]:
    """(syntax, summary) of every command in the order .help lists them: commands,
    meta-commands, extension commands, each alphabetical; kdsim's own extensions are
    marked "[kdsim]"."""
    return [(c.syntax, c.summary + ("  [kdsim]" if c.kdsim_only else ""))
            for c in sorted(REGISTRY.commands, key=_sort_key)]


SYNTAX_WIDTH = 32


def _listing() -> str:
    return "".join(f"{syntax:<{SYNTAX_WIDTH}}  {summary}\n"
                   for syntax, summary in command_table())


@REGISTRY.command(".help", syntax=".help [Extension]", summary="list the commands",
                  help="With an extension's name (.help !sim) prints that extension's own "
                       "help, as !Extension.help does; with a command's name, what .hh "
                       "prints.")
def help_(session, args: str, offset: int) -> str:
    name = args.strip()
    if not name:
        return _listing()
    # An extension's own help is its "help" export (!sim.help), as WinDbg extensions have.
    own = REGISTRY.by_name.get("!" + name.lower().lstrip("!") + ".help")
    if own is not None:
        return own.handler(session, "", offset)
    return help_topic(session, args, offset)


def _topic(name: str):
    key = name.lower()
    return REGISTRY.by_name.get(key) or REGISTRY.by_name.get("!" + key)


@REGISTRY.command(".hh", syntax=".hh [Command]", summary="show the help of a command",
                  help="WinDbg opens its help file at the command's page; kdsim prints "
                       "the command's syntax, summary and notes.  Without a command it "
                       "lists the commands, as .help does.")
def help_topic(session, args: str, offset: int) -> str:
    name = args.strip()
    if not name:
        return _listing()
    cmd = _topic(name)
    if cmd is None:
        return f"No help for '{name}'; .help lists the commands\n"
    lines = [cmd.syntax, "    " + cmd.summary]
    if len(cmd.names) > 1:
        lines.append("    Names: " + ", ".join(cmd.names))
    if cmd.kdsim_only:
        lines.append("    A kdsim extension: WinDbg has no such command.")
    if cmd.help:
        lines.append("")
        for paragraph in cmd.help.strip().split("\n"):
            lines.extend(textwrap.wrap(paragraph, 76, initial_indent="    ",
                                       subsequent_indent="    ") or [""])
    return "\n".join(lines) + "\n"


# -- expressions ---------------------------------------------------------------------------

def _expression(session, args: str) -> int:
    start = len(args) - len(args.lstrip())
    try:
        return session.evaluator().evaluate(args[start:])
    except ExprError as e:
        e.pos += start
        raise


@REGISTRY.command("?", syntax="? Expression", summary="evaluate an expression",
                  help="Without an expression, lists the commands.")
def evaluate(session, args: str, offset: int) -> str:
    if not args.strip():
        return _listing()
    return evaluate_line(_expression(session, args), session.target.pointer_size) + "\n"


@REGISTRY.command("??", syntax="?? Expression", summary="evaluate a C++ expression",
                  help="Prints the C++ type and the value: ?? sizeof(nt!_MMPFN) gives "
                       "unsigned int 0x18 on x86 (0x1c with PAE), unsigned int64 0x30 on x64.  kdsim's C++ "
                       "evaluator has integers only: C literals (decimal by default, 0x "
                       "hex, U/L/I64 suffixes), the C operators with ?:, casts to integer "
                       "types, sizeof(Type) and sizeof(expression), #FIELD_OFFSET(Type, "
                       "Field), @registers, @$t0-@$t19 and @@masm(...) / @@(...) for a MASM "
                       "part; no symbols, pointers, structures or floating point.  "
                       "@@c++(...) or @@(...) puts a C++ expression inside a MASM one.")
def evaluate_cpp(session, args: str, offset: int) -> str:
    return session.evaluator().cpp().evaluate(args).display() + "\n"


_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number counted from 1970-01-01, any year (the
    proleptic Gregorian calendar; FILETIMEs reach year 30828, past Python's datetime)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _ctime(seconds: int, fraction: str = "") -> str:
    """``Thu Jan  1 00:00:00 1970`` (ctime's layout) for seconds since 1970-01-01 UTC;
    ``fraction`` (".577") goes after the seconds, as WinDbg prints a FILETIME."""
    days, rest = divmod(seconds, 86400)
    year, month, day = _civil(days)
    return (f"{_DAYS[(days + 4) % 7]} {_MONTHS[month - 1]} {day:2d} "
            f"{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}{fraction} {year}")


# 100-ns intervals from 1601-01-01 (the FILETIME epoch) to 1970-01-01.
FILETIME_1970 = 116444736000000000


def _time(value: int, narrow: bool) -> str:
    """The Time line.  A 32-bit value is a C time_t, a larger one a FILETIME.  WinDbg
    prints them in the debugger host's local time zone; kdsim prints UTC (and the FILETIME
    suffix "(UTC + 0:00)") so that transcripts are the same on every machine."""
    if narrow and value & 0x80000000:
        return "***** Invalid"                      # a negative 32-bit time_t
    if value >> 32 == 0:
        return _ctime(value)
    if value >> 63:
        return "***** Invalid FILETIME"
    seconds, ticks = divmod(value - FILETIME_1970, 10_000_000)
    return _ctime(seconds, f".{ticks // 10_000:03d}") + " (UTC + 0:00)"


def _real(bits: int, double: bool) -> str:
    """A float or double as the Microsoft C runtime's %g prints it: 6 significant digits,
    a 3-digit exponent, and its own words for infinities and NaNs."""
    if double:
        exp_all, mant, quiet, sign = 0x7FF, bits & ((1 << 52) - 1), 1 << 51, bits >> 63
        value = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
    else:
        exp_all, mant, quiet, sign = 0xFF, bits & ((1 << 23) - 1), 1 << 22, bits >> 31
        value = struct.unpack("<f", bits.to_bytes(4, "little"))[0]
    minus = "-" if sign else ""
    if (bits >> (52 if double else 23)) & exp_all == exp_all:
        if mant == 0:
            return minus + "1.#INF"
        if sign and mant == quiet:
            return "-1.#IND"                       # the "indefinite" NaN
        # A float is widened to a double on its way to printf, which makes it quiet.
        return minus + ("1.#QNAN" if mant & quiet or not double else "1.#SNAN")
    text = f"{value:g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{exponent[0]}{int(exponent[1:]):03d}"
    return text


@REGISTRY.command(".formats", syntax=".formats Expression",
                  summary="show a number in several formats",
                  help="Time is printed in UTC (WinDbg uses the host's time zone).")
def formats(session, args: str, offset: int) -> str:
    value = _expression(session, args)
    low = value & 0xFFFFFFFF
    # On a 32-bit target a value that is a 32-bit number (or its sign extension, as the
    # evaluator makes of 80000000) shows at 32 bits; anything wider shows at 64.
    narrow = session.target.pointer_size == 4 and value == signed(low, 32) & ((1 << 64) - 1)
    if narrow:
        hexa, dec, unsigned, octal = f"{low:08x}", signed(low, 32), low, f"{low:011o}"
        raw = low.to_bytes(4, "big")
    else:
        hexa, dec, unsigned, octal = hex64(value), signed(value, 64), value, f"{value:022o}"
        raw = value.to_bytes(8, "big")
    binary = " ".join(f"{b:08b}" for b in raw)
    chars = "".join(chr(b) if 0x20 <= b <= 0x7E else "." for b in raw)
    return ("Evaluate expression:\n"
            f"  Hex:     {hexa}\n"
            f"  Decimal: {dec}\n"
            f"  Decimal (unsigned) : {unsigned}\n"
            f"  Octal:   {octal}\n"
            f"  Binary:  {binary}\n"
            f"  Chars:   {chars}\n"
            f"  Time:    {_time(low if narrow else value, narrow)}\n"
            f"  Float:   low {_real(low, False)} high {_real(value >> 32, False)}\n"
            f"  Double:  {_real(value, True)}\n")


# -- output and the session ----------------------------------------------------------------

@REGISTRY.command(".echo", syntax=".echo String", summary="print a string")
def echo(session, args: str, offset: int) -> str:
    text = args.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text + "\n"


@REGISTRY.command("$$", syntax="$$ comment", summary="a comment up to the next ';'")
def comment(session, args: str, offset: int) -> str:
    return ""


@REGISTRY.command("*", syntax="* comment", summary="a comment up to the end of the line")
def line_comment(session, args: str, offset: int) -> str:
    return ""


@REGISTRY.command(".cls", syntax=".cls", summary="clear the screen",
                  help="Prints nothing (a transcript stays clean) and sets "
                       "session.clear_requested; the interactive shell clears the "
                       "screen when it sees it.")
def clear_screen(session, args: str, offset: int) -> str:
    session.clear_requested = True
    return ""


@REGISTRY.command("q", "qq", syntax="q", summary="end the debugging session",
                  help="Prints nothing and sets session.quit_requested; the shell ends "
                       "after the line.")
def quit_(session, args: str, offset: int) -> str:
    if args.strip():
        raise ExprError("syntax", len(args) - len(args.lstrip()))
    session.quit_requested = True
    return ""
