"""Memory access by a process, and the page-fault handler (MmAccessFault).

A process touches memory through the C core's CPU path (user mode, its CR3 loaded,
the TLB in play).  When the MMU faults, the handler looks at the PTE and the VAD the
way MmAccessFault does and either resolves the fault (the access is retried) or
returns the NTSTATUS the program would get:

* valid PTE, write, software Write bit set but not dirty: the MP dirty-bit fault;
  the PTE gets Dirty|Dirty1 (0x42) (WRK MiSetDirtyBit);
* zero PTE: the VAD decides -- committed private memory is demand-zero with the VAD's
  protection, anything else is an access violation;
* demand-zero PTE: a zeroed page (zeroed list, else free list then zeroing);
* transition PTE: a soft fault, the page comes back from the standby/modified list;
* guard protection: the guard is removed and the access fails with
  STATUS_GUARD_PAGE_VIOLATION (the next one goes through);
* no-access, decommitted, a write to a read-only page, a kernel address:
  STATUS_ACCESS_VIOLATION.
"""
from __future__ import annotations

from collections import Counter

from kdsim.machine import VirtualMemoryError

from . import protect as pr
from .execution import traced
from .pfn import STANDBY, MODIFIED

PAGE = 0x1000
MM_DECOMMIT = 0x10


