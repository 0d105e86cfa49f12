"""The WRK's working-set list at c0503000 names the process's own system-range pages
(locked, before FirstDynamic) and every page table of its user range, as the Server 2003
!wsle sample shows; each entry's page has that index in its PFN entry."""
import kdsim
from kdsim.nt.fault import access


def test_wrk_list_holds_the_locked_pages_then_the_page_tables():
    m = kdsim.boot("wrk-x86", ram="256m", scenario="none")
    nt = m.nt
    p = nt.spawn("a.exe")
    assert nt.profile.address_space.working_set_list == 0xC0503000
    m.debugger.execute(f".process /p {p.ep:x}")
    rows = m.debugger.execute("!wsle 3")
    lines = rows.splitlines()
    assert lines[1] == "Working Set @ c0503000"
    assert lines[2].endswith("FirstDynamic        4")
    table = lines[lines.index("Virtual Address           Age  Locked  ReferenceCount") + 1:]
    assert table[:4] == [f"        {va}          0        1        1"
                         for va in ("c0300203", "c0301203", "c0502203", "c0503203")]
    # A new page table joins the list when a fault makes it.
    base = nt.vm.allocate(p, 0x1000, 0x20000000).base
    row = f"        {(nt.profile.pte_address(base) & ~0xFFF) | 0x201:08x}          0        0"
    assert row not in rows
    assert access(nt, p, base, 1)[0] == 0
    assert row in m.debugger.execute("!wsle 3")
    # Each entry's PFN holds its index (the page directory's too); every user page table
    # is listed.
    for va, index in p.ws.entries.items():
        pfn = nt.codec.decode(p.tables.get(va)).pfn
        assert int(nt.pfn.e["u1"][pfn]) == index
    user_tables = {0xC0000000 + (pde << 12) for pde in range(0x200)
                   if p.tables.leaf(pde << 22) is not None}
    assert user_tables <= set(p.ws.entries)
    m.debugger.execute(".process 0")
