"""The stack-distance engine against its definition (a brute-force LRU stack), the reference's
example and the seed replay; under stress: mixed element sizes over thousands of accesses with a
tiny position table, so the weighted trees are built mid-stream, compact and grow, and the page
table grows (each test proves it reached those regimes); line and byte granularity of whole
traces with line-spanning accesses."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.stackdist import (
    _NEXT,
    _FIRST_W,
    _N_EXCESS,
    COLD,
    PAGE,
    StackDistance,
    line_units,
    stack_distances,
    trace_distances,
)
from simulator.trace import Trace, TraceBuilder, make_chunk

DATA = Path(__file__).parent / "data"


def brute_force(units, weights):
    """Mattson's definition, literally: an explicit LRU stack as a Python list (most recent
    last); the distance of an access is how many units, and how much weight (each unit's weight
    at its latest access), sit above its unit."""
    stack, stack_w, out_c, out_w = [], [], [], []
    for u, w in zip(units, weights):
        try:
            k = stack.index(u)
        except ValueError:
            out_c.append(COLD)
            out_w.append(COLD)
        else:
            out_c.append(len(stack) - k - 1)
            out_w.append(sum(stack_w[k + 1:]))
            del stack[k], stack_w[k]
        stack.append(u)
        stack_w.append(w)
    return out_c, out_w


def test_reference_example_a_b_b_b_c_a():
    d, _ = stack_distances([0, 1, 1, 1, 2, 0])  # a b b b c a
    assert d.tolist() == [COLD, COLD, 0, 0, COLD, 2]  # the last a: depth 3, two units between


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 8)), min_size=1, max_size=300),
       st.sampled_from([1, 4096, 10**9 + 7]), st.integers(1, 4))
def test_matches_brute_force_streamed_in_chunks(accesses, spread, n_chunks):
    units = np.array([u for u, _ in accesses]) * spread  # spread units over many pages
    weights = np.array([w for _, w in accesses])
    sd = StackDistance(weighted=True, positions=64)  # tiny: forces compaction and growth
    parts = np.array_split(np.arange(len(units)), n_chunks)
    got = [sd.feed(units[p], weights[p]) for p in parts]
    want_c, want_w = brute_force(units.tolist(), weights.tolist())
    assert np.concatenate([g[0] for g in got]).tolist() == want_c
    assert np.concatenate([g[1] for g in got]).tolist() == want_w


def test_long_trace_with_many_compactions_matches_brute_force():
    rng = np.random.default_rng(7)
    units = rng.integers(0, 300, 20_000) * 13
    d, _ = StackDistance(positions=64).feed(units)
    assert d.tolist() == brute_force(units.tolist(), [1] * len(units))[0]


def test_distinct_units_counts_every_unit_once():
    sd = StackDistance()
    sd.feed(np.array([5, 5, 9, 1 << 40, 5]))
    assert sd.distinct_units == 3


def test_line_units_splits_spanning_accesses():
    lines, owner = line_units(np.array([0, 60, 128]), np.array([4, 8, 64]), 64)
    assert lines.tolist() == [0, 0, 1, 2]
    assert owner.tolist() == [0, 1, 1, 2]


def seed_trace(variant):
    """The seed's buffer-level events replayed element by element (whole buffers, in order)."""
    rows = dict(line.split(": ", 1) for line in (DATA / "seed_events.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    b, ids = TraceBuilder(), {}
    for event in (rows["prologue"] + ", " + rows[variant]).split(", "):
        kind, name, size = event.split()
        if name not in ids:
            ids[name] = b.buffer(name, int(size))
        b.access(ids[name], None, kind == "W")
    return b.build()


@pytest.mark.parametrize("variant, read_ard, dw2", [("standard", 5424, 9004), ("fused", 4897, 3001)])
def test_seed_sequences_element_level(variant, read_ard, dw2):
    """reference/cost-models.md: replayed element by element, read ARD 5,424 vs 4,897 and dW2
    9,004 vs 3,001 (computed there with the original authors' code)."""
    trace = seed_trace(variant)
    (chunk,) = list(trace)
    d, _ = stack_distances(chunk.addr)
    reads = ~chunk.is_write
    assert len(chunk) == 34_022 and (d[reads] >= 0).all()
    assert round(d[reads].mean()) == read_ard
    dw2_reads = reads & (chunk.buffer == [b.name for b in trace.buffers].index("dW2"))
    assert d[dw2_reads].mean() == dw2


def test_growth_past_many_blocks_matches_the_definition():
    """More distinct units than the initial capacity: positions grow and compact repeatedly."""
    rng = np.random.default_rng(3)
    units = rng.integers(0, 1500, 6000) * 7
    weights = rng.integers(1, 9, 6000)
    sd = StackDistance(weighted=True)
    got_c, got_w = sd.feed(units, weights)
    last_seen, weight_of = {}, {}
    for i, u in enumerate(units):
        if u not in last_seen:
            assert got_c[i] == COLD and got_w[i] == COLD
        else:
            between = np.unique(units[last_seen[u] + 1:i])
            between = between[between != u]
            assert got_c[i] == len(between)
            assert got_w[i] == sum(weight_of[b] for b in between)
        last_seen[u] = i
        weight_of[u] = weights[i]


def test_uniform_weights_then_a_second_weight_matches_brute_force():
    """One element size for a while (distance in bytes = count x size), then mixed sizes."""
    rng = np.random.default_rng(11)
    units = rng.integers(0, 200, 4000) * 3
    weights = np.where(np.arange(4000) < 2500, 4, rng.integers(1, 9, 4000))
    sd = StackDistance(weighted=True)
    parts = [sd.feed(units[lo:lo + 1000], weights[lo:lo + 1000]) for lo in range(0, 4000, 1000)]
    want_c, want_w = brute_force(units.tolist(), weights.tolist())
    assert np.concatenate([p[0] for p in parts]).tolist() == want_c
    assert np.concatenate([p[1] for p in parts]).tolist() == want_w


def test_weights_must_be_positive():
    with pytest.raises(ValueError):
        StackDistance(weighted=True).feed(np.array([1, 2]), np.array([4, 0]))


def test_trace_distances_at_three_granularities():
    b = TraceBuilder(chunk_accesses=2)
    a = b.buffer("a", 32, dtype="f32")   # 128 bytes: two 64-byte lines
    h = b.buffer("h", 2, dtype="f16")
    b.read(a, [0, 20, 1])   # lines 0, 1, 0
    b.read(h, [0])
    b.read(a, [0])
    trace = b.build()
    got = {g: np.concatenate([d for _, d, _ in trace_distances(trace, g)]).tolist()
           for g in ("element", "byte", "line")}
    assert got["element"] == [COLD, COLD, COLD, COLD, 3]
    assert got["byte"] == [COLD, COLD, COLD, COLD, 4 + 4 + 2]
    assert got["line"] == [COLD, COLD, 1, COLD, 1]   # h sits on its own line (64-byte aligned)
    with pytest.raises(ValueError):
        list(trace_distances(trace, "word"))


# ----------------------------------------------------------------------------- under stress
# The tests above never fill a weighted tree, compact it with mixed sizes and grow it in the same
# stream. These do, over thousands of accesses, against an explicit LRU stack.

def test_brute_force_is_the_definition():
    # a b b c a with sizes 1 2 4 8 16: the last a has b (latest size 4) and c above it
    assert brute_force([0, 1, 1, 2, 0], [1, 2, 4, 8, 16]) == ([COLD, COLD, 0, COLD, 2],
                                                              [COLD, COLD, 0, COLD, 12])


def spread_units(rng, ids, n_pages):
    """Unit ids 0..n-1 scattered over n_pages pages of 4096 units, the pages far apart (hashing
    of page numbers beyond 2^32), so the page table must grow its rows and its hash."""
    pages = rng.choice(1 << 28, n_pages, replace=False) + (1 << 28)
    page_of = rng.integers(0, n_pages, int(ids.max()) + 1)
    offset = rng.integers(0, PAGE, int(ids.max()) + 1)
    return pages[page_of[ids]] * PAGE + offset[ids]


def phased_stream(seed, small=120, uniform_len=1500, mixed_len=1500, large=2500,
                  large_len=4000, n_pages=150):
    """Units and weights in three phases: a small working set with one element size (the
    engine keeps no weight tree), the same set with sizes 1/2/4/8 (the weight trees are built
    mid-stream), then a working set that grows to `large` units (positions and pages grow)."""
    rng = np.random.default_rng(seed)
    n_small = uniform_len + mixed_len
    ids = np.concatenate([rng.integers(0, small, n_small),
                          rng.integers(0, np.linspace(small, large, large_len).astype(int))])
    units = spread_units(rng, ids, n_pages)
    sizes = rng.choice([1, 2, 4, 8], len(ids))
    weights = np.where(np.arange(len(ids)) < uniform_len, 4, sizes)
    return units, weights


def feed_watching(sd, units, weights, chunk):
    """Feed in chunks; per chunk, (compacted, capacity, marks whose weight is not the first).
    Positions advance by one per access, so a chunk that advances less has compacted."""
    got_c, got_w, states = [], [], []
    for lo in range(0, len(units), chunk):
        before = int(sd._st[_NEXT])
        c, w = sd.feed(units[lo:lo + chunk], weights[lo:lo + chunk])
        got_c.append(c)
        got_w.append(w)
        compacted = int(sd._st[_NEXT]) != before + len(c)
        states.append((compacted, len(sd._pos_ref), int(sd._st[_N_EXCESS])))
    return np.concatenate(got_c), np.concatenate(got_w), states


def test_mixed_sizes_compact_and_grow_against_the_brute_force():
    units, weights = phased_stream(5)
    sd = StackDistance(weighted=True, positions=64)
    got_c, got_w, states = feed_watching(sd, units, weights, chunk=37)
    want_c, want_w = brute_force(units.tolist(), weights.tolist())
    assert got_c.tolist() == want_c
    assert got_w.tolist() == want_w
    # the regimes this test exists for, so that it cannot silently stop covering them
    uniform = [s for s in states if s[2] == 0]
    mixed = [s for s in states if s[2] > 0]
    assert sum(s[0] for s in uniform) >= 3           # compactions with no weight in the trees
    assert sum(s[0] and s[1] == 512 for s in mixed) >= 3   # weighted compactions, one block
    assert len(sd._pos_ref) >= 8 * 512               # positions grew three times, trees too
    assert len(sd._last) >= 8 * 16 * PAGE            # page rows grew from 16 to 128+
    assert len(sd._page_keys) >= 4 * 64              # the page hash grew twice
    assert (np.array(want_w) > 0).sum() > 2000       # plenty of finite weighted distances


def test_weight_trees_built_far_from_a_compaction():
    """The second weight appears right after a compaction, so hundreds of weighted reads rely
    on excesses added to the trees since, before the next compaction rebuilds them."""
    rng = np.random.default_rng(8)
    units = np.concatenate([np.arange(100), rng.integers(0, 100, 2000)]) * 9
    weights = np.concatenate([np.full(513, 2), rng.choice([1, 8], 1587)])
    sd = StackDistance(weighted=True, positions=64)   # 512 positions
    first = sd.feed(units[:513], weights[:513])       # access 512 compacts: 100 positions used
    assert int(sd._st[_NEXT]) == 101 and int(sd._st[_FIRST_W]) == 2
    assert int(sd._st[_N_EXCESS]) == 0
    rest = sd.feed(units[513:], weights[513:])
    want_c, want_w = brute_force(units.tolist(), weights.tolist())
    assert np.concatenate([first[1], rest[1]]).tolist() == want_w
    assert np.concatenate([first[0], rest[0]]).tolist() == want_c


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), small=st.integers(1, 400),
       uniform_len=st.integers(0, 1200), mixed_len=st.integers(0, 1200),
       large=st.integers(1, 1500), large_len=st.integers(0, 1500), n_pages=st.integers(1, 90),
       chunk=st.sampled_from([1, 7, 100, 511, 512, 513, 5000]))
