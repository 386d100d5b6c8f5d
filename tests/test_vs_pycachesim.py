"""The hierarchy simulator against pycachesim 0.3.1 on seeded random (trace, hierarchy) pairs.

Run with `pycachesim_compat=True` (see simulator.cache: pycachesim's store hits neither count a hit
nor refresh LRU). pycachesim's counters map onto ours exactly:
- HIT_count   = read_hits (it counts load hits only);
- MISS_count  = read_misses, plus write_misses when the level write-allocates (its store miss
  calls its load path, which counts the miss);
- EVICT_count = writebacks (dirty victims written down, or write-through stores passed down);
- LOAD_byte   = read_bytes, plus one line per write-allocate miss; STORE_byte = write_bytes.
pycachesim does not count the stores a write-through *last* cache level drops into memory (its
`store_to` is NULL there), so EVICT/STORE of that case are compared through its memory instead.
Addresses stay below 2^32: pycachesim keeps only 32 bits of an address (its issue #15).
"""

import numpy as np
import pytest

cachesim = pytest.importorskip("cachesim")

from simulator.cache import CacheSim
from simulator.hierarchy import Hierarchy, Level
from simulator.trace import make_chunk

N_CASES = 240


def random_hierarchy(rng: np.random.Generator) -> Hierarchy:
    """1-3 levels; line sizes never shrink towards memory (pycachesim requires it)."""
    levels, line = [], int(2 ** rng.integers(2, 7))
    for i in range(int(rng.integers(1, 4))):
        line = line * int(2 ** rng.integers(0, 2)) if i else line
        sets, ways = int(2 ** rng.integers(0, 6)), int(rng.integers(1, 9))
        write_back = bool(rng.random() < 0.8)
        levels.append(Level(f"L{i + 1}", sets * ways * line, line, ways,
                            str(rng.choice(["lru", "fifo"])), write_back,
                            write_allocate=write_back and bool(rng.random() < 0.9)))
    levels.append(Level("MEM", None, line))
    return Hierarchy("random", tuple(levels), pycachesim_compat=True)


def random_trace(rng: np.random.Generator, n: int):
    """Reads and writes mixed, 1-16 bytes, clustered so that there are hits at every level."""
    span = int(2 ** rng.integers(8, 16))
    base = int(rng.integers(0, 2 ** 31))
    addr = base + rng.integers(0, span, n)
    nbytes = rng.integers(1, 17, n)
    is_write = rng.random(n) < rng.random()
    return make_chunk(0, addr, nbytes, is_write)


def run_pycachesim(h: Hierarchy, chunk):
    mem = cachesim.MainMemory()
    below, caches = None, []
    for lv in reversed(h.levels[:-1]):
        below = cachesim.Cache(lv.name, lv.n_sets, lv.ways, lv.line_bytes, lv.policy.upper(),
                               write_back=lv.write_back, write_allocate=lv.write_allocate,
                               load_from=below, store_to=below)
        caches.insert(0, below)
    mem.load_to(caches[-1])
    mem.store_from(caches[-1])
    cs = cachesim.CacheSimulator(caches[0], mem)
    for a, nb, w in zip(chunk.addr.tolist(), chunk.nbytes.tolist(), chunk.is_write.tolist()):
        (cs.store if w else cs.load)([a], length=nb)    # a list: the 64-bit iter path
    return [c.stats() for c in caches], mem.stats()


def expected_counts(lv: Level, ours) -> dict:
    miss = ours.read_misses + (ours.write_misses if lv.write_allocate else 0)
    load = ours.read_bytes + (ours.write_misses * lv.line_bytes if lv.write_allocate else 0)
    return {"HIT_count": ours.read_hits, "MISS_count": miss, "EVICT_count": ours.writebacks,
            "LOAD_byte": load, "STORE_byte": ours.write_bytes}


def check_case(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h = random_hierarchy(rng)
    chunk = random_trace(rng, int(rng.integers(1000, 4000)))
    sim = CacheSim(h, 0)
    if sim._fused is not None and seed % 2:
        sim._fused.min_per_class = 0   # the fast path's grouped order, whatever the trace size
    sim.feed(chunk, np.full(len(chunk), -1, np.int32))
    ours = sim.finish()
    theirs, mem = run_pycachesim(h, chunk)
    last = len(theirs) - 1
    for i, (lv, o, t) in enumerate(zip(h.levels, ours, theirs)):
        want = expected_counts(lv, o)
        if i == last and not lv.write_back:
            del want["EVICT_count"]        # pycachesim drops these stores uncounted
        got = {k: t[k] for k in want}
        assert got == want, f"seed {seed}, level {lv.name}: {lv}"
    assert mem["LOAD_count"] == ours[-1].read_hits
    if h.levels[-2].write_back:
        assert mem["STORE_byte"] == ours[-1].write_bytes


@pytest.mark.parametrize("block", range(8))
def test_random_pairs_agree_with_pycachesim(block):
    for seed in range(block, N_CASES, 8):
        check_case(seed)
