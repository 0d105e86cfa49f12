"""NtSystem: the emulated kernel's state, whose record is guest memory.

It holds what the boot built (the kernel page tables, pools, the PFN database, the
symbol table of nt's variables) and the kernel's page-level services: taking a page
off the zeroed/free lists, mapping kernel pages, allocating page-table pages, keeping
the counters (MmAvailablePages, ...) true.  Process and fault handling live in their
own modules and work through these.
"""
from __future__ import annotations

import random
import struct


from . import ntimage
from .pfn import AVAILABLE_LISTS, FREE, ZEROED
from .tables import A, D, G, NX, P, RW, WRITE

PAGE = 0x1000
MM_READWRITE = 4
DEMAND_ZERO_RW = MM_READWRITE << 5          # the software PTE of a read/write page (0x80)
SYSTEM_TIME_AT_BOOT = 0x01CBD2A8F5A2C000    # 2011-02-22 15:55:42.761 UTC in 100 ns since 1601 (kdsim choice)
NT_BUILD_FREE = 0xF0000000                  # NtBuildNumber's "free build" tag
PROCESSORS = 2
_VAR_KIND = {v.name: v.kind for v in ntimage.VARIABLES}


class NtSystem:
    tracer = None       # set while a guest thread runs (execution.py)

    def __init__(self, profile, ts, machine, kmem, kernel_tables):
        self.profile = profile
        self.ts = ts
        self.machine = machine
        self.kmem = kmem
        self.kernel_tables = kernel_tables
        self.ptr = profile.pointer_size
        self.nx = NX if profile.paging.pte_size == 8 else 0
        self.symbols: dict[str, int] = {}
        self.modules: list = []
        self.processes: list[int] = []           # EPROCESS VAs, in creation order
        self.clock = SYSTEM_TIME_AT_BOOT
        self.pae_tops = None
        self.pae_free: list[tuple[int, int]] = []    # PDPTs of ended PAE processes
        self.runs = []
        self.highest_pfn = 0
        self.seed = 0

    # -- small helpers ------------------------------------------------------------------

    def is_ram(self, pfn: int) -> bool:
        pa = pfn * PAGE
        return any(s <= pa < s + n for s, n in self.runs)

    def ram_pages(self) -> int:
        return sum(n for _, n in self.runs) // PAGE

    def write_ptr(self, va: int, value: int) -> None:
        self.kmem.write(va, struct.pack("<Q" if self.ptr == 8 else "<I", value))

    def read_ptr(self, va: int) -> int:
        return struct.unpack("<Q" if self.ptr == 8 else "<I", self.kmem.read(va, self.ptr))[0]

    def write_ulong(self, va: int, value: int) -> None:
        self.kmem.write(va, struct.pack("<I", value))

    def set_var(self, name: str, value: int) -> None:
        """Write a kernel variable (through nt's .data, which is physically contiguous)."""
        size = 4 if _VAR_KIND[name] == "ulong" else self.ptr
        self.nt_data.write(self.symbols[name], value.to_bytes(size, "little"))

    def write_struct(self, type_name: str, va: int, values: dict) -> None:
        self.kmem.write(va, self.ts.pack(type_name, values))

    def field(self, type_name: str, path: str):
        return self.ts.field(type_name, path)

    def init_list_head(self, va: int) -> None:
        self.write_ptr(va, va)
        self.write_ptr(va + self.ptr, va)

    def insert_tail_list(self, head: int, entry: int) -> None:
        last = self.read_ptr(head + self.ptr)
        self.write_ptr(entry, head)
        self.write_ptr(entry + self.ptr, last)
        self.write_ptr(last, entry)
        self.write_ptr(head + self.ptr, entry)

    def remove_entry_list(self, entry: int) -> None:
        flink, blink = self.read_ptr(entry), self.read_ptr(entry + self.ptr)
        self.write_ptr(blink, flink)
        self.write_ptr(flink + self.ptr, blink)

    def sign_extend(self, value: int) -> int:
        """A kernel address as KDBG stores it: 64 bits, sign-extended on x86."""
        if self.ptr == 4 and value & 0x80000000:
            return value | 0xFFFFFFFF00000000
        return value

    # -- boot ---------------------------------------------------------------------------

    def write_kernel_variables(self) -> None:
        a, s = self.profile.address_space, self.symbols
        pool_np, pool_p = self.nonpaged_pool, self.paged_pool
        values = {
            "MmHighestUserAddress": a.highest_user_address,
            "MmUserProbeAddress": a.user_probe_address,
            "MmSystemRangeStart": a.system_range_start,
            "MmNonPagedSystemStart": a.nonpaged_system_start,
            "MmNonPagedPoolStart": pool_np.start,
            "MmNonPagedPoolEnd": a.nonpaged_pool_end + 1,      # exclusive, as MM_NONPAGED_POOL_END
            "MmPagedPoolStart": pool_p.start,
            "MmPagedPoolEnd": a.paged_pool_end,                # the last byte (WRK MiBuildPagedPool)
            "MmSystemCacheStart": a.system_cache_start,
            "MmSystemCacheEnd": a.system_cache_end,
            "MmSessionBase": a.session_space_start,
            "MmSubsectionBase": pool_np.start,
            "MmPfnDatabase": a.pfn_database,
            "MmLowestPhysicalPage": self.runs[0][0] // PAGE,
            "MmHighestPhysicalPage": self.highest_pfn,
            "MmNumberOfPhysicalPages": self.ram_pages(),
            "MmSizeOfPagedPoolInBytes": a.paged_pool_end + 1 - a.paged_pool_start,
            "MmMaximumNonPagedPoolInBytes": self.nonpaged_pool_maximum(),
            "MmNumberOfPagingFiles": 0,
            "KeNumberProcessors": PROCESSORS,
            "NtBuildNumber": NT_BUILD_FREE | self.profile.version.build,
        }
        if "MiSystemCacheEndExtra" in s:
            values["MiSystemCacheEndExtra"] = a.system_cache_end_extra
        for name, value in values.items():
            self.set_var(name, value)
        for head in ("PsActiveProcessHead", "PsLoadedModuleList"):
            self.init_list_head(s[head])
        self.write_physical_memory_block()
        self.write_kdbg()
        self.write_shared_user_data()
        self.write_loaded_modules()

    def nonpaged_pool_maximum(self) -> int:
        """MmMaximumNonPagedPoolInBytes.  WRK: the pool's range, MmNonPagedPoolStart is
        computed back from MM_NONPAGED_POOL_END by this size.  Windows 7: 75% of RAM, at
        most 2 GB (32-bit) or 128 GB (x64) -- Windows Internals 6th ed.'s pool-limits
        table [I: not in the reference]; kdsim's smaller fixed pool range does not
        bound it (on Windows 7 the pool's VA is dynamic)."""
        a = self.profile.address_space
        if self.profile.version.major < 6:
            return a.nonpaged_pool_end + 1 - self.nonpaged_pool.start
        cap = (128 << 30) if self.ptr == 8 else (2 << 30)
        return min(self.ram_pages() * PAGE * 3 // 4, cap)

    def write_physical_memory_block(self) -> None:
        ts = self.ts
        run_size = ts.sizeof("_PHYSICAL_MEMORY_RUN")
        run0 = ts.offset_of("_PHYSICAL_MEMORY_DESCRIPTOR", "Run")
        body = self.nonpaged_pool.alloc(run0 + run_size * len(self.runs), "MmPh")
        values = {"NumberOfRuns": len(self.runs), "NumberOfPages": self.ram_pages()}
        self.write_struct("_PHYSICAL_MEMORY_DESCRIPTOR", body, values)
        for i, (start, length) in enumerate(self.runs):
            self.write_struct("_PHYSICAL_MEMORY_RUN", body + run0 + i * run_size,
                              {"BasePage": start // PAGE, "PageCount": length // PAGE})
        self.set_var("MmPhysicalMemoryBlock", body)

    def write_loaded_modules(self) -> None:
        """nt and hal on PsLoadedModuleList, each with its image headers in memory."""
        from .section import file_page
        ts = self.ts
        head = self.symbols["PsLoadedModuleList"]
        for name, short, base, size in self.modules:
            self.kmem.write(base, file_page(name, 0)[:0x400])
            full = f"\\SystemRoot\\system32\\{name}".encode("utf-16-le")
            short_name = name.encode("utf-16-le")
            strings = self.nonpaged_pool.alloc(len(full) + len(short_name) + 4, "MmLd")
            self.kmem.write(strings, full + b"\0\0" + short_name + b"\0\0")
            entry = self.nonpaged_pool.alloc(ts.sizeof("_LDR_DATA_TABLE_ENTRY"), "MmLd")
            values = {"DllBase": base, "EntryPoint": base + ntimage.ENTRY_RVA[short],
                      "SizeOfImage": size, "FullDllName.Length": len(full),
                      "FullDllName.MaximumLength": len(full) + 2,
                      "FullDllName.Buffer": strings, "BaseDllName.Length": len(short_name),
                      "BaseDllName.MaximumLength": len(short_name) + 2,
                      "BaseDllName.Buffer": strings + len(full) + 2, "LoadCount": 1,
                      "TimeDateStamp": ntimage.TIMESTAMPS[short]}
            self.write_struct("_LDR_DATA_TABLE_ENTRY", entry, values)
            for links in ("InMemoryOrderLinks", "InInitializationOrderLinks", "HashLinks"):
                self.init_list_head(entry + ts.offset_of("_LDR_DATA_TABLE_ENTRY", links))
            self.insert_tail_list(head, entry)

    def write_kdbg(self) -> None:
        s, va = self.symbols, self.symbols["KdDebuggerDataBlock"]
        kdbg = "wdbgexts!_KDDEBUGGER_DATA64"
        x = self.sign_extend
        values = {"Header.List.Flink": x(va), "Header.List.Blink": x(va),
                  "Header.OwnerTag": 0x4742444B,                     # 'KDBG'
                  "Header.Size": self.profile.version.kdbg_size,
                  "KernBase": x(self.profile.address_space.kernel_base),
                  "MmPageSize": PAGE,
                  "SizeEProcess": self.ts.sizeof("_EPROCESS"),
                  "OffsetEprocessPeb": self.ts.offset_of("_EPROCESS", "Peb"),
                  "OffsetEprocessParentCID":
                      self.ts.offset_of("_EPROCESS", "InheritedFromUniqueProcessId"),
                  "OffsetEprocessDirectoryTableBase":
                      self.ts.offset_of("_EPROCESS", "Pcb.DirectoryTableBase")}
        # Every other field holds the address of the variable of the same name.
        for f in self.ts.fields(kdbg):
            if f.path in s:
                values[f.path] = x(s[f.path])
        self.write_struct(kdbg, va, values)

    def write_shared_user_data(self) -> None:
        v = self.profile.version
        values = {"TickCountMultiplier": 0x0FA00000, "NtMajorVersion": v.major,
                  "NtMinorVersion": v.minor, "ImageNumberLow": v.machine_type,
                  "ImageNumberHigh": v.machine_type, "NtProductType":
                      {"WinNt": 1, "LanManNt": 2, "Server": 3}.get(v.product_type, 1),
                  "ProductTypeIsValid": 1, "KdDebuggerEnabled": 3,
                  "NXSupportPolicy": 2 if self.nx else 0,
                  "NumberOfPhysicalPages": self.ram_pages(),
                  "SystemTime.LowPart": self.clock & 0xFFFFFFFF,
                  "SystemTime.High1Time": self.clock >> 32,
                  "SystemTime.High2Time": self.clock >> 32}
        root = "C:\\Windows" if v.major >= 6 else "C:\\WINDOWS"
        body = self.ts.pack("_KUSER_SHARED_DATA", values)
        off = self.ts.offset_of("_KUSER_SHARED_DATA", "NtSystemRoot")
        enc = root.encode("utf-16-le")
        body = body[:off] + enc + body[off + len(enc):]
        self.machine.write_physical(self.shared_data_pa, body)

    def create_system_process(self) -> None:
        from .process import create_eprocess
        kt = self.kernel_tables
        cr3 = kt.top
        pae_top = self.pae_tops[0] if self.pae_tops else None
        ep = create_eprocess(self, "System", 4, 0, cr3, pae_top)
        self.set_var("PsInitialSystemProcess", ep)
        self.system_process = ep

    def boot_done(self, nx: int) -> None:
        """From now on pages come off the PFN lists, and every one is recorded."""
        from .addrspace import propagate
        from .fault import FaultHandler
        from .pte import PteCodec
        from .vm import VirtualMemory
        self.kernel_tables.alloc = self.alloc_table_page
        self.kernel_tables.linked = lambda *a: propagate(self, *a)
        self.nonpaged_pool.map_page = lambda va: self.map_kernel_page(va, executable=True)
        self.paged_pool.map_page = self.map_kernel_page
        self.codec = PteCodec(self.profile)
        self.vm = VirtualMemory(self)
        self.faults = FaultHandler(self)
        self.process_objects = {}
        self.current = None
        self.tracer = None          # the guest thread's executor while one runs (execution.py)
        from .execution import Executor
        self.executor = Executor(self)
        self.next_pid = 0x100
        self.rng = random.Random(self.seed)
        self.committed = 0
        self.sections = {}
        self.session_spaces: dict[int, int] = {}     # session id -> its _MM_SESSION_SPACE
        self.dll_top = {4: 0x78000000, 8: 0x000007FEFF000000}[self.ptr]   # kdsim choice
        from .pagefile import MAX_SLOTS, PagingFile
        self.paging_files = [PagingFile(self, 0, min(self.ram_pages(), MAX_SLOTS))]
        self.update_counters()

    # -- pages after boot -----------------------------------------------------------------

    def take_page(self) -> int:
        """A zeroed physical page off the zeroed list (or the free list, zeroed here)."""
        pfn = self.pfn.pop(ZEROED)
        if pfn is None:
            pfn = self.pfn.pop(FREE)
            if pfn is None and self.repurpose(1):    # MiRemoveAnyPage: then standby
                pfn = self.pfn.pop(FREE)
            if pfn is None:
                raise MemoryError("no free physical pages")
            self.machine.discard_pages(pfn * PAGE, PAGE)
        self.update_counters()
        return pfn

    def map_kernel_page(self, va: int, executable: bool = False) -> int:
        """Map a fresh zeroed page at kernel ``va`` (pool); returns its physical address.
        ``executable``: no NX (nonpaged pool before Windows 8)."""
        pfn = self.take_page()
        kt = self.kernel_tables
        epa = kt.set(va, pfn * PAGE | P | RW | A | D | G | WRITE | (0 if executable else self.nx))
        self.pfn.make_active(pfn, self.profile.pte_address(va), epa // PAGE, DEMAND_ZERO_RW)
        self.sysva.mapped(va)
        pool = self.paged_pool
        if pool.start <= va <= pool.end:         # the paged pool grows a page at a time
            used = max(va + PAGE, pool.next_page) - pool.start
            self.set_var("MmPagedPoolCommit", used // PAGE)
        self.update_counters()
        return pfn * PAGE

    def alloc_table_page(self, level: int, va: int, parent_entry_pa: int) -> int:
        """A page-table page at ``level`` (1 PT, 2 PD, 3 PDPT) for ``va``; its PFN entry
        points at the entry above, through the self-map, that will map it."""
        pfn = self.take_page()
        names = {"x64": {1: "pde", 2: "ppe", 3: "pxe"}, "pae": {1: "pde"},
                 "x86": {1: "pde"}}[self.profile.paging.name]
        self.pfn.make_active(pfn, self.profile.entry_address(va, names[level]),
                             parent_entry_pa // PAGE, DEMAND_ZERO_RW)
        return pfn * PAGE

    def update_counters(self) -> None:
        avail = sum(self.pfn.total(i) for i in AVAILABLE_LISTS)
        self.set_var("MmAvailablePages", avail)
        self.set_var("MmResidentAvailablePages", avail)
        # kdsim choice: the limit is RAM plus the paging files; the charge is what the
        # kernel holds at boot plus what processes committed since.
        if not hasattr(self, "boot_commit"):
            self.boot_commit = self.ram_pages() - avail
        files = sum(pf.size for pf in getattr(self, "paging_files", ()))
        self.set_var("MmTotalCommitLimit", self.ram_pages() + files)
        self.set_var("MmTotalCommittedPages", self.boot_commit + getattr(self, "committed", 0))

    # -- processes and their pages ----------------------------------------------------------

    def spawn(self, image: str, parent=None, dlls=(), session: int | None = None):
        from .process import spawn
        return spawn(self, image, parent, dlls, session)

    def terminate(self, proc) -> None:
        from .process import terminate
        terminate(self, proc)

    def original_with(self, pfn: int, protection: int) -> int:
        """The page's OriginalPte with a new protection: a paging-file PTE keeps its slot
        (the copy there is still the page's backing store), anything else becomes a
        demand-zero PTE of that protection."""
        orig = self.codec.decode(int(self.pfn.e["orig"][pfn]))
        if orig.kind == "pagefile":
            return self.codec.pagefile(orig.page_file_low, orig.page_file_high, protection)
        return self.codec.demand_zero(protection)

    def release_private_page(self, proc, va: int, pfn: int) -> None:
        """A private page leaves the process for good: off the working set, to the free
        list (its contents are not needed any more)."""
        if va in proc.ws:
            proc.ws.remove(va)
        share = int(self.pfn.e["u2"][pfn]) - 1
        if share > 0:
            self.pfn.e["u2"][pfn] = share
            return
        from .pagefile import release_backing
        release_backing(self, int(self.pfn.e["orig"][pfn]))
        self.pfn.release(pfn)
        self.pfn.put(pfn, self.pfn.lay.modified, 0)
        self.pfn.e["orig"][pfn] = 0        # PteAddress keeps the deleted mark release() set

    def trim_page(self, proc, va: int, protection: int | None = None) -> None:
        """Take a resident private page out of the working set: its PTE becomes a
        transition PTE and the page goes to the standby list (clean) or the modified
        list (dirty), where a soft fault can find it again."""
        from .pfn import MODIFIED, STANDBY
        pa = proc.tables.leaf(va)
        if pa is None:
            return
        d = self.codec.decode(proc.tables.read(pa))
        if d.kind != "valid":
            return
        pfn = d.pfn
        if self.pfn.get(pfn, self.pfn.lay.prototype):
            # A shared page leaves this working set: the PTE points at the prototype again.
            proto_va = int(self.pfn.e["pte"][pfn])
            if d.dirty:
                self.pfn.put(pfn, self.pfn.lay.modified, 1)
            if protection is None:        # keep a protection the process changed
                vad = self.vm.vad_at(proc, va)
                sec, index = self.section_of_proto(proto_va)
                now = self.vm.view_protection(proc, vad, va)
                if now != sec.protection_of(index):
                    protection = now
            proc.tables.write(pa, self.codec.prototype(proto_va) if protection is None
                              else self.codec.vad_prototype(protection))
            self.machine.invlpg(va)
            proc.ws.remove(va)
            self.unref_shared(pfn)
            self.update_counters()
            return
        prot = protection if protection is not None else \
            self.codec.decode(int(self.pfn.e["orig"][pfn])).protection
        modified = d.dirty or bool(self.pfn.get(pfn, self.pfn.lay.modified))
        proc.tables.write(pa, self.codec.transition(pfn, prot, owner=True))
        self.machine.invlpg(va)
        if va in proc.ws:
            proc.ws.remove(va)
        self.pfn.e["u2"][pfn] = 0
        self.pfn.put(pfn, self.pfn.lay.modified, int(modified))
        if protection is not None:
            self.pfn.e["orig"][pfn] = self.original_with(pfn, protection)
        self.pfn.insert(MODIFIED if modified else STANDBY, pfn)
        self.update_counters()

    # -- sections ---------------------------------------------------------------------------

    def image_section(self, name: str):
        """The image section of ``name`` (one per file, shared by every process mapping it
        at its base); DLLs get bases downwards from a fixed top, in order of first use."""
        from .section import Section
        key = name.lower()
        sec = self.sections.get(key)
        if sec is None:
            sec = Section(self, name, "image")
            if key.endswith(".dll"):
                self.dll_top -= -(-sec.pages * PAGE // 0x10000) * 0x10000
                sec.set_image_base(self.dll_top)
            else:
                sec.set_image_base({4: 0x00400000, 8: 0x000000013F000000}[self.ptr])
            self.sections[key] = sec
        return sec

    def create_section(self, name: str, pages: int, kind: str = "pagefile",
                       protection: int = 4):
        """A data section: pagefile-backed (shared memory) or a mapped data file."""
        from .section import Section
        if name.lower() in self.sections:
            raise ValueError(f"a section called {name!r} exists")
        sec = Section(self, name, kind, pages, protection)
        self.sections[name.lower()] = sec
        return sec

    def section_of_proto(self, proto_va: int):
        for sec in self.sections.values():
            if sec.proto <= proto_va < sec.proto + sec.pages * sec.pte_size:
                return sec, (proto_va - sec.proto) // sec.pte_size
        raise KeyError(f"{proto_va:#x} is not a prototype PTE")

    def unref_shared(self, pfn: int) -> None:
        """One process PTE fewer maps a shared page; with the last one gone the page goes
        to the standby (or modified) list and its prototype PTE into transition."""
        from .pfn import MODIFIED, STANDBY
        share = int(self.pfn.e["u2"][pfn]) - 1
        self.pfn.e["u2"][pfn] = share
        if share:
            return
        proto_va = int(self.pfn.e["pte"][pfn])
        sec, index = self.section_of_proto(proto_va)
        value = self.codec.transition(pfn, sec.protection_of(index))
        self.kmem.write(proto_va, value.to_bytes(sec.pte_size, "little"))
        modified = bool(self.pfn.get(pfn, self.pfn.lay.modified))
        self.pfn.insert(MODIFIED if modified else STANDBY, pfn)

    def unmap_page(self, proc, va: int) -> None:
        """Whatever backs ``va`` in a view leaves the process; its PTE becomes zero."""
        from .pagefile import release_backing
        pa = proc.tables.leaf(va)
        if pa is None:
            return
        d = self.codec.decode(proc.tables.read(pa))
        if d.kind == "valid":
            if self.pfn.get(d.pfn, self.pfn.lay.prototype):
                if d.dirty:
                    self.pfn.put(d.pfn, self.pfn.lay.modified, 1)
                proc.ws.remove(va)
                self.unref_shared(d.pfn)
            else:
                self.release_private_page(proc, va, d.pfn)
                proc.count_private(-1)
        elif d.kind == "transition":            # a private copy, trimmed
            release_backing(self, int(self.pfn.e["orig"][d.pfn]))
            self.pfn.unlink(d.pfn)
            self.pfn.e["orig"][d.pfn] = 0
            self.pfn.release(d.pfn)
            proc.count_private(-1)
        elif d.kind == "pagefile":
            release_backing(self, proc.tables.read(pa))
            proc.count_private(-1)
        proc.tables.write(pa, 0)
        self.machine.invlpg(va)
        self.update_counters()

    def write_modified(self, limit: int | None = None) -> int:
        from .pagefile import write_modified
        return write_modified(self, limit)

    def repurpose(self, count: int) -> int:
        from .pagefile import repurpose
        return repurpose(self, count)

    def zero_pages(self, count: int | None = None) -> int:
        from .pagefile import zero_pages
        return zero_pages(self, count)

    def switch_to(self, proc) -> None:
        """Run ``proc``: load its CR3 unless it is loaded already (a CR3 load flushes the
        TLB's non-global entries, so a process that keeps running keeps its TLB)."""
        if self.machine.paging.cr3 != proc.cr3:
            self.machine.cr3 = proc.cr3
        self.current = proc

    def bump_fault_count(self, proc) -> None:
        n = proc.get_field("Vm.PageFaultCount") + 1
        proc.set_field("Vm.PageFaultCount", n)
