"""!vm: paging files, page counts, pool and commit, read from guest memory, agreeing with
the PFN list heads, the PFN database and the memory manager's own bookkeeping."""
import numpy as np
import pytest

import kdsim
from kdsim.nt.pfn import AVAILABLE_LISTS, MODIFIED, MODIFIED_NO_WRITE

# kdsim models no system commit category but the paged pool's (MmPagedPoolCommit): its
# pages are the whole sum.  x64 has two (its image segments' information blocks spill into
# a second page), x86 one.
def system_commit_lines(paged_pool_pages: int) -> str:
    kb = f"{paged_pool_pages:>9} ({paged_pool_pages * 4:>11} Kb)"
    return f"""\
Processor Commit:               0 (          0 Kb)
Session Commit:                 0 (          0 Kb)
Shared Commit:                  0 (          0 Kb)
Special Pool:                   0 (          0 Kb)
Kernel Stacks:                  0 (          0 Kb)
Pages For MDLs:                 0 (          0 Kb)
ContigMem Pages:                0 (          0 Kb)
Partition Pages:                0 (          0 Kb)
Pages For AWE:                  0 (          0 Kb)
NonPagedPool Commit:            0 (          0 Kb)
PagedPool Commit:       {kb}
Driver Commit:                  0 (          0 Kb)
Boot Commit:                    0 (          0 Kb)
PFN Array Commit:               0 (          0 Kb)
SmallNonPagedPtesCommit:        0 (          0 Kb)
SlabAllocatorPages:             0 (          0 Kb)
SkPagesInUnchargedSlabs:        0 (          0 Kb)
System PageTables:              0 (          0 Kb)
ProcessLockedFilePages:         0 (          0 Kb)
Pagefile Hash Pages:            0 (          0 Kb)
Sum System Commit:      {kb}
"""

VM_X64 = """\
Page File: \\??\\C:\\pagefile.sys
  Current:    261688 Kb  Free Space:    261664 Kb
  Minimum:    261688 Kb  Maximum:       261688 Kb

Physical Memory:            65422 (     261688 Kb)
Available Pages:            62198 (     248792 Kb)
ResAvail Pages:             62198 (     248792 Kb)
Locked IO Pages:                0 (          0 Kb)
Free System PTEs:           65536 (     262144 Kb)
Modified Pages:                 2 (          8 Kb)
Modified PF Pages:              2 (          8 Kb)
Modified No Write Pages:        0 (          0 Kb)
NonPagedPool Usage:            15 (         60 Kb)
NonPagedPoolNx Usage:           0 (          0 Kb)
NonPagedPool Max:           49066 (     196264 Kb)
PagedPool Usage:                2 (          8 Kb)
PagedPool Maximum:       33554432 (  134217728 Kb)
""" + system_commit_lines(2) + """\
Total Private:                249 (        996 Kb)
Committed pages:             3209 (      12836 Kb)
Commit limit:              130844 (     523376 Kb)

  Pid ImageName                        Commit   SharedCommit        Debt

  21c svchost.exe                      184 Kb           0 Kb        0 Kb
  2b8 notepad.exe                      152 Kb           0 Kb        0 Kb
  250 svchost.exe                      128 Kb           0 Kb        0 Kb
  278 explorer.exe                     112 Kb           0 Kb        0 Kb
  100 smss.exe                          72 Kb           0 Kb        0 Kb
  134 csrss.exe                         72 Kb           0 Kb        0 Kb
  174 csrss.exe                         72 Kb           0 Kb        0 Kb
  16c wininit.exe                       68 Kb           0 Kb        0 Kb
  198 services.exe                      68 Kb           0 Kb        0 Kb
  1dc lsass.exe                         68 Kb           0 Kb        0 Kb
    4 System                             0 Kb           0 Kb        0 Kb
"""

