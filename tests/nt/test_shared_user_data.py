"""The user view of KUSER_SHARED_DATA at 7ffe0000: one read-only page mapping the kernel's
shared page in every process; on Windows 7 a private READONLY VAD reserves its 64 KB
granule without committing it, the WRK has no VAD there at all."""
import pytest

import kdsim
from kdsim.nt import protect as pr
from kdsim.nt.fault import access
from kdsim.nt.invariants import check

TARGETS = ["win7-x64", "win7-x86pae", "win7-x86", "wrk-x86"]
SHARED = 0x7FFE0000


@pytest.fixture(scope="module", params=TARGETS)
def machine(request):
    m = kdsim.boot(request.param, ram="256m", scenario="none")
    return m, m.nt.spawn("a.exe")


def test_the_first_page_maps_the_kernels_shared_page_read_only(machine):
    m, p = machine
    nt = m.nt
    d = nt.codec.decode(p.tables.get(SHARED))
    assert d.kind == "valid" and not d.writable and not d.dirty and d.owner
    assert d.pfn == nt.shared_data_pa >> 12
    kernel = nt.profile.address_space.shared_user_data_va
    assert access(nt, p, SHARED, 0x40) == (0, nt.kmem.read(kernel, 0x40))
    assert access(nt, p, SHARED, b"x", "w")[0] == pr.STATUS_ACCESS_VIOLATION


def test_the_rest_of_the_granule_is_not_accessible(machine):
    m, p = machine
    for va in (SHARED + 0x1000, SHARED + 0xF000):
        assert access(m.nt, p, va, 1)[0] == pr.STATUS_ACCESS_VIOLATION
        assert not p.tables.get(va)                  # no page was made for it
    assert check(m.core, m.nt.profile, m.nt.symbols) == []


def test_windows_7_reserves_the_granule_with_a_vad_the_wrk_has_none(machine):
    m, p = machine
    vad = m.nt.vm.vad_at(p, SHARED)
    if m.target == "wrk-x86":
        assert vad is None
        return
    assert (vad.start, vad.end, vad.private, vad.mem_commit, vad.protection,
            vad.commit_charge) == (SHARED, SHARED + 0x10000, 1, 0, pr.MM_READONLY, 0)


def test_vad_rows(machine):
    m, p = machine
    d = m.debugger
    d.execute(f".process /p {p.ep:x}")
    rows = [line for line in d.execute("!vad").splitlines() if "7ffe0" in line]
    d.execute(".process 0")
    want = {"win7-x64": "      7ffe0    7ffef         0 Private      READONLY",
            "win7-x86": "      7ffe0    7ffef         0 Private      READONLY",
            "win7-x86pae": "      7ffe0    7ffef         0 Private      READONLY"}
    if m.target == "wrk-x86":
        assert rows == []
    else:
        assert len(rows) == 1 and rows[0].endswith(want[m.target])


def test_a_process_that_ends_gives_its_share_of_the_page_back(machine):
    m, _ = machine
    nt = m.nt
    pfn = nt.shared_data_pa >> 12
    before = int(nt.pfn.e["u2"][pfn])
    q = nt.spawn("b.exe")
    assert int(nt.pfn.e["u2"][pfn]) == before + 1
    nt.terminate(q)
    assert int(nt.pfn.e["u2"][pfn]) == before
    assert check(m.core, nt.profile, nt.symbols) == []
