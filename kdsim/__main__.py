"""``kdsim`` / ``python -m kdsim``."""
from __future__ import annotations

import argparse
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kdsim",
        description="A kd/WinDbg-style kernel debugger attached to an emulated Windows machine.")
    parser.add_argument("--version", action="version", version=f"kdsim {__version__}")
    parser.parse_args(argv)
    print(f"kdsim {__version__}: the kd> shell is not built yet; "
          "the machine core is available as kdsim.machine.Machine.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
