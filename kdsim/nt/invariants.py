"""The invariant checker: is the kernel's state in guest memory complete and consistent?

It reads guest memory only, the way a debugger would: the symbol table gives the
variables' addresses, the profile's layouts give the structures, the page tables are
walked from each process's DirectoryTableBase.  It never asks the memory manager's
Python objects.  ``check(machine, profile, symbols)`` returns a list of problems
(empty when all is well).
"""
from __future__ import annotations

import struct

import numpy as np

from .guest import KernelMemory
from .pfn import ACTIVE, AVAILABLE_LISTS, LIST_NAMES, PfnLayout
from .tables import ENTRY_LEVELS, PS, Tables, is_self_map_entry
from .types import TypeSystem

PAGE = 0x1000
MAX_PROBLEMS = 50


class _Reader:
    def __init__(self, machine, ptr: int):
        self.m = machine
        self.ptr = ptr
        self.fmt = "<Q" if ptr == 8 else "<I"

    def read(self, va: int, n: int) -> bytes:
        return self.m.read_virtual(va, n)

    def ptr_at(self, va: int) -> int:
        return struct.unpack(self.fmt, self.read(va, self.ptr))[0]

    def ulong(self, va: int) -> int:
        return struct.unpack("<I", self.read(va, 4))[0]


