"""Command families; importing this package registers them."""
from . import (address, ca, dt, memory, memusage, meta, pfn, process, pte,  # noqa: F401
               ptov, sim, symbols, sysptes, vad, vm, vtop, wsle)
# The debugger-command-program language: aliases, control flow, .printf, scripts, logs.
from . import alias, flow, log, printf, run, script  # noqa: F401
