"""!ptov: every physical page an address space maps and where, from a walk of its tables
in physical memory; each pair agrees with the MMU's own translation."""
import time

import pytest

import kdsim

# notepad's user pages: its heap's first page (the loader's module list), its buffer, its
# image, the DLL pages it touched, TEB/PEB and the shared user data page, in VA order.
USER = {
    "win7-x64": """\
Amd64PtoV: pagedir 12d000
148000 210000
14a000 211000
14d000 214000
14e000 215000
14f000 216000
150000 217000
159000 219000
153000 21a000
154000 21b000
3203000 7ffe0000
144000 00000001`3f000000
150000 000007fe`fefa0000
152000 000007fe`fefc8000
16000 000007fe`fefe0000
1a000 000007fe`fefe1000
14e000 000007ff`fffdd000
14f000 000007ff`fffde000
14b000 000007ff`fffdf000
141000 fffff680`00000000
156000 fffff680`00001000
13f000 fffff680`003ff000
""",
    "win7-x86pae": """\
X86PtoV: pagedir 3000140, PAE enabled.
90000 210000
92000 211000
95000 214000
96000 215000
97000 216000
98000 217000
102000 219000
9b000 21a000
9c000 21b000
86000 400000
8b000 77fa0000
8d000 77fc8000
f000 77fe0000
11000 77fe1000
8a000 7ffde000
89000 7ffdf000
3005000 7ffe0000
2a00000 82a00000
2a01000 82a01000
""",
    "win7-x86": """\
X86PtoV: pagedir 62000
72000 210000
73000 211000
76000 214000
77000 215000
78000 216000
79000 217000
81000 219000
7c000 21a000
7d000 21b000
68000 400000
6d000 77fa0000
6f000 77fc8000
c000 77fe0000
e000 77fe1000
6c000 7ffde000
6b000 7ffdf000
3001000 7ffe0000
2800000 82800000
2801000 82801000
""",
}
LINES = {"win7-x64": 2885, "win7-x86pae": 2031, "win7-x86": 2472}


@pytest.fixture(scope="module", params=["win7-x64", "win7-x86pae", "win7-x86"])
def m(request):
    return kdsim.boot(request.param, ram="256m", scenario="default")


def pairs(out: str) -> list[tuple[int, int]]:
    return [tuple(int(w.replace("`", ""), 16) for w in line.split())
            for line in out.splitlines()[1:]]


def test_ptov_of_notepad(m):
    notepad = m.nt.scenario["processes"]["notepad"]
    out = m.debugger.execute(f"!ptov {notepad.cr3:x}")
    assert out.startswith(USER[m.target])
    assert len(out.splitlines()) == LINES[m.target]


def test_ptov_pairs_agree_with_the_translation_of_every_process(m):
    for proc in [*m.nt.process_objects.values()]:
        listed = pairs(m.debugger.execute(f"!ptov {proc.cr3:x}"))
        vas = [va for _, va in listed]
        assert vas == sorted(vas) and len(set(vas)) == len(vas)
        for pa, va in listed:
            t = m.debugger.target.translate(va, cr3=proc.cr3)
            assert t.ok and t.pa == pa, (proc.name, hex(va))
        for pa, va in (listed[0], listed[len(listed) // 2], listed[-1]):
            assert m.debugger.execute(f"!vtop {proc.cr3:x} {va:x}").splitlines()[-1] == \
                f"Virtual address {va:x} translates to physical address {pa:x}."


def test_ptov_lists_every_page_of_the_working_set(m):
    notepad = m.nt.scenario["processes"]["notepad"]
    listed = dict((va, pa) for pa, va in pairs(m.debugger.execute(f"!ptov {notepad.cr3:x}")))
    for va in notepad.ws.entries:
        assert listed[va] == m.core.translate(va, cr3=notepad.cr3).pa


def test_ptov_lists_each_page_of_a_large_page(m):
    nt = m.nt
    base = nt.profile.address_space.kernel_base
    out = pairs(m.debugger.execute(f"!ptov {m.nt.scenario['processes']['smss'].cr3:x}"))
    image = [(pa, va) for pa, va in out if base <= va < base + 0x200000]
    assert len(image) == 0x200            # nt's large pages, one line per 4 KB page
    assert all(pa == va - nt.profile.address_space.kseg0_base for pa, va in image)


def test_ptov_0_is_the_implicit_process(m):
    d = m.debugger
    explorer = m.nt.scenario["processes"]["explorer"]
    d.execute(f".process /p {explorer.ep:x}")
    zero = d.execute("!ptov 0")
    d.execute(".process 0")
    assert zero == d.execute(f"!ptov {explorer.cr3:x}")


def test_ptov_is_fast_enough_for_every_process(m):
    start = time.perf_counter()
    for proc in m.nt.process_objects.values():
        m.debugger.execute(f"!ptov {proc.cr3:x}")
    assert time.perf_counter() - start < 2.0


def test_ptov_unreadable_directory_base(x64, x86):
    assert x64.debugger.execute("!ptov 7fffffff000") == \
        "Amd64PtoV: pagedir 7fffffff000\nPhysical memory read at 7fffffff000 failed\n"
    assert x86.debugger.execute("!ptov fffff000") == \
        "X86PtoV: pagedir fffff000\nPhysical memory read at fffff000 failed\n"


@pytest.mark.parametrize("line, expected", [
    ("!ptov", "            ^ Syntax error in '!ptov'\n"),
    ("!ptov zz", "Couldn't resolve error at 'zz'\n"),
    ("!ptov 1 2", "               ^ Syntax error in '!ptov 1 2'\n"),
])
def test_ptov_bad_arguments(x64, line, expected):
    assert x64.debugger.execute(line) == expected
