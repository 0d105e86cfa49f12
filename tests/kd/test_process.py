"""!process: every process on PsActiveProcessHead, by image name, by address or PID."""
import pytest

import kdsim


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
        "PROCESS fb000490  SessionId: none  Cid: 0100    Peb: 7ffdf000  ParentCid: 0004\n"
        "    DirBase: 00005000  ObjectTable: 00000000  HandleCount:   0.\n"
        "    Image: MemoryAlloc.exe\n"
        "\n")


def test_process_by_image_name_address_and_pid(wrk):
    d = wrk.debugger
    by_name = d.execute("!process 0 0 memoryalloc.exe")
    assert sum(line.startswith("PROCESS ") for line in by_name.splitlines()) == 1
    assert "Image: MemoryAlloc.exe" in by_name
    single = "PROCESS fb000490  SessionId: none  Cid: 0100    Peb: 7ffdf000  ParentCid: 0004\n" \
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
