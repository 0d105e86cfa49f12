"""The ``kdsim`` command line: boot a machine, run ``-c`` commands and a ``-cf`` script
as a transcript, then either read commands from standard input (when it is not a
terminal: a transcript again) or start the interactive ``kd>`` prompt."""
from __future__ import annotations

import argparse
import os
import sys

from .. import __version__

TARGETS = ("win7-x64", "win7-x86pae", "win7-x86", "wrk-x86")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):              # one line, exit status 2
        self.exit(2, f"kdsim: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kdsim", description="A kd/WinDbg-style kernel debugger attached to "
                "an emulated Windows machine.")
    p.add_argument("--target", choices=TARGETS, default="win7-x64",
                   help="the Windows build to emulate (default win7-x64)")
    p.add_argument("--ram", default="2g", metavar="SIZE",
                   help="guest RAM, e.g. 512m, 2g, 64g (default 2g)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="scenario seed (default 0)")
    p.add_argument("--scenario", default="default", metavar="NAME|PATH",
                   help="what runs at boot: a scenario name, a .toml path, or none")
    p.add_argument("-c", dest="commands", metavar="COMMANDS",
                   help="commands to run first (';'-separated; end with q to exit)")
    p.add_argument("-cf", dest="script", metavar="FILE", help="a command file to run first")
    p.add_argument("-q", "--quiet", action="store_true", help="no banner")
    p.add_argument("--no-color", action="store_true", help="no colour (also NO_COLOR)")
    p.add_argument("--debug", action="store_true", help="tracebacks for internal errors")
    p.add_argument("--version", action="version", version=f"kdsim {__version__}")
    return p


def ram_text(ram: str) -> str:
    """``2g`` -> ``2 GB`` for the banner (kdsim.boot checks the value itself)."""
    units = {"k": "KB", "m": "MB", "g": "GB", "t": "TB"}
    text = str(ram).strip().lower()
    if text[-1:] in units and text[:-1].isdigit():
        return f"{int(text[:-1])} {units[text[-1]]}"
    return text


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:                     # `kdsim ... | head`: stop quietly
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    script_lines = None
    if args.script is not None:
        try:
            with open(args.script, encoding="utf-8") as f:
                script_lines = f.read().splitlines()
        except OSError as e:
            print(f"kdsim: cannot read script file '{args.script}': {e.strerror}",
                  file=sys.stderr)
            return 1
    import kdsim
    try:
        booted = kdsim.boot(args.target, ram=args.ram, seed=args.seed, scenario=args.scenario)
    except (ValueError, OSError, KeyError) as e:
        print(f"kdsim: error: {e}", file=sys.stderr)
        return 2
    booted.debugger.debug = args.debug

    from .runner import Runner, banner
    out = sys.stdout

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    runner = Runner(booted.debugger, write)
    if not args.quiet:
        write(banner(booted, ram_text(args.ram), args.scenario, args.seed))
    if args.commands is not None:
        runner.run(args.commands, echo=True)
    for line in script_lines or ():
        if runner.quit:
            break
        runner.run(line, echo=True)
    if runner.quit:
        return 0
    if not sys.stdin.isatty():
        for line in sys.stdin:
            runner.run(line.rstrip("\r\n"), echo=True)
            if runner.quit:
                break
        return 0
    from .app import interact
    color = not args.no_color and not os.environ.get("NO_COLOR") and out.isatty()
    return interact(runner, color=color)
