"""!pfn: the PFN entry of a page in every location and layout, by page number or by the
entry's address, and the consistency rules -- its PteAddress is the PTE !pte shows for the
page's VA, and every value is the memory manager's PFN state."""
import re

import pytest

import kdsim
from kdsim.nt import pfn as P

TARGETS = ["win7-x64", "win7-x86", "win7-x86pae", "wrk-x86"]


@pytest.fixture(scope="module", params=TARGETS)
def machine(request):
    return kdsim.boot(request.param, ram="256m")


@pytest.fixture(scope="module")
def machines():
    return {t: kdsim.boot(t, ram="256m") for t in ("win7-x64", "win7-x86", "wrk-x86")}


def _user_page(m):
    """A process and a page it wrote: notepad's buffer (win7) / MemoryAlloc's region (wrk)."""
    sc = m.nt.scenario
    if "notepad" in sc["processes"]:
        return sc["processes"]["notepad"], sc["names"]["np_buf"]
    return sc["processes"]["MemoryAlloc"], sc["names"]["region"]


# -- exact output ----------------------------------------------------------------------------
# (role, pfn, text): role says which page it is, checked against the memory manager below.
EXPECTED = {
    "win7-x64": [
        ("page table", 0x155,
         "    PFN 00000155 at address FFFFFA8000003FF0\n"
         "    flink       00000000  blink / share count 0000000B  pteaddress FFFFF6FB40000008\n"
         "    reference count 0001    used entry count  0000      Cached    color 0   Priority 3\n"
         "    restore pte 00000080  containing page 00013F  Active             \n"
         "                            \n"),
        ("user page", 0x154,
         "    PFN 00000154 at address FFFFFA8000003FC0\n"
         "    flink       0000000B  blink / share count 00000001  pteaddress FFFFF68000001080\n"
         "    reference count 0001    used entry count  0000      Cached    color 0   Priority 5\n"
         "    restore pte 00000080  containing page 000155  Active     M       \n"
         "    Modified                \n"),
        (P.ZEROED, 0x1A3,
         "    PFN 000001A3 at address FFFFFA8000004E90\n"
         "    flink       000001A4  blink / share count FFFFFFFFFFFFFFFF  pteaddress 0000000000000000\n"
         "    reference count 0000    used entry count  0000      Cached    color 0   Priority 3\n"
         "    restore pte 00000000  containing page 000000  Zeroed             \n"
         "                            \n"),
        (P.FREE, 0x152,
         "    PFN 00000152 at address FFFFFA8000003F60\n"
         "    flink       00000157  blink / share count FFFFFFFFFFFFFFFF  pteaddress FFFFF8A000000351\n"
         "    reference count 0000    used entry count  0000      Cached    color 0   Priority 5\n"
         "    restore pte 00000000  containing page 000004  Free               \n"
         "                            \n"),
        (P.STANDBY, 0x164,
         "    PFN 00000164 at address FFFFFA80000042C0\n"
         "    flink       00000186  blink / share count FFFFFFFFFFFFFFFF  pteaddress FFFFF680000010C0\n"
         "    reference count 0000    used entry count  0000      Cached    color 0   Priority 5\n"
         "    restore pte 300000080  containing page 000155  Standby            \n"
         "                            \n"),
        (P.MODIFIED, 0x163,
         "    PFN 00000163 at address FFFFFA8000004290\n"
         "    flink       00000167  blink / share count FFFFFFFFFFFFFFFF  pteaddress FFFFF68000001088\n"
         "    reference count 0000    used entry count  0000      Cached    color 0   Priority 5\n"
         "    restore pte 00000080  containing page 000162  Modified   M       \n"
         "    Modified                \n"),
    ],
    "win7-x86": [
        ("page table", 0x71,
         "    PFN 00000071 at address 84000A98\n"
         "    flink       00000000  blink / share count 0000000C  pteaddress C0300000\n"
         "    reference count 0001   Cached     color 0   Priority 3\n"
         "    restore pte 00000080  containing page 00006C  Active             \n"
         "                            \n"),
        ("user page", 0x7D,
         "    PFN 0000007D at address 84000BB8\n"
         "    flink       0000000A  blink / share count 00000001  pteaddress C0000840\n"
         "    reference count 0001   Cached     color 0   Priority 5\n"
         "    restore pte 00000080  containing page 000071  Active     M       \n"
         "    Modified                \n"),
        (P.ZEROED, 0x11B,
         "    PFN 0000011B at address 84001A88\n"
         "    flink       0000011C  blink / share count FFFFFFFF  pteaddress 00000000\n"
         "    reference count 0000   Cached     color 0   Priority 3\n"
         "    restore pte 00000000  containing page 000000  Zeroed             \n"
         "                            \n"),
        (P.FREE, 0x7B,
         "    PFN 0000007B at address 84000B88\n"
         "    flink       0000007F  blink / share count FFFFFFFF  pteaddress 890001F1\n"
         "    reference count 0000   Cached     color 0   Priority 5\n"
         "    restore pte 00000000  containing page 000003  Free               \n"
         "                            \n"),
        (P.STANDBY, 0x8B,
         "    PFN 0000008B at address 84000D08\n"
         "    flink       00000105  blink / share count FFFFFFFF  pteaddress C0000860\n"
         "    reference count 0000   Cached     color 0   Priority 5\n"
         "    restore pte 00003080  containing page 000071  Standby            \n"
         "                            \n"),
        (P.MODIFIED, 0x8A,
         "    PFN 0000008A at address 84000CF0\n"
         "    flink       0000008E  blink / share count FFFFFFFF  pteaddress C0000844\n"
         "    reference count 0000   Cached     color 0   Priority 5\n"
         "    restore pte 00000080  containing page 00005A  Modified   M       \n"
         "    Modified                \n"),
    ],
    "wrk-x86": [
        ("page table", 0xA,
         "    PFN 0000000A at address 810000F0\n"
         "    flink       00000006  blink / share count 00000003  pteaddress C0300000\n"
         "    reference count 0001                                 color 0\n"
         "    restore pte 00000080  containing page        000005  Active   \n"
         " \n"),
        ("user page", 0x13,
         "    PFN 00000013 at address 810001C8\n"
         "    flink       0000000F  blink / share count 00000001  pteaddress C0000D00\n"
         "    reference count 0001                                 color 0\n"
         "    restore pte 00000080  containing page        00000A  Active     M     \n"
         "    Modified          \n"),
        (P.ZEROED, 0x14,
         "    PFN 00000014 at address 810001E0\n"
         "    flink       00000015  blink / share count FFFFFFFF  pteaddress 00000000\n"
         "    reference count 0000                                 color 0\n"
         "    restore pte 00000000  containing page        000000  Zeroed   \n"
         " \n"),
    ],
}


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_pfn_output_matches_windbgs_layout(machines, target):
    m = machines[target]
    for _, number, text in EXPECTED[target]:
        assert m.debugger.execute(f"!pfn {number:x}") == text


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_the_expected_pages_are_what_the_memory_manager_says(machines, target):
    """Each sample is the page it claims to be: the page table and the data page of the
    process's buffer (from the MMU's own walk), the first page of each list."""
    m = machines[target]
    proc, va = _user_page(m)
    walk = m.core.translate(va, cr3=proc.cr3)
    roles = {"page table": walk.levels[-1][0] >> 12, "user page": walk.pa >> 12}
    for role, number, _ in EXPECTED[target]:
        if role in roles:
            assert roles[role] == number
        else:
            assert next(m.nt.pfn.walk(role)) == number


