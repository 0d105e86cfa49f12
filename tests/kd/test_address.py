"""!address: one address's region (state, protection, type, allocation) read from the VAD
tree and the page tables, the kernel-mode answer for kernel addresses, and -summary; exact
on x64 and x86, and checked page by page against the memory manager's own notion of what
is committed with which protection, before and after VirtualAlloc/VirtualProtect/
VirtualFree."""
import re

import pytest

import kdsim
from kdsim.nt import protect as pr
from kdsim.nt.vm import VadInfo


def lines(*text):
    return "\n".join(text) + "\n"


def on(m, proc):
    m.debugger.execute(f".process {proc.ep:x}")
    return m.debugger


@pytest.fixture(scope="module")
def x64():
    return kdsim.boot("win7-x64", ram="256m", seed=0, scenario="default")


@pytest.fixture(scope="module")
def wrk():
    return kdsim.boot("wrk-x86", ram="256m", seed=0, scenario="workshop")


@pytest.fixture(scope="module")
def x86():
    return kdsim.boot("win7-x86", ram="256m", seed=0, scenario="default")


# -- exact output ------------------------------------------------------------------------

def test_free_reserved_committed_and_guard_regions_on_x64(x64):
    d = on(x64, x64.nt.scenario["processes"]["explorer"])
    assert d.execute("!address 0") == lines(
        'Usage:                  Free',
        'Base Address:           00000000`00000000',
        'End Address:            00000000`00010000',
        'Region Size:            00000000`00010000 (  64.000 kB)',
        'State:                  00010000          MEM_FREE',
        'Protect:                00000001          PAGE_NOACCESS',
        'Type:                   <info not present at the target>')
    heap = x64.nt.scenario["names"]["ex_heap"]          # 1 MB reserved, 5 pages committed
    assert d.execute(f"!address {heap + 0x123:x}") == lines(
        'Usage:                  <unknown>',
        'Base Address:           000007ff`ffed0000',
        'End Address:            000007ff`ffed4000',
        'Region Size:            00000000`00004000 (  16.000 kB)',
        'State:                  00001000          MEM_COMMIT',
        'Protect:                00000004          PAGE_READWRITE',
        'Type:                   00020000          MEM_PRIVATE',
        'Allocation Base:        000007ff`ffed0000',
        'Allocation Protect:     00000004          PAGE_READWRITE')
    assert d.execute(f"!address {heap + 0x4000:x}") == lines(
        'Usage:                  <unknown>',
        'Base Address:           000007ff`ffed4000',
        'End Address:            000007ff`ffed5000',
        'Region Size:            00000000`00001000 (   4.000 kB)',
        'State:                  00001000          MEM_COMMIT',
        'Protect:                00000104          PAGE_READWRITE | PAGE_GUARD',
        'Type:                   00020000          MEM_PRIVATE',
        'Allocation Base:        000007ff`ffed0000',
        'Allocation Protect:     00000004          PAGE_READWRITE')
    assert d.execute(f"!address {heap + 0x5000:x}") == lines(
        'Usage:                  <unknown>',
        'Base Address:           000007ff`ffed5000',
        'End Address:            000007ff`fffd0000',
        'Region Size:            00000000`000fb000 (1004.000 kB)',
        'State:                  00002000          MEM_RESERVE',
        'Protect:                <info not present at the target>',
        'Type:                   00020000          MEM_PRIVATE',
        'Allocation Base:        000007ff`ffed0000',
        'Allocation Protect:     00000004          PAGE_READWRITE')