VM_X86_1 = """\
Page File: \\??\\C:\\pagefile.sys
  Current:    261688 Kb  Free Space:    261664 Kb
  Minimum:    261688 Kb  Maximum:       261688 Kb

Physical Memory:            65422 (     261688 Kb)
Available Pages:            62811 (     251244 Kb)
ResAvail Pages:             62811 (     251244 Kb)
Locked IO Pages:                0 (          0 Kb)
Free System PTEs:           32768 (     131072 Kb)
Modified Pages:                 2 (          8 Kb)
Modified PF Pages:              2 (          8 Kb)
Modified No Write Pages:        0 (          0 Kb)
NonPagedPool Usage:             8 (         32 Kb)
NonPagedPoolNx Usage:           0 (          0 Kb)
NonPagedPool Max:           49066 (     196264 Kb)
PagedPool Usage:                1 (          4 Kb)
PagedPool Maximum:          28672 (     114688 Kb)
""" + system_commit_lines(1) + """\
Total Private:                239 (        956 Kb)
Committed pages:             2710 (      10840 Kb)
Commit limit:              130844 (     523376 Kb)
"""


@pytest.fixture(scope="module")
def m64():
    return kdsim.boot("win7-x64", ram="256m", scenario="default")


@pytest.fixture(scope="module")
def m86():
    return kdsim.boot("win7-x86", ram="256m", scenario="default")


@pytest.fixture(params=["win7-x64", "win7-x86"])
def booted(request, m64, m86):
    return m64 if request.param == "win7-x64" else m86


def counts(out: str) -> dict[str, int]:
    """``Label: value (...)`` lines of !vm as a dict of page counts."""
    result = {}
    for line in out.splitlines():
        label, colon, rest = line.partition(":")
        if colon and rest.strip().endswith("Kb)") and "(" in rest:
            result[label] = int(rest.split("(")[0])
    return result


def test_vm_x64_prints_paging_file_counters_and_process_commit(m64):
    assert m64.debugger.execute("!vm") == VM_X64


def test_vm_1_on_x86_omits_the_process_list(m86):
    assert m86.debugger.execute("!vm 1") == VM_X86_1