def test_x64_sample_of_the_reference_spacing(machines):
    """The x64 Active+Modified lines have the reference's exact spacing (RF2)."""
    out = machines["win7-x64"].debugger.execute("!pfn 154").splitlines()
    assert out[2].startswith("    reference count 0001    used entry count  0000      Cached    color 0")
    assert out[3].endswith("  Active     M       ")
    assert out[4] == "    Modified                "


# -- arguments ---------------------------------------------------------------------------------

def test_an_address_inside_the_pfn_database_names_that_entry(machine):
    d, nt = machine.debugger, machine.nt
    size = nt.ts.sizeof("_MMPFN")
    base = nt.profile.address_space.pfn_database
    for number in (0, 3, 0x80, nt.highest_pfn):
        want = d.execute(f"!pfn {number:x}")
        assert d.execute(f"!pfn {base + number * size:x}") == want
        assert d.execute(f"!pfn {base + number * size + size - 1:x}") == want
    assert d.execute("!pfn poi(nt!MmPfnDatabase)+5") == d.execute("!pfn 0")


def test_expressions_and_symbols_are_accepted(machines):
    d = machines["win7-x64"].debugger
    assert d.execute("!pfn 0x13d") == d.execute("!pfn 13d") == d.execute("!pfn 0n317")
    assert d.execute("!pfn 13c+1") == d.execute("!pfn 13d")