def test_image_mapped_file_heap_and_peb_on_x64(x64):
    proc = x64.nt.scenario["processes"]["explorer"]
    d = on(x64, proc)
    kernel32 = x64.nt.sections["kernel32.dll"].base
    assert d.execute(f"!address {kernel32 + 0x1000:x}") == lines(
        'Usage:                  Image',
        'Base Address:           000007fe`fefc1000',
        'End Address:            000007fe`fefd0000',
        'Region Size:            00000000`0000f000 (  60.000 kB)',
        'State:                  00001000          MEM_COMMIT',
        'Protect:                00000020          PAGE_EXECUTE_READ',
        'Type:                   01000000          MEM_IMAGE',
        'Allocation Base:        000007fe`fefc0000',
        'Allocation Protect:     00000080          PAGE_EXECUTE_WRITECOPY')
    # kernel32's .data: explorer wrote to it, so its page is explorer's own READWRITE copy
    # while the next page is still the shared WRITECOPY one.
    assert d.execute(f"!address {kernel32 + 0x11000:x}").splitlines()[1:6] == [
        'Base Address:           000007fe`fefd1000',
        'End Address:            000007fe`fefd2000',
        'Region Size:            00000000`00001000 (   4.000 kB)',
        'State:                  00001000          MEM_COMMIT',
        'Protect:                00000004          PAGE_READWRITE']
    assert d.execute(f"!address {x64.nt.scenario['names']['ex_ini']:x}") == lines(
        'Usage:                  MappedFile',
        'Base Address:           000007ff`fffd0000',
        'End Address:            000007ff`fffd2000',
        'Region Size:            00000000`00002000 (   8.000 kB)',
        'State:                  00001000          MEM_COMMIT',
        'Protect:                00000004          PAGE_READWRITE',
        'Type:                   00040000          MEM_MAPPED',
        'Allocation Base:        000007ff`fffd0000',
        'Allocation Protect:     00000004          PAGE_READWRITE')
    assert d.execute(f"!address {proc.heap:x}").startswith("Usage:                  Heap\n")
    assert d.execute(f"!address {proc.peb:x}") == lines(
        'Usage:                  PEB',
        'Base Address:           000007ff`fffdf000',
        'End Address:            000007ff`fffe0000',
        'Region Size:            00000000`00001000 (   4.000 kB)',
        'State:                  00001000          MEM_COMMIT',
        'Protect:                00000004          PAGE_READWRITE',
        'Type:                   00020000          MEM_PRIVATE',
        'Allocation Base:        000007ff`fffdf000',
        'Allocation Protect:     00000004          PAGE_READWRITE')


def test_kernel_addresses_on_x64(x64):
    d = on(x64, x64.nt.scenario["processes"]["explorer"])
    assert d.execute("!address nt+1234") == lines(
        'Usage:                  Module',
        'Base Address:           fffff800`02a1f000',
        'End Address:            fffff800`03007000',
        'Region Size:            00000000`005e8000',
        'VA Type:                BootLoaded',
        'Module name:            ntoskrnl.exe',
        'Module path:            [\\SystemRoot\\system32\\ntoskrnl.exe]')
    assert d.execute(f"!address {x64.nt.processes[0]:x}") == lines(
        'Usage:                  <unknown>',
        'Base Address:           fffffa80`03000000',
        'End Address:            fffffb00`00000000',
        'Region Size:            0000007f`fd000000',
        'VA Type:                NonPagedPool')
    assert d.execute("!address fffff6fb7dbed000") == lines(
        'Usage:                  <unknown>',
        'Base Address:           fffff680`00000000',
        'End Address:            fffff700`00000000',
        'Region Size:            00000080`00000000',
        'VA Type:                PageTables')


def test_kernel_system_ptes_and_hal_on_x64(x64):
    """The system PTE range is the pool MmSystemPtesStart/End bound (PTE addresses)."""
    d = x64.debugger
    assert d.execute("!address fffff88000001000") == lines(
        'Usage:                  <unknown>',
        'Base Address:           fffff880`00000000',
        'End Address:            fffff880`10000000',
        'Region Size:            00000000`10000000',
        'VA Type:                SystemPtes')
    assert d.execute("!address ffffffffffd00000").splitlines()[-1] == \
        'VA Type:                Hal'


def test_kseg0_around_nt_and_hal_on_wrk_x86(wrk):
    """nt and hal split KSEG0's unused stretch: below nt, and from hal's end on."""
    d = wrk.debugger
    assert d.execute("!address 80700000") == lines(
        'Usage:                  <unknown>',
        'Base Address:           80000000',
        'End Address:            80800000',
        'Region Size:            00800000',
        'VA Type:                Unused')
    assert d.execute("!address 80c50000") == lines(
        'Usage:                  <unknown>',
        'Base Address:           80c47000',
        'End Address:            81000000',
        'Region Size:            003b9000',
        'VA Type:                Unused')
    assert d.execute("!address hal").splitlines()[0] == 'Usage:                  Module'
    assert d.execute("!address ffdf0000") == lines(
        'Usage:                  <unknown>',
        'Base Address:           ffc00000',
        'End Address:            00000000',
        'Region Size:            00400000',
        'VA Type:                Hal')
    assert d.execute("!address eb001000").splitlines()[-1] == 'VA Type:                SystemPtes'


