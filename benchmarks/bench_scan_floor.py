"""The floor under the random-trace cache benchmark: the set scans alone.

Run by hand: `python benchmarks/bench_scan_floor.py`. On benchmarks/bench_cache.py's random
trace (uniform 8-byte loads over 32 MiB) every access misses all three cpu-like levels, so any
simulator must scan three sets per access. This script times a stand-alone numba loop that does
only that: a stamped-LRU lookup and replacement in a table shaped like each level (L1: 8 ways x
64 sets, L2: 16 x 1,024, L3: 16 x 16,384), with no counters, no request rows, no per-buffer
bytes. It prints ns per access for the scan sutro-sim uses (stop at the tag, track the oldest
stamp on the way) and for a branchless variant (no early exit). Their sum is a lower bound on
what one thread of any stamped-LRU simulator spends per access on this trace.
"""

from __future__ import annotations

import time

import numba
import numpy as np


@numba.njit
def early_exit(lines, tags, stamp, ways, mask):
    hits = 0
    for k in range(lines.shape[0]):
        line = lines[k]
        base = (line & mask) * ways
        slot, victim, oldest = -1, -1, np.int64(1) << 62
        for j in range(ways):
            if tags[base + j] == line:
                slot = base + j
                break
            if stamp[base + j] < oldest:
                victim, oldest = base + j, stamp[base + j]
        if slot >= 0:
            hits += 1
            stamp[slot] = k
        else:
            tags[victim], stamp[victim] = line, k
    return hits


@numba.njit
def branchless(lines, tags, stamp, ways, mask):
    hits = 0
    for k in range(lines.shape[0]):
        line = lines[k]
        base = (line & mask) * ways
        found, slot = False, base
        for j in range(ways):
            match = tags[base + j] == line
            found |= match
            slot = base + j if match else slot
        if found:
            hits += 1
            stamp[slot] = k
        else:
            victim, oldest = base, stamp[base]
            for j in range(1, ways):
                older = stamp[base + j] < oldest
                victim = base + j if older else victim
                oldest = stamp[base + j] if older else oldest
            tags[victim], stamp[victim] = line, k
    return hits


def main() -> None:
    lines = np.random.default_rng(0).integers(0, (32 << 20) // 64, 10_000_000).astype(np.int64)
    totals = {"early_exit": 0.0, "branchless": 0.0}
    for name, ways, sets in (("L1", 8, 64), ("L2", 16, 1024), ("L3", 16, 16384)):
        row = []
        for scan in (early_exit, branchless):
            best = float("inf")
            for _ in range(3):
                tags = np.full(ways * sets, -1, np.int64)
                stamp = np.full(ways * sets, -1, np.int64)
                scan(lines[:1000], tags, stamp, ways, sets - 1)    # compile
                tags[:], stamp[:] = -1, -1
                t0 = time.perf_counter()
                scan(lines, tags, stamp, ways, sets - 1)
                best = min(best, time.perf_counter() - t0)
            ns = best / len(lines) * 1e9
            totals[scan.__name__] += ns
            row.append(f"{scan.__name__} {ns:5.1f} ns")
        print(f"{name} ({ways} ways x {sets:,} sets): " + ", ".join(row))
    print("sum over the three levels: " + ", ".join(f"{k} {v:.1f} ns" for k, v in totals.items()))


if __name__ == "__main__":
    main()
