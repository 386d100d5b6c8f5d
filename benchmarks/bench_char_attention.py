"""The whole command `sutro-sim run programs/char_attention.sir`, timed as a user runs it, and
(with --large) the recompute policies on a larger configuration of the same model.

    python benchmarks/bench_char_attention.py [--repeat 3] [--whole] [--large]

Prints the wall and CPU seconds of each run (a subprocess: start-up, compile, training, the
final evaluations, tracing and simulating the program's sample), the test loss and the bigram
baseline it has to beat. --large prints the recompute table of docs/results.md section 9 for
block 16, embedding 32, hidden 64, batch 16 on 3,000 characters (two traced steps): about
two minutes on 2 cores.
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
sys.path.insert(0, str(ROOT))

PROGRAM = str(ROOT / "programs/char_attention.sir")
LARGE = {"block": "16", "d": "32", "hidden": "64", "batch_size": "16", "length": "3000"}


def whole_command(*options: str) -> tuple[float, float, dict]:
    """(wall s, CPU s of the child, its --json report)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "sutro_sim", "run", PROGRAM, "--json", *options],
                         check=True, capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(out.stdout)


def large() -> None:
    from simulator.report import energy, size
    from sutro_ir.compile import compile_file
    from sutro_ir.passes.recompute import recomputed_values
    from sutro_sim.compare import compare
    policies = ["store-all", "sqrt", "all", "auto"]
    c = compare(PROGRAM, [f"recompute{{policy={p}}},fuse" for p in policies], LARGE,
                trace_steps="2")
    before = compile_file(PROGRAM, LARGE).train.graph
    base = c.rows[0].result
    print("\npolicy     recomputed  ops/step     peak live  energy    vs store-all")
    for p, row in zip(policies, c.rows):
        r = row.result
        after = compile_file(PROGRAM, LARGE, row.pipeline.removesuffix(",fuse")).train.graph
        print(f"{p:10} {len(recomputed_values(before, after)):10}  {r.arith_ops:11,.0f}  "
              f"{size(r.peak_live_bytes):>9}  {energy(r.sim.energy.total):>8}  "
              f"{r.sim.energy.total / base.sim.energy.total - 1:+.1%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--whole", action="store_true",
                    help="also time the exact whole run (--trace-steps all): minutes")
    args = ap.parse_args()
    walls, cpus = [], []
    for _ in range(args.repeat):
        wall, cpu, report = whole_command()
        walls.append(wall)
        cpus.append(cpu)
    print(f"sutro-sim run programs/char_attention.sir: wall {min(walls):.2f} s best, "
          f"{statistics.median(walls):.2f} s median of {args.repeat}; CPU "
          f"{statistics.median(cpus):.2f} s")
    print(f"test loss {report['loss']['test']:.4f}, bigram {report['baseline']['bigram_test_loss']:.4f}"
          f", entropy {report['baseline']['entropy']:.4f} (nats per character); test accuracy "
          f"{report['accuracy']['test']:.1%}; {report['steps']:,} steps, "
          f"{report['traced']['n_steps']} traced")
    if args.whole:
        wall, cpu, whole = whole_command("--trace-steps", "all")
        exact = whole["costs"]["training_steps_fj"]
        guess = report["traced"]["extrapolated_total_energy_fj"]
        print(f"--trace-steps all (every step simulated, exact): wall {wall:.1f} s, CPU "
              f"{cpu:.1f} s; the training steps' energy {exact / 1e12:.2f} mJ, the sample's "
              f"extrapolation {guess / 1e12:.2f} mJ ({guess / exact - 1:+.1%})")
    if args.large:
        large()
    return 0


if __name__ == "__main__":
    sys.exit(main())
