"""!sysptes: the system PTE pool's bounds and its free blocks, read from nt's variables and
the chain of _MMPTE_LIST entries in the free PTEs themselves (windbg-formats.md §11.3)."""
import pytest

import kdsim


@pytest.fixture(scope="module")
def x64():
    return kdsim.boot("win7-x64", ram="256m", scenario="none")


@pytest.fixture(scope="module")
def wrk():
    return kdsim.boot("wrk-x86", ram="256m", scenario="none")


WRK_0 = ("\n"
         "System PTE Information\n"
         "  Total System Ptes 65536\n"
         " \n"
         "    starting PTE: c03ac000\n"
         "    ending PTE:   c03ebffc\n")


def test_sysptes_0_on_the_wrk(wrk):
    assert wrk.debugger.execute("!sysptes") == WRK_0
    assert wrk.debugger.execute("!sysptes 0") == WRK_0


def test_sysptes_1_on_the_wrk_is_one_free_block_after_boot(wrk):
    assert wrk.debugger.execute("!sysptes 1") == WRK_0 + (
        "\n"
        "      free ptes: c03ac000   number free: 65536.\n"
        "\n"
        "  free blocks: 1   total free: 65536    largest free block: 65536\n")


def test_sysptes_1_on_x64_after_reserving_and_releasing(x64):
    sva = x64.nt.sysva
    a = sva.reserve(4)              # taken from the end of the one block
    b = sva.reserve(2)
    sva.release(a, 4)               # free again, but b keeps it apart from the big block
    try:
        assert x64.debugger.execute("!sysptes 1") == (
            "\n"
            "System PTE Information\n"
            "  Total System Ptes 65536\n"
            " \n"
            "    starting PTE: fffff6fc40000000\n"
            "    ending PTE:   fffff6fc4007fff8\n"
            "\n"
            "      free ptes: fffff6fc40000000   number free: 65530.\n"
            "      free ptes: fffff6fc4007ffe0   number free: 4.\n"
            "\n"
            "  free blocks: 2   total free: 65534    largest free block: 65530\n")
        assert a == 0xfffff8800fffc000 and b == 0xfffff8800fffa000
    finally:
        sva.release(b, 2)
    # b's release merges all three blocks back into one
    assert x64.debugger.execute("!sysptes 1").splitlines()[-1] == \
        "  free blocks: 1   total free: 65536    largest free block: 65536"


def test_free_blocks_are_what_the_memory_manager_keeps_and_the_chain_says(wrk):
    """Each free block's first PTE is a list entry: OneEntry for a single PTE, else the
    next PTE holds the size; the blocks are the memory manager's, in order."""
    sva, d = wrk.nt.sysva, wrk.debugger
    taken = [sva.reserve(n) for n in (1, 3, 1, 5)]
    sva.release(taken[0], 1)           # a single free PTE between reserved ones
    sva.release(taken[2], 1)
    try:
        lines = [line for line in d.execute("!sysptes 1").splitlines() if "free ptes" in line]
        listed = [(int(line.split()[2], 16), int(line.split()[-1].rstrip("."))) for line in lines]
        assert listed == sva.free
        for pte, n in listed:
            one = d.execute(f"dt nt!_MMPTE_LIST {pte:x} OneEntry").split(":")[1].strip()
            assert one == ("0y1" if n == 1 else "0y0")
            if n > 1:
                size = d.execute(f"dt nt!_MMPTE_LIST {pte + 4:x} NextEntry").split("(")[1]
                assert int(size.rstrip(")\n"), 16) == n
        assert wrk.nt.sysva.free[-1][1] == 1
    finally:
        for va, n in zip(taken[1::2], (3, 5)):
            sva.release(va, n)
    assert d.execute("!sysptes 1").splitlines()[-1].startswith("  free blocks: 1 ")


def test_a_broken_chain_is_reported_not_followed(wrk):
    d = wrk.debugger
    first = d.execute("dd MmFirstFreeSystemPte L1").split()[1]
    d.execute("ed MmFirstFreeSystemPte 00001000")         # index 1: a PTE outside the pool
    try:
        out = d.execute("!sysptes 1").splitlines()
        assert out[-3:] == ["      free PTE chain broken at c0000004", "",
                            "  free blocks: 0   total free: 0    largest free block: 0"]
    finally:
        d.execute(f"ed MmFirstFreeSystemPte {first}")


@pytest.mark.parametrize("line, expected", [
    ("!sysptes zz", "Couldn't resolve error at 'zz'\n"),
    ("!sysptes 1 2", "                  ^ Syntax error in '!sysptes 1 2'\n"),
])
def test_sysptes_bad_arguments(wrk, line, expected):
    assert wrk.debugger.execute(line) == expected
