"""lm: the modules on PsLoadedModuleList, read from guest memory."""
import pytest

import kdsim

LM_X64 = (
    "start             end                 module name\n"
    "fffff800`02a1f000 fffff800`03007000   nt         (pdb symbols)          ntkrnlmp.pdb\n"
    "fffff800`03007000 fffff800`03050000   hal        (no symbols)           \n")
LM_X86 = (
    "start    end        module name\n"
    "82a1f000 82e2f000   nt         (pdb symbols)          ntkrnlmp.pdb\n"
    "82e2f000 82e66000   hal        (no symbols)           \n")


def test_lm_on_x64(x64):
    assert x64.debugger.execute("lm") == LM_X64


def test_lm_on_x86(x86):
    assert x86.debugger.execute("lm") == LM_X86


def test_lm_m_pattern(x64, x86):
    header, nt, hal = LM_X64.splitlines(keepends=True)
    assert x64.debugger.execute("lm m nt") == header + nt
    assert x64.debugger.execute("lm m h*") == header + hal
    assert x64.debugger.execute("lmm NT") == header + nt
    assert x64.debugger.execute("lm mnt") == header + nt
    assert x64.debugger.execute("lm m ?a?") == header + hal
    assert x64.debugger.execute("lm m zz") == header
    header, nt, hal = LM_X86.splitlines(keepends=True)
    assert x86.debugger.execute("lm m h*") == header + hal


def test_lmv_m_nt_on_x64(x64):
    want = LM_X64.splitlines(keepends=True)
    verbose = (
        "    Image path: \\SystemRoot\\system32\\ntoskrnl.exe\n"
        "    Image name: ntoskrnl.exe\n"
        "    Timestamp:        Sat Nov 20 09:30:02 2010 (4CE7951A)\n"
        "    ImageSize:        005E8000\n"
        "    File version:     6.1.7601.17514\n"
        "    Product version:  6.1.7601.17514\n")
    assert x64.debugger.execute("lmv m nt") == want[0] + want[1] + verbose
    assert x64.debugger.execute("lmvm nt") == want[0] + want[1] + verbose
    assert x64.debugger.execute("lm vm nt") == want[0] + want[1] + verbose


def test_lmvm_on_x86(x86):
    assert x86.debugger.execute("lmvm hal") == (
        "start    end        module name\n"
        "82e2f000 82e66000   hal        (no symbols)           \n"
        "    Image path: \\SystemRoot\\system32\\hal.dll\n"
        "    Image name: hal.dll\n"
        "    Timestamp:        Sat Nov 20 13:00:25 2010 (4CE7C669)\n"
        "    ImageSize:        00037000\n")
    assert x86.debugger.execute("lmvm nt").splitlines()[-3:] == [
        "    ImageSize:        00410000",
        "    File version:     6.1.7601.17514",
        "    Product version:  6.1.7601.17514"]


def test_wrk_file_version_is_the_builds():
    m = kdsim.boot("wrk-x86", ram="256m", scenario="none")
    assert "    File version:     5.2.3790.1830\n" in m.debugger.execute("lmvm nt")


def test_lm_options(x64):
    d = x64.debugger
    header, nt, hal = LM_X64.splitlines(keepends=True)
    assert d.execute("lm a nt!MmPfnDatabase") == header + nt
    assert d.execute("lm a fffff800`03007010") == header + hal
    assert d.execute("lm a 0") == header
    assert d.execute("lm 1m") == "nt\nhal\n"
    assert d.execute("lmsm") == header + hal + nt
    assert d.execute("lml") == header + nt
    assert d.execute("lme") == header + hal
    assert d.execute("lmk") == LM_X64
    assert d.execute("lmo") == LM_X64
    assert d.execute("lmu") == header
    assert d.execute("lm M *\\hal.dll") == header + hal
    assert d.execute("lmD") == LM_X64


def test_lm_errors(x64):
    d = x64.debugger
    assert d.execute("lm z") == "          ^ Syntax error in 'lm z'\n"
    assert d.execute("lmm") == "          ^ Syntax error in 'lmm'\n"
    assert d.execute("lm m") == "           ^ Syntax error in 'lm m'\n"
    assert d.execute("lm a nt!Nope") == "Couldn't resolve error at 'nt!Nope'\n"
    assert d.execute("lm t") == "kdsim: lm option t is not supported\n"


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"])
def test_lm_lists_exactly_the_modules_on_psloadedmodulelist(target):
    m = kdsim.boot(target, ram="256m", scenario="none")
    ptr = m.nt.profile.pointer_size
    rows = m.debugger.execute("lm").splitlines()[1:]
    got = [(r.split()[2], int(r.split()[0].replace("`", ""), 16),
            int(r.split()[1].replace("`", ""), 16)) for r in rows]
    want = [(short, base & ((1 << 8 * ptr) - 1), (base + size) & ((1 << 8 * ptr) - 1))
            for _, short, base, size in m.nt.modules]          # the memory manager's list
    assert got == want


@pytest.fixture
def x86_own():
    return kdsim.boot("win7-x86", ram="256m", scenario="none")


def test_lm_reads_sizes_and_links_from_memory(x86_own):
    d = x86_own.debugger
    head = x86_own.nt.symbols["PsLoadedModuleList"]
    nt_entry = int(d.execute("dd nt!PsLoadedModuleList L1").split()[1], 16)
    hal_entry = int(d.execute(f"dd {nt_entry:x} L1").split()[1], 16)
    d.execute(f"ed {hal_entry + 0x20:x} 1000")           # hal's SizeOfImage
    assert d.execute("lm m hal").splitlines()[1].startswith("82e2f000 82e30000   hal ")
    d.execute(f"ed {hal_entry:x} {hal_entry:x}")         # a loop: hal -> hal
    assert d.execute("lm 1m") == "nt\nhal\n"
    d.execute(f"ed {nt_entry:x} {head:x}")               # unlink hal
    assert d.execute("lm") == LM_X86.splitlines(keepends=True)[0] + \
        LM_X86.splitlines(keepends=True)[1]
