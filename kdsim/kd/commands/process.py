""".process and r: the implicit process (whose address space user addresses are read in)
and registers (windbg-formats.md §9.4, §14); !process: the processes themselves, from
their EPROCESS objects (§9.1-9.3; the choices are listed above ``bang_process``).
Processes are found by walking PsActiveProcessHead in guest memory."""
from __future__ import annotations

from ..expr import ExprError
from ..fmt import MASK64, pointer
from ..registry import REGISTRY
from ..session import CommandError
from ..target import ProcessContext


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
                  help="/p also decodes transition PTEs at user addresses (.cache "
                       "forcedecodeuser): d*, poi() and dt read a trimmed page's bytes from "
                       "the frame its PTE names.  /i (invasive) asks the target to switch: "
                       "after the next g the debugger breaks in with that process's address "
                       "space loaded (CR3).")
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
    if "/i" in switches:
        # WinDbg 6.x's words (a later build prints the first sentence on one line).
        session.switch_to = ep
        return ("You need to continue execution (press 'g' <enter>) for the context\n"
                "to be switched. When the debugger breaks in again, you will be in\n"
                "the new process context.\n")
    session.implicit_process, session.context_cr3 = ep, dtb
    out = [f"Implicit process is now {pointer(ep, t.pointer_size)}"]
    if "/p" in switches:
        # forcedecodeuser: reads of user addresses decode transition PTEs (target.py)
        session.context_cr3 = ProcessContext(dtb)
        out.append(".cache forcedecodeuser done")
    else:
        out.append("WARNING: .cache forcedecodeuser is not enabled")
    if "/r" in switches:
        out.append("Loading User Symbols")
    return "\n".join(out) + "\n"


@REGISTRY.command("r", syntax="r [Register[=Value]]",
                  summary="show the registers, or show or set one (eip/rip, esp/rsp, "
                          "ebp/rbp, cr0, cr2, cr3, cr4, efer, $t0-$t19)",
                  help="kdsim's processor context holds the instruction, stack and frame "
                       "pointers and the control registers; the other general registers "
                       "print as zero and cannot be set.")
def register(session, args: str, offset: int) -> str:
    t = session.target
    text = args.strip()
    if not text:
        return _register_dump(session)
    name, eq, value = text.partition("=")
    name = name.strip().lstrip("@").lower()
    if eq:
        if name not in session.pseudo:
            raise ExprError("register", 0)
        start = args.index("=") + 1
        session.pseudo[name] = session.evaluator().evaluate(args[start:].strip())
        return ""
    control = t.control_registers()
    general = _general(session)
    if name in general:
        return f"{name}={general[name]:0{2 * t.pointer_size}x}\n"
    if name in control:          # r cr3 -> cr3=00000000`00187000 is not how kd prints it:
        return f"{name}={control[name]:0{2 * t.pointer_size}x}\n"   # no backtick
    if name in session.pseudo:
        return f"{name}={session.pseudo[name]:0{2 * t.pointer_size}x}\n"
    raise ExprError("register", 0)


def _general(session) -> dict[str, int]:
    """The general registers by name: ip/sp/bp from the processor context, the others
    zero (kdsim's processor context does not hold them)."""
    r = session.target.registers()
    if session.target.pointer_size == 4:
        names = ("eax", "ebx", "ecx", "edx", "esi", "edi")
        out = dict.fromkeys(names, 0)
        out.update(eip=r["ip"], esp=r["sp"], ebp=r["bp"])
        return out
    names = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi") + tuple(f"r{i}" for i in range(8, 16))
    out = dict.fromkeys(names, 0)
    out.update(rip=r["ip"], rsp=r["sp"], rbp=r["bp"])
    return out


# The flags of a thread running with interrupts enabled and nothing else set
# (EFLAGS 0x202: IF and the always-one bit 1) -- kdsim's choice for every stop.
_EFLAGS = 0x202
_FLAG_TEXT = "iopl=0         nv up ei pl nz na po nc"


