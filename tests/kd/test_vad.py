"""!vad: the dbgeng 6.x table of a VAD tree and the detail of one VAD, on x64 and x86; its
errors; and the rule that it reads the memory manager's AVL tree from guest memory --
exactly its nodes, in address order, at their depths -- so an edit of a node in memory
or a VirtualAlloc/VirtualFree shows up at once."""
import re

import pytest

import kdsim
from kdsim.nt import protect as pr
from kdsim.nt.vm import VadInfo

ROW = re.compile(r"^([0-9a-f]+) \(\s*(\d+)\)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+(-?\d+) "
                 r"(Private|Mapped ) (Exe |Phys|    ) (\S+)")


def lines(*text):
    return "\n".join(text) + "\n"


def on(m, proc):
    """Make ``proc`` the implicit process of m's debugger."""
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

def test_vad_of_explorer_on_x64(x64):
    d = on(x64, x64.nt.scenario["processes"]["explorer"])
    assert d.execute("!vad") == lines(
        'VAD             level      start      end    commit',
        'fffffa800300aef0 ( 3)         10      10f         2 Private      READWRITE',
        'fffffa800300af40 ( 2)        110      20f         4 Private      READWRITE',
        'fffffa800300d190 ( 3)        210      210         1 Private      READONLY',
        'fffffa800300ae00 ( 1)      7ffe0    7ffef         0 Private      READONLY',
        'fffffa800300b2e0 ( 3)     13f000   13f012         2 Mapped  Exe  '
        'EXECUTE_WRITECOPY  \\Windows\\explorer.exe',
        'fffffa800300bee0 ( 2)   7fefef60 7fefef70         2 Mapped  Exe  '
        'EXECUTE_WRITECOPY  \\Windows\\System32\\shell32.dll',
        'fffffa800300bb70 ( 3)   7fefef80 7fefef90         2 Mapped  Exe  '
        'EXECUTE_WRITECOPY  \\Windows\\System32\\gdi32.dll',
        'fffffa800300b800 ( 0)   7fefefa0 7fefefa8         1 Mapped  Exe  '
        'EXECUTE_WRITECOPY  \\Windows\\System32\\user32.dll',
        'fffffa800300b490 ( 3)   7fefefb0 7fefefba         2 Mapped  Exe  '
        'EXECUTE_WRITECOPY  \\Windows\\System32\\KernelBase.dll',
        'fffffa800300b400 ( 2)   7fefefc0 7fefefd1         1 Mapped  Exe  '
        'EXECUTE_WRITECOPY  \\Windows\\System32\\kernel32.dll',
        'fffffa800300b370 ( 1)   7fefefe0 7fefeff0         3 Mapped  Exe  '
        'EXECUTE_WRITECOPY  \\Windows\\System32\\ntdll.dll',
        'fffffa800300d140 ( 3)   7ffffed0 7fffffcf         5 Private      READWRITE',
        'fffffa800300d6b0 ( 4)   7fffffd0 7fffffd1         0 Mapped       '
        'READWRITE          \\Users\\Public\\desktop.ini',
        'fffffa800300aea0 ( 2)   7fffffdd 7fffffde         2 Private      READWRITE',
        'fffffa800300ae50 ( 3)   7fffffdf 7fffffdf         1 Private      READWRITE',
        '',
        'Total VADs:    15  average level:    3  maximum depth: 4')


