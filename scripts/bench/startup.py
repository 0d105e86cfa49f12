#!/usr/bin/env python3
"""Start-up benchmark: ``kdsim -c q`` (boot the default machine, run ``q``, exit) next to
``python -c "import prompt_toolkit, numpy, pygments"`` -- the libraries any prompt_toolkit
shell of this kind loads -- measured in the same run, as child processes.

    python scripts/bench/startup.py            # best of 7 of each
    python scripts/bench/startup.py --quick    # best of 3

Target (issue 5): kdsim's start-up takes at most 2x the baseline.  A benchmark, not a
test: it prints the figures and PASS/MISS and always exits 0.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = 2.0


def best(cmd: list[str], repeats: int) -> float:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env=env)
        out = min(out, time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    repeats = 3 if ap.parse_args().quick else 7
    # Round-robin so a slow patch of a shared machine hits both alike.
    base, kd = float("inf"), float("inf")
    for _ in range(repeats):
        base = min(base, best([sys.executable, "-c", "import prompt_toolkit, numpy, pygments"],
                              1))
        kd = min(kd, best([sys.executable, "-m", "kdsim", "-q", "-c", "q"], 1))
    ratio = kd / base
    print("kdsim start-up benchmark")
    print(f"  Python {sys.version.split()[0]}; best of {repeats} child processes each")
    print(f"  python -c 'import prompt_toolkit, numpy, pygments'   {base * 1000:8.1f} ms")
    print(f"  kdsim -q -c q (boots win7-x64 2 GB, default scenario)  {kd * 1000:8.1f} ms")
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(f"  ratio {ratio:.2f}x   {verdict} <= {TARGET:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
