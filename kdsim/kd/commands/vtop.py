"""``!vtop DirBase VirtualAddress``: the walk of one translation under a directory base, the
way the debugger's VtoP routines print it (windbg-formats.md §6).  The walk is a probe of
the page tables in guest memory (no TLB, no side effects)."""
from __future__ import annotations

from kdsim.machine.errors import KdArgumentError

from ..expr import ExprError
from ..registry import REGISTRY
from ..session import CommandError

ALIGN = {"x64": 0x1000, "pae": 0x20, "x86": 0x1000}     # what CR3 must be aligned to
NAMES = {"x64": ("PML4E", "PDPE", "PDE", "PTE"), "pae": ("PDPE", "PDE", "PTE"),
         "x86": ("PDE", "PTE")}


def _hex_arg(word: str) -> int:
    """A plain hex argument; the extension's parser stops at a backtick (§6.1)."""
    return int(word.split("`")[0] or "0", 16)


@REGISTRY.command("!vtop", syntax="!vtop DirBase VirtualAddress",
                  summary="translate a virtual address under a directory base",
                  help="DirBase 0 means the implicit process; a value a CR3 could hold is "
                       "the directory base itself (what users pass in practice), any other "
                       "is taken as its page frame number (!vtop 98fd 12f980).")
def vtop(session, args: str, offset: int) -> str:
    t = session.target
    mode = t.profile.paging.name
    words = args.split()
    if len(words) != 2:
        raise ExprError("syntax", len(args.rstrip()))
    try:
        dirbase, va = _hex_arg(words[0]), _hex_arg(words[1])
    except ValueError:
        raise ExprError("syntax", args.index(words[0])) from None
    if dirbase == 0:
        dirbase = session.context_cr3 if session.context_cr3 is not None else t.cr3
    elif dirbase & (ALIGN[mode] - 1):
        # Not a directory base the CPU could load: the page frame number of one, as in
        # the documentation's `!vtop 98fd 12f980` (DirBase 098fd000).
        dirbase <<= 12
    try:
        tr = t.translate(va, cr3=dirbase)
    except KdArgumentError:
        raise CommandError(f"Virtual address {va:x} translation fails, error 0xD0000147.\n") \
            from None
    if mode == "x64":
        tag, w, entry = "Amd64VtoP: ", 16, lambda pa, v: f"{pa:016x}"
    elif mode == "pae":
        tag, w, entry = "X86VtoP: PAE ", 16, lambda pa, v: f"{pa:016x} - {v:016x}"
    else:       # kdsim choice for non-PAE x86 (no verbatim sample): 8-digit fields
        tag, w, entry = "X86VtoP: ", 8, lambda pa, v: f"{pa:08x} - {v:08x}"
    first = "X86VtoP: " if mode != "x64" else tag
    lines = [f"{first}Virt {va:0{w}x}, pagedir {dirbase:0{w}x}"]
    names = NAMES[mode]
    for i, (pa, value) in enumerate(tr.levels):
        lines.append(f"{tag}{names[i]} {entry(pa, value)}")
    if tr.ok:
        kind = "Large page mapped phys" if tr.page_size > 0x1000 else "Mapped phys"
        lines.append(f"{tag}{kind} {tr.pa:0{w}x}")
        lines.append(f"Virtual address {va:x} translates to physical address {tr.pa:x}.")
    else:
        if tr.levels and tr.levels[-1][1] == 0:
            lines.append(f"{tag}zero {names[len(tr.levels) - 1]}")
        lines.append(f"Virtual address {va:x} translation fails, error 0xD0000147.")
    return "\n".join(lines) + "\n"
