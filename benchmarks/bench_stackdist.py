"""Exact stack-distance throughput on the 10-million-access passes and random traces.

    python benchmarks/bench_stackdist.py

Prints accesses per second at element granularity (count only, and count + bytes as the
simulator runs it) and at 64-byte-line granularity; best of three runs. Compile time is
excluded (a warm-up call).
"""

from __future__ import annotations

import platform
import time

import numpy as np
from traces import CHUNK, passes_addresses, random_addresses

from simulator.stackdist import StackDistance

REPEATS = 3  # this VM's timings swing by tens of per cent: best of three


def rate(addresses: np.ndarray, weighted: bool, shift: int) -> float:
    StackDistance(weighted).feed(addresses[:100] >> shift, np.full(100, 8))  # compile
    weights = np.full(CHUNK, 8)
    best = float("inf")
    for _ in range(REPEATS):
        sd = StackDistance(weighted)
        t = time.perf_counter()
        for lo in range(0, len(addresses), CHUNK):
            part = addresses[lo:lo + CHUNK] >> shift
            sd.feed(part, weights[:len(part)])
        best = min(best, time.perf_counter() - t)
    return len(addresses) / best


def main() -> None:
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"python {platform.python_version()}")
    for name, addresses in (("passes", passes_addresses()), ("random", random_addresses())):
        for label, weighted, shift in (("elements", False, 3), ("elements+bytes", True, 3),
                                       ("64 B lines", False, 6)):
            print(f"{name:7s} {label:15s} {rate(addresses, weighted, shift) / 1e6:6.1f} M accesses/s")


if __name__ == "__main__":
    main()
