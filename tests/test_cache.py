"""The cache simulator: hand-worked cases, invariants, LRU vs stack distance, OPT."""

import numpy as np
import pytest

from simulator.cache import CacheSim, simulate_hierarchy
from simulator.errors import SimError
from simulator.hierarchy import Hierarchy, Level
from simulator.trace import TraceBuilder, make_chunk


def hier(*levels, compat=False, mem_line=None):
    line = mem_line or levels[-1].line_bytes
    return Hierarchy("test", tuple(levels) + (Level("MEM", None, line),), pycachesim_compat=compat)


def run(h, addr, nbytes=4, is_write=False, buffer_ids=None, n_buffers=0, chunk_size=None):
    chunk = make_chunk(0, addr, nbytes, is_write)
    ids = np.full(len(chunk), -1, np.int32) if buffer_ids is None else np.asarray(buffer_ids,
                                                                                  np.int32)
    sim = CacheSim(h, n_buffers)
    size = chunk_size or max(len(chunk), 1)
    served = [sim.feed(make_chunk(0, chunk.addr[i:i + size], chunk.nbytes[i:i + size],
                                  chunk.is_write[i:i + size]), ids[i:i + size])
              for i in range(0, len(chunk), size)]
    return sim.finish(), np.concatenate(served), sim


# ----------------------------------------------------------------------------- hand-worked

def test_two_set_two_way_lru_vs_fifo():
    # 16-byte lines, 2 sets x 2 ways; lines 0, 2, 4 all map to set 0
    lines = [0, 2, 0, 4, 2]
    lru, _, _ = run(hier(Level("L1", 64, 16, 2, "lru")), np.array(lines) * 16)
    fifo, _, _ = run(hier(Level("L1", 64, 16, 2, "fifo")), np.array(lines) * 16)
    # LRU: 0 m, 2 m, 0 h, 4 m (evicts 2), 2 m (evicts 0)
    assert (lru[0].hits, lru[0].misses, lru[0].evictions) == (1, 4, 2)
    # FIFO: 0 m, 2 m, 0 h (no reorder), 4 m (evicts 0, the oldest), 2 h
    assert (fifo[0].hits, fifo[0].misses, fifo[0].evictions) == (2, 3, 1)


def test_dirty_eviction_fills_before_writing_back():
    # both levels hold one line. write A, read B: L1 fetches B (L2 evicts clean A for B), THEN
    # writes A back (L2 write miss: fetch A from memory, evict clean B). Writeback-first would
    # instead hit A in L2 and later write A to memory.
    h = hier(Level("L1", 16, 16, 1), Level("L2", 16, 16, 1))
    stats, served, _ = run(h, [0, 16], 4, [True, False])
    l1, l2, mem = stats
    assert (l1.write_misses, l1.read_misses, l1.evictions, l1.writebacks) == (1, 1, 1, 1)
    assert (l1.bytes_in, l1.bytes_out) == (32, 16)
    assert (l2.read_misses, l2.write_misses, l2.writebacks, l2.evictions) == (2, 1, 0, 2)
    assert (mem.read_bytes, mem.write_bytes) == (48, 0)
    assert served.tolist() == [2, 2]


def test_write_through_passes_every_store_down():
    h = hier(Level("L1", 64, 16, 2, write_back=False, write_allocate=False))
    (l1, mem), served, _ = run(h, [0, 0, 0], 4, [True, False, True])
    # store miss (no allocate) -> down; load miss -> fill; store hit -> down
    assert (l1.write_misses, l1.read_misses, l1.write_hits) == (1, 1, 1)
    assert (l1.writebacks, l1.bytes_out, l1.bytes_in) == (2, 8, 16)
    assert (mem.read_bytes, mem.write_bytes, mem.write_hits) == (16, 8, 2)
    assert served.tolist() == [1, 1, 1]


def test_line_spanning_access_touches_each_line():
    (l1, mem), served, _ = run(hier(Level("L1", 64, 16)), [12, 12], 8)
    assert (l1.read_misses, l1.read_hits, l1.read_bytes, l1.bytes_in) == (2, 2, 16, 32)
    assert served.tolist() == [1, 0]


def test_pycachesim_compat_store_hit_does_not_refresh_lru():
    # one set, 2 ways: read A, read B, write A (hit), read C -> evicts A under compat, B otherwise
    h = [Level("L1", 32, 16, 2)]
    addr, w = [0, 16, 0, 32, 0], [False, False, True, False, False]
    real, _, _ = run(hier(*h), addr, 4, w)
    compat, _, _ = run(hier(*h, compat=True), addr, 4, w)
    assert real[0].hits == 2 and compat[0].hits == 1


