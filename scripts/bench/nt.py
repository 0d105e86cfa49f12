#!/usr/bin/env python3
"""Memory-manager benchmark: boot and demand-zero faults, each next to a baseline
measured in the same run.

    python scripts/bench/nt.py            # full run (256 K faults: about a minute)
    python scripts/bench/nt.py --quick    # 16 K faults

Lines:
* boot of the default machine (win7-x64, 2 GB, default scenario), next to the bare
  hardware of the same size (a Machine with paging on) -- target: at most 0.5 s;
* boot with 64 GB of RAM (scenario "none"), in a child process so its peak RSS is its
  own (best of three children), next to the same child creating only the bare 64 GB
  Machine -- targets: at most 2 s and 300 MB;
* commit + touch N pages in one process (``kdsim.nt.fault.touch``: each page a
  demand-zero fault), next to touching the same, now valid, pages again (no fault) --
  target: 200 K faults/s; and, for information, single-page accesses each taking its
  own fault through the one-at-a-time path.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import kdsim
from kdsim.machine import Machine
from kdsim.nt.fault import access, touch

PAGE = 0x1000


def best(fn, repeats: int) -> float:
    out = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


CHILD = """
import json, resource, sys, time
import kdsim
from kdsim.machine import Machine
t = time.perf_counter()
if sys.argv[1] == "boot":
    kdsim.boot("win7-x64", ram="64g", scenario="none")
else:
    Machine(64 << 30).set_paging("x64", 0x1000)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def child(kind: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    faults = 16 * 1024 if args.quick else 256 * 1024

    print("kdsim memory-manager benchmark")
    print(f"  Python {sys.version.split()[0]}; times are the best of several runs")

    def bare():
        Machine(2 << 30).set_paging("x64", 0x1000)
    t_bare = best(bare, 5)
    t_boot = best(lambda: kdsim.boot("win7-x64"), 3)
    print(f"  boot win7-x64 2 GB, default scenario   {t_boot * 1e3:8.1f} ms   "
          f"(bare 2 GB Machine {t_bare * 1e3:.2f} ms; ratio {t_boot / t_bare:,.0f}x)   "
          f"{'PASS' if t_boot <= 0.5 else 'MISS'} <= 500 ms")

    big = min((child("boot") for _ in range(3)), key=lambda r: r["seconds"])
    base = min((child("bare") for _ in range(3)), key=lambda r: r["seconds"])
    print(f"  boot win7-x64 64 GB, no scenario       {big['seconds'] * 1e3:8.1f} ms   "
          f"peak RSS {big['peak_rss'] / 2**20:6.1f} MB   (bare 64 GB Machine "
          f"{base['seconds'] * 1e3:.2f} ms, {base['peak_rss'] / 2**20:.1f} MB)   "
          f"{'PASS' if big['seconds'] <= 2 else 'MISS'} <= 2 s, "
          f"{'PASS' if big['peak_rss'] <= 300 * 2**20 else 'MISS'} <= 300 MB")

    m = kdsim.boot("win7-x64", ram="4g", scenario="none")
    nt = m.nt
    proc = nt.spawn("bench.exe")
    before = nt.faults.counts["demand zero"]
    t = time.perf_counter()
    r = nt.vm.allocate(proc, faults * PAGE)
    status, touched = touch(nt, proc, r.base, faults * PAGE, "w")
    t_fault = time.perf_counter() - t
    assert r.ok and status == 0 and touched == faults
    assert nt.faults.counts["demand zero"] - before == faults
    t = time.perf_counter()
    status, _ = touch(nt, proc, r.base, faults * PAGE, "w")       # valid now: no faults
    t_valid = time.perf_counter() - t
    rate = faults / t_fault
    print(f"  commit + touch {faults:,} pages            {rate:10,.0f} faults/s "
          f"({t_fault / faults * 1e6:.2f} us each; touching them again without a fault "
          f"{t_valid / faults * 1e6:.2f} us, ratio {t_fault / t_valid:.1f}x)   "
          f"{'PASS' if rate >= 200_000 else 'MISS'} >= 200,000/s")
    # One access at a time, each its own fault (what a program's scattered accesses cost).
    single = 4096
    r = nt.vm.allocate(proc, single * PAGE)
    t = time.perf_counter()
    for i in range(single):
        access(nt, proc, r.base + i * PAGE, b"\1", "w")
    t_one = time.perf_counter() - t
    print(f"  {single:,} single-page accesses, one fault each  {single / t_one:10,.0f} faults/s "
          f"({t_one / single * 1e6:.1f} us each)   [info]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
