"""Page tables for the walk tests: random tables (property tests) and planned tables
(the volatility3 cross-check), plus the comparison of a core translation with the
reference walker's.  The architecture facts come from ``tests.core.refwalk``."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from kdsim.machine import STATUS, Machine
from tests.core.refwalk import (GEOMETRY, KB4, PCD, PS, PWT, RW, US, XD, A, D, G, P, Paging,
                                PhysMem, Walk, entry_bytes)

MODES = ("x86", "pae", "x64")

# -- comparing the core with the reference ---------------------------------------------

STATUS_NAMES = {code: name for name, code in STATUS.items()}


def core_fields(t) -> dict:
    """What a core ``Translation`` says, reduced to what the architecture defines."""
    out = {"status": STATUS_NAMES.get(t.status, t.status), "levels": tuple(t.levels)}
    if t.ok:
        out.update(pa=t.pa, page_size=t.page_size, writable=t.writable, user=t.user,
                   executable=t.executable, global_page=t.global_page, dirty=t.dirty)
    else:
        out["fault_level"] = t.fault_level
        if t.status == STATUS["page_fault"]:
            out["error_code"] = t.error_code
    return out


def ref_fields(w: Walk) -> dict:
    out = {"status": w.status, "levels": tuple(w.levels)}
    if w.ok:
        out.update(pa=w.pa, page_size=w.page_size, writable=w.writable, user=w.user,
                   executable=w.executable, global_page=w.global_page, dirty=w.dirty)
    else:
        out["fault_level"] = w.fault_level
        if w.status == "page_fault":
            out["error_code"] = w.error_code
    return out


def describe(paging: Paging, va: int, access: str, user: bool, probe: bool) -> str:
    flags = [name for name, on in (("WP", paging.wp), ("NXE", paging.nxe), ("PSE", paging.pse),
                                   ("PGE", paging.pge)) if on]
    return (f"{paging.mode} cr3={paging.cr3:#x} {'|'.join(flags) or '-'} "
            f"MAXPHYADDR={paging.maxphyaddr} va={va:#x} access={access} "
            f"{'user' if user else 'kernel'} {'probe' if probe else 'cpu'}")


def assert_same_walk(core_translation, ref: Walk, what: str) -> None:
    got, want = core_fields(core_translation), ref_fields(ref)
    if got != want:
        diff = {k: (got.get(k), want.get(k)) for k in sorted(set(got) | set(want))
                if got.get(k) != want.get(k)}
        raise AssertionError(f"{what}\n  differs (core, reference): {_hexify(diff)}\n"
                             f"  reference walk: {_hexify(want)}")


def _hexify(obj):
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, int):
        return hex(obj)
    if isinstance(obj, dict):
        return {k: _hexify(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_hexify(v) for v in obj)
    return obj


def machine_reader(m: Machine):
    """``read(pa, n)`` over a Machine's physical memory for ``PhysMem`` (None in holes)."""
    def read(pa: int, n: int):
        return m.read_physical(pa, n) if m.is_physical(pa, n) else None
    return read


def set_paging(m: Machine, paging: Paging) -> None:
    m.set_maxphyaddr(paging.maxphyaddr)
    m.set_paging(paging.mode, paging.cr3, wp=paging.wp, nxe=paging.nxe, pse=paging.pse,
                 pge=paging.pge)


# -- random tables -----------------------------------------------------------------------

RAM_SIZE = 0x100000                       # 256 frames; entries beyond it are "outside RAM"
HOLE = (0x80000, 0xA0000)                 # a hole in the runs, like the legacy VGA window
RUNS_WITH_HOLE = ((0, HOLE[0]), (HOLE[1], RAM_SIZE - HOLE[1]))
MAXPHYADDRS = (32, 36, 39, 40, 41, 46, 48, 48, 48, 52)