# ----------------------------------------------------------------------------- invariants

def random_case(seed, n=3000):
    rng = np.random.default_rng(seed)
    levels, line = [], int(2 ** rng.integers(2, 6))
    for i in range(int(rng.integers(1, 4))):
        ways = None if rng.random() < 0.3 else int(rng.integers(1, 5))
        n_lines = (ways or 1) * int(2 ** rng.integers(0, 5)) * (64 if ways is None else 1)
        wb = bool(rng.random() < 0.8)
        levels.append(Level(f"L{i + 1}", n_lines * line, line, ways,
                            str(rng.choice(["lru", "fifo", "random"])), wb,
                            write_allocate=bool(rng.random() < 0.8)))
    addr = rng.integers(0, 2 ** rng.integers(8, 14), n)
    return hier(*levels), addr, rng.integers(1, 9, n), rng.random(n) < 0.4, rng.integers(-1, 3, n)


@pytest.mark.parametrize("seed", range(40))
def test_bytes_balance_and_attribution(seed):
    h, addr, nbytes, w, ids = random_case(seed)
    stats, served, sim = run(h, addr, nbytes, w, ids, n_buffers=3)
    for lvl, st in enumerate(stats):
        assert sim.bytes_by_level_buffer[lvl].sum() == st.read_bytes + st.write_bytes
    for upper, lower in zip(stats, stats[1:]):
        assert upper.bytes_in == lower.read_bytes
        assert upper.bytes_out == lower.write_bytes
    assert served.max() <= len(stats) - 1 and served.min() >= 0


@pytest.mark.parametrize("seed", range(10))
def test_chunking_does_not_change_results(seed):
    h, addr, nbytes, w, ids = random_case(seed)
    whole, s1, sim1 = run(h, addr, nbytes, w, ids, n_buffers=3)
    parts, s2, sim2 = run(h, addr, nbytes, w, ids, n_buffers=3, chunk_size=97)
    assert whole == parts and np.array_equal(s1, s2)
    assert np.array_equal(sim1.bytes_by_level_buffer, sim2.bytes_by_level_buffer)


def test_writeback_is_charged_to_the_buffer_that_dirtied_the_line():
    h = hier(Level("L1", 16, 16, 1))
    _, _, sim = run(h, [0, 0, 16], 4, [False, True, False], buffer_ids=[0, 1, 2], n_buffers=3)
    # memory received: fill of line 0 (buffer 0), fill of line 1 (buffer 2), writeback (buffer 1)
    assert sim.bytes_by_level_buffer[1].tolist() == [16, 16, 16, 0]


# ----------------------------------------------------------------------------- LRU = stack distance

def stack_distance_hits(lines, capacity):
    """Brute force: a touch hits iff fewer than `capacity` distinct lines came since its last touch."""
    hits, last = 0, {}
    for t, line in enumerate(lines):
        if line in last and len(set(lines[last[line] + 1:t])) < capacity:
            hits += 1
        last[line] = t
    return hits