def _register_dump(session) -> str:
    """``r`` without arguments, in WinDbg's layout (windbg-formats.md §14)."""
    from .run import instruction_line, where_line
    g = _general(session)
    if session.target.pointer_size == 4:
        lines = [" ".join(f"{n}={g[n]:08x}" for n in ("eax", "ebx", "ecx", "edx", "esi", "edi")),
                 f"eip={g['eip']:08x} esp={g['esp']:08x} ebp={g['ebp']:08x} {_FLAG_TEXT}",
                 "cs=0008  ss=0010  ds=0023  es=0023  fs=0030  gs=0000"
                 f"             efl={_EFLAGS:08x}"]
        ip = g["eip"]
    else:
        def row(names):
            return " ".join(f"{n:>3}={g[n]:016x}" for n in names)
        lines = [row(("rax", "rbx", "rcx")), row(("rdx", "rsi", "rdi")),
                 row(("rip", "rsp", "rbp")), row(("r8", "r9", "r10")),
                 row(("r11", "r12", "r13")), row(("r14", "r15")), _FLAG_TEXT,
                 "cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b"
                 f"             efl={_EFLAGS:08x}"]
        ip = g["rip"]
    return "".join(line + "\n" for line in lines) + where_line(session, ip) + \
        instruction_line(session, ip)


# -- !process ---------------------------------------------------------------------------
#
# What each line reads (windbg-formats.md §9.2; every value comes from the EPROCESS in
# guest memory, through the target's layouts):
#
#   VadRoot    VadRoot.BalancedRoot.RightChild, the real root VAD (what !vad takes); Vads
#              VadRoot.NumberGenericTableElements; Clone 1 when CloneRoot is set, else 0
#              (inferred: every sample shows 0); Private NumberOfPrivatePages, Modified
#              ModifiedPageCount, Locked NumberOfLockedPages.
#   DeviceMap  the DeviceMap pointer, Token the Token _EX_FAST_REF without its RefCnt bits.
#              kdsim has no object manager: both are whatever the EPROCESS holds (NULL
#              prints as zeros, as WinDbg prints a null DeviceMap).
#   ElapsedTime  KUSER_SHARED_DATA.SystemTime minus CreateTime, ``<Invalid>`` when
#              CreateTime is 0 or later than SystemTime (kdsim's reading of the sample);
#              1 day or more prints ``N Day(s) hh:mm:ss.mmm``.  kdsim's clock does not run,
#              so a process's elapsed time is 00:00:00.000.
#   UserTime/KernelTime  Pcb.UserTime/KernelTime are clock ticks; a tick is
#              nt!KeMaximumIncrement when the symbols have it, else 156250 (15.625 ms, the
#              x86/x64 default clock interval).  kdsim models no threads: the counts are 0.
#   QuotaPoolUsage  [Process]QuotaUsage[1] (PsPagedPool) and [0] (PsNonPagedPool).
#   Working Set Sizes  Vm.WorkingSetSize, Vm.MinimumWorkingSetSize, Vm.MaximumWorkingSetSize
#              in pages, then in KB; PeakWorkingSetSize, PageFaultCount from Vm too.
#   VirtualSize/PeakVirtualSize  bytes / 1 MB.  MemoryPriority  Vm.Flags.MemoryPriority:
#              0 (MEMORY_PRIORITY_BACKGROUND) prints BACKGROUND, anything else FOREGROUND.
#   BasePriority  Pcb.BasePriority;  CommitCharge  CommitCharge (pages).
#   Job / DebugPort  a line each only when the pointer is set (seen in samples; order
#              inferred).
#
# Fields kdsim's memory manager does not keep (ModifiedPageCount,
# the quotas, the times, BasePriority ...) print as the zeros guest memory holds.
#
# Flags (MSD-process): bit 0 the block above; bits 1 and 2 the threads.  The thread part
# starts with a blank line, says ``No active threads`` when EPROCESS.ActiveThreads is 0 (a
# WinDbg transcript of a process whose threads had all exited shows that line between the
# flag-1 block and its thread list) and then walks EPROCESS.ThreadListHead.
# kdsim creates no threads, so the list is empty; an entry found there (written by hand)
# is named by its list address, because kdsim's symbols carry no _ETHREAD to show it
# with.  Bits 3 and 4 change how threads print and the context while printing; kdsim
# accepts and ignores them.  Default flags are WinDbg's: 3 when the process is omitted, 0
# or -1, else 0xF.
#
# Errors (no verbatim text is known, windbg-formats.md §19): an EPROCESS that cannot be
# read prints ``Memory read error <address>`` (the wording §19 gives for dt); readable
# memory whose Pcb.Header.Type is not ProcessObject prints
# ``<address> is not a process object (Pcb.Header.Type is <n>)``.  A listing walks
# PsActiveProcessHead and shows what it finds (an unreadable entry gets the read-error
# line where its block would be).

