"""Long traces through the whole simulator in bounded memory.

    python benchmarks/bench_memory.py [N_ACCESSES] [HIERARCHY] [mlp|wide-random]

mlp (default: 10^8 accesses, cpu-like): the seed's MLP step scaled to 20 inputs and 1,000 hidden
units, repeated (the shape of a fully traced 20-bit sparse-parity run); target: under 2 GiB.
wide-random: loads at random addresses anywhere below 2^63, nearly all distinct (the stack
distance keeps one entry per distinct address); target: 10^7 accesses under 1 GiB.
Both are made chunk by chunk. Prints wall time, throughput and peak resident memory.
"""

from __future__ import annotations

import resource
import sys
import time

from traces import mlp_trace, wide_random_trace

from simulator.hierarchy import load_hierarchy
from simulator.simulate import simulate


def main() -> None:
    n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 100_000_000
    hierarchy = load_hierarchy(sys.argv[2] if len(sys.argv) > 2 else "cpu-like")
    make = wide_random_trace if sys.argv[3:] == ["wide-random"] else mlp_trace
    simulate(make(200_000), hierarchy)  # compile
    trace = make(n)
    t = time.perf_counter()
    result = simulate(trace, hierarchy)
    dt = time.perf_counter() - t
    accesses = result.reuse.reads + result.reuse.writes
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(f"{accesses:,} accesses ({trace.n_chunks:,} steps) through {hierarchy.name}: "
          f"{dt:.1f} s, {accesses / dt / 1e6:.1f} M accesses/s, peak RSS {peak:,.0f} MiB")
    print(f"ARD {result.reuse.ard:,.1f} elements, energy {result.energy.total / 1e9:,.2f} uJ")


if __name__ == "__main__":
    main()
