"""du (UTF-16 strings, 32 characters a line) and !du (physical: 16 characters by default),
read against the module names the memory manager wrote."""
import pytest

import kdsim


@pytest.fixture(scope="module")
def machines():
    # Machines of their own: these tests write into the nt image and into physical memory.
    return {t: kdsim.boot(t, ram="256m", scenario="none") for t in ("win7-x64", "win7-x86")}


def _name_buffer(m, index=0):
    """The address of module ``index``'s BaseDllName buffer, read from raw guest memory."""
    ts, ptr = m.nt.ts, m.nt.profile.pointer_size
    head = m.nt.symbols["PsLoadedModuleList"]
    entry = int.from_bytes(m.core.read_virtual(head, ptr), "little")
    for _ in range(index):
        entry = int.from_bytes(m.core.read_virtual(entry, ptr), "little")
    buf = entry + ts.offset_of("_LDR_DATA_TABLE_ENTRY", "BaseDllName") + ts.offset_of(
        "_UNICODE_STRING", "Buffer")
    return int.from_bytes(m.core.read_virtual(buf, ptr), "little")


def test_du_shows_the_kernel_image_name(x64, x86):
    assert x64.debugger.execute(f"du {_name_buffer(x64):x}") == \
        'fffffa80`03000094  "ntoskrnl.exe"\n'
    assert x86.debugger.execute(f"du {_name_buffer(x86):x}") == '8600006c  "ntoskrnl.exe"\n'


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86pae"])
def test_du_reads_every_module_name_the_memory_manager_loaded(target):
    m = kdsim.boot(target, ram="256m", scenario="none")
    for i, (file_name, _, _, _) in enumerate(m.nt.modules):
        out = m.debugger.execute(f"du {_name_buffer(m, i):x}")
        assert out.split("  ", 1)[1] == f'"{file_name}"\n'


def test_du_lines_hold_32_characters_and_advance_0x40_bytes(machines):
    d = machines["win7-x64"].debugger
    d.execute('ezu nt+1000 "\\SystemRoot\\System32\\drivers\\kdsim-test.sys"')
    assert d.execute("du nt+1000") == (
        'fffff800`02a20000  "\\SystemRoot\\System32\\drivers\\kds"\n'
        'fffff800`02a20040  "im-test.sys"\n')
    x86 = machines["win7-x86"].debugger
    x86.execute('ezu nt+1000 "\\SystemRoot\\System32\\drivers\\kdsim-test.sys"')
    assert x86.execute("du nt+1000 L5") == '82a20000  "\\Syst"\n'
    assert x86.execute("du") == '82a2000a  "emRoot\\System32\\drivers\\kdsim-te"\n' \
                                '82a2004a  "st.sys"\n'


def test_du_unreadable_and_errors(x86):
    d = x86.debugger
    assert d.execute("du 10000 L3") == '00010000  "???"\n'
    assert d.execute("du foo") == "Couldn't resolve error at 'foo'\n"
    assert d.execute("du 10000 L 8000001") == \
        " " * 24 + "^ Range error in 'du 10000 L 8000001'\n"


def test_physical_du_reads_the_page_that_backs_the_name(machines):
    m = machines["win7-x64"]
    va = _name_buffer(m)
    pa = m.core.translate(va).pa
    assert m.core.read_physical(pa, 24).decode("utf-16-le") == "ntoskrnl.exe"
    assert m.debugger.execute(f"!du {pa:x}") == f'#{pa:8x} "ntoskrnl.exe"\n'
    assert m.debugger.execute(f"!du [c] {pa:x} L3") == f'#{pa:8x} "nto"\n'


def test_physical_du_shows_16_characters_by_default_then_continues(machines):
    d = machines["win7-x86"].debugger
    d.execute('ezu nt+1100 "abcdefghijklmnopqrstuvwxyz"')     # nt+1000 is at 2a20000
    assert d.execute("!du 2a20100") == '# 2a20100 "abcdefghijklmnop"\n'
    assert d.execute("!du") == '# 2a20120 "qrstuvwxyz"\n'


def test_physical_du_stops_where_physical_memory_ends(machines):
    d = machines["win7-x86"].debugger
    assert d.execute("!du 9f000") == "Physical memory read at 9f000 failed\n"
    d.execute("!eb 9eff8 41 00 42 00 43 00 44 00")               # the last RAM page of the run
    assert d.execute("!du 9eff8 L8") == (
        '#   9eff8 "ABCD"\n'
        "Physical memory read at 9f000 failed\n")