PROCESS_OBJECT = 3            # KOBJECTS.ProcessObject, the Pcb.Header.Type of a process
MEMORY_PRIORITY_BACKGROUND = 0
DEFAULT_TICK = 156250         # 100 ns units per clock tick (15.625 ms) without KeMaximumIncrement
MAX_THREADS = 4096            # a corrupt thread list must not hang kd
LABEL = 34                    # the flag-1 values start at column 38 (4 + 34)


class _Snapshot:
    """One EPROCESS read from guest memory in a single read; fields by path."""

    def __init__(self, session, ep: int, data: bytes):
        self.ts, self.ep, self.data = session.target.types, ep, data

    def read(self, addr: int, n: int) -> bytes:       # the type layer's memory interface
        off = addr - self.ep
        return self.data[off:off + n]

    def has(self, path: str) -> bool:
        return self.ts.has_field("_EPROCESS", path)

    def get(self, path: str) -> int:
        return self.ts.field("_EPROCESS", path).read(self, self.ep)

    def first(self, *paths: str) -> int:
        """The first of ``paths`` this build's EPROCESS has (builds rename fields)."""
        for path in paths:
            if self.has(path):
                return self.get(path)
        return 0


def _snapshot(session, ep: int) -> _Snapshot | None:
    # An EPROCESS is nonpaged kernel memory, the same in every address space: it is read
    # under the loaded CR3, so a .process context with a bogus DirBase cannot hide it.
    t = session.target
    r = t.read_virtual(ep, t.types.sizeof("_EPROCESS"))
    return _Snapshot(session, ep, r.data) if r.complete else None


def _field(session, ep: int, path: str) -> int | None:
    f = session.target.types.field("_EPROCESS", path)
    return session._read_int(ep + f.offset, f.size)


def _hexp(value: int, ptr: int) -> str:
    """A pointer as !process prints it: zero-padded, no backtick."""
    return f"{value & ((1 << 8 * ptr) - 1):0{2 * ptr}x}"


def _image_name(e: _Snapshot) -> str:
    f = e.ts.field("_EPROCESS", "ImageFileName")
    raw = e.data[f.offset:f.offset + f.size]
    return raw.split(b"\0")[0].decode("ascii", "replace")


def _session_id(session, space: int) -> str:
    """SessionId: EPROCESS.Session->SessionId (_MM_SESSION_SPACE); ``none`` for a process
    in no session (System, the master smss.exe) or whose session space cannot be read."""
    if not space:
        return "none"
    f = session.target.types.field("_MM_SESSION_SPACE", "SessionId")
    value = session._read_int(space + f.offset, f.size)
    return "none" if value is None else f"{value:d}"


def _process_block(session, e: _Snapshot) -> list[str]:
    """The flags-0 lines of one process (x64 puts PROCESS on a line of its own)."""
    ptr = session.target.pointer_size
    session_text = _session_id(session, e.get("Session"))
    pid, ppid = e.get("UniqueProcessId"), e.get("InheritedFromUniqueProcessId")
    dirbase = e.get("Pcb.DirectoryTableBase[0]" if e.has("Pcb.DirectoryTableBase[0]")
                    else "Pcb.DirectoryTableBase")
    ident = f"SessionId: {session_text}  Cid: {pid:04x}    Peb: {e.get('Peb'):08x}  " \
        f"ParentCid: {ppid:04x}"
    lines = [f"PROCESS {e.ep:016x}", f"    {ident}"] if ptr == 8 else \
        [f"PROCESS {e.ep:08x}  {ident}"]
    lines.append(f"    DirBase: {dirbase:08x}  ObjectTable: {e.get('ObjectTable'):0{2 * ptr}x}  "
                 f"HandleCount: {0:3d}.")
    lines.append(f"    Image: {_image_name(e)}")
    return lines