def test_summary_on_x64(x64):
    d = on(x64, x64.nt.scenario["processes"]["explorer"])
    assert d.execute("!address -summary") == lines(
        '',
        '--- Usage Summary ---------------- RgnCount ----------- Total Size -------- '
        '%ofBusy %ofTotal',
        'Free                                     12      7ff`ffc6e000 (   8.000 TB)'
        '          100.00%',
        '<unknown>                                10        0`00213000 (   2.074 MB)'
        '  59.13%    0.00%',
        'Heap                                      2        0`00100000 (   1.000 MB)'
        '  28.51%    0.00%',
        'Image                                    28        0`0006c000 ( 432.000 kB)'
        '  12.03%    0.00%',
        'MappedFile                                1        0`00002000 (   8.000 kB)'
        '   0.22%    0.00%',
        'PEB                                       1        0`00001000 (   4.000 kB)'
        '   0.11%    0.00%',
        '',
        '--- Type Summary (for busy) ------ RgnCount ----------- Total Size -------- '
        '%ofBusy %ofTotal',
        'MEM_PRIVATE                              13        0`00314000 (   3.078 MB)'
        '  87.75%    0.00%',
        'MEM_IMAGE                                28        0`0006c000 ( 432.000 kB)'
        '  12.03%    0.00%',
        'MEM_MAPPED                                1        0`00002000 (   8.000 kB)'
        '   0.22%    0.00%',
        '',
        '--- State Summary ---------------- RgnCount ----------- Total Size -------- '
        '%ofBusy %ofTotal',
        'MEM_FREE                                 12      7ff`ffc6e000 (   8.000 TB)'
        '          100.00%',
        'MEM_RESERVE                               4        0`00304000 (   3.016 MB)'
        '  85.97%    0.00%',
        'MEM_COMMIT                               38        0`0007e000 ( 504.000 kB)'
        '  14.03%    0.00%',
        '',
        '--- Protect Summary (for commit) - RgnCount ----------- Total Size -------- '
        '%ofBusy %ofTotal',
        'PAGE_EXECUTE_READ                         7        0`0004b000 ( 300.000 kB)'
        '   8.35%    0.00%',
        'PAGE_READONLY                            16        0`00016000 (  88.000 kB)'
        '   2.45%    0.00%',
        'PAGE_READWRITE                            7        0`0000f000 (  60.000 kB)'
        '   1.67%    0.00%',
        'PAGE_WRITECOPY                            6        0`0000c000 (  48.000 kB)'
        '   1.34%    0.00%',
        'PAGE_READWRITE|PAGE_GUARD                 2        0`00002000 (   8.000 kB)'
        '   0.22%    0.00%',
        '',
        '--- Largest Region by Usage ----------- Base Address -------- Region Size ----------',
        'Free                                        1`3f013000      7fd`bff4d000 (   7.991 TB)',
        '<unknown>                                   0`00010000        0`000fe000 (1016.000 kB)',
        'Heap                                        0`00114000        0`000fc000 (1008.000 kB)',
        'Image                                     7fe`fefc1000        0`0000f000 (  60.000 kB)',
        'MappedFile                                7ff`fffd0000        0`00002000 (   8.000 kB)',
        'PEB                                       7ff`fffdf000        0`00001000 (   4.000 kB)')


def test_the_workshop_region_on_wrk_x86(wrk):
    d = on(wrk, wrk.nt.scenario["processes"]["MemoryAlloc"])
    region = lines(
        'Usage:                  <unknown>',
        'Base Address:           00340000',
        'End Address:            00350000',
        'Region Size:            00010000 (  64.000 kB)',
        'State:                  00001000          MEM_COMMIT',
        'Protect:                00000004          PAGE_READWRITE',
        'Type:                   00020000          MEM_PRIVATE',
        'Allocation Base:        00340000',
        'Allocation Protect:     00000004          PAGE_READWRITE')
    assert d.execute("!address 340000") == region
    assert d.execute("!address 34ffff") == region
    assert d.execute("!address 350000") == lines(
        'Usage:                  Free',
        'Base Address:           00350000',
        'End Address:            00400000',
        'Region Size:            000b0000 ( 704.000 kB)',
        'State:                  00010000          MEM_FREE',
        'Protect:                00000001          PAGE_NOACCESS',
        'Type:                   <info not present at the target>')
    assert d.execute("!address nt") == lines(
        'Usage:                  Module',
        'Base Address:           80800000',
        'End Address:            80c10000',
        'Region Size:            00410000',
        'VA Type:                BootLoaded',
        'Module name:            ntoskrnl.exe',
        'Module path:            [\\SystemRoot\\system32\\ntoskrnl.exe]')
    assert d.execute("!address c0300000") == lines(
        'Usage:                  <unknown>',
        'Base Address:           c0000000',
        'End Address:            c0400000',
        'Region Size:            00400000',
        'VA Type:                PageTables')