class FaultHandler:
    def __init__(self, system):
        self.s = system
        self.codec = system.codec
        self.counts = Counter()

    @traced("MmAccessFault", entry="fault")
    def resolve(self, proc, va: int, write: bool, execute: bool = False) -> int:
        """MmAccessFault for a user-mode access; STATUS_SUCCESS when resolved."""
        s, codec = self.s, self.codec
        a = s.profile.address_space
        if va > a.highest_user_address:
            self.counts["access violation"] += 1
            return pr.STATUS_ACCESS_VIOLATION
        page = va & ~(PAGE - 1)
        pa = proc.tables.leaf(page)
        pte = proc.tables.read(pa) if pa is not None else 0
        d = codec.decode(pte)
        if d.kind == "valid":
            if write and d.copy_on_write:
                return self._copy_on_write(proc, page, pa, d)
            if write and d.writable and not d.dirty:
                proc.tables.write(pa, codec.make_dirty(pte))
                s.pfn.put(d.pfn, s.pfn.lay.modified, 1)
                self._free_backing(d.pfn)
                s.machine.invlpg(page)
                self.counts["dirty bit"] += 1
                return pr.STATUS_SUCCESS
            self.counts["access violation"] += 1
            return pr.STATUS_ACCESS_VIOLATION
        if d.kind == "transition":
            return self._soft(proc, page, pa, d, write)
        if d.kind == "prototype":
            return self._shared(proc, page, pa, d.proto_address, write)
        if d.kind == "vad_prototype":       # a view page whose protection was changed
            vad = s.vm.vad_at(proc, page)
            if vad is None or vad.private:
                self.counts["access violation"] += 1
                return pr.STATUS_ACCESS_VIOLATION
            proto = vad.first_proto + (page - vad.start) // PAGE * s.profile.pte_size
            if pr.is_guard(d.protection):
                proc.tables.write(pa, codec.vad_prototype(d.protection & ~pr.MM_GUARD_PAGE))
                self.counts["guard page"] += 1
                return pr.STATUS_GUARD_PAGE_VIOLATION
            return self._shared(proc, page, pa, proto, write, d.protection)
        if d.kind == "zero":
            vad = s.vm.vad_at(proc, page)
            if vad is not None and not vad.private:
                return self._shared(proc, page, pa, vad.first_proto +
                                    (page - vad.start) // PAGE * s.profile.pte_size, write)
            if vad is None or not vad.private or not vad.mem_commit:
                self.counts["access violation"] += 1
                return pr.STATUS_ACCESS_VIOLATION
            protection = vad.protection
        elif d.kind == "demand_zero":
            protection = d.protection
        elif d.kind == "pagefile":
            return self._hard(proc, page, pa, d, write)
        else:
            self.counts["unsupported"] += 1
            return pr.STATUS_IN_PAGE_ERROR
        if protection == MM_DECOMMIT or pr.is_no_access(protection):
            self.counts["access violation"] += 1
            return pr.STATUS_ACCESS_VIOLATION
        if pr.is_guard(protection):
            proc.tables.set(page, codec.demand_zero(protection & ~pr.MM_GUARD_PAGE))
            self.counts["guard page"] += 1
            return pr.STATUS_GUARD_PAGE_VIOLATION
        if write and not pr.is_writable(protection):
            self.counts["access violation"] += 1
            return pr.STATUS_ACCESS_VIOLATION
        if execute and s.nx and not pr.is_executable(protection):
            # No-execute is enforced (PAE and x64 kernels run with NX): the fetch fails
            # before a page is made for it.
            self.counts["access violation"] += 1
            return pr.STATUS_ACCESS_VIOLATION
        self._demand_zero(proc, page, protection, write)
        return pr.STATUS_SUCCESS

    @traced("MiDispatchFault", "MiResolveDemandZeroFault")
    def _demand_zero(self, proc, page: int, protection: int, write: bool) -> None:
        s, codec = self.s, self.codec
        pfn = s.take_page()
        original = codec.demand_zero(protection)
        # MiResolveDemandZeroFault: MiInitializePfn(..., 1) -- a new zero page is modified
        # (no copy of it exists anywhere) even on a read, and its valid PTE is made dirty
        # when the protection allows writing (WRK pagfault.c).
        epa = proc.tables.set(page, codec.valid(pfn, protection, owner=True,
                                                dirty=pr.is_writable(protection)))
        s.pfn.make_active(pfn, s.profile.pte_address(page), epa // PAGE, original,
                          modified=True, priority=proc.page_priority)
        proc.ws.insert(page, pfn)
        proc.count_private(1)
        s.bump_fault_count(proc)
        s.update_counters()
        self.counts["demand zero"] += 1

    @traced("MiDispatchFault", "MiResolveProtoPteFault")
    def _shared(self, proc, page: int, pa, proto_va: int, write: bool,
                protection: int | None = None) -> int:
        """A page of a mapped view: resolve its prototype PTE (MiResolveProtoPteFault),
        then point the process's PTE at the shared page (with ``protection`` if the
        process changed it, else the section's)."""
        s, codec = self.s, self.codec
        section, index = s.section_of_proto(proto_va)
        prot = section.protection_of(index) if protection is None else protection
        if pr.is_no_access(prot) or (write and not pr.is_writable(prot)):
            self.counts["access violation"] += 1
            return pr.STATUS_ACCESS_VIOLATION
        k = s.kmem
        raw = int.from_bytes(k.read(proto_va, section.pte_size), "little")
        pd = codec.decode(raw, in_prototype_array=True)
        proto_frame = s.machine.translate(proto_va).pa // PAGE
        if pd.kind == "valid":
            pfn = pd.pfn
            kind = "prototype (resident)"
        elif pd.kind == "transition":
            pfn = pd.pfn
            s.pfn.unlink(pfn)
            s.pfn.make_active(pfn, proto_va, proto_frame, int(s.pfn.e["orig"][pfn]), share=0,
                              prototype=True, new_reference=False,
                              priority=proc.page_priority)
            kind = "prototype (transition)"
        elif pd.kind == "subsection":
            pfn = s.take_page()
            s.machine.write_physical(pfn * PAGE, section.contents(index))
            s.pfn.make_active(pfn, proto_va, proto_frame, raw, share=0, prototype=True,
                              priority=proc.page_priority)
            kind = "prototype (read from the file)"
        elif pd.kind == "demand_zero":
            pfn = s.take_page()
            # MiResolveProtoPteFault resolves it with MiResolveDemandZeroFault: modified.
            s.pfn.make_active(pfn, proto_va, proto_frame, raw, share=0, prototype=True,
                              modified=True, priority=proc.page_priority)
            kind = "prototype (demand zero)"
        elif pd.kind == "pagefile":
            pfn = s.take_page()
            pf = s.paging_files[pd.page_file_low]
            s.machine.write_physical(pfn * PAGE, pf.read(pd.page_file_high))
            s.pfn.make_active(pfn, proto_va, proto_frame, raw, share=0, prototype=True,
                              priority=proc.page_priority)
            kind = "prototype (read from the paging file)"
        else:
            self.counts["unsupported"] += 1
            return pr.STATUS_IN_PAGE_ERROR
        if pd.kind != "valid":
            k.write(proto_va, codec.valid(pfn, section.protection_of(index)).to_bytes(
                section.pte_size, "little"))
        if pd.kind not in ("valid", "transition"):
            section.count_pfn(+1)              # a page of the section is in memory now
        if pa is None:
            pa = proc.tables.leaf(page, create=True)
        proc.tables.write(pa, codec.valid(pfn, prot, owner=True))
        s.machine.invlpg(page)
        s.pfn.e["u2"][pfn] += 1
        proc.ws.insert(page, pfn)
        s.bump_fault_count(proc)
        s.update_counters()
        self.counts[kind] += 1
        return pr.STATUS_SUCCESS

    @traced("MiCopyOnWrite")
    def _copy_on_write(self, proc, page: int, pa: int, d) -> int:
        """A write to a copy-on-write page: the writer gets a private copy (MiCopyOnWrite)."""
        s, codec = self.s, self.codec
        old = d.pfn
        section, index = s.section_of_proto(int(s.pfn.e["pte"][old]))
        vad = s.vm.vad_at(proc, page)
        prot = pr.make_protect_not_write_copy(s.vm.view_protection(proc, vad, page))
        new = s.take_page()
        s.machine.write_physical(new * PAGE, s.machine.read_physical(old * PAGE, PAGE))
        proc.tables.write(pa, codec.valid(new, prot, owner=True, dirty=True))
        s.machine.invlpg(page)
        s.pfn.make_active(new, s.profile.pte_address(page), pa // PAGE,
                          codec.demand_zero(prot), modified=True, priority=proc.page_priority)
        s.pfn.e["u1"][new] = proc.ws.entries[page]          # the same working-set entry
        proc.count_private(1)
        s.unref_shared(old)
        s.update_counters()
        self.counts["copy on write"] += 1
        return pr.STATUS_SUCCESS

    def _free_backing(self, pfn: int) -> None:
        """The page is dirty now: its copy in the paging file is stale; free the slot
        (MiSetDirtyBit) and let OriginalPte say demand zero again."""
        from .pagefile import release_backing
        s = self.s
        orig = self.codec.decode(int(s.pfn.e["orig"][pfn]))
        if orig.kind == "pagefile":
            release_backing(s, int(s.pfn.e["orig"][pfn]))
            s.pfn.e["orig"][pfn] = self.codec.demand_zero(orig.protection)

    @traced("MiDispatchFault", "MiResolvePageFileFault")
    def _hard(self, proc, page: int, pa: int, d, write: bool) -> int:
        """A hard fault: the page's contents come back from the paging file."""
        s, codec = self.s, self.codec
        protection = d.protection
        if pr.is_guard(protection):
            proc.tables.write(pa, codec.pagefile(d.page_file_low, d.page_file_high,
                                                 protection & ~pr.MM_GUARD_PAGE))
            self.counts["guard page"] += 1
            return pr.STATUS_GUARD_PAGE_VIOLATION
        if pr.is_no_access(protection) or (write and not pr.is_writable(protection)):
            self.counts["access violation"] += 1
            return pr.STATUS_ACCESS_VIOLATION
        pf = s.paging_files[d.page_file_low]
        pfn = s.take_page()
        s.machine.write_physical(pfn * PAGE, pf.read(d.page_file_high))
        proc.tables.write(pa, codec.valid(pfn, protection, owner=True,
                                          dirty=write and pr.is_writable(protection)))
        s.pfn.make_active(pfn, s.profile.pte_address(page), pa // PAGE,
                          codec.pagefile(d.page_file_low, d.page_file_high, protection),
                          modified=write, priority=proc.page_priority)
        if write:
            self._free_backing(pfn)
        proc.ws.insert(page, pfn)
        s.bump_fault_count(proc)
        if s.ts.has_field("_EPROCESS", "Vm.HardFaultCount"):   # not in the WRK's _MMSUPPORT
            proc.set_field("Vm.HardFaultCount", proc.get_field("Vm.HardFaultCount") + 1)
        s.update_counters()
        self.counts["hard fault"] += 1
        return pr.STATUS_SUCCESS

    @traced("MiDispatchFault", "MiResolveTransitionFault")
    def _soft(self, proc, page: int, pa: int, d, write: bool) -> int:
        s, codec = self.s, self.codec
        if pr.is_guard(d.protection):
            proc.tables.write(pa, codec.transition(d.pfn, d.protection & ~pr.MM_GUARD_PAGE,
                                                   owner=True))
            s.pfn.e["orig"][d.pfn] = codec.demand_zero(d.protection & ~pr.MM_GUARD_PAGE)
            self.counts["guard page"] += 1
            return pr.STATUS_GUARD_PAGE_VIOLATION
        if d.protection == MM_DECOMMIT or pr.is_no_access(d.protection) or \
                (write and not pr.is_writable(d.protection)):
            self.counts["access violation"] += 1
            return pr.STATUS_ACCESS_VIOLATION
        was = s.pfn.unlink(d.pfn)
        modified = was == MODIFIED or bool(s.pfn.get(d.pfn, s.pfn.lay.modified))
        original = int(s.pfn.e["orig"][d.pfn])
        proc.tables.write(pa, codec.valid(d.pfn, d.protection, owner=True,
                                          dirty=modified or write))
        s.pfn.make_active(d.pfn, s.profile.pte_address(page), pa // PAGE, original,
                          modified=modified or write, new_reference=False,
                          priority=proc.page_priority)
        if write:
            self._free_backing(d.pfn)
        proc.ws.insert(page, d.pfn)
        s.bump_fault_count(proc)
        s.update_counters()
        self.counts["transition" if was == STANDBY else "transition (modified)"] += 1
        return pr.STATUS_SUCCESS


def access(system, proc, va: int, data_or_size, kind: str = "r") -> tuple[int, bytes]:
    """The process reads (``kind`` "r"/"x", ``data_or_size`` a length) or writes ("w",
    ``data_or_size`` the bytes) its memory at ``va``; page faults are handled as they
    come.  Returns (NTSTATUS, bytes read)."""
    m = system.machine
    system.switch_to(proc)
    writing = kind == "w"
    data = bytes(data_or_size) if writing else b""
    size = len(data) if writing else int(data_or_size)
    out = bytearray()
    done = 0
    for _ in range(4 * (size // PAGE + 2) + 8):      # each page faults a bounded number of times
        if done >= size:
            return pr.STATUS_SUCCESS, bytes(out)
        try:
            if writing:
                m.write_virtual(va + done, data[done:], user=True, probe=False)
            else:
                out += m.read_virtual(va + done, size - done, access=kind, user=True,
                                      probe=False)
            return pr.STATUS_SUCCESS, bytes(out)
        except VirtualMemoryError as e:
            done += e.done
            if not writing:
                out += e.data
            t = e.translation
            if t.noncanonical or not t.page_fault:
                return pr.STATUS_ACCESS_VIOLATION, bytes(out)
            status = system.faults.resolve(proc, va + done, writing, kind == "x")
            if status != pr.STATUS_SUCCESS:
                return status, bytes(out)
    return pr.STATUS_ACCESS_VIOLATION, bytes(out)


def touch(system, proc, va: int, size: int, kind: str = "r") -> tuple[int, int]:
    """The process touches every page of ``[va, va+size)`` in order -- one CPU access
    of ``kind`` ("r", "w" or "x") each, moving no data -- and stops at the first page
    whose fault fails.  Returns (NTSTATUS, pages touched).

    Runs of committed, never-touched private pages are resolved together -- the same
    demand-zero faults, page by page, as one access at a time would take, with the
    bookkeeping done in bulk -- and then touched by the CPU in one batch (TLB, A/D)."""
    import numpy as np
    m = system.machine
    system.switch_to(proc)
    write = kind == "w"
    first = va & ~(PAGE - 1)
    pages = (va + max(size, 1) - first + PAGE - 1) // PAGE
    how = "w" if write else kind
    i = 0
    while i < pages:
        # Pages the tables already allow: the CPU touches them in one batch (a probe
        # finds how far that goes, so nothing past a faulting page is touched).
        n = min(pages - i, 512)
        vas = np.arange(first + i * PAGE, first + (i + n) * PAGE, PAGE, dtype=np.uint64)
        _, probe = m.translate_batch(vas, how, user=True, probe=True)
        ok = int(np.argmax(probe != 0)) if probe.any() else n
        if ok:
            m.translate_batch(vas[:ok], how, user=True, probe=False)
            i += ok
            continue
        # Fetches go one page at a time: a no-execute page must fail, not be made.
        # (and a guest thread under a debugger goes through MmAccessFault page by page)
        run = 0 if kind == "x" or system.tracer is not None else \
            _demand_zero_run(system, proc, first + i * PAGE, pages - i, write)
        if run:
            vas = np.arange(first + i * PAGE, first + (i + run) * PAGE, PAGE, dtype=np.uint64)
            _, status = m.translate_batch(vas, how, user=True, probe=False)
            if status.any():
                raise AssertionError("bulk-resolved pages still fault")
            i += run
            continue
        status = _touch_one(system, proc, first + i * PAGE, how)
        if status != pr.STATUS_SUCCESS:
            return status, i
        i += 1
    return pr.STATUS_SUCCESS, pages


def _touch_one(system, proc, page: int, how: str) -> int:
    """One CPU access to ``page`` (no data moves), its faults resolved as they come."""
    for _ in range(4):
        t = system.machine.translate(page, how, user=True, probe=False)
        if t.ok:
            return pr.STATUS_SUCCESS
        if not t.page_fault:
            return pr.STATUS_ACCESS_VIOLATION
        status = system.faults.resolve(proc, page, how == "w", how == "x")
        if status != pr.STATUS_SUCCESS:
            return status
    return pr.STATUS_ACCESS_VIOLATION


def _demand_zero_run(system, proc, start: int, limit: int, write: bool) -> int:
    """Resolve the longest run of demand-zero faults from ``start`` (at most ``limit``
    pages, one protection, within one page table); returns its length (0: none)."""
    import numpy as np
    s, codec, tables = system, system.codec, proc.tables
    vad = s.vm.vad_at(proc, start)
    if vad is None or not vad.private:
        return 0
    per_table = 1 << tables.levels[-1][1]
    slot = (start >> 12) & (per_table - 1)
    n = min(limit, per_table - slot, (vad.end - start) // PAGE)
    pt = tables.leaf(start)
    ptes = tables.words.table(pt, n).astype(np.uint64) if pt is not None else \
        np.zeros(n, dtype=np.uint64)
    first = int(ptes[0])
    if first == 0:
        if not vad.mem_commit:
            return 0
        protection = vad.protection
        same = ptes == 0
    else:
        d = codec.decode(first)
        if d.kind != "demand_zero":
            return 0
        protection = d.protection
        same = ptes == np.uint64(first)
    if protection == MM_DECOMMIT or pr.is_no_access(protection) or pr.is_guard(protection) \
            or (write and not pr.is_writable(protection)):
        return 0
    run = int(np.argmin(same)) if not same.all() else n
    if run < 2 or s.pfn.total(0) < run:
        return 0                       # a single fault, or no zeroed pages: the usual path
    pfns = s.pfn.pop_many(0, run)
    pt = tables.leaf(start, create=True)
    bits = codec.valid(0, protection, owner=True, dirty=pr.is_writable(protection))
    view = tables.words.table(pt, run)
    view[:] = (np.uint64(bits) | (pfns.astype(np.uint64) << np.uint64(12))).astype(view.dtype)
    vas = np.arange(start, start + run * PAGE, PAGE, dtype=np.uint64)
    pte_vas = np.uint64(s.profile.pte_address(start)) + \
        np.arange(run, dtype=np.uint64) * np.uint64(s.profile.pte_size)
    s.pfn.make_active_many(pfns, pte_vas, np.full(run, pt >> 12),
                           codec.demand_zero(protection), modified=True,
                           priority=proc.page_priority)
    proc.ws.insert_many(vas, pfns)
    proc.count_private(run)
    proc.set_field("Vm.PageFaultCount", proc.get_field("Vm.PageFaultCount") + run)
    s.faults.counts["demand zero"] += run
    s.update_counters()
    return run