def _duration(t100ns: int) -> str:
    """A time span as !process prints it: hh:mm:ss.mmm, with days in front."""
    ms = t100ns // 10_000
    days, ms = divmod(ms, 86_400_000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}"
    return f"{days} Day{'' if days == 1 else 's'} {text}" if days else text


def _system_time(session) -> int | None:
    """KUSER_SHARED_DATA.SystemTime (100 ns since 1601), read from guest memory."""
    t = session.target
    ts = t.types
    base = t.profile.address_space.shared_user_data_va
    low, high = (ts.field("_KUSER_SHARED_DATA", "SystemTime." + name)
                 for name in ("LowPart", "High1Time"))
    lo, hi = session._read_int(base + low.offset, low.size), \
        session._read_int(base + high.offset, high.size)
    return None if lo is None or hi is None else (hi << 32) | lo


def _tick(session) -> int:
    t = session.target
    rva = t.symbols("nt").get("KeMaximumIncrement")
    value = session._read_int(t.kernel_base + rva, 4) if rva is not None else None
    return value or DEFAULT_TICK


def _details(session, e: _Snapshot) -> list[str]:
    """The flag-1 block: memory, time and priority figures of the process."""
    t = session.target
    ptr = t.pointer_size

    def row(label: str, value) -> str:
        return f"    {label:<{LABEL}}{value}"

    token = e.get("Token.Value") & ~((1 << e.ts.field("_EPROCESS", "Token.RefCnt").bit_width) - 1)
    now, created = _system_time(session), e.get("CreateTime")
    elapsed = "<Invalid>" if now is None or not created or created > now \
        else _duration(now - created)
    tick = _tick(session)
    quota = "ProcessQuotaUsage" if e.has("ProcessQuotaUsage") else "QuotaUsage"
    ws = [e.get(f"Vm.{name}WorkingSetSize") for name in ("", "Minimum", "Maximum")]
    kb = 0x1000 // 1024
    priority = "BACKGROUND" if e.get("Vm.Flags.MemoryPriority") == MEMORY_PRIORITY_BACKGROUND \
        else "FOREGROUND"
    lines = [
        f"    VadRoot {_hexp(e.get('VadRoot.BalancedRoot.RightChild'), ptr)} "
        f"Vads {e.get('VadRoot.NumberGenericTableElements')} "
        f"Clone {1 if e.get('CloneRoot') else 0} Private {e.get('NumberOfPrivatePages')}. "
        f"Modified {e.get('ModifiedPageCount')}. Locked {e.get('NumberOfLockedPages')}.",
        f"    DeviceMap {_hexp(e.get('DeviceMap'), ptr)}",
        row("Token", _hexp(token, ptr)),
        row("ElapsedTime", elapsed),
        row("UserTime", _duration(e.get("Pcb.UserTime") * tick)),
        row("KernelTime", _duration(e.get("Pcb.KernelTime") * tick)),
        row("QuotaPoolUsage[PagedPool]", e.get(f"{quota}[1]")),
        row("QuotaPoolUsage[NonPagedPool]", e.get(f"{quota}[0]")),
        f"    {'Working Set Sizes (now,min,max)':<{LABEL - 1}}({ws[0]}, {ws[1]}, {ws[2]}) "
        f"({ws[0] * kb}KB, {ws[1] * kb}KB, {ws[2] * kb}KB)",
        row("PeakWorkingSetSize", e.get("Vm.PeakWorkingSetSize")),
        row("VirtualSize", f"{e.get('VirtualSize') // (1 << 20)} Mb"),
        row("PeakVirtualSize", f"{e.get('PeakVirtualSize') // (1 << 20)} Mb"),
        row("PageFaultCount", e.get("Vm.PageFaultCount")),
        row("MemoryPriority", priority),
        row("BasePriority", e.get("Pcb.BasePriority")),
        row("CommitCharge", e.get("CommitCharge")),
    ]
    for name in ("Job", "DebugPort"):
        if e.first(name):
            lines.append(row(name, _hexp(e.get(name), ptr)))
    return lines


