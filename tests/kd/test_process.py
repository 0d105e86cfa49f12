"""!process: every process on PsActiveProcessHead, by image name, by address or PID."""
import pytest

import kdsim
from kdsim.nt.fault import access
from kdsim.nt.vm import VadInfo


@pytest.fixture(scope="module")
def wrk():
    return kdsim.boot("wrk-x86", ram="256m")


def test_process_0_0_on_the_workshop_machine(wrk):
    assert wrk.debugger.execute("!process 0 0") == (
        "**** NT ACTIVE PROCESS DUMP ****\n"
        "PROCESS fb0001a0  SessionId: none  Cid: 0004    Peb: 00000000  ParentCid: 0000\n"
        "    DirBase: 01000000  ObjectTable: 00000000  HandleCount:   0.\n"
        "    Image: System\n"
        "\n"
        "PROCESS fb000490  SessionId: 0  Cid: 0100    Peb: 7ffdf000  ParentCid: 0004\n"
        "    DirBase: 00005000  ObjectTable: 00000000  HandleCount:   0.\n"
        "    Image: MemoryAlloc.exe\n"
        "\n")


def test_process_by_image_name_address_and_pid(wrk):
    d = wrk.debugger
    by_name = d.execute("!process 0 0 memoryalloc.exe")
    assert sum(line.startswith("PROCESS ") for line in by_name.splitlines()) == 1
    assert "Image: MemoryAlloc.exe" in by_name
    single = "PROCESS fb000490  SessionId: 0  Cid: 0100    Peb: 7ffdf000  ParentCid: 0004\n" \
        "    DirBase: 00005000  ObjectTable: 00000000  HandleCount:   0.\n" \
        "    Image: MemoryAlloc.exe\n"
    assert d.execute("!process fb000490 0") == single
    assert d.execute("!process 100 0") == single


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86pae"])
def test_process_0_0_lists_exactly_the_processes_on_psactiveprocesshead(target):
    m = kdsim.boot(target, ram="512m")
    out = m.debugger.execute("!process 0 0")
    listed = [int(line.split()[1], 16) for line in out.splitlines()
              if line.startswith("PROCESS ")]
    assert listed == m.nt.processes              # the EPROCESSes, in list order
    if m.nt.ptr == 8:
        assert "PROCESS fffffa80" in out and "\n    SessionId: none  Cid: 0004" in out


# -- flags 1 and 7: the memory figures and the (empty) thread part --------------------------

def _x64_block(ep, cid, ppid, dirbase, image, vadroot, vads, ws, peak, vsize, faults, commit,
               session="none", private=0):
    return (
        f"PROCESS {ep}\n"
        f"    SessionId: {session}  Cid: {cid}    Peb: {'00000000' if cid == '0004' else '7fffffdf000'}"
        f"  ParentCid: {ppid}\n"
        f"    DirBase: {dirbase}  ObjectTable: 0000000000000000  HandleCount:   0.\n"
        f"    Image: {image}\n"
        f"    VadRoot {vadroot} Vads {vads} Clone 0 Private {private}. Modified 0. Locked 0.\n"
        "    DeviceMap 0000000000000000\n"
        "    Token                             0000000000000000\n"
        "    ElapsedTime                       00:00:00.000\n"
        "    UserTime                          00:00:00.000\n"
        "    KernelTime                        00:00:00.000\n"
        "    QuotaPoolUsage[PagedPool]         0\n"
        "    QuotaPoolUsage[NonPagedPool]      0\n"
        f"    Working Set Sizes (now,min,max)  ({ws}, 50, 345) ({ws * 4}KB, 200KB, 1380KB)\n"
        f"    PeakWorkingSetSize                {peak}\n"
        f"    VirtualSize                       {vsize} Mb\n"
        f"    PeakVirtualSize                   {vsize} Mb\n"
        f"    PageFaultCount                    {faults}\n"
        "    MemoryPriority                    BACKGROUND\n"
        "    BasePriority                      0\n"
        f"    CommitCharge                      {commit}\n")


