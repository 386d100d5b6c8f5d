"""The stack-distance engine against its definition, the reference's example and the seed replay."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.stackdist import COLD, StackDistance, line_units, stack_distances
from simulator.trace import TraceBuilder

DATA = Path(__file__).parent / "data"


def brute_force(units, weights):
    """Mattson's definition, literally: an LRU stack as a Python list."""
    stack, weight_of, out_c, out_w = [], {}, [], []
    for u, w in zip(units, weights):
        if u in stack:
            above = stack[stack.index(u) + 1:]
            out_c.append(len(above))
            out_w.append(sum(weight_of[a] for a in above))
            stack.remove(u)
        else:
            out_c.append(COLD)
            out_w.append(COLD)
        stack.append(u)
        weight_of[u] = w
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
    from simulator.stackdist import trace_distances

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
