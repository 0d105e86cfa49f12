"""cffi builder for the C core (out-of-line API mode) -> kdsim.machine._kdcore.

The cdef is the CDEF-BEGIN..CDEF-END part of csrc/kdcore.h with every #define
value replaced by "...", so each constant is written once, in the header, and
Python reads it from the compiled module."""
import pathlib
import re

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
SOURCES = ["ram.c", "paging.c", "mmu.c", "tlb.c", "lazy.c"]


def cdef_text(header: str) -> str:
    body = header.split("/* CDEF-BEGIN */", 1)[1].split("/* CDEF-END */", 1)[0]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    body = re.sub(r"^#define\s+(\w+)\s+.*$", r"#define \1 ...", body, flags=re.M)
    # array lengths named by a constant are completed by the compiler too
    return re.sub(r"\[[A-Z_][A-Z0-9_]*\]", "[...]", body)


HERE = pathlib.Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef(cdef_text((CSRC / "kdcore.h").read_text()))
# The CPython fast-call probe (see _fastprobe.h) is the one entry outside kdcore.h.
ffibuilder.cdef("int kd_py_bind_probe(kd_machine *m, uintptr_t out_list, uintptr_t err_cls);")
ffibuilder.set_source(
    "kdsim.machine._kdcore",
    '#include "kdcore.h"\n#include "_fastprobe.h"',
    sources=[str((CSRC / s).relative_to(ROOT)) for s in SOURCES],
    include_dirs=[str(CSRC.relative_to(ROOT)), str(HERE.relative_to(ROOT))],
    # _fastprobe.h uses METH_FASTCALL, outside the limited API
    py_limited_api=False,
    define_macros=[("_CFFI_NO_LIMITED_API", None)],
    extra_compile_args=["-O3", "-std=c11", "-fno-strict-aliasing"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