def test_summary_on_wrk_x86(wrk):
    d = on(wrk, wrk.nt.scenario["processes"]["MemoryAlloc"])
    out = d.execute("!address -summary").splitlines()
    assert out[:7] == [
        '',
        '--- Usage Summary ---------------- RgnCount ----------- Total Size -------- '
        '%ofBusy %ofTotal',
        'Free                                      8        0`7fd9f000 (   1.998 GB)'
        '           99.89%',
        '<unknown>                                 5        0`00111000 (   1.066 MB)'
        '  46.04%    0.05%',
        'Heap                                      2        0`00100000 (   1.000 MB)'
        '  43.17%    0.05%',
        'Image                                    16        0`0003f000 ( 252.000 kB)'
        '  10.62%    0.01%',
        'PEB                                       1        0`00001000 (   4.000 kB)'
        '   0.17%    0.00%']
    assert out[-6:] == [
        '--- Largest Region by Usage ----------- Base Address -------- Region Size ----------',
        'Free                                        0`00411000        0`77b9f000 (   1.871 GB)',
        '<unknown>                                   0`00010000        0`000fe000 (1016.000 kB)',
        'Heap                                        0`00114000        0`000fc000 (1008.000 kB)',
        'Image                                       0`77fc1000        0`0000f000 (  60.000 kB)',
        'PEB                                         0`7ffdf000        0`00001000 (   4.000 kB)']


def test_pagefile_backed_view_and_reserved_stack_on_win7_x86(x86):
    d = on(x86, x86.nt.scenario["processes"]["services"])
    assert d.execute(f"!address {x86.nt.scenario['names']['shm_services']:x}") == lines(
        'Usage:                  <unknown>',
        'Base Address:           7ffd0000',
        'End Address:            7ffd4000',
        'Region Size:            00004000 (  16.000 kB)',
        'State:                  00001000          MEM_COMMIT',
        'Protect:                00000004          PAGE_READWRITE',
        'Type:                   00040000          MEM_MAPPED',
        'Allocation Base:        7ffd0000',
        'Allocation Protect:     00000004          PAGE_READWRITE')
    assert d.execute("!address 10000") == lines(
        'Usage:                  <unknown>',
        'Base Address:           00010000',
        'End Address:            0010e000',
        'Region Size:            000fe000 (1016.000 kB)',
        'State:                  00002000          MEM_RESERVE',
        'Protect:                <info not present at the target>',
        'Type:                   00020000          MEM_PRIVATE',
        'Allocation Base:        00010000',
        'Allocation Protect:     00000004          PAGE_READWRITE')
    assert d.execute("!address hal") == lines(
        'Usage:                  Module',
        'Base Address:           82e2f000',
        'End Address:            82e66000',
        'Region Size:            00037000',
        'VA Type:                BootLoaded',
        'Module name:            hal.dll',
        'Module path:            [\\SystemRoot\\system32\\hal.dll]')


# -- errors -------------------------------------------------------------------------------

def test_errors(x64, wrk):
    d = on(x64, x64.nt.scenario["processes"]["explorer"])
    assert d.execute("!address") == "kdsim: !address needs an address or -summary\n"
    assert d.execute("!address nosuchsymbol") == "Couldn't resolve error at 'nosuchsymbol'\n"
    assert d.execute("!address 1 2") == " " * 18 + "^ Syntax error in '!address 1 2'\n"
    w = on(wrk, wrk.nt.scenario["processes"]["MemoryAlloc"])
    assert w.execute("!address (") == " " * 17 + "^ Syntax error in '!address ('\n"