def test_pfn_beyond_the_highest_physical_page_is_refused(machine):
    d, top = machine.debugger, machine.nt.highest_pfn
    assert top == 0xFFEF
    assert d.execute("!pfn ffef").startswith("    PFN 0000FFEF at address ")
    assert d.execute("!pfn fff0") == \
        "PFN FFF0 is beyond the highest physical page (FFEF)\n"
    assert d.execute("!pfn 1000000") == \
        "PFN 1000000 is beyond the highest physical page (FFEF)\n"


def test_the_first_address_past_the_database_is_a_page_number_out_of_range(machines):
    m = machines["win7-x64"]
    end = m.nt.profile.address_space.pfn_database + (m.nt.highest_pfn + 1) * 0x30
    assert m.debugger.execute(f"!pfn {end:x}") == \
        f"PFN {end:X} is beyond the highest physical page (FFEF)\n"


def test_bad_arguments_get_windbgs_messages(machines):
    d = machines["win7-x64"].debugger
    assert d.execute("!pfn") == " " * 11 + "^ Syntax error in '!pfn'\n"
    assert d.execute("!pfn nosuchsymbol") == "Couldn't resolve error at 'nosuchsymbol'\n"
    assert d.execute("!pfn 0 1") == " " * 14 + "^ Syntax error in '!pfn 0 1'\n"


@pytest.mark.parametrize("target,write,pte_cmd", [("win7-x64", "eq", "dq"),
                                                  ("win7-x86", "ed", "dd")])
def test_an_unreadable_entry_prints_a_memory_read_error(target, write, pte_cmd):
    """Unmap the database page holding an entry (through the debugger, like a student
    editing a PTE): the entry cannot be read any more."""
    m = kdsim.boot(target, ram="256m", scenario="none")
    d, prof = m.debugger, m.nt.profile
    size = m.nt.ts.sizeof("_MMPFN")
    number = 0x2000 // size + 1                      # an entry inside the database's 3rd page
    entry = prof.address_space.pfn_database + number * size
    pte = prof.pte_address(entry)
    d.execute(f"{write} {pte:x} 0")
    got = d.execute(f"!pfn {number:x}")
    if target == "win7-x64":
        assert got == ("    PFN 000000AB at address FFFFFA8000002010\n"
                       "Memory read error fffffa80`00002010\n")
    else:
        assert got == ("    PFN 00000156 at address 84002010\n"
                       "Memory read error 84002010\n")
    # the entries of the other pages are still there
    assert d.execute("!pfn 1").startswith("    PFN 00000001 at address ")


# -- every location and flag ---------------------------------------------------------------------

def _entry(m, number):
    return m.nt.profile.address_space.pfn_database + number * m.nt.ts.sizeof("_MMPFN")