def test_process_0_1_on_win7_x64():
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    m.nt.spawn("calc.exe")
    assert m.debugger.execute("!process 0 1") == (
        "**** NT ACTIVE PROCESS DUMP ****\n"
        + _x64_block("fffffa8003000290", "0004", "0000", "03200000", "System",
                     "0000000000000000", 0, 0, 0, 0, 0, 0) + "\n"
        + _x64_block("fffffa8003000860", "0100", "0004", "00007000", "calc.exe",
                     "fffffa8003000d70", 9, 8, 8, 2, 7, 16, session="0", private=4) + "\n")


@pytest.fixture(scope="module")
def win7():
    return kdsim.boot("win7-x64", ram="256m")


def test_process_address_7_on_win7_x64(win7):
    notepad = win7.nt.scenario["processes"]["notepad"]
    assert notepad.ep == 0xfffffa800300c040
    assert win7.debugger.execute("!process fffffa800300c040 7") == _x64_block(
        "fffffa800300c040", "02b8", "0278", "00136000", "notepad.exe", "fffffa800300cbc0",
        13, 19, 23, 2, 24, 38, session="1", private=16) + "\nNo active threads\n"


WRK_SYSTEM_1 = (
    "PROCESS fb0001a0  SessionId: none  Cid: 0004    Peb: 00000000  ParentCid: 0000\n"
    "    DirBase: 01000000  ObjectTable: 00000000  HandleCount:   0.\n"
    "    Image: System\n"
    "    VadRoot 00000000 Vads 0 Clone 0 Private 0. Modified 0. Locked 0.\n"
    "    DeviceMap 00000000\n"
    "    Token                             00000000\n"
    "    ElapsedTime                       00:00:00.000\n"
    "    UserTime                          00:00:00.000\n"
    "    KernelTime                        00:00:00.000\n"
    "    QuotaPoolUsage[PagedPool]         0\n"
    "    QuotaPoolUsage[NonPagedPool]      0\n"
    "    Working Set Sizes (now,min,max)  (0, 50, 345) (0KB, 200KB, 1380KB)\n"
    "    PeakWorkingSetSize                0\n"
    "    VirtualSize                       0 Mb\n"
    "    PeakVirtualSize                   0 Mb\n"
    "    PageFaultCount                    0\n"
    "    MemoryPriority                    BACKGROUND\n"
    "    BasePriority                      0\n"
    "    CommitCharge                      0\n")
WRK_MEMORYALLOC_1 = (
    "PROCESS fb000490  SessionId: 0  Cid: 0100    Peb: 7ffdf000  ParentCid: 0004\n"
    "    DirBase: 00005000  ObjectTable: 00000000  HandleCount:   0.\n"
    "    Image: MemoryAlloc.exe\n"
    "    VadRoot fb000970 Vads 9 Clone 0 Private 4. Modified 0. Locked 0.\n"
    "    DeviceMap 00000000\n"
    "    Token                             00000000\n"
    "    ElapsedTime                       00:00:00.000\n"
    "    UserTime                          00:00:00.000\n"
    "    KernelTime                        00:00:00.000\n"
    "    QuotaPoolUsage[PagedPool]         0\n"
    "    QuotaPoolUsage[NonPagedPool]      0\n"
    "    Working Set Sizes (now,min,max)  (16, 50, 345) (64KB, 200KB, 1380KB)\n"
    "    PeakWorkingSetSize                16\n"
    "    VirtualSize                       2 Mb\n"
    "    PeakVirtualSize                   2 Mb\n"
    "    PageFaultCount                    7\n"
    "    MemoryPriority                    BACKGROUND\n"
    "    BasePriority                      0\n"
    "    CommitCharge                      33\n")


def test_process_0_1_on_the_workshop_machine(wrk):
    assert wrk.debugger.execute("!process 0 1") == (
        "**** NT ACTIVE PROCESS DUMP ****\n" + WRK_SYSTEM_1 + "\n" + WRK_MEMORYALLOC_1 + "\n")


def test_process_address_7_and_image_name_on_the_workshop_machine(wrk):
    d = wrk.debugger
    assert d.execute("!process fb000490 7") == WRK_MEMORYALLOC_1 + "\nNo active threads\n"
    assert d.execute("!process 0 7 MemoryAlloc.exe") == (
        "**** NT ACTIVE PROCESS DUMP ****\n" + WRK_MEMORYALLOC_1 + "\nNo active threads\n\n")


def test_process_0_1_on_win7_x86(x86):
    assert x86.debugger.execute("!process 0 1") == (
        "**** NT ACTIVE PROCESS DUMP ****\n"
        + WRK_SYSTEM_1.replace("fb0001a0", "860001a0").replace("01000000", "03000000") + "\n")