def test_phased_streams_match_the_brute_force(seed, small, uniform_len, mixed_len, large,
                                            large_len, n_pages, chunk):
    units, weights = phased_stream(seed, small, uniform_len, mixed_len + 1, max(large, small),
                                   large_len, n_pages)
    sd = StackDistance(weighted=True, positions=64)
    got_c, got_w, _ = feed_watching(sd, units, weights, chunk)
    want_c, want_w = brute_force(units.tolist(), weights.tolist())
    assert got_c.tolist() == want_c
    assert got_w.tolist() == want_w


def expand_lines(addr, nbytes, line_bytes):
    """Every line an access touches, in address order, with the index of its access."""
    lines, owner = [], []
    for i, (a, n) in enumerate(zip(addr, nbytes)):
        for line in range(a // line_bytes, (a + n - 1) // line_bytes + 1):
            lines.append(line)
            owner.append(i)
    return lines, owner


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 150), st.booleans()),
                min_size=1, max_size=150),
       st.sampled_from([8, 16, 64, 128]), st.integers(1, 4), st.sampled_from([1, 1 << 33]))
def test_trace_distances_line_and_byte_against_the_brute_force(accesses, line_bytes, n_chunks,
                                                             spread):
    """Unaligned accesses of 1..150 bytes (many span lines), streamed over several chunks."""
    addr = [a * 13 + (a % 3) * spread for a, _, _ in accesses]
    nbytes = [n for _, n, _ in accesses]
    parts = np.array_split(np.arange(len(addr)), n_chunks)
    chunks = [make_chunk(0, np.array(addr)[p], np.array(nbytes)[p],
                         np.array([w for _, _, w in accesses])[p]) for p in parts]
    trace = Trace.from_chunks([], [], chunks)

    def run(granularity):
        out = list(trace_distances(trace, granularity, line_bytes))
        owners = [o + sum(len(q) for q in parts[:j]) for j, (_, _, o) in enumerate(out)]
        return np.concatenate([d for _, d, _ in out]).tolist(), np.concatenate(owners).tolist()

    lines, owner = expand_lines(addr, nbytes, line_bytes)
    assert run("line") == (brute_force(lines, [1] * len(lines))[0], owner)
    assert run("byte") == (brute_force(addr, nbytes)[1], list(range(len(addr))))
    assert run("element") == (brute_force(addr, nbytes)[0], list(range(len(addr))))


