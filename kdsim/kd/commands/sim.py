"""!sim: kdsim's own extension, the one path from the debugger to the memory manager.

Each sub-command calls an operation of the emulated machine the way a program calls the
Windows API (VirtualAlloc, VirtualProtect, MapViewOfFile, a memory access that page
faults ...) or the way the kernel's own threads run (the working-set trimmer, the
modified page writer, the zero page thread), and prints one line of what happened.  The
user then looks at the result with the ordinary commands, which read guest memory.

The machine is reached through ``session.sim`` (kdsim.simulate.Simulator, handed to the
debugger of a booted machine); a target without one (a dump) cannot be driven.  A
process is named by image name, process ID or EPROCESS address; names and IDs are found
by walking PsActiveProcessHead in guest memory, as !process does, and the memory manager
is then told the EPROCESS address.
"""
from __future__ import annotations

from ...nt import protect as pr
from ..expr import ExprError
from ..fmt import pointer
from ..registry import REGISTRY
from ..session import CommandError
from .sim_args import (BAD_SECTION, Args, call, check_file_name, faults as _faults, machine,
                       plural as _plural, processes, protect_name as _protect_name,
                       status as _status)

PAGE = 0x1000
LOWEST_USER_ADDRESS = 0x10000     # nothing is ever mapped below 64 KB: smaller is a count
SHOWN_BYTES = 16                  # !sim.read shows this many bytes; db shows the rest

# name (without "!sim.") -> (syntax, one-line summary); the shell's completer reads it.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "spawn": ("!sim.spawn Image [Dll ...]",
              "create a process running Image, with ntdll, kernel32, KernelBase and Dlls"),
    "run": ("!sim.run Program",
            "start one of kdsim's programs; its thread runs when the machine runs (g)"),
    "kill": ("!sim.kill Process", "terminate a process"),
    "alloc": ("!sim.alloc Process Size [Address] [reserve|commit] [Protection]",
              "reserve and/or commit virtual memory in a process (VirtualAlloc)"),
    "free": ("!sim.free Process Address [Size] [decommit|release]",
             "decommit or release a process's virtual memory (VirtualFree)"),
    "protect": ("!sim.protect Process Address Size Protection",
                "change the protection of a process's pages (VirtualProtect)"),
    "read": ("!sim.read Process Address Length",
             "the process reads its memory, page faults and all"),
    "write": ('!sim.write Process Address Bytes|"Text"',
              "the process writes its memory, page faults and all"),
    "touch": ("!sim.touch Process Address [Size] [r|w|x]",
              "the process touches every page of a range (one access each)"),
    "map": ("!sim.map Process Section [Size] [image|file|pagefile]",
            "map a view of a section into a process, creating the section if needed"),
    "unmap": ("!sim.unmap Process Address", "unmap a view from a process"),
    "trim": ("!sim.trim Process [Pages | Address [Size]]",
             "take pages out of a process's working set"),
    "writeout": ("!sim.writeout [Pages]",
                 "run the modified page writer (modified list -> paging file -> standby)"),
    "zero": ("!sim.zero [Pages]", "run the zero page thread (free list -> zeroed list)"),
    "pressure": ("!sim.pressure Pages",
                 "memory pressure: repurpose the oldest standby pages"),
    "faults": ("!sim.faults", "page faults since boot, by how they were resolved"),
    "help": ("!sim.help", "what the !sim extension is, and its commands"),
}

def PROGRAMS() -> list[str]:
    """The programs !sim.run starts (the shell's completer offers them)."""
    from kdsim.simulate import Simulator
    return Simulator.programs()


