"""Guest threads that run programs, so that a debugger can stop them.

kdsim has no instruction interpreter.  A *program* (``kdsim/nt/programs/<name>.toml``) is
a list of steps -- the system services a user program calls and the memory it touches --
and a guest thread runs it one step at a time when the debugger lets the machine run
(``g``).  On the way the thread passes through the kernel routines that really serve each
step (ntimage.FUNCTIONS): a fault enters KiTrap0E (x64: KiPageFault), MmAccessFault,
MiDispatchFault and the MiResolve* routine the PTE calls for; a VirtualAlloc enters
KiFastCallEntry (x64: KiSystemServiceCopyEnd) and NtAllocateVirtualMemory.

Everything a debugger sees of this is in guest memory or in the processor's registers:

* each routine has its prologue bytes in nt's image; on entry the thread reads the byte
  at the routine's address and stops if it is an int 3 (0xcc) -- which is how a debugger's
  breakpoint works: the debugger writes the int 3 before it lets the machine run, and
  restores the byte when the machine stops;
* every call pushes its return address (and, on x86, the caller's frame pointer) on the
  thread's kernel stack, and a trap from user mode leaves the user-mode return address and
  frame pointer where a trap frame keeps them (x86: KTRAP_FRAME.DbgEbp/DbgEip at offsets 0
  and 4; x64: the machine frame RIP/RSP that the trap pushes), so a debugger walks the
  stack from the registers alone;
* the registers at a stop (instruction pointer, stack and frame pointers, CR2 after a page
  fault, CR3 of the thread's process) are the processor context the debugger asks for.

The debugger and the guest never run at the same time: ``go()`` hands the processor to
the guest thread (a host thread, so that a stop can happen in the middle of a routine)
and waits until it stops, in the order the steps dictate -- the same transcript on every
run.
"""
from __future__ import annotations

import functools
import importlib.resources
import pathlib
import queue
import struct
import threading
import tomllib
from dataclasses import dataclass, field
from typing import NamedTuple

from . import ntimage
from . import protect as pr

PAGE = 0x1000
# KERNEL_STACK_SIZE: 12 KB on x86 (WRK ke/i386), 24 KB on x64 (KERNEL_STACK_SIZE 0x6000).
KERNEL_STACK = {4: 0x3000, 8: 0x6000}
TRAP_FRAME = {4: 0x8c, 8: 0x190}      # sizeof(KTRAP_FRAME) x86 / x64
USER_FRAME = 0x30                     # x64 user routines: kdsim's fixed frame (no unwind data)
# User-mode code addresses (offsets in the modules; kdsim choices).
MAIN_RVA = 0x1c00                     # the program's main routine in its image
STEP_BYTES = 0x10                     # code bytes between two steps of main
# (inside kdsim's images, which are smaller than the real files)
SERVICE_STUB_RVA = {4: 0x64f0, 8: 0x4fd0}      # ntdll's system-service stub return
THUNK_RVA = {"kernel32.dll": 0x3c45, "ntdll.dll": 0x37f5}     # thread start thunks
FRAME_SIZES = {f.name: f.frame for f in ntimage.FUNCTIONS}     # x64 unwind data


class ProgramError(Exception):
    pass


class StopEvent(NamedTuple):
    """Why the guest stopped: "break" (an int 3 at ``address``), "idle" (no thread has
    anything left to run: the debugger breaks in), "interrupt" (Ctrl+C / Ctrl+Break), or
    "error" (``output`` says what went wrong inside kdsim).  ``output`` is what the guest
    printed with OutputDebugString / DbgPrint while it ran."""
    kind: str
    address: int
    output: str = ""


@dataclass
class GuestThread:
    proc: object
    program: str
    steps: list
    stack_base: int               # kernel stack: highest address (exclusive)
    user_bp: int                  # main's frame (x86 ebp / x64 rsp) on the user stack
    pc: int = 0                   # next step
    env: dict = field(default_factory=dict)
    frames: list = field(default_factory=list)   # routines entered, innermost last
    sp: int = 0
    bp: int = 0

    @property
    def done(self) -> bool:
        return self.pc >= len(self.steps)


def load_program(name_or_path: str) -> dict:
    path = pathlib.Path(name_or_path)
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text())
        stem = name_or_path.lower().removesuffix(".exe")
        text = importlib.resources.files("kdsim.nt.programs").joinpath(
            f"{stem}.toml").read_text()
    except (FileNotFoundError, OSError):
        raise ProgramError(f"no program {name_or_path!r} (see kdsim/nt/programs/)") from None
    return tomllib.loads(text)


