"""The seed's buffer-level measure: the published table (cost-models.md section 2) and its
derivation from an element trace."""

import pytest

from simulator import SimError, TraceBuilder
from simulator.memtracker import events_from_trace, memtracker, parse_events

PROLOGUE = ("W W1 3000, W b1 1000, W W2 1000, W b2 1, W x 3, W y 1, "
            "R x 3, R W1 3000, R b1 1000, W h_pre 1000, R h_pre 1000, W h 1000, R h 1000, "
            "R W2 1000, R b2 1, W out 1")
STANDARD = ("R out 1, R y 1, W dout 1, R dout 1, R h 1000, W dW2 1000, W db2 1, "
            "R W2 1000, R dout 1, W dh 1000, R dh 1000, R h_pre 1000, W dh_pre 1000, "
            "R dh_pre 1000, R x 3, R W1 3000, W W1 3000, R dh_pre 1000, R b1 1000, W b1 1000, "
            "R dW2 1000, R W2 1000, W W2 1000, R db2 1, R b2 1, W b2 1")
FUSED = ("R out 1, R y 1, W dout 1, R dout 1, R h 1000, W dW2 1000, W db2 1, R W2 1000, "
         "R dout 1, W dh 1000, R dW2 1000, R W2 1000, W W2 1000, R db2 1, R b2 1, W b2 1, "
         "R dh 1000, R h_pre 1000, W dh_pre 1000, R dh_pre 1000, R x 3, R W1 3000, W W1 3000, "
         "R dh_pre 1000, R b1 1000, W b1 1000")

# variant: (per-read ARD, per-element ARD, dW2 distance, db2 distance), as published
TABLE = {"standard": (STANDARD, 9716, 10640, 16005, 18005),
         "fused": (FUSED, 8174, 10219, 3002, 5002)}


def events(variant):
    return parse_events(PROLOGUE + ", " + TABLE[variant][0])


def check_row(result, variant):
    _, per_read, per_element, dw2, db2 = TABLE[variant]
    assert round(result.per_read_ard) == per_read
    assert round(result.per_element_ard) == per_element
    assert result.elements_read == 19013
    assert result.elements_touched == 34022
    assert (result.reads, result.writes) == (24, 18)
    assert result.buffers["dW2"].read_distances == (dw2,)
    assert result.buffers["db2"].read_distances == (db2,)


@pytest.mark.parametrize("variant", ["standard", "fused"])
def test_published_table(variant):
    check_row(memtracker(events(variant)), variant)


def test_w1_distances():
    """The reference says W1 "does not move" at "about 15,000". Its first read is the same in
    both variants, but the fused schedule moves layer 2's update before W1's second read, so that
    read gets 3,003 elements further: the means are 13,514 and 15,015."""
    std, fused = memtracker(events("standard")), memtracker(events("fused"))
    assert std.buffers["W1"].read_distances == (5008, 22019)
    assert fused.buffers["W1"].read_distances == (5008, 25022)
    assert (round(std.buffers["W1"].mean), round(fused.buffers["W1"].mean)) == (13514, 15015)


def element_trace(evs, chunk_accesses=1 << 20):
    """One kernel per event touching the whole buffer in order."""
    b = TraceBuilder(chunk_accesses=chunk_accesses)
    sizes = {}
    for _, name, size in evs:
        sizes.setdefault(name, size)
    for name, size in sizes.items():
        b.buffer(name, size)
    for i, (kind, name, _) in enumerate(evs):
        k = b.kernel(f"k{i}")
        b.access(name, None, kind == "W", kernel=k)
    return b.build()


@pytest.mark.parametrize("variant", ["standard", "fused"])
@pytest.mark.parametrize("chunk_accesses", [1 << 20, 777])
def test_element_trace_gives_the_same_numbers(variant, chunk_accesses):
    evs = events(variant)
    trace = element_trace(evs, chunk_accesses)
    assert events_from_trace(trace) == evs
    check_row(memtracker(events_from_trace(trace)), variant)


def test_runs_split_on_kernel_buffer_and_direction():
    b = TraceBuilder()
    a, c = b.buffer("a", 4), b.buffer("c", 2)
    k0, k1 = b.kernel("k0"), b.kernel("k1")
    b.read(a, [0, 1], kernel=k0)
    b.read(a, [2, 3], kernel=k0)
    b.read(a, [0, 1], kernel=k1)
    b.write(a, [0], kernel=k1)
    b.read(c, kernel=k1)
    assert events_from_trace(b.build()) == [("R", "a", 4), ("R", "a", 2), ("W", "a", 1),
                                            ("R", "c", 2)]


def test_per_buffer_mean():
    r = memtracker(parse_events("W a 2, W b 3, R a 1, R a 4"))
    assert r.buffers["a"].read_distances == (5, 6)
    assert r.buffers["a"].mean == 5.5
    assert r.per_element_ard == (5 * 1 + 6 * 4) / 5
    assert r.to_dict()["buffers"]["a"]["mean_distance_elements"] == 5.5


