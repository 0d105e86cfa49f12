#!/usr/bin/env python3
"""Address-translation benchmark: kdsim against a pure-Python walker, volatility3
and kdmp-parser, measured side by side in one run on the same 4-level page tables.

The guest: a kdsim Machine with 128 MB of RAM (64 MB with --quick) holding x64
page tables that map 2,048 distinct 4 KB pages in four regions (PML4 slots 0 and
255 for user space, 320 and 496 -- 0xfffff80000000000 -- for kernel space), each
region spread over two PDPT slots, eight page tables and a random 64 of each
table's 512 entries, all on frames drawn at random from RAM.  The addresses:
100,000 of those pages, with random byte offsets, in a fixed pseudo-random order
(seed 20261122).  Every method translates the same addresses over the same guest
bytes; all of them must agree with the page tables' ground truth before anything
is timed.

    python scripts/bench/translate.py            # full run, well under a minute
    python scripts/bench/translate.py --quick    # smoke run, a few seconds

Needs the bench extra: pip install -e ".[bench]" (kdmp-parser, volatility3).
"""
from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import sys
import tempfile
import time
from importlib import metadata

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for p in (HERE, ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)

from kdsim.machine import Machine  # noqa: E402
from _kdmp_dump import write_full_dump  # noqa: E402

PAGE = 4096
SEED = 20261122
ADDR_MASK = 0x000F_FFFF_FFFF_F000          # address bits 51:12 of an entry
P, RW, US, A, D, PS, G = 0x1, 0x2, 0x4, 0x20, 0x40, 0x80, 0x100
NX = 1 << 63

# (first VA, user?) -- PML4 slots 0, 255, 320, 496
REGIONS = [
    (0x0000_0000_0040_0000, True),          # a user image
    (0x0000_7FF6_0000_0000, True),          # user DLLs / heaps near the top of user space
    (0xFFFF_A000_0000_0000, False),         # paged-pool-like kernel range
    (0xFFFF_F800_0000_0000, False),         # the kernel image / non-paged pool
]
PTS_PER_REGION = 8                          # 2 PDPT slots x 4 PDEs
PAGES_PER_PT = 64                           # 4 regions x 8 x 64 = 2,048 pages

TARGET_BATCH_RATE = 100e6
TARGET_BATCH_VS_VOL3 = 1000.0


# -- the guest --------------------------------------------------------------------------