def test_an_unreadable_vad_is_reported(x64):
    proc = x64.nt.scenario["processes"]["notepad"]
    d = on(x64, proc)
    t = d.target
    where = proc.vads.root + x64.nt.ts.offset_of("_MMVAD_SHORT", "RightChild")
    right = proc.vads.read_header(proc.vads.root)[2]
    t.write_virtual(where, (0xFFFFF88000000000).to_bytes(8, "little"))
    try:
        assert d.execute("!address 10000") == "Unable to read VAD at fffff88000000000\n"
        assert d.execute("!address -summary") == "Unable to read VAD at fffff88000000000\n"
    finally:
        t.write_virtual(where, right.to_bytes(8, "little"))
    assert d.execute("!address 10000").startswith("Usage:")


# -- consistency with the memory manager --------------------------------------------------

FIELD = re.compile(r"^([A-Za-z ]+):\s+(.*)$")


def fields(out):
    got = {}
    for line in out.splitlines():
        m = FIELD.match(line)
        if m:
            got[m.group(1)] = m.group(2)
    return got


def num(text):
    return int(text.split()[0].replace("`", ""), 16)


def expected_page(nt, proc, v, va):
    """(state, Win32 protect) of one page as the memory manager sees it."""
    pte = proc.tables.get(va) or 0
    if v.private:
        if pte == 0:
            committed, prot = bool(v.mem_commit), v.protection
        else:
            prot = nt.vm._protection_of(nt.codec.decode(pte))
            prot = v.protection if prot is None else prot      # the shared-data page
            committed = prot != pr.MM_DECOMMIT
    else:
        committed, prot = True, nt.vm.view_protection(proc, v, va)
    return (pr.MEM_COMMIT, pr.protect_to_value(prot)) if committed else (pr.MEM_RESERVE, 0)


def walk_regions(d, start, end):
    """Parse !address from ``start`` region by region up to ``end``."""
    out, va = [], start
    while va < end:
        f = fields(d.execute(f"!address {va:x}"))
        out.append(f)
        va = num(f["End Address"])
    return out


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"])
def machine(request):
    return kdsim.boot(request.param, ram="256m", seed=0)


def test_address_inside_each_vad_names_its_range_and_agrees_page_by_page(machine):
    nt = machine.nt
    names = [n for n in ("explorer", "services", "MemoryAlloc") if n in nt.scenario["processes"]]
    for name in names:
        proc = nt.scenario["processes"][name]
        d = on(machine, proc)
        for node in proc.vads.nodes_in_order():
            v = VadInfo(nt, node)
            for f in walk_regions(d, v.start, v.end):
                base, end = num(f["Base Address"]), num(f["End Address"])
                assert v.start <= base < end <= v.end, (name, hex(v.start))
                assert num(f["Allocation Base"]) == v.start
                assert num(f["Allocation Protect"]) == pr.protect_to_value(v.protection)
                state = num(f["State"])
                protect = num(f["Protect"]) if state == pr.MEM_COMMIT else 0
                assert f["Type"].endswith("MEM_PRIVATE" if v.private else
                                          ("MEM_IMAGE", "MEM_MAPPED"))
                for va in range(base, end, 0x1000):
                    assert expected_page(nt, proc, v, va) == (state, protect), hex(va)


def test_free_regions_are_exactly_the_gaps_between_vads(machine):
    nt = machine.nt
    proc = max(nt.scenario["processes"].values(), key=lambda p: p.vads.count)
    d = on(machine, proc)
    limit = nt.profile.address_space.highest_user_address + 1
    edges = [0] + [x for n in proc.vads.nodes_in_order()
                   for x in (VadInfo(nt, n).start, VadInfo(nt, n).end)] + [limit]
    gaps = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b > a]
    for lo, hi in gaps:
        for va in (lo, hi - 1):
            f = fields(d.execute(f"!address {va:x}"))
            assert f["Usage"] == "Free" and f["State"].endswith("MEM_FREE")
            assert (num(f["Base Address"]), num(f["End Address"])) == (lo, hi)
    summary = d.execute("!address -summary")
    free = re.search(r"^MEM_FREE\s+(\d+)\s+([0-9a-f]+)`([0-9a-f]+)", summary, re.M)
    assert int(free.group(1)) == len(gaps)
    assert int(free.group(2) + free.group(3), 16) == sum(b - a for a, b in gaps)


