"""The command table: every command's names, syntax, one-line summary, help and handler.
``.help``, ``.hh`` and the README's command list are generated from it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Command:
    names: tuple[str, ...]
    syntax: str
    summary: str
    handler: Callable          # handler(session, args: str, offset: int) -> str
    help: str = ""
    kdsim_only: bool = False   # a kdsim extension, not a WinDbg command
    glued: bool = False        # option letters may follow the name directly ("lmvm nt")


@dataclass
class Registry:
    commands: list[Command] = field(default_factory=list)
    by_name: dict[str, Command] = field(default_factory=dict)

    def add(self, cmd: Command) -> Command:
        for name in cmd.names:
            key = name.lower()
            if key in self.by_name:
                raise ValueError(f"command {name!r} is registered twice")
            self.by_name[key] = cmd
        self.commands.append(cmd)
        return cmd

    def command(self, *names: str, syntax: str, summary: str, help: str = "",
                kdsim_only: bool = False, glued: bool = False):
        def wrap(fn):
            self.add(Command(tuple(names), syntax, summary, fn, help, kdsim_only, glued))
            return fn
        return wrap

    def match(self, text: str) -> tuple[Command | None, int]:
        """The command at the start of ``text`` (the longest name that fits) and where its
        arguments begin."""
        lower = text.lower()
        best, length = None, 0
        for name, cmd in self.by_name.items():
            if lower.startswith(name) and len(name) > length:
                rest = text[len(name):len(name) + 1]
                # A name made of letters must end at a non-letter ("dd" is not "ddx"),
                # unless the command takes option letters glued to it.
                if name[-1].isalpha() and rest.isalpha() and not cmd.glued:
                    continue
                best, length = cmd, len(name)
        return best, length


REGISTRY = Registry()
