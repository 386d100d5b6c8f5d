"""Brute-force simulation speed on sutro-tiers, this tree against a baseline revision, side by
side in one run.

    python benchmarks/bench_brute.py [--baseline REV] [--steps N] [--rounds R]

The trace: the first N steps (default 10) of `programs/mlp_backprop_always.sir` at its defaults
(339,045 accesses a step, the seed's MLP at 20 bits), every access simulated (`brute_force`;
the baseline, from before whole runs were accounted, always simulated every access). Each
side runs in its own process, rounds alternating (A B A B ...), so that a busy machine slows
both alike; each process compiles and warms up first, then times `simulate` three times and
keeps the best. Printed: accesses per second of wall time and per CPU-second for each side,
and the ratios (this tree / baseline), per round and their median. The baseline is extracted
with `git archive` into a temporary directory; its numba kernels compile there once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "4f39094"     # main before issue 11: the hash kernel, sqrt sums outside numba

MEASURE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from simulator.hierarchy import load_hierarchy
from simulator.simulate import simulate
from sutro_ir.compile import compile_file
from sutro_ir.schedule import schedule
from sutro_ir.tracegen import StepTrace

steps = int(sys.argv[2])
program = compile_file(sys.argv[1] + "/programs/mlp_backprop_always.sir")
sched = schedule(program.train.graph)
st = StepTrace(sched, program.train.x, program.train.y, [p.name for p in program.params])
hierarchy = load_hierarchy("sutro-tiers")
brute = {"brute_force": True} if "brute_force" in simulate.__code__.co_varnames else {}
simulate(st.trace([0, 1], {}), hierarchy, **brute)          # compile and warm up
trace = st.trace(list(range(steps)), {})
best = None
for _ in range(3):
    w, c = time.perf_counter(), time.process_time()
    r = simulate(trace, hierarchy, **brute)
    w, c = time.perf_counter() - w, time.process_time() - c
    best = (w, c) if best is None or w < best[0] else best
n = r.reuse.reads + r.reuse.writes
print(json.dumps({"accesses": n, "wall_s": best[0], "cpu_s": best[1],
                  "energy_fj": r.energy.total}))
"""


def measure(tree: Path, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(tree), str(steps)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=BASELINE, help=f"git revision (default {BASELINE})")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sutro-baseline-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        wall, cpu = [], []
        for i in range(args.rounds):
            new, old = measure(ROOT, args.steps), measure(Path(tmp), args.steps)
            if new["accesses"] != old["accesses"] or new["energy_fj"] != old["energy_fj"]:
                raise SystemExit(f"the two trees disagree: {new} vs {old}")
            wall.append(old["wall_s"] / new["wall_s"])
            cpu.append(old["cpu_s"] / new["cpu_s"])
            n = new["accesses"]
            print(f"round {i + 1}: {n:,} accesses; this tree {n / new['wall_s'] / 1e6:.2f} M/s "
                  f"({n / new['cpu_s'] / 1e6:.2f} M per CPU-s), baseline {args.baseline} "
                  f"{n / old['wall_s'] / 1e6:.2f} M/s ({n / old['cpu_s'] / 1e6:.2f} M per CPU-s); "
                  f"ratio {wall[-1]:.2f}x wall, {cpu[-1]:.2f}x CPU", flush=True)
    print(f"median ratio over {args.rounds} rounds: {statistics.median(wall):.2f}x wall, "
          f"{statistics.median(cpu):.2f}x per CPU-second (same totals, to the fJ)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
