"""!pte's other forms: a range of addresses, and a literal entry address (``!pte A 1``)."""
import pytest


@pytest.mark.parametrize("machine", ["x64", "x86"])
def test_pte_range_is_one_block_per_page(machine, request):
    d = request.getfixturevalue(machine).debugger
    nt = d.resolve("nt!MmHighestUserAddress") & ~0xFFF
    blocks = "".join(d.execute(f"!pte {va:x}") for va in (nt, nt + 0x1000, nt + 0x2000))
    assert d.execute(f"!pte {nt:x} {nt + 0x2fff:x}") == blocks
    assert d.execute(f"!pte {nt + 0x10:x} {nt + 0x2000:x}") == blocks   # pages it touches


def test_literal_pte_address_on_x86(x86):
    d = x86.debugger
    # The self-map: the PDE of c0000000 (the page tables) holds the directory itself.
    pde = 0xC0300C00
    value = int(d.execute(f"dd {pde:x} L1").split()[1], 16)
    assert d.execute(f"!pte {pde:x} 1") == (
        f"PTE at {pde:08X}\ncontains {value:08X}\n"
        f"pfn {value >> 12:<6x}---DA--KWEV\n")
    assert d.execute("!pte c0000000 1") == "PTE at C0000000\ncontains 00000000\nnot valid\n"


def test_literal_pte_address_on_x64_decodes_a_nonvalid_entry(x64):
    d = x64.debugger
    nt = d.resolve("nt!MmHighestUserAddress")
    old = d.execute(f"dq {nt:x} L1").split()[1]
    try:
        d.execute(f"eq {nt:x} 80")                        # a demand-zero read/write PTE
        assert d.execute(f"!pte {nt:x} 1") == (
            f"PTE at {nt:016X}\ncontains 0000000000000080\nnot valid\n"
            " DemandZero\n Protect: 4 - ReadWrite\n")
    finally:
        d.execute(f"eq {nt:x} {old}")
    assert d.execute(f"dq {nt:x} L1").split()[1] == old


def test_pte_argument_errors(x86):
    d = x86.debugger
    assert d.execute("!pte 80001000 80000000") == \
        " " * 29 + "^ Syntax error in '!pte 80001000 80000000'\n"
    assert d.execute("!pte 80001000 1 2") == " " * 23 + "^ Syntax error in '!pte 80001000 1 2'\n"
    assert d.execute("!pte 80001000 zz") == "Couldn't resolve error at 'zz'\n"
