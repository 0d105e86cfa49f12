"""Processes: EPROCESS objects in nonpaged pool, linked on PsActiveProcessHead.

An EPROCESS is an executive object: a pool block tagged 'Proc' (with the protected
bit Win7 sets) holding an ``_OBJECT_HEADER`` and then the body.  kdsim writes the
fields a debugger and the memory manager use; the rest stay zero, at their true
offsets, so ``dt`` shows the whole structure.
"""
from __future__ import annotations

from .avl import AvlTable
from .guest import KernelMemory
from .pool import PROTECTED_TAG, tag_value

PROCESS_OBJECT = 3                 # _DISPATCHER_HEADER.Type of a process (ProcessObject)
PROCESS_TYPE_INDEX = 7             # Win7 ObTypeIndexTable slot of the Process type (kdsim choice)
# EPROCESS.Flags: AddressSpaceInitialized (bits 10-11) = 2, HasAddressSpace 18,
# ProcessInserted 26 -- what a running process has (nt-structures.md §7.1).
PROCESS_FLAGS = (2 << 10) | (1 << 18) | (1 << 26)
PROCESS_IN_SESSION = 1 << 16       # EPROCESS.Flags.ProcessInSession (PS_PROCESS_FLAGS_IN_SESSION)
NORMAL_PAGE_PRIORITY = 5            # Windows 7 !pfn shows "Priority 5" on a process's pages
MIN_WS, MAX_WS = 50, 345           # default working-set limits in pages (MmMinimumWorkingSetSize ...)


def create_eprocess(system, image_name: str, pid: int, parent_pid: int, cr3: int,
                    pae_top: int | None) -> int:
    """Allocate and fill an EPROCESS, link it on PsActiveProcessHead; returns its VA."""
    ts, kmem = system.ts, system.kmem
    body_off = ts.offset_of("_OBJECT_HEADER", "Body")
    size = ts.sizeof("_EPROCESS")
    block = system.nonpaged_pool.alloc(body_off + size, tag_value("Proc") | PROTECTED_TAG)
    ep = block + body_off
    header = {"PointerCount": 1, "HandleCount": 0}
    if ts.has_field("_OBJECT_HEADER", "TypeIndex"):
        header["TypeIndex"] = PROCESS_TYPE_INDEX
    kmem.write(block, ts.pack("_OBJECT_HEADER", header)[:body_off])

    dtb = "Pcb.DirectoryTableBase[0]" if _is_array(ts, "Pcb.DirectoryTableBase") \
        else "Pcb.DirectoryTableBase"
    values = {
        "Pcb.Header.Type": PROCESS_OBJECT,
        "Pcb.Header.Size": ts.sizeof("_KPROCESS") // 4,
        dtb: cr3,
        "UniqueProcessId": pid,
        "InheritedFromUniqueProcessId": parent_pid,
        "CreateTime": system.clock,
        "Flags": PROCESS_FLAGS,
        "Vm.MinimumWorkingSetSize": MIN_WS,
        "Vm.MaximumWorkingSetSize": MAX_WS,
    }
    if ts.has_field("_EPROCESS", "DefaultPagePriority"):
        # Vista+: the page priority a process's pages get (MEMORY_PRIORITY_NORMAL, 5, for
        # a normal process); the WRK has no such field.
        values["DefaultPagePriority"] = NORMAL_PAGE_PRIORITY
    if pae_top is not None:
        values["PaeTop"] = pae_top
    raw = bytearray(ts.pack("_EPROCESS", values))
    name = image_name.encode("ascii", "replace")[:ts.field("_EPROCESS", "ImageFileName").size - 1]
    off = ts.offset_of("_EPROCESS", "ImageFileName")
    raw[off:off + len(name)] = name
    kmem.write(ep, bytes(raw))
    AvlTable(ts, kmem, ep + ts.offset_of("_EPROCESS", "VadRoot")).init()
    for head in ("Pcb.ThreadListHead", "Pcb.ProfileListHead", "ThreadListHead"):
        if ts.has_field("_EPROCESS", head):
            system.init_list_head(ep + ts.offset_of("_EPROCESS", head))
    system.insert_tail_list(system.symbols["PsActiveProcessHead"],
                            ep + ts.offset_of("_EPROCESS", "ActiveProcessLinks"))
    system.processes.append(ep)
    return ep


