"""The debugger's one handle on the memory manager: the operations a program (or the
kernel's own threads) would perform on a running Windows machine, by name.

``Simulator`` wraps an ``NtSystem``.  The kd engine's ``!sim`` extension holds one (as
``Debugger.sim``) and calls it the way a program calls the Windows API: it names a
process by its EPROCESS address (which the debugger found by walking the process list
in guest memory), passes plain numbers and gets plain results back -- an NTSTATUS, an
address, a count.  It never receives the memory manager's Python objects, and it reads
what the operation did to the machine from guest memory afterwards, like any other
command.

A few guards live here rather than in the memory manager: it takes pages only off the
zeroed and free lists (it does not steal standby pages when they run out), so an
operation that would need more pages than are left is refused with STATUS_NO_MEMORY
before it starts instead of failing half done.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .nt import protect as pr
from .nt.pfn import ACTIVE, FREE, MODIFIED, STANDBY, ZEROED

PAGE = 0x1000
STATUS_NOT_MAPPED_VIEW = 0xC0000019
STATUS_NAMES = {**pr.STATUS_NAMES, STATUS_NOT_MAPPED_VIEW: "STATUS_NOT_MAPPED_VIEW"}
# Pages kept back for page tables, working-set list growth and pool that an operation
# may need besides the pages it faults in (kdsim choice).
MARGIN = 32
SPAWN_PAGES = 256            # a new process: tables, working set, PEB/TEB, stack, loader
TOUCH_CHUNK = 256            # pages touched between two checks of the free lists
MAX_SECTION_PAGES = 0x10000  # 256 MB: the prototype PTEs live in paged pool

# How the fault handler resolved a fault (its counter names), in the order !sim.faults
# lists them; the last three are faults that were not resolved.
RESOLVED_KINDS = ("demand zero", "dirty bit", "transition", "transition (modified)",
                  "hard fault", "copy on write", "prototype (resident)",
                  "prototype (transition)", "prototype (demand zero)",
                  "prototype (read from the file)", "prototype (read from the paging file)")
FAILED_KINDS = {"guard page": pr.STATUS_GUARD_PAGE_VIOLATION,
                "access violation": pr.STATUS_ACCESS_VIOLATION,
                "unsupported": pr.STATUS_IN_PAGE_ERROR}


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status & 0xFFFFFFFF, "0x%08X" % (status & 0xFFFFFFFF))


class SimError(Exception):
    """The operation cannot be asked for at all (no such process, ...): ``str(e)`` says
    why in one line."""


@dataclass(frozen=True)
class Spawned:
    eprocess: int
    pid: int
    image_base: int


@dataclass(frozen=True)
class VmOutcome:
    """NtAllocate/Free/ProtectVirtualMemory's answer: the region it worked on."""
    status: int
    base: int = 0
    size: int = 0
    old_protect: int = 0
    reserved: bool = False        # allocate: a new reservation was made


@dataclass(frozen=True)
class Access:
    """A memory access by a process: NTSTATUS, the bytes read, how many pages were
    touched (touch), and the faults resolved on the way, by kind."""
    status: int
    data: bytes = b""
    pages: int = 0
    faults: dict = field(default_factory=dict)


@dataclass(frozen=True)
class View:
    status: int
    base: int = 0
    section: str = ""
    kind: str = ""                # "image", "file" or "pagefile"
    pages: int = 0
    created: bool = False


@dataclass(frozen=True)
class Trimmed:
    pages: int
    standby: int                  # clean pages now on the standby list
    modified: int                 # dirty pages now on the modified list
    shared: int                   # shared pages other processes still map


@dataclass(frozen=True)
class Written:
    pages: int
    paging_file_full: bool