@pytest.mark.parametrize("n_lines", [4, 16, 64, 256])      # scan kernel, then hash kernel
@pytest.mark.parametrize("seed", range(3))
def test_fully_associative_lru_is_stack_distance(n_lines, seed):
    rng = np.random.default_rng(seed)
    addr = (rng.zipf(1.3, 3000) % 600) * 4
    w = rng.random(3000) < 0.3
    (l1, _), _, _ = run(hier(Level("L1", n_lines * 8, 8)), addr, 4, w)
    assert l1.hits == stack_distance_hits((addr // 8).tolist(), n_lines)


# ----------------------------------------------------------------------------- OPT

def opt_trace(lines, nbytes=4):
    b = TraceBuilder()
    buf = b.buffer("A", max(lines) * 4 + 4, "f32")
    b.read(buf, np.asarray(lines) * 4)
    return b.build()


def test_opt_hand_case():
    # 2 lines: A B C A B. OPT evicts B for C (B is used later than A): A hits. LRU: no hit.
    trace = opt_trace([0, 1, 2, 0, 1])
    opt, _ = simulate_hierarchy(hier(Level("L1", 8, 4, policy="opt")), trace)
    lru, _ = simulate_hierarchy(hier(Level("L1", 8, 4, policy="lru")), trace)
    assert (opt[0].hits, lru[0].hits) == (1, 0)


@pytest.mark.parametrize("ways,n_lines", [(2, 8), (None, 16), (None, 128), (4, 64)])
@pytest.mark.parametrize("seed", range(4))
def test_opt_beats_lru(ways, n_lines, seed):
    rng = np.random.default_rng(seed)
    trace = opt_trace((rng.zipf(1.2, 4000) % 500).tolist())
    opt, by_buf = simulate_hierarchy(hier(Level("L1", n_lines * 4, 4, ways, "opt")), trace)
    lru, _ = simulate_hierarchy(hier(Level("L1", n_lines * 4, 4, ways, "lru")), trace)
    assert opt[0].hits >= lru[0].hits and opt[0].accesses == lru[0].accesses
    assert by_buf[0].sum() == opt[0].read_bytes


def test_opt_needs_the_trace():
    with pytest.raises(SimError, match="needs the whole trace up front"):
        CacheSim(hier(Level("L1", 8, 4, policy="opt")), 0)


# ----------------------------------------------------------------------------- misc

def test_random_policy_is_seeded():
    rng = np.random.default_rng(1)
    addr = rng.integers(0, 4096, 5000)
    a, _, _ = run(hier(Level("L1", 256, 16, 4, "random", seed=3)), addr)
    b, _, _ = run(hier(Level("L1", 256, 16, 4, "random", seed=3)), addr)
    lru, _, _ = run(hier(Level("L1", 256, 16, 4, "lru")), addr)
    assert a == b and a[0].accesses == lru[0].accesses


def test_bad_buffer_ids():
    sim = CacheSim(hier(Level("L1", 64, 16)), 2)
    with pytest.raises(SimError, match="buffer id 5 is not in the buffer table"):
        sim.feed(make_chunk(0, [0], 4, False), np.array([5]))


def test_stats_to_dict_and_hit_rate():
    (l1, mem), _, _ = run(hier(Level("L1", 64, 16)), [0, 0, 0, 0], 4)
    d = l1.to_dict()
    assert d["hit_rate"] == 0.75 and d["capacity_bytes"] == 64 and d["in_bytes"] == 16
    assert mem.hit_rate == 1.0 and mem.accesses == 1


# ----------------------------------------------------------------------------- fused fast path

def fused_case(seed, n=4000):
    """LRU/FIFO hierarchies the fused path takes: mixed line sizes, power-of-two or not."""
    rng = np.random.default_rng(1000 + seed)
    levels = []
    for i in range(int(rng.integers(1, 4))):
        line = int(2 ** rng.integers(2, 7))
        ways = int(2 ** rng.integers(0, 4))
        sets = int(2 ** rng.integers(0, 6)) if rng.random() < 0.8 else int(rng.integers(3, 12))
        levels.append(Level(f"L{i + 1}", sets * ways * line, line, ways,
                            str(rng.choice(["lru", "fifo"])), bool(rng.random() < 0.8),
                            write_allocate=bool(rng.random() < 0.8)))
    aligned = rng.random() < 0.5  # aligned 8-byte accesses never span lines: two shards
    size = 8 if aligned else rng.integers(1, 17, n)
    addr = rng.integers(0, 2 ** rng.integers(10, 16), n) * (8 if aligned else 1)
    return (hier(*levels, compat=bool(rng.random() < 0.3)), addr, size, rng.random(n) < 0.4,
            rng.integers(-1, 3, n))


def run_path(h, addr, nbytes, w, ids, fused, chunk_size=701, always_group=False):
    sim = CacheSim(h, 3, fused=fused)
    assert (sim._fused is not None) == fused
    if always_group:
        sim._fused.min_per_class = 0
    chunk = make_chunk(0, addr, nbytes, w)
    served = [sim.feed(make_chunk(0, chunk.addr[i:i + chunk_size], chunk.nbytes[i:i + chunk_size],
                                  chunk.is_write[i:i + chunk_size]),
                       np.asarray(ids[i:i + chunk_size], np.int32))
              for i in range(0, len(addr), chunk_size)]
    return sim.finish(), np.concatenate(served), sim.bytes_by_level_buffer


@pytest.mark.parametrize("seed", range(60))
def test_fused_path_equals_the_general_path(seed):
    h, addr, nbytes, w, ids = fused_case(seed)
    stats_f, served_f, bytes_f = run_path(h, addr, nbytes, w, ids, fused=True,
                                          always_group=seed % 2 == 0)
    stats_g, served_g, bytes_g = run_path(h, addr, nbytes, w, ids, fused=False)
    assert stats_f == stats_g
    assert np.array_equal(served_f, served_g) and np.array_equal(bytes_f, bytes_g)
