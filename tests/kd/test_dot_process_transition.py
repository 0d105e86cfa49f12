"""`.process /p` (".cache forcedecodeuser"): the debugger decodes transition PTEs of user
addresses itself, so d*, poi() and dt read a trimmed page's bytes from the frame its PTE
names; without /p those reads fail (??), and PTEs of other kinds never decode."""
import pytest

import kdsim
from kdsim.nt.pte import PteCodec

TEXT_A = "page A: dirty, on the modified list"
TEXT_B = "page B: clean, on the standby list"


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86"])
def machine(request):
    m = kdsim.boot(request.param, ram="256m", scenario="none")
    d = m.debugger
    m.proc = m.nt.spawn("tp.exe")         # the memory manager's Process: the oracle's cr3
    for line in ("!sim.alloc tp.exe 3000 800000",
                 f'!sim.write tp.exe 800000 "{TEXT_A}"', f'!sim.write tp.exe 801000 "{TEXT_B}"',
                 '!sim.write tp.exe 802000 "page C: stays valid"',
                 "!sim.trim tp.exe 801000", "!sim.writeout", "!sim.trim tp.exe 800000"):
        d.execute(line)
    return m


def _eprocess(d) -> str:
    return d.execute("!process 0 0 tp.exe").split()[7]


def _pte_value(m, va: int, cr3: int) -> int:
    """The PTE of ``va`` as the MMU's probe walk reads it (independent of the debugger)."""
    walk = m.core.translate(va, cr3=cr3)
    assert not walk.ok and walk.fault_level == 1
    return walk.levels[-1][1]


def _bytes_at_frame(m, va: int, cr3: int, n: int) -> bytes:
    pte = PteCodec(m.nt.profile).decode(_pte_value(m, va, cr3))
    assert pte.kind == "transition"
    return m.core.read_physical(pte.pfn * 0x1000 + (va & 0xFFF), n)


def _db_bytes(out: str) -> bytes:
    cells = [c for line in out.splitlines()
             for c in line.split("  ")[1].replace("-", " ").split()]
    assert "??" not in cells, out
    return bytes(int(c, 16) for c in cells)


def test_without_p_a_transition_page_is_unreadable(machine):
    d = machine.debugger
    d.execute(f".process {_eprocess(d)}")
    out = d.execute("db 800000 L10")
    assert out.split("  ")[1].startswith("?? ?? ??")
    assert d.execute("? dwo(801000)") == "Memory access error at ')'\n"
    d.execute(".process 0")


def test_with_p_db_shows_the_frames_bytes(machine):
    m, d = machine, machine.debugger
    ep = _eprocess(d)
    assert d.execute(f".process /p {ep}").endswith(".cache forcedecodeuser done\n")
    proc = m.proc
    for va, text in ((0x800000, TEXT_A), (0x801000, TEXT_B)):
        got = _db_bytes(d.execute(f"db {va:x} L{len(text):x}"))
        assert got == text.encode()
        assert got == _bytes_at_frame(m, va, proc.cr3, len(text))       # the PTE's frame
    # the same through the expression evaluator and da
    assert d.execute("? by(801005)") == d.execute(f"? {ord(TEXT_B[5]):x}")
    assert d.execute(f"da 800000 L{len(TEXT_A):x}").replace("`", "") == (
        f'{0x800000:0{2 * m.nt.profile.pointer_size}x}  "{TEXT_A[:32]}"\n'
        f'{0x800020:0{2 * m.nt.profile.pointer_size}x}  "{TEXT_A[32:]}"\n')
    d.execute(".process 0")


def test_exact_output_on_x64_and_x86(machine):
    d = machine.debugger
    d.execute(f".process /p {_eprocess(d)}")
    out = d.execute("db 801000 L10")
    addr = "00000000`00801000" if machine.nt.profile.pointer_size == 8 else "00801000"
    assert out == f"{addr}  70 61 67 65 20 42 3a 20-63 6c 65 61 6e 2c 20 6f  page B: clean, o\n"
    d.execute(".process 0")


def test_a_long_read_decodes_too(machine):
    """More than 8 pages goes through the batch path: the transition pages still read,
    the unmapped ones after them do not."""
    d = machine.debugger
    d.execute(f".process /p {_eprocess(d)}")
    out = d.execute("db 7fe000 L?b000").splitlines()
    by_addr = {int(line.split("  ")[0].replace("`", ""), 16): line for line in out}
    assert "?? ??" in by_addr[0x7fe000]
    assert by_addr[0x800000].endswith("  page A: dirty, o")
    assert by_addr[0x801000].endswith("  page B: clean, o")
    assert by_addr[0x802000].endswith("  page C: stays va")
    assert "?? ??" in by_addr[0x803000]
    d.execute(".process 0")


def test_plain_process_and_reset_turn_decoding_off(machine):
    d = machine.debugger
    ep = _eprocess(d)
    d.execute(f".process /p {ep}")
    assert "??" not in d.execute("db 800000 L4")
    d.execute(f".process {ep}")                    # WARNING: ... not enabled
    assert "?? ?? ?? ??" in d.execute("db 800000 L4")
    d.execute(f".process /p {ep}")
    d.execute(".process 0")
    assert "?? ?? ?? ??" in d.execute("db 800000 L4")


def test_only_transition_ptes_decode():
    """A page written to the paging file and repurposed has a paging-file PTE: there is no
    frame to read, /p or not (forcedecodeuser translates transition PTEs only)."""
    m = kdsim.boot("win7-x64", ram="256m", scenario="none")
    d = m.debugger
    for line in ("!sim.spawn tp.exe", "!sim.alloc tp.exe 1000 800000",
                 '!sim.write tp.exe 800000 "paged out"', "!sim.trim tp.exe 800000",
                 "!sim.writeout", "!sim.pressure 100000"):
        d.execute(line)
    d.execute(f".process /p {_eprocess(d)}")
    assert "PageFile" in d.execute("!pte 800000")
    assert d.execute("db 800000 L4") == "00000000`00800000  ?? ?? ?? ??" + " " * 38 + "????\n"


def test_kernel_addresses_and_valid_pages_read_as_before(machine):
    d = machine.debugger
    plain = d.execute("dd MmPfnDatabase L4")
    d.execute(f".process /p {_eprocess(d)}")
    assert d.execute("dd MmPfnDatabase L4") == plain
    assert d.execute("db 802000 L5").endswith("  page \n")
    # !pte is unchanged: the PTE is still a transition PTE, only reads decode it
    assert "Transition: " in d.execute("!pte 800000")
    d.execute(".process 0")