HELP = {
    "spawn": "CreateProcess: a new address space and EPROCESS on PsActiveProcessHead, the "
             "image and its DLLs mapped (each DLL ends in .dll), PEB, TEB, stack and "
             "heap.  The parent is System.",
    "run": "CreateProcess of one of kdsim's programs (kdsim/nt/programs: memoryalloc, "
           "pagefault): the process is created now, its main thread runs the program's "
           "steps -- system services, memory accesses, OutputDebugString -- when the "
           "machine runs (g), through the kernel routines that serve them, so that "
           "breakpoints on them (bp nt!MmAccessFault) stop it.",
    "kill": "TerminateProcess: the private pages go to the free list, views are unmapped, "
            "the VADs, page tables and EPROCESS are freed.",
    "alloc": "NtAllocateVirtualMemory.  Without reserve or commit: MEM_RESERVE|MEM_COMMIT. "
             "commit with an Address commits pages of an existing reservation; with no "
             "Address it reserves too, as Windows does.  Protection: PAGE_* names joined "
             "with '|' (PAGE_READWRITE|PAGE_GUARD) or a number; PAGE_READWRITE by default.",
    "free": "NtFreeVirtualMemory: release (the default) or decommit.  Size 0 (the default) "
            "with the region's base releases the whole region.",
    "protect": "NtProtectVirtualMemory; prints the new and the former protection.",
    "read": "A user-mode read by the process: each page fault is resolved as MmAccessFault "
            "would, or the read stops with the NTSTATUS the program gets.  Shows the first "
            "16 bytes; db shows them all.",
    "write": "A user-mode write by the process: bytes (41 42 43, each 00-ff) or a quoted "
             "string, written as it is (no escapes).",
    "touch": "One access of the kind given (read by default) to each page of "
             "[Address, Address+Size); Size defaults to one byte.  Stops at the first "
             "fault that fails.",
    "map": "NtMapViewOfSection of the section called Section.  A new section is an image "
           "when the name ends in .dll, .exe or .sys, a mapped data file when it has "
           "another '.' or a '\\', else pagefile-backed shared memory; Size (64 KB by "
           "default) sets its size.  Two processes that map the same name share its pages.",
    "unmap": "NtUnmapViewOfSection; Address may be anywhere inside the view.  A "
             "pagefile-backed section goes with its last view.",
    "trim": "The working-set manager: a number below 10000 is a count of pages (in "
            "working-set list order), anything else an address (with Size, a range); "
            "nothing trims the whole working set.  A clean page goes to the standby list, "
            "a dirty one to the modified list, its PTE in transition; a shared page's PTE "
            "points at its prototype PTE again.",
    "writeout": "The modified page writer: each modified page is written to the paging file "
                "(a mapped data file's to its file) and moves to the standby list.",
    "zero": "The zero page thread: free pages are zeroed and move to the zeroed list.",
    "pressure": "Another user needs memory: the oldest standby pages are repurposed; the "
                "PTE that named each in transition gets the page's OriginalPte back (a "
                "paging-file PTE, a subsection or demand zero).",
    "faults": "The fault handler's counters since boot, one line a kind.",
    "help": "",
}

_KIND_WORDS = {"image": "image", "file": "data file", "pagefile": "pagefile-backed"}
_ACCESS_WORDS = {"r": "read", "w": "write", "x": "execute"}


def _command(name: str):
    """Register !sim.<name> from its row of SUBCOMMANDS; the handler gets the machine's
    handle and the arguments to read."""
    syntax, summary = SUBCOMMANDS[name]

    def wrap(fn):
        def handler(session, args: str, offset: int) -> str:
            sim = machine(session)
            if name not in ("faults", "help") and sim.busy:
                raise CommandError("kdsim: a guest thread is stopped inside the memory "
                                   "manager; let it finish (g) before driving the machine\n")
            return fn(session, sim, Args(session, syntax, args))
        REGISTRY.command(f"!sim.{name}", syntax=syntax, summary=summary, help=HELP[name],
                         kdsim_only=True)(handler)
        return fn
    return wrap


# -- processes -----------------------------------------------------------------------------

@_command("spawn")
def spawn(session, sim, a: Args) -> str:
    image = a.word()
    check_file_name(image, "an image")
    if image.lower().endswith(".dll"):
        raise CommandError(f"kdsim: {image} is a DLL; !sim.spawn runs an executable\n")
    dlls = []
    while not a.done():
        dll = a.word()
        check_file_name(dll, "a DLL")
        if not dll.lower().endswith(".dll"):
            raise CommandError(f"kdsim: {dll} is not a DLL name (name.dll)\n")
        dlls.append(dll)
    done = call(sim, sim.spawn, image, dlls)
    ptr = session.target.pointer_size
    name = next((p.name for p in processes(session) if p.ep == done.eprocess), image)
    return f"Created {name}: PROCESS {done.eprocess:0{2 * ptr}x}  Cid: {done.pid:04x}\n"


