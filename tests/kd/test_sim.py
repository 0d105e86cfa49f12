"""!sim: kdsim's extension that drives the machine.  Every result is checked through
ordinary debugger commands (!pte, !vad, !pfn, !process, db); the memory manager is used
only as an oracle (its page tables, its process table, the invariant checker)."""
import random
import re

import pytest

import kdsim
from kdsim.kd.commands.sim import SUBCOMMANDS
from kdsim.kd.registry import REGISTRY
from kdsim.kd.session import Debugger
from kdsim.nt.invariants import check

EP = {"win7-x64": "fffffa8003000860", "win7-x86": "860004e8", "win7-x86pae": "86001508"}
BUF = {"win7-x64": "00000000`00210000", "win7-x86": "00210000", "win7-x86pae": "00210000"}


def boot(target):
    m = kdsim.boot(target, ram="256m", scenario="none")
    return m, m.debugger.execute


def consistent(m) -> bool:
    return check(m.core, m.nt.profile, m.nt.symbols) == []


def pte_lines(run, va: str) -> list[str]:
    return [line.strip() for line in run(f"!pte {va}").splitlines()]


def leaf_pfn(run, va: str) -> int:
    """The PFN !pte shows for a valid page (the last column of its last line)."""
    last = run(f"!pte {va}").splitlines()[-1]
    found = re.findall(r"pfn ([0-9a-f]+)\s+\S+V$", last)
    assert found, last
    return int(found[-1], 16)


def oracle_pte(m, pid: int, va: int):
    proc = m.nt.process_objects[pid]
    return m.nt.codec.decode(proc.tables.get(va) or 0)


# -- private memory: valid, transition, paging file, and back ------------------------------

