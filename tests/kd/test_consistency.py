"""Commands that show the same guest memory agree: dt on a PFN entry and !pfn; eq on a
PTE and what !pte, !vtop and db show next."""
import re

import pytest

import kdsim
from kdsim.nt.pfn import ACTIVE, MODIFIED, STANDBY, ZEROED


def dt_fields(text: str) -> dict[str, str]:
    """``dt -r`` output as dotted field path -> the value text."""
    out, stack = {}, []
    for line in text.splitlines():
        m = re.match(r"^( +)\+0x[0-9a-f]+ (\S+)\s*: ?(.*)$", line)
        if not m:
            continue
        level = (len(m.group(1)) - 3) // 3
        stack[level:] = [m.group(2)]
        out.setdefault(".".join(stack), m.group(3).strip())
    return out


def number(text: str) -> int:
    """A dt value: 0n decimal, 0x hex (with a backtick), bare decimal, or 0y binary."""
    text = text.split()[0].replace("`", "")
    if text == "(null)":                  # a null pointer
        return 0
    if text.startswith("0y"):
        return int(text[2:], 2)
    if text.startswith("0n"):
        return int(text[2:])
    return int(text, 16) if text.startswith("0x") else int(text)


def pfn_fields(text: str) -> dict[str, int]:
    words = " ".join(text.split())
    grab = {"flink": r"flink (\w+)", "share": r"share count (\w+)",
            "pte": r"pteaddress (\w+)", "refs": r"reference count (\w+)",
            "restore": r"restore pte (\w+)", "frame": r"containing page (\w+)"}
    return {k: int(re.search(p, words).group(1), 16) for k, p in grab.items()}


@pytest.fixture(scope="module", params=["win7-x64", "wrk-x86"])
def machine(request):
    m = kdsim.boot(request.param)
    nt = m.nt
    # a standby page: trim a page of a process
    proc = nt.process_objects[max(nt.process_objects)]
    nt.trim_page(proc, proc.peb)        # written at creation: it goes to the modified list
    return m


def test_dt_of_a_pfn_entry_shows_what_pfn_prints(machine):
    nt, d = machine.nt, machine.debugger
    size = nt.ts.sizeof("_MMPFN")
    picks = []
    for location in (ACTIVE, ZEROED, STANDBY):
        pages = [p for p in range(0, nt.pfn.count, 97) if nt.pfn.location(p) == location]
        if location == STANDBY:           # the trimmed page: standby or modified
            pages = list(nt.pfn.walk(STANDBY, 3)) + list(nt.pfn.walk(MODIFIED, 3))
        assert pages, location
        picks += pages[:3]
    for pfn in picks:
        p = pfn_fields(d.execute(f"!pfn {pfn:x}"))
        f = dt_fields(d.execute(f"dt nt!_MMPFN poi(nt!MmPfnDatabase)+{pfn:x}*{size:x} -r3"))
        assert number(f["u1.Flink"]) == p["flink"], pfn
        assert number(f["u2.ShareCount"]) == p["share"], pfn
        assert number(f["PteAddress"]) == p["pte"], pfn
        assert number(f["u3.e2.ReferenceCount"]) == p["refs"], pfn
        assert number(f["OriginalPte.u.Long"]) == p["restore"], pfn
        frame = f["u4.PteFrame"]
        frame_value = int(frame.split("(0x")[1].rstrip(")"), 16) if "(0x" in frame \
            else number(frame)
        assert frame_value == p["frame"], pfn
        # and both are the memory manager's entry
        assert p["share"] == int(nt.pfn.e["u2"][pfn]) and p["pte"] == int(nt.pfn.e["pte"][pfn])


@pytest.mark.parametrize("target", ["win7-x64", "win7-x86pae", "wrk-x86"])
def test_eq_on_a_pte_changes_what_pte_vtop_and_db_show(target):
    m = kdsim.boot(target, ram="256m")
    nt, d = m.nt, m.debugger
    proc = nt.process_objects[max(nt.process_objects)]
    d.execute(f".process /p {proc.ep:x}")
    va = proc.peb
    pte_va = nt.profile.pte_address(va)
    kernel = m.core.translate(nt.profile.address_space.kernel_base).pa   # "MZ" there
    size = nt.profile.pte_size
    old = int(d.execute(f"{'dq' if size == 8 else 'dd'} {pte_va:x} L1").split()[1]
              .replace("`", ""), 16)
    new = (old & ~((1 << 52) - 1 - 0xFFF) & ~0xFFF) | kernel | 0x67 if size == 8 \
        else (kernel | 0x67)
    d.execute(f"{'eq' if size == 8 else 'ed'} {pte_va:x} {new:x}")
    pte = d.execute(f"!pte {va:x}")
    assert f"contains {new:0{2 * size}X}" in pte and f"pfn {kernel >> 12:x}" in pte
    dirbase = proc.cr3
    vtop = d.execute(f"!vtop {dirbase:x} {va:x}")
    assert vtop.splitlines()[-1] == \
        f"Virtual address {va:x} translates to physical address {kernel:x}."
    assert d.execute(f"db {va:x} L2").split()[1:3] == ["4d", "5a"]


def test_expressions_read_in_the_implicit_process_like_dd():
    """poi() and friends read user addresses in the .process context, not in whatever
    address space the CPU has loaded."""
    m = kdsim.boot("win7-x86", ram="256m")
    nt, d = m.nt, m.debugger
    a, b = list(nt.process_objects.values())[-2:]
    nt.vm.allocate(a, 0x1000, 0x500000, protect=0x04)
    nt.vm.allocate(b, 0x1000, 0x500000, protect=0x04)
    from kdsim.nt.fault import access
    assert access(nt, a, 0x500000, b"AAAA", "w")[0] == 0
    assert access(nt, b, 0x500000, b"BBBB", "w")[0] == 0     # B's tables are loaded now
    d.execute(f".process /p {a.ep:x}")
    assert d.execute("? dwo(500000)") == "Evaluate expression: 1094795585 = 41414141\n"
    assert d.execute("dd 500000 L1").split()[1] == "41414141"
    d.execute(f".process /p {b.ep:x}")
    assert d.execute("? by(500000)") == "Evaluate expression: 66 = 00000042\n"