@pytest.mark.parametrize("chunks", [1, 7])
def test_sparse_units_switch_to_one_unit_pages_and_keep_every_distance(chunks):
    """Units spread over 2^62 (random 64-bit addresses): past 256 pages, each holding about
    one unit, the table re-keys every unit into a page of its own (a 4,096-unit page per
    access would need 32 KiB each). The distances before, across and after the switch are the
    definition's, with reuse mixed in, and mixed weights."""
    rng = np.random.default_rng(11)
    pool = rng.integers(0, 1 << 62, 900)
    units = np.concatenate([pool[:600], rng.choice(pool, 1500), pool[600:], rng.choice(pool, 500)])
    weights = rng.integers(1, 9, len(units))
    sd = StackDistance(weighted=True, positions=64)
    got = [sd.feed(units[p], weights[p]) for p in np.array_split(np.arange(len(units)), chunks)]
    assert sd.page_bits == 0 and len(sd._last) < 4096 * 8         # one unit a page
    want_c, want_w = brute_force(units.tolist(), weights.tolist())
    assert np.concatenate([g[0] for g in got]).tolist() == want_c
    assert np.concatenate([g[1] for g in got]).tolist() == want_w


def test_dense_units_keep_their_pages():
    sd = StackDistance(weighted=True)
    sd.feed(np.arange(1 << 20), np.full(1 << 20, 4))
    assert sd.page_bits == 12