@_command("run")
def run(session, sim, a: Args) -> str:
    program = a.word()
    if not a.done():
        raise CommandError(f"kdsim: !sim.run takes one program ({', '.join(sim.programs())})\n")
    done = call(sim, sim.run, program)
    ptr = session.target.pointer_size
    name = next((p.name for p in processes(session) if p.ep == done.eprocess), program)
    return f"Created {name}: PROCESS {done.eprocess:0{2 * ptr}x}  Cid: {done.pid:04x}\n"


@_command("kill")
def kill(session, sim, a: Args) -> str:
    p = a.process()
    a.end()
    call(sim, sim.terminate, p.ep)
    ptr = session.target.pointer_size
    return f"Terminated {p.name}: PROCESS {p.ep:0{2 * ptr}x}  Cid: {p.pid:04x}\n"


# -- virtual memory ------------------------------------------------------------------------

@_command("alloc")
def alloc(session, sim, a: Args) -> str:
    p = a.process()
    kinds, numbers, protect = set(), [], None
    while not a.done():
        at = a.i
        kw = a.keyword("reserve", "commit")
        if kw:
            kinds.add(kw)
            continue
        named = a.protection()
        if named is not None:
            if protect is not None or len(numbers) == 3:
                raise ExprError("syntax", at)
            protect = named
            continue
        if len(numbers) == 3 or (len(numbers) == 2 and protect is not None):
            raise ExprError("syntax", at)
        numbers.append(a.number())
    if not numbers:
        raise a.usage()
    size = numbers[0]
    address = numbers[1] if len(numbers) > 1 else 0
    if len(numbers) > 2:
        protect = numbers[2]
    if protect is None:
        protect = pr.PAGE_READWRITE
    mem_type = (pr.MEM_RESERVE if "reserve" in kinds else 0) | \
        (pr.MEM_COMMIT if "commit" in kinds else 0) or pr.MEM_RESERVE | pr.MEM_COMMIT
    r = call(sim, sim.allocate, p.ep, size, address, mem_type, protect)
    if r.status:
        return f"NtAllocateVirtualMemory failed: {_status(sim, r.status)}\n"
    done = "MEM_COMMIT|MEM_RESERVE" if r.reserved and mem_type & pr.MEM_COMMIT else \
        "MEM_RESERVE" if r.reserved else "MEM_COMMIT"
    return (f"NtAllocateVirtualMemory: {pointer(r.base, session.target.pointer_size)} "
            f"size {r.size:#x} {done} {_protect_name(protect)}\n")


@_command("free")
def free(session, sim, a: Args) -> str:
    p = a.process()
    address = a.number()
    size, how = a.number_and_keyword("decommit", "release")
    free_type = pr.MEM_DECOMMIT if how == "decommit" else pr.MEM_RELEASE
    r = call(sim, sim.free, p.ep, address, size or 0, free_type)
    if r.status:
        return f"NtFreeVirtualMemory failed: {_status(sim, r.status)}\n"
    return (f"NtFreeVirtualMemory: {pointer(r.base, session.target.pointer_size)} "
            f"size {r.size:#x} {pr.MEM_NAMES[free_type]}\n")


@_command("protect")
def protect(session, sim, a: Args) -> str:
    p = a.process()
    address = a.number()
    size = a.number()
    value = a.protection()
    if value is None:
        value = a.number()
    a.end()
    r = call(sim, sim.protect, p.ep, address, size, value)
    if r.status:
        return f"NtProtectVirtualMemory failed: {_status(sim, r.status)}\n"
    return (f"NtProtectVirtualMemory: {pointer(r.base, session.target.pointer_size)} "
            f"size {r.size:#x} {_protect_name(value)}, was {_protect_name(r.old_protect)}\n")


# -- memory accesses -----------------------------------------------------------------------