def test_flag_bits_select_the_parts(wrk):
    d = wrk.debugger
    summary = d.execute("!process fb000490 0")
    details = WRK_MEMORYALLOC_1[len(summary):]
    threads = "\nNo active threads\n"
    assert d.execute("!process fb000490 1") == summary + details
    assert d.execute("!process fb000490 2") == summary + threads
    assert d.execute("!process fb000490 4") == summary + threads
    assert d.execute("!process fb000490 6") == summary + threads
    assert d.execute("!process fb000490 1f") == summary + details + threads
    assert d.execute("!process 100 7") == summary + details + threads       # by PID


def test_default_flags_are_3_for_the_current_process_and_all_and_f_for_one(wrk):
    d = wrk.debugger
    assert d.execute("!process") == d.execute("!process -1 3")
    loaded = next(p for p in wrk.nt.process_objects.values() if p.cr3 == wrk.core.cr3)
    assert d.execute("!process") == d.execute(f"!process {loaded.ep:x} 3")
    assert d.execute("!process 0") == d.execute("!process 0 3")
    assert d.execute("!process fb000490") == d.execute("!process fb000490 f")
    assert "No active threads" in d.execute("!process 0")


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86pae", "wrk-x86"])
def test_details_agree_with_the_memory_manager(target):
    """VadRoot is the root of the process's VAD tree, Vads its node count, the working set
    its list's entry count, CommitCharge what its private VADs charge; also after the
    process allocates and touches memory."""
    m = kdsim.boot(target, ram="256m")
    nt = m.nt
    proc = next(p for p in nt.process_objects.values())
    va = nt.vm.allocate(proc, 0x40000).base
    for page in range(0, 0x40000, 0x3000):
        assert access(nt, proc, va + page, b"x", "w")[0] == 0
    nt.vm.free(proc, va + 0x10000, 0x4000, release=False)          # decommit 4 pages
    for p in nt.process_objects.values():
        out = m.debugger.execute(f"!process {p.ep:x} 1")
        words = out.split()
        nodes = p.vads.nodes_in_order()
        assert int(words[words.index("VadRoot") + 1], 16) == (p.vads.root or 0)
        assert int(words[words.index("Vads") + 1]) == len(nodes) == p.vads.count
        assert f"Working Set Sizes (now,min,max)  ({len(p.ws)}, 50, 345)" in out
        assert f"PeakWorkingSetSize                {p.ws.peak}\n" in out
        assert f"CommitCharge                      {p.commit}\n" in out
        # kdsim's memory manager keeps no NumberOfPrivatePages: Private is its zero
        assert words[words.index("Private") + 1] == f"{p.get_field('NumberOfPrivatePages')}."
        span = sum(VadInfo(nt, n).end - VadInfo(nt, n).start for n in nodes)
        assert f"VirtualSize                       {span >> 20} Mb\n" in out
        assert f"PageFaultCount                    {p.get_field('Vm.PageFaultCount')}\n" in out
    assert f"CommitCharge                      {proc.commit}\n" in \
        m.debugger.execute(f"!process {proc.ep:x} 1")


@pytest.mark.parametrize("target", ["win7-x64", "wrk-x86"])
def test_every_process_thread_list_is_empty_in_guest_memory(target):
    m = kdsim.boot(target, ram="256m")
    ts, ptr = m.nt.ts, m.nt.ptr
    head = ts.offset_of("_EPROCESS", "ThreadListHead")
    for ep in m.nt.processes:
        raw = m.nt.kmem.read(ep + head, 2 * ptr)
        assert int.from_bytes(raw[:ptr], "little") == ep + head        # Flink: itself
        assert int.from_bytes(raw[ptr:], "little") == ep + head        # Blink: itself