def test_vad_detail_of_an_image_view_with_its_control_area_on_x64(x64):
    d = on(x64, x64.nt.scenario["processes"]["explorer"])
    kernel32 = x64.nt.sections["kernel32.dll"].base
    assert d.execute(f"!vad {kernel32:x} 1") == lines(
        '',
        'VAD @ fffffa800300b400',
        '  Start VPN:      7fefefc0  End VPN: 7fefefd1  Control Area:  fffffa80030046f0',
        '  First ProtoPte: fffff8a0000002c8  Last PTE fffff8a000000350  '
        'Commit Charge         1 (1.)',
        '  Secured.Flink          0  Blink           0  Banked/Extend:        0',
        '  File Offset   0',
        '   ImageMap EXECUTE_WRITECOPY',
        '',
        'ControlArea  @ fffffa80030046f0',
        '  Segment      fffff8a000000280  Flink      0000000000000000  Blink        '
        '0000000000000000',
        '  Section Ref                 1  Pfn Ref                   1  '
        'Mapped Views                a',
        '  User Ref                    a  WaitForDel                0  '
        'Flush Count                 0',
        '  File Object  fffffa8003004890  ModWriteCount             0  '
        'System Views                0',
        '  WritableRefs                0  ',
        '  Flags (a0) Image File ',
        '',
        '      \\Windows\\System32\\kernel32.dll')
    # The node address gives the same block as a user address inside the view.
    assert d.execute("!vad fffffa800300b400 1") == d.execute(f"!vad {kernel32 + 0x5123:x} 1")


def test_vad_detail_of_a_private_reservation_on_x64(x64):
    d = on(x64, x64.nt.scenario["processes"]["explorer"])
    heap = x64.nt.scenario["names"]["ex_heap"]
    assert d.execute(f"!vad {heap:x} 1") == lines(
        '',
        'VAD @ fffffa800300d140',
        '  Start VPN:      7ffffed0  End VPN: 7fffffcf  Control Area:  0000000000000000',
        '  First ProtoPte: 0000000000000000  Last PTE 0000000000000000  '
        'Commit Charge         5 (5.)',
        '  Secured.Flink          0  Blink           0  Banked/Extend:        0',
        '  File Offset   0',
        '   PrivateMemory READWRITE',
        '')


def test_vad_with_a_user_address_prints_that_vads_row(x64):
    d = on(x64, x64.nt.scenario["processes"]["explorer"])
    assert d.execute("!vad 7ffe0123") == lines(
        'VAD             level      start      end    commit',
        'fffffa800300ae00 ( 1)      7ffe0    7ffef         0 Private      READONLY',
        '',
        'Total VADs:     1  average level:    1  maximum depth: 1')


def test_vad_of_the_workshop_process_on_wrk_x86(wrk):
    d = on(wrk, wrk.nt.scenario["processes"]["MemoryAlloc"])
    assert d.execute("!vad") == lines(
        'VAD     level      start      end    commit',
        'fb000770 ( 2)         10      10f         2 Private      READWRITE',
        'fb000790 ( 1)        110      20f         4 Private      READWRITE',
        'fb000f08 ( 2)        340      34f        16 Private      READWRITE',
        'fb000970 ( 0)        400      410         3 Mapped  Exe  EXECUTE_WRITECOPY  '
        '\\Documents and Settings\\All Users\\MemoryAlloc.exe',
        'fb000ed8 ( 3)      77fb0    77fba         2 Mapped  Exe  EXECUTE_WRITECOPY  '
        '\\WINDOWS\\system32\\KernelBase.dll',
        'fb000d08 ( 2)      77fc0    77fd1         1 Mapped  Exe  EXECUTE_WRITECOPY  '
        '\\WINDOWS\\system32\\kernel32.dll',
        'fb000b38 ( 3)      77fe0    77ff0         3 Mapped  Exe  EXECUTE_WRITECOPY  '
        '\\WINDOWS\\system32\\ntdll.dll',
        'fb000750 ( 1)      7ffde    7ffde         1 Private      READWRITE',
        'fb000730 ( 2)      7ffdf    7ffdf         1 Private      READWRITE',
        '',
        'Total VADs:     9  average level:    2  maximum depth: 3')
    # The workshop's region: reserved, then committed whole (16 pages) and written.
    assert d.execute("!vad 340000 1") == lines(
        '',
        'VAD @ fb000f08',
        '  Start VPN:           340  End VPN:      34f  Control Area:  00000000',
        '  First ProtoPte: 00000000  Last PTE 00000000  Commit Charge        10 (16.)',
        '  Secured.Flink          0  Blink           0  Banked/Extend:        0',
        '  File Offset   0',
        '   PrivateMemory READWRITE',
        '')