class FrameAllocator:
    """Hands out distinct page frames of guest RAM in a random order (above 1 MB)."""

    def __init__(self, ram_bytes: int, rng: np.random.Generator):
        self._frames = rng.permutation(np.arange(0x100, ram_bytes // PAGE, dtype=np.int64))
        self._next = 0

    def __call__(self) -> int:
        f = int(self._frames[self._next])
        self._next += 1
        return f * PAGE


def build_guest(m: Machine, rng: np.random.Generator):
    """Write x64 page tables into guest RAM; return (cr3, page_vas, page_pas, table_pages)."""
    alloc = FrameAllocator(m.ram_size, rng)
    ram = m.view_physical(0, m.ram_size, dtype=np.uint64)   # entries, written in place
    cr3 = alloc()
    tables = {cr3}

    def child(table_pa: int, index: int, user: bool) -> int:
        """The table under entry ``index`` of ``table_pa``, created if absent."""
        slot = table_pa // 8 + index
        e = int(ram[slot])
        if not e & P:
            new = alloc()
            tables.add(new)
            e = new | P | RW | A | (US if user else 0)
            ram[slot] = e
        return e & ADDR_MASK

    page_vas, page_pas = [], []
    for base, user in REGIONS:
        pdpt_slots = [0, 3]                                  # two 1 GB slices, 2 GB apart
        pde_slots = [0, 5, 10, 100]                          # four 2 MB slices, spread out
        for j in range(PTS_PER_REGION):
            pt_va = (base + pdpt_slots[j // 4] * (1 << 30) + pde_slots[j % 4] * (1 << 21))
            pml4 = child(cr3, (pt_va >> 39) & 511, user)
            pd = child(pml4, (pt_va >> 30) & 511, user)
            pt = child(pd, (pt_va >> 21) & 511, user)
            for idx in sorted(rng.choice(512, PAGES_PER_PT, replace=False).tolist()):
                frame = alloc()
                if user:
                    leaf = frame | P | RW | US | A | D
                else:
                    leaf = frame | P | RW | A | D | G
                if rng.random() < 0.5:
                    leaf |= NX
                ram[pt // 8 + idx] = leaf
                page_vas.append(pt_va + idx * PAGE)
                page_pas.append(frame)
    m.set_paging("x64", cr3)
    return cr3, page_vas, page_pas, tables


def make_addresses(page_vas, page_pas, n: int, rng: np.random.Generator):
    """``n`` addresses over the pages in a pseudo-random order, with random byte
    offsets, and the physical address each must translate to."""
    which = rng.integers(0, len(page_vas), size=n)
    offs = rng.integers(0, PAGE, size=n).astype(np.uint64)
    vas = np.asarray(page_vas, dtype=np.uint64)[which] + offs
    pas = np.asarray(page_pas, dtype=np.uint64)[which] + offs
    return vas, pas


# -- the pure-Python reference walker ------------------------------------------------------

def make_ref_walker(ram_q, cr3: int):
    """A plain-Python x64 walk over the guest bytes (``ram_q``: memoryview cast to
    'Q', indexed by physical address // 8).  Canonical check, present bits, 1 GB and
    2 MB pages; no reserved-bit or permission checks.  Returns the PA or None."""
    pml4 = (cr3 & ADDR_MASK) >> 3

    def walk(va: int):
        top = va >> 47
        if top and top != 0x1FFFF:
            return None                                      # non-canonical
        e = ram_q[pml4 + ((va >> 39) & 511)]
        if not e & P:
            return None
        e = ram_q[((e & ADDR_MASK) >> 3) + ((va >> 30) & 511)]
        if not e & P:
            return None
        if e & PS:
            return (e & ADDR_MASK & ~0x3FFF_FFFF) | (va & 0x3FFF_FFFF)
        e = ram_q[((e & ADDR_MASK) >> 3) + ((va >> 21) & 511)]
        if not e & P:
            return None
        if e & PS:
            return (e & ADDR_MASK & ~0x1F_FFFF) | (va & 0x1F_FFFF)
        e = ram_q[((e & ADDR_MASK) >> 3) + ((va >> 12) & 511)]
        if not e & P:
            return None
        return (e & ADDR_MASK) | (va & 0xFFF)

    return walk


# -- the other tools -------------------------------------------------------------------------

def make_vol3_layer(ram_bytes: bytes, cr3: int):
    """A standalone volatility3 layer stack: Context -> BufferDataLayer over the guest's
    physical bytes -> Intel32e with page_map_offset = CR3."""
    from volatility3.framework import contexts
    from volatility3.framework.layers import intel, physical

    ctx = contexts.Context()
    ctx.add_layer(physical.BufferDataLayer(ctx, "kdsim_phys", "kdsim_phys", ram_bytes))
    ctx.config["kdsim_virt.memory_layer"] = "kdsim_phys"
    ctx.config["kdsim_virt.page_map_offset"] = cr3
    layer = intel.Intel32e(ctx, "kdsim_virt", "kdsim_virt")
    ctx.add_layer(layer)
    return layer


def make_kdmp(m: Machine, cr3: int, tmpdir: str):
    """Write guest RAM as a 64-bit full crash dump and open it with kdmp-parser."""
    import kdmp_parser

    path = os.path.join(tmpdir, "guest.dmp")
    view = m.view_physical(0, m.ram_size)
    size = write_full_dump(path, cr3, m.runs, lambda s, n: view[s:s + n])
    dump = kdmp_parser.KernelDumpParser(path)
    if dump.type != kdmp_parser.DumpType.FullDump or dump.directory_table_base != cr3:
        raise SystemExit(f"kdmp-parser read the dump as {dump.type!r}, "
                         f"DTB {dump.directory_table_base:#x} (expected full dump, {cr3:#x})")
    return dump, path, size


# -- timing ----------------------------------------------------------------------------------

def best_of(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn()`` (garbage collector off, as timeit)."""
    best = float("inf")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return best


def per_call_loop(f, vas):
    """The loop every per-call method is timed with."""
    def run():
        for va in vas:
            f(va)
    return run


class Result:
    def __init__(self, key, label, n_timed, n_total, seconds, repeats, note=""):
        self.key, self.label, self.n, self.total = key, label, n_timed, n_total
        self.t, self.repeats, self.note = seconds, repeats, note

    @property
    def rate(self) -> float:
        return self.n / self.t

    @property
    def ns(self) -> float:
        return self.t / self.n * 1e9


def fmt_rate(r: float) -> str:
    if r >= 1e6:
        return f"{r / 1e6:9.2f} M/s"
    if r >= 1e3:
        return f"{r / 1e3:9.1f} k/s"
    return f"{r:9.0f}  /s"


def verify(name: str, got, want_pas, vas) -> None:
    bad = [(int(v), g, int(w)) for v, g, w in zip(vas, got, want_pas) if g != int(w)]
    if bad:
        lines = "\n".join(f"    va {v:#018x}: got {g if g is None else hex(g)}, expected {w:#x}"
                          for v, g, w in bad[:5])
        raise SystemExit(f"ABORT: {name} disagrees with the page tables on {len(bad)} of "
                         f"{len(vas):,} addresses it is timed on; nothing was timed.\n{lines}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 64 MB guest, 10,000 translations, fewer repeats")
    ap.add_argument("--seed", type=int, default=SEED, help=f"address-order seed ({SEED})")
    args = ap.parse_args(argv)

    quick = args.quick
    ram_size = (64 if quick else 128) << 20
    n_total = 10_000 if quick else 100_000
    n_slow = 2_000 if quick else n_total     # pure Python and volatility3 (--quick: a prefix)
    rounds = 2 if quick else 7               # every method is timed once per round...
    batch_calls = 5 if quick else 10         # ...the batch call this many times per round

    import volatility3  # noqa: F401  (fail early if the bench extra is missing)
    import kdmp_parser  # noqa: F401

    rng = np.random.default_rng(args.seed)
    t_setup = time.perf_counter()
    m = Machine(ram_size)
    cr3, page_vas, page_pas, tables = build_guest(m, rng)
    vas_np, want_np = make_addresses(page_vas, page_pas, n_total, rng)
    vas = [int(v) for v in vas_np]             # Python ints for the per-call loops

    # Same bytes for everyone: a numpy view (kdsim's RAM itself) for the pure-Python
    # walker, a copy for volatility3's BufferDataLayer, a dump file for kdmp-parser.
    ram_view = m.view_physical(0, m.ram_size)
    ram_q = memoryview(ram_view).cast("Q")
    ref_walk = make_ref_walker(ram_q, cr3)
    vol3 = make_vol3_layer(ram_view.tobytes(), cr3)
    tmpdir = tempfile.TemporaryDirectory(prefix="kdsim-bench-")
    dump, dump_path, dump_size = make_kdmp(m, cr3, tmpdir.name)
    t_setup = time.perf_counter() - t_setup

    translate_pa = m.translate_pa
    translate = m.translate
    vol3_translate = vol3.translate
    kdmp_translate = dump.translate_virtual
    raw = getattr(dump, "_KernelDumpParser__dump", None)   # the nanobind object under it
    kdmp_raw = (lambda va, _f=raw.VirtTranslate: _f(va, 0)) if raw is not None else None

    # (key, label, per-call function or None for the batch, addresses timed, note)
    methods = [
        ("batch", "kdsim Machine.translate_batch (one call, probe)", None, n_total, ""),
        ("tpa", "kdsim m.translate_pa(va), Python loop", translate_pa, n_total, ""),
        ("full", "kdsim m.translate(va) -> Translation, Python loop", translate, n_total, ""),
        ("py", "pure-Python reference walker", ref_walk, n_slow, ""),
        ("vol3", "volatility3 Intel32e.translate(va)", vol3_translate, n_slow,
         "its LRU caches warm"),
        ("kdmp", "kdmp-parser translate_virtual(va)", kdmp_translate, n_total, ""),
    ]
    if kdmp_raw is not None:
        methods.append(("kdmp_raw", "kdmp-parser VirtTranslate (raw binding)", kdmp_raw,
                        n_total, "info only"))

    # -- agreement on every address each method will time, before any timing --------------
    pas, status = m.translate_batch(vas_np)
    if status.any() or not np.array_equal(pas, want_np):
        bad = np.flatnonzero((pas != want_np) | (status != 0))
        i = int(bad[0])
        raise SystemExit(f"ABORT: kdsim translate_batch disagrees with the page tables on "
                         f"{bad.size} of {n_total} addresses (first: va {vas[i]:#x} -> "
                         f"{int(pas[i]):#x}, status {int(status[i])}, expected "
                         f"{int(want_np[i]):#x}); nothing was timed")
    for key, label, f, n, _ in methods:
        if f is None:
            continue
        got = [f(v) for v in vas[:n]]
        if key == "full":
            got = [t.pa for t in got]          # Translation objects
        elif key == "vol3":
            got = [pa for pa, _layer in got]   # (offset, layer name) pairs
        verify(label, got, want_np[:n], vas[:n])

    # -- timing: round-robin, so a slow patch of the machine hits every method alike ---------
    loops = {key: (lambda: m.translate_batch(vas_np)) if f is None
             else per_call_loop(f, vas[:n]) for key, _, f, n, _ in methods}
    best = {key: float("inf") for key in loops}
    t_bench = time.perf_counter()
    for _ in range(rounds):
        for key, _, f, _, _ in methods:
            best[key] = min(best[key], best_of(loops[key], batch_calls if f is None else 1))
    t_bench = time.perf_counter() - t_bench
    results = [Result(key, label, n, n_total, best[key],
                      rounds * (batch_calls if f is None else 1), note)
               for key, label, f, n, note in methods]
    r = {x.key: x for x in results}

    # -- report ---------------------------------------------------------------------------------
    print("kdsim address-translation benchmark"
          + ("  [--quick smoke run: not the reference figures]" if quick else ""))
    print(f"  date {datetime.date.today().isoformat()}, Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; "
          f"numpy {np.__version__}, volatility3 {metadata.version('volatility3')}, "
          f"kdmp-parser {metadata.version('kdmp-parser')}")
    print(f"  guest: {ram_size >> 20} MB RAM, x64 4-level tables at CR3 {cr3:#x}: "
          f"{len(page_vas):,} mapped 4 KB pages, {len(tables)} table pages "
          f"(PML4 slots {sorted({(b >> 39) & 511 for b, _ in REGIONS})})")
    print(f"  work: {n_total:,} translations in a fixed pseudo-random order (seed {args.seed}), "
          f"probe mode, all mapped")
    print(f"  kdmp-parser reads a {dump_size / 2**20:.1f} MB full dump written to "
          f"{dump_path} (deleted at exit)")
    print("  volatility3 reads a BufferDataLayer copy of the same bytes; the pure-Python "
          "walker reads kdsim's RAM through a numpy view")
    print(f"  checked before timing: every method gives the page tables' PA for every address "
          f"it is timed on")
    print(f"  timing: {rounds} round-robin rounds over all methods, best run kept "
          f"(the batch: best of {rounds * batch_calls} calls), gc off while timing"
          + (f"; pure Python and volatility3 time the first {n_slow:,} addresses, "
             f"scaled to {n_total:,}" if n_slow < n_total else ""))
    print()
    print(f"  {'method':<50} {'timed n':>8} {'runs':>7} {'rate':>13} {'ns/transl':>10} "
          f"{f'time for {n_total // 1000}k':>13}")
    for x in results:
        scaled = x.t * n_total / x.n
        note = ("  (scaled)" if x.n < n_total else "") + (f"  [{x.note}]" if x.note else "")
        print(f"  {x.label:<50} {x.n:>8,} {x.repeats:>7} {fmt_rate(x.rate):>13} "
              f"{x.ns:>10.1f} {scaled * 1e3:>10.2f} ms{note}")

    print()
    print("  ratios (translations per second, a over b):")
    pairs = [("batch", "vol3"), ("batch", "py"), ("batch", "kdmp"), ("batch", "tpa"),
             ("tpa", "kdmp"), ("tpa", "vol3"), ("tpa", "py"), ("full", "kdmp"),
             ("full", "vol3"), ("py", "vol3")]
    if "kdmp_raw" in r:
        pairs.append(("tpa", "kdmp_raw"))
    short = {"batch": "batch", "tpa": "translate_pa", "full": "translate",
             "py": "pure Python", "vol3": "volatility3", "kdmp": "kdmp-parser translate_virtual",
             "kdmp_raw": "kdmp-parser raw VirtTranslate"}
    for a, b in pairs:
        q = r[a].rate / r[b].rate
        print(f"    {short[a] + ' vs ' + short[b]:<58} {q:>12,.{2 if q < 10 else 1}f}x")

    print()
    print("  targets:")
    checks = [
        (f"batch >= {TARGET_BATCH_RATE / 1e6:.0f} M translations/s",
         r["batch"].rate >= TARGET_BATCH_RATE, f"{r['batch'].rate / 1e6:.2f} M/s"),
        (f"batch >= {TARGET_BATCH_VS_VOL3:,.0f}x volatility3",
         r["batch"].rate >= TARGET_BATCH_VS_VOL3 * r["vol3"].rate,
         f"{r['batch'].rate / r['vol3'].rate:,.0f}x"),
        ("translate_pa per call >= kdmp-parser translate_virtual per call",
         r["tpa"].rate >= r["kdmp"].rate,
         f"{r['tpa'].ns:.0f} ns vs {r['kdmp'].ns:.0f} ns per call "
         f"({r['tpa'].rate / r['kdmp'].rate:.2f}x)"),
    ]
    for text, ok, value in checks:
        print(f"    {'PASS' if ok else 'MISS'}  {text:<66} {value}")
    print()
    print(f"  setup {t_setup:.1f} s, timing {t_bench:.1f} s")
    tmpdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
