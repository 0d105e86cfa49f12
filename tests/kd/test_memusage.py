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
        "             Zeroed:    62142 (  248568 kb)\n"
        "               Free:       54 (     216 kb)\n"
        "            Standby:        2 (       8 kb)\n"
        "           Modified:        2 (       8 kb)\n"
        "    ModifiedNoWrite:        0 (       0 kb)\n"
        "       Active/Valid:     3222 (   12888 kb)\n"
        "         Transition:        0 (       0 kb)\n"
        "         SLIST/Temp:        0 (       0 kb)\n"
        "                Bad:        0 (       0 kb)\n"
        "            Unknown:        0 (       0 kb)\n"
        "              TOTAL:    65422 (  261688 kb)\n"),
    "win7-x86": HEAD + (
        "             Zeroed:    62767 (  251068 kb)\n"
        "               Free:       42 (     168 kb)\n"
        "            Standby:        2 (       8 kb)\n"
        "           Modified:        2 (       8 kb)\n"
        "    ModifiedNoWrite:        0 (       0 kb)\n"
        "       Active/Valid:     2609 (   10436 kb)\n"
        "         Transition:        0 (       0 kb)\n"
        "         SLIST/Temp:        0 (       0 kb)\n"
        "                Bad:        0 (       0 kb)\n"
        "            Unknown:        0 (       0 kb)\n"
        "              TOTAL:    65422 (  261688 kb)\n"),
}

TABLE_HEAD = ("  Building kernel map\n"
              "  Finished building kernel map\n"
              "Scanning PFN database - (100% complete) \n"
              "\n"
              "  Usage Summary (in Kb):\n"
              "Control       Valid Standby Dirty Shared Locked PageTables  name\n")

# The default machine's mapped files with pages in memory: each image's header page (and
# the first code page of ntdll, run by every process; user32's page notepad touched),
# desktop.ini's page explorer wrote, and the pages setup.exe left on standby when it ended.
TABLE = {
    "win7-x64": TABLE_HEAD + (
        "fffffa8003004010     4      0     0     0     0     0  mapped_file( smss.exe )\n"
        "fffffa8003004380     8      0     0     8     0     0  mapped_file( ntdll.dll )\n"
        "fffffa80030046f0     4      0     0     0     0     0  mapped_file( kernel32.dll )\n"
        "fffffa80030056e0     4      0     0     4     0     0  mapped_file( csrss.exe )\n"
        "fffffa80030066b0     4      0     0     0     0     0  mapped_file( wininit.exe )\n"
        "fffffa8003008010     4      0     0     0     0     0  mapped_file( services.exe )\n"
        "fffffa8003008bd0     4      0     0     0     0     0  mapped_file( lsass.exe )\n"
        "fffffa80030097d0     4      0     0     4     0     0  mapped_file( svchost.exe )\n"
        "fffffa800300b010     4      0     0     0     0     0  mapped_file( explorer.exe )\n"
        "fffffa800300b520     8      0     0     4     0     0  mapped_file( user32.dll )\n"
        "fffffa800300c6b0     4      0     0     0     0     0  mapped_file( notepad.exe )\n"
        "fffffa800300d470     4      0     0     0     0     0  mapped_file( desktop.ini )\n"
        "fffffa800300dde0     0      4     0     0     0     0  mapped_file( setup.exe )\n"),
    "win7-x86": TABLE_HEAD + (
        "86000878     4      0     0     0     0     0  mapped_file( smss.exe )\n"
        "86000a80     8      0     0     8     0     0  mapped_file( ntdll.dll )\n"
        "86000c88     4      0     0     0     0     0  mapped_file( kernel32.dll )\n"
        "86003508     4      0     0     4     0     0  mapped_file( csrss.exe )\n"
        "86003b90     4      0     0     0     0     0  mapped_file( wininit.exe )\n"
        "86004898     4      0     0     0     0     0  mapped_file( services.exe )\n"
        "86004f28     4      0     0     0     0     0  mapped_file( lsass.exe )\n"
        "860055b8     4      0     0     4     0     0  mapped_file( svchost.exe )\n"
        "860063b0     4      0     0     0     0     0  mapped_file( explorer.exe )\n"
        "86006680     8      0     0     4     0     0  mapped_file( user32.dll )\n"
        "86007058     4      0     0     0     0     0  mapped_file( notepad.exe )\n"
        "860077c0     4      0     0     0     0     0  mapped_file( desktop.ini )\n"
        "86007d08     0      4     0     0     0     0  mapped_file( setup.exe )\n"),
}

ROW = re.compile(r" *([A-Za-z/]+): +(\d+) \( *(\d+) kb\)")


def rows(text: str) -> dict[str, int]:
    """The summary's counts (the lines before the usage table)."""
    out = {}
    for line in text.split(TABLE_HEAD)[0].splitlines()[3:]:
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
    assert m.debugger.execute("!memusage") == EXPECTED[target] + TABLE[target]
    assert m.debugger.execute("!memusage 8") == EXPECTED[target]
    assert m.debugger.execute("!memusage 1") == EXPECTED[target]


def _table(out: str) -> dict[int, tuple]:
    """Control area -> (valid, standby, dirty, shared, locked, page tables, name)."""
    found = {}
    for line in out.split(TABLE_HEAD)[1].splitlines():
        g = re.fullmatch(r"([0-9a-f]+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+)  "
                         r"mapped_file\( (.*) \)", line)
        assert g, line
        found[int(g[1], 16)] = tuple(int(x) for x in g.groups()[1:7]) + (g[8],)
    return found


def test_usage_table_is_the_memory_managers_section_pages(machine):
    """Each row counts, in KB, the pages whose PFN entries point at one of the section's
    prototype PTEs: active (and those with more than one PTE mapping them), standby,
    modified; sections of mapped files only, each named by its file."""
    nt = machine.nt
    table = _table(machine.debugger.execute("!memusage"))
    lay = nt.pfn.lay
    words = nt.pfn.e[lay.location.word][:nt.highest_pfn + 1].astype(np.int64)
    location = (words >> lay.location.shift) & lay.location.mask
    pte = nt.pfn.e["pte"][:nt.highest_pfn + 1].astype(np.uint64)
    share = nt.pfn.e["u2"][:nt.highest_pfn + 1].astype(np.int64)
    expected = {}
    for sec in nt.sections.values():
        inside = (pte >= np.uint64(sec.proto)) & \
            (pte < np.uint64(sec.proto + sec.pages * sec.pte_size))
        valid = inside & (location == P.ACTIVE)
        counts = (int(valid.sum()), int((inside & (location == P.STANDBY)).sum()),
                  int((inside & (location == P.MODIFIED)).sum()),
                  int((valid & (share > 1)).sum()))
        if sec.kind != "pagefile" and any(counts):
            expected[sec.ca] = tuple(4 * c for c in counts) + (0, 0, sec.path.split("\\")[-1])
    assert table == expected


def test_a_name_that_cannot_be_read_says_so():
    m = kdsim.boot("win7-x64", ram="256m")
    nt, d = m.nt, m.debugger
    sec = nt.sections["explorer.exe"]
    buf = nt.ts.field("_FILE_OBJECT", "FileName.Buffer")
    d.execute(f"eq {sec.file_object + buf.offset:x} fffff8a0dead0000")
    line = next(x for x in d.execute("!memusage").splitlines() if x.startswith(f"{sec.ca:x}"))
    assert line.endswith("mapped_file( Can't read file name buffer at fffff8a0dead0000 )")


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