def test_vad_detail_of_an_image_on_wrk_x86_reads_the_vads_control_area(wrk):
    d = on(wrk, wrk.nt.scenario["processes"]["MemoryAlloc"])
    assert d.execute("!vad 400000 1") == lines(
        '',
        'VAD @ fb000970',
        '  Start VPN:           400  End VPN:      410  Control Area:  fb0007b0',
        '  First ProtoPte: e1000070  Last PTE e10000b0  Commit Charge         3 (3.)',
        '  Secured.Flink          0  Blink           0  Banked/Extend:        0',
        '  File Offset   0',
        '   ImageMap EXECUTE_WRITECOPY',
        '',
        'ControlArea  @ fb0007b0',
        '  Segment      e1000038  Flink      00000000  Blink        00000000',
        '  Section Ref         1  Pfn Ref           1  Mapped Views        1',
        '  User Ref            1  WaitForDel        0  Flush Count         0',
        '  File Object  fb000888  ModWriteCount     0  System Views        0',
        '  WritableRefs        0  ',
        '  Flags (a0) Image File ',
        '',
        '      \\Documents and Settings\\All Users\\MemoryAlloc.exe')


def test_pagefile_backed_section_on_win7_x86(x86):
    d = on(x86, x86.nt.scenario["processes"]["services"])
    shm = x86.nt.scenario["names"]["shm_services"]
    assert d.execute(f"!vad {shm:x}") == lines(
        'VAD     level      start      end    commit',
        '86007730 ( 3)      7ffd0    7ffd3         0 Mapped       READWRITE          '
        'Pagefile-backed section',
        '',
        'Total VADs:     1  average level:    3  maximum depth: 3')
    assert d.execute(f"!vad {shm:x} 1").endswith(lines(
        '   READWRITE',
        '',
        'ControlArea  @ 860076b8',
        '  Segment      89000a28  Flink      00000000  Blink        00000000',
        '  Section Ref         1  Pfn Ref           1  Mapped Views        2',
        '  User Ref            2  WaitForDel        0  Flush Count         0',
        '  File Object  00000000  ModWriteCount     0  System Views        0',
        '  WritableRefs        0  ',
        '  Flags (2000) Commit '))


def test_vad_of_a_process_without_vads_prints_an_empty_table(x64):
    d = x64.debugger
    d.execute(f".process {x64.nt.processes[0]:x}")           # System
    assert d.execute("!vad") == lines(
        'VAD             level      start      end    commit',
        '',
        'Total VADs:     0  average level:    0  maximum depth: 0')


# -- errors -------------------------------------------------------------------------------

def test_errors_on_x64(x64):
    d = on(x64, x64.nt.scenario["processes"]["explorer"])
    assert d.execute("!vad 0 1") == "Unable to find VAD for address 0000000000000000\n"
    assert d.execute("!vad fffff88000000000") == "Unable to read VAD at fffff88000000000\n"
    assert d.execute("!vad fffff88000000000 1") == "Unable to read VAD at fffff88000000000\n"
    assert d.execute("!vad nosuchsymbol") == "Couldn't resolve error at 'nosuchsymbol'\n"
    assert d.execute("!vad 10000 1 2") == " " * 20 + "^ Syntax error in '!vad 10000 1 2'\n"


def test_errors_on_x86(wrk):
    d = on(wrk, wrk.nt.scenario["processes"]["MemoryAlloc"])
    assert d.execute("!vad 350000 1") == "Unable to find VAD for address 00350000\n"
    assert d.execute("!vad ff000000") == "Unable to read VAD at ff000000\n"


@pytest.fixture
def corrupt(x64):
    """explorer with its root's LeftChild pointing at unmapped memory (restored after)."""
    proc = x64.nt.scenario["processes"]["explorer"]
    t = x64.debugger.target
    root = proc.vads.root
    where = root + x64.nt.ts.offset_of("_MMVAD_SHORT", "LeftChild")
    left = proc.vads.read_header(root)[1]
    t.write_virtual(where, (0xFFFFF88000000000).to_bytes(8, "little"))
    yield x64, proc, root, left
    t.write_virtual(where, left.to_bytes(8, "little"))


