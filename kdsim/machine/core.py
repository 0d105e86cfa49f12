"""Machine: the Python face of the C core (guest physical RAM and an x86 MMU).

Every call goes call -> check -> raise a typed error; the handle is freed by
``ffi.gc``; the cffi module stays private to this package."""
from __future__ import annotations

import platform
import re
from typing import Iterable, NamedTuple

import numpy as np

from ._kdcore import ffi, lib
from .errors import KdArgumentError, PhysicalMemoryError, VirtualMemoryError, check
from .translation import Translation, unpack_walk

PAGE_SIZE = lib.KD_PAGE_SIZE
BAD_PA = lib.KD_BAD_PA
U64_MAX = (1 << 64) - 1

MODES = {"none": lib.KD_MODE_NONE, "x86": lib.KD_MODE_X86,
         "pae": lib.KD_MODE_PAE, "x64": lib.KD_MODE_X64}
MODE_NAMES = {v: k for k, v in MODES.items()}
ACCESS_KINDS = {"r": lib.KD_ACCESS_READ, "read": lib.KD_ACCESS_READ,
                "w": lib.KD_ACCESS_WRITE, "write": lib.KD_ACCESS_WRITE,
                "x": lib.KD_ACCESS_EXEC, "execute": lib.KD_ACCESS_EXEC}

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)b?\s*$", re.I)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """``"512m"``, ``"64g"``, ``"2G"``, ``4096`` -> bytes."""
    if isinstance(text, int):
        return text
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"bad size {text!r} (expected e.g. 512m, 2g, 64g)")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


class PagingState(NamedTuple):
    mode: str
    cr3: int
    wp: bool
    pse: bool
    pge: bool
    nxe: bool
    maxphyaddr: int


def _u64(value: int, what: str) -> int:
    if not isinstance(value, (int, np.integer)) or not 0 <= value <= U64_MAX:
        raise KdArgumentError(lib.KD_E_RANGE, f"{what} {value!r}")
    return int(value)


def _access_flags(access: str, user: bool, probe: bool) -> int:
    try:
        flags = ACCESS_KINDS[access]
    except KeyError:
        raise KdArgumentError(lib.KD_E_INVAL, f"access {access!r} (use 'r', 'w' or 'x')") from None
    if user:
        flags |= lib.KD_ACCESS_USER
    if probe:
        flags |= lib.KD_ACCESS_PROBE
    return flags


def _bind_translate_pa(handle):
    """The hot single-address probe: ``translate_pa(va) -> int | None``.

    On CPython it is a METH_FASTCALL builtin from _fastprobe.h (a plain cffi call
    costs several times the walk); elsewhere a closure over the cffi call."""
    if platform.python_implementation() == "CPython":
        out: list = []
        check(lib.kd_py_bind_probe(handle, id(out), id(KdArgumentError)), "translate_pa")
        return out[0]

    def translate_pa(va, _probe=lib.kd_probe_pa, _h=handle, _bad=BAD_PA):
        """Kernel-read probe of ``va``: its physical address, or None."""
        try:
            pa = _probe(_h, va)
        except OverflowError:
            raise KdArgumentError(lib.KD_E_RANGE, f"virtual address {va!r}") from None
        return None if pa == _bad else pa

    return translate_pa


class Machine:
    """Guest physical RAM of ``ram_bytes`` with optional ``runs`` of
    ``(start, length)`` (page-aligned; everything else is a hole), and an MMU."""

    def __init__(self, ram_bytes: int | str, runs: Iterable[tuple[int, int]] | None = None):
        size = _u64(parse_size(ram_bytes), "RAM size")
        out = ffi.new("kd_machine **")
        check(lib.kd_machine_new(size, out), "guest RAM size")
        self._h = ffi.gc(out[0], lib.kd_machine_free)
        self._size = lib.kd_ram_size(self._h)      # fixed for the machine's life
        self._walk = ffi.new("kd_walk *")
        self._mode = "none"  # only set_paging changes it
        self._u64 = ffi.new("uint64_t *")
        if runs is not None:
            self.set_runs(runs)

        self.translate_pa = _bind_translate_pa(self._h)

    # -- physical memory ---------------------------------------------------------------

    @property
    def ram_size(self) -> int:
        return self._size

    @property
    def runs(self) -> list[tuple[int, int]]:
        start, length = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        out = []
        for i in range(lib.kd_run_count(self._h)):
            check(lib.kd_get_run(self._h, i, start, length))
            out.append((start[0], length[0]))
        return out

    def set_runs(self, runs: Iterable[tuple[int, int]]) -> None:
        runs = list(runs)
        starts = ffi.new("uint64_t[]", [_u64(s, "run start") for s, _ in runs] or [0])
        lengths = ffi.new("uint64_t[]", [_u64(n, "run length") for _, n in runs] or [0])
        check(lib.kd_set_runs(self._h, starts, lengths, len(runs)), "physical memory runs")

    def is_physical(self, pa: int, n: int = 1) -> bool:
        """Whether ``[pa, pa+n)`` lies inside one run of RAM."""
        if not (0 <= pa <= U64_MAX and 0 <= n <= U64_MAX):
            return False
        return bool(lib.kd_phys_valid(self._h, pa, n))

    def read_physical(self, pa: int, n: int) -> bytes:
        pa, n = _u64(pa, "physical address"), _u64(n, "length")
        if n > self.ram_size:
            raise KdArgumentError(lib.KD_E_RANGE, f"length {n:#x}")
        buf = ffi.new("char[]", n) if n else ffi.NULL
        done = self._u64
        st = lib.kd_phys_read(self._h, pa, buf, n, done)
        if st == lib.KD_E_PHYS:
            got = done[0]
            raise PhysicalMemoryError(st, pa + got, got, ffi.buffer(buf, got)[:] if got else b"")
        check(st, "physical read")
        return ffi.buffer(buf, n)[:] if n else b""

    def write_physical(self, pa: int, data: bytes) -> None:
        pa = _u64(pa, "physical address")
        data = bytes(data)
        done = self._u64
        st = lib.kd_phys_write(self._h, pa, data, len(data), done)
        if st == lib.KD_E_PHYS:
            raise PhysicalMemoryError(st, pa + done[0], done[0])
        check(st, "physical write")

    def view_physical(self, pa: int, n: int, dtype=np.uint8) -> np.ndarray:
        """A writable numpy view of guest RAM ``[pa, pa+n)`` (inside one run), no copy.

        The view keeps the machine's RAM alive for as long as it exists."""
        pa, n = _u64(pa, "physical address"), _u64(n, "length")
        out = ffi.new("void **")
        st = lib.kd_phys_ptr(self._h, pa, n, out)
        if st == lib.KD_E_PHYS:
            raise PhysicalMemoryError(st, pa)
        check(st, "physical view")
        # The buffer holds this pointer, whose destructor holds the machine handle.
        ptr = ffi.gc(ffi.cast("char *", out[0]), lambda _p, _keep=self._h: None)
        return np.frombuffer(ffi.buffer(ptr, n), dtype=dtype)

    def page_view(self, pfn: int, count: int = 1, dtype=np.uint8) -> np.ndarray:
        """A numpy view of ``count`` guest pages starting at page frame ``pfn``."""
        return self.view_physical(pfn * PAGE_SIZE, count * PAGE_SIZE, dtype)

    def discard_pages(self, pa: int, n: int) -> None:
        """Give the host memory behind whole guest pages back; they read as zeros."""
        pa, n = _u64(pa, "physical address"), _u64(n, "length")
        st = lib.kd_phys_discard(self._h, pa, n)
        if st == lib.KD_E_PHYS:
            raise PhysicalMemoryError(st, pa)
        check(st, "discard")

    def lazy_records(self, pa: int, template: bytes, count: int, index0: int,
                     fields: list[tuple[int, int, int]]) -> None:
        """``count`` records like ``template`` at ``pa``, record i with each field
        ``(offset, width, delta)`` set to ``index0 + i + delta``; the pages wholly inside
        get their bytes on first access (no host memory until then).  Reads, writes,
        views and walks see the same bytes as if they had been written now."""
        if len(fields) > 4:
            raise KdArgumentError(lib.KD_E_INVAL, "at most 4 counted fields")
        off = ffi.new("uint32_t[]", [f[0] for f in fields] or [0])
        width = ffi.new("uint32_t[]", [f[1] for f in fields] or [0])
        delta = ffi.new("int64_t[]", [f[2] for f in fields] or [0])
        st = lib.kd_phys_lazy_records(self._h, _u64(pa, "physical address"), len(template),
                                      _u64(count, "count"), template, _u64(index0, "index"),
                                      off, width, delta, len(fields))
        if st == lib.KD_E_PHYS:
            raise PhysicalMemoryError(st, pa)
        check(st, "lazy records")

    @property
    def lazy_pages(self) -> int:
        """Pages still waiting for their generated bytes (see lazy_records)."""
        return lib.kd_phys_lazy_pending(self._h)

    def materialize(self, pa: int = 0, n: int | None = None) -> None:
        """Give waiting pages in ``[pa, pa+n)`` (all RAM by default) their bytes now."""
        n = self.ram_size - pa if n is None else n
        check(lib.kd_phys_materialize(self._h, _u64(pa, "physical address"), _u64(n, "length")),
              "materialize")

    # -- paging state ------------------------------------------------------------------

    def set_paging(self, mode: str, cr3: int = 0, *, wp: bool = True, nxe: bool = True,
                   pse: bool = True, pge: bool = True) -> None:
        """Enter a paging mode (``"none"``, ``"x86"``, ``"pae"``, ``"x64"``); flushes the TLB."""
        if mode not in MODES:
            raise KdArgumentError(lib.KD_E_INVAL, f"paging mode {mode!r} (one of {', '.join(MODES)})")
        flags = ((lib.KD_CR0_WP if wp else 0) | (lib.KD_CR4_PSE if pse else 0) |
                 (lib.KD_CR4_PGE if pge else 0) | (lib.KD_EFER_NXE if nxe else 0))
        check(lib.kd_set_paging(self._h, MODES[mode], _u64(cr3, "CR3"), flags), "CR3")
        self._mode = mode

    @property
    def paging(self) -> PagingState:
        p = ffi.new("kd_paging *")
        check(lib.kd_get_paging(self._h, p))
        f = p.flags
        return PagingState(MODE_NAMES[p.mode], p.cr3, bool(f & lib.KD_CR0_WP),
                           bool(f & lib.KD_CR4_PSE), bool(f & lib.KD_CR4_PGE),
                           bool(f & lib.KD_EFER_NXE), p.maxphyaddr)

    @property
    def cr3(self) -> int:
        return self.paging.cr3

    @cr3.setter
    def cr3(self, value: int) -> None:
        """Load CR3 (flushes the non-global TLB entries, as MOV CR3 does)."""
        check(lib.kd_set_cr3(self._h, _u64(value, "CR3")), "CR3")

    def set_maxphyaddr(self, bits: int) -> None:
        check(lib.kd_set_maxphyaddr(self._h, bits), "MAXPHYADDR")

    # -- translation -------------------------------------------------------------------

    def translate(self, va: int, access: str = "r", user: bool = False,
                  probe: bool = True, cr3: int | None = None) -> Translation:
        """Translate ``va``.  ``probe=True`` is a debugger probe (no TLB, no A/D);
        ``probe=False`` is a CPU access (TLB, A/D updates, permission faults).
        ``cr3`` probes another address space's tables without loading them."""
        flags = _access_flags(access, user, probe)
        if cr3 is not None:
            if not probe:
                raise KdArgumentError(lib.KD_E_INVAL, "only a probe can use another CR3")
            st = lib.kd_probe_as(self._h, _u64(cr3, "CR3"), _u64(va, "virtual address"),
                                 flags, self._walk)
            if st in (lib.KD_E_INVAL, lib.KD_E_RANGE, lib.KD_E_ALIGN):
                check(st, "CR3")
            return Translation(unpack_walk(self._walk), self._mode)
        st = lib.kd_translate(self._h, _u64(va, "virtual address"), flags, self._walk)
        if st == lib.KD_E_INVAL:
            check(st, "translate")
        return Translation(unpack_walk(self._walk), self._mode)

    def translate_batch(self, vas, access: str = "r", user: bool = False,
                        probe: bool = True, cr3: int | None = None) -> tuple[np.ndarray,
                                                                             np.ndarray]:
        """Translate an array of addresses in one call: ``(pas, status)``, where a failed
        address has ``pas == BAD_PA`` and a non-zero ``KD_E_*`` status.  ``cr3`` probes
        another address space's tables without loading them."""
        flags = _access_flags(access, user, probe)
        vas = np.ascontiguousarray(vas, dtype=np.uint64)
        n = vas.size
        pas = np.empty(n, dtype=np.uint64)
        status = np.empty(n, dtype=np.int32)
        args = (ffi.from_buffer("uint64_t[]", vas), n, flags,
                ffi.from_buffer("uint64_t[]", pas), ffi.from_buffer("int32_t[]", status))
        if cr3 is None:
            check(lib.kd_translate_batch(self._h, *args), "batch")
        else:
            if not probe:
                raise KdArgumentError(lib.KD_E_INVAL, "only a probe can use another CR3")
            check(lib.kd_probe_batch_as(self._h, _u64(cr3, "CR3"), *args), "CR3")
        return pas, status

    def read_virtual(self, va: int, n: int, *, access: str = "r", user: bool = False,
                     probe: bool = True) -> bytes:
        """Read ``n`` bytes at ``va``.  If a page fails, raises VirtualMemoryError with the
        bytes read before it and the failing translation."""
        va, n = _u64(va, "virtual address"), _u64(n, "length")
        if access not in ("r", "read", "x", "execute"):
            raise KdArgumentError(lib.KD_E_INVAL, f"read access {access!r}")
        if n > self.ram_size:
            raise KdArgumentError(lib.KD_E_RANGE, f"length {n:#x}")
        buf = ffi.new("char[]", n) if n else ffi.NULL
        done = self._u64
        st = lib.kd_virt_read(self._h, va, buf, n, _access_flags(access, user, probe),
                              done, self._walk)
        if st in (lib.KD_E_INVAL, lib.KD_E_RANGE):
            check(st, "virtual read")
        if st != lib.KD_OK:
            got = done[0]
            raise VirtualMemoryError(st, va + got, Translation(unpack_walk(self._walk), self._mode),
                                     got, ffi.buffer(buf, got)[:] if got else b"")
        return ffi.buffer(buf, n)[:] if n else b""

    def write_virtual(self, va: int, data: bytes, *, user: bool = False,
                      probe: bool = True) -> None:
        """Write ``data`` at ``va``: a CPU store (``probe=False``, needs write rights, sets
        Dirty) or a debugger store (needs only a present mapping)."""
        va = _u64(va, "virtual address")
        data = bytes(data)
        done = self._u64
        st = lib.kd_virt_write(self._h, va, data, len(data), _access_flags("r", user, probe),
                               done, self._walk)
        if st in (lib.KD_E_INVAL, lib.KD_E_RANGE):
            check(st, "virtual write")
        if st != lib.KD_OK:
            raise VirtualMemoryError(st, va + done[0], Translation(unpack_walk(self._walk), self._mode),
                                     done[0])

    # -- TLB and counters --------------------------------------------------------------

    def invlpg(self, va: int) -> None:
        check(lib.kd_invlpg(self._h, _u64(va, "virtual address")))

    def flush_tlb(self, all_: bool = False) -> None:
        """Drop the non-global TLB entries (what a CR3 load does), or all of them."""
        check(lib.kd_flush_tlb(self._h, 1 if all_ else 0))

    @property
    def tlb_entries(self) -> tuple[int, int]:
        """``(valid, global)`` entries currently in the TLB."""
        v, g = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        check(lib.kd_tlb_count(self._h, v, g))
        return v[0], g[0]

    @property
    def stats(self) -> dict[str, int]:
        s = ffi.new("kd_stats *")
        check(lib.kd_get_stats(self._h, s))
        return {name: getattr(s, name) for name in
                ("walks", "tlb_hits", "tlb_misses", "faults", "probes", "invlpg", "flushes")}

    def reset_stats(self) -> None:
        check(lib.kd_reset_stats(self._h))