def program_names() -> list[str]:
    files = importlib.resources.files("kdsim.nt.programs").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml"))


def traced(*routines: str, entry: str | None = None):
    """Mark a memory-manager method as running through ``routines`` (outermost first)
    when a guest thread calls it: the thread pushes their frames and stops at an int 3.
    ``entry`` ("fault" or "service") names how the thread enters the kernel when it comes
    from user mode."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(self, *args, **kw):
            ex = self.s.tracer
            if ex is None:
                return fn(self, *args, **kw)
            depth = ex.enter(routines, entry, args)
            try:
                return fn(self, *args, **kw)
            finally:
                ex.leave(depth)
        return inner
    return wrap


class Executor:
    def __init__(self, system):
        self.s = system
        self.ptr = system.profile.pointer_size
        self.threads: list[GuestThread] = []
        self.current: GuestThread | None = None
        self.regs = {"ip": system.functions["RtlpBreakWithStatusInstruction"], "sp": 0,
                     "bp": 0, "cr2": 0}
        self._events: queue.Queue = queue.Queue()
        self._resume: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._output: list[str] = []
        self.interrupt = False
        self.switch_cr3: int | None = None
        mode = system.profile.paging.name
        self.trap = "KiPageFault" if mode == "x64" else "KiTrap0E"
        self.service = "KiSystemServiceCopyEnd" if mode == "x64" else "KiFastCallEntry"

    # -- starting programs (the debugger is in control: nothing is traced) -----------------

    def start(self, program: str):
        """Create the program's process with its main thread ready to run; returns the
        process.  Its first step runs at the next ``go``."""
        doc = load_program(program)
        steps = list(doc.get("step", []))
        s = self.s
        proc = s.spawn(doc["image"], None, doc.get("dlls", ()))
        stack = s.nonpaged_pool.alloc(KERNEL_STACK[self.ptr], "Stak", align=PAGE)
        base = stack + KERNEL_STACK[self.ptr]
        user_bp = self._initial_user_frames(proc)
        t = GuestThread(proc, program, steps, base, user_bp)
        t.sp = t.bp = base - TRAP_FRAME[self.ptr]
        self.threads.append(t)
        return proc

    def _initial_user_frames(self, proc) -> int:
        """The frames the new thread starts with on its user stack (what
        RtlInitializeContext and the start thunks leave): main <- kernel32's
        BaseThreadInitThunk <- ntdll's RtlUserThreadStart, ending in a zero frame."""
        from .process import write_user
        s, ptr = self.s, self.ptr
        top = proc.stack[1]
        k32 = s.image_section("kernel32.dll").base + THUNK_RVA["kernel32.dll"]
        ntd = s.image_section("ntdll.dll").base + THUNK_RVA["ntdll.dll"]
        fmt = "<I" if ptr == 4 else "<Q"
        # (below main's frame, a slot for the frame of ntdll's system-service stub)
        if ptr == 4:       # x86: an EBP chain [ebp] = caller's ebp, [ebp+4] = return
            e2 = top - 0x20
            e1 = e2 - 0x18
            e0 = e1 - 0x40
            blob = bytearray(top - e0 + 0x20)
            for frame, nxt, ret in ((e0, e1, k32), (e1, e2, ntd), (e2, 0, 0)):
                struct.pack_into("<II", blob, frame - e0 + 0x20, nxt, ret)
            write_user(s, proc, e0 - 0x20, bytes(blob))
            return e0
        # x64: fixed-size user frames, the return address in the frame's last slot
        f0 = top - 4 * USER_FRAME
        blob = bytearray(top - f0 + USER_FRAME)
        for i, ret in enumerate((k32, ntd, 0)):
            struct.pack_into(fmt, blob, (i + 1) * USER_FRAME + USER_FRAME - 8, ret)
        write_user(s, proc, f0 - USER_FRAME, bytes(blob))
        return f0

    # -- running (called by the debugger) -------------------------------------------------

    def go(self, switch_cr3: int | None = None) -> StopEvent:
        """Let the guest run until it stops; returns why.  ``switch_cr3``: when the
        machine idles, break in with that address space loaded ("switch", what the
        debugger's .process /i asks for) instead of System's."""
        self.switch_cr3 = switch_cr3
        if self._worker is None or not self._worker.is_alive():
            if not any(not t.done for t in self.threads):
                return self._idle()
            self._worker = threading.Thread(target=self._work, daemon=True,
                                            name="kdsim guest")
            self._worker.start()
        else:
            self._resume.put(None)
        while True:
            try:
                ev = self._events.get(timeout=0.05)
                break
            except queue.Empty:
                continue
            except KeyboardInterrupt:      # Ctrl+C: break in at the next routine or step
                self.interrupt = True
        self._worker_done()
        out, self._output = "".join(self._output), []
        if ev.kind == "idle":
            return self._idle(out)
        return ev._replace(output=out)

    def _worker_done(self) -> None:
        if self._worker is not None and not self._worker.is_alive():
            self._worker = None

    @property
    def stopped_inside(self) -> bool:
        """A guest thread is stopped in the middle of a step (the memory manager is in
        the middle of an operation)."""
        return self._worker is not None and self._worker.is_alive()

    def _idle(self, out: str = "") -> StopEvent:
        """Nothing left to run: the processor idles in the System process and the
        debugger breaks in there."""
        self.interrupt = False
        self.current = None
        switch = getattr(self, "switch_cr3", None)
        self.s.machine.cr3 = switch if switch is not None else self.s.kernel_tables.top
        self.s.current = None
        self.switch_cr3 = None
        self.regs = {"ip": self.s.functions["RtlpBreakWithStatusInstruction"], "sp": 0,
                     "bp": 0, "cr2": self.regs.get("cr2", 0)}
        return StopEvent("switch" if switch is not None else "idle", self.regs["ip"], out)

    # -- the guest side (the worker thread) -------------------------------------------------

    def _work(self) -> None:
        try:
            for t in self.threads:
                while not t.done:
                    if self.interrupt:       # Ctrl+C: the break-in runs between two steps
                        ip = self.s.functions["RtlpBreakWithStatusInstruction"]
                        self.regs.update(ip=ip, sp=0, bp=0)
                        self._stop("interrupt", ip)
                    self._step(t)
            self._events.put(StopEvent("idle", 0))
        except BaseException as e:        # noqa: BLE001 -- reported to the debugger
            import traceback
            self._events.put(StopEvent("error", 0, "".join(
                traceback.format_exception(type(e), e, e.__traceback__))))
        finally:
            self.s.tracer = None
            self.current = None

    def _stop(self, kind: str, address: int) -> None:
        """Stop the processor here and wait for the debugger's next ``go``."""
        self.interrupt = False
        self.s.tracer = None
        self._events.put(StopEvent(kind, address))
        self._resume.get()
        self.s.tracer = self

    def _step(self, t: GuestThread) -> None:
        from .scenario import ScenarioError, _step
        step = dict(t.steps[t.pc])
        self.current = t
        s = self.s
        s.switch_to(t.proc)
        s.tracer = self
        self.regs.update(ip=self._user_ip(t), sp=t.user_bp, bp=t.user_bp)
        try:
            op = step.get("op")
            if op == "print":        # OutputDebugString; {name:#x} formats a named address
                text = step["text"].format(**t.env)
                self._output.append(text if text.endswith("\n") else text + "\n")
            elif op == "write" and step.get("on_fault") == "commit":
                self._write_committing(t, step)
            else:
                step["process"] = "self"
                try:
                    _step(s, step, t.env, {"self": t.proc})
                except ScenarioError as e:
                    raise ProgramError(f"{t.program} step {t.pc + 1} ({op}): {e}") from None
        finally:
            s.tracer = None
        t.pc += 1

    def _write_committing(self, t: GuestThread, step: dict) -> None:
        """Write byte by byte, page by page; an access violation goes to the program's
        exception filter, which commits the page (VirtualAlloc MEM_COMMIT) and retries --
        the SDK's "reserve, then commit on fault" sample."""
        from .fault import access
        from .scenario import _addr
        s = self.s
        va = _addr(t.env, step["address"], s)
        data = step["data"].encode() if "data" in step else \
            bytes([step.get("fill", 0)]) * step.get("size", PAGE)
        protect = pr.PAGE_READWRITE
        done = 0
        while done < len(data):
            n = min(len(data) - done, PAGE - (va + done) % PAGE)
            status, _ = access(s, t.proc, va + done, data[done:done + n], "w")
            if status == pr.STATUS_ACCESS_VIOLATION:
                r = s.vm.allocate(t.proc, PAGE, (va + done) & ~(PAGE - 1), reserve=False,
                                  protect=protect)
                if r.status:
                    raise ProgramError(f"{t.program}: commit failed {r.status:#x}")
                continue
            if status:
                raise ProgramError(f"{t.program}: write at {va + done:#x}: {status:#x}")
            done += n

    def _user_ip(self, t: GuestThread) -> int:
        exe = t.proc.get_field("SectionBaseAddress")
        return exe + MAIN_RVA + STEP_BYTES * (t.pc + 1)

    # -- routines: frames on the kernel stack, int 3 checks --------------------------------

    def enter(self, routines: tuple[str, ...], entry: str | None, args) -> int:
        """Push the frames of ``routines``; returns the depth to come back to."""
        t = self.current
        depth = len(t.frames)
        if not t.frames:
            if entry is None:            # kernel work on behalf of the thread (untraced)
                return depth
            self._trap_from_user(t, self.trap if entry == "fault" else self.service)
        if routines and routines[0] == "MmAccessFault" and args:
            self.regs["cr2"] = args[1] & ((1 << 8 * self.ptr) - 1)
        for name in routines:
            self._call(t, name)
        return depth

    def leave(self, depth: int) -> None:
        t = self.current
        if t is None:
            return
        while len(t.frames) > depth:
            name, sp, bp = t.frames.pop()
            t.sp, t.bp = sp, bp
        if not t.frames:
            t.sp = t.bp = t.stack_base - TRAP_FRAME[self.ptr]

    def _write(self, va: int, value: int) -> None:
        self.s.kmem.write(va, value.to_bytes(self.ptr, "little"))

    def _trap_from_user(self, t: GuestThread, routine: str) -> None:
        """Enter the kernel from user mode through ``routine``: the trap frame at the top
        of the kernel stack records where user mode was."""
        ptr = self.ptr
        tf = t.stack_base - TRAP_FRAME[ptr]
        user_ip, user_bp = self._user_ip(t), t.user_bp
        if routine == self.service:
            # A system service is called from ntdll's stub, which main called: the stub's
            # frame sits below main's on the user stack (the slot the thread start left).
            stub = user_bp - (0x20 if ptr == 4 else USER_FRAME)
            if ptr == 4:
                self._write(stub, user_bp)
                self._write(stub + 4, user_ip)
            else:
                self._write(stub + USER_FRAME - 8, user_ip)
            user_ip = self.s.image_section("ntdll.dll").base + SERVICE_STUB_RVA[ptr]
            user_bp = stub
        if ptr == 4:        # KTRAP_FRAME.DbgEbp, DbgEip
            self._write(tf, user_bp)
            self._write(tf + 4, user_ip)
            t.sp, t.bp = tf, tf
        else:               # the machine frame the processor pushes: RIP, CS, EFLAGS, RSP, SS
            mf = t.stack_base - 5 * 8
            self._write(mf, user_ip)
            self._write(mf + 0x18, user_bp)
            t.sp = t.bp = mf - self._frame_size(routine)
        self.regs.update(ip=self.s.functions[routine], sp=t.sp, bp=t.bp)
        t.frames.append((routine, t.sp, t.bp))
        self._check_int3(routine)

    def _call(self, t: GuestThread, name: str) -> None:
        ptr = self.ptr
        fn = self.s.functions
        caller = t.frames[-1][0]
        ret = fn[caller] + ntimage.return_offset(caller, name)
        saved = (t.sp, t.bp)
        sp = t.sp - ptr
        self._write(sp, ret)                 # call: the return address
        self.regs.update(ip=fn[name], sp=sp, bp=t.bp)
        t.frames.append((name, *saved))
        self._check_int3(name)
        if ptr == 4:                         # push ebp; mov ebp, esp; sub esp, locals
            sp -= 4
            self._write(sp, t.bp)
            t.bp = sp
            t.sp = sp - 0x40
        else:                                # sub rsp, frame (the unwind data's size)
            t.sp = sp - self._frame_size(name)
            t.bp = t.sp

    def _frame_size(self, name: str) -> int:
        return FRAME_SIZES[name]

    def _check_int3(self, name: str) -> None:
        va = self.s.functions[name]
        if self.s.kmem.read(va, 1) == ntimage.INT3:
            self._stop("break", va)
