"""The emulated machine's hardware: guest physical RAM and an x86 MMU (C core via cffi)."""
from ._kdcore import lib as _lib
from .core import BAD_PA, MODES, PAGE_SIZE, Machine, PagingState, parse_size
from .errors import KdArgumentError, KdError, PhysicalMemoryError, VirtualMemoryError
from .translation import Translation

# The core's constants, read from the compiled module (defined once, in csrc/kdcore.h).
PF_P, PF_W, PF_U, PF_RSVD, PF_ID = (_lib.KD_PF_P, _lib.KD_PF_W, _lib.KD_PF_U,
                                    _lib.KD_PF_RSVD, _lib.KD_PF_ID)
STATUS = {name[len("KD_E_"):].lower(): getattr(_lib, name)
          for name in dir(_lib) if name.startswith("KD_E_")}
STATUS["ok"] = _lib.KD_OK

__all__ = ["BAD_PA", "MODES", "PAGE_SIZE", "Machine", "PagingState", "parse_size",
           "KdArgumentError", "KdError", "PhysicalMemoryError", "VirtualMemoryError",
           "Translation", "PF_P", "PF_W", "PF_U", "PF_RSVD", "PF_ID", "STATUS"]
