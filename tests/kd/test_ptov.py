"""!ptov: every physical page an address space maps and where, from a walk of its tables
in physical memory; each pair agrees with the MMU's own translation."""
import time

import pytest

import kdsim

# notepad's user pages: its heap's first page (the loader's module list), its buffer, its
# image, the DLL pages it touched, TEB/PEB and the shared user data page, in VA order.
USER = {
    "win7-x64": """\
Amd64PtoV: pagedir 136000
149000 110000
154000 210000
156000 211000
159000 214000
15a000 215000
15b000 216000
15c000 217000
165000 219000
15f000 21a000
160000 21b000
3203000 7ffe0000
143000 00000001`3f000000
14f000 000007fe`fefa0000
151000 000007fe`fefc8000
15000 000007fe`fefe0000
19000 000007fe`fefe1000
14d000 000007ff`fffdd000
14e000 000007ff`fffde000
14a000 000007ff`fffdf000
140000 fffff680`00000000
155000 fffff680`00001000
13e000 fffff680`003ff000
""",
    "win7-x86pae": """\
X86PtoV: pagedir 3000140, PAE enabled.
93000 110000
9b000 210000
9d000 211000
101000 214000
102000 215000
103000 216000
104000 217000
10d000 219000
107000 21a000
108000 21b000
90000 400000
96000 77fa0000
98000 77fc8000
10000 77fe0000
12000 77fe1000
95000 7ffde000
94000 7ffdf000
3005000 7ffe0000
2a00000 82a00000
2a01000 82a01000
""",
    "win7-x86": """\
X86PtoV: pagedir 6c000
75000 110000
7d000 210000
7e000 211000
81000 214000
82000 215000
83000 216000
84000 217000
8c000 219000
87000 21a000
88000 21b000
72000 400000
78000 77fa0000
7a000 77fc8000
d000 77fe0000
f000 77fe1000
77000 7ffde000
76000 7ffdf000
3001000 7ffe0000
2800000 82800000
2801000 82801000
""",
}
LINES = {"win7-x64": 3018, "win7-x86pae": 2097, "win7-x86": 2506}


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