MAX_READ = 0x100000       # kdsim choice: one !sim.read reads at most 1 MB


@_command("read")
def read(session, sim, a: Args) -> str:
    p = a.process()
    address = a.number()
    length = a.number()
    a.end()
    if not 0 < length <= MAX_READ:
        raise CommandError(f"kdsim: !sim.read reads 1 to {MAX_READ:#x} bytes\n")
    r = call(sim, sim.read, p.ep, address, length)
    at = pointer(address, session.target.pointer_size)
    if r.status:
        where = pointer(address + len(r.data), session.target.pointer_size)
        return (f"Read failed at {where} after {len(r.data):#x} bytes: {_status(sim, r.status)}; "
                f"{_faults(sim, r.faults)}\n")
    shown = " ".join(f"{b:02x}" for b in r.data[:SHOWN_BYTES])
    more = " ..." if len(r.data) > SHOWN_BYTES else ""
    return f"Read {length:#x} bytes at {at}: {shown}{more}; {_faults(sim, r.faults)}\n"


@_command("write")
def write(session, sim, a: Args) -> str:
    p = a.process()
    address = a.number()
    text = a.string()
    if text is not None:
        a.end()
        data = text.encode("latin-1", "replace")      # one byte a character, as ea
    else:
        values = []
        while not a.done():
            at = a.i
            v = a.number()
            if v > 0xFF:
                raise CommandError(f"kdsim: {a.text[at:a.i].strip()} is not a byte "
                                   f"(00-ff); !sim.write takes bytes or a \"string\"\n")
            values.append(v)
        data = bytes(values)
    if not data:
        raise a.usage()
    r = call(sim, sim.write, p.ep, address, data)
    at = pointer(address, session.target.pointer_size)
    if r.status:
        return (f"Write of {len(data):#x} bytes at {at} failed: {_status(sim, r.status)}; "
                f"{_faults(sim, r.faults)}\n")
    return f"Wrote {len(data):#x} bytes at {at}; {_faults(sim, r.faults)}\n"


@_command("touch")
def touch(session, sim, a: Args) -> str:
    p = a.process()
    address = a.number()
    size, kind = a.number_and_keyword("r", "w", "x")
    kind = kind or "r"
    r = call(sim, sim.touch, p.ep, address, size or 1, kind)
    ptr = session.target.pointer_size
    how = _ACCESS_WORDS[kind]
    if r.status:
        where = pointer((address & ~(PAGE - 1)) + r.pages * PAGE, ptr)
        return (f"Touch ({how}) failed at {where} after {_plural(r.pages, 'page')}: "
                f"{_status(sim, r.status)}; {_faults(sim, r.faults)}\n")
    return (f"Touched {_plural(r.pages, 'page')} from {pointer(address, ptr)} ({how}); "
            f"{_faults(sim, r.faults)}\n")


# -- sections ------------------------------------------------------------------------------

@_command("map")
def map_(session, sim, a: Args) -> str:
    p = a.process()
    name = a.word()
    if BAD_SECTION.search(name):
        raise CommandError(f"kdsim: '{name}' is not a section or file name\n")
    size, kind = a.number_and_keyword("image", "file", "pagefile")
    v = call(sim, sim.map_view, p.ep, name, size or 0, kind)
    if v.status:
        return f"NtMapViewOfSection failed: {_status(sim, v.status)}\n"
    what = f"{v.section} ({_KIND_WORDS[v.kind]} section, {_plural(v.pages, 'page')})"
    at = pointer(v.base, session.target.pointer_size)
    if v.created:
        return f"Created {what} and mapped a view at {at}\n"
    return f"Mapped a view of {what} at {at}\n"


@_command("unmap")
def unmap(session, sim, a: Args) -> str:
    p = a.process()
    address = a.number()
    a.end()
    v = call(sim, sim.unmap_view, p.ep, address)
    if v.status:
        return f"NtUnmapViewOfSection failed: {_status(sim, v.status)}\n"
    return (f"Unmapped the view of {v.section} at "
            f"{pointer(v.base, session.target.pointer_size)}\n")


# -- the working-set manager and the kernel's page threads -------------------------------

