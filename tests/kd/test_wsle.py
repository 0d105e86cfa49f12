"""!wsle: the working-set list at the process's hyperspace address, read through the
_MMWSL/_MMWSLE layout, agreeing with the memory manager's working sets."""
import pytest

import kdsim

WSLE_X64 = """
Working Set @ fffff70001080000
    FirstFree        9  FirstDynamic        0
    LastEntry       16  NextSlot            0  LastInitialized      16e
    NonDirect        0  HashTable           0  HashTableSize          0

Reading the WSLE data...

Virtual Address           Age  Locked  ReferenceCount
000000007ffe0009          0        0        1
000000013f000009          0        0        1
000007fefefe0009          0        0        1
000007fefefe1009          0        0        1
0000000000110009          0        0        1
000007fffffdf009          0        0        1
000007fffffdd009          0        0        1
000007fffffde009          0        0        1
000007fefefa0009          0        0        1
000007fefefc8009          0        0        1
0000000000210009          0        0        1
0000000000211009          0        0        1
0000000000214009          0        0        1
0000000000215009          0        0        1
0000000000216009          0        0        1
0000000000217009          0        0        1
0000000000219009          0        0        1
000000000021a009          0        0        1
000000000021b009          0        0        1

Reading the WSLE data...
Valid WSLE entries = 0x13
found end @ wsle index 0x16e
"""

WSLE_X86 = """
Working Set @ c0502000
    FirstFree        8  FirstDynamic        0
    LastEntry       15  NextSlot            0  LastInitialized      255
    NonDirect        0  HashTable           0  HashTableSize          0

Reading the WSLE data...

Virtual Address           Age  Locked  ReferenceCount
        7ffe0009          0        0        1
        00400009          0        0        1
        77fe0009          0        0        1
        77fe1009          0        0        1
        00110009          0        0        1
        7ffdf009          0        0        1
        7ffde009          0        0        1
        77fa0009          0        0        1
        77fc8009          0        0        1
        00210009          0        0        1
        00211009          0        0        1
        00214009          0        0        1
        00215009          0        0        1
        00216009          0        0        1
        00217009          0        0        1
        00219009          0        0        1
        0021a009          0        0        1
        0021b009          0        0        1

Reading the WSLE data...
Valid WSLE entries = 0x12
found end @ wsle index 0x255
"""

EXPECTED = {"win7-x64": WSLE_X64, "win7-x86": WSLE_X86}


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86"])
def m(request):
    return kdsim.boot(request.param, ram="256m", scenario="default")


@pytest.fixture
def notepad(m):
    proc = m.nt.scenario["processes"]["notepad"]
    m.debugger.execute(f".process /p {proc.ep:x}")
    yield proc
    m.debugger.execute(".process 0")


def rows(out: str) -> list[tuple[int, int, int, int]]:
    """(entry, age, locked, reference count) of each row of the entry table."""
    lines = out.splitlines()
    start = lines.index("Virtual Address           Age  Locked  ReferenceCount") + 1
    result = []
    for line in lines[start:]:
        if not line.strip():
            break
        result.append(tuple(int(w, 16) for w in line.split()))
    return result


def test_wsle_3_of_notepad(m, notepad):
    assert m.debugger.execute("!wsle 3") == EXPECTED[m.target]


def test_wsle_0_prints_the_header_only(m, notepad):
    header = EXPECTED[m.target].split("\n\nReading")[0] + "\n"
    assert m.debugger.execute("!wsle") == header
    assert m.debugger.execute("!wsle 0 0") == header


def test_wsle_entries_are_the_memory_managers_working_set_of_every_process(m):
    d, ptr = m.debugger, m.nt.ptr
    for proc in m.nt.process_objects.values():
        d.execute(f".process /p {proc.ep:x}")
        got = [e & ~0xFFF for e, *_ in rows(d.execute("!wsle 1"))]
        expected = [va for va, _ in sorted(proc.ws.entries.items(), key=lambda kv: kv[1])]
        assert got == expected, proc.name
        summary = d.execute("!wsle 2").splitlines()
        assert summary[-2] == f"Valid WSLE entries = 0x{len(proc.ws):x}"
        assert summary[1] == f"Working Set @ {m.nt.profile.address_space.working_set_list:0{2 * ptr}x}"
    d.execute(".process 0")


def test_wsle_reference_counts_are_the_pfn_entries(m, notepad):
    nt = m.nt
    for entry, age, locked, refs in rows(m.debugger.execute("!wsle 1")):
        va = entry & ~0xFFF
        pfn = m.core.translate(va, cr3=notepad.cr3).pa >> 12
        assert refs == nt.pfn.get(pfn, nt.pfn.lay.reference)
        assert age == 0 and locked == 0


def test_wsle_with_the_working_set_list_address(m, notepad):
    wsl = m.nt.profile.address_space.working_set_list
    assert m.debugger.execute(f"!wsle 3 {wsl:x}") == EXPECTED[m.target]


def test_wsle_of_the_system_process_has_no_list(m):
    wsl = m.nt.profile.address_space.working_set_list
    m.debugger.execute(f".process /p {m.nt.system_process:x}")
    assert m.debugger.execute("!wsle") == \
        f"Unable to read _MMWSL @ {wsl:0{2 * m.nt.ptr}x}\n"
    m.debugger.execute(".process 0")


def test_wsle_shows_entries_whose_pte_or_pde_is_not_valid():
    b = kdsim.boot("win7-x64", ram="256m", scenario="default")
    d, prof = b.debugger, b.nt.profile
    notepad = b.nt.scenario["processes"]["notepad"]
    d.execute(f".process /p {notepad.ep:x}")
    d.execute(f"eq {prof.pte_address(0x210000):x} 0")
    d.execute(f"eq {prof.pde_address(0x7fefefa0000):x} 0")
    out = d.execute("!wsle 1").splitlines()
    assert "0000000000210009          0        0  PTE not valid" in out
    assert "000007fefefa0009          0        0  PDE not valid" in out
    assert "0000000000211009          0        0        1" in out


def test_wsle_unreadable_entry_array(m, notepad):
    # Pointed 0x10 bytes into the list, the "Wsle" pointer is LastInitializedWsle.
    wsl = m.nt.profile.address_space.working_set_list
    last = {"win7-x64": 0x16e, "win7-x86": 0x255}[m.target]
    ptr = m.nt.ptr
    offset = m.nt.ts.offset_of("_MMWSL", "LastInitializedWsle") - \
        m.nt.ts.offset_of("_MMWSL", "Wsle")
    assert m.debugger.execute(f"!wsle 1 {wsl + offset:x}") == \
        f"Unable to read _MMWSLE @ {last:0{2 * ptr}x}\n"


@pytest.mark.parametrize("line, expected", [
    ("!wsle zz", "Couldn't resolve error at 'zz'\n"),
    ("!wsle 1 zz", "Couldn't resolve error at 'zz'\n"),
    ("!wsle 1 2 3", "                 ^ Syntax error in '!wsle 1 2 3'\n"),
])
def test_wsle_bad_arguments(x64, line, expected):
    assert x64.debugger.execute(line) == expected