@pytest.mark.parametrize("target", ["win7-x64", "win7-x86"])
def test_alloc_commit_then_touch_gives_a_valid_pte_and_a_vad(target):
    m, run = boot(target)
    assert run("!sim.spawn notepad.exe") == \
        f"Created notepad.exe: PROCESS {EP[target]}  Cid: 0100\n"
    run(f".process /p {EP[target]}")
    assert run("!sim.alloc notepad.exe 10000 commit") == \
        f"NtAllocateVirtualMemory: {BUF[target]} size 0x10000 MEM_COMMIT|MEM_RESERVE " \
        "PAGE_READWRITE\n"
    assert run("!sim.touch notepad.exe 210000 3000 w") == \
        f"Touched 3 pages from {BUF[target]} (write); page faults: demand zero 3\n"
    assert leaf_pfn(run, "210000") == oracle_pte(m, 0x100, 0x210000).pfn
    assert pte_lines(run, "212000")[-1].endswith("---DA--UW-V" if target == "win7-x64" else
                                                  "---DA--UWEV")
    vad = run("!vad 210000").splitlines()
    assert re.fullmatch(r"[0-9a-f]+ \( \d\)\s+210\s+21f\s+16 Private\s+READWRITE", vad[1]), vad
    assert consistent(m)


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86", "win7-x86pae"])
def test_trim_writeout_pressure_then_touch_brings_the_bytes_back(target):
    m, run = boot(target)
    run("!sim.spawn notepad.exe")
    run(f".process /p {EP[target]}")
    run("!sim.alloc notepad.exe 10000")
    assert run('!sim.write notepad.exe 210000 "Hello from !sim"') == \
        f"Wrote 0xf bytes at {BUF[target]}; page faults: demand zero 1\n"
    pfn = leaf_pfn(run, "210000")
    assert run("!sim.trim notepad.exe 210000") == \
        "Trimmed 1 page from notepad.exe's working set: 1 to the modified list\n"
    lines = pte_lines(run, "210000")
    assert lines[-3].endswith("not valid")
    assert lines[-2:] == [f"Transition: {pfn:x}", "Protect: 4 - ReadWrite"]
    assert run("!sim.writeout") == \
        "Modified page writer: 1 page written, now on the standby list\n"
    assert pte_lines(run, "210000")[-2] == f"Transition: {pfn:x}"     # still in memory
    assert "Standby" in run(f"!pfn {pfn:x}")
    assert run("!sim.pressure 1") == \
        "Memory pressure: 1 standby page repurposed, now on the free list\n"
    lines = pte_lines(run, "210000")
    assert lines[-4].endswith("not valid")
    assert lines[-3:] == ["PageFile:  0", "Offset: 1", "Protect: 4 - ReadWrite"]
    assert consistent(m)
    assert run("!sim.touch notepad.exe 210000") == \
        f"Touched 1 page from {BUF[target]} (read); page faults: hard fault 1\n"
    assert leaf_pfn(run, "210000") == oracle_pte(m, 0x100, 0x210000).pfn
    assert run("db 210000 L10") == \
        f"{BUF[target]}  48 65 6c 6c 6f 20 66 72-6f 6d 20 21 73 69 6d 00  Hello from !sim.\n"
    assert run("!sim.read notepad.exe 210000 5") == \
        f"Read 0x5 bytes at {BUF[target]}: 48 65 6c 6c 6f; no page faults\n"
    assert consistent(m)


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86"])
def test_a_trimmed_page_comes_back_by_a_soft_fault(target):
    m, run = boot(target)
    run("!sim.spawn notepad.exe")
    run("!sim.alloc notepad.exe 10000")
    run("!sim.touch notepad.exe 210000 2000 r")
    # Demand-zero pages are modified from birth, even when only read: the modified list.
    assert run("!sim.trim notepad.exe 210000 2000") == \
        "Trimmed 2 pages from notepad.exe's working set: 2 to the modified list\n"
    assert run("!sim.read notepad.exe 211000 1") == \
        f"Read 0x1 bytes at {BUF[target][:-4]}1000: 00; page faults: transition (modified) 1\n"
    assert run("!sim.writeout") == \
        "Modified page writer: 1 page written, now on the standby list\n"
    assert run("!sim.read notepad.exe 210000 1") == \
        f"Read 0x1 bytes at {BUF[target]}: 00; page faults: transition 1\n"
    assert consistent(m)


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86"])
def test_a_touch_of_reserved_memory_is_an_access_violation(target):
    m, run = boot(target)
    run("!sim.spawn notepad.exe")
    assert run("!sim.alloc notepad.exe 20000 reserve") == \
        f"NtAllocateVirtualMemory: {BUF[target]} size 0x20000 MEM_RESERVE PAGE_READWRITE\n"
    assert run("!sim.touch notepad.exe 210000") == \
        f"Touch (read) failed at {BUF[target]} after 0 pages: " \
        "STATUS_ACCESS_VIOLATION (0xC0000005); no page faults\n"
    assert run("!sim.alloc notepad.exe 1000 211000 commit PAGE_READONLY") == \
        f"NtAllocateVirtualMemory: {BUF[target][:-4]}1000 size 0x1000 MEM_COMMIT PAGE_READONLY\n"
    assert run("!sim.touch notepad.exe 211000 1 w").startswith("Touch (write) failed at ")
    assert run("!sim.touch notepad.exe 211000").endswith("page faults: demand zero 1\n")
    assert run("!sim.read notepad.exe 211ff0 20") == \
        f"Read failed at {BUF[target][:-4]}2000 after 0x10 bytes: STATUS_ACCESS_VIOLATION " \
        "(0xC0000005); no page faults\n"
    assert consistent(m)