def _threads(session, e: _Snapshot) -> list[str]:
    """The thread part: EPROCESS.ThreadListHead walked in guest memory."""
    t = session.target
    ptr = t.pointer_size
    lines = [""]
    if e.get("ActiveThreads") == 0:
        lines.append("No active threads")
    head = e.ep + e.ts.offset_of("_EPROCESS", "ThreadListHead")
    cur = e.get("ThreadListHead.Flink")
    seen = 0
    while cur and cur != head and seen < MAX_THREADS:
        lines.append(f"        kdsim: thread list entry {_hexp(cur, ptr)} (the symbols have "
                     f"no _ETHREAD to show it with)")
        seen += 1
        cur = session._read_int(cur, ptr)
    return lines


def _display(session, ep: int, flags: int) -> list[str]:
    e = _snapshot(session, ep)
    if e is None:
        return [f"Memory read error {_hexp(ep, session.target.pointer_size)}"]
    lines = _process_block(session, e)
    if flags & 1:
        lines += _details(session, e)
    if flags & 6:
        lines += _threads(session, e)
    return lines


def _check_process(session, ep: int) -> None:
    """A single process named by address must be readable and be a process object."""
    ptr = session.target.pointer_size
    e = _snapshot(session, ep)
    if e is None:
        raise CommandError(f"Memory read error {_hexp(ep, ptr)}\n")
    kind = e.get("Pcb.Header.Type")
    if kind != PROCESS_OBJECT:
        raise CommandError(f"{_hexp(ep, ptr)} is not a process object "
                           f"(Pcb.Header.Type is {kind})\n")


def _arguments(session, args: str):
    """``(process, flags, image)``: expressions parsed one after the other, as
    GetExpression reads them; whatever follows the flags is the image name."""
    ev = session.evaluator()
    process = flags = None
    end = 0
    if args.strip():
        process, end = ev.parse(args, 0)
        if args[end:].strip():
            flags, end = ev.parse(args, end)
    image = args[end:].strip() or None
    return process, flags, image


@REGISTRY.command("!process", syntax="!process [Process [Flags]] | 0 Flags [ImageName]",
                  summary="display processes (EPROCESS summaries, memory figures, threads)",
                  help="Process: an EPROCESS address, a process ID, 0 for every process on "
                       "PsActiveProcessHead (ImageName keeps those of that image), -1 or "
                       "nothing for the implicit process.  Flags: bit 0 adds VadRoot, Vads, "
                       "Private, DeviceMap, Token, the times, quotas, working-set sizes, "
                       "virtual size, page faults, priorities and CommitCharge; bits 1 and 2 "
                       "add the threads -- kdsim models none, so that part says only "
                       "'No active threads'.  Default flags: 3 with no process, 0 or -1, "
                       "else 0xF.  Bits 3 and 4 are accepted and ignored.  Fields kdsim's "
                       "memory manager does not keep print the zeros guest memory holds.")
def bang_process(session, args: str, offset: int) -> str:
    ptr = session.target.pointer_size
    target, flags, image = _arguments(session, args)
    mask = (1 << 8 * ptr) - 1
    current = target is None or target in (MASK64, mask)
    if flags is None:
        flags = 3 if current or target == 0 else 0xF
    procs = process_list(session)
    if current:
        chosen, listing = [session.implicit_process or current_process(session)], False
        _check_process(session, chosen[0])
    elif target == 0:
        chosen, listing = procs, True
    else:
        pid_match = [ep for ep in procs if _field(session, ep, "UniqueProcessId") == target]
        chosen, listing = pid_match or [target & mask], False
        if not pid_match:
            _check_process(session, chosen[0])
    if image:
        f = session.target.types.field("_EPROCESS", "ImageFileName")
        chosen = [ep for ep in chosen if session.target.read_virtual(
            ep + f.offset, f.size).data.split(b"\0")[0].decode("ascii", "replace").lower()
            == image.lower()]
    out = ["**** NT ACTIVE PROCESS DUMP ****"] if listing else []
    for ep in chosen:
        out += _display(session, ep, flags)
        if listing:
            out.append("")
    return "\n".join(out) + "\n"
