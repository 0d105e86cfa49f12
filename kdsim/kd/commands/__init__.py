"""Command families; importing this package registers them."""
from . import (address, ca, dt, memory, memusage, meta, pfn, process, pte,  # noqa: F401
               ptov, symbols, vad, vm, vtop, wsle)