# Bits that some level of some mode reserves (and others use as address or ignore): the
# generator sets them now and then, the reference decides what they mean.
SUSPECT_BITS = {4: (13, 16, 17, 20, 21, 22, 31),
                8: (12, 13, 20, 21, 29, 30, 35, 36, 39, 40, 46, 47, 48, 51, 51, 52, 57, 62,
                    62)}


@dataclass
class RandomCase:
    paging: Paging
    runs: tuple | None
    ram: bytearray
    accesses: list = field(default_factory=list)   # [(va, "r"|"w"|"x", user)]

    def mem(self) -> PhysMem:
        return PhysMem(self.ram, self.runs)

    def machine(self) -> Machine:
        m = Machine(RAM_SIZE, runs=self.runs)
        for start, length in self.runs or ((0, RAM_SIZE),):
            m.write_physical(start, bytes(self.ram[start:start + length]))
        set_paging(m, self.paging)
        return m

    def same_ram(self, m1: Machine, m2: Machine) -> bool:
        return all(np.array_equal(m1.view_physical(start, length), m2.view_physical(start, length))
                   for start, length in self.runs or ((0, RAM_SIZE),))

    def ram_differences(self, m: Machine) -> list[int]:
        """Addresses where the machine's RAM differs from ``self.ram`` (no copies made)."""
        ours = np.frombuffer(self.ram, np.uint8)
        out: list[int] = []
        for start, length in self.runs or ((0, RAM_SIZE),):
            theirs = m.view_physical(start, length)
            if not np.array_equal(theirs, ours[start:start + length]):
                out += [start + int(i) for i in
                        np.flatnonzero(theirs != ours[start:start + length])]
        return out


def _in_runs(runs, pa: int, n: int) -> bool:
    return any(s <= pa and pa + n <= s + length for s, length in (runs or ((0, RAM_SIZE),)))