def test_ntstatus_names_on_failure():
    m, run = boot("win7-x64")
    run("!sim.spawn notepad.exe")
    run("!sim.alloc notepad.exe 10000")
    expected = {
        "!sim.alloc notepad.exe 1000 210000":
            "NtAllocateVirtualMemory failed: STATUS_CONFLICTING_ADDRESSES (0xC0000018)\n",
        "!sim.alloc notepad.exe 1000 0 PAGE_READWRITE|PAGE_NOACCESS":
            "NtAllocateVirtualMemory failed: STATUS_INVALID_PAGE_PROTECTION (0xC0000045)\n",
        "!sim.alloc notepad.exe 1000 0 PAGE_WRITECOPY":
            "NtAllocateVirtualMemory failed: STATUS_INVALID_PAGE_PROTECTION (0xC0000045)\n",
        "!sim.free notepad.exe 211000":
            "NtFreeVirtualMemory failed: STATUS_FREE_VM_NOT_AT_BASE (0xC000009F)\n",
        "!sim.free notepad.exe 400000":
            "NtFreeVirtualMemory failed: STATUS_MEMORY_NOT_ALLOCATED (0xC00000A0)\n",
        "!sim.protect notepad.exe 400000 1000 PAGE_READONLY":
            "NtProtectVirtualMemory failed: STATUS_CONFLICTING_ADDRESSES (0xC0000018)\n",
        "!sim.unmap notepad.exe 210000":
            "NtUnmapViewOfSection failed: STATUS_NOT_MAPPED_VIEW (0xC0000019)\n",
    }
    for command, text in expected.items():
        assert run(command) == text, command
    assert consistent(m)


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86"])
def test_protect_and_free_show_in_pte_and_vad(target):
    m, run = boot(target)
    run("!sim.spawn notepad.exe")
    run(f".process /p {EP[target]}")
    run("!sim.alloc notepad.exe 4000")
    assert run("!sim.protect notepad.exe 211000 1000 PAGE_READONLY") == \
        f"NtProtectVirtualMemory: {BUF[target][:-4]}1000 size 0x1000 PAGE_READONLY, " \
        "was PAGE_READWRITE\n"
    assert pte_lines(run, "211000")[-2:] == ["DemandZero", "Protect: 1 - ReadOnly"]
    assert run("!sim.write notepad.exe 211000 41").startswith("Write of 0x1 bytes at ")
    assert run("!sim.protect notepad.exe 212000 1000 PAGE_READWRITE|PAGE_GUARD").endswith(
        "PAGE_READWRITE|PAGE_GUARD, was PAGE_READWRITE\n")
    assert run("!sim.touch notepad.exe 212000") == \
        f"Touch (read) failed at {BUF[target][:-4]}2000 after 0 pages: " \
        "STATUS_GUARD_PAGE_VIOLATION (0x80000001); no page faults\n"
    assert run("!sim.touch notepad.exe 212000").endswith("demand zero 1\n")   # guard gone
    assert run("!sim.free notepad.exe 213000 1000 decommit") == \
        f"NtFreeVirtualMemory: {BUF[target][:-4]}3000 size 0x1000 MEM_DECOMMIT\n"
    assert run("!vad 210000").splitlines()[1].split()[3:7] == ["210", "213", "3", "Private"]
    assert run("!sim.free notepad.exe 210000") == \
        f"NtFreeVirtualMemory: {BUF[target]} size 0x4000 MEM_RELEASE\n"
    assert " 210 " not in run("!vad")
    assert consistent(m)


# -- processes -------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["win7-x64", "win7-x86"])
def test_spawn_lists_the_process_and_kill_removes_it(target):
    m, run = boot(target)
    assert run("!process 0 0 calc.exe") == "**** NT ACTIVE PROCESS DUMP ****\n"
    assert run("!sim.spawn calc.exe comdlg32.dll") == \
        f"Created calc.exe: PROCESS {EP[target]}  Cid: 0100\n"
    listing = run("!process 0 0 calc.exe")
    assert f"PROCESS {EP[target]}" in listing and "Image: calc.exe" in listing
    # Image views: calc.exe, ntdll, kernel32, KernelBase and comdlg32.
    assert run(f".process /p {EP[target]}; !vad").count(" Mapped  Exe ") == 5
    assert [p.name for p in m.nt.process_objects.values()] == ["calc.exe"]
    assert run("!sim.kill 100") == f"Terminated calc.exe: PROCESS {EP[target]}  Cid: 0100\n"
    assert run("!process 0 0 calc.exe") == "**** NT ACTIVE PROCESS DUMP ****\n"
    assert m.nt.process_objects == {}
    assert consistent(m)


