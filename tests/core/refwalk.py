"""A reference x86 page walker in pure Python, the oracle the C core is checked against.

Written from the architecture (Intel SDM Vol. 3A ch. 4: 32-bit paging §4.3, PAE §4.4,
4-level §4.5, access rights §4.6, page-fault error code §4.7, A/D flags §4.8), not from
``csrc/mmu.c``; it shares no code or constants with ``kdsim``.  It favours plain,
level-by-level statements of the rules over speed.

Physical memory is a ``bytearray``/``bytes`` (RAM from address 0, optionally restricted
to ``runs``) or a pair of callables: ``read(pa, n) -> bytes | None`` (None outside RAM)
and, for CPU accesses that set Accessed/Dirty, ``write(pa, data)``.

Conventions of the kdsim API that the architecture leaves open, and which this walker
follows: ``levels`` lists every entry read, failing one included, top first; a CPU access
records an entry's value *after* the Accessed/Dirty bits it set; an entry whose address is
outside RAM fails the walk with status ``"phys"`` at that entry's level (it is not in
``levels``); a 32-bit-mode address above 4 GB fails with ``"va_range"``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

# Paging-structure entry bits (SDM tables 4-4..4-20).
P, RW, US, PWT, PCD, A, D, PS, G = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100
PAT_LARGE = 1 << 12
XD = 1 << 63

# Page-fault error code bits (SDM §4.7).
EC_P, EC_W, EC_U, EC_RSVD, EC_ID = 0x1, 0x2, 0x4, 0x8, 0x10

KB4, MB2, MB4, GB1 = 1 << 12, 1 << 21, 1 << 22, 1 << 30


def bits(hi: int, lo: int) -> int:
    """Mask of bits hi..lo inclusive (empty when hi < lo)."""
    if hi < lo:
        return 0
    return ((1 << (hi + 1)) - 1) & ~((1 << lo) - 1)


class Level(NamedTuple):
    number: int        # 4 PML4E, 3 PDPTE, 2 PDE, 1 PTE
    shift: int         # lowest VA bit that indexes this table
    index_bits: int
    large: int         # page size a PS=1 entry maps here, 0 if PS is not a page-size bit
    rights: bool       # the entry has R/W, U/S and A (PAE PDPTEs have none of them)


class Geometry(NamedTuple):
    entry_size: int
    levels: tuple


GEOMETRY = {
    # 32-bit paging: CR3 -> PD (1024 x 4 bytes) -> PT; PDE.PS maps 4 MB (with CR4.PSE).
    "x86": Geometry(4, (Level(2, 22, 10, MB4, True), Level(1, 12, 10, 0, True))),
    # PAE: CR3[31:5] -> 4 PDPTEs -> PD -> PT; PDE.PS maps 2 MB.
    "pae": Geometry(8, (Level(3, 30, 2, 0, False), Level(2, 21, 9, MB2, True),
                        Level(1, 12, 9, 0, True))),
    # 4-level: PML4 -> PDPT -> PD -> PT; PDPTE.PS maps 1 GB, PDE.PS maps 2 MB.
    "x64": Geometry(8, (Level(4, 39, 9, 0, True), Level(3, 30, 9, GB1, True),
                        Level(2, 21, 9, MB2, True), Level(1, 12, 9, 0, True))),
}


@dataclass(frozen=True)
class Paging:
    """The paging state: mode and the control-register bits the walk depends on."""
    mode: str
    cr3: int
    wp: bool = True       # CR0.WP
    nxe: bool = True      # IA32_EFER.NXE
    pse: bool = True      # CR4.PSE (32-bit paging only)
    pge: bool = True      # CR4.PGE
    maxphyaddr: int = 48


@dataclass
class Walk:
    """The reference outcome of one translation."""
    va: int
    status: str = "ok"            # ok, page_fault, phys, noncanonical, va_range
    pa: Optional[int] = None
    page_size: Optional[int] = None
    levels: list = field(default_factory=list)   # [(entry_pa, value)], top first
    fault_level: int = 0
    error_code: int = 0
    writable: bool = False
    user: bool = False
    executable: bool = False
    global_page: bool = False
    dirty: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def reserved_bits(paging: Paging, level: Level, large: bool) -> int:
    """The bits that must be 0 in a present entry at ``level`` (SDM §4.3-§4.5)."""
    M = paging.maxphyaddr
    no_xd = 0 if paging.nxe else XD          # XD is reserved unless EFER.NXE=1
    if paging.mode == "x86":
        if level.number == 2 and large:
            # A 4 MB PDE carries PA bits (m-1):32 in bits (m-20):13 (PSE-36), m = min(M, 40);
            # bits 21:(m-19) are reserved.
            m = min(M, 40)
            return bits(21, m - 19)
        return 0
    if paging.mode == "pae":
        if level.number == 3:
            # A PDPTE has only P, PWT, PCD, the address and ignored bits 11:9.
            return bits(63, M) | bits(2, 1) | bits(8, 5)
        mask = bits(62, M) | no_xd
        if large:
            mask |= bits(20, 13)                 # 2 MB page: bits 20:13 are reserved
        return mask
    mask = bits(51, M) | no_xd
    if level.number == 4:
        mask |= PS                               # PS is reserved in a PML4E
    elif large and level.number == 3:
        mask |= bits(29, 13)                     # 1 GB page
    elif large and level.number == 2:
        mask |= bits(20, 13)                     # 2 MB page
    return mask


def table_base(paging: Paging) -> int:
    """Physical address of the top-level table from CR3."""
    if paging.mode == "x86":
        return paging.cr3 & bits(31, 12)
    if paging.mode == "pae":
        return paging.cr3 & bits(31, 5)          # the PDPT is 32-byte aligned, below 4 GB
    return paging.cr3 & bits(paging.maxphyaddr - 1, 12)


def next_table(paging: Paging, entry: int) -> int:
    if paging.mode == "x86":
        return entry & bits(31, 12)
    return entry & bits(paging.maxphyaddr - 1, 12)


def page_frame(paging: Paging, entry: int, size: int) -> int:
    """Base physical address of the page a leaf entry maps."""
    if paging.mode == "x86":
        if size == MB4:
            # PSE-36: PDE bits 20:13 are PA bits 39:32 (reserved ones were rejected already).
            return (entry & bits(31, 22)) | (((entry >> 13) & 0xFF) << 32)
        return entry & bits(31, 12)
    return entry & bits(paging.maxphyaddr - 1, size.bit_length() - 1)


class PhysMem:
    """Guest physical memory as the walker sees it."""

    def __init__(self, mem, runs=None, write: Callable[[int, bytes], None] | None = None):
        if callable(mem):
            self._read, self._write = mem, write
        else:
            self._buf = mem
            size = len(mem)
            self._runs = [(0, size)] if runs is None else [(s, s + n) for s, n in runs]
            self._read, self._write = self._buf_read, (write or self._buf_write)

    def _inside(self, pa: int, n: int) -> bool:
        return any(s <= pa and pa + n <= e for s, e in self._runs)

    def _buf_read(self, pa: int, n: int):
        if not self._inside(pa, n):
            return None
        return bytes(self._buf[pa:pa + n])

    def _buf_write(self, pa: int, data: bytes) -> None:
        self._buf[pa:pa + len(data)] = data

    def read_entry(self, pa: int, size: int) -> Optional[int]:
        raw = self._read(pa, size)
        if raw is None:
            return None
        return int.from_bytes(raw, "little")

    def write_entry(self, pa: int, size: int, value: int) -> None:
        if self._write is None:
            raise TypeError("this physical memory is read-only: CPU accesses need a writer")
        self._write(pa, value.to_bytes(size, "little"))


def translate(mem, paging: Paging, va: int, access: str = "r", user: bool = False,
              probe: bool = True) -> Walk:
    """Translate ``va`` for an access ``"r"``/``"w"``/``"x"`` at CPL 3 (``user``) or 0.

    A probe only reads; a CPU access (``probe=False``) sets Accessed in each non-leaf entry
    it uses and, when the access is allowed, Accessed (and Dirty for a write) in the leaf."""
    if not isinstance(mem, PhysMem):
        mem = PhysMem(mem)
    assert access in ("r", "w", "x")
    w = Walk(va=va)
    mode = paging.mode
    geo = GEOMETRY[mode]
    if mode == "x64":
        top = va >> 47                            # bits 63:47 must be all 0 or all 1
        if top not in (0, (1 << 17) - 1):
            w.status = "noncanonical"
            return w
    elif va >> 32:
        w.status = "va_range"
        return w

    write, fetch = access == "w", access == "x"
    nx_active = paging.nxe and mode != "x86"     # XD exists only in PAE and 4-level paging
    base_ec = (EC_W if write else 0) | (EC_U if user else 0) | (EC_ID if fetch and nx_active else 0)

    def fault(level: Level, ec: int) -> Walk:
        w.status, w.fault_level, w.error_code = "page_fault", level.number, ec
        return w

    table = table_base(paging)
    writable, user_ok, xd = True, True, False
    for depth, level in enumerate(geo.levels):
        index = (va >> level.shift) & ((1 << level.index_bits) - 1)
        epa = table + index * geo.entry_size
        entry = mem.read_entry(epa, geo.entry_size)
        if entry is None:
            w.status, w.fault_level = "phys", level.number
            return w
        w.levels.append((epa, entry))
        if not entry & P:
            return fault(level, base_ec)
        is_large = bool(level.large and entry & PS and (mode != "x86" or paging.pse))
        if entry & reserved_bits(paging, level, is_large):
            return fault(level, base_ec | EC_P | EC_RSVD)
        if level.rights:
            writable = writable and bool(entry & RW)
            user_ok = user_ok and bool(entry & US)
            xd = xd or (geo.entry_size == 8 and bool(entry & XD))
        is_leaf = is_large or depth == len(geo.levels) - 1
        if not is_leaf:
            if not probe and level.rights and not entry & A:
                entry |= A
                mem.write_entry(epa, geo.entry_size, entry)
                w.levels[-1] = (epa, entry)
            table = next_table(paging, entry)
            continue

        # The leaf: access rights combined over every level (SDM §4.6, no SMEP/SMAP).
        executable = not (nx_active and xd)
        if user and not user_ok:
            return fault(level, base_ec | EC_P)
        if write and not writable and (user or paging.wp):
            return fault(level, base_ec | EC_P)
        if fetch and not executable:
            return fault(level, base_ec | EC_P)
        if not probe:
            new = entry | A | (D if write else 0)
            if new != entry:
                mem.write_entry(epa, geo.entry_size, new)
                w.levels[-1] = (epa, new)
                entry = new
        size = level.large if is_large else KB4
        w.pa = page_frame(paging, entry, size) | (va & (size - 1))
        w.page_size = size
        w.writable, w.user, w.executable = writable, user_ok, executable
        w.global_page = bool(entry & G) and paging.pge
        w.dirty = bool(entry & D)
        return w
    raise AssertionError("the last level is always a leaf")


def entry_bytes(value: int, entry_size: int) -> bytes:
    return struct.pack("<Q" if entry_size == 8 else "<I", value)