class _Generator:
    def __init__(self, rnd: random.Random, mode: str, maxphyaddr: int, hole: bool):
        self.r = rnd
        self.mode = mode
        self.geo = GEOMETRY[mode]
        self.esize = self.geo.entry_size
        self.M = maxphyaddr
        self.runs = RUNS_WITH_HOLE if hole else None
        # Both sides of the MAXPHYADDR boundary, where it lies inside the entry.
        near_m = [b for b in (self.M - 1, self.M) if b < 8 * self.esize]
        self.suspect = SUSPECT_BITS[self.esize] + tuple(near_m)
        frames = [f for f in range(RAM_SIZE >> 12) if _in_runs(self.runs, f << 12, KB4)]
        self.ram_frames = frames
        self.pool = rnd.sample(frames, rnd.randint(3, 8))          # the page tables
        self.outside = [(RAM_SIZE >> 12) + rnd.randrange(64)]       # beyond the end of RAM
        if self.runs:
            self.outside.append((HOLE[0] >> 12) + rnd.randrange((HOLE[1] - HOLE[0]) >> 12))
        self.entries: dict[int, int] = {}
        self.used: dict[int, list] = {}      # table -> indexes with an entry
        self.onward: dict[int, list] = {}    # table -> indexes whose entry leads to a table

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def frame(self, level, large: bool) -> int:
        """An address for an entry: mostly one of the tables, sometimes a page anywhere,
        outside RAM, or aligned for a large page (mostly that, for a PS=1 entry)."""
        r, x = self.r.random(), self.r
        if large and r < 0.6:
            r = 1.0
        if r < 0.55:
            return x.choice(self.pool) << 12
        if r < 0.67:
            return x.choice(self.ram_frames) << 12
        if r < 0.77:
            return x.choice(self.outside) << 12
        size = level.large or KB4
        shift = size.bit_length() - 1
        width = min(self.M, 40) if self.esize == 8 else 32
        base = x.randrange(1 << (width - shift)) << shift
        if level.large and self.chance(0.4):
            # PAT, a PSE-36 bit or a reserved bit; the ends of the reserved range often.
            base |= 1 << x.choice((12, 13, shift - 1, x.randrange(12, shift)))
        if self.mode == "x86" and level.large and self.chance(0.5):
            base |= x.randrange(512) << 13           # PSE-36 PA bits 39:32, reserved bit 21
        return base

    def entry(self, level) -> int:
        x = self.r
        if self.chance(0.06):
            return 0
        pdpte = self.mode == "pae" and level.number == 3
        rare = 0.02                                  # for bits reserved at this level
        if level.number == 4:
            ps_p = 0.04                              # PS is reserved in a PML4E
        elif pdpte:
            ps_p = rare
        else:
            ps_p = 0.35 if level.large else 0.3      # PAT in a 4 KB PTE
        ps = self.chance(ps_p)
        value = self.frame(level, ps and bool(level.large)) | (PS if ps else 0)
        for bit, p in ((P, 0.88), (RW, rare if pdpte else 0.75), (US, rare if pdpte else 0.7),
                       (PWT, 0.2), (PCD, 0.2), (A, rare if pdpte else 0.5),
                       (D, rare if pdpte else 0.4), (G, rare if pdpte else 0.3)):
            if self.chance(p):
                value |= bit
        value |= x.randrange(8) << 9                 # bits 11:9 are ignored everywhere
        if self.esize == 8 and self.chance(rare if pdpte else 0.25):
            value |= XD
        if self.chance(0.15):
            value |= 1 << x.choice(self.suspect)
        return value & ((1 << (8 * self.esize)) - 1)

    def cr3(self) -> int:
        x = self.r
        if self.chance(0.03):
            return x.choice(self.outside) << 12
        base = self.pool[0] << 12
        if self.mode == "pae":
            base += 32 * x.randrange(128)            # the PDPT may sit anywhere 32-byte aligned
        return base

    def va(self, top: int) -> int:
        """Choose indexes level by level, following the tables the generator made, and
        create the entries met on the way."""
        x, geo = self.r, self.geo
        va, table = 0, top
        for depth, level in enumerate(geo.levels):
            n = 1 << level.index_bits
            used = self.used.setdefault(table, [])
            onward = self.onward.setdefault(table, [])
            if onward and self.chance(0.75):
                idx = x.choice(onward)               # mostly go deeper along known paths
            elif used and self.chance(0.3):
                idx = x.choice(used)
            else:
                idx = x.choice((0, 1, n - 1, x.randrange(n), x.randrange(n)))
            va |= idx << level.shift
            epa = table + idx * self.esize
            fresh = epa not in self.entries and _in_runs(self.runs, epa, self.esize)
            if fresh:
                self.entries[epa] = self.entry(level)
                used.append(idx)
            # Where the generator meant the entry to lead (the reference decides the rest).
            e = self.entries.get(epa, 0)
            nxt = e & (0x000FFFFFFFFFF000 if self.esize == 8 else 0xFFFFF000)
            leads_on = bool(e & P) and (nxt >> 12) in self.pool
            if fresh and leads_on:
                onward.append(idx)
            if not leads_on:
                for lower in geo.levels[depth + 1:]:
                    va |= x.randrange(1 << lower.index_bits) << lower.shift
                break
            table = nxt
        va |= x.randrange(KB4)
        if self.mode == "x64":
            if va >> 47:
                va |= 0xFFFF << 48
            if self.chance(0.03):
                va ^= 1 << x.choice((47, 48, 56, 63))           # non-canonical
        elif self.chance(0.02):
            va |= 1 << x.randrange(32, 64)                      # beyond 32 bits
        return va