class Simulator:
    # What the extension needs to word results, so that it imports nothing of the
    # memory manager.
    Error = SimError
    RESOLVED_KINDS = RESOLVED_KINDS
    FAILED_KINDS = FAILED_KINDS

    def __init__(self, nt):
        self._nt = nt

    @staticmethod
    def status_name(status: int) -> str:
        return status_name(status)

    # -- processes ------------------------------------------------------------------------

    def _proc(self, eprocess: int):
        nt = self._nt
        for proc in nt.process_objects.values():
            if proc.ep == eprocess:
                return proc
        if eprocess == getattr(nt, "system_process", None):
            raise SimError("the System process has no user address space")
        raise SimError(f"no process has its EPROCESS at {eprocess:x}")

    def _available(self) -> int:
        return self._nt.pfn.total(ZEROED) + self._nt.pfn.total(FREE)

    def _can_take(self, pages: int) -> bool:
        return self._available() >= pages + MARGIN

    def spawn(self, image: str, dlls=(), parent: int | None = None) -> Spawned:
        """CreateProcess: an address space, an EPROCESS on PsActiveProcessHead, the image,
        ntdll, kernel32, KernelBase and ``dlls`` mapped, PEB, TEB, stack and heap."""
        nt = self._nt
        parent_proc = self._proc(parent) if parent is not None else None
        if not self._can_take(SPAWN_PAGES):
            raise SimError(f"{status_name(pr.STATUS_NO_MEMORY)}: too few free pages "
                           "to create a process")
        try:
            proc = nt.spawn(image, parent_proc, tuple(dlls))
        except (MemoryError, RuntimeError) as e:
            raise SimError(f"creating {image} failed: {e}") from None
        return Spawned(proc.ep, proc.pid, proc.get_field("SectionBaseAddress"))

    def run(self, program: str) -> Spawned:
        """Start one of kdsim's programs (kdsim/nt/programs): its process is created at
        once, its main thread runs its steps when the machine runs (g)."""
        from .nt.execution import ProgramError
        if not self._can_take(SPAWN_PAGES):
            raise SimError(f"{status_name(pr.STATUS_NO_MEMORY)}: too few free pages "
                           "to create a process")
        try:
            proc = self._nt.executor.start(program)
        except ProgramError as e:
            raise SimError(str(e)) from None
        except (MemoryError, RuntimeError) as e:
            raise SimError(f"starting {program} failed: {e}") from None
        return Spawned(proc.ep, proc.pid, proc.get_field("SectionBaseAddress"))

    @property
    def busy(self) -> bool:
        """A guest thread is stopped in the middle of a memory-manager operation."""
        return self._nt.executor.stopped_inside

    @staticmethod
    def programs() -> list[str]:
        from .nt.execution import program_names
        return program_names()

    def terminate(self, eprocess: int) -> int:
        """TerminateProcess; returns the process ID it had."""
        if eprocess == getattr(self._nt, "system_process", None):
            raise SimError("the System process cannot be terminated")
        proc = self._proc(eprocess)
        self._nt.terminate(proc)
        return proc.pid

    # -- virtual memory -------------------------------------------------------------------

    def allocate(self, eprocess: int, size: int, address: int = 0,
                 allocation_type: int = pr.MEM_RESERVE | pr.MEM_COMMIT,
                 protect: int = pr.PAGE_READWRITE) -> VmOutcome:
        """NtAllocateVirtualMemory.  As in the WRK, MEM_COMMIT with no base address
        reserves the region too."""
        proc = self._proc(eprocess)
        if allocation_type & ~(pr.MEM_RESERVE | pr.MEM_COMMIT) or not allocation_type:
            return VmOutcome(pr.STATUS_INVALID_PARAMETER)
        reserve = bool(allocation_type & pr.MEM_RESERVE) or address == 0
        commit = bool(allocation_type & pr.MEM_COMMIT)
        if not self._can_take(0):
            return VmOutcome(pr.STATUS_NO_MEMORY)
        r = self._nt.vm.allocate(proc, size, address, reserve=reserve, commit=commit,
                                 protect=protect)
        return VmOutcome(r.status, r.base, r.size, r.old_protect, reserve and r.ok)

    def free(self, eprocess: int, address: int, size: int = 0,
             free_type: int = pr.MEM_RELEASE) -> VmOutcome:
        """NtFreeVirtualMemory (MEM_RELEASE or MEM_DECOMMIT)."""
        proc = self._proc(eprocess)
        if free_type not in (pr.MEM_RELEASE, pr.MEM_DECOMMIT):
            return VmOutcome(pr.STATUS_INVALID_PARAMETER)
        r = self._nt.vm.free(proc, address, size, release=free_type == pr.MEM_RELEASE)
        return VmOutcome(r.status, r.base, r.size)

    def protect(self, eprocess: int, address: int, size: int, protect: int) -> VmOutcome:
        """NtProtectVirtualMemory; ``old_protect`` is the first page's former protection."""
        r = self._nt.vm.protect(self._proc(eprocess), address, size, protect)
        return VmOutcome(r.status, r.base, r.size, r.old_protect)

    # -- memory accesses by a process -----------------------------------------------------

    def _counts(self) -> dict:
        return dict(self._nt.faults.counts)

    def _resolved_since(self, before: dict) -> dict:
        now = self._nt.faults.counts
        return {k: now[k] - before.get(k, 0) for k in now
                if k not in FAILED_KINDS and now[k] != before.get(k, 0)}

    def _wraps(self, address: int, size: int) -> bool:
        """The range runs past the top of the address space (the C core refuses it)."""
        return address + size > 1 << 8 * self._nt.profile.pointer_size

    @staticmethod
    def _pages_spanned(address: int, size: int) -> int:
        return ((address + max(size, 1) + PAGE - 1) // PAGE) - address // PAGE

    def read(self, eprocess: int, address: int, length: int) -> Access:
        """The process reads ``length`` bytes at ``address`` (page faults resolved as
        they come); ``data`` is what it read before it stopped."""
        from .nt.fault import access
        proc = self._proc(eprocess)
        if self._wraps(address, length):
            return Access(pr.STATUS_ACCESS_VIOLATION)
        if not self._can_take(self._pages_spanned(address, length)):
            return Access(pr.STATUS_NO_MEMORY)
        before = self._counts()
        status, data = access(self._nt, proc, address, length, "r")
        return Access(status, data, faults=self._resolved_since(before))

    def write(self, eprocess: int, address: int, data: bytes) -> Access:
        from .nt.fault import access
        proc = self._proc(eprocess)
        if self._wraps(address, len(data)):
            return Access(pr.STATUS_ACCESS_VIOLATION)
        if not self._can_take(self._pages_spanned(address, len(data))):
            return Access(pr.STATUS_NO_MEMORY)
        before = self._counts()
        status, _ = access(self._nt, proc, address, bytes(data), "w")
        return Access(status, faults=self._resolved_since(before))

    def touch(self, eprocess: int, address: int, size: int, kind: str = "r") -> Access:
        """The process touches every page of the range (one access of ``kind`` -- "r",
        "w" or "x" -- each) and stops at the first fault that fails; ``pages`` says how
        many it touched."""
        from .nt.fault import touch
        proc = self._proc(eprocess)
        if kind not in ("r", "w", "x"):
            return Access(pr.STATUS_INVALID_PARAMETER)
        before = self._counts()
        first = address & ~(PAGE - 1)
        total = self._pages_spanned(address, size)
        top = (1 << 8 * self._nt.profile.pointer_size) // PAGE
        total = min(total, top - first // PAGE)      # nothing past the top of the space
        done, status = 0, pr.STATUS_SUCCESS
        while done < total:
            room = self._available() - MARGIN
            if room <= 0:
                status = pr.STATUS_NO_MEMORY
                break
            # Work-around: fault.touch resolves runs of demand-zero pages in bulk without
            # checking execute access, then asserts when the CPU's execute access to the
            # no-execute pages still faults.  One page at a time takes the ordinary path
            # (the fault handler answers STATUS_ACCESS_VIOLATION).
            n = 1 if kind == "x" else min(total - done, TOUCH_CHUNK, room)
            status, touched = touch(self._nt, proc, first + done * PAGE, n * PAGE, kind)
            done += touched
            if status != pr.STATUS_SUCCESS:
                break
        return Access(status, pages=done, faults=self._resolved_since(before))

    # -- sections -------------------------------------------------------------------------

    def section_kind(self, name: str) -> str | None:
        sec = self._nt.sections.get(name.lower())
        return None if sec is None else sec.kind

    def map_view(self, eprocess: int, name: str, size: int = 0,
                 kind: str | None = None) -> View:
        """NtMapViewOfSection of the section called ``name``, created first when there is
        none: an image section (a name ending in .dll/.exe/.sys), a mapped data file (any
        other name with a '.' or '\\') or a pagefile-backed section (shared memory) of
        ``size`` bytes (64 KB when 0).  ``kind`` ("image", "file", "pagefile") forces
        the kind of a new section; an existing one must be of that kind."""
        nt = self._nt
        proc = self._proc(eprocess)
        if not self._can_take(0):
            return View(pr.STATUS_NO_MEMORY)
        sec = nt.sections.get(name.lower())
        created = sec is None
        if sec is not None:
            if kind is not None and sec.kind != kind:
                raise SimError(f"{sec.name} is {_KIND_WORDS[sec.kind]} section, "
                               f"not {_KIND_WORDS[kind]} section")
        else:
            kind = kind or guess_kind(name)
            pages = -(-size // PAGE) if size else 16
            if kind != "image" and pages > MAX_SECTION_PAGES:
                raise SimError(f"kdsim makes sections of at most {MAX_SECTION_PAGES * PAGE:#x} "
                               "bytes")
            try:
                sec = nt.image_section(name) if kind == "image" else \
                    nt.create_section(name, pages, kind, pr.MM_READWRITE)
            except MemoryError:
                return View(pr.STATUS_INSUFFICIENT_RESOURCES)
        try:
            base = sec.map_view(proc)
        except MemoryError:
            if created and sec.views == 0 and sec.kind == "pagefile":
                sec.delete()
            return View(pr.STATUS_NO_MEMORY)
        return View(pr.STATUS_SUCCESS, base, sec.name, sec.kind, sec.pages, created)

    def unmap_view(self, eprocess: int, address: int) -> View:
        """NtUnmapViewOfSection: ``address`` may be anywhere inside the view.  A
        pagefile-backed section goes when its last view does (kdsim keeps no handles)."""
        proc = self._proc(eprocess)
        for base, (sec, _) in proc.views.items():
            if base <= address < base + sec.pages * PAGE:
                name, kind, pages = sec.name, sec.kind, sec.pages
                sec.unmap_view(proc, base)
                return View(pr.STATUS_SUCCESS, base, name, kind, pages)
        return View(STATUS_NOT_MAPPED_VIEW)

    # -- the working-set manager and the page lists ---------------------------------------

    def _trimmable(self, proc, va: int) -> int | None:
        """The PFN of a working-set page the working-set manager may take out: a
        process's private page, or a shared page of a view.  The KUSER_SHARED_DATA page
        the process sees is the kernel's and stays (Windows locks it)."""
        nt = self._nt
        pa = proc.tables.leaf(va)
        if pa is None:
            return None
        d = nt.codec.decode(proc.tables.read(pa))
        if d.kind != "valid":
            return None
        if nt.pfn.get(d.pfn, nt.pfn.lay.prototype) or \
                int(nt.pfn.e["pte"][d.pfn]) == nt.profile.pte_address(va):
            return d.pfn
        return None

    def trim(self, eprocess: int, start: int | None = None, end: int | None = None,
             count: int | None = None) -> Trimmed:
        """Take pages out of the working set: those in ``[start, end)``, or the first
        ``count`` in working-set list order, or (neither) all of them (EmptyWorkingSet).
        A private page goes to the standby list (clean) or the modified list (dirty), its
        PTE in transition; a shared page's PTE points at the prototype PTE again."""
        nt = self._nt
        proc = self._proc(eprocess)
        entries = proc.ws.entries
        pages = sorted(entries, key=entries.get)
        if start is not None:
            pages = [va for va in pages if start <= va < end]
        chosen = []
        for va in pages:
            pfn = self._trimmable(proc, va)
            if pfn is not None:
                chosen.append((va, pfn))
            if count is not None and len(chosen) >= count:
                break
        for va, _ in chosen:
            nt.trim_page(proc, va)
        where = [nt.pfn.location(pfn) for _, pfn in chosen]
        return Trimmed(len(chosen), where.count(STANDBY), where.count(MODIFIED),
                       where.count(ACTIVE))

    def write_modified(self, limit: int | None = None) -> Written:
        """The modified page writer: modified pages to the paging file (a mapped data
        file's pages to their file), then to the standby list.  It stops early when the
        paging file may run out of free slots."""
        nt = self._nt
        pf = nt.paging_files[0]
        free_slots = pf.size - pf.used - 1           # slot 0 is never handed out
        waiting = nt.pfn.total(MODIFIED) if limit is None else min(limit, nt.pfn.total(MODIFIED))
        full = waiting > free_slots
        return Written(nt.write_modified(min(waiting, free_slots)), full)

    def zero_pages(self, count: int | None = None) -> int:
        """The zero page thread: free pages zeroed onto the zeroed list."""
        return self._nt.zero_pages(count)

    def repurpose(self, count: int) -> int:
        """Memory pressure: the oldest standby pages are taken for other use; whatever
        named each in transition gets its OriginalPte back (a paging-file PTE, a
        subsection or demand zero)."""
        return self._nt.repurpose(count)

    def list_total(self, name: str) -> int:
        """Pages on one of the lists: "zeroed", "free", "standby", "modified"."""
        ids = {"zeroed": ZEROED, "free": FREE, "standby": STANDBY, "modified": MODIFIED}
        return self._nt.pfn.total(ids[name])

    def fault_counts(self) -> dict:
        """Faults since boot by how the fault handler dealt with them."""
        return dict(self._nt.faults.counts)


_KIND_WORDS = {"image": "an image", "file": "a data file", "pagefile": "a pagefile-backed"}


def guess_kind(name: str) -> str:
    low = name.lower()
    if low.endswith((".dll", ".exe", ".sys")):
        return "image"
    if "." in low or "\\" in low:
        return "file"
    return "pagefile"