def check(machine, profile, symbols: dict[str, int]) -> list[str]:
    ts = TypeSystem(profile)
    r = _Reader(machine, profile.pointer_size)
    problems: list[str] = []

    def bad(msg: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(msg)

    # -- physical memory and the PFN database ------------------------------------------
    block = r.ptr_at(symbols["MmPhysicalMemoryBlock"])
    desc = ts.view(r, "_PHYSICAL_MEMORY_DESCRIPTOR", block)
    nruns = int(desc.NumberOfRuns)
    run_size = ts.sizeof("_PHYSICAL_MEMORY_RUN")
    run0 = block + ts.offset_of("_PHYSICAL_MEMORY_DESCRIPTOR", "Run")
    runs = []
    for i in range(nruns):
        run = ts.view(r, "_PHYSICAL_MEMORY_RUN", run0 + i * run_size)
        runs.append((int(run.BasePage), int(run.PageCount)))
    ram_pages = sum(n for _, n in runs)
    if ram_pages != int(desc.NumberOfPages):
        bad(f"MmPhysicalMemoryBlock: runs add up to {ram_pages:#x} pages, "
            f"NumberOfPages says {int(desc.NumberOfPages):#x}")
    if r.ulong(symbols["MmNumberOfPhysicalPages"]) != ram_pages:
        bad("MmNumberOfPhysicalPages differs from MmPhysicalMemoryBlock")
    highest = r.ptr_at(symbols["MmHighestPhysicalPage"])
    if highest != max(b + n for b, n in runs) - 1:
        bad(f"MmHighestPhysicalPage {highest:#x} is not the last page of the last run")
    in_ram = np.zeros(highest + 1, dtype=bool)
    for b, n in runs:
        in_ram[b:b + n] = True

    lay = PfnLayout(ts)
    base = r.ptr_at(symbols["MmPfnDatabase"])
    raw = np.frombuffer(r.read(base, (highest + 1) * lay.size), dtype=np.uint8)
    e = raw.view(lay.dtype)
    loc = (e[lay.location.word].astype(np.uint64) >> np.uint64(lay.location.shift)) & \
        np.uint64(lay.location.mask)

    # -- the lists ------------------------------------------------------------------------
    seen = np.zeros(highest + 1, dtype=bool)
    totals = {}
    for list_id, name in enumerate(("MmZeroedPageListHead", "MmFreePageListHead",
                                    "MmStandbyPageListHead", "MmModifiedPageListHead",
                                    "MmModifiedNoWritePageListHead", "MmBadPageListHead")):
        head = ts.view(r, "_MMPFNLIST", symbols[name])
        total, first, last = int(head.Total), int(head.Flink), int(head.Blink)
        totals[list_id] = total
        count, prev, cur = 0, lay.empty, first
        while cur != lay.empty:
            if cur > highest or not in_ram[cur]:
                bad(f"{name}: link to page {cur:#x}, which is not RAM")
                break
            if seen[cur]:
                bad(f"{name}: page {cur:#x} is on a list twice (a cycle?)")
                break
            seen[cur] = True
            if int(loc[cur]) != list_id:
                bad(f"{name}: page {cur:#x} says PageLocation {LIST_NAMES[int(loc[cur])]}")
            if int(e["u2"][cur]) != prev:
                bad(f"{name}: page {cur:#x} Blink {int(e['u2'][cur]):#x}, expected {prev:#x}")
            prev, cur = cur, int(e["u1"][cur])
            count += 1
        if prev != last:
            bad(f"{name}: Blink {last:#x} is not the last page {prev:#x}")
        if count != total:
            bad(f"{name}: Total {total:#x} but {count:#x} pages linked")
    avail = sum(totals[i] for i in AVAILABLE_LISTS)
    if r.ptr_at(symbols["MmAvailablePages"]) != avail:
        bad(f"MmAvailablePages {r.ptr_at(symbols['MmAvailablePages']):#x} "
            f"!= zeroed + free + standby {avail:#x}")

    # -- active pages: every valid PTE's page points back at it ----------------------------
    mapped = np.zeros(highest + 1, dtype=bool)
    head = symbols["PsActiveProcessHead"]
    links = ts.offset_of("_EPROCESS", "ActiveProcessLinks")
    dtb = "Pcb.DirectoryTableBase[0]" if ts.field("_EPROCESS", "Pcb.DirectoryTableBase").count \
        else "Pcb.DirectoryTableBase"
    f_dtb = ts.field("_EPROCESS", dtb)
    processes = []
    cur = r.ptr_at(head)
    while cur != head and len(processes) < 4096:
        processes.append(cur - links)
        cur = r.ptr_at(cur)
    if not processes:
        bad("PsActiveProcessHead is empty")
        return problems
    system_ep = r.ptr_at(symbols["PsInitialSystemProcess"])
    if processes[0] != system_ep:
        bad("the first process on PsActiveProcessHead is not PsInitialSystemProcess")
    mode = profile.paging
    names = ENTRY_LEVELS[mode.name]
    def expect(frame: int, pte_va: int, pte_frame: int, what: str) -> None:
        if frame > highest or not in_ram[frame]:
            return                                    # device memory: no PFN entry
        mapped[frame] = True
        if int(loc[frame]) != ACTIVE:
            bad(f"{what}: page {frame:#x} is mapped but {LIST_NAMES[int(loc[frame])]}")
            return
        got = int(e["pte"][frame])
        if got != pte_va:
            bad(f"{what}: PFN {frame:#x} PteAddress {got:#x}, expected {pte_va:#x}")
        pf = lay.frame.get(int(e["u4"][frame]))
        if pf != pte_frame:
            bad(f"{what}: PFN {frame:#x} PteFrame {pf:#x}, expected {pte_frame:#x}")

    from collections import Counter
    from .addrspace import is_shared_kernel_entry, top_level_span
    refs: Counter = Counter()          # valid leaf PTEs naming each page
    table_pages: set[int] = set()
    page_tables: list[tuple[int, int]] = []   # user page tables: (frame, first VA)
    user_leaves: Counter = Counter()          # valid user-half PTEs of each process
    proto_ranges: set[tuple[int, int]] = set()  # prototype PTEs that mapped views name
    system_tables = Tables(machine, mode, f_dtb.read(r, system_ep), None, None)
    top_depth, _ = top_level_span(profile)
    last = len(system_tables.levels) - 1

    def walk_space(tables, ep: int, private_only: bool) -> None:
        def follow(d, v, x):
            if is_self_map_entry(profile, d, v):
                return False
            return not (private_only and is_shared_kernel_entry(profile, v))
        for depth, va, epa, value in tables.walk(follow):
            if mode.name == "pae" and depth == 0:
                continue
            if private_only and is_shared_kernel_entry(profile, va):
                if depth == top_depth:
                    sys_epa = system_tables.entry(va, depth)
                    if sys_epa is None or system_tables.read(sys_epa) != value:
                        bad(f"process {ep:#x}: kernel entry for {va:#x} differs from System's")
                continue
            frame = (value & tables.addr_mask) >> 12
            pte_va = profile.entry_address(va, names[depth])
            what = f"{names[depth].upper()} of {va:#x} (process {ep:#x})"
            if depth != last and value & PS and tables.can_be_large(depth):
                span = 1 << (tables.levels[depth][0] - 12)
                first = frame & ~(span - 1)
                for f in range(first, first + span):
                    expect(f, pte_va, epa >> 12, what)
                    refs[f] += 1
            elif depth == last:
                refs[frame] += 1
                if va < profile.address_space.system_range_start:
                    user_leaves[ep] += 1
                if refs[frame] == 1 or int(e["pte"][frame]) == pte_va:
                    expect_shared(frame, pte_va, epa >> 12, what)
            else:
                table_pages.add(frame)
                expect(frame, pte_va, epa >> 12, what)
                if depth == last - 1 and private_only:
                    page_tables.append((frame, va))

    def expect_shared(frame, pte_va, pte_frame, what):
        # A page mapped by several PTEs (KUSER_SHARED_DATA) names one of them; a section's
        # page names its prototype PTE (checked below).
        if frame <= highest and in_ram[frame] and int(loc[frame]) == ACTIVE and (
                lay.prototype.get(int(e[lay.prototype.word][frame])) or
                (int(e["u2"][frame]) > 1 and int(e["pte"][frame]) != pte_va)):
            mapped[frame] = True
            return
        expect(frame, pte_va, pte_frame, what)

    walk_space(system_tables, system_ep, False)
    for ep in processes[1:]:
        tables = Tables(machine, mode, f_dtb.read(r, ep), None, None)
        walk_space(tables, ep, True)
        proto_ranges |= check_process(ts, r, KernelMemory(machine, tables.top), ep,
                                      profile, user_leaves[ep], bad)
    check_share_counts(e, loc, lay, in_ram, refs, table_pages, bad)

    check_paging_files(machine, profile, symbols, r, ts, e, loc, page_tables, proto_ranges, bad)
    check_back_links(machine, profile, r, e, loc, lay, highest, bad)
    from .sysva_check import check_system_va
    check_system_va(r, ts, profile, symbols, system_tables, bad)

    # -- every RAM page is either mapped (active) or on exactly one list -----------------
    active_unmapped = np.flatnonzero(in_ram & (loc == ACTIVE) & ~mapped)
    for f in active_unmapped[:5]:
        bad(f"page {int(f):#x} is ActiveAndValid but no valid PTE maps it")
    lost = np.flatnonzero(in_ram & ~seen & ~mapped & (loc != ACTIVE))
    for f in lost[:5]:
        bad(f"page {int(f):#x} is neither mapped nor on a list")
    listed = int(seen.sum())
    if listed + int((in_ram & (loc == ACTIVE)).sum()) != ram_pages:
        bad(f"lists ({listed:#x}) + active pages do not add up to {ram_pages:#x} RAM pages")
    return problems


def check_paging_files(machine, profile, symbols, r, ts, e, loc, page_tables, proto_ranges,
                       bad) -> None:
    """Every allocated paging-file slot is named exactly once -- by a paging-file PTE or
    by the OriginalPte of a page in memory -- and every named slot is allocated; the
    file's FreeSpace agrees with its bitmap."""
    from collections import Counter
    from .pfn import MODIFIED, STANDBY
    from .pte import PteCodec
    codec = PteCodec(profile)
    count = r.ulong(symbols["MmNumberOfPagingFiles"])
    files = []
    for i in range(count):
        pf = r.ptr_at(symbols["MmPagingFile"] + i * profile.pointer_size)
        v = ts.view(r, "_MMPAGING_FILE", pf)
        size = int(v.Size)
        bm = ts.view(r, "_RTL_BITMAP", int(v.Bitmap))
        if int(bm.SizeOfBitMap) != size:
            bad(f"paging file {i}: bitmap of {int(bm.SizeOfBitMap):#x} bits for {size:#x} pages")
        raw = np.frombuffer(r.read(int(bm.Buffer), -(-size // 32) * 4), dtype=np.uint8)
        bits = np.unpackbits(raw, bitorder="little")[:size].astype(bool)
        if not bits[0]:
            bad(f"paging file {i}: page 0 is not reserved")
        if int(v.FreeSpace) != size - int(bits.sum()):
            bad(f"paging file {i}: FreeSpace {int(v.FreeSpace):#x}, bitmap says "
                f"{size - int(bits.sum()):#x}")
        files.append(bits)
    named: Counter = Counter()
    pte_size = profile.pte_size
    dtype = np.uint64 if pte_size == 8 else np.uint32
    for frame, _ in page_tables:
        ptes = np.frombuffer(machine.read_physical(frame * PAGE, PAGE), dtype=dtype)
        # invalid, not prototype, not transition, and not a bare demand-zero PTE
        cand = np.flatnonzero(((ptes & 0xC01) == 0) & ((ptes >> 12) != 0))
        for value in ptes[cand].tolist():
            d = codec.decode(int(value))
            if d.kind == "pagefile":
                named[(d.page_file_low, d.page_file_high)] += 1
    protos = set()
    for first, last_pte in proto_ranges:
        for va in range(first, last_pte + pte_size, pte_size):
            protos.add(va)
    for va in sorted(protos):
        value = int.from_bytes(r.read(va, pte_size), "little")
        if not value & 0xC01 and value >> 12:
            d = codec.decode(value, in_prototype_array=True)
            if d.kind == "pagefile":
                named[(d.page_file_low, d.page_file_high)] += 1
    for pfn in np.flatnonzero((loc == STANDBY) | (loc == MODIFIED) | (loc == ACTIVE)).tolist():
        orig = int(e["orig"][pfn])
        if orig & 0xC01 or not orig >> 12:
            continue
        d = codec.decode(orig)
        if d.kind == "pagefile":
            named[(d.page_file_low, d.page_file_high)] += 1
    for (f, slot), n in named.items():
        if f >= len(files) or slot >= len(files[f]) or not files[f][slot]:
            bad(f"paging file {f} page {slot:#x} is named but not allocated")
        elif n > 1:
            bad(f"paging file {f} page {slot:#x} is named {n} times")
    for f, bits in enumerate(files):
        for slot in np.flatnonzero(bits)[1:].tolist():
            if (f, slot) not in named:
                bad(f"paging file {f} page {slot:#x} is allocated but nothing names it")
                break


def check_back_links(machine, profile, r, e, loc, lay, highest, bad) -> None:
    """Shared pages: the prototype PTE a page names is valid and maps it.  Pages on the
    standby and modified lists: the PTE they name (through PteFrame) is a transition PTE
    that maps them."""
    from .pfn import MODIFIED, STANDBY
    from .pte import PteCodec
    codec = PteCodec(profile)
    size = profile.pte_size
    proto_bits = (e[lay.prototype.word].astype(np.uint64) >> np.uint64(lay.prototype.shift)) \
        & np.uint64(lay.prototype.mask)
    for pfn in np.flatnonzero((loc == ACTIVE) & (proto_bits == 1)).tolist():
        va = int(e["pte"][pfn])
        try:
            value = int.from_bytes(r.read(va, size), "little")
        except Exception:
            bad(f"PFN {pfn:#x}: prototype PTE {va:#x} cannot be read")
            continue
        d = codec.decode(value)
        if d.kind != "valid" or d.pfn != pfn:
            bad(f"PFN {pfn:#x}: its prototype PTE {va:#x} is {d.kind} {value:#x}")
        frame = machine.translate(va).pa >> 12
        if lay.frame.get(int(e["u4"][pfn])) != frame:
            bad(f"PFN {pfn:#x}: PteFrame is not the page holding its prototype PTE")
    for pfn in np.flatnonzero((loc == STANDBY) | (loc == MODIFIED)).tolist():
        pa = lay.frame.get(int(e["u4"][pfn])) * PAGE + (int(e["pte"][pfn]) & (PAGE - 1))
        value = int.from_bytes(machine.read_physical(pa, size), "little")
        d = codec.decode(value, in_prototype_array=bool(proto_bits[pfn]))
        if d.kind != "transition" or d.pfn != pfn:
            bad(f"PFN {pfn:#x} is on a list but its PTE ({pa:#x}) is {d.kind} {value:#x}")


def check_process(ts, r, space, ep: int, profile, valid_ptes: int, bad) -> None:
    """One process's VAD tree is a valid AVL tree of non-overlapping ranges, its commit
    charge is what its VADs say (private ones and image views), and its working set holds exactly its
    ``valid_ptes`` valid user PTEs."""
    from .avl import AvlTable
    table = ep + ts.offset_of("_EPROCESS", "VadRoot")
    vads = AvlTable(ts, r, table)
    for problem in vads.check():
        bad(f"process {ep:#x} VAD tree: {problem}")
    charge = 0
    protos = set()
    f_private = ts.field("_MMVAD_SHORT", "u.VadFlags.PrivateMemory")
    f_charge = ts.field("_MMVAD_SHORT", "u.VadFlags.CommitCharge")
    f_first = ts.field("_MMVAD", "FirstPrototypePte")
    f_last = ts.field("_MMVAD", "LastContiguousPte")
    for node in vads.nodes_in_order():
        charge += f_charge.read(r, node)       # an image view charges its ImageCommitment
        if not f_private.read(r, node):
            protos.add((f_first.read(r, node), f_last.read(r, node)))
    got = ts.field("_EPROCESS", "CommitCharge").read(r, ep)
    if got != charge:
        bad(f"process {ep:#x}: CommitCharge {got:#x}, its VADs charge {charge:#x}")
    ws = ts.field("_EPROCESS", "Vm.WorkingSetSize").read(r, ep)
    wsl = profile.address_space.working_set_list
    hdr = ts.sizeof("_MMWSL")
    esize = ts.sizeof("_MMWSLE")
    first = wsl + -(-hdr // esize) * esize
    last = ts.field("_MMWSL", "LastEntry").read(space, wsl)
    raw = np.frombuffer(space.read(first, (last + 1) * esize),
                        dtype=np.uint64 if esize == 8 else np.uint32)
    valid = (raw & 1) == 1
    entries = int(valid.sum())
    if entries != ws:
        bad(f"process {ep:#x}: WorkingSetSize {ws} but {entries} valid working-set entries")
    # The WRK's list also names the process's own table and hyperspace pages.
    user = int((valid & (raw < profile.address_space.system_range_start)).sum())
    if user != valid_ptes:
        bad(f"process {ep:#x}: {user} working-set entries for {valid_ptes} valid user PTEs")
    return protos


def check_share_counts(e, loc, lay, in_ram, refs, table_pages, bad) -> None:
    """An active page's ShareCount is the valid PTEs that map it (a table page: the one
    entry above it) plus the pages still named from it -- active, standby or modified
    pages whose PteFrame it is (MiInitializePfn adds one, MiDecrementShareCount takes
    it back when such a page is freed)."""
    from .pfn import MODIFIED, STANDBY
    n = len(e)
    named = np.flatnonzero((loc == ACTIVE) | (loc == STANDBY) | (loc == MODIFIED))
    parents = ((e["u4"][named].astype(np.uint64) >> np.uint64(lay.frame.shift)) &
               np.uint64(lay.frame.mask)).astype(np.int64)
    keep = (parents != named) & (parents < n)
    children = np.bincount(parents[keep], minlength=n)
    for frame in np.flatnonzero((loc == ACTIVE) & in_ram).tolist():
        base = refs.get(frame, 0) or (1 if frame in table_pages else 0)
        want = base + int(children[frame])
        got = int(e["u2"][frame])
        if got != want:
            bad(f"PFN {frame:#x}: ShareCount {got}, expected {want} "
                f"({base} mapping, {int(children[frame])} named from it)")