def _set(m, number, path, value):
    m.nt.ts.field("_MMPFN", path).write(m.nt.kmem, _entry(m, number), value)


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86", "wrk-x86"])
def test_every_page_location_has_its_name(target):
    m = kdsim.boot(target, ram="256m", scenario="none")
    number = next(m.nt.pfn.walk(P.ZEROED))
    names = ["Zeroed", "Free", "Standby", "Modified", "ModNoWrt", "Bad", "Active", "Transition"]
    for location, name in enumerate(names):
        _set(m, number, "u3.e1.PageLocation", location)
        line = m.debugger.execute(f"!pfn {number:x}").splitlines()[3]
        if target == "wrk-x86":
            assert line.endswith(f"  {name:<9}")
        else:
            assert line.endswith(f"  {name:<10} " + " " * 8)


@pytest.mark.parametrize("target", ["win7-x64", "wrk-x86"])
def test_flags_letters_and_names(target):
    """The four flags of the reference, wherever the build keeps them (Win7 and the WRK
    order the _MMPFNENTRY bits differently)."""
    m = kdsim.boot(target, ram="256m", scenario="none")
    number = next(m.nt.pfn.walk(P.ZEROED))
    d = m.debugger
    _set(m, number, "u3.e1.Modified", 1)
    _set(m, number, "u3.e1.ParityError", 1)
    out = d.execute(f"!pfn {number:x}").splitlines()
    if target == "wrk-x86":     # pre-Vista: "  M" padded to 8 each, names padded to 18
        assert out[3].endswith("  Zeroed     M       P     ")
        assert out[4] == "    Modified ParityError"
    else:
        assert out[3].endswith("  Zeroed     MP      ")
        assert out[4] == "    Modified ParityError    "
    _set(m, number, "u3.e1.ReadInProgress", 1)
    _set(m, number, "u3.e1.WriteInProgress", 1)
    out = d.execute(f"!pfn {number:x}").splitlines()
    if target == "wrk-x86":
        assert out[3].endswith("  Zeroed     R       W       M       P     ")
    else:
        assert out[3].endswith("  Zeroed     RWMP    ")
    assert out[4] == "    ReadInProgress WriteInProgress Modified ParityError"
    _set(m, number, "u3.e1.CacheAttribute", 0)
    line = d.execute(f"!pfn {number:x}").splitlines()[2]
    if target == "wrk-x86":     # the pre-Vista line has no cache attribute
        assert line == "    reference count 0000                                 color 0"
    else:
        assert "   NonCached " in line


def test_color_and_priority_come_from_the_builds_fields():
    """Win7 keeps PageColor in u4 and Priority in u3.e1; the WRK keeps PageColor in
    u3.e1 (and its u4.Priority is not printed by a pre-Vista debugger)."""
    for target, color_path, prio_path in (("win7-x64", "u4.PageColor", "u3.e1.Priority"),
                                          ("wrk-x86", "u3.e1.PageColor", "u4.Priority")):
        m = kdsim.boot(target, ram="256m", scenario="none")
        number = next(m.nt.pfn.walk(P.ZEROED))
        _set(m, number, color_path, 0xA)
        _set(m, number, prio_path, 6)
        line = m.debugger.execute(f"!pfn {number:x}").splitlines()[2]
        if target == "wrk-x86":          # the pre-Vista debugger prints no priority
            assert line.endswith("color A")
        else:
            assert line.endswith("color A   Priority 6")


# -- consistency with !pte and with the memory manager -------------------------------------------

_PTE_AT = re.compile(r"PTE at ([0-9A-F]+)")
_LEAF = re.compile(r"pfn ([0-9a-f]+)\s+\S+\s*$")


