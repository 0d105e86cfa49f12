""".process and r: the implicit process (whose address space user addresses are read in)
and registers (windbg-formats.md §9.4, §14).  Processes are found by walking
PsActiveProcessHead in guest memory."""
from __future__ import annotations

from ..expr import ExprError
from ..fmt import pointer
from ..registry import REGISTRY
from ..session import CommandError


def process_list(session) -> list[int]:
    """EPROCESS addresses on PsActiveProcessHead, in list order (read from memory)."""
    t, ts = session.target, session.target.types
    head = t.kernel_base + t.symbols("nt")["PsActiveProcessHead"]
    links = ts.offset_of("_EPROCESS", "ActiveProcessLinks")
    out, cur = [], session._read_int(head, t.pointer_size)
    while cur is not None and cur != head and len(out) < 65536:
        out.append(cur - links)
        cur = session._read_int(cur, t.pointer_size)
    return out


def directory_table_base(session, eprocess: int) -> int | None:
    ts = session.target.types
    path = "Pcb.DirectoryTableBase[0]" if ts.field("_EPROCESS", "Pcb.DirectoryTableBase").count \
        else "Pcb.DirectoryTableBase"
    f = ts.field("_EPROCESS", path)
    return session._read_int(eprocess + f.offset, f.size)


def current_process(session) -> int:
    """The process whose address space the CPU has loaded (System if none matches)."""
    procs = process_list(session)
    cr3 = session.target.cr3
    for ep in procs:
        if directory_table_base(session, ep) == cr3:
            return ep
    return procs[0] if procs else 0


@REGISTRY.command(".process", syntax=".process [/p [/r]] [/i] [Process]",
                  summary="set the implicit process (the address space user addresses use)",
                  help="/i behaves as /p in kdsim: the context switches at once.")
def dot_process(session, args: str, offset: int) -> str:
    t = session.target
    words = args.split()
    switches = {w.lower() for w in words if w.startswith("/")}
    rest = " ".join(w for w in words if not w.startswith("/"))
    if not rest:
        ep = session.implicit_process or current_process(session)
        return f"Implicit process is now {pointer(ep, t.pointer_size)}\n"
    ep = session.evaluator().evaluate(rest) & (0xFFFFFFFF if t.pointer_size == 4 else
                                               (1 << 64) - 1)
    if ep == 0:
        session.implicit_process, session.context_cr3 = None, None
        return f"Implicit process is now {pointer(current_process(session), t.pointer_size)}\n"
    dtb = directory_table_base(session, ep)
    if dtb is None:
        raise CommandError(f"Memory access error at '{rest}'\n")
    session.implicit_process, session.context_cr3 = ep, dtb
    out = [f"Implicit process is now {pointer(ep, t.pointer_size)}"]
    if "/p" in switches or "/i" in switches:
        out.append(".cache forcedecodeuser done")
        if "/i" in switches:
            out.append("kdsim: .process /i switches the context at once, as /p does")
    else:
        out.append("WARNING: .cache forcedecodeuser is not enabled")
    if "/r" in switches:
        out.append("Loading User Symbols")
    return "\n".join(out) + "\n"


@REGISTRY.command("r", syntax="r [Register[=Value]]",
                  summary="show or set a register (cr3, $t0-$t19)")
def register(session, args: str, offset: int) -> str:
    t = session.target
    text = args.strip()
    if not text:
        raise CommandError("kdsim: r needs a register name (cr3, $t0-$t19)\n")
    name, eq, value = text.partition("=")
    name = name.strip().lstrip("@").lower()
    if eq:
        if name not in session.pseudo:
            raise ExprError("register", 0)
        start = args.index("=") + 1
        session.pseudo[name] = session.evaluator().evaluate(args[start:].strip())
        return ""
    if name == "cr3":
        return f"cr3={t.cr3:0{2 * t.pointer_size}x}\n"
    if name in session.pseudo:
        return f"{name}={session.pseudo[name]:0{2 * t.pointer_size}x}\n"
    raise ExprError("register", 0)


def _field(session, ep: int, path: str) -> int | None:
    f = session.target.types.field("_EPROCESS", path)
    return session._read_int(ep + f.offset, f.size)


def _process_block(session, ep: int) -> list[str]:
    """The flags-0 lines of one process (x64 puts PROCESS on a line of its own)."""
    t = session.target
    ptr = t.pointer_size
    name_f = t.types.field("_EPROCESS", "ImageFileName")
    raw = t.read_virtual(ep + name_f.offset, name_f.size, cr3=session.context_cr3).data
    name = raw.split(b"\0")[0].decode("ascii", "replace")
    session_ptr = _field(session, ep, "Session") or 0
    session_text = "none" if not session_ptr else "0"
    pid = _field(session, ep, "UniqueProcessId") or 0
    ppid = _field(session, ep, "InheritedFromUniqueProcessId") or 0
    peb = _field(session, ep, "Peb") or 0
    dirbase = directory_table_base(session, ep) or 0
    table = _field(session, ep, "ObjectTable") or 0
    ident = f"SessionId: {session_text}  Cid: {pid:04x}    Peb: {peb:08x}  ParentCid: {ppid:04x}"
    lines = [f"PROCESS {ep:016x}", f"    {ident}"] if ptr == 8 else \
        [f"PROCESS {ep:08x}  {ident}"]
    lines.append(f"    DirBase: {dirbase:08x}  ObjectTable: {table:0{2 * ptr}x}  "
                 f"HandleCount: {0:3d}.")
    lines.append(f"    Image: {name}")
    return lines


@REGISTRY.command("!process", syntax="!process [Process [Flags]] | 0 Flags [ImageName]",
                  summary="display processes",
                  help="kdsim shows the flags-0 lines for any flags so far.")
def bang_process(session, args: str, offset: int) -> str:
    words = args.split()
    ev = session.evaluator()
    target = ev.evaluate(words[0]) if words else None
    image = words[2].lower() if len(words) > 2 else None
    procs = process_list(session)
    if target in (None, 0xFFFFFFFFFFFFFFFF) and not (words and target == 0):
        chosen, listing = [session.implicit_process or current_process(session)], False
    elif target == 0:
        chosen, listing = procs, True
    else:
        pid_match = [ep for ep in procs if _field(session, ep, "UniqueProcessId") == target]
        chosen, listing = (pid_match or [target & ((1 << 8 * session.target.pointer_size) - 1)],
                           False)
    if image:
        f = session.target.types.field("_EPROCESS", "ImageFileName")
        chosen = [ep for ep in chosen if session.target.read_virtual(
            ep + f.offset, f.size).data.split(b"\0")[0].decode("ascii", "replace").lower()
            == image]
    out = ["**** NT ACTIVE PROCESS DUMP ****"] if listing else []
    for ep in chosen:
        out += _process_block(session, ep)
        if listing:
            out.append("")
    return "\n".join(out) + "\n"