def test_a_process_is_named_by_image_pid_or_eprocess():
    m, run = boot("win7-x64")
    run("!sim.spawn svchost.exe")
    run("!sim.spawn svchost.exe")
    run("!sim.spawn lsass.exe")
    lsass = [p for p in m.nt.process_objects.values() if p.name == "lsass.exe"][0]
    for name in ("lsass.exe", "LSASS.EXE", "lsass", f"{lsass.pid:x}", f"0n{lsass.pid}",
                 f"{lsass.ep:x}", "@$proc"):
        assert run(f"!sim.trim {name}").startswith("Trimmed "), name
    first, second = [p for p in m.nt.process_objects.values() if p.name == "svchost.exe"]
    assert run("!sim.trim svchost.exe") == \
        f"kdsim: 2 processes run svchost.exe (Cid {first.pid:04x}, {second.pid:04x}); " \
        "name one by Cid or EPROCESS address\n"
    assert run("!sim.kill System") == "kdsim: the System process cannot be terminated\n"
    assert run("!sim.alloc 4 1000") == "kdsim: the System process has no user address space\n"
    assert run("!sim.kill 1234") == \
        "kdsim: 1234 is not a process ID or an EPROCESS address (!process 0 0 lists them)\n"
    assert run("!sim.kill nosuch.exe") == \
        "kdsim: no process is named 'nosuch.exe' (!process 0 0 lists them)\n"


# -- sections --------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["win7-x64", "win7-x86"])
def test_one_section_in_two_processes_is_one_pfn_with_share_count_2(target):
    m, run = boot(target)
    run("!sim.spawn a.exe")
    run("!sim.spawn b.exe")
    view = {"win7-x64": "000007ff`fffd0000", "win7-x86": "7ffd0000"}[target]
    va = view.replace("`", "")
    assert run("!sim.map a.exe SharedMemory 2000") == \
        f"Created SharedMemory (pagefile-backed section, 2 pages) and mapped a view at {view}\n"
    assert run("!sim.map b.exe sharedmemory") == \
        f"Mapped a view of SharedMemory (pagefile-backed section, 2 pages) at {view}\n"
    assert run(f"!sim.write a.exe {va} \"shared\"") == \
        f"Wrote 0x6 bytes at {view}; page faults: dirty bit 1, prototype (demand zero) 1\n"
    assert run(f"!sim.touch b.exe {va}") == \
        f"Touched 1 page from {view} (read); page faults: prototype (resident) 1\n"
    eps = {p.name: f"{p.ep:x}" for p in m.nt.process_objects.values()}
    run(f".process /p {eps['a.exe']}")
    in_a = leaf_pfn(run, va)
    run(f".process /p {eps['b.exe']}")
    in_b = leaf_pfn(run, va)
    assert in_a == in_b
    assert "share count 00000002" in run(f"!pfn {in_a:x}")
    assert run(f"da {va}").startswith(f"{view}  \"shared\"")          # b sees a's bytes
    assert "Pagefile-backed section" in run(f"!vad {va}")
    assert consistent(m)
    assert run(f"!sim.unmap a.exe {va}") == f"Unmapped the view of SharedMemory at {view}\n"
    assert "share count 00000001" in run(f"!pfn {in_a:x}")
    run(f"!sim.unmap b.exe {va}")
    assert consistent(m)


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86"])
def test_a_data_file_view_reads_the_file_and_a_dll_maps_at_its_base(target):
    m, run = boot(target)
    run("!sim.spawn a.exe")
    out = run("!sim.map a.exe C:\\data\\notes.txt 3000")
    assert out.startswith("Created C:\\data\\notes.txt (data file section, 3 pages) and "
                          "mapped a view at ")
    base = int(out.split()[-1].replace("`", ""), 16)
    assert run(f"!sim.read a.exe {base + 0x1000:x} 4").endswith(
        "43 3a 5c 64; page faults: prototype (read from the file) 1\n")      # "C:\\d"
    dump = run(f".process /p @$proc; db {base + 0x1000:x} L20").splitlines()
    assert [line[-16:] for line in dump[-2:]] == ["C:\\data\\notes.tx", "t page 1..C:\\dat"]
    dll = run("!sim.map a.exe shell32.dll")
    assert dll.startswith("Created shell32.dll (image section, ")
    assert run("!sim.map a.exe shell32.dll pagefile") == \
        "kdsim: shell32.dll is an image section, not a pagefile-backed section\n"
    assert consistent(m)


