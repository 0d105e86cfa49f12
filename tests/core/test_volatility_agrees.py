"""An outside opinion: volatility3's Intel layers read the guest's page tables the way the
core does.

In each paging mode, tables are built in a 2 GB guest: a few hundred 4 KB pages (a
contiguous run across a table boundary and scattered ones, in both halves of the address
space), a few large pages (4 MB or 2 MB, and a 1 GB page in 4-level mode), and
not-present entries at every level with junk in their other bits.  Volatility3's
``Intel``/``IntelPAE``/``Intel32e`` layer sits on a physical layer that reads the guest's
RAM; the core's debugger probe, the reference walker and volatility3 must then give the
same physical address for every mapped address, fail for the same unmapped ones (at the
same level), and find the same mapped ranges when the whole address space is swept.

Only what both sides define is compared.  Volatility3 ignores U/S, R/W, XD, A/D/G, CR4.PSE
and reserved bits, so the tables use no reserved bits, and the core is asked a kernel
read (which no right can refuse) with CR4.PSE on.  Volatility3 quirks worked around:

* ``Intel`` has no PSE-36: it ORs PDE bits 21:12 into a 4 MB page's address, so the 4 MB
  PDEs keep bits 21:13 clear (bit 12, PAT, it strips).
* ``IntelPAE`` takes 40 address bits and ``Intel32e`` 52, the machine 48 (MAXPHYADDR):
  every address used is below 2**40 and entries keep bits 51:40 clear.
* A table whose entries are all equal is "not a table" to volatility3 (its Windows 10
  heuristic in ``Intel._get_valid_table``), so no table here is uniform (never empty).
* Volatility3 calls an address valid only if the physical layer holds the page it maps
  to, so every page maps inside guest RAM (hence the 2 GB guest, for the 1 GB page).
* Volatility3 caches translations: the tables are finished before the layer is made.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from kdsim.machine import BAD_PA, STATUS, Machine
from tests.core import refwalk
from tests.core.refwalk import GB1, KB4, MB2, MB4, PS, P, Paging
from tests.core.tables import TableBuilder, machine_reader, random_leaf_flags, set_paging

vol_exceptions = pytest.importorskip("volatility3.framework.exceptions")
from volatility3.framework.layers import intel  # noqa: E402

from tests.vol3 import volatility_layer as _volatility_layer  # noqa: E402

RAM = 2 << 30
LARGE = {"x86": MB4, "pae": MB2, "x64": MB2}
LAYER = {"x86": intel.Intel, "pae": intel.IntelPAE, "x64": intel.Intel32e}
VA_BITS = {"x86": 32, "pae": 32, "x64": 48}


def volatility_layer(m: Machine, mode: str, cr3: int):
    return _volatility_layer(m, LAYER[mode], cr3)


def canonical(va: int) -> int:
    return va | (0xFFFF << 48) if va >> 47 & 1 else va


class Guest:
    """The tables of one mode in a fresh 2 GB guest, the volatility3 layer over them, what
    they map (``pt.mappings``) and addresses left unmapped on purpose (``unmapped``: with
    the level whose entry is not present, or None when any level will do)."""

    def __init__(self, mode: str, seed: int = 7):
        self.mode = mode
        self.rnd = rnd = random.Random(seed)
        self.m = Machine(RAM)
        self.pt = TableBuilder(self.m, mode)
        self.unmapped: list[tuple[int, int | None]] = []
        # Frames for 4 KB pages come from [16 MB, 1 GB); large pages from the top of that.
        self._frames = iter(rnd.sample(range(0x1000, 0x30000), 4000))
        self._large = iter(range(0x30000000, 0x40000000, MB4))

        if mode == "x64":
            regions = [0x0000_0000_7FF0_0000, 0x0000_7FF7_1234_0000, 0xFFFF_F800_0280_0000,
                       0xFFFF_FA80_0000_0000]
        else:
            regions = [0x007E_0000, 0x1000_0000, 0x8000_0000, 0xC0C0_0000]
        self._contiguous(regions[0], 160)                  # crosses a page-table boundary
        for _ in range(140):
            self._map4k(rnd.choice(regions[1:]) + rnd.randrange(0x400) * KB4)
        large = LARGE[mode]
        base = {"x64": 0xFFFF_F880_0000_0000, "x86": 0x8040_0000, "pae": 0x8040_0000}[mode]
        for i in range(3):                                 # adjacent: one mapped range
            self.pt.map(base + i * large, next(self._large), large, self._flags(), self._upper())
        self.pt.map(base + 8 * large, next(self._large), large, self._flags(), self._upper())
        if mode == "x64":
            self.pt.map(0xFFFF_F8C0_0000_0000, GB1, GB1, self._flags(), self._upper())
        self._not_present()
        self.paging = Paging(mode, self.pt.cr3, wp=True, nxe=True, pse=True, pge=True)
        set_paging(self.m, self.paging)
        self.layer = volatility_layer(self.m, mode, self.pt.cr3)   # tables final by now

    def _flags(self) -> int:
        return random_leaf_flags(self.rnd, self.mode)

    def _upper(self) -> int:
        # R/W, U/S and XD vary in the tables above the leaf too; a kernel read ignores them.
        return P | (random_leaf_flags(self.rnd, self.mode) & ~(PS | refwalk.G | refwalk.D))

    def _map4k(self, va: int) -> None:
        if any(v <= va < v + size for v, _, size in self.pt.mappings):
            return
        self.pt.map(va, next(self._frames) << 12, KB4, self._flags(), self._upper())

    def _contiguous(self, va: int, n: int) -> None:
        for i in range(n):
            self._map4k(va + i * KB4)

    def _junk(self) -> int:
        """A not-present entry as an OS leaves them: frame, protection, PS bits; never 0."""
        junk = self.rnd.randrange(1, 1 << 28) << 12 | self.rnd.randrange(1 << 12)
        return junk & ~P & ((1 << 8 * self.pt.geo.entry_size) - 1)

    def _not_present(self) -> None:
        mode, pt = self.mode, self.pt
        mapped4k = [va for va, _, size in pt.mappings if size == KB4]
        # Leaf PTEs inside mapped page tables.
        for va in self.rnd.sample(mapped4k, 12):
            pt.mappings = [mp for mp in pt.mappings if mp[0] != va]
            pt.unmap_at(va, 1, self._junk())
            self.unmapped.append((va, 1))
        # A PDE (and, above it, a PDPTE and a PML4E) not present in otherwise used tables.
        pde_va = {"x64": 0xFFFF_F800_0400_0000, "x86": 0xC000_0000, "pae": 0xC000_0000}[mode]
        pt.unmap_at(pde_va, 2, self._junk() | PS)
        self.unmapped.append((pde_va, 2))
        if mode == "pae":
            pt.unmap_at(0x4000_0000, 3, self._junk())      # PDPTE 1: no PD at all
            self.unmapped.append((0x4000_0000, 3))
        if mode == "x64":
            pt.unmap_at(0xFFFF_F801_0000_0000, 3, self._junk() | PS)
            self.unmapped.append((0xFFFF_F801_0000_0000, 3))
            pt.unmap_at(0xFFFF_F900_0000_0000, 4, self._junk())
            self.unmapped.append((0xFFFF_F900_0000_0000, 4))
        # Whatever lies just before and after mapped pages, when nothing maps it.
        for va, _, size in self.rnd.sample(pt.mappings, 60):
            for near in (va - size, va + size):
                if not any(v <= near < v + s for v, _, s in pt.mappings):
                    self.unmapped.append((near, None))


LEVEL_SHIFT = {mode: {lv.number: lv.shift for lv in geo.levels}
               for mode, geo in refwalk.GEOMETRY.items()}


@pytest.fixture(scope="module", params=["x86", "pae", "x64"])
def guest(request):
    return Guest(request.param)


def _vol_translate(layer, va: int):
    """Volatility3's physical address for ``va``, or the number of address bits its
    failing entry maps (``invalid_bits``: 12 for a PTE, 21/22 for a PDE, ...)."""
    try:
        pa, _ = layer.translate(va)
        return pa, None
    except vol_exceptions.PagedInvalidAddressException as e:
        return None, e.invalid_bits


def _offsets(size: int, rnd: random.Random) -> list[int]:
    if size == KB4:
        return [0, rnd.randrange(KB4), KB4 - 1]
    if size == GB1:
        return [0, size - 1] + [rnd.randrange(size) for _ in range(64)]
    return list(range(0, size, KB4)) + [size - 1, rnd.randrange(size)]


def test_every_mapped_address_translates_to_the_same_physical_address(guest):
    rnd = random.Random(1)
    mem = refwalk.PhysMem(machine_reader(guest.m))
    n = 0
    assert len(guest.pt.mappings) >= 280
    for va, pa, size in guest.pt.mappings:
        for off in _offsets(size, rnd):
            t = guest.m.translate(va + off)
            ref = refwalk.translate(mem, guest.paging, va + off)
            vol_pa, _ = _vol_translate(guest.layer, va + off)
            assert (t.pa, ref.pa, vol_pa) == (pa + off,) * 3, f"{guest.mode} va {va + off:#x}"
            assert t.page_size == size
            n += 1
    assert n > 1000


def test_addresses_left_unmapped_fail_in_both_at_the_same_level(guest):
    mem = refwalk.PhysMem(machine_reader(guest.m))
    for va, level in guest.unmapped:
        t = guest.m.translate(va)
        ref = refwalk.translate(mem, guest.paging, va)
        vol_pa, invalid_bits = _vol_translate(guest.layer, va)
        assert (t.status, t.error_code) == (STATUS["page_fault"], 0), f"{va:#x}"
        assert (ref.status, ref.fault_level) == ("page_fault", t.fault_level), f"{va:#x}"
        # invalid_bits is the number of address bits below the failing entry's index.
        assert (vol_pa, invalid_bits) == (None, LEVEL_SHIFT[guest.mode][t.fault_level]), \
            f"{va:#x}"
        if level is not None:
            assert t.fault_level == level, f"{va:#x}"


def _merge(runs):
    """Sorted ``(va, pa, length)`` runs, neighbours joined when both addresses continue."""
    out = []
    for va, pa, n in sorted(runs):
        if out and out[-1][0] + out[-1][2] == va and out[-1][1] + out[-1][2] == pa:
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + n)
        else:
            out.append((va, pa, n))
    return out


def _core_runs(m: Machine, start: int, length: int):
    """The core's mapped runs in ``[start, start+length)``, swept a page at a time."""
    vas = np.arange(start, start + length, KB4, dtype=np.uint64)
    pas, status = m.translate_batch(vas)
    ok = status == STATUS["ok"]
    assert np.all((pas != BAD_PA) == ok)
    return _merge((int(v), int(p), KB4) for v, p in zip(vas[ok], pas[ok]))


