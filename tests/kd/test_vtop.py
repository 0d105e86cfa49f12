"""!vtop: the walk under a directory base as the VtoP routines print it, agreeing with !pte
and with the physical display of the page."""
import pytest

import kdsim


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86pae", "win7-x86"])
def m(request):
    return kdsim.boot(request.param)


EXPECTED = {
    "win7-x64": ("Amd64VtoP: Virt 0000000000210000, pagedir 0000000000145000\n"
                 "Amd64VtoP: PML4E 0000000000145000\n"
                 "Amd64VtoP: PDPE 000000000014b000\n"
                 "Amd64VtoP: PDE 000000000014e008\n"
                 "Amd64VtoP: PTE 0000000000164080\n"
                 "Amd64VtoP: Mapped phys 0000000000163000\n"
                 "Virtual address 210000 translates to physical address 163000.\n"),
    "win7-x86pae": ("X86VtoP: Virt 0000000000210000, pagedir 0000000003000140\n"
                    "X86VtoP: PAE PDPE 0000000003000140 - 000000000008c001\n"
                    "X86VtoP: PAE PDE 000000000008c008 - 0000000000100867\n"
                    "X86VtoP: PAE PTE 0000000000100080 - 800000000009e867\n"
                    "X86VtoP: PAE Mapped phys 000000000009e000\n"
                    "Virtual address 210000 translates to physical address 9e000.\n"),
    "win7-x86": ("X86VtoP: Virt 00210000, pagedir 00070000\n"
                 "X86VtoP: PDE 00070000 - 00075867\n"
                 "X86VtoP: PTE 00075840 - 00080867\n"
                 "X86VtoP: Mapped phys 00080000\n"
                 "Virtual address 210000 translates to physical address 80000.\n"),
}


def test_vtop_of_notepads_buffer(m):
    notepad = m.nt.scenario["processes"]["notepad"]
    buf = m.nt.scenario["names"]["np_buf"]
    assert m.debugger.execute(f"!vtop {notepad.cr3:x} {buf:x}") == EXPECTED[m.target]
    pa = int(EXPECTED[m.target].split()[-1].rstrip("."), 16)
    assert m.debugger.execute(f"!db {pa:x} L5").rstrip().endswith("Hello")


def test_vtop_0_uses_the_implicit_process_and_reports_a_zero_pte(m):
    d = m.debugger
    notepad = m.nt.scenario["processes"]["notepad"]
    buf = m.nt.scenario["names"]["np_buf"]
    d.execute(f".process /p {notepad.ep:x}")
    out = d.execute(f"!vtop 0 {buf + 0xc000:x}").splitlines()
    assert out[-2].endswith("zero PTE")
    assert out[-1] == f"Virtual address {buf + 0xc000:x} translation fails, error 0xD0000147."
    d.execute(".process 0")


@pytest.mark.parametrize("target", ["wrk-x86", "win7-x64"])
def test_vtop_takes_the_directorys_page_frame_number_too(target):
    """The documentation's `!vtop 98fd 12f980`: a value no CR3 could hold is a PFN."""
    import kdsim
    m = kdsim.boot(target, ram="256m")
    d = m.debugger
    proc = m.nt.process_objects[max(m.nt.process_objects)]
    va = proc.peb
    assert d.execute(f"!vtop {proc.cr3 >> 12:x} {va:x}") == d.execute(f"!vtop {proc.cr3:x} {va:x}")
    assert d.execute(f"!vtop ffffffffff {va:x}") == \
        f"Virtual address {va:x} translation fails, error 0xD0000147.\n"
