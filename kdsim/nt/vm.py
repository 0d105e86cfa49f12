"""Private virtual memory: NtAllocateVirtualMemory, NtFreeVirtualMemory and
NtProtectVirtualMemory as the WRK does them, on the VAD tree and the page tables in
guest memory.

Rules kept (WRK allocvm.c / freevm.c / protect.c):
* a reservation starts on a 64 KB boundary and covers whole pages; a commit covers the
  pages the range touches; MEM_RESERVE|MEM_COMMIT makes a VAD with MemCommit=1 whose
  PTEs stay zero until touched (the fault consults the VAD);
* committing part of a reservation writes demand-zero PTEs with the protection;
  decommitting writes the decommitted PTE (MM_DECOMMIT) inside a MemCommit VAD, a zero
  PTE otherwise, and releases resident pages;
* the commit charge goes to the VAD (CommitCharge), the process (EPROCESS.CommitCharge)
  and the system (MmTotalCommittedPages), and a charge past MmTotalCommitLimit fails
  with STATUS_COMMITMENT_LIMIT;
* protection changes rewrite PTEs; a resident page that becomes guard or no-access
  leaves the working set for the transition state, as Windows makes it invalid.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import protect as pr
from .execution import traced
from .pagefile import release_backing

PAGE = 0x1000
GRANULARITY = 0x10000
MM_DECOMMIT = 0x10


@dataclass
class VmResult:
    status: int
    base: int = 0
    size: int = 0
    old_protect: int = 0

    @property
    def ok(self) -> bool:
        return pr.nt_success(self.status)


class VadInfo:
    """A VAD read back from guest memory."""

    def __init__(self, system, node: int):
        ts, k = system.ts, system.kmem
        self.node = node
        self.start = ts.field("_MMVAD_SHORT", "StartingVpn").read(k, node) * PAGE
        self.end = (ts.field("_MMVAD_SHORT", "EndingVpn").read(k, node) + 1) * PAGE
        flags = lambda p: ts.field("_MMVAD_SHORT", "u.VadFlags." + p).read(k, node)  # noqa
        self.protection = flags("Protection")
        self.mem_commit = flags("MemCommit")
        self.private = flags("PrivateMemory")
        self.commit_charge = flags("CommitCharge")
        self.first_proto = 0 if self.private else \
            ts.field("_MMVAD", "FirstPrototypePte").read(k, node)


class VirtualMemory:
    def __init__(self, system):
        self.s = system
        self.ts = system.ts
        self.codec = system.codec

    # -- helpers ------------------------------------------------------------------------

    def vad_at(self, proc, va: int) -> VadInfo | None:
        node = proc.vads.find(va // PAGE, update_hint=False)
        return None if node is None else VadInfo(self.s, node)

    def _set_vad_flag(self, node: int, path: str, value: int) -> None:
        self.ts.field("_MMVAD_SHORT", "u.VadFlags." + path).write(self.s.kmem, node, value)

    def _charge(self, proc, pages: int) -> bool:
        s = self.s
        limit = s.read_ptr(s.symbols["MmTotalCommitLimit"])
        used = s.read_ptr(s.symbols["MmTotalCommittedPages"])
        if pages > 0 and used + pages > limit:
            return False
        proc.commit += pages
        proc.set_field("CommitCharge", proc.commit)
        s.committed += pages
        s.update_counters()
        return True

    def _new_vad(self, proc, start: int, end: int, protection: int, commit: bool) -> int:
        ts, s = self.ts, self.s
        pages = (end - start) // PAGE
        node = s.nonpaged_pool.alloc(ts.sizeof("_MMVAD_SHORT"), "VadS")
        values = {"StartingVpn": start // PAGE, "EndingVpn": end // PAGE - 1,
                  "u.VadFlags.PrivateMemory": 1, "u.VadFlags.Protection": protection,
                  "u.VadFlags.MemCommit": int(commit),
                  "u.VadFlags.CommitCharge": pages if commit else 0}
        s.kmem.write(node, ts.pack("_MMVAD_SHORT", values))
        proc.vads.insert(node)
        self._account_vsize(proc, end - start)
        return node

    def _account_vsize(self, proc, delta: int) -> None:
        size = proc.get_field("VirtualSize") + delta
        proc.set_field("VirtualSize", size)
        if size > proc.get_field("PeakVirtualSize"):
            proc.set_field("PeakVirtualSize", size)

    # -- NtAllocateVirtualMemory -----------------------------------------------------------

    @traced("NtAllocateVirtualMemory", entry="service")
    def allocate(self, proc, size: int, address: int = 0, *, reserve: bool = True,
                 commit: bool = True, protect: int = pr.PAGE_READWRITE,
                 top_down: bool = False) -> VmResult:
        try:
            protection = pr.make_protection_mask(protect)
        except pr.InvalidPageProtection:
            return VmResult(pr.STATUS_INVALID_PAGE_PROTECTION)
        if pr.is_write_copy(protection):      # copy-on-write needs a section (WRK allocvm.c)
            return VmResult(pr.STATUS_INVALID_PAGE_PROTECTION)
        a = self.s.profile.address_space
        if address > a.highest_vad_address:                # WRK allocvm.c's checks
            return VmResult(pr.STATUS_INVALID_PARAMETER_2)
        if size <= 0:
            return VmResult(pr.STATUS_INVALID_PARAMETER_4)
        if reserve:
            return self._reserve(proc, size, address, protection, commit, top_down)
        if not commit:
            return VmResult(pr.STATUS_INVALID_PARAMETER)
        start, end = address & ~(PAGE - 1), -(-(address + size) // PAGE) * PAGE
        vad = self.vad_at(proc, start)
        if vad is None or end > vad.end or not vad.private:
            return VmResult(pr.STATUS_CONFLICTING_ADDRESSES)
        return self._commit(proc, vad, start, end, protection)

    def _reserve(self, proc, size, address, protection, commit, top_down) -> VmResult:
        a = self.s.profile.address_space
        if address:
            start = address & ~(GRANULARITY - 1)
            end = -(-(address + size) // PAGE) * PAGE
            if end - 1 > a.highest_vad_address or proc.vads.find_first_overlap(
                    start // PAGE, end // PAGE - 1) is not None:
                return VmResult(pr.STATUS_CONFLICTING_ADDRESSES)
        else:
            length = -(-size // PAGE) * PAGE
            found = proc.vads.first_free_range(length // PAGE, a.lowest_user_address // PAGE,
                                               a.highest_vad_address // PAGE, top_down=top_down,
                                               alignment_vpns=GRANULARITY // PAGE)
            if found is None:
                return VmResult(pr.STATUS_NO_MEMORY)
            start, end = found * PAGE, found * PAGE + length
        pages = (end - start) // PAGE
        if commit and not self._charge(proc, pages):
            return VmResult(pr.STATUS_COMMITMENT_LIMIT)
        self._new_vad(proc, start, end, protection, commit)
        return VmResult(pr.STATUS_SUCCESS, start, end - start)

    def _commit(self, proc, vad: VadInfo, start: int, end: int, protection: int) -> VmResult:
        codec, tables = self.codec, proc.tables
        todo = []
        for va in range(start, end, PAGE):
            pte = tables.get(va)
            committed = vad.mem_commit and pte in (None, 0) or \
                (pte not in (None, 0) and codec.decode(pte).protection != MM_DECOMMIT)
            if not committed:
                todo.append(va)
        if todo and not self._charge(proc, len(todo)):
            return VmResult(pr.STATUS_COMMITMENT_LIMIT)
        for va in todo:
            tables.set(va, codec.demand_zero(protection))
        self._set_vad_flag(vad.node, "CommitCharge", vad.commit_charge + len(todo))
        return VmResult(pr.STATUS_SUCCESS, start, end - start)

    # -- NtFreeVirtualMemory ---------------------------------------------------------------

    @traced("NtFreeVirtualMemory", entry="service")
    def free(self, proc, address: int, size: int = 0, *, release: bool = True) -> VmResult:
        vad = self.vad_at(proc, address)
        if vad is None or not vad.private:
            return VmResult(pr.STATUS_MEMORY_NOT_ALLOCATED)
        if release:
            if size == 0 and address != vad.start:
                return VmResult(pr.STATUS_FREE_VM_NOT_AT_BASE)
            if size not in (0, vad.end - vad.start) or address != vad.start:
                return self._release_part(proc, vad, address, size)
            self._drop_pages(proc, vad.start, vad.end, None)
            self._charge(proc, -vad.commit_charge)
            proc.vads.remove(vad.node)
            self.s.nonpaged_pool.free(vad.node)
            self._account_vsize(proc, -(vad.end - vad.start))
            return VmResult(pr.STATUS_SUCCESS, vad.start, vad.end - vad.start)
        start = address & ~(PAGE - 1)
        end = vad.end if size == 0 and address == vad.start else \
            -(-(address + max(size, 1)) // PAGE) * PAGE
        if end > vad.end:
            return VmResult(pr.STATUS_UNABLE_TO_FREE_VM)
        marker = self.codec.demand_zero(MM_DECOMMIT) if vad.mem_commit else 0
        freed = self._drop_pages(proc, start, end, marker, count_committed=vad)
        self._charge(proc, -freed)
        self._set_vad_flag(vad.node, "CommitCharge", max(vad.commit_charge - freed, 0))
        return VmResult(pr.STATUS_SUCCESS, start, end - start)

    def _release_part(self, proc, vad: VadInfo, address: int, size: int) -> VmResult:
        """Release part of a reservation: the VAD shrinks, or splits in two around the
        hole (MiRemoveVad / the split in NtFreeVirtualMemory)."""
        start, end = address & ~(PAGE - 1), -(-(address + size) // PAGE) * PAGE
        if end > vad.end:
            return VmResult(pr.STATUS_UNABLE_TO_FREE_VM)
        ts, k, s = self.ts, self.s.kmem, self.s
        before = self._committed(proc, vad, vad.start, start)
        after = self._committed(proc, vad, end, vad.end)
        self._drop_pages(proc, start, end, None)
        self._charge(proc, -(vad.commit_charge - before - after))
        f_start = ts.field("_MMVAD_SHORT", "StartingVpn")
        f_end = ts.field("_MMVAD_SHORT", "EndingVpn")
        if start == vad.start:                  # the front goes: the VAD starts later
            f_start.write(k, vad.node, end // PAGE)
            self._set_vad_flag(vad.node, "CommitCharge", after)
        else:                                   # the VAD keeps its front part
            f_end.write(k, vad.node, start // PAGE - 1)
            self._set_vad_flag(vad.node, "CommitCharge", before)
            if end < vad.end:                   # ... and a new VAD holds the rest
                node = s.nonpaged_pool.alloc(ts.sizeof("_MMVAD_SHORT"), "VadS")
                raw = bytearray(k.read(vad.node, ts.sizeof("_MMVAD_SHORT")))
                raw[:ts.offset_of("_MMVAD_SHORT", "StartingVpn")] = bytes(
                    ts.offset_of("_MMVAD_SHORT", "StartingVpn"))      # fresh tree links
                k.write(node, bytes(raw))
                f_start.write(k, node, end // PAGE)
                f_end.write(k, node, vad.end // PAGE - 1)
                self._set_vad_flag(node, "CommitCharge", after)
                proc.vads.insert(node)
        self._account_vsize(proc, -(end - start))
        return VmResult(pr.STATUS_SUCCESS, start, end - start)

    def _committed(self, proc, vad: VadInfo, start: int, end: int) -> int:
        """Committed pages of a private VAD in ``[start, end)``."""
        n = 0
        for va in range(start, end, PAGE):
            pte = proc.tables.get(va) or 0
            if pte == 0:
                n += vad.mem_commit
            else:
                n += self.codec.decode(pte).protection != MM_DECOMMIT
        return n

    def _drop_pages(self, proc, start: int, end: int, marker, count_committed=None) -> int:
        """Release what backs ``[start, end)``; the PTEs become ``marker`` (None: zero, and
        empty page tables are kept).  Returns how many committed pages were dropped."""
        s, codec, tables = self.s, self.codec, proc.tables
        dropped = 0
        for va in range(start, end, PAGE):
            pa = tables.leaf(va)
            pte = tables.read(pa) if pa is not None else 0
            d = codec.decode(pte)
            if count_committed is not None:
                committed = (pte == 0 and count_committed.mem_commit) or \
                    (pte != 0 and d.protection != MM_DECOMMIT)
                dropped += committed
            if d.kind == "valid":
                if d.pfn != s.shared_data_pa // PAGE:    # not the kernel's shared page
                    proc.count_private(-1)
                s.release_private_page(proc, va, d.pfn)
            elif d.kind == "transition":
                release_backing(s, int(s.pfn.e["orig"][d.pfn]))
                s.pfn.unlink(d.pfn)
                s.pfn.e["orig"][d.pfn] = 0
                s.pfn.release(d.pfn)
                proc.count_private(-1)
            elif d.kind == "pagefile":
                release_backing(s, pte)
                proc.count_private(-1)
            if pa is not None and (pte or marker):
                tables.write(pa, marker or 0)
                s.machine.invlpg(va)
            elif pa is None and marker:
                tables.set(va, marker)
        s.update_counters()
        return dropped

    # -- NtProtectVirtualMemory ------------------------------------------------------------

    def _protection_of(self, d) -> int:
        """A page's protection: a valid PTE cannot say it all (no guard, MP write bit),
        so it comes from the PFN's OriginalPte, as MiGetPageProtection does."""
        if d.kind == "valid":
            return self.codec.decode(int(self.s.pfn.e["orig"][d.pfn])).protection
        return d.protection

    @traced("NtProtectVirtualMemory", entry="service")
    def protect(self, proc, address: int, size: int, protect: int) -> VmResult:
        try:
            protection = pr.make_protection_mask(protect)
        except pr.InvalidPageProtection:
            return VmResult(pr.STATUS_INVALID_PAGE_PROTECTION)
        start, end = address & ~(PAGE - 1), -(-(address + max(size, 1)) // PAGE) * PAGE
        vad = self.vad_at(proc, start)
        if vad is None or end > vad.end:
            return VmResult(pr.STATUS_CONFLICTING_ADDRESSES)
        if not vad.private:
            return self._protect_view(proc, vad, start, end, protection)
        if pr.is_write_copy(protection):      # private memory cannot be copy-on-write
            return VmResult(pr.STATUS_INVALID_PAGE_PROTECTION)
        codec, tables, s = self.codec, proc.tables, self.s
        old = None
        for va in range(start, end, PAGE):
            pte = tables.get(va) or 0
            d = codec.decode(pte)
            if (pte == 0 and not vad.mem_commit) or (pte != 0 and d.protection == MM_DECOMMIT):
                return VmResult(pr.STATUS_NOT_COMMITTED)
            if old is None:
                old = vad.protection if pte == 0 else self._protection_of(d)
        for va in range(start, end, PAGE):
            pa = tables.leaf(va, create=True)
            d = codec.decode(tables.read(pa))
            if d.kind == "valid":
                if pr.is_no_access(protection) or pr.is_guard(protection):
                    s.trim_page(proc, va, protection)
                else:
                    new = codec.valid(d.pfn, protection, owner=True, dirty=d.dirty and
                                      pr.is_writable(protection))
                    tables.write(pa, new)
                    s.pfn.e["orig"][d.pfn] = s.original_with(d.pfn, protection)
                    s.machine.invlpg(va)
            elif d.kind == "transition":
                tables.write(pa, codec.transition(d.pfn, protection, owner=True))
                s.pfn.e["orig"][d.pfn] = s.original_with(d.pfn, protection)
            elif d.kind == "pagefile":
                tables.write(pa, codec.pagefile(d.page_file_low, d.page_file_high, protection))
            else:
                tables.write(pa, codec.demand_zero(protection))
        return VmResult(pr.STATUS_SUCCESS, start, end - start,
                        pr.protect_to_value(old if old is not None else protection))

    def _protect_view(self, proc, vad: VadInfo, start: int, end: int,
                      protection: int) -> VmResult:
        """NtProtectVirtualMemory on a mapped view.  A page that is not resident gets the
        "look it up in the VAD" PTE carrying the new protection; a resident shared page is
        re-mapped (write-copy keeps it shared until the first write); guard and no-access
        pages leave the working set, as on private memory."""
        s, codec, tables = self.s, self.codec, proc.tables
        section, first = s.section_of_proto(vad.first_proto)
        # An image can be written only through copy-on-write (MiIsPteProtectionCompatible).
        if section.kind == "image" and pr.is_writable(protection) and \
                not pr.is_write_copy(protection):
            return VmResult(pr.STATUS_SECTION_PROTECTION)
        old = self.view_protection(proc, vad, start)
        for va in range(start, end, PAGE):
            pa = tables.leaf(va, create=True)
            d = codec.decode(tables.read(pa))
            shared = d.kind == "valid" and s.pfn.get(d.pfn, s.pfn.lay.prototype)
            if d.kind == "valid" and (pr.is_no_access(protection) or pr.is_guard(protection)):
                s.trim_page(proc, va, protection)
            elif shared:
                tables.write(pa, codec.valid(d.pfn, protection, owner=True,
                                             dirty=d.dirty and pr.is_writable(protection)
                                             and not pr.is_write_copy(protection)))
                s.machine.invlpg(va)
            elif d.kind == "valid":                     # this process's own copy
                prot = pr.make_protect_not_write_copy(protection)
                tables.write(pa, codec.valid(d.pfn, prot, owner=True,
                                             dirty=d.dirty and pr.is_writable(prot)))
                s.pfn.e["orig"][d.pfn] = s.original_with(d.pfn, prot)
                s.machine.invlpg(va)
            elif d.kind in ("zero", "prototype", "vad_prototype"):
                tables.write(pa, codec.vad_prototype(protection))
            elif d.kind == "transition":
                prot = pr.make_protect_not_write_copy(protection)
                tables.write(pa, codec.transition(d.pfn, prot, owner=True))
            elif d.kind == "pagefile":
                prot = pr.make_protect_not_write_copy(protection)
                tables.write(pa, codec.pagefile(d.page_file_low, d.page_file_high, prot))
        return VmResult(pr.STATUS_SUCCESS, start, end - start, pr.protect_to_value(old))

    def view_protection(self, proc, vad: VadInfo, va: int) -> int:
        """A view page's protection: the PTE's if it carries one, else the section's."""
        s, codec = self.s, self.codec
        d = codec.decode(proc.tables.get(va) or 0)
        if d.kind == "vad_prototype":
            return d.protection
        section, first = s.section_of_proto(vad.first_proto)
        base = section.protection_of(first + (va - vad.start) // PAGE)
        if d.kind == "valid" and not s.pfn.get(d.pfn, s.pfn.lay.prototype):
            return self._protection_of(d)
        if d.kind == "valid":          # a shared page: what its PTE allows
            return pr.shared_page_protection(base, d.copy_on_write, d.writable)
        # The process's own copy (a written copy-on-write page), trimmed or paged out:
        # its transition or paging-file PTE carries the copy's protection.
        if d.kind == "transition" and not s.pfn.get(d.pfn, s.pfn.lay.prototype):
            return d.protection
        if d.kind == "pagefile":
            return d.protection
        return base