def test_sweeping_the_address_space_finds_the_same_mapped_ranges(guest):
    mode = guest.mode
    expected = _merge(guest.pt.mappings)
    # Volatility3 over the whole address space (its 4-level offsets are 48-bit, uncanonical).
    vol = _merge((canonical(va) if mode == "x64" else va, pa, n) for va, _, pa, n, _ in
                 guest.layer.mapping(0, 1 << VA_BITS[mode], ignore_errors=True))
    assert vol == expected
    # The core page by page: all of 32-bit space; in 4-level mode every 1 GB region the
    # tables touch, and the first address of every other 1 GB region.
    if mode != "x64":
        assert _core_runs(guest.m, 0, 1 << 32) == expected
        return
    regions = sorted({va & ~(GB1 - 1) for va, _, _ in guest.pt.mappings} |
                     {va & ~(GB1 - 1) for va, _ in guest.unmapped})
    core = []
    for r in regions:
        core += _core_runs(guest.m, r, GB1)
    assert _merge(core) == expected
    firsts = np.array([canonical(i << 30) for i in range(1 << 18)], dtype=np.uint64)
    _, status = guest.m.translate_batch(firsts)
    mapped = {int(v) for v, s in zip(firsts, status) if s == STATUS["ok"]}
    assert mapped <= set(regions)


def test_the_guest_layout_is_as_planned(guest):
    """The checks above are only as good as the tables: every page size is there."""
    sizes = {size for _, _, size in guest.pt.mappings}
    want = {"x86": {KB4, MB4}, "pae": {KB4, MB2}, "x64": {KB4, MB2, GB1}}[guest.mode]
    assert sizes == want
    assert sum(size == KB4 for _, _, size in guest.pt.mappings) >= 250
    assert {lv for _, lv in guest.unmapped if lv} == set(LEVEL_SHIFT[guest.mode])
