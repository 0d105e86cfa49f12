""".process decides which address space user addresses are read in; r shows cr3 and the
pseudo-registers."""
import pytest

import kdsim


@pytest.fixture(scope="module", params=["win7-x86", "win7-x64"])
def m(request):
    return kdsim.boot(request.param)


def ptr(m, value):
    return f"{value:08x}" if m.nt.ptr == 4 else f"{value >> 32:08x}`{value & 0xFFFFFFFF:08x}"


def test_user_memory_reads_in_the_implicit_process(m):
    d = m.debugger
    notepad = m.nt.scenario["processes"]["notepad"]
    buf = m.nt.scenario["names"]["np_buf"]
    d.execute(".process 0")
    assert "?? ??" in d.execute(f"db {buf:x} L10")             # System has no such page
    assert d.execute(f".process {notepad.ep:x}") == (
        f"Implicit process is now {ptr(m, notepad.ep)}\n"
        "WARNING: .cache forcedecodeuser is not enabled\n")
    assert d.execute(f"db {buf:x} L5").rstrip().endswith("Hello")
    assert d.execute(f".process /p {notepad.ep:x}") == (
        f"Implicit process is now {ptr(m, notepad.ep)}\n.cache forcedecodeuser done\n")
    assert d.execute(".process") == f"Implicit process is now {ptr(m, notepad.ep)}\n"
    assert d.execute("? $proc").endswith(f"= {ptr(m, notepad.ep)}\n")
    system = m.nt.system_process
    assert d.execute(".process 0") == f"Implicit process is now {ptr(m, system)}\n"


def test_r_cr3_and_pseudo_registers(m):
    d = m.debugger
    width = 2 * m.nt.ptr
    assert d.execute("r cr3") == f"cr3={m.core.cr3:0{width}x}\n"
    assert d.execute("r $t1 = 10 + 2") == ""
    assert d.execute("r $t1") == f"$t1={0x12:0{width}x}\n"
    assert d.execute("r nosuch") == "Bad register error\n"
