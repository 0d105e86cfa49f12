"""!vtop: the walk under a directory base as the VtoP routines print it, agreeing with !pte
and with the physical display of the page."""
import pytest

import kdsim


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86pae", "win7-x86"])
def m(request):
    return kdsim.boot(request.param)


EXPECTED = {
    "win7-x64": ("Amd64VtoP: Virt 0000000000210000, pagedir 0000000000144000\n"
                 "Amd64VtoP: PML4E 0000000000144000\n"
                 "Amd64VtoP: PDPE 000000000014a000\n"
                 "Amd64VtoP: PDE 000000000014d008\n"
                 "Amd64VtoP: PTE 0000000000163080\n"
                 "Amd64VtoP: Mapped phys 0000000000162000\n"
                 "Virtual address 210000 translates to physical address 162000.\n"),
    "win7-x86pae": ("X86VtoP: Virt 0000000000210000, pagedir 0000000003000140\n"
                    "X86VtoP: PAE PDPE 0000000003000140 - 0000000000095001\n"
                    "X86VtoP: PAE PDE 0000000000095008 - 000000000010b867\n"
                    "X86VtoP: PAE PTE 000000000010b080 - 800000000010a867\n"
                    "X86VtoP: PAE Mapped phys 000000000010a000\n"
                    "Virtual address 210000 translates to physical address 10a000.\n"),
    "win7-x86": ("X86VtoP: Virt 00210000, pagedir 0007a000\n"
                 "X86VtoP: PDE 0007a000 - 0007f867\n"
                 "X86VtoP: PTE 0007f840 - 0008b867\n"
                 "X86VtoP: Mapped phys 0008b000\n"
                 "Virtual address 210000 translates to physical address 8b000.\n"),
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