# -- the kernel's threads and the counters ---------------------------------------------------

def demand_zero_count(run) -> int:
    line = [x for x in run("!sim.faults").splitlines() if x.endswith("  demand zero")]
    return int(line[0].split()[0])


def test_faults_counts_change():
    m, run = boot("win7-x86")
    out = run("!sim.faults").splitlines()
    assert out[0] == "Page faults since boot, by how they were resolved:"
    assert [line[12:] for line in out[1:]] == [
        "demand zero", "dirty bit", "transition", "transition (modified)", "hard fault",
        "copy on write", "prototype (resident)", "prototype (transition)",
        "prototype (demand zero)", "prototype (read from the file)",
        "prototype (read from the paging file)", "resolved in all",
        "guard page (STATUS_GUARD_PAGE_VIOLATION)",
        "access violation (STATUS_ACCESS_VIOLATION)", "unsupported (STATUS_IN_PAGE_ERROR)"]
    run("!sim.spawn a.exe")
    before = demand_zero_count(run)
    run("!sim.alloc a.exe 8000")
    run("!sim.touch a.exe 210000 8000")
    assert demand_zero_count(run) == before + 8
    assert demand_zero_count(run) == m.nt.faults.counts["demand zero"]


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86"])
def test_zero_page_thread_and_pressure_move_pages_between_lists(target):
    m, run = boot(target)
    run("!sim.spawn a.exe")
    run("!sim.alloc a.exe 10000")
    run("!sim.touch a.exe 210000 4000")
    run("!sim.trim a.exe 210000 4000")
    run("!sim.writeout")
    assert run("!sim.pressure 10") == "Memory pressure: 4 standby pages repurposed, now on " \
                                      "the free list (the standby list is empty)\n"
    free = m.nt.pfn.total(1)
    assert run("!sim.zero") == \
        f"Zero page thread: {free} pages zeroed, now on the zeroed list\n"
    assert m.nt.pfn.total(1) == 0
    assert run("!sim.zero 5") == "Zero page thread: 0 pages zeroed, now on the zeroed list\n"
    assert consistent(m)


# -- arguments and help ----------------------------------------------------------------------

