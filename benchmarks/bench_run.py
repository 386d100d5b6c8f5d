"""Time the phases of the main job, `sutro-sim run programs/mlp_backprop.sir`, best of 3.

    python benchmarks/bench_run.py

Prints the whole command's wall time (a fresh process each time, as a user runs it), for the
main job and for the seed's 3-bit setup, and the main job's phases that `--profile` reports: compile, execute, trace generation, simulation.
"""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sutro_sim.run import run

PROGRAM = str(ROOT / "programs/mlp_backprop.sir")


SEED_3_BIT = ["--set", "n_bits=3", "hidden=1000", "lr=0.5"]


def whole_command(extra: list[str]) -> list[float]:
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sutro_sim", "run", PROGRAM, *extra], check=True,
                       capture_output=True)
        walls.append(time.perf_counter() - t)
    return walls


def main() -> None:
    for label, extra in (("main job", []), ("seed's 3-bit setup, every step traced", SEED_3_BIT)):
        walls = whole_command(extra)
        print(f"whole command, {label}: best {min(walls):.2f} s, worst {max(walls):.2f} s")
    results = [run(PROGRAM) for _ in range(3)]
    for phase in results[0].profile:
        times = [r.profile[phase] for r in results]
        print(f"{phase:18s} best {min(times):.3f} s, worst {max(times):.3f} s")
    r = results[0]
    best = min(x.profile["trace_generation"] for x in results)
    print(f"trace generation: {r.accesses_per_step / best / 1e6:.1f} M accesses/s "
          f"({r.accesses_per_step:,} accesses per step)")
    best_sim = min(x.profile["simulation"] for x in results)
    n = len(r.traced) * r.accesses_per_step
    print(f"simulation: {n / best_sim / 1e6:.2f} M accesses/s over {n:,} accesses")


if __name__ == "__main__":
    main()