def test_pteaddress_is_the_pte_that_pte_shows(machine):
    """For every resident page of the process's buffer, !pfn of the page !pte names has
    the PteAddress !pte shows, and its containing page is the page table's frame."""
    m = machine
    proc, base = _user_page(m)
    m.core.cr3 = proc.cr3
    d = m.debugger
    seen = 0
    for va in range(base, base + 0x10000, 0x1000):
        out = d.execute(f"!pte {va:x}").splitlines()
        if "not valid" in out[3]:
            continue
        pte_at = _PTE_AT.search(out[1]).group(1)
        page = _LEAF.search(out[3]).group(1)
        table = re.findall(r"pfn ([0-9a-f]+)", out[3])[-2]
        lines = d.execute(f"!pfn {page}").splitlines()
        assert lines[1].endswith(f"pteaddress {int(pte_at, 16):0{len(pte_at)}X}")
        assert re.search(f"containing page +{int(table, 16):06X}  Active", lines[3])
        seen += 1
    assert seen >= 1


_PFN = re.compile(
    r"    PFN ([0-9A-F]+) at address ([0-9A-F]+)\n"
    r"    flink       ([0-9A-F]+)  blink / share count ([0-9A-F]+)  pteaddress ([0-9A-F]+)\n"
    r"    reference count ([0-9A-F]{4}) .*color ([0-9A-F]+)(?:   Priority (\d))?\n"
    r"    restore pte ([0-9A-F]+)  containing page +([0-9A-F]+)  (\S+) +(\S*) *\n"
    r"(?:    (.*)| )\n")


def test_values_are_the_memory_managers_pfn_state(machine):
    """Every page on every list head's first entries, and a spread of pages across RAM:
    what !pfn prints is what the memory manager's PFN database holds."""
    m = machine
    nt = m.nt
    db, lay = nt.pfn, nt.pfn.lay
    names = ["Zeroed", "Free", "Standby", "Modified", "ModNoWrt", "Bad", "Active", "Transition"]
    numbers = set(range(0, nt.highest_pfn + 1, 0x3F1)) | set(range(0, 0x400, 7))
    for list_id in range(6):
        numbers |= set(db.walk(list_id, 20))
    size = nt.ts.sizeof("_MMPFN")
    for number in sorted(numbers):
        out = m.debugger.execute(f"!pfn {number:x}")
        g = _PFN.fullmatch(out)
        assert g, out
        assert int(g[1], 16) == number
        assert int(g[2], 16) == nt.profile.address_space.pfn_database + number * size
        assert int(g[3], 16) == int(db.e["u1"][number])
        assert int(g[4], 16) == int(db.e["u2"][number])
        assert int(g[5], 16) == int(db.e["pte"][number])
        assert int(g[6], 16) == db.get(number, lay.reference)
        if nt.profile.version.major >= 6:         # no priority before Vista's debugger
            assert int(g[8]) == db.get(number, lay.priority)
        else:
            assert g[8] is None
        assert int(g[9], 16) == int(db.e["orig"][number])
        assert int(g[10], 16) == db.get(number, lay.frame)
        assert g[11] == names[db.location(number)]
        assert ("M" in g[12]) == bool(db.get(number, lay.modified))


def test_pfn_follows_the_memory_manager_when_a_page_is_trimmed():
    """Drive the memory manager: trim a dirty page (-> modified list), write it out
    (-> standby), repurpose it (-> free), zero it (-> zeroed)."""
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    nt = m.nt
    proc = nt.spawn("test.exe")
    va = nt.vm.allocate(proc, 0x1000).base
    from kdsim.nt.fault import access
    assert access(nt, proc, va, b"dirty", "w")[0] == 0
    number = m.core.translate(va, cr3=proc.cr3).pa >> 12
    pte = nt.profile.pte_address(va)

    def location():
        lines = m.debugger.execute(f"!pfn {number:x}").splitlines()
        return lines[3].split()[6], lines[1]

    loc, line = location()
    assert loc == "Active" and line.endswith(f"pteaddress {pte:016X}")
    nt.trim_page(proc, va)
    assert location()[0] == "Modified"
    assert nt.write_modified() == 1
    assert location()[0] == "Standby"
    assert nt.repurpose(1) == 1
    assert location()[0] == "Free"
    nt.zero_pages()
    assert location()[0] == "Zeroed"
