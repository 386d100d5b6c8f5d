"""The memory figures behind the limits checked before work starts (docs/input-contract.md):
each is measured here, marginally (the peak difference between a small and a large job, over
the difference in size), and printed beside the constant the check uses.

    python benchmarks/bench_limits.py [--large]

- a traced step, bytes an access: `run programs/mlp_backprop_always.sir` at two hidden sizes,
  one step, peak resident memory of the process (sutro_sim/run.py TRACE_BYTES_PER_ACCESS);
- a trace file's chunk in the simulator, bytes an access: one chunk of random loads at two sizes
  (simulator/trace.py CHUNK_BYTES_PER_ACCESS);
- a generated dataset, bytes a bit: tracemalloc's peak while generating 10^6 examples of 20 bits
  (sutro_ir/datasets.py nbytes: GENERATED_BYTES_PER_BIT and one block).

--large uses the sizes the constants were set from (a 101.7-million-access step: about 10 GB
and a minute); the default sizes take about 20 seconds and 2 GB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

CHUNK_SCRIPT = """
import resource, sys, numpy as np
from simulator.hierarchy import load_hierarchy
from simulator.simulate import simulate
from simulator.trace import Buffer, Trace, make_chunk
n = int(sys.argv[1])
rng = np.random.default_rng(0)
chunk = make_chunk(0, rng.integers(0, 1 << 24, size=n, dtype=np.int64) * 4, 4, rng.random(n) < 0.3)
trace = Trace.from_chunks([Buffer("a", 0, 1 << 26, "f32", "data")], [], [chunk])
simulate(trace, load_hierarchy("cpu-like"))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def peak_of(argv: list[str]) -> int:
    """Peak resident bytes of a child process."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if after <= before:
        raise RuntimeError("a child's peak did not pass the previous one; run sizes in increasing order")
    return after * 1024


def traced_step(hidden: int) -> tuple[int, int]:
    argv = [PY, "-m", "sutro_sim", "run", "programs/mlp_backprop_always.sir", "--set",
            f"hidden={hidden}", "n_train=1", "epochs=1", "n_test=1", "--no-eval", "--json"]
    peak = peak_of(argv)
    out = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out)["traced"]["accesses_per_step"], peak


def chunk(n: int) -> tuple[int, int]:
    out = subprocess.run([PY, "-c", CHUNK_SCRIPT, str(n)], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    return n, int(out.split()[-1])


def marginal(a: tuple[int, int], b: tuple[int, int]) -> float:
    return (b[1] - a[1]) / (b[0] - a[0])


def main() -> None:
    from sutro_ir import datasets
    from sutro_ir.compile import compile_file
    from sutro_sim.run import TRACE_BYTES_PER_ACCESS
    from simulator.trace import CHUNK_BYTES_PER_ACCESS

    large = "--large" in sys.argv
    rows = []
    small_h, big_h = (40_000, 300_000) if large else (10_000, 40_000)
    a, b = traced_step(small_h), traced_step(big_h)
    rows.append(("traced step, bytes an access", f"{a[0]:,} -> {b[0]:,} accesses",
                 marginal(a, b), TRACE_BYTES_PER_ACCESS))
    a, b = chunk(2_000_000), chunk(16_000_000 if large else 8_000_000)
    rows.append(("trace-file chunk, bytes an access", f"{a[0]:,} -> {b[0]:,} accesses",
                 marginal(a, b), CHUNK_BYTES_PER_ACCESS))
    data = compile_file(str(ROOT / "programs/mlp_backprop.sir"), {"n_train": "1000000"}).data
    tracemalloc.start()
    datasets.generate(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    bits = (1_000_000 + 200) * 21
    rows.append(("generated dataset, bytes a bit", "10^6 examples of 20 bits", peak / bits,
                 datasets.nbytes(data) / bits))
    print(f"{'figure':36s} {'sizes':34s} {'measured':>9s} {'check uses':>11s}")
    for name, sizes, got, used in rows:
        flag = "" if got <= used else "   UNDER-ESTIMATED"
        print(f"{name:36s} {sizes:34s} {got:9.1f} {used:11.1f}{flag}")


if __name__ == "__main__":
    main()
