"""`sutro-sim compare` of six exact pipelines of the 4-layer MLP: one training shared by every
row (what compare does now) against a training per row (`--retrain`, what it did before), as
whole commands run alternately, side by side on equal terms.

    python benchmarks/bench_compare.py [--repeat 3]

Prints each command's wall and CPU seconds (the child's), the median ratio per pair, and
checks that both print the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = str(ROOT / "programs/mlp4_backprop.sir")
PIPELINES = ["fuse", "cse", "layer-local-update", "recompute{policy=sqrt}", "fuse,cse"]


def command(*extra: str) -> tuple[float, float, dict]:
    """(wall s, CPU s of the child, its --json)."""
    argv = [sys.executable, "-m", "sutro_sim", "compare", PROGRAM, "--json", "--no-db",
            *[a for p in PIPELINES for a in ("-p", p)], *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(out)


def figures(d: dict) -> list:
    return [(r["pipeline"], r["energy_fj"], r["reads"], r["writes"], r["hit_rate"],
             r["accuracy"]) for r in d["rows"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    command()                       # numba's cache warm, as after the first run
    ratios, rows = [], []
    for i in range(args.repeat):
        shared = command()
        own = command("--retrain")
        assert figures(shared[2]) == figures(own[2]), "a shared training changed a figure"
        assert shared[2]["trainings"] == 1 and own[2]["trainings"] == len(own[2]["rows"])
        ratios.append(own[0] / shared[0])
        rows.append((shared, own))
        print(f"run {i + 1}: train once {shared[0]:6.2f} s wall ({shared[1]:6.2f} CPU s); "
              f"retrain every row {own[0]:6.2f} s wall ({own[1]:6.2f} CPU s); "
              f"ratio {own[0] / shared[0]:.2f}x wall, {own[1] / shared[1]:.2f}x CPU")
    print(f"{len(rows[0][0][2]['rows'])} rows of {Path(PROGRAM).name}: median speed-up "
          f"{statistics.median(ratios):.2f}x wall; the figures are identical")


if __name__ == "__main__":
    main()
