"""!pte on every paging layout: valid, large, demand-zero, paged-out and zero PTEs, and the
consistency rule -- what !pte says an entry contains is what dq/dd read there."""
import re

import pytest

import kdsim


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86pae", "win7-x86"])
def notepad(request):
    m = kdsim.boot(request.param)
    proc = m.nt.scenario["processes"]["notepad"]
    m.core.cr3 = proc.cr3                  # notepad is the process running
    return m, m.nt.scenario["names"]["np_buf"]


EXPECTED = {
    "win7-x64": {
        0: ("                                           VA 0000000000210000\n"
            "PXE at FFFFF6FB7DBED000    PPE at FFFFF6FB7DA00000    PDE at FFFFF6FB40000008    PTE at FFFFF68000001080\n"
            "contains 000000000014A867  contains 000000000014D867  contains 0000000000163867  contains 8000000000162867\n"
            "pfn 14a       ---DA--UWEV  pfn 14d       ---DA--UWEV  pfn 163       ---DA--UWEV  pfn 162       ---DA--UW-V\n"),
        # written out, read back by a hard fault and trimmed: a clean standby page
        0x8000: ("                                           VA 0000000000218000\n"
                 "PXE at FFFFF6FB7DBED000    PPE at FFFFF6FB7DA00000    PDE at FFFFF6FB40000008    PTE at FFFFF680000010C0\n"
                 "contains 000000000014A867  contains 000000000014D867  contains 0000000000163867  contains 0000000000172884\n"
                 "pfn 14a       ---DA--UWEV  pfn 14d       ---DA--UWEV  pfn 163       ---DA--UWEV  not valid\n"
                 + " " * 82 + "Transition: 172\n" + " " * 82 + "Protect: 4 - ReadWrite\n"),
        # read back by a hard fault and still valid: clean (no Dirty, no hardware R/W)
        0x9000: ("                                           VA 0000000000219000\n"
                 "PXE at FFFFF6FB7DBED000    PPE at FFFFF6FB7DA00000    PDE at FFFFF6FB40000008    PTE at FFFFF680000010C8\n"
                 "contains 000000000014A867  contains 000000000014D867  contains 0000000000163867  contains 8000000000173825\n"
                 "pfn 14a       ---DA--UWEV  pfn 14d       ---DA--UWEV  pfn 163       ---DA--UWEV  pfn 173       ----A--UW-V\n"),
    },
    "win7-x86pae": {
        0x2000: ("                    VA 00212000\n"
                 "PDE at C0600008            PTE at C0001090\n"
                 "contains 000000000010B867  contains 0000000100000080\n"
                 "pfn 10b       ---DA--UWEV  not valid\n"
                 + " " * 28 + "PageFile:  0\n" + " " * 28 + "Offset: 1\n"
                 + " " * 28 + "Protect: 4 - ReadWrite\n"),
    },
    "win7-x86": {
        0: ("                 VA 00210000\n"
            "PDE at C0300000         PTE at C0000840\n"
            "contains 0007F867       contains 0008B867\n"
            "pfn 7f    ---DA--UWEV   pfn 8b    ---DA--UWEV\n"),
        0xC000: ("                 VA 0021c000\n"
                 "PDE at C0300000         PTE at C0000870\n"
                 "contains 0007F867       contains 00000000\n"
                 "pfn 7f    ---DA--UWEV   not valid\n"),
    },
}


def test_pte_output_matches_windbgs_layout(notepad):
    m, buf = notepad
    for off, text in EXPECTED[m.target].items():
        assert m.debugger.execute(f"!pte {buf + off:x}") == text


@pytest.fixture(scope="module")
def explorer_x64():
    """One sample is enough: the default scenario on win7-x64 with explorer running."""
    m = kdsim.boot("win7-x64")
    m.core.cr3 = m.nt.scenario["processes"]["explorer"].cr3
    return m, m.nt.scenario["names"]["ex_heap"]


def test_committed_untouched_page_is_demand_zero(explorer_x64):
    """explorer committed four pages of its reservation and wrote one: the others keep
    the demand-zero PTEs the commit wrote."""
    m, heap = explorer_x64
    out = m.debugger.execute(f"!pte {heap + 0x1000:x}")
    assert out == (
        "                                           VA 000007ffffed1000\n"
        "PXE at FFFFF6FB7DBED078    PPE at FFFFF6FB7DA0FFF8    PDE at FFFFF6FB41FFFFF8    PTE at FFFFF683FFFFF688\n"
        "contains 000000000013B867  contains 0000000000140867  contains 0000000000141867  contains 0000000000000080\n"
        "pfn 13b       ---DA--UWEV  pfn 140       ---DA--UWEV  pfn 141       ---DA--UWEV  not valid\n"
        + " " * 82 + "DemandZero\n" + " " * 82 + "Protect: 4 - ReadWrite\n")


def test_large_page_shows_the_pde_and_the_page_inside_it(notepad):
    m, _ = notepad
    out = m.debugger.execute("!pte nt").splitlines()
    assert out[-1].endswith("-GLDA--KWEV  LARGE PAGE pfn 2a1f") or \
        out[-1].endswith("-GLDA--KWEV   LARGE PAGE pfn 2a1f")


def test_contains_is_what_dq_or_dd_reads_at_the_entry_addresses(notepad):
    m, buf = notepad
    out = m.debugger.execute(f"!pte {buf:x}").splitlines()
    addrs = re.findall(r"at ([0-9A-F]+)", out[1])
    values = re.findall(r"contains ([0-9A-F]+)", out[2])
    unit = "dq" if len(values[0]) == 16 else "dd"
    for a, v in zip(addrs, values):
        line = m.debugger.execute(f"{unit} {a} L1")
        assert line.split()[-1].replace("`", "").upper() == v


def test_a_pte_address_shows_the_address_it_maps(notepad):
    m, buf = notepad
    assert m.debugger.execute(f"!pte {m.nt.profile.pte_address(buf):x}") == \
        m.debugger.execute(f"!pte {buf:x}")
