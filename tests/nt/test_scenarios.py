"""Scenarios run at boot: the default machine and the WRK workshop's, checked in guest memory."""

import pytest

import kdsim
from tests.nt.helpers import ram_digest
from kdsim.nt.guest import KernelMemory
from kdsim.nt.invariants import check
from kdsim.nt.pfn import FREE, MODIFIED, STANDBY
from kdsim.nt.scenario import ScenarioError

DEFAULT_NAMES = ["System", "smss.exe", "csrss.exe", "wininit.exe", "csrss.exe",
                 "services.exe", "lsass.exe", "svchost.exe", "svchost.exe", "explorer.exe",
                 "notepad.exe"]


def process_names(m):
    """Image names along PsActiveProcessHead, read from guest memory."""
    ts, k = m.nt.ts, KernelMemory(m.core)
    head = m.nt.symbols["PsActiveProcessHead"]
    links = ts.offset_of("_EPROCESS", "ActiveProcessLinks")
    name_off = ts.offset_of("_EPROCESS", "ImageFileName")
    out, cur = [], m.nt.read_ptr(head)
    while cur != head:
        out.append(k.read(cur - links + name_off, 15).split(b"\0")[0].decode())
        cur = m.nt.read_ptr(cur)
    return out


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86pae", "win7-x86"])
def test_default_scenario_has_the_usual_processes_and_every_page_state(target):
    m = kdsim.boot(target, ram="512m")
    nt = m.nt
    assert process_names(m) == DEFAULT_NAMES
    assert check(m.core, nt.profile, nt.symbols) == []
    assert nt.pfn.total(STANDBY) >= 1 and nt.pfn.total(MODIFIED) >= 1
    assert nt.pfn.total(FREE) >= 16            # setup.exe's and lsass's released pages
    notepad = nt.scenario["processes"]["notepad"]
    buf = nt.scenario["names"]["np_buf"]
    t = m.core.translate(buf, cr3=notepad.cr3)
    assert m.core.read_physical(t.pa, 22) == b"Hello from notepad.exe"
    kinds = {nt.codec.decode(notepad.tables.get(buf + i * 0x1000) or 0).kind
             for i in range(16)}
    assert kinds == {"valid", "pagefile", "transition", "zero"}
    # A clean page on the standby list: read-faulted pages are born modified, so this
    # one was written out, read back by a hard fault and trimmed again.
    standby = nt.codec.decode(notepad.tables.get(buf + 0x8000))
    assert nt.pfn.location(standby.pfn) == STANDBY
    assert nt.codec.decode(int(nt.pfn.e["orig"][standby.pfn])).kind == "pagefile"
    read_back = nt.codec.decode(notepad.tables.get(buf + 0x9000))
    assert read_back.kind == "valid" and not read_back.dirty
    # Committed on a reservation and never touched: demand-zero PTEs.
    explorer = nt.scenario["processes"]["explorer"]
    heap = nt.scenario["names"]["ex_heap"]
    assert nt.codec.decode(explorer.tables.get(heap + 0x1000)).kind == "demand_zero"
    svchost = nt.scenario["processes"]["svchost1"]
    sv_buf = nt.scenario["names"]["sv1_buf"]
    paged_out = nt.codec.decode(svchost.tables.get(sv_buf))
    assert paged_out.kind == "pagefile"
    assert nt.paging_files[0].read(paged_out.page_file_high).startswith(b"paged out and back")
    # Shared pages: user32's header is one PFN in explorer and notepad.
    user32 = nt.sections["user32.dll"].base
    explorer = nt.scenario["processes"]["explorer"]
    pages = {m.core.translate(user32, cr3=p.cr3).pa for p in (explorer, notepad)}
    assert len(pages) == 1
    assert int(nt.pfn.e["u2"][pages.pop() >> 12]) == 2
    assert nt.codec.decode(notepad.tables.get(user32 + 0x1000)).kind == "prototype"
    # Shared memory between services and svchost.
    services = nt.scenario["processes"]["services"]
    svchost = nt.scenario["processes"]["svchost0"]
    a = m.core.translate(nt.scenario["names"]["shm_services"], cr3=services.cr3).pa
    b = m.core.translate(nt.scenario["names"]["shm_svchost"], cr3=svchost.cr3).pa
    assert a == b and m.core.read_physical(a, 7) == b"service"


def test_workshop_scenario_reserves_and_writes_0x340000_in_memoryalloc():
    m = kdsim.boot("wrk-x86", ram="256m")
    nt = m.nt
    assert process_names(m) == ["System", "MemoryAlloc.exe"]
    proc = nt.scenario["processes"]["MemoryAlloc"]
    vad = nt.vm.vad_at(proc, 0x340000)
    assert (vad.start, vad.end, vad.private) == (0x340000, 0x350000, 1)
    t = m.core.translate(0x340000, cr3=proc.cr3)
    assert m.core.read_physical(t.pa, 1) == b"A"
    assert check(m.core, nt.profile, nt.symbols) == []


def test_workshop_scenario_is_only_for_wrk():
    with pytest.raises(ScenarioError, match="wrk-x86"):
        kdsim.boot("win7-x64", ram="256m", scenario="workshop")


def test_unknown_scenario_and_scenario_files(tmp_path):
    with pytest.raises(ScenarioError, match="unknown scenario"):
        kdsim.boot("win7-x64", ram="256m", scenario="nonesuch")
    f = tmp_path / "mine.toml"
    f.write_text('[[step]]\nop = "spawn"\nimage = "a.exe"\nas = "a"\n'
                 '[[step]]\nop = "alloc"\nprocess = "a"\nsize = 4096\naddress = 0x500000\n'
                 '[[step]]\nop = "touch"\nprocess = "a"\naddress = 0x500000\n')
    m = kdsim.boot("win7-x86", ram="256m", scenario=str(f))
    assert process_names(m) == ["System", "a.exe"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[step]]\nop = "spawn"\nimage = "a.exe"\nas = "a"\n'
                   '[[step]]\nop = "touch"\nprocess = "a"\naddress = 0x500000\n')
    with pytest.raises(ScenarioError, match="step 2 .*STATUS_ACCESS_VIOLATION"):
        kdsim.boot("win7-x86", ram="256m", scenario=str(bad))


def test_default_scenario_is_deterministic():
    first = ram_digest("win7-x86pae", "256m", "default")
    assert ram_digest("win7-x86pae", "256m", "default") == first
