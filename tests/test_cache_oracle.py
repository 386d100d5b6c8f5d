"""Every cache kernel against the plain-Python reference hierarchy (tests/refcache.py).

The reference is written from the documented semantics, one object per level, depth first; it
shares no code with simulator/cache.py or cache_fused.py. Each case runs the product through the
paths that accept its hierarchy: the fused path (LRU/FIFO, <= 32 ways), with and without set-class
grouping; the general path (`fused=False`), whose levels use the scan kernel (<= 32 ways), the
hash kernel (> 32 ways), or the OPT kernel (scan victim, or a heap for a large fully associative
level). Chunks are fed in pieces of varying size. Every counter of every level, `served` and
`bytes_by_level_buffer` must equal the reference's exactly.

OPT with a heap (large fully associative levels) is compared the same way: among lines never
used again, the heap and the scan both evict the lowest slot (simulator.cache._first), which is
the reference's lowest way, so even which dirty dead line is written back must agree.

Random replacement is compared exactly (the reference draws from the same seeded xorshift64), and
its behaviour is also checked without the generator: every way of a full set gets evicted, and a
different seed gives a different victim sequence.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcache
from simulator.cache import CacheSim
from simulator.hierarchy import Hierarchy, Level
from simulator.trace import Buffer, Trace, make_chunk

N_BUFFERS = 3


# ----------------------------------------------------------------------------- running both

def as_trace(addr, nbytes, is_write, ids, cuts):
    """A trace whose chunks end at `cuts`, with explicit buffer ids (so -1 can be anywhere)."""
    edges = [0] + sorted(c for c in set(cuts) if 0 < c < len(addr)) + [len(addr)]
    chunks = [make_chunk(0, addr[a:b], nbytes[a:b], is_write[a:b], buffer=ids[a:b])
              for a, b in zip(edges, edges[1:])]
    buffers = [Buffer(f"b{i}", 0, 1) for i in range(N_BUFFERS)]
    return Trace.from_chunks(buffers, [], chunks)


def run_product(h, trace, fused, grouped=False, dense=True):
    sim = CacheSim(h, N_BUFFERS, trace=trace, fused=fused, dense=dense)
    assert (sim._fused is not None) == fused, "the case does not take the path under test"
    if not fused:
        want = dense and not h.pycachesim_compat and any(map(is_dense, h.levels))
        assert any(lv.dense for lv in sim._levels) == want, "the case takes another kernel"
    if grouped:
        sim._fused.min_per_class = 0      # group level-2 requests by set class in every piece
    served = [sim.feed(c, trace.buffer_ids(c)) for c in trace]
    return sim.finish(), np.concatenate(served).tolist(), sim.bytes_by_level_buffer.tolist()


def counters(stats, keys=refcache.COUNTERS):
    return [{k: getattr(s, k) for k in keys} for s in stats]


def assert_matches(h, ref, got, path):
    stats, served, by_buf = got
    for lv, mine, want in zip(h.levels, counters(stats), ref.stats):
        assert mine == want, f"{path}: level {lv.name}"
    assert served == ref.served, f"{path}: served"
    assert by_buf == ref.bytes_by_level_buffer, f"{path}: bytes_by_level_buffer"


def is_dense(lv) -> bool:
    """A level the general path gives the dense kernel: fully associative, over 32 lines, LRU
    or FIFO (in a hierarchy without pycachesim compat)."""
    return not lv.is_memory and lv.n_sets == 1 and lv.assoc > 32 and lv.policy in ("lru", "fifo")


def paths_for(h):
    """(name, fused, grouped, dense) of every product path that accepts the hierarchy."""
    levels = h.levels[:-1]
    paths = [("general", False, False, True)]
    if not h.pycachesim_compat and any(map(is_dense, levels)):
        paths.append(("general, hash kernel for the dense one", False, False, False))
    if all(lv.policy in ("lru", "fifo") and lv.assoc <= 32 for lv in levels):
        paths += [("fused", True, False, True), ("fused-grouped", True, True, True)]
    return paths


def check_all_paths(h, addr, nbytes, is_write, ids, cuts=()):
    ref = refcache.simulate(h, addr, nbytes, is_write, ids, N_BUFFERS)
    trace = as_trace(addr, nbytes, is_write, ids, cuts)
    for name, fused, grouped, dense in paths_for(h):
        assert_matches(h, ref, run_product(h, trace, fused, grouped, dense), name)
    return ref


# ----------------------------------------------------------------------------- strategies

LINES = st.sampled_from([4, 8, 16, 32, 64])


FUSED_WAYS = (1, 2, 3, 4, 8, 16, 32)
FUSED_FA = (1, 2, 5, 8, 16, 32)                 # fully associative line counts
ANY_WAYS = (1, 2, 4, 8, 32, 33, 64, 128)        # above 32: the hash kernel
ANY_FA = (1, 5, 16, 32, 48, 64)


@st.composite
def levels(draw, index, policies, ways_choices, fa_choices):
    """One cache level: set-associative (power-of-two or odd set counts) or fully associative."""
    line = draw(LINES)
    if draw(st.booleans()):
        ways, n_lines = None, draw(st.sampled_from(fa_choices))
    else:
        ways = draw(st.sampled_from(ways_choices))
        n_lines = ways * draw(st.sampled_from([1, 2, 3, 4, 8]))
    return Level(f"L{index + 1}", n_lines * line, line, ways, draw(st.sampled_from(policies)),
                 draw(st.booleans()), write_allocate=draw(st.booleans()),
                 seed=draw(st.integers(0, 3)))


@st.composite
def hierarchies(draw, policies=("lru", "fifo"), ways_choices=FUSED_WAYS, fa_choices=FUSED_FA):
    """1-3 levels, any line sizes in any order, compat drawn unless there is an OPT level (the
    reference leaves that undefined: pycachesim has no OPT)."""
    lvls = [draw(levels(i, policies, ways_choices, fa_choices))
            for i in range(draw(st.integers(1, 3)))]
    compat = all(lv.policy != "opt" for lv in lvls) and draw(st.booleans())
    memory = Level("MEM", None, draw(LINES))
    return Hierarchy("h", tuple(lvls) + (memory,), pycachesim_compat=compat)


@st.composite
def traces(draw, max_len=160):
    """(addr, nbytes, is_write, buffer ids, chunk cuts) over a span small enough for hits and
    large enough for evictions."""
    span = 1 << draw(st.integers(6, 12))
    n = draw(st.integers(1, max_len))
    acc = draw(st.lists(st.tuples(st.integers(0, span - 1), st.integers(1, 16), st.booleans(),
                                  st.integers(-1, N_BUFFERS - 1)), min_size=n, max_size=n))
    cuts = draw(st.lists(st.integers(1, max(1, n - 1)), max_size=3))
    addr, nbytes, w, ids = (np.array(col) for col in zip(*acc))
    return (addr.astype(np.int64), nbytes.astype(np.int32), w.astype(bool),
            ids.astype(np.int32), cuts)


# ----------------------------------------------------------------------------- property tests

@settings(max_examples=200)
@given(hierarchies(), traces())
def test_fused_and_general_paths_match_the_reference(h, trace):
    """LRU/FIFO, up to 32 ways: fused (grouped or not) and scan kernel, compat on and off."""
    check_all_paths(h, *trace)


@settings(max_examples=200)
@given(hierarchies(("lru", "fifo", "random", "opt"), ANY_WAYS, ANY_FA), traces())
def test_every_policy_and_kernel_matches_the_reference(h, trace):
    """Scan and hash kernels, random and OPT (scan victim), mixed with LRU/FIFO levels."""
    if any(is_heap_opt(lv) for lv in h.levels[:-1]):
        h = Hierarchy(h.name, tuple(cap_heap_opt(lv) for lv in h.levels), "", "",
                      h.pycachesim_compat)
    check_all_paths(h, *trace)


def is_heap_opt(lv):
    return lv.policy == "opt" and lv.n_sets == 1 and lv.assoc > 32


def cap_heap_opt(lv):
    """A 32-line fully associative OPT level instead (scan victim): the heap has its own test."""
    if lv.is_memory or not is_heap_opt(lv):
        return lv
    return Level(lv.name, 32 * lv.line_bytes, lv.line_bytes, None, "opt", lv.write_back,
                 lv.write_allocate)


@st.composite
def heap_opt_hierarchies(draw):
    """An OPT level big and fully associative enough for the heap, anywhere in the hierarchy."""
    line = draw(LINES)
    opt = Level("OPT", draw(st.sampled_from([33, 48, 64, 128])) * line, line, None, "opt",
                draw(st.booleans()), write_allocate=draw(st.booleans()))
    other = Level("LRU", 8 * line, line, 2, "lru", draw(st.booleans()))
    lvls = draw(st.sampled_from([(opt,), (other, opt), (opt, other)]))
    return Hierarchy("h", lvls + (Level("MEM", None, line),))


@settings(max_examples=150)
@given(heap_opt_hierarchies(), traces(max_len=200))
def test_opt_heap_matches_the_reference(h, trace):
    """Every output, writebacks of dirty dead lines included: the heap's tie rule among lines
    never used again is the scan's and the reference's (the lowest slot)."""
    check_all_paths(h, *trace)


# ----------------------------------------------------------------------------- long seeded cases

def clustered_trace(seed, n, span, write_share=0.4):
    """Accesses that walk a few hot regions and jump now and then: hits at every level and
    dirty evictions at every level."""
    rng = np.random.default_rng(seed)
    hot = rng.integers(0, span, 6)
    pick = rng.integers(0, 6, n)
    jump = rng.random(n) < 0.15
    addr = np.where(jump, rng.integers(0, span, n), hot[pick] + rng.integers(0, span // 16, n))
    nbytes = rng.choice([1, 2, 4, 8, 12, 16], n).astype(np.int32)
    return (addr.astype(np.int64), nbytes, rng.random(n) < write_share,
            rng.integers(-1, N_BUFFERS, n).astype(np.int32), list(range(0, n, 733)))


def lvl(name, capacity, line, ways, policy="lru", wb=True, wa=True, seed=0):
    return Level(name, capacity, line, ways, policy, wb, wa, seed)


LONG_CASES = {
    "fused, mixed lines": (lvl("L1", 256, 16, 2), lvl("L2", 1024, 32, 4, "fifo"),
                           lvl("L3", 4096, 64, 8)),
    "random scan and hash": (lvl("L1", 512, 16, 4, "random", seed=1),
                             lvl("L2", 2048, 16, 64, "random", seed=2),
                             lvl("L3", 8192, 32, None)),
    "hash LRU/FIFO": (lvl("L1", 1024, 16, None), lvl("L2", 4096, 32, 64, "fifo")),
    "dense FIFO/LRU": (lvl("L1", 40 * 8, 8, None, "fifo"), lvl("L2", 96 * 16, 16, None),
                       lvl("L3", 256 * 16, 16, None, "fifo")),
    "dense write-through": (lvl("L1", 48 * 8, 8, None, wb=False, wa=False),
                            lvl("L2", 64 * 16, 16, None, "fifo", wa=False)),
    "opt in the middle": (lvl("L1", 256, 8, 4), lvl("L2", 1024, 16, 8, "opt"),
                          lvl("L3", 4096, 32, 4, "fifo")),
    "opt set-associative hash": (lvl("L1", 512, 16, 2, "fifo"), lvl("L2", 8192, 32, 128, "opt")),
}


@pytest.mark.parametrize("name", LONG_CASES)
def test_long_traces_reach_dirty_evictions_at_every_level(name):
    h = Hierarchy("h", LONG_CASES[name] + (Level("MEM", None, 64),))
    span = 2 * h.levels[-2].capacity_bytes
    ref = check_all_paths(h, *clustered_trace(len(name), 3000, span))
    for lv, st_ in zip(h.levels[:-1], ref.stats):   # the regime the case is there for
        assert st_["writebacks"] > 0 and st_["read_hits"] > 0, lv.name


def test_long_write_through_and_compat_trace():
    """Write-through and non-allocating levels in compat mode: pycachesim's overrunning store
    part and its dirty install without a fill, over a long trace."""
    levels_ = (lvl("L1", 256, 8, 2, wb=False, wa=False), lvl("L2", 1024, 16, 4, wa=False),
               lvl("L3", 2048, 32, 2, "fifo", wb=False))
    for compat in (False, True):
        h = Hierarchy("h", levels_ + (Level("MEM", None, 16),), pycachesim_compat=compat)
        ref = check_all_paths(h, *clustered_trace(7, 3000, 4096, write_share=0.6))
        assert all(s["writebacks"] > 0 for s in ref.stats[:-1])


# ----------------------------------------------------------------------------- random policy

def victim_ways(ways, seed, n_misses):
    """The way each miss of a full single-set random level evicts, seen from outside: every
    access stores a new line as its own buffer, so the writeback a miss causes is charged (at
    memory) to the buffer, hence the line, it evicts."""
    n = ways + n_misses
    h = Hierarchy("h", (Level("L1", ways * 16, 16, ways, "random", seed=seed),
                        Level("MEM", None, 16)))
    sim = CacheSim(h, n)
    way_of, victims = {}, []
    for t in range(n):
        before = sim.bytes_by_level_buffer[1].copy()
        sim.feed(make_chunk(0, [16 * t], 4, True), np.array([t], np.int32))
        written_back = np.flatnonzero((sim.bytes_by_level_buffer[1] - before)[:-1])
        evicted = [b for b in written_back if b != t]
        way_of[t] = way_of[evicted[0]] if evicted else t
        if evicted:
            victims.append(way_of[t])
    assert len(victims) == n_misses
    return victims


@pytest.mark.parametrize("ways", [8, 64])          # scan kernel, hash kernel
def test_random_victims_are_the_reference_generators_draws(ways):
    rng = refcache.Xorshift64(5)
    assert victim_ways(ways, 5, 300) == [rng.draw() % ways for _ in range(300)]


@pytest.mark.parametrize("ways", [8, 64])
def test_random_replacement_spreads_over_every_way(ways):
    """No generator needed: over many misses of a full set every way is evicted, none takes
    more than three times its share, and another seed evicts in another order."""
    n_misses = 12 * ways
    victims = victim_ways(ways, 0, n_misses)
    counts = np.bincount(victims, minlength=ways)
    assert counts.min() > 0 and counts.max() <= 3 * n_misses // ways
    assert victims != victim_ways(ways, 1, n_misses)


def test_a_dense_level_moves_to_the_hash_kernel_past_its_range(monkeypatch):
    """The dense kernel indexes lines directly, up to DENSE_MAX_LINES; an access beyond (here
    past 256 lines) moves the level to the hash kernel mid-trace, with its lines in the same
    order, dirty bits and owners: every counter still equals the reference's."""
    import simulator.cache as cache

    monkeypatch.setattr(cache, "DENSE_MAX_LINES", 256)
    h = Hierarchy("h", (lvl("L1", 40 * 8, 8, None), lvl("L2", 64 * 16, 16, None, "fifo"),
                        Level("MEM", None, 16)))
    near = clustered_trace(3, 2000, 1500)
    far = clustered_trace(4, 2000, 16 * 256 * 4)
    addr, nbytes, is_write, ids, _ = (np.concatenate([a, b]) for a, b in zip(near, far))
    ref = refcache.simulate(h, addr, nbytes, is_write, ids, N_BUFFERS)
    trace = as_trace(addr, nbytes, is_write, ids, list(range(0, 4000, 500)))
    sim = CacheSim(h, N_BUFFERS, trace=trace, fused=False)
    assert all(lv.dense for lv in sim._levels)
    served = [sim.feed(c, trace.buffer_ids(c)) for c in trace]
    assert not any(lv.dense for lv in sim._levels)              # both moved
    assert_matches(h, ref, (sim.finish(), np.concatenate(served).tolist(),
                            sim.bytes_by_level_buffer.tolist()), "dense, then hash")
    assert all(s["writebacks"] > 0 for s in ref.stats[:-1])


def test_the_simulator_page_quotes_the_dense_and_sparse_limits():
    from pathlib import Path

    import simulator.cache as cache
    import simulator.stackdist as stackdist
    from simulator.simulate import MAX_STATES
    page = " ".join((Path(__file__).parent.parent / "docs/simulator.md").read_text().split())
    assert f"span at most {cache.DENSE_MAX_LINES >> 20} M lines" in page
    assert (f"holds fewer than 1/{stackdist.SPARSE_FILL} of its slots, past "
            f"{stackdist.SPARSE_ROWS} pages" in page)
    assert f"more than {MAX_STATES} distinct states" in page
