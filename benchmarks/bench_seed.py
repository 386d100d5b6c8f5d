"""The seed's 3-bit setup, traced whole by sutro-sim, against the seed script itself, side by
side in one run.

    python benchmarks/bench_seed.py SEED_SCRIPT [--rounds R]

SEED_SCRIPT is `sparse_parity_benchmark.py` of the cybertronai/sutro repository (pure Python:
it trains the MLP on 3-bit parity, instruments its first step and plots its losses); it is not
part of this project, so give its path. sutro-sim's side is the whole command
`sutro-sim run programs/mlp_backprop.sir --set n_bits=3 hidden=1000 lr=0.5`, every access of
every step and evaluation accounted. Each round runs both in fresh processes, alternating which
goes first; printed: each side's wall and CPU time per round, and the medians of the ratios
sutro-sim / seed (the target is at most 0.5 of the seed's wall time).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUTRO = [sys.executable, "-m", "sutro_sim", "run", str(ROOT / "programs/mlp_backprop.sir"),
         "--set", "n_bits=3", "hidden=1000", "lr=0.5"]


def timed(cmd: list[str], cwd: str) -> tuple[float, float]:
    """(wall, CPU) seconds of a command and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seed_script", help="path to the seed's sparse_parity_benchmark.py")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    seed = [sys.executable, str(Path(args.seed_script).resolve())]
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:   # the seed script writes its plot here
        timed(SUTRO, tmp)                          # numba's kernels compiled and cached
        for i in range(args.rounds):
            order = [("seed", seed), ("sutro", SUTRO)][:: 1 if i % 2 == 0 else -1]
            got = {name: timed(cmd, tmp) for name, cmd in order}
            walls.append(got["sutro"][0] / got["seed"][0])
            cpus.append(got["sutro"][1] / got["seed"][1])
            print(f"round {i + 1}: seed script {got['seed'][0]:.2f} s wall "
                  f"({got['seed'][1]:.2f} s CPU), sutro-sim {got['sutro'][0]:.2f} s wall "
                  f"({got['sutro'][1]:.2f} s CPU): ratio {walls[-1]:.2f} wall, "
                  f"{cpus[-1]:.2f} CPU", flush=True)
    print(f"median ratio sutro-sim / seed script over {args.rounds} rounds: "
          f"{statistics.median(walls):.2f} wall, {statistics.median(cpus):.2f} CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
