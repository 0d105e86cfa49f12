"""The part of the shell that every mode shares: the banner, running one input line
through the kd engine, echoing it as a transcript, repeat-on-Enter and quitting.  No
debugger logic lives here: each line goes to ``Debugger.execute`` as it was typed."""
from __future__ import annotations

import re

from .. import __version__

# Commands that an empty line repeats (and that continue where they stopped): the
# display families d*, !d* and the disassembler u, as WinDbg does.
_REPEATABLE = re.compile(r"^\s*(!?d[a-z]*|u[a-z]*)\b", re.IGNORECASE)


def banner(booted, ram: str, scenario: str, seed: int) -> str:
    """What kd prints on connecting: who we are, the machine, then the kernel's version
    lines as ``vertarget`` reads them from the target."""
    version = booted.debugger.execute("vertarget").splitlines()
    keep = [line for line in version if not line.startswith(("Debug session", "System Uptime"))]
    return (f"kdsim {__version__} - a kernel debugger attached to an emulated Windows machine\n"
            f"Target {booted.target}, {ram} RAM, scenario {scenario}, seed {seed}\n"
            + "".join(line + "\n" for line in keep)
            + "Type .help for commands, q to quit.\n")


class Runner:
    """Runs lines against one debugger and writes the transcript to ``write``."""

    def __init__(self, debugger, write):
        self.debugger = debugger
        self.write = write
        self.last_repeatable: str | None = None

    @property
    def prompt(self) -> str:
        return self.debugger.prompt

    @property
    def quit(self) -> bool:
        return bool(getattr(self.debugger, "quit_requested", False))

    def expand_empty(self, line: str) -> str | None:
        """An empty line repeats the last display command without its arguments (so it
        continues where it stopped); otherwise it does nothing."""
        if line.strip():
            m = _REPEATABLE.match(line.split(";")[-1])
            self.last_repeatable = m.group(1) if m else None
            return line
        return self.last_repeatable

    def run(self, line: str, echo: bool) -> None:
        """One input line: echoed after the prompt (transcripts), then its output."""
        if echo:
            self.write(self.prompt + line + "\n")
        text = self.expand_empty(line)
        if text is None:
            return
        try:
            self.debugger.run_line(text, self.write, typed=line)   # output as it is made
        except KeyboardInterrupt:
            self.write("^C\n")