def test_bad_arguments_get_one_line_errors():
    m, run = boot("win7-x64")
    run("!sim.spawn a.exe")
    cases = {
        "!sim.alloc": "Usage: !sim.alloc Process Size [Address] [reserve|commit] [Protection]\n",
        "!sim.alloc a.exe": "Usage: !sim.alloc Process Size [Address] [reserve|commit] "
                            "[Protection]\n",
        "!sim.touch a.exe": "Usage: !sim.touch Process Address [Size] [r|w|x]\n",
        "!sim.pressure": "Usage: !sim.pressure Pages\n",
        "!sim.spawn": "Usage: !sim.spawn Image [Dll ...]\n",
        "!sim.alloc a.exe 1000 PAGE_FOO": "kdsim: unknown protection 'PAGE_FOO'\n",
        "!sim.alloc a.exe zz": "Couldn't resolve error at 'zz'\n",
        "!sim.spawn foo.dll": "kdsim: foo.dll is a DLL; !sim.spawn runs an executable\n",
        "!sim.spawn b.exe kernel32": "kdsim: kernel32 is not a DLL name (name.dll)\n",
        "!sim.spawn a<b.exe": "kdsim: 'a<b.exe' is not a file name for an image\n",
        "!sim.map a.exe sh*m": "kdsim: 'sh*m' is not a section or file name\n",
        "!sim.write a.exe 10000 41 100":
            "kdsim: 100 is not a byte (00-ff); !sim.write takes bytes or a \"string\"\n",
        "!sim.read a.exe 10000 0": "kdsim: !sim.read reads 1 to 0x100000 bytes\n",
        "!sim.nosuch": "No export nosuch found\n",
        "!sim.touch a.exe 210000 1000 w r":
            " " * 38 + "^ Syntax error in '!sim.touch a.exe 210000 1000 w r'\n",
        "!sim.faults now": " " * 19 + "^ Syntax error in '!sim.faults now'\n",
        "!sim.alloc a.exe 1000 0 4 PAGE_READONLY":
            " " * 33 + "^ Syntax error in '!sim.alloc a.exe 1000 0 4 PAGE_READONLY'\n",
        "!sim.kill a.exe 1": " " * 23 + "^ Syntax error in '!sim.kill a.exe 1'\n",
    }
    for command, text in cases.items():
        assert run(command) == text, command
    assert consistent(m)


def test_nothing_escapes_from_random_command_lines():
    """Random and mutated !sim lines on a busy machine: never an internal error, and the
    machine stays consistent."""
    m, run = boot("win7-x86")
    rng = random.Random(5)
    run("!sim.spawn a.exe user32.dll")
    run("!sim.spawn b.exe")
    words = ["a.exe", "b.exe", "100", "210000", "211000", "7ffd0000", "1000", "3000", "0",
             "commit", "reserve", "release", "decommit", "r", "w", "x", "PAGE_READONLY",
             "PAGE_READWRITE|PAGE_GUARD", "PAGE_NOACCESS", "shm", "data.txt", "\"hi\"", "41",
             "-1", "ffffffff", "(", "zz", "3"]
    for i in range(250):
        name = rng.choice(list(SUBCOMMANDS))
        line = f"!sim.{name} " + " ".join(rng.choice(words) for _ in range(rng.randrange(5)))
        out = run(line)
        assert "internal error" not in out and out.endswith("\n"), (line, out)
        if name not in ("faults", "help"):
            assert out.count("\n") == 1, (line, out)
    assert consistent(m)


def test_help_explains_the_extension_and_lists_its_commands(x64):
    page = x64.debugger.execute(".help !sim")
    assert page == x64.debugger.execute("!sim.help") == x64.debugger.execute(".help sim")
    assert page.startswith("!sim is kdsim's own extension (WinDbg has none like it)")
    for syntax, summary in SUBCOMMANDS.values():
        assert f"  {syntax}\n        {summary}\n" in page
    assert x64.debugger.execute("!sim") == page
    assert x64.debugger.execute(".help !sim.alloc") == x64.debugger.execute(".hh !sim.alloc")
    assert x64.debugger.execute(".help dd") == x64.debugger.execute(".hh dd")
    assert x64.debugger.execute(".help") == x64.debugger.execute(".hh")


def test_every_sim_command_is_a_kdsim_extension_in_the_table():
    names = {name for cmd in REGISTRY.commands for name in cmd.names if name.startswith("!sim")}
    assert names == {"!sim"} | {f"!sim.{n}" for n in SUBCOMMANDS}
    assert all(REGISTRY.by_name[n].kdsim_only for n in names)
    assert all(REGISTRY.by_name[f"!sim.{n}"].syntax == s for n, (s, _) in SUBCOMMANDS.items())


def test_a_target_without_a_machine_cannot_be_driven(x86):
    d = Debugger(x86.debugger.target)          # a debugger with no !sim handle (a dump's)
    assert d.execute("!sim.spawn a.exe") == \
        "kdsim: !sim drives an emulated machine; this target has none (a dump cannot be " \
        "driven)\n"