def test_read_before_write_is_an_error():
    with pytest.raises(SimError) as e:
        memtracker(parse_events("W a 2, R a 2, R b 1"))
    assert str(e.value) == ("memtracker: error: event 2 (R b 1) reads buffer 'b', which no "
                            "earlier event writes")


def test_parse_errors():
    with pytest.raises(SimError) as e:
        parse_events("W a 2, X b 1")
    assert str(e.value) == "events: error: event 1: expected 'R|W buffer size', got 'X b 1'"
    with pytest.raises(SimError, match="size must be positive"):
        parse_events("W a 0")


def test_access_outside_buffers_is_an_error():
    from simulator.trace import Trace, make_chunk
    b = TraceBuilder()
    b.buffer("a", 1)
    chunk = make_chunk(0, [0, 1000], 4, False)
    trace = Trace.from_chunks(b.buffers, [], [chunk])
    with pytest.raises(SimError, match="access 1 at address 1000 is in no buffer"):
        events_from_trace(trace)


def test_inputs_read_before_written_get_the_seeds_initial_write():
    from simulator.memtracker import with_inputs_written

    b = TraceBuilder()
    a, x, y = b.buffer("a", 4), b.buffer("x", 2), b.buffer("y", 2)
    k = b.kernel("k")
    b.read(x, kernel=k)
    b.write(y, kernel=k)
    b.read(y, kernel=b.kernel("k2"))
    b.read(a, kernel=b.kernel("k3"))
    events = with_inputs_written(events_from_trace(b.build()), b.build())
    assert events.as_list() == [("W", "a", 4), ("W", "x", 2), ("R", "x", 2), ("W", "y", 2),
                                ("R", "y", 2), ("R", "a", 4)]
    assert memtracker(events).per_read_ard == (2 + 2 + 12) / 3  # x at 4 -> 6, y 8 -> 10, a 0 -> 12


def literal_memtracker(events):
    """The seed's clock, as cost-models.md section 2 states it, one event at a time."""
    clock, last_write, dists = 0, {}, []
    for kind, buf, size in events:
        if kind == "W":
            last_write[buf] = clock
        else:
            dists.append((buf, size, clock - last_write[buf]))
        clock += size
    return dists


def test_columnar_measure_matches_the_literal_clock_on_random_events():
    import random

    rng = random.Random(5)
    for _ in range(200):
        names = rng.sample("abcdef", rng.randint(1, 6))
        events = [("W", n, rng.randint(1, 9)) for n in names]
        events += [(rng.choice("RW"), rng.choice(names), rng.randint(1, 9)) for _ in range(40)]
        rng.shuffle(events[len(names):])
        want = literal_memtracker(events)
        got = memtracker(events)
        assert got.reads == len(want)
        assert got.per_read_ard == pytest.approx(sum(d for _, _, d in want) / len(want))
        assert got.per_element_ard == pytest.approx(sum(s * d for _, s, d in want)
                                                    / sum(s for _, s, _ in want))
        for name, row in got.buffers.items():
            assert list(row.read_distances) == [d for b, _, d in want if b == name]


def test_interleaved_kernel_gives_one_event_per_access():
    b = TraceBuilder()
    w, x = b.buffer("w", 4), b.buffer("x", 2)
    k = b.kernel("matvec")
    b.write(w, kernel=k)
    b.write(x, kernel=k)
    for i in range(4):
        b.read(w, i, kernel=k)
        b.read(x, i % 2, kernel=k)
    r = memtracker(events_from_trace(b.build()))
    assert r.reads == 8                                          # w, x, w, x, ... one element each
    assert r.buffers["x"].read_distances == (3, 5, 7, 9)        # written at clock 4
    assert r.buffers["w"].read_distances == (6, 8, 10, 12)      # written at clock 0


@pytest.mark.parametrize("variant", ["standard", "fused"])
@pytest.mark.parametrize("chunk_accesses", [1 << 20, 777])
def test_op_events_of_an_element_trace_are_the_seed_events(variant, chunk_accesses):
    from simulator.memtracker import op_event_table
    evs = events(variant)
    trace = element_trace(evs, chunk_accesses)
    assert op_event_table(trace).as_list() == evs
    check_row(memtracker(op_event_table(trace)), variant)


def test_op_events_read_each_buffer_once_per_execution_then_write():
    from simulator.memtracker import op_event_table
    b = TraceBuilder(chunk_accesses=5)          # the execution spans chunks
    w, x, y = b.buffer("w", 4), b.buffer("x", 2), b.buffer("y", 2)
    k, k2 = b.kernel("matvec"), b.kernel("copy")
    for i in range(2):                          # y = w @ x, element by element, interleaved
        for j in range(2):
            b.read(w, 2 * i + j, kernel=k)
            b.read(x, j, kernel=k)
        b.write(y, i, kernel=k)
    b.read(y, kernel=k2)
    b.write(x, kernel=k2)
    assert op_event_table(b.build()).as_list() == [("R", "w", 4), ("R", "x", 2), ("W", "y", 2),
                                                   ("R", "y", 2), ("W", "x", 2)]
