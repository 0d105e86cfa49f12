"""EPROCESS counters a debugger prints: NumberOfPrivatePages (``!process``'s "Private")
counted as the WRK counts it, checked against the pages themselves; and the session a
process belongs to (EPROCESS.Session -> _MM_SESSION_SPACE.SessionId)."""
import pytest

import kdsim
from kdsim.nt.vm import VadInfo

TARGETS = ["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"]
PAGE = 0x1000


@pytest.fixture(scope="module", params=TARGETS)
def machine(request):
    return kdsim.boot(request.param, ram="256m")


def private_pages(nt, proc) -> int:
    """The oracle: pages of the process's VADs that are its own -- valid on a page that is
    not a section's (nor the kernel's shared page), in transition from its own PTE, or in
    the paging file."""
    shared = nt.shared_data_pa // PAGE
    count = 0
    for node in proc.vads.nodes_in_order():
        vad = VadInfo(nt, node)
        for va in range(vad.start, vad.end, PAGE):
            d = nt.codec.decode(proc.tables.get(va) or 0)
            if d.kind == "valid":
                count += d.pfn != shared and not nt.pfn.get(d.pfn, nt.pfn.lay.prototype)
            else:
                count += d.kind in ("transition", "pagefile")
    return count


def test_number_of_private_pages_is_every_private_page_wherever_it_is(machine):
    nt = machine.nt
    for proc in nt.process_objects.values():
        assert proc.get_field("NumberOfPrivatePages") == private_pages(nt, proc), proc.name


def test_faults_copies_and_frees_move_the_count(machine):
    nt = machine.nt
    p = nt.spawn("count.exe")
    start = p.get_field("NumberOfPrivatePages")
    base = nt.vm.allocate(p, 0x4000).base
    from kdsim.nt.fault import access, touch
    assert touch(nt, p, base, 0x3000, "r")[0] == 0           # three demand-zero faults
    assert p.get_field("NumberOfPrivatePages") == start + 3
    nt.trim_page(p, base)
    nt.write_modified()
    nt.repurpose(nt.pfn.total(2))                              # paged out: still private
    assert p.get_field("NumberOfPrivatePages") == start + 3
    assert nt.vm.free(p, base, 0x1000, release=False).ok       # decommit the paged-out one
    assert p.get_field("NumberOfPrivatePages") == start + 2
    k32 = nt.image_section("kernel32.dll").base
    assert access(nt, p, k32 + 0x11000, b"w", "w")[0] == 0     # a copy-on-write copy
    assert p.get_field("NumberOfPrivatePages") == start + 3
    assert nt.vm.free(p, base).ok
    assert p.get_field("NumberOfPrivatePages") == start + 1 == private_pages(nt, p)
    nt.terminate(p)


def test_process_private_line(machine):
    d = machine.debugger
    p = next(iter(nt_procs(machine)))
    out = d.execute(f"!process {p.ep:x} 1")
    assert f" Private {p.get_field('NumberOfPrivatePages')}. " in out


def nt_procs(machine):
    return [p for p in machine.nt.process_objects.values()]


EXPECTED_SESSIONS = {
    "win7": {"System": "none", "smss.exe": "none", "csrss.exe": {"0", "1"},
             "wininit.exe": "0", "services.exe": "0", "lsass.exe": "0",
             "svchost.exe": "0", "explorer.exe": "1", "notepad.exe": "1"},
    "wrk": {"System": "none", "MemoryAlloc.exe": "0"},
}


def test_session_ids(machine):
    import re
    out = machine.debugger.execute("!process 0 0")
    found = re.findall(r"SessionId: (\w+)  Cid: \w+ .*\n(?:.*\n)*?    Image: (\S+)", out)
    want = EXPECTED_SESSIONS["wrk" if machine.target == "wrk-x86" else "win7"]
    assert {name for _, name in found} == set(want)
    csrss = set()
    for sid, name in found:
        if name == "csrss.exe":
            csrss.add(sid)
        else:
            assert sid == want[name], name
    if csrss:
        assert csrss == want["csrss.exe"]


def test_session_space_counts_its_processes(machine):
    nt, ts = machine.nt, machine.nt.ts
    for sid, va in nt.session_spaces.items():
        members = [p for p in nt.process_objects.values() if p.session == sid]
        assert ts.field("_MM_SESSION_SPACE", "SessionId").read(nt.kmem, va) == sid
        assert ts.field("_MM_SESSION_SPACE", "ReferenceCount").read(nt.kmem, va) == len(members)
        head = va + ts.offset_of("_MM_SESSION_SPACE", "ProcessList")
        links, entry = [], nt.read_ptr(head)
        while entry != head:
            links.append(entry - ts.offset_of("_EPROCESS", "SessionProcessLinks"))
            entry = nt.read_ptr(entry)
        assert links == [p.ep for p in members]
        for p in members:
            assert p.get_field("Session") == va
            assert p.get_field("Flags") >> 16 & 1         # ProcessInSession
    for p in nt.process_objects.values():
        if p.session is None:
            assert p.get_field("Session") == 0 and not p.get_field("Flags") >> 16 & 1


def test_a_process_page_gets_the_process_page_priority(machine):
    """Windows 7: EPROCESS.DefaultPagePriority is 5 (a normal process) and the pages made
    for the process carry it (!pfn "Priority 5"); the WRK has no per-process page
    priority, its pages keep MI_DEFAULT_PFN_PRIORITY (3)."""
    nt = machine.nt
    p = next(p for p in nt.process_objects.values() if p.name != "System")
    want = 3 if machine.target == "wrk-x86" else 5
    if machine.target != "wrk-x86":
        assert p.get_field("DefaultPagePriority") == 5
    peb = nt.codec.decode(p.tables.get(p.peb))
    assert nt.pfn.get(peb.pfn, nt.pfn.lay.priority) == want
    if machine.target == "wrk-x86":      # the Server 2003-era !pfn prints no priority
        entry = nt.symbols["MmPfnDatabase"]
        out = machine.debugger.execute(
            f"dt nt!_MMPFN poi({entry:x})+{peb.pfn:x}*0n{nt.ts.sizeof('_MMPFN')} u4.Priority")
        assert out == "   +0x014 u4          : \n      +0x000 Priority    : 0y011\n"
    else:
        assert f"Priority {want}\n" in machine.debugger.execute(f"!pfn {peb.pfn:x}")
