"""``!pte``: the paging entries of a virtual address, read through the self-map in the
current address space (windbg-formats.md §5), so what it shows is what ``dq``/``dd`` read
at the same addresses."""
from __future__ import annotations

from functools import lru_cache

from kdsim.nt.protect import pte_protect_name
from kdsim.nt.pte import PteCodec

from ..expr import ExprError
from ..registry import REGISTRY

# x64: PXE PPE PDE PTE (column width 27); PAE: PDE PTE (27); x86: PDE PTE (24).
LAYOUT = {"x64": (("pxe", "PXE"), ("ppe", "PPE"), ("pde", "PDE"), ("pte", "PTE")),
          "pae": (("pde", "PDE"), ("pte", "PTE")), "x86": (("pde", "PDE"), ("pte", "PTE"))}
WIDTH = {"x64": 27, "pae": 27, "x86": 24}
VA_INDENT = {"x64": 43, "pae": 20, "x86": 17}


def flags(value: int, has_nx: bool) -> str:
    """The 11-character flag string: C G L D A N T U/K W/R E V."""
    writable = value & 0x2 or value & 0x800   # MP kernels keep "writable" in bit 11 too
    return "".join((
        "C" if value & 0x200 else "-", "G" if value & 0x100 else "-",
        "L" if value & 0x80 else "-", "D" if value & 0x40 else "-",
        "A" if value & 0x20 else "-", "N" if value & 0x10 else "-",
        "T" if value & 0x08 else "-", "U" if value & 0x04 else "K",
        "W" if writable else "R",
        "-" if has_nx and value >> 63 else "E", "V"))


def explain(codec: PteCodec, value: int, ptr: int) -> list[str]:
    """The lines under ``not valid`` for a non-valid entry."""
    d = codec.decode(value)
    protect = (lambda p: f"Protect: {p:x} - {pte_protect_name(p)}")
    if d.kind == "zero":
        return []
    if d.kind == "transition":
        return [f"Transition: {d.pfn:x}", protect(d.protection)]
    if d.kind == "prototype":
        return [f"Proto: {d.proto_address:0{2 * ptr}X}"]
    if d.kind == "vad_prototype":
        return ["Proto: VAD", protect(d.protection)]
    if not d.protection:
        return ["Page has been freed"]
    if d.kind == "demand_zero":
        return ["DemandZero", protect(d.protection)]
    if d.kind == "pagefile":
        return [f"PageFile:  {d.page_file_low:x}", f"Offset: {d.page_file_high:x}",
                protect(d.protection)]
    return []


@lru_cache(maxsize=None)
def _codec(profile) -> PteCodec:
    """The PTE decoder of a build (profiles are immutable: one decoder each)."""
    return PteCodec(profile)


def _arguments(session, args: str) -> tuple[int, int | None]:
    """One or two expressions (positions in errors relative to ``args``)."""
    ev = session.evaluator()
    first, end = ev.parse(args, 0)
    rest = args[end:]
    if not rest.strip():
        return first, None
    second, end2 = ev.parse(args, end + len(rest) - len(rest.lstrip()))
    if args[end2:].strip():
        raise ExprError("syntax", end2 + len(args[end2:]) - len(args[end2:].lstrip()))
    return first, second


@REGISTRY.command("!pte", syntax="!pte VirtualAddress [EndAddress] | PteAddress | "
                  "LiteralAddress 1",
                  summary="display the page-table entries of an address",
                  help="One address in the page-table range is a PTE's address (its VA is "
                       "shown); a second address above the first shows every page of the "
                       "range; LiteralAddress 1 decodes the entry at that address as a PTE "
                       "wherever it is (kdsim shows it as one PTE column).")
def pte(session, args: str, offset: int) -> str:
    ptr = session.target.pointer_size
    mask = 0xFFFFFFFF if ptr == 4 else (1 << 64) - 1
    first, second = _arguments(session, args)
    first &= mask
    if second is None:
        return _block(session, first)
    second &= mask
    if second == 1:
        return _literal(session, first)
    if second <= first:
        raise ExprError("syntax", len(args.rstrip()))
    # One block a page, printed as it is made (a long range stops on Ctrl-C).
    return (_block(session, va) for va in range(first & ~0xFFF, second + 1, 0x1000))


def _valid(value: int, size: int) -> tuple[int, str]:
    """A valid entry's frame and its third-row text: ``pfn <pfn>`` padded, then flags."""
    pfn = (value & (0x000FFFFFFFFFF000 if size == 8 else 0xFFFFF000)) >> 12
    return pfn, (f"pfn {pfn:<10x}" if size == 8 else f"pfn {pfn:<6x}") + flags(value, size == 8)


def _literal(session, addr: int) -> str:
    """``!pte Address 1``: the entry at ``addr`` decoded as a PTE, in one column."""
    t = session.target
    prof = t.profile
    size, ptr = prof.pte_size, prof.pointer_size
    read = t.read_virtual(addr, size, cr3=session.context_cr3)
    value = int.from_bytes(read.data, "little")
    lines = [f"PTE at {addr:0{2 * ptr}X}", f"contains {value:0{2 * size}X}"]
    if not read.complete or not value & 1:
        lines.append("not valid")
        if read.complete:
            lines += [" " + n for n in explain(_codec(prof), value, ptr)]
    else:
        lines.append(_valid(value, size)[1])
    return "\n".join(lines) + "\n"


def _block(session, va: int) -> str:
    t = session.target
    prof = t.profile
    mode = prof.paging.name
    ptr = prof.pointer_size
    sm = prof.self_map
    top = prof.paging.table_top(sm.pte_base, "pte")
    if sm.pte_base <= va <= top:               # the address of a PTE: show what it maps
        va = prof.va_mapped_by(va, "pte")
    codec = _codec(prof)
    width, size = WIDTH[mode], prof.pte_size
    digits = 16 if ptr == 8 else 8
    cols_at, cols_val, cols_pfn = [], [], []
    notes, note_col = [], 0
    levels = LAYOUT[mode]
    large_pfn = None
    for i, (level, label) in enumerate(levels):
        addr = prof.entry_address(va, level)
        read = t.read_virtual(addr, size, cr3=session.context_cr3)
        value = int.from_bytes(read.data, "little")
        cols_at.append(f"{label} at {addr & ((1 << 8 * ptr) - 1):0{digits}X}")
        cols_val.append(f"contains {value:0{2 * size}X}")
        if large_pfn is not None:
            cols_pfn.append(f"LARGE PAGE pfn {large_pfn:x}")
            break
        if not read.complete or not value & 1:
            cols_pfn.append("not valid")
            notes, note_col = (explain(codec, value, ptr) if read.complete else []), i
            break
        pfn, text = _valid(value, size)
        cols_pfn.append(text)
        if value & 0x80 and level != "pte" and i == len(levels) - 2:
            span = 1 << (prof.paging.shift(level) - 12)
            large_pfn = pfn + ((va >> 12) & (span - 1))
    lines = [" " * VA_INDENT[mode] + f"VA {va:0{digits}x}"]
    for row in (cols_at, cols_val, cols_pfn):
        lines.append("".join(f"{c:<{width}}" for c in row[:-1]) + row[-1])
    indent = " " * (width * note_col + 1)
    lines += [indent + n for n in notes]
    return "\n".join(lines) + "\n"
