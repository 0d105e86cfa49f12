"""Log files: ``.logopen``, ``.logappend``, ``.logclose``, ``.logfile`` (MSD pages of the
same names).

The log holds the transcript of what follows: Debugger.run_line writes into it the prompt
and each line as typed, then every piece of output as it goes to the screen -- the same
text whether the shell is interactive or writing a transcript, so a log compares byte for
byte with what ``execute`` returns.  ``.logopen`` prints ``Opened log file '<name>'``
(verbatim in MSD) after opening, so that line is the log's first; ``.logclose`` prints
``Closing open log file <name>`` (as real kd logs end) before closing, so it is the last.

* ``.logopen [/t] [/u] [FileName]`` truncates, ``.logappend [/u] [FileName]`` appends; the
  default name is Dbgeng.log; a relative name is in the current directory; a log already
  open is closed first.  /u writes UTF-16LE, otherwise UTF-8 text.  /t inserts
  ``_<pid>_<date>_<time>`` before the extension (MSD); kdsim's "process ID" is 0000 and the
  time is the target's KUSER_SHARED_DATA.SystemTime, so the name is the same on every run.
  /d (a name made from the target) is not supported.
* ``.logfile``: ``Log '<name>' open`` or ``No log file open`` (wording not documented;
  kdsim's).  A file that cannot be opened prints ``Unable to open log file '<name>'``
  (kdsim's wording).
"""
from __future__ import annotations

import os

from ..expr import ExprError
from ..registry import REGISTRY
from ..session import CommandError
from .meta import FILETIME_1970, _civil

DEFAULT_NAME = "Dbgeng.log"


class Log:
    """An open log file: every write goes to disk at once (a log survives a crash)."""

    def __init__(self, name: str, append: bool, unicode: bool):
        self.name = name
        encoding = "utf-16-le" if unicode else "utf-8"
        self.file = open(name, "a" if append else "w", encoding=encoding, newline="",
                         errors="replace")
        if unicode and self.file.tell() == 0:
            self.file.write("\ufeff")

    def write(self, text: str) -> None:
        self.file.write(text)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _options(args: str, allowed: str) -> tuple[set[str], str]:
    """(option letters, file name) of ``[/x ...] [FileName]``."""
    words, i = set(), 0
    while True:
        while i < len(args) and args[i] in " \t":
            i += 1
        if not args.startswith("/", i):
            break
        j = i + 1
        while j < len(args) and not args[j].isspace():
            j += 1
        letters = args[i + 1:j]
        if not letters or any(c not in allowed for c in letters):
            raise ExprError("syntax", i)
        words.update(letters)
        i = j
    name = args[i:].strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    return words, name or DEFAULT_NAME


def _stamped(session, name: str) -> str:
    """``name`` with ``_<pid>_<YYYY-MM-DD>_<HH-MM-SS-mmm>`` before its extension."""
    from .process import _system_time
    ticks = _system_time(session) or 0
    seconds, rest = divmod(ticks // 10_000 - FILETIME_1970 // 10_000, 1000)
    days, secs = divmod(seconds, 86400)
    year, month, day = _civil(days)
    stamp = (f"_0000_{year:04d}-{month:02d}-{day:02d}_"
             f"{secs // 3600:02d}-{secs // 60 % 60:02d}-{secs % 60:02d}-{rest:03d}")
    root, ext = os.path.splitext(name)
    return root + stamp + ext


def _close(session):
    """Pieces of output of closing the open log (nothing when none is open)."""
    log = session.log
    if log is not None:
        yield f"Closing open log file {log.name}\n"     # the log's last line
        session.log = None
        log.close()


def _open(session, args: str, append: bool):
    options, name = _options(args, "u" if append else "tu")
    if "t" in options:
        name = _stamped(session, name)
    yield from _close(session)
    try:
        session.log = Log(name, append, "u" in options)
    except OSError:
        raise CommandError(f"Unable to open log file '{name}'\n") from None
    yield f"Opened log file '{name}'\n"                  # the log's first line


@REGISTRY.command(".logopen", syntax=".logopen [/t] [/u] [FileName]",
                  summary="open a new log file (the transcript of what follows)",
                  help="/t adds _0000_<date>_<time> to the name (the target's clock); "
                       "/u writes UTF-16.  The default name is Dbgeng.log.")
def logopen(session, args: str, offset: int):
    return _open(session, args, append=False)


@REGISTRY.command(".logappend", syntax=".logappend [/u] [FileName]",
                  summary="append the transcript of what follows to a log file")
def logappend(session, args: str, offset: int):
    return _open(session, args, append=True)


@REGISTRY.command(".logclose", syntax=".logclose", summary="close the log file")
def logclose(session, args: str, offset: int):
    if args.strip():
        raise ExprError("syntax", len(args) - len(args.lstrip()))
    return _close(session)


@REGISTRY.command(".logfile", syntax=".logfile", summary="show the log file's status")
def logfile(session, args: str, offset: int) -> str:
    if args.strip():
        raise ExprError("syntax", len(args) - len(args.lstrip()))
    if session.log is None:
        return "No log file open\n"
    return f"Log '{session.log.name}' open\n"
