"""cffi builder for the C core (out-of-line API mode) -> kdsim.machine._kdcore.

The cdef is the CDEF-BEGIN..CDEF-END part of csrc/kdcore.h with every #define
value replaced by "...", so each constant is written once, in the header, and
Python reads it from the compiled module."""
import pathlib
import re

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
SOURCES = ["ram.c", "mmu.c", "tlb.c"]


def cdef_text(header: str) -> str:
    body = header.split("/* CDEF-BEGIN */", 1)[1].split("/* CDEF-END */", 1)[0]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    body = re.sub(r"^#define\s+(\w+)\s+.*$", r"#define \1 ...", body, flags=re.M)
    # array lengths named by a constant are completed by the compiler too
    return re.sub(r"\[[A-Z_][A-Z0-9_]*\]", "[...]", body)


ffibuilder = FFI()
ffibuilder.cdef(cdef_text((CSRC / "kdcore.h").read_text()))
ffibuilder.set_source(
    "kdsim.machine._kdcore",
    '#include "kdcore.h"',
    sources=[str((CSRC / s).relative_to(ROOT)) for s in SOURCES],
    include_dirs=[str(CSRC.relative_to(ROOT))],
    extra_compile_args=["-O2", "-std=c11", "-fno-strict-aliasing"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