def test_summary_adds_up(machine):
    nt = machine.nt
    for proc in nt.scenario["processes"].values():
        d = on(machine, proc)
        out = d.execute("!address -summary")
        rows = dict(re.findall(r"^(MEM_\w+)\s+\d+\s+([0-9a-f]+`[0-9a-f]+)", out, re.M))
        size = {k: int(v.replace("`", ""), 16) for k, v in rows.items()}
        vads = [VadInfo(nt, n) for n in proc.vads.nodes_in_order()]
        busy = sum(v.end - v.start for v in vads)
        assert size["MEM_FREE"] + busy == nt.profile.address_space.highest_user_address + 1
        assert size.get("MEM_COMMIT", 0) + size.get("MEM_RESERVE", 0) == busy
        image = sum(v.end - v.start for v in vads if not v.private and
                    nt.ts.field("_MMVAD_SHORT", "u.VadFlags.VadType").read(nt.kmem, v.node) == 2)
        assert size.get("MEM_IMAGE", 0) == image
        committed = sum(1 for v in vads for va in range(v.start, v.end, 0x1000)
                        if expected_page(nt, proc, v, va)[0] == pr.MEM_COMMIT)
        assert size.get("MEM_COMMIT", 0) == committed * 0x1000


def test_modules_are_named_by_their_load_entries(machine):
    from kdsim.kd.commands.symbols import loaded_modules
    d = machine.debugger
    for base, size in [(m.base, m.size) for m in loaded_modules(d) if not m.user]:
        f = fields(d.execute(f"!address {base + size // 2:x}"))
        assert f["Usage"] == "Module" and f["VA Type"] == "BootLoaded"
        assert (num(f["Base Address"]), num(f["Region Size"])) == (base, size)


# -- the answer follows the memory manager's operations --------------------------------------

@pytest.fixture(params=["win7-x64", "win7-x86"])
def fresh(request):
    return kdsim.boot(request.param, ram="256m", seed=0)


def test_virtualalloc_protect_decommit_and_free_change_the_answer(fresh):
    nt = fresh.nt
    proc = nt.scenario["processes"]["notepad"]
    d = on(fresh, proc)
    r = nt.vm.allocate(proc, 0x8000, commit=False, protect=pr.PAGE_READWRITE)
    assert r.ok
    f = fields(d.execute(f"!address {r.base:x}"))
    assert f["State"].endswith("MEM_RESERVE") and num(f["Region Size"]) == 0x8000
    assert f["Protect"] == "<info not present at the target>"
    nt.vm.allocate(proc, 0x2000, r.base + 0x2000, reserve=False, protect=pr.PAGE_READWRITE)
    f = fields(d.execute(f"!address {r.base + 0x2000:x}"))
    assert f["State"].endswith("MEM_COMMIT") and f["Protect"].endswith("PAGE_READWRITE")
    assert (num(f["Base Address"]), num(f["Region Size"])) == (r.base + 0x2000, 0x2000)
    assert nt.vm.protect(proc, r.base + 0x3000, 0x1000, pr.PAGE_READONLY).ok
    f = fields(d.execute(f"!address {r.base + 0x3000:x}"))
    assert f["Protect"].endswith("PAGE_READONLY") and num(f["Region Size"]) == 0x1000
    assert num(f["Allocation Protect"]) == pr.PAGE_READWRITE
    before = d.execute("!address -summary")
    assert nt.vm.free(proc, r.base + 0x2000, 0x1000, release=False).ok       # decommit
    f = fields(d.execute(f"!address {r.base + 0x2000:x}"))
    assert f["State"].endswith("MEM_RESERVE") and num(f["Region Size"]) == 0x3000
    assert d.execute("!address -summary") != before
    assert nt.vm.free(proc, r.base).ok                                         # release
    f = fields(d.execute(f"!address {r.base:x}"))
    assert f["Usage"] == "Free" and num(f["Base Address"]) <= r.base
    assert num(f["End Address"]) >= r.base + 0x8000


def test_a_trimmed_copy_on_write_copy_keeps_its_own_protection(fresh):
    """A written page of an image view is the process's own page; trimmed to the standby
    or modified list its PTE (transition) still carries that page's protection, which is
    what VirtualQuery reports (MiQueryAddressState reads a non-prototype PTE)."""
    nt = fresh.nt
    proc = nt.scenario["processes"]["explorer"]
    d = on(fresh, proc)
    va = nt.sections["kernel32.dll"].base + 0x11000
    nt.trim_page(proc, va)
    decoded = nt.codec.decode(proc.tables.get(va))
    assert decoded.kind == "transition"
    f = fields(d.execute(f"!address {va:x}"))
    assert num(f["Protect"]) == pr.protect_to_value(decoded.protection) == pr.PAGE_READWRITE