@_command("trim")
def trim(session, sim, a: Args) -> str:
    p = a.process()
    start = end = count = None
    if not a.done():
        value = a.number()
        if value < LOWEST_USER_ADDRESS:
            count = value
        else:
            size = a.number() if not a.done() else 1
            start = value & ~(PAGE - 1)
            end = value + max(size, 1)
    a.end()
    t = call(sim, sim.trim, p.ep, start, end, count)
    parts = []
    if t.standby:
        parts.append(f"{t.standby} to the standby list")
    if t.modified:
        parts.append(f"{t.modified} to the modified list")
    if t.shared:
        parts.append(f"{t.shared} still mapped by other processes")
    detail = ": " + ", ".join(parts) if parts else ""
    return f"Trimmed {_plural(t.pages, 'page')} from {p.name}'s working set{detail}\n"


def _optional_count(a: Args) -> int | None:
    value = None if a.done() else a.number()
    a.end()
    return value


@_command("writeout")
def writeout(session, sim, a: Args) -> str:
    w = call(sim, sim.write_modified, _optional_count(a))
    full = "; the paging file is full" if w.paging_file_full else ""
    return (f"Modified page writer: {_plural(w.pages, 'page')} written, now on the "
            f"standby list{full}\n")


@_command("zero")
def zero(session, sim, a: Args) -> str:
    n = call(sim, sim.zero_pages, _optional_count(a))
    return f"Zero page thread: {_plural(n, 'page')} zeroed, now on the zeroed list\n"


@_command("pressure")
def pressure(session, sim, a: Args) -> str:
    count = a.number()
    a.end()
    n = call(sim, sim.repurpose, count)
    empty = " (the standby list is empty)" if n < count else ""
    return (f"Memory pressure: {_plural(n, 'standby page')} repurposed, now on the "
            f"free list{empty}\n")


@_command("faults")
def faults(session, sim, a: Args) -> str:
    a.end()
    counts = sim.fault_counts()
    resolved = list(sim.RESOLVED_KINDS) + sorted(
        k for k in counts if k not in sim.RESOLVED_KINDS and k not in sim.FAILED_KINDS)
    lines = ["Page faults since boot, by how they were resolved:"]
    lines += [f"  {counts.get(k, 0):8d}  {k}" for k in resolved]
    lines.append(f"  {sum(counts.get(k, 0) for k in resolved):8d}  resolved in all")
    lines += [f"  {counts.get(k, 0):8d}  {k} ({sim.status_name(value)})"
              for k, value in sim.FAILED_KINDS.items()]
    return "\n".join(lines) + "\n"


# -- the extension's own help --------------------------------------------------------------

def extension_help() -> str:
    lines = ["!sim is kdsim's own extension (WinDbg has none like it): it drives the "
             "emulated machine.",
             "Each command calls the memory manager the way a program calls the Windows "
             "API, or runs one",
             "of the kernel's memory threads, and prints one line of what happened; look "
             "at the result",
             "with the ordinary commands (!pte, !pfn, !vad, !process, db, dt ...).",
             ""]
    for syntax, summary in SUBCOMMANDS.values():
        lines += [f"  {syntax}", f"        {summary}"]
    lines += ["",
              "Process: an image name (notepad.exe), a process ID or an EPROCESS address.",
              "Numbers are expressions, hex by default; Protection is PAGE_* names joined "
              "with '|' or a number.",
              ".hh !sim.<command> shows a command's notes."]
    return "\n".join(lines) + "\n"


@REGISTRY.command("!sim.help", syntax=SUBCOMMANDS["help"][0], summary=SUBCOMMANDS["help"][1],
                  kdsim_only=True)
def sim_help(session, args: str, offset: int) -> str:
    return extension_help()


@REGISTRY.command("!sim", syntax="!sim", summary="kdsim's extension that drives the machine "
                  "(!sim.help lists its commands)", kdsim_only=True)
def sim_bare(session, args: str, offset: int) -> str:
    text = args.strip()
    if text.startswith("."):          # "!sim.nosuch": the extension has no such export
        return f"No export {text[1:].split()[0] if text[1:].split() else ''} found\n"
    return extension_help()