def random_case(rnd: random.Random, mode: str, n_accesses: int = 12, *, wp=None, nxe=None,
                pse=None, pge=None, maxphyaddr=None, hole=None) -> RandomCase:
    """Random page tables in a 1 MB guest (with a hole in its runs if ``hole``), a paging
    state and ``n_accesses`` random accesses that mostly walk through those tables.  The
    paging state's parts not given are drawn from ``rnd`` too."""
    def pick(value, p):
        return rnd.random() < p if value is None else value
    g = _Generator(rnd, mode, maxphyaddr or rnd.choice(MAXPHYADDRS), pick(hole, 0.5))
    paging = Paging(mode, g.cr3(), wp=pick(wp, 0.5), nxe=pick(nxe, 0.6), pse=pick(pse, 0.7),
                    pge=pick(pge, 0.5), maxphyaddr=g.M)
    top = paging.cr3 & (~0x1F if mode == "pae" else ~0xFFF)
    accesses = []
    for _ in range(n_accesses):
        if accesses and rnd.random() < 0.2:
            va = rnd.choice(accesses)[0]                        # again, with other rights
        else:
            va = g.va(top)
        accesses.append((va, rnd.choice("rrwwx"), rnd.random() < 0.5))
    ram = bytearray(RAM_SIZE)
    for epa, value in g.entries.items():
        ram[epa:epa + g.esize] = entry_bytes(value, g.esize)
    return RandomCase(paging, g.runs, ram, accesses)


# -- planned tables ----------------------------------------------------------------------


class TableBuilder:
    """Writes page tables into a Machine: ``map`` creates the tables on the way down,
    ``unmap_at`` leaves a not-present entry (with junk in its other bits) at a level.
    ``mappings`` records ``(va, pa, size)`` of every page mapped."""

    def __init__(self, m: Machine, mode: str, table_base: int = 0x100000):
        self.m, self.mode = m, mode
        self.geo = GEOMETRY[mode]
        self.next_table = table_base
        self.root = self._alloc()
        self.mappings: list[tuple[int, int, int]] = []

    @property
    def cr3(self) -> int:
        return self.root

    def _alloc(self) -> int:
        pa = self.next_table
        self.next_table += KB4
        self.m.write_physical(pa, bytes(KB4))
        return pa

    def _read(self, pa: int) -> int:
        return int.from_bytes(self.m.read_physical(pa, self.geo.entry_size), "little")

    def _write(self, pa: int, value: int) -> None:
        self.m.write_physical(pa, entry_bytes(value, self.geo.entry_size))

    def _entry_pa(self, va: int, level_number: int, upper: int) -> int:
        """Address of ``va``'s entry at ``level_number``, creating tables above it."""
        table = self.root
        for level in self.geo.levels:
            index = (va >> level.shift) & ((1 << level.index_bits) - 1)
            epa = table + index * self.geo.entry_size
            if level.number == level_number:
                return epa
            e = self._read(epa)
            if not e & P:
                # PAE PDPTEs carry only P (their R/W, U/S and A positions are reserved).
                flags = P if (self.mode == "pae" and level.number == 3) else upper
                e = self._alloc() | flags
                self._write(epa, e)
            elif e & PS and level.large:
                raise ValueError(f"{va:#x} is inside a large page")
            table = e & (0xFFFFF000 if self.geo.entry_size == 4 else 0x000FFFFFFFFFF000)
        raise ValueError(f"no level {level_number} in {self.mode}")

    def map(self, va: int, pa: int, size: int = KB4, flags: int = P | RW,
            upper: int = P | RW | US) -> int:
        number = next(lv.number for lv in self.geo.levels if (lv.large or KB4) == size
                      and (size != KB4 or lv.number == 1))
        epa = self._entry_pa(va, number, upper)
        self._write(epa, pa | flags | P | (PS if size != KB4 else 0))
        self.mappings.append((va, pa, size))
        return epa

    def unmap_at(self, va: int, level_number: int, junk: int = 0,
                 upper: int = P | RW | US) -> None:
        self._write(self._entry_pa(va, level_number, upper), junk & ~P)


def random_leaf_flags(rnd: random.Random, mode: str) -> int:
    """Rights, cache, A/D/G and ignored bits that a walker ignores when it only looks for
    the page (and XD where it exists)."""
    flags = 0
    for bit in (RW, US, PWT, PCD, A, D, G):
        if rnd.random() < 0.5:
            flags |= bit
    flags |= rnd.randrange(8) << 9
    if mode != "x86" and rnd.random() < 0.5:
        flags |= XD
    return flags

