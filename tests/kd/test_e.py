"""eb/ew/ed/eq/ep: debugger writes (nothing printed), and a PTE written with eq changes what
!pte, db and the probe translation show."""
import kdsim


def test_enter_writes_silently_and_dd_reads_it_back():
    m = kdsim.boot("win7-x86", ram="256m", scenario="none")
    d = m.debugger
    assert d.execute("ed MmHighestUserAddress 12345678") == ""
    assert d.execute("dd MmHighestUserAddress L1") == "82b4f354  12345678\n"
    assert d.execute("eb nt+40 11 'A'; db nt+40 L2") == \
        "82a1f040  11 41                                            .A\n"
    assert d.execute("ed 10000 1") == "Memory access error at '10000'\n"


def test_eq_on_a_pte_remaps_the_page_for_pte_db_and_the_mmu():
    m = kdsim.boot("win7-x64")
    proc = m.nt.scenario["processes"]["notepad"]
    m.core.cr3 = proc.cr3
    d = m.debugger
    buf = m.nt.scenario["names"]["np_buf"]
    pte_va = m.nt.profile.pte_address(buf)
    nt_page = m.core.translate(m.nt.profile.address_space.kernel_base).pa   # "MZ" lives here
    new = nt_page | 0x8000000000000867
    assert d.execute(f"eq {pte_va:x} {new:x}") == ""
    out = d.execute(f"!pte {buf:x}").splitlines()
    assert out[2].endswith(f"contains {new:016X}")
    assert out[3].endswith(f"pfn {nt_page >> 12:<10x}---DA--UW-V")
    assert d.execute(f"db {buf:x} L2").split()[1:3] == ["4d", "5a"]
    assert m.core.translate(buf).pa == nt_page