def _is_array(ts, path: str) -> bool:
    return ts.field("_EPROCESS", path).count > 0


class Process:
    """A handle on one process: its EPROCESS, page tables, working set and VAD table."""

    def __init__(self, system, ep: int, pid: int, name: str, tables, pae_top):
        self.system, self.ep, self.pid, self.name = system, ep, pid, name
        self.tables, self.pae_top = tables, pae_top
        self.kmem = KernelMemory(system.machine, tables.top)  # hyperspace stays mapped
        self.vads = AvlTable(system.ts, system.kmem, ep + system.ts.offset_of("_EPROCESS",
                                                                             "VadRoot"))
        self.ws = None
        self.session = None              # the session id (None: in no session)
        self.commit = 0
        self.views: dict = {}            # view base -> (Section, VAD node)

    @property
    def cr3(self) -> int:
        return self.tables.top

    def kwrite(self, va: int, data) -> None:
        self.kmem.write(va, data)

    def map_private_kernel_page(self, va: int) -> int:
        """Map a fresh page at a per-process kernel VA (hyperspace)."""
        from .system import DEMAND_ZERO_RW
        from .tables import A, D, P, RW, WRITE
        s = self.system
        pfn = s.take_page()
        epa = self.tables.set(va, pfn * 0x1000 | P | RW | A | D | WRITE | s.nx)
        s.pfn.make_active(pfn, s.profile.pte_address(va), epa // 0x1000, DEMAND_ZERO_RW)
        s.update_counters()
        return pfn * 0x1000

    @property
    def page_priority(self) -> int:
        """The priority a page gets when it is made for this process: EPROCESS
        DefaultPagePriority (Windows 7), else MI_DEFAULT_PFN_PRIORITY (the WRK's)."""
        from .pfn import DEFAULT_PRIORITY
        if self.system.ts.has_field("_EPROCESS", "DefaultPagePriority"):
            return self.get_field("DefaultPagePriority")
        return DEFAULT_PRIORITY

    def count_private(self, pages: int) -> None:
        """EPROCESS.NumberOfPrivatePages: the process's private pages that exist -- made
        by a demand-zero fault or a copy-on-write (WRK MiResolveDemandZeroFault,
        MiCopyOnWrite: += 1), wherever they are now (valid, on a list or in the paging
        file), until they are deleted (MiDeletePte: -= 1).  !process prints it as
        "Private"."""
        self.set_field("NumberOfPrivatePages", self.get_field("NumberOfPrivatePages") + pages)

    def set_field(self, path: str, value: int) -> None:
        self.system.ts.field("_EPROCESS", path).write(self.system.kmem, self.ep, value)

    def get_field(self, path: str) -> int:
        return self.system.ts.field("_EPROCESS", path).read(self.system.kmem, self.ep)


PAGE = 0x1000
STACK_RESERVE = 0x100000      # the default 1 MB main-thread stack (image header default)
HEAP_RESERVE = 0x100000       # the default process heap: 1 MB reserved
HEAP_COMMIT_PAGES = 4


DEFAULT_DLLS = ("ntdll.dll", "kernel32.dll", "KernelBase.dll")


def session_of(system, image: str, parent, session: int | None) -> int | None:
    """The session a new process joins: the one asked for, else its parent's, else 0 --
    except the master Session Manager (smss.exe started by the system), which creates the
    sessions and belongs to none, like the System process."""
    if session is not None:
        return session
    if parent is None:
        return None if image.lower() == "smss.exe" else 0
    return 0 if parent.session is None else parent.session


def session_space(system, session_id: int) -> int:
    """The session's _MM_SESSION_SPACE (created with the session's first process).
    Windows keeps it in session space; kdsim puts it in nonpaged pool (kdsim's choice --
    its session space holds nothing else)."""
    spaces = system.session_spaces
    if session_id not in spaces:
        ts = system.ts
        va = system.nonpaged_pool.alloc(ts.sizeof("_MM_SESSION_SPACE"), "MmSt")
        values = {"SessionId": session_id}
        if ts.has_field("_MM_SESSION_SPACE", "GlobalVirtualAddress"):
            values["GlobalVirtualAddress"] = va
        system.write_struct("_MM_SESSION_SPACE", va, values)
        system.init_list_head(va + ts.offset_of("_MM_SESSION_SPACE", "ProcessList"))
        spaces[session_id] = va
    return spaces[session_id]


def join_session(system, proc, session_id: int | None) -> None:
    """MiSessionAddProcess: EPROCESS.Session names the session space, Flags gets
    ProcessInSession, the process goes on its ProcessList (through SessionProcessLinks)
    and ReferenceCount counts it."""
    proc.session = session_id
    if session_id is None:
        return
    ts, kmem = system.ts, system.kmem
    va = session_space(system, session_id)
    proc.set_field("Session", va)
    proc.set_field("Flags", proc.get_field("Flags") | PROCESS_IN_SESSION)
    system.insert_tail_list(va + ts.offset_of("_MM_SESSION_SPACE", "ProcessList"),
                            proc.ep + ts.offset_of("_EPROCESS", "SessionProcessLinks"))
    f = ts.field("_MM_SESSION_SPACE", "ReferenceCount")
    f.write(kmem, va, f.read(kmem, va) + 1)


def leave_session(system, proc) -> None:
    if proc.session is None:
        return
    ts, kmem = system.ts, system.kmem
    va = system.session_spaces[proc.session]
    system.remove_entry_list(proc.ep + ts.offset_of("_EPROCESS", "SessionProcessLinks"))
    f = ts.field("_MM_SESSION_SPACE", "ReferenceCount")
    f.write(kmem, va, f.read(kmem, va) - 1)


def spawn(system, image: str, parent=None, dlls=(), session: int | None = None) -> Process:
    """Create a process: its address space, EPROCESS, its session, working set, the
    shared-data page mapping, image views of the executable and its DLLs (ntdll, kernel32
    and KernelBase always), PEB and TEB, the main thread's stack and the default heap."""
    from . import protect as pr
    from .addrspace import create_address_space
    from .wsl import WorkingSet
    tables, pae_top = create_address_space(system)
    pid = system.next_pid
    system.next_pid += 4 * system.rng.randint(1, 24)
    parent_pid = parent.pid if parent is not None else 4
    ep = create_eprocess(system, image, pid, parent_pid, tables.top, pae_top)
    proc = Process(system, ep, pid, image, tables, pae_top)
    system.process_objects[pid] = proc
    join_session(system, proc, session_of(system, image, parent, session))
    proc.ws = WorkingSet(system, proc)
    vm, codec, a = system.vm, system.codec, system.profile.address_space
    if a.vad_bitmap is not None:
        _list_table_pages(system, proc)

    # KUSER_SHARED_DATA's user view: a valid read-only PTE on the kernel's shared page.
    # The WRK has no VAD there (MiCheckVirtualAddress special-cases MM_SHARED_USER_DATA_VA,
    # one page).  Windows 7 reserves the 64 KB granule with a private READONLY VAD,
    # 7ffe0-7ffef, that does not commit it (MemCommit 0): only the first page, mapped
    # here, is accessible, the rest fault as reserved memory.  Its CommitCharge stays 0
    # (kdsim's choice: the reference has no Windows 7 sample of this VAD; the kernel's
    # page is charged to nobody).
    user_shared = a.shared_user_data_user_va
    if system.profile.version.major >= 6:
        vm._new_vad(proc, user_shared, user_shared + 0x10000, pr.MM_READONLY, False)
    shared_pfn = system.shared_data_pa // PAGE
    proc.tables.set(user_shared, codec.valid(shared_pfn, pr.MM_READONLY, owner=True))
    system.pfn.e["u2"][shared_pfn] += 1
    proc.ws.insert(user_shared, shared_pfn)

    # PEB and TEB just below the highest VAD address (the unrandomised Win7 places).
    # MiCreatePebOrTeb gives each its own committed VAD of exactly its size (not a 64 KB
    # reservation as VirtualAlloc makes): the PEB one page, the TEB its size in pages
    # (two on x64), the TEB just below the PEB.
    ts = system.ts
    teb_pages = -(-ts.sizeof("_TEB") // PAGE)
    peb = a.highest_vad_address & ~(PAGE - 1)
    teb = peb - teb_pages * PAGE
    for va, pages in ((peb, 1), (teb, teb_pages)):
        if not vm._charge(proc, pages):
            raise RuntimeError(f"creating {image}: no commit for its PEB/TEB")
        vm._new_vad(proc, va, va + pages * PAGE, pr.MM_READWRITE, True)
    stack = vm.allocate(proc, STACK_RESERVE, commit=False, protect=pr.PAGE_READWRITE)
    top = stack.base + stack.size
    vm.allocate(proc, PAGE, top - PAGE, reserve=False, protect=pr.PAGE_READWRITE)
    vm.allocate(proc, PAGE, top - 2 * PAGE, reserve=False,
                protect=pr.PAGE_READWRITE | pr.PAGE_GUARD)
    heap = vm.allocate(proc, HEAP_RESERVE, commit=False, protect=pr.PAGE_READWRITE)
    vm.allocate(proc, HEAP_COMMIT_PAGES * PAGE, heap.base, reserve=False,
                protect=pr.PAGE_READWRITE)

    exe = system.image_section(image)
    image_base = exe.map_view(proc)
    names = list(DEFAULT_DLLS) + [d for d in dlls if d.lower() not in
                                  {n.lower() for n in DEFAULT_DLLS}]
    loaded = [(exe, image_base)]
    for name in names:
        sec = system.image_section(name)
        loaded.append((sec, sec.map_view(proc)))
    # The loader reads the headers of the image and of ntdll, and runs ntdll's first code.
    from .fault import access
    ntdll = system.image_section("ntdll.dll")
    for va in (image_base, ntdll.base, ntdll.base + PAGE):
        status, _ = access(system, proc, va, 1)
        if status:
            raise RuntimeError(f"loading {image}: {status:#x} at {va:#x}")
    peb_values = {"ImageBaseAddress": image_base, "ProcessHeap": heap.base,
                  "NumberOfProcessors": 2, "OSMajorVersion": system.profile.version.major,
                  "OSMinorVersion": system.profile.version.minor,
                  "OSBuildNumber": system.profile.version.build, "OSPlatformId": 2}
    peb_values["Ldr"] = write_loader_data(system, proc, heap.base, loaded)
    write_user(system, proc, peb, ts.pack("_PEB", peb_values))
    teb_values = {"NtTib.StackBase": top, "NtTib.StackLimit": top - PAGE,
                  "NtTib.Self": teb, "ProcessEnvironmentBlock": peb,
                  "ClientId.UniqueProcess": pid, "ClientId.UniqueThread": pid + 4}
    write_user(system, proc, teb, ts.pack("_TEB", teb_values))
    proc.set_field("Peb", peb)
    proc.set_field("SectionBaseAddress", image_base)
    proc.peb, proc.teb, proc.stack, proc.heap = peb, teb, (stack.base, top), heap.base
    return proc


def write_loader_data(system, proc, va: int, modules) -> int:
    """The loader's record of the process's modules, as ntdll keeps it: a _PEB_LDR_DATA
    whose three lists link one _LDR_DATA_TABLE_ENTRY per module (the exe first, then the
    DLLs in load order; the initialization order leaves the exe out).  kdsim builds it at
    ``va`` in the process heap (Windows 7 keeps the _PEB_LDR_DATA itself in ntdll's data,
    which would cost ntdll a private copy-on-write page here).  Names are the files' full
    paths with the drive (C:) and, for BaseDllName, the last part of the same buffer.
    LoadCount is 0xffff (a statically loaded module); EntryPoint, Flags and TimeDateStamp
    stay 0 (kdsim's images have no optional header).  Returns the _PEB_LDR_DATA's VA."""
    ts, p = system.ts, system.ptr
    align = lambda n: -(-n // (2 * p)) * (2 * p)          # noqa: E731 (heap granularity)
    ldr_size, entry_size = ts.sizeof("_PEB_LDR_DATA"), ts.sizeof("_LDR_DATA_TABLE_ENTRY")
    entries = []
    at = va + align(ldr_size)
    for sec, base in modules:
        full = ("C:" + sec.path).encode("utf-16-le")
        entries.append((at, at + align(entry_size), sec, base, full))
        at += align(entry_size) + align(len(full) + 2)
    blob = bytearray(at - va)

    def put(type_name, addr, values):
        raw = ts.pack(type_name, values)
        blob[addr - va:addr - va + len(raw)] = raw

    # Each list: the head in the _PEB_LDR_DATA, then the entries' links, in a ring.
    order = [e[0] for e in entries]
    lists = [("InLoadOrderLinks", "InLoadOrderModuleList", order),
             ("InMemoryOrderLinks", "InMemoryOrderModuleList", order),
             ("InInitializationOrderLinks", "InInitializationOrderModuleList", order[1:])]
    values: dict[int, dict] = {n: {} for n in [va] + order}
    for links, head_field, seq in lists:
        ring = [(va, head_field)] + [(e, links) for e in seq]
        where = [owner + ts.offset_of("_PEB_LDR_DATA" if owner == va else
                                      "_LDR_DATA_TABLE_ENTRY", field) for owner, field in ring]
        for i, (owner, field) in enumerate(ring):
            values[owner][field + ".Flink"] = where[(i + 1) % len(ring)]
            values[owner][field + ".Blink"] = where[i - 1]
    values[va].update({"Length": ldr_size, "Initialized": 1})
    put("_PEB_LDR_DATA", va, values[va])
    for entry, name_va, sec, base, full in entries:
        base_name = sec.path.rsplit("\\", 1)[-1].encode("utf-16-le")
        hash_links = entry + ts.offset_of("_LDR_DATA_TABLE_ENTRY", "HashLinks")
        v = values[entry]
        v.update({"DllBase": base, "SizeOfImage": sec.pages * PAGE,
                  "FullDllName.Length": len(full), "FullDllName.MaximumLength": len(full) + 2,
                  "FullDllName.Buffer": name_va,
                  "BaseDllName.Length": len(base_name),
                  "BaseDllName.MaximumLength": len(base_name) + 2,
                  "BaseDllName.Buffer": name_va + len(full) - len(base_name),
                  "LoadCount": 0xFFFF, "HashLinks.Flink": hash_links,
                  "HashLinks.Blink": hash_links})
        put("_LDR_DATA_TABLE_ENTRY", entry, v)
        blob[name_va - va:name_va - va + len(full)] = full
    write_user(system, proc, va, bytes(blob))
    return va


def _list_table_pages(system, proc) -> None:
    """The WRK's working-set list names the process's own pages of the system range: its
    page directory, hyperspace page table, VAD bitmap and list page, locked
    (FirstDynamic 4), and then every page table of its user range as it is made (the
    Server 2003 !wsle sample, windbg-formats D-7: c0300203 c0301203 c0502203 c0503203,
    then c01ff201, c0001201 ...).  A Windows 10 PAE sample (Windows Internals) lists
    table pages too, but the reference has no Windows 7 one: kdsim's Windows 7 targets
    list the user pages only."""
    profile, a = system.profile, system.profile.address_space
    proc.map_private_kernel_page(a.vad_bitmap)
    for va in (profile.self_map.pde_base, profile.pte_address(a.hyper_space_start) & ~0xFFF,
               a.vad_bitmap, a.working_set_list):
        proc.ws.insert_locked(va, system.codec.decode(proc.tables.get(va)).pfn)
    alloc, limit = proc.tables.alloc, a.system_range_start

    def alloc_and_list(level: int, va: int, parent_entry_pa: int) -> int:
        pa = alloc(level, va, parent_entry_pa)
        if level == 1 and va < limit:          # a page table of the user range
            proc.ws.insert(profile.pte_address(va) & ~0xFFF, pa // PAGE)
        return pa
    proc.tables.alloc = alloc_and_list


def write_user(system, proc, va: int, data: bytes) -> None:
    """The kernel writes into a process's user memory (faulting pages in as needed)."""
    from .fault import access
    status, _ = access(system, proc, va, data, "w")
    if status:
        raise RuntimeError(f"writing the new process's memory at {va:#x}: {status:#x}")


def terminate(system, proc: Process) -> None:
    """End a process: its private pages go to the free list, transition pages with them,
    its VADs and page tables are freed, its EPROCESS leaves PsActiveProcessHead."""
    from .addrspace import is_shared_kernel_entry
    from .tables import PS
    ts = system.ts
    if system.machine.paging.cr3 == proc.cr3:
        system.machine.cr3 = system.kernel_tables.top
        system.current = None
    for base, (section, _) in list(proc.views.items()):
        section.unmap_view(proc, base)
    for node in list(proc.vads.nodes_in_order()):
        vad = system.vm.vad_at(proc, ts.field("_MMVAD_SHORT", "StartingVpn").read(
            system.kmem, node) * PAGE)
        system.vm._drop_pages(proc, vad.start, vad.end, None)
        proc.vads.remove(node)
        system.nonpaged_pool.free(node)
    t = proc.tables
    profile = system.profile
    last = len(t.levels) - 1
    tables_to_free = []
    from .tables import is_self_map_entry
    for depth, va, epa, e in list(t.walk(lambda d, v, x: not is_self_map_entry(profile, d, v)
                                         and not is_shared_kernel_entry(profile, v))):
        if is_shared_kernel_entry(profile, va) or is_self_map_entry(profile, depth, va):
            continue
        if profile.paging.name == "pae" and depth == 0:
            continue
        frame = (e & t.addr_mask) >> 12
        if depth == last or (e & PS and t.can_be_large(depth)):
            if system.pfn.location(frame) == 6:      # hyperspace pages (the working set list)
                system.release_private_page(proc, va, frame)
        else:
            tables_to_free.append(frame)
    if profile.paging.name == "pae":
        for i in range(4):
            tables_to_free.append(int.from_bytes(system.machine.read_physical(
                t.top + 8 * i, 8), "little") >> 12 & 0xFFFFFF)
        from .addrspace import release_pae_top
        release_pae_top(system, proc.pae_top, t.top)
    else:
        tables_to_free.append(t.top // PAGE)
    for frame in reversed(tables_to_free):     # page tables before the tables above them
        system.pfn.release(frame)          # PteAddress keeps its deleted mark
    system.vm._charge(proc, -proc.commit)
    leave_session(system, proc)
    system.remove_entry_list(proc.ep + ts.offset_of("_EPROCESS", "ActiveProcessLinks"))
    system.processes.remove(proc.ep)
    del system.process_objects[proc.pid]
    block = proc.ep - ts.offset_of("_OBJECT_HEADER", "Body")
    system.nonpaged_pool.free(block)
    system.update_counters()