def test_values_are_read_from_the_eprocess():
    """Edit the EPROCESS with e* commands and !process shows the new values."""
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    p = m.nt.spawn("calc.exe")
    d, ts, ep = m.debugger, m.nt.ts, p.ep

    def at(path):
        return f"{ep + ts.field('_EPROCESS', path).offset:x}"
    created = p.get_field("CreateTime")
    d.execute(f"eq {at('Token')} fffff8a000123456")     # RefCnt bits 0-3 are not the pointer
    d.execute(f"eq {at('DeviceMap')} fffff8a000004560")
    d.execute(f"eq {at('CreateTime')} {created - 931944900000:x}")   # 1 day 1:53:14.490 ago
    d.execute(f"ed {at('Pcb.UserTime')} 2")                          # 2 ticks of 15.625 ms
    d.execute(f"ed {at('Pcb.KernelTime')} 0n230400")                 # 1 hour
    d.execute(f"eq {at('ProcessQuotaUsage[0]')} 0n14592")            # PsNonPagedPool
    d.execute(f"eq {at('ProcessQuotaUsage[1]')} 0n160120")           # PsPagedPool
    d.execute(f"eb {at('Pcb.BasePriority')} 8")
    d.execute(f"eb {at('Vm.Flags.MemoryPriority')} 2")               # FOREGROUND
    d.execute(f"eq {at('NumberOfPrivatePages')} 0n349")
    d.execute(f"ed {at('ModifiedPageCount')} 0n11623")
    d.execute(f"eq {at('CloneRoot')} fffffa8000001000")
    d.execute(f"eq {at('Job')} fffffa8000002000")
    out = d.execute(f"!process {ep:x} 1")
    assert "    VadRoot fffffa8003000d70 Vads 9 Clone 1 Private 349. Modified 11623. Locked 0.\n" \
           "    DeviceMap fffff8a000004560\n" \
           "    Token                             fffff8a000123450\n" \
           "    ElapsedTime                       1 Day 01:53:14.490\n" \
           "    UserTime                          00:00:00.031\n" \
           "    KernelTime                        01:00:00.000\n" \
           "    QuotaPoolUsage[PagedPool]         160120\n" \
           "    QuotaPoolUsage[NonPagedPool]      14592\n" in out
    assert "    MemoryPriority                    FOREGROUND\n" \
           "    BasePriority                      8\n" \
           "    CommitCharge                      16\n" \
           "    Job                               fffffa8000002000\n" in out
    d.execute(f"eq {at('CreateTime')} {created + 1:x}")              # after "now"
    assert "    ElapsedTime                       <Invalid>\n" in d.execute(f"!process {ep:x} 1")


def test_a_thread_on_the_list_is_walked_from_guest_memory():
    m = kdsim.boot("wrk-x86", ram="256m")
    d, ts, ep = m.debugger, m.nt.ts, 0xfb000490
    head = ep + ts.offset_of("_EPROCESS", "ThreadListHead")
    entry = m.nt.nonpaged_pool.alloc(0x20, "Thre")       # a made-up list entry
    d.execute(f"ed {entry:x} {head:x} {head:x}")
    d.execute(f"ed {head:x} {entry:x} {entry:x}")
    d.execute(f"ed {ep + ts.offset_of('_EPROCESS', 'ActiveThreads'):x} 1")
    out = d.execute(f"!process {ep:x} 7")
    assert "No active threads" not in out
    assert out.endswith(f"CommitCharge                      33\n\n        kdsim: thread list "
                        f"entry {entry:08x} (the symbols have no _ETHREAD to show it with)\n")


@pytest.mark.parametrize("target,bad,other", [
    ("win7-x64", "0000000000001234", "fffffa800300c048"),
    ("wrk-x86", "00001234", "fb000498"),
])
def test_bad_input(target, bad, other):
    d = kdsim.boot(target, ram="256m").debugger
    assert d.execute("!process zz") == "Couldn't resolve error at 'zz'\n"
    assert d.execute("!process 0 zz") == "Couldn't resolve error at 'zz'\n"
    assert d.execute("!process 1234 7") == f"Memory read error {bad}\n"     # no such PID
    assert d.execute("!process 1234 0") == f"Memory read error {bad}\n"
    assert d.execute(f"!process {other} 7") == \
        f"{other} is not a process object (Pcb.Header.Type is 0)\n"
    assert d.execute("!process (") == " " * 17 + "^ Syntax error in '!process ('\n"
    assert d.execute("!process 0 1 nothing.exe") == "**** NT ACTIVE PROCESS DUMP ****\n"
    d.execute(f".process {other}")                    # an implicit process that is none
    assert d.execute("!process") == f"{other} is not a process object (Pcb.Header.Type is 0)\n"
    d.execute(".process 0")