def test_vm_physical_and_available_pages_equal_the_list_heads_and_the_pfn_database(booted):
    nt = booted.nt
    got = counts(booted.debugger.execute("!vm 1"))
    # MmNumberOfPhysicalPages read raw from nt's data, and the RAM the machine has.
    raw = int.from_bytes(nt.kmem.read(nt.symbols["MmNumberOfPhysicalPages"], 4), "little")
    assert got["Physical Memory"] == raw == nt.ram_pages()
    # Available = zeroed + free + standby list heads = the PFN entries on those lists.
    heads = sum(nt.pfn.total(i) for i in AVAILABLE_LISTS)
    lay = nt.pfn.lay
    loc = (nt.pfn.e["u3"].astype(np.uint64) >> np.uint64(lay.location.shift)) \
        & np.uint64(lay.location.mask)
    in_ram = np.zeros(len(loc), dtype=bool)
    for start, length in nt.runs:
        in_ram[start // 4096:(start + length) // 4096] = True
    on_lists = int(np.isin(loc[in_ram], list(AVAILABLE_LISTS)).sum())
    assert got["Available Pages"] == got["ResAvail Pages"] == heads == on_lists
    assert got["Modified Pages"] == nt.pfn.total(MODIFIED)
    assert got["Modified No Write Pages"] == nt.pfn.total(MODIFIED_NO_WRITE)


def test_vm_paging_file_block_matches_the_paging_file(booted):
    pf = booted.nt.paging_files[0]
    out = booted.debugger.execute("!vm 1").splitlines()
    assert out[0] == "Page File: \\??\\C:\\pagefile.sys"
    assert out[1] == f"  Current: {pf.size * 4:>9} Kb  Free Space: {(pf.size - pf.used - 1) * 4:>9} Kb"


def test_vm_pool_usage_counts_the_pages_the_pools_mapped(booted):
    got = counts(booted.debugger.execute("!vm 1"))
    np_pool, p_pool = booted.nt.nonpaged_pool, booted.nt.paged_pool
    assert got["NonPagedPool Usage"] == (np_pool.next_page - np_pool.start) // 4096
    assert got["PagedPool Usage"] == (p_pool.next_page - p_pool.start) // 4096


def test_vm_process_rows_and_total_private_are_the_processes_commit(booted):
    nt = booted.nt
    out = booted.debugger.execute("!vm").splitlines()
    rows = out[out.index("  Pid ImageName                        Commit   SharedCommit        Debt")
               + 2:]
    expected = {(p.pid, p.name, p.commit * 4) for p in nt.process_objects.values()}
    expected.add((4, "System", 0))
    got = {(int(r[:5], 16), r[6:22].strip(), int(r[22:42])) for r in rows}
    assert got == expected
    assert [int(r[22:42]) for r in rows] == sorted((c for _, _, c in got), reverse=True)
    assert counts("\n".join(out))["Total Private"] == sum(p.commit for p in
                                                         nt.process_objects.values())


def test_vm_modified_pf_pages_leave_out_a_mapped_files_pages():
    b = kdsim.boot("win7-x64", ram="256m", scenario="default")
    nt, d = b.nt, b.debugger
    before = counts(d.execute("!vm 1"))
    # notepad's written buffer page goes to the modified list, bound for the paging file;
    # explorer's edited page of desktop.ini goes there too, bound for its file.
    notepad = nt.scenario["processes"]["notepad"]
    explorer = nt.scenario["processes"]["explorer"]
    nt.trim_page(notepad, nt.scenario["names"]["np_buf"])
    nt.trim_page(explorer, nt.scenario["names"]["ex_ini"])
    after = counts(d.execute("!vm 1"))
    assert after["Modified Pages"] == before["Modified Pages"] + 2 == nt.pfn.total(MODIFIED)
    assert after["Modified PF Pages"] == before["Modified PF Pages"] + 1
    assert after["Available Pages"] == before["Available Pages"]


def test_vm_warns_when_process_commit_exceeds_the_committed_total():
    b = kdsim.boot("win7-x64", ram="256m", scenario="none")
    d, nt = b.debugger, b.nt
    committed = counts(d.execute("!vm 1"))["Committed pages"]
    offset = nt.ts.offset_of("_EPROCESS", "CommitCharge")
    d.execute(f"eq {nt.system_process + offset:x} {committed + 5:x}")
    out = d.execute("!vm 1").splitlines()
    i = out.index("Committed pages:             2960 (      11840 Kb)")
    assert out[i - 3] == "Total Private:               2965 (      11860 Kb)"
    assert out[i - 2] == ""
    # 5 pages of process commit too many, plus the page of paged pool commit
    assert out[i - 1] == ("********** Sum of individual system commit + Process commit exceeds "
                          "overall commit by 24 Kb ? ********")


def test_vm_unreadable_paging_file():
    b = kdsim.boot("win7-x64", ram="256m", scenario="none")
    b.debugger.execute("eq MmPagingFile 1230")
    assert b.debugger.execute("!vm") == "Unable to read _MMPAGING_FILE @ 0000000000001230\n"


def test_vm_unnamed_paging_file():
    b = kdsim.boot("win7-x86", ram="256m", scenario="none")
    pf = b.nt.paging_files[0]
    length = pf.va + b.nt.ts.offset_of("_MMPAGING_FILE", "PageFileName.Length")
    b.debugger.execute(f"ew {length:x} 0")
    assert b.debugger.execute("!vm 1").splitlines()[0] == "No Name for Paging File"


@pytest.mark.parametrize("line, expected", [
    ("!vm zz", "Couldn't resolve error at 'zz'\n"),
    ("!vm 1 2", "             ^ Syntax error in '!vm 1 2'\n"),
    ("!vm (", "            ^ Syntax error in '!vm ('\n"),
])
def test_vm_bad_arguments(x64, line, expected):
    assert x64.debugger.execute(line) == expected


# -- system PTEs, pool limits and flag 0x20 ---------------------------------------------------

def test_vm_free_system_ptes_is_the_free_chains_total(m86):
    """Free System PTEs is MmTotalFreeSystemPtes[0]: what !sysptes 1 sums from the chain."""
    nt = m86.nt
    va = nt.sysva.reserve(7)
    try:
        vm = counts(m86.debugger.execute("!vm 1"))
        summary = m86.debugger.execute("!sysptes 1").splitlines()[-1]
        assert vm["Free System PTEs"] == 32768 - 7
        assert f"total free: {32768 - 7} " in summary
    finally:
        nt.sysva.release(va, 7)


def test_vm_nonpaged_pool_max_is_three_quarters_of_ram_on_windows_7(m64, m86):
    for m in (m64, m86):
        vm = counts(m.debugger.execute("!vm 1"))
        assert vm["NonPagedPool Max"] == vm["Physical Memory"] * 3 // 4


def test_vm_nonpaged_pool_max_is_the_pool_range_on_the_wrk():
    b = kdsim.boot("wrk-x86", ram="256m", scenario="none")
    vm = counts(b.debugger.execute("!vm 1"))
    start = b.debugger.execute("dd MmNonPagedPoolStart L1").split()[1]
    assert vm["NonPagedPool Max"] == (0xFFBE0000 - int(start, 16)) // 0x1000


def test_vm_paged_pool_commit_follows_the_pools_pages():
    b = kdsim.boot("win7-x86", ram="256m", scenario="none")
    before = counts(b.debugger.execute("!vm 1"))["PagedPool Commit"]
    b.nt.paged_pool.alloc(0x2000, "Test")     # 8 KB and a pool header: three new pages
    after = counts(b.debugger.execute("!vm 1"))
    assert after["PagedPool Commit"] == before + 3 == after["PagedPool Usage"]


VA_USAGE_PAE = """Kernel VA usage (MiSystemVaType: 0x400 regions of 2048 Kb from 80000000)

MiVaUnused:                         0 (          0 Kb)  Peak:     0
MiVaSessionSpace:                   0 (          0 Kb)  Peak:     0
MiVaProcessSpace:                   6 (      12288 Kb)  Peak:     6
MiVaBootLoaded:                     3 (       6144 Kb)  Peak:     3
MiVaPfnDatabase:                    1 (       2048 Kb)  Peak:     1
MiVaNonPagedPool:                   1 (       2048 Kb)  Peak:     1
MiVaPagedPool:                      1 (       2048 Kb)  Peak:     1
MiVaSpecialPool:                    0 (          0 Kb)  Peak:     0
MiVaSystemCache:                    0 (          0 Kb)  Peak:     0
MiVaSystemPtes:                    64 (     131072 Kb)  Peak:    64
MiVaHal:                            2 (       4096 Kb)  Peak:     2
MiVaSessionGlobalSpace:             0 (          0 Kb)  Peak:     0
MiVaDriverImages:                   0 (          0 Kb)  Peak:     0

Base     End      VA type
80000000 829fffff MiVaUnused
82a00000 82ffffff MiVaBootLoaded
83000000 83ffffff MiVaUnused
84000000 841fffff MiVaPfnDatabase
84200000 85ffffff MiVaUnused
86000000 861fffff MiVaNonPagedPool
86200000 88ffffff MiVaUnused
89000000 891fffff MiVaPagedPool
89200000 8fffffff MiVaUnused
90000000 97ffffff MiVaSystemPtes
98000000 bfffffff MiVaUnused
c0000000 c0bfffff MiVaProcessSpace
c0c00000 ffbfffff MiVaUnused
ffc00000 ffffffff MiVaHal
"""


@pytest.fixture(scope="module")
def pae():
    return kdsim.boot("win7-x86pae", ram="256m", scenario="none")


def test_vm_20_adds_kernel_va_usage_on_windows_7_32_bit(pae):
    out = pae.debugger.execute("!vm 21")
    assert out == pae.debugger.execute("!vm 1") + "\n" + VA_USAGE_PAE
    assert pae.debugger.execute("!vm 20").endswith("\n\n" + VA_USAGE_PAE)


def test_vm_20_counts_and_map_are_the_guests_bytes(pae):
    """The counts agree with a histogram of db nt!MiSystemVaType, and every region the
    memory manager's map gives a type reads so."""
    d = pae.debugger
    raw = bytes(int(b, 16) for line in d.execute("db nt!MiSystemVaType L400").splitlines()
                for b in line[10:59].replace("-", " ").split())
    assert raw == bytes(pae.nt.sysva.types)
    words = [int(w, 16) for line in d.execute("dd nt!MiSystemVaTypeCount L d").splitlines()
             for w in line.split()[1:]]
    hist = [raw.count(k) for k in range(13)]
    hist[0] = 0
    assert words == hist


def test_vm_20_is_ignored_without_a_va_type_map(x64):
    """Windows 7 x64 (fixed regions) and the WRK (fixed layout) have no MiSystemVaType."""
    assert x64.debugger.execute("x nt!MiSystemVa*") == ""
    assert x64.debugger.execute("!vm 21") == x64.debugger.execute("!vm 1")
    wrk = kdsim.boot("wrk-x86", ram="256m", scenario="none")
    assert wrk.debugger.execute("!vm 21") == wrk.debugger.execute("!vm 1")
