"""!memusage: the pages of RAM counted by location from the PFN database in guest memory;
the counts are the list heads' totals, the rows add up to the physical pages, and a 2 GB
machine is counted quickly."""
import re
import time

import numpy as np
import pytest

import kdsim
from kdsim.nt import pfn as P

HEAD = ("loading PFN database\n"
        "loading (100% complete)\n"
        "Compiling memory usage data (99% Complete).\n")

EXPECTED = {
    "win7-x64": HEAD + (
        "             Zeroed:    62285 (  249140 kb)\n"
        "               Free:       53 (     212 kb)\n"
        "            Standby:        2 (       8 kb)\n"
        "           Modified:        2 (       8 kb)\n"
        "    ModifiedNoWrite:        0 (       0 kb)\n"
        "       Active/Valid:     3080 (   12320 kb)\n"
        "         Transition:        0 (       0 kb)\n"
        "         SLIST/Temp:        0 (       0 kb)\n"
        "                Bad:        0 (       0 kb)\n"
        "            Unknown:        0 (       0 kb)\n"
        "              TOTAL:    65422 (  261688 kb)\n"),
    "win7-x86": HEAD + (
        "             Zeroed:    62811 (  251244 kb)\n"
        "               Free:       41 (     164 kb)\n"
        "            Standby:        2 (       8 kb)\n"
        "           Modified:        2 (       8 kb)\n"
        "    ModifiedNoWrite:        0 (       0 kb)\n"
        "       Active/Valid:     2566 (   10264 kb)\n"
        "         Transition:        0 (       0 kb)\n"
        "         SLIST/Temp:        0 (       0 kb)\n"
        "                Bad:        0 (       0 kb)\n"
        "            Unknown:        0 (       0 kb)\n"
        "              TOTAL:    65422 (  261688 kb)\n"),
}

ROW = re.compile(r" *([A-Za-z/]+): +(\d+) \( *(\d+) kb\)")


def rows(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines()[3:]:
        g = ROW.fullmatch(line)
        assert g, line
        assert int(g[3]) == 4 * int(g[2])
        out[g[1]] = int(g[2])
    return out


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86", "win7-x86pae", "wrk-x86"])
def machine(request):
    return kdsim.boot(request.param, ram="256m")


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_memusage_output_matches_windbgs_layout(target):
    m = kdsim.boot(target, ram="256m")
    assert m.debugger.execute("!memusage") == EXPECTED[target]
    assert m.debugger.execute("!memusage 8") == EXPECTED[target]


def test_counts_are_the_list_heads_and_the_physical_pages(machine):
    """Zeroed..Bad equal the totals in the _MMPFNLIST heads, Active/Valid and Transition
    what the memory manager's database holds, TOTAL the pages of RAM."""
    nt = machine.nt
    got = rows(machine.debugger.execute("!memusage"))
    for label, list_id in (("Zeroed", P.ZEROED), ("Free", P.FREE), ("Standby", P.STANDBY),
                           ("Modified", P.MODIFIED), ("ModifiedNoWrite", P.MODIFIED_NO_WRITE),
                           ("Bad", P.BAD)):
        assert got[label] == nt.pfn.total(list_id)
    in_ram = np.zeros(nt.highest_pfn + 1, dtype=bool)
    for start, length in nt.runs:
        in_ram[start // 0x1000:(start + length) // 0x1000] = True
    lay = nt.pfn.lay
    words = nt.pfn.e[lay.location.word][:nt.highest_pfn + 1].astype(np.int64)
    location = (words >> lay.location.shift) & lay.location.mask
    assert got["Active/Valid"] == int(np.count_nonzero(in_ram & (location == P.ACTIVE)))
    assert got["Transition"] == int(np.count_nonzero(in_ram & (location == P.TRANSITION)))
    assert got["TOTAL"] == nt.ram_pages() == sum(v for k, v in got.items() if k != "TOTAL")
    assert got["Unknown"] == got["SLIST/Temp"] == 0


def test_counts_follow_the_memory_manager():
    """Drive the memory manager (allocate, write, trim, write out, repurpose, zero) and
    the counts move with the list heads."""
    m = kdsim.boot("win7-x86", ram="256m", scenario="none")
    nt, d = m.nt, m.debugger
    from kdsim.nt.fault import touch
    proc = nt.spawn("test.exe")
    va = nt.vm.allocate(proc, 0x8000).base
    assert touch(nt, proc, va, 0x8000, "w")[0] == 0
    before = rows(d.execute("!memusage"))
    for i in range(4):
        nt.trim_page(proc, va + i * 0x1000)
    after = rows(d.execute("!memusage"))
    assert after["Modified"] == before["Modified"] + 4
    assert after["Active/Valid"] == before["Active/Valid"] - 4
    nt.write_modified(3)
    nt.repurpose(2)
    now = rows(d.execute("!memusage"))
    assert (now["Modified"], now["Standby"]) == (before["Modified"] + 1, before["Standby"] + 1)
    assert now["Free"] == before["Free"] + 2
    nt.zero_pages()
    now = rows(d.execute("!memusage"))
    assert now["Free"] == 0
    for label, list_id in (("Zeroed", P.ZEROED), ("Standby", P.STANDBY),
                           ("Modified", P.MODIFIED)):
        assert now[label] == nt.pfn.total(list_id)
    assert now["TOTAL"] == nt.ram_pages()


def test_a_page_edited_onto_another_list_is_counted_there():
    """The count comes from each entry's PageLocation in memory, not from the heads."""
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    nt = m.nt
    before = rows(m.debugger.execute("!memusage"))
    field = nt.ts.field("_MMPFN", "u3.e1.PageLocation")
    base = nt.profile.address_space.pfn_database
    for number, location in zip(list(nt.pfn.walk(P.ZEROED, 3)), (P.BAD, P.TRANSITION,
                                                                   P.MODIFIED_NO_WRITE)):
        field.write(nt.kmem, base + number * 0x30, location)
    after = rows(m.debugger.execute("!memusage"))
    assert after["Zeroed"] == before["Zeroed"] - 3
    assert after["Bad"] == after["Transition"] == after["ModifiedNoWrite"] == 1


def test_unreadable_entries_are_unknown():
    """Unmap one page of the database: the entries in it (and the two that straddle its
    edges) are Unknown, the total stays the number of physical pages."""
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    nt, d = m.nt, m.debugger
    base = nt.profile.address_space.pfn_database
    page = base + 0x5000
    d.execute(f"eq {nt.profile.pte_address(page):x} 0")
    size = 0x30
    first, last = (page - base) // size, (page + 0xFFF - base) // size
    got = rows(d.execute("!memusage"))
    assert got["Unknown"] == last - first + 1
    assert got["TOTAL"] == nt.ram_pages()


def test_bad_flags_get_windbgs_messages():
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    d = m.debugger
    assert d.execute("!memusage nosuch") == "Couldn't resolve error at 'nosuch'\n"
    assert d.execute("!memusage 8 9") == " " * 19 + "^ Syntax error in '!memusage 8 9'\n"


def test_a_2gb_machine_is_counted_quickly():
    """512K entries are read in 1 MB pieces: well under the time of one read per entry."""
    m = kdsim.boot("win7-x64", ram="2g", scenario="none")
    start = time.perf_counter()
    got = rows(m.debugger.execute("!memusage 8"))
    assert time.perf_counter() - start < 3.0
    assert got["TOTAL"] == m.nt.ram_pages() == 524174
    assert got["Zeroed"] == m.nt.pfn.total(P.ZEROED)
