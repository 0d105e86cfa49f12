"""Running the target: breakpoints (``bp``, ``bl``, ``bc``, ``bd``, ``be``), ``g`` and the
stack (``k``, ``kn``).

A breakpoint is the debugger's: it keeps the list, and when ``g`` lets the machine run it
writes an int 3 (0xcc) over the first byte of each enabled breakpoint's instruction, asks
the target to run, and puts the bytes back when the target stops -- so ``db`` never shows
the int 3s, as in WinDbg.  The target reports where its processor stopped; the debugger
decides what that is: one of its breakpoints (``Breakpoint N hit``), or a breakpoint
whose ``/p`` process or pass count does not match yet, in which case it lets the target
run on without a word (how WinDbg implements ``/p`` in kernel mode).

The stack walk reads the thread's stack through guest memory from the registers the
target reports: on x86 the EBP chain (``[ebp]`` the caller's frame, ``[ebp+4]`` the return
address); on x64 each routine's frame size from the symbol file's unwind data (kdsim's
``functions()``), the machine frame a trap pushed, and kdsim's fixed 0x30-byte frames for
user-mode routines (kdsim has no user-mode unwind data).  kdsim's guest threads run only
through the routines nt's symbols name (kdsim.nt.execution); user-mode frames are named
by module and offset.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..expr import ExprError
from ..fmt import pointer
from ..registry import REGISTRY
from ..session import CommandError
from .symbols import symbolize

INT3 = 0xCC
USER_FRAME = 0x30          # kdsim.nt.execution.USER_FRAME
TRAP_ROUTINES = ("KiTrap0E", "KiFastCallEntry", "KiPageFault", "KiSystemServiceCopyEnd")
MAX_FRAMES = 256

BREAK_IN_BANNER = """\
Break instruction exception - code 80000003 (first chance)
*******************************************************************************
*                                                                             *
*   You are seeing this message because you pressed either                    *
*       CTRL+C (if you run console kernel debugger) or,                       *
*       CTRL+BREAK (if you run GUI kernel debugger),                          *
*   on your debugger machine's keyboard.                                      *
*                                                                             *
*                   THIS IS NOT A BUG OR A SYSTEM CRASH                       *
*                                                                             *
* If you did not intend to break into the debugger, press the "g" key, then   *
* press the "Enter" key now.  This message might immediately reappear.  If it *
* does, press "g" and "Enter" again.                                          *
*                                                                             *
*******************************************************************************
"""


@dataclass
class Breakpoint:
    id: int
    address: int
    enabled: bool = True
    process: int | None = None      # /p: break only in this EPROCESS
    passes: int = 1                 # the pass count given (bl's second number)
    remaining: int = 1              # passes left before it breaks (bl's first number)
    once: bool = False              # /1: deleted when it breaks


def _breakpoints(session) -> dict[int, Breakpoint]:
    if not hasattr(session, "breakpoints"):
        session.breakpoints = {}
    return session.breakpoints


def _mask(session) -> int:
    return (1 << 8 * session.target.pointer_size) - 1


# -- disassembly of what kdsim's routines hold ----------------------------------------------

# kdsim's routines begin with a fixed prologue (kdsim.nt.ntimage.PROLOGUE) and the break-in
# routine is an int 3; these are the only instructions kdsim's code holds, so these are the
# only ones its debugger decodes.
_INSTRUCTIONS = {
    4: ((b"\x8b\xff", "mov", "edi,edi"), (b"\x55", "push", "ebp"),
        (b"\x8b\xec", "mov", "ebp,esp"), (b"\xcc", "int", "3")),
    8: ((b"\x48\x89\x5c\x24\x08", "mov", "qword ptr [rsp+8],rbx"), (b"\xcc", "int", "3")),
}


def instruction_line(session, addr: int) -> str:
    """``addr bytes mnemonic operands`` as WinDbg prints the current instruction:
    code bytes padded to 16 columns, the mnemonic to 8; ``??`` when unreadable."""
    t = session.target
    where = pointer(addr, t.pointer_size)
    r = t.read_virtual(addr, 16, cr3=session.context_cr3)
    data = r.data[:r.readable_prefix]
    for code, mnemonic, operands in _INSTRUCTIONS[t.pointer_size]:
        if data.startswith(code):
            return f"{where} {code.hex():<16}{mnemonic:<8}{operands}\n"
    if not data:
        return f"{where} {'??':<16}???\n"
    return f"{where} {data[:1].hex():<16}???\n"


def where_line(session, addr: int) -> str:
    name = symbolize(session, addr)
    return f"{name}:\n" if name else ""


# -- bp, bl, bc, bd, be ----------------------------------------------------------------------

@REGISTRY.command(
    "bp", syntax='bp [/p EProcess] [/1] Address [Passes]',
    summary="set a breakpoint",
    help="The breakpoint is planted (an int 3 over the instruction) while the machine runs "
         "(g).  /p breaks only when that process is the current one, /1 deletes the "
         "breakpoint when it breaks, Passes breaks on that pass.  kdsim's guest threads "
         "run through nt's routines only (x nt!* lists them): breakpoints in user-mode "
         "code are refused, and so are command strings.")
def bp(session, args: str, offset: int) -> str:
    bps = _breakpoints(session)
    ev = session.evaluator()
    i, n = 0, len(args)
    process, once = None, False
    while True:
        while i < n and args[i] in " \t":
            i += 1
        if args[i:i + 2].lower() == "/p":
            process, i = ev.parse(args, i + 2)
            process &= _mask(session)
        elif args[i:i + 2] == "/1":
            once, i = True, i + 2
        elif args[i:i + 1] == "/":
            raise ExprError("syntax", i)
        else:
            break
    if i >= n:
        raise CommandError("kdsim: bp needs an address\n")
    if '"' in args[i:]:
        raise CommandError("kdsim: breakpoint command strings are not supported\n")
    addr, j = ev.parse(args, i)
    addr &= _mask(session)
    passes = 1
    rest = args[j:].strip()
    if rest:
        passes, _ = ev.parse(args, j)
        if passes <= 0:
            raise ExprError("syntax", j + len(args[j:]) - len(args[j:].lstrip()))
    t = session.target
    if addr <= t.profile.address_space.highest_user_address:
        raise CommandError("kdsim: breakpoints in user-mode code are not supported (kdsim's "
                           "programs run through nt's routines only)\n")
    out = ""
    old = next((b for b in bps.values() if b.address == addr), None)
    if old is not None:
        out = f"breakpoint {old.id} redefined\n"
        num = old.id
    else:
        num = 0
        while num in bps:
            num += 1
    bps[num] = Breakpoint(num, addr, True, process, passes, passes, once)
    return out


def _ids(session, args: str) -> list[int]:
    """Breakpoint IDs: ``*``, numbers, ranges ``a-b``, separated by spaces or commas."""
    bps = _breakpoints(session)
    text = args.replace(",", " ").split()
    if not text:
        raise CommandError("kdsim: name the breakpoints (IDs, ranges, or *)\n")
    out = []
    for word in text:
        if word == "*":
            out += sorted(bps)
            continue
        lo, dash, hi = word.partition("-")
        try:
            a = int(lo, 10)
            b = int(hi, 10) if dash else a
        except ValueError:
            at = args.find(word)
            raise ExprError("syntax", at) from None
        out += [k for k in sorted(bps) if a <= k <= b]
    return out


@REGISTRY.command("bc", syntax="bc Breakpoints", summary="clear (delete) breakpoints",
                  help="Breakpoints: IDs, ranges (1-3) or * for all.")
def bc(session, args: str, offset: int) -> str:
    bps = _breakpoints(session)
    for k in _ids(session, args):
        bps.pop(k, None)
    return ""


@REGISTRY.command("bd", syntax="bd Breakpoints", summary="disable breakpoints")
def bd(session, args: str, offset: int) -> str:
    for k in _ids(session, args):
        _breakpoints(session)[k].enabled = False
    return ""


@REGISTRY.command("be", syntax="be Breakpoints", summary="enable breakpoints")
def be(session, args: str, offset: int) -> str:
    for k in _ids(session, args):
        _breakpoints(session)[k].enabled = True
    return ""


@REGISTRY.command("bl", syntax="bl [Breakpoints]", summary="list the breakpoints")
def bl(session, args: str, offset: int) -> str:
    bps = _breakpoints(session)
    ids = _ids(session, args) if args.strip() else sorted(bps)
    ptr = session.target.pointer_size
    out = []
    for k in ids:
        b = bps[k]
        state = "e Disable Clear " if b.enabled else "d Enable Clear "
        name = symbolize(session, b.address) or ""
        out.append(f"{b.id:6d} {state} {pointer(b.address, ptr)}     "
                   f"{b.remaining:04x} ({b.passes:04x}) {name}".rstrip())
        if b.process is not None:
            out.append(f"     Match process data {pointer(b.process, ptr)}")
    return "".join(line + "\n" for line in out)


# -- g ---------------------------------------------------------------------------------------

def _plant(session) -> dict[int, bytes]:
    """Write an int 3 over each enabled breakpoint; returns the bytes it replaced."""
    t = session.target
    saved = {}
    for b in sorted(_breakpoints(session).values(), key=lambda b: b.id):
        if not b.enabled or b.address in saved:
            continue
        r = t.read_virtual(b.address, 1)
        old = r.data
        if not r.complete or t.write_virtual(b.address, bytes([INT3])) != 1:
            _lift(session, saved)
            raise CommandError(
                f"Unable to insert breakpoint {b.id} at {pointer(b.address, t.pointer_size)}, "
                'Win32 error 0n998\n    "Invalid access to memory location."\n'
                "The breakpoint was set with BP.  If you want breakpoints to track module\n"
                "load/unload state, you might want to use BU.\n"
                "bp" + str(b.id) + " at " + pointer(b.address, t.pointer_size) + " failed\n")
        saved[b.address] = old
    return saved


def _lift(session, saved: dict[int, bytes]) -> None:
    for addr, old in saved.items():
        session.target.write_virtual(addr, old)


@REGISTRY.command(
    "g", syntax="g", summary="let the machine run until a breakpoint (or until it idles)",
    help="The guest threads started with !sim.run run their programs.  When none has "
         "anything left to do the machine only idles, and kdsim breaks in as a Ctrl+Break "
         "would (a real kd would wait for one).  Ctrl+C breaks in at once.  What the "
         "programs print with OutputDebugString appears as they run.")
def go(session, args: str, offset: int):
    if args.strip():
        raise CommandError("kdsim: g takes no address (kdsim runs no instructions to stop "
                           "at; set a breakpoint)\n")
    t = session.target
    bps = _breakpoints(session)
    switch = getattr(session, "switch_to", None)     # .process /i
    switch_cr3 = None
    if switch is not None:
        from .process import directory_table_base
        switch_cr3 = directory_table_base(session, switch)
    session.switch_to = None
    while True:
        saved = _plant(session)
        try:
            try:
                ev = t.go(switch_cr3)
            except RuntimeError as e:
                raise CommandError(f"kdsim: {e}\n") from None
        finally:
            _lift(session, saved)
        if ev.output:
            yield ev.output
        if ev.kind == "error":
            raise CommandError("kdsim internal error in the guest thread:\n" + ev.output)
        hit = next((b for b in sorted(bps.values(), key=lambda b: b.id)
                    if b.enabled and b.address == ev.address), None) \
            if ev.kind == "break" else None
        if ev.kind == "break" and hit is None:
            continue                          # a breakpoint cleared meanwhile: run on
        if hit is not None:
            if hit.process is not None:
                from .process import current_process
                if current_process(session) != hit.process:
                    continue
            if hit.remaining > 1:         # skip passes; from the given pass on it breaks
                hit.remaining -= 1            # every time (bl: 0001 (0002))
                continue
            if hit.once:
                del bps[hit.id]
        break
    # The machine stopped: the debugger's process context follows the processor again.
    session.implicit_process, session.context_cr3 = None, None
    session.next_display = {}
    if hit is not None:
        head = f"Breakpoint {hit.id} hit\n"
    elif ev.kind == "switch":      # the break-in .process /i asked for: no banner
        head = "Break instruction exception - code 80000003 (first chance)\n"
    else:
        head = BREAK_IN_BANNER
    yield head + where_line(session, ev.address) + instruction_line(session, ev.address)


# -- k, kn -----------------------------------------------------------------------------------

def _routine(session, addr: int):
    """(name, start, args, frame) of the nt routine containing ``addr``, or None."""
    t = session.target
    funcs = t.functions("nt")
    off = addr - t.kernel_base
    best = None
    for name, (rva, args, frame) in funcs.items():
        if rva <= off and (best is None or rva > best[1]):
            best = (name, rva, args, frame)
    if best is None:
        return None
    syms = sorted(v for v in t.symbols("nt").values() if v > best[1])
    if syms and off >= syms[0]:
        return None
    return best[0], t.kernel_base + best[1], best[2], best[3]


def walk(session) -> list[tuple[int, int, int]]:
    """The frames: (frame pointer or Child-SP, return address, instruction pointer)."""
    t = session.target
    ptr = t.pointer_size
    regs = t.registers()
    ip, sp, bp_ = regs["ip"], regs["sp"], regs["bp"]

    def read(addr):
        r = t.read_virtual(addr, ptr)
        return int.from_bytes(r.data, "little") if r.complete else None

    frames = []
    if ptr == 4:
        r = _routine(session, ip)
        if r is not None and r[1] == ip and r[2] is not None:   # at a C routine's entry
            ret = read(sp)
            frames.append((sp - 4, ret or 0, ip))
            ip, ebp = ret, bp_
        else:
            ebp = bp_
        seen = set()
        while ip and ebp and ebp not in seen and len(frames) < MAX_FRAMES:
            seen.add(ebp)
            nxt, ret = read(ebp), read(ebp + 4)
            if ret is None:
                break
            frames.append((ebp, ret, ip))
            if not ret or not nxt:
                break
            ip, ebp = ret, nxt
        return frames
    csp = sp
    while ip and len(frames) < MAX_FRAMES:
        r = _routine(session, ip)
        if r is None:                     # user mode: kdsim's fixed frame
            size = USER_FRAME - 8
        elif r[1] == ip and r[0] not in TRAP_ROUTINES:
            size = 0                      # at the routine's entry: nothing allocated yet
        else:
            size = r[3]
        ret = read(csp + size)
        if ret is None:
            break
        frames.append((csp, ret, ip))
        if r is not None and r[0] in TRAP_ROUTINES:
            csp = read(csp + size + 0x18)
            if csp is None:
                break
        else:
            csp = csp + size + 8
        ip = ret
    return frames


def _name(session, addr: int) -> str:
    return symbolize(session, addr) or f"0x{addr:x}"


@REGISTRY.command("k", syntax="k", summary="show the current thread's stack",
                  help="The frames are read from the thread's stacks in guest memory, from "
                       "the stopped processor's registers.")
def stack(session, args: str, offset: int) -> str:
    return _stack(session, args, False)


@REGISTRY.command("kn", syntax="kn", summary="show the current thread's stack, numbered")
def stack_numbered(session, args: str, offset: int) -> str:
    return _stack(session, args, True)


def _stack(session, args: str, numbered: bool) -> str:
    t = session.target
    if args.strip():
        raise CommandError("kdsim: k takes no arguments\n")
    ptr = t.pointer_size
    frames = walk(session)
    if ptr == 4:
        head = "ChildEBP RetAddr"
    else:
        head = "Child-SP          RetAddr           Call Site"
    out = [(" # " if numbered else "") + head]
    for i, (fp, ret, ip) in enumerate(frames):
        num = f"{i:02x} " if numbered else ""
        out.append(f"{num}{pointer(fp, ptr)} {pointer(ret, ptr)} {_name(session, ip)}")
    return "".join(line + "\n" for line in out)
