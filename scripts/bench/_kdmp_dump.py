"""Write guest physical memory as a minimal 64-bit Windows *full* crash dump.

Only what a dump reader such as kdmp-parser needs is filled in: the ``PAGEDU64``
header (signature, version, DirectoryTableBase = CR3, machine type, bug check),
the physical memory descriptor (runs of page frames), a CONTEXT record whose two
MXCSR copies agree, ``DumpType`` = 1 (full dump), ``RequiredDumpSpace``, and then
the raw pages of every run, in run order, from file offset 0x2000.

Layout of the 0x2000-byte header (offsets from the start of the file), as in
rekall's crashdump overlay and kdmp-parser's ``HEADER64``:

    0x000 u32 Signature            'PAGE'
    0x004 u32 ValidDump            'DU64'
    0x008 u32 MajorVersion, 0x00C u32 MinorVersion
    0x010 u64 DirectoryTableBase
    0x018 u64 PfnDatabase, 0x020 u64 PsLoadedModuleList, 0x028 u64 PsActiveProcessHead
    0x030 u32 MachineImageType (0x8664), 0x034 u32 NumberProcessors
    0x038 u32 BugCheckCode, 0x040 u64 BugCheckCodeParameter[4]
    0x080 u64 KdDebuggerDataBlock
    0x088 PHYSICAL_MEMORY_DESCRIPTOR: u32 NumberOfRuns, u32 pad, u64 NumberOfPages,
          then {u64 BasePage, u64 PageCount} per run (room for 43 runs before 0x348)
    0x348 CONTEXT (x64; MxCsr at +0x34 and again at +0x118 in the FXSAVE area)
    0xF00 EXCEPTION_RECORD64
    0xF98 u32 DumpType             1 = full dump
    0xFA0 u64 RequiredDumpSpace    size of the file
    0xFA8 u64 SystemTime
    0xFB0 char Comment[128]
    0x2000 first page of the first run
"""
from __future__ import annotations

import struct
from typing import Iterable, Sequence

PAGE = 0x1000
HEADER_SIZE = 0x2000
MAX_RUNS = (0x348 - 0x98) // 16
CONTEXT_OFF = 0x348
DUMP_TYPE_FULL = 1
MXCSR_DEFAULT = 0x1F80


def dump_header(cr3: int, runs: Sequence[tuple[int, int]], *, system_time: int = 0,
                comment: bytes = b"kdsim translate benchmark") -> bytes:
    """The 0x2000-byte header of a full dump whose runs are ``(start, length)`` in bytes."""
    if not runs or len(runs) > MAX_RUNS:
        raise ValueError(f"need 1..{MAX_RUNS} physical memory runs, got {len(runs)}")
    for start, length in runs:
        if start % PAGE or length % PAGE or length == 0:
            raise ValueError(f"run ({start:#x}, {length:#x}) is not whole pages")
    total_pages = sum(length // PAGE for _, length in runs)
    h = bytearray(HEADER_SIZE)
    struct.pack_into("<4s4sII", h, 0x000, b"PAGE", b"DU64", 0xF, 0x4A61)
    struct.pack_into("<QQQQ", h, 0x010, cr3, 0, 0, 0)
    struct.pack_into("<III", h, 0x030, 0x8664, 1, 0xE2)        # MANUALLY_INITIATED_CRASH
    struct.pack_into("<IIQ", h, 0x088, len(runs), 0, total_pages)
    for i, (start, length) in enumerate(runs):
        struct.pack_into("<QQ", h, 0x098 + 16 * i, start // PAGE, length // PAGE)
    # CONTEXT: ContextFlags (CONTEXT_AMD64 | FULL), MxCsr, segment selectors, MxCsr again.
    struct.pack_into("<II", h, CONTEXT_OFF + 0x30, 0x10000B, MXCSR_DEFAULT)
    struct.pack_into("<HHHHHH", h, CONTEXT_OFF + 0x38, 0x10, 0x2B, 0x2B, 0x53, 0x2B, 0x18)
    struct.pack_into("<HH", h, CONTEXT_OFF + 0x100, 0x27F, 0)   # x87 control/status word
    struct.pack_into("<II", h, CONTEXT_OFF + 0x118, MXCSR_DEFAULT, 0xFFFF)
    struct.pack_into("<I", h, 0xF98, DUMP_TYPE_FULL)
    struct.pack_into("<QQ", h, 0xFA0, HEADER_SIZE + total_pages * PAGE, system_time)
    h[0xFB0:0xFB0 + min(len(comment), 127)] = comment[:127]
    return bytes(h)


def write_full_dump(path, cr3: int, runs: Iterable[tuple[int, int]], read_run) -> int:
    """Write a full dump to ``path``; ``read_run(start, length)`` gives a run's bytes
    (anything the buffer protocol accepts, e.g. a numpy view of guest RAM).
    Returns the file size."""
    runs = list(runs)
    with open(path, "wb") as f:
        f.write(dump_header(cr3, runs))
        for start, length in runs:
            f.write(read_run(start, length))
        return f.tell()