def test_unreadable_node_stops_the_walk_after_the_rows_before_it(corrupt):
    m, proc, root, left = corrupt
    d = on(m, proc)
    assert d.execute("!vad") == lines(
        'VAD             level      start      end    commit',
        'Unable to read VAD at fffff88000000000')
    # Walking from the root's right child never meets the bad link.
    out = d.execute(f"!vad {proc.vads.read_header(root)[2]:x}")
    assert out.endswith("maximum depth: 3\n") and "Unable" not in out
    # The subtree of the (intact) left child is still listed.
    assert d.execute(f"!vad {left:x}").count("\n") == 7 + 3


# -- consistency with the memory manager ------------------------------------------------------

@pytest.fixture(scope="module", params=["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"])
def machine(request):
    return kdsim.boot(request.param, ram="256m", seed=0)


def oracle_depths(proc):
    """Depth of each node below the real root, walking the links with the memory
    manager's own AvlTable reader."""
    out, stack = {}, [(proc.vads.root, 0)] if proc.vads.root else []
    while stack:
        node, depth = stack.pop()
        out[node] = depth
        _, left, right, _, _ = proc.vads.read_header(node)
        stack += [(c, depth + 1) for c in (left, right) if c]
    return out


def parse(out):
    return [ROW.match(line).groups() for line in out.splitlines() if ROW.match(line)]


def test_vad_visits_exactly_the_avl_trees_nodes_in_address_order_at_their_depths(machine):
    nt = machine.nt
    for name, proc in nt.scenario["processes"].items():
        rows = parse(on(machine, proc).execute("!vad"))
        nodes = proc.vads.nodes_in_order()
        assert [int(r[0], 16) for r in rows] == nodes, name
        depths = oracle_depths(proc)
        assert [int(r[1]) for r in rows] == [depths[n] for n in nodes], name
        for r, node in zip(rows, nodes):
            v = VadInfo(nt, node)
            assert int(r[2], 16) == v.start >> 12 and int(r[3], 16) == (v.end >> 12) - 1
            assert int(r[4]) == v.commit_charge
            assert (r[5] == "Private") == bool(v.private)
            assert r[7] == pr.vad_protect_name(v.protection)


