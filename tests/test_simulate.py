"""The whole pass: reuse, hierarchy and energy agree with each other and with their definitions."""

import numpy as np
import pytest

from simulator import energy
from simulator.costmodels import ceil_sqrt_sum
from simulator.hierarchy import load_hierarchy
from simulator.simulate import simulate
from simulator.stackdist import stack_distances
from simulator.trace import TraceBuilder


def random_trace(seed, n=5000):
    rng = np.random.default_rng(seed)
    b = TraceBuilder(chunk_accesses=777)
    bufs = [b.buffer(f"B{i}", int(rng.integers(1, 3000)), dtype=str(rng.choice(["f32", "f16"])),
                     role="param") for i in range(4)]
    k = b.kernel("k", arith={"fma.f32": 1000, "max.f16": 10})
    for _ in range(n // 50):
        bid = int(rng.integers(0, 4))
        size = b.buffers[bid].nbytes // b.buffers[bid].elem_bytes
        b.access(bufs[bid], rng.integers(0, size, 50), bool(rng.random() < 0.3), kernel=k)
    return b.build()


@pytest.mark.parametrize("preset", ["sutro-tiers", "cpu-like", "h100-like"])
@pytest.mark.parametrize("seed", range(3))
def test_energy_adds_up(preset, seed):
    r = simulate(random_trace(seed), load_hierarchy(preset), "modern-5nm-hbm3")
    e = r.energy
    assert e.total == pytest.approx(sum(e.by_level.values()) + e.arithmetic)
    assert sum(e.by_buffer.values()) == pytest.approx(sum(e.by_level.values()))
    assert 0 <= e.wire <= sum(e.by_level.values())
    preset_ = energy.get_preset("modern-5nm-hbm3")
    assert e.arithmetic == pytest.approx(energy.arith_fj("fma.f32", 1000, preset_)
                                         + energy.arith_fj("max.f16", 10, preset_))
    for s, lv in zip(r.levels, load_hierarchy(preset).levels):  # bytes x 8 x per-bit energy
        assert e.by_level[s.name] == pytest.approx((s.read_bytes + s.write_bytes) * 8
                                                   * e.fj_per_bit[lv.name])


def test_reads_and_writes_and_cold_reads_are_counted_apart():
    b = TraceBuilder()
    a = b.buffer("a", 4)
    b.read(a, [0, 1])      # two cold reads
    b.write(a, [2])
    b.read(a, [0, 2, 0])   # distances 2 ({a1, a2}), 1 ({a0}), 1 ({a2})
    r = simulate(b.build(), load_hierarchy("sutro-tiers"))
    u = r.reuse
    assert (u.reads, u.writes, u.cold_reads, u.finite_reads) == (5, 1, 2, 3)
    assert u.ard == pytest.approx((2 + 1 + 1) / 3)
    assert u.ard_bytes == pytest.approx(4 * (2 + 1 + 1) / 3)
    assert u.histogram == (0, 2, 1)  # bins: 0 | [1, 2) | [2, 4)


def test_distance_energy_is_bytedmd_at_byte_depth():
    b = TraceBuilder()
    a = b.buffer("a", 3, dtype="f16")
    b.write(a)              # a0 a1 a2 (2 bytes each)
    b.read(a, [0, 2])       # a0: 2 others above = 4 bytes; a2: a0 was just read: 2 bytes above
    r = simulate(b.build(), load_hierarchy("sutro-tiers"), "dally-2020")
    u = energy.distance_unit_fj(energy.get_preset("dally-2020"))
    units = ceil_sqrt_sum(np.array([5, 3]), np.array([6, 4])).sum()  # bytes 5..6 and 3..4
    assert r.energy.distance == pytest.approx(u * units)
    assert r.energy.distance_cold == 0


def test_fully_associative_first_level_follows_the_stack_distance():
    """sutro-tiers' registers: 64 four-byte lines, fully associative LRU: an access hits exactly
    when fewer than 64 other elements were touched since its element last was (Mattson)."""
    trace = random_trace(5)
    r = simulate(trace, load_hierarchy("sutro-tiers"))
    addr = np.concatenate([c.addr for c in trace])
    nbytes = np.concatenate([c.nbytes for c in trace])
    lines = np.concatenate([np.arange(a // 4, (a + n - 1) // 4 + 1) for a, n in zip(addr, nbytes)])
    d, _ = stack_distances(lines)
    registers = r.levels[0]
    assert registers.hits == int(((d >= 0) & (d < 64)).sum())


def test_per_buffer_rows_and_the_level_that_serves_them():
    b = TraceBuilder()
    hot, cold = b.buffer("hot", 8), b.buffer("cold", 200_000)
    b.read(cold)
    for _ in range(10):
        b.read(hot)
    r = simulate(b.build(), load_hierarchy("sutro-tiers"))
    rows = {row.name: row for row in r.reuse.buffers}
    assert rows["hot"].served_by == "registers" and rows["cold"].served_by == "HBM"
    assert rows["hot"].reads == 80 and rows["hot"].min == rows["hot"].max == 7
    assert r.to_dict()["traffic"][0] == {"upper": "registers", "lower": "L1",
                                          "up_bytes": r.levels[0].bytes_in,
                                          "down_bytes": r.levels[0].bytes_out}


def test_misaligned_access_is_a_user_error():
    from simulator.errors import SimError
    from simulator.trace import Buffer, Trace, make_chunk

    t = Trace.from_chunks([Buffer("a", 0, 16, "f32")], [], [make_chunk(0, [0, 2], 4, False)])
    with pytest.raises(SimError, match="access at address 2 .* not aligned"):
        simulate(t, load_hierarchy("cpu-like"))


def test_unbalanced_bytes_between_levels_are_an_internal_error():
    """The guard behind every simulation: what a level fills and writes down is what the level
    below serves and takes in. Stats that break it (a cache kernel bug) must not pass."""
    import dataclasses

    from simulator.simulate import check_balance

    h = load_hierarchy("cpu-like")
    levels = tuple(simulate(random_trace(0, 2000), h, "dally-2020").levels)
    check_balance(h, levels)                              # real stats balance
    for i in range(len(levels) - 1):
        for field, delta in (("bytes_in", 64), ("bytes_out", 64), ("read_misses", 1)):
            bad = list(levels)
            bad[i] = dataclasses.replace(levels[i], **{field: getattr(levels[i], field) + delta})
            with pytest.raises(RuntimeError, match=f"bytes between {levels[i].name} and "
                                                   f"{levels[i + 1].name} do not balance"):
                check_balance(h, tuple(bad))


def test_energies_and_sizes_print_in_the_largest_unit_that_keeps_them_at_least_1():
    from simulator.report import energy as fmt_energy
    from simulator.report import size

    assert [fmt_energy(x) for x in (999.0, 1000.0, 1234.0, 1e6, 195e9, 1e12, 1.36e15, 0.5)] == \
        ["999 fJ", "1 pJ", "1.23 pJ", "1 nJ", "195 uJ", "1 mJ", "1.36 J", "0.5 fJ"]
    assert [size(n) for n in (1023, 1024, 1536, 80_000, 1 << 20, 3 << 30, None)] == \
        ["1023 B", "1 KiB", "1.5 KiB", "78.1 KiB", "1 MiB", "3 GiB", "-"]
