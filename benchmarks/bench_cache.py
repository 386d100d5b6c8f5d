"""Throughput of simulator.cache against pycachesim 0.3.1 on the cpu-like hierarchy (LRU).

Run by hand: `python benchmarks/bench_cache.py [n_accesses]`. Two traces of 8-byte loads:
1. passes: sequential passes over three arrays sized for cpu-like's L1, L2 and L3 (16 KiB,
   512 KiB, 8 MiB), one array after another: each array is swept twice in a row before moving to
   the next, and the three-array round repeats until n accesses (so the second sweep of each array
   hits in the level it was sized for, and the first one partly misses, having been evicted by
   the previous array);
2. random: uniform random 8-byte-aligned loads over 32 MiB, seed 0.
Our simulator is timed over `feed` on chunks of 1M accesses, after a warm-up call on a small
trace so that numba's compile (or cache load) time is excluded; that time is printed separately.
pycachesim gets its bulk call `cs.load(list_of_addrs, length=8)` (list building not timed).
Hit and miss counts per level must be identical (a load-only trace: compat does not matter).
Both sides are timed in wall seconds and in CPU seconds (this process's, all threads): our
fused kernel runs two threads on one chunk when the hierarchy splits in two, pycachesim one.
Last, the random trace through cpu-like cut after L1, L2 and L3, on one thread and on two: the
time per access that each level adds.
"""

from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np
from traces import CHUNK, passes_addresses, random_addresses

from simulator.cache import CacheSim
from simulator.hierarchy import Hierarchy, load_hierarchy
from simulator.trace import make_chunk

REPEATS = 3  # this VM's timings swing by tens of per cent: best of three, both sides


def run_ours(addrs: np.ndarray):
    h = load_hierarchy("cpu-like")
    t0 = time.perf_counter()
    warm = CacheSim(h, 0)
    warm.feed(make_chunk(0, addrs[:1000], 8, False), np.full(1000, -1, np.int32))
    compile_s = time.perf_counter() - t0
    chunks = [make_chunk(0, addrs[i:i + CHUNK], 8, False) for i in range(0, len(addrs), CHUNK)]
    ids = [np.full(len(c), -1, np.int32) for c in chunks]
    best = (float("inf"), float("inf"))
    for _ in range(REPEATS):
        sim = CacheSim(h, 0)
        t0, c0 = time.perf_counter(), time.process_time()
        for c, i in zip(chunks, ids):
            sim.feed(c, i)
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best, compile_s, sim.finish()


def run_pycachesim(addrs: np.ndarray):
    best = (float("inf"), float("inf"))
    for _ in range(REPEATS):
        seconds, stats = run_pycachesim_once(addrs)
        best = min(best, seconds)
    return best, stats


def run_pycachesim_once(addrs: np.ndarray):
    import cachesim
    h = load_hierarchy("cpu-like")
    below, caches = None, []
    for lv in reversed(h.levels[:-1]):
        below = cachesim.Cache(lv.name, lv.n_sets, lv.ways, lv.line_bytes, "LRU",
                               load_from=below, store_to=below)
        caches.insert(0, below)
    mem = cachesim.MainMemory()
    mem.load_to(caches[-1])
    mem.store_from(caches[-1])
    cs = cachesim.CacheSimulator(caches[0], mem)
    as_list = addrs.tolist()
    t0, c0 = time.perf_counter(), time.process_time()
    cs.load(as_list, length=8)
    return (time.perf_counter() - t0, time.process_time() - c0), [c.stats() for c in caches]


def compare(name: str, addrs: np.ndarray) -> bool:
    (ours_s, ours_cpu), compile_s, ours = run_ours(addrs)
    (theirs_s, theirs_cpu), theirs = run_pycachesim(addrs)
    n = len(addrs)
    same = all(o.read_hits == t["HIT_count"] and o.read_misses == t["MISS_count"]
               for o, t in zip(ours, theirs))
    print(f"{name:8s} {n:>11,d} accesses  sutro-sim {n / ours_s / 1e6:7.1f} M/s "
          f"({ours_s:.2f} s, {ours_cpu:.2f} CPU-s; compile/cache-load {compile_s:.2f} s)   "
          f"pycachesim {n / theirs_s / 1e6:6.1f} M/s ({theirs_s:.2f} s, {theirs_cpu:.2f} CPU-s)"
          f"   speed-up {theirs_s / ours_s:4.2f}x wall, {theirs_cpu / ours_cpu:4.2f}x per "
          f"CPU-second   counts identical: {same}")
    for o in ours[:-1]:
        print(f"         {o.name}: hits {o.hits:,d} misses {o.misses:,d} hit rate {o.hit_rate:.4f}")
    return same


def per_level(addrs: np.ndarray) -> None:
    """Where the time goes: cpu-like cut after L1, L2 and L3, on one thread and on two."""
    h = load_hierarchy("cpu-like")
    chunks = [make_chunk(0, addrs[i:i + CHUNK], 8, False) for i in range(0, len(addrs), CHUNK)]
    for n_levels in (1, 2, 3):
        cut = Hierarchy(f"cpu-like[:{n_levels}]", h.levels[:n_levels] + h.levels[-1:])
        row = []
        for threads in (1, 2):
            if threads == 2 and not CacheSim(cut, 0)._fused.shardable:
                row.append("2 threads    -  (one level: nothing to split)")
                continue
            best = float("inf")
            for _ in range(REPEATS):
                sim = CacheSim(cut, 0)
                sim._fused.shardable &= threads == 2
                t0 = time.perf_counter()
                for c in chunks:
                    sim.feed(c, np.full(len(c), -1, np.int32))
                best = min(best, time.perf_counter() - t0)
            row.append(f"{threads} thread{'s' * (threads > 1)} {best / len(addrs) * 1e9:6.1f} ns")
        print(f"         {' + '.join(lv.name for lv in cut.levels[:-1]):12s} per access: "
              + ",  ".join(row))


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    print(f"best of {REPEATS} runs each; machine: {platform.machine()}, {os.cpu_count()} cores")
    ok = compare("passes", passes_addresses(n))
    ok &= compare("random", random_addresses(n))
    print("random, by levels:")
    per_level(random_addresses(n))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
