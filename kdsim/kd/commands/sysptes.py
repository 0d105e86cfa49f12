"""``!sysptes [Flags]``: the system PTE pool (windbg-formats.md §11.3, the verbatim
``!sysptes 1`` sample), read from nt's variables and the free chain kept in the PTEs.

The pool is ``MmSystemPtesStart[0]`` .. ``MmSystemPtesEnd[0]`` (addresses of PTEs),
``MmTotalSystemPtes`` PTEs.  Free clusters are chained from ``MmFirstFreeSystemPte[0]``
as ``_MMPTE_LIST`` entries (WRK sysptes.c): NextEntry of a cluster's first PTE indexes
the next cluster from ``MmSystemPteBase`` (MM_EMPTY_PTE_LIST, every bit of the field,
ends the chain); OneEntry marks a single-PTE cluster, else the second PTE's NextEntry
is the size.

Choices (the reference has only the flags-1 sample): flags 0 prints the header, the total
and the pool's first and last PTE; flags 1 adds one ``free ptes:`` line per free cluster
and the summary line.  The ``SysPtes list of size N`` lines of the sample are Windows'
per-size caches of free PTEs, which kdsim's kernel does not keep, so none is printed.
PTE addresses print as the sample's plain hex, 8 digits on 32-bit targets.
"""
from __future__ import annotations

from ..registry import REGISTRY
from .ca import parse_args, unreadable

MAX_BLOCKS = 1 << 20          # a chain longer than this is corrupt (a loop): stop there


def _var(session, name: str, size: int | None = None) -> int:
    t = session.target
    sym = t.symbols("nt")
    addr = t.kernel_base + sym[name]
    value = session._read_int(addr, size or t.pointer_size)
    if value is None:
        raise unreadable(f"nt!{name}", addr, t.pointer_size)
    return value


def free_blocks(session) -> tuple[list[tuple[int, int]], str | None]:
    """The free clusters ``(first PTE address, PTEs)`` in chain order, and a note when the
    chain is broken (unreadable or leaving the pool)."""
    t = session.target
    ts, esize = t.types, t.profile.pte_size
    nxt, one = ts.field("_MMPTE_LIST", "NextEntry"), ts.field("_MMPTE_LIST", "OneEntry")
    empty = (1 << nxt.bit_width) - 1 if nxt.is_bitfield else (1 << 8 * nxt.size) - 1
    base = _var(session, "MmSystemPteBase")
    start, end = _var(session, "MmSystemPtesStart"), _var(session, "MmSystemPtesEnd")
    index = nxt.extract(_var(session, "MmFirstFreeSystemPte", esize))
    out = []
    for _ in range(MAX_BLOCKS):
        if index == empty:
            return out, None
        pte = base + index * esize
        head = session._read_int(pte, esize) if start <= pte <= end else None
        if head is None:
            return out, f"free PTE chain broken at {pte:0{2 * t.pointer_size}x}"
        if one.extract(head):
            count = 1
        else:
            size = session._read_int(pte + esize, esize)
            if size is None:
                return out, f"free PTE chain broken at {pte + esize:0{2 * t.pointer_size}x}"
            count = nxt.extract(size)
        out.append((pte, count))
        index = nxt.extract(head)
    return out, "free PTE chain does not end"


@REGISTRY.command("!sysptes", syntax="!sysptes [Flags]",
                  summary="display the system PTE pool and its free blocks",
                  help="Flags 0: the pool's size and its first and last PTE; flags 1 adds "
                       "each free block of the chain from MmFirstFreeSystemPte, largest "
                       "block and total.  kdsim's kernel keeps no per-size caches of free "
                       "PTEs, so the 'SysPtes list of size N' lines are never printed; "
                       "flags 2 and 4 add nothing.")
def sysptes(session, args: str, offset: int) -> str:
    t = session.target
    flags = (parse_args(session, args, 1) or [0])[0]
    width = 2 * t.pointer_size
    total = _var(session, "MmTotalSystemPtes", 4)
    start, end = _var(session, "MmSystemPtesStart"), _var(session, "MmSystemPtesEnd")
    lines = ["", "System PTE Information", f"  Total System Ptes {total}", " ",
             f"    starting PTE: {start:0{width}x}", f"    ending PTE:   {end:0{width}x}"]
    if flags & 1:
        blocks, problem = free_blocks(session)
        lines.append("")
        lines += [f"      free ptes: {pte:0{width}x}   number free: {n}." for pte, n in blocks]
        if problem:
            lines.append(f"      {problem}")
        lines += ["", f"  free blocks: {len(blocks)}   total free: {sum(n for _, n in blocks)}"
                      f"    largest free block: {max((n for _, n in blocks), default=0)}"]
    return "\n".join(lines) + "\n"