def test_totals_agree_with_the_avl_table(machine):
    for proc in machine.nt.scenario["processes"].values():
        out = on(machine, proc).execute("!vad")
        total = re.search(r"Total VADs:\s+(\d+)\s+average level:\s+(\d+)\s+maximum depth: (\d+)",
                          out)
        assert int(total.group(1)) == proc.vads.count
        assert int(total.group(3)) == proc.vads.depth - 1     # DepthOfTree counts the root
        depths = oracle_depths(proc).values()
        # the mean level, rounded up (never above the maximum depth)
        assert int(total.group(2)) == -(-sum(depths) // len(depths))
        assert int(total.group(2)) <= int(total.group(3))


def test_vad_of_a_node_lists_its_subtree_and_of_the_table_the_whole_tree(machine):
    nt = machine.nt
    proc = max(nt.scenario["processes"].values(), key=lambda p: p.vads.count)
    d = on(machine, proc)
    whole = d.execute("!vad")
    table = proc.ep + nt.ts.offset_of("_EPROCESS", "VadRoot")
    assert d.execute(f"!vad {table:x}") == whole
    assert d.execute(f"!vad {proc.vads.root:x}") == whole
    for child in proc.vads.read_header(proc.vads.root)[1:3]:
        subtree = {n: depth - 1 for n, depth in oracle_depths(proc).items()}
        below, stack = [], [child]
        while stack:
            node = stack.pop()
            below.append(node)
            stack += [c for c in proc.vads.read_header(node)[1:3] if c]
        rows = parse(d.execute(f"!vad {child:x}"))
        assert [int(r[0], 16) for r in rows] == [n for n in proc.vads.nodes_in_order()
                                                 if n in below]
        assert [int(r[1]) for r in rows] == [subtree[int(r[0], 16)] for r in rows]


def test_vad_detail_matches_the_node(machine):
    nt = machine.nt
    for proc in nt.scenario["processes"].values():
        d = on(machine, proc)
        for node in proc.vads.nodes_in_order():
            v = VadInfo(nt, node)
            out = d.execute(f"!vad {node:x} 1")
            assert f"VAD @ {node:0{2 * nt.ptr}x}\n" in out
            m = re.search(r"Start VPN:\s+([0-9a-f]+)\s+End VPN:\s+([0-9a-f]+)", out)
            assert (int(m.group(1), 16), int(m.group(2), 16)) == (v.start >> 12,
                                                                  (v.end >> 12) - 1)
            assert f"Commit Charge{v.commit_charge:10x} ({v.commit_charge}.)" in out
            assert out.splitlines()[6].endswith(pr.vad_protect_name(v.protection))
            assert ("ControlArea  @ " in out) == (not v.private)
            assert out == d.execute(f"!vad {v.start + 0xfff:x} 1")


def test_vad_reads_the_nodes_in_guest_memory(x64):
    """Changing a node's EndingVpn with eq changes !vad; the memory manager's Python state
    is not consulted."""
    proc = x64.nt.scenario["processes"]["notepad"]
    d = on(x64, proc)
    node = proc.vads.nodes_in_order()[0]
    field = node + x64.nt.ts.offset_of("_MMVAD_SHORT", "EndingVpn")
    old = d.execute(f"dq {field:x} L1").split()[1].replace("`", "")
    try:
        d.execute(f"eq {field:x} 1234")
        assert f"{node:x} ( " in d.execute("!vad")
        row = [line for line in d.execute("!vad").splitlines() if line.startswith(f"{node:x}")]
        assert row[0].split()[4] == "1234"
    finally:
        d.execute(f"eq {field:x} {old}")


# -- the tree follows the memory manager's operations ---------------------------------------

@pytest.fixture(params=["win7-x64", "wrk-x86"])
def fresh(request):
    return kdsim.boot(request.param, ram="256m", seed=0)


def test_virtualalloc_and_free_change_the_tree(fresh):
    nt = fresh.nt
    proc = next(iter(nt.scenario["processes"].values()))
    d = on(fresh, proc)
    before = d.execute("!vad")
    r = nt.vm.allocate(proc, 0x30000, commit=False, protect=pr.PAGE_EXECUTE_READWRITE)
    assert r.ok
    nt.vm.allocate(proc, 0x2000, r.base + 0x1000, reserve=False, protect=pr.PAGE_READWRITE)
    after = d.execute("!vad")
    assert parse(after) != parse(before)
    node = nt.vm.vad_at(proc, r.base).node
    row = [x for x in parse(after) if int(x[0], 16) == node][0]
    assert (int(row[2], 16), int(row[3], 16), int(row[4]), row[5], row[7]) == (
        r.base >> 12, (r.base + 0x30000 >> 12) - 1, 2, "Private", "EXECUTE_READWRITE")
    assert [int(x[0], 16) for x in parse(after)] == proc.vads.nodes_in_order()
    # Releasing part of it splits nothing here: the front goes, the VAD starts later.
    nt.vm.free(proc, r.base, 0x1000)
    row = [x for x in parse(d.execute("!vad")) if int(x[0], 16) == node][0]
    assert int(row[2], 16) == (r.base >> 12) + 1
    nt.vm.free(proc, r.base + 0x1000)
    rows = parse(d.execute("!vad"))      # the same VADs again; the tree's shape may differ
    assert [x[:1] + x[2:] for x in rows] == [x[:1] + x[2:] for x in parse(before)]
    depths = oracle_depths(proc)
    assert [int(x[1]) for x in rows] == [depths[int(x[0], 16)] for x in rows]
    assert d.execute(f"!vad {r.base + 0x1000:x} 1") == \
        f"Unable to find VAD for address {r.base + 0x1000:0{2 * nt.ptr}x}\n"
