"""The energy report of `simulator.simulate.simulate`, recomputed here from the counts and from
the published constants, never from `simulator.energy`'s helpers.

Oracle: the formulas of reference/energy-model.md (sections 2 and 3) and docs/energy.md, with
each preset's constants hard-coded from the reference (so a wrong constant in energy.py fails as
surely as a wrong formula):
- a level costs the bytes it receives x 8 x its per-bit energy: a given `energy_fj_per_bit`;
  else off-chip: device + route_mm x e_w (the route is wire); else on-chip:
  E0 + kappa x e_w x sqrt(a x C_bits) / 1000 (um -> mm; the sqrt term is wire);
- `wire` = bytes x 8 x the wire part; `distance_cold` = cold read bytes x 8 x memory's per-bit
  energy; `distance` = u x sum of ceil(sqrt(j)), j = D+1 .. D+nbytes, over every finite read at
  LRU byte depth D (computed here with an explicit LRU stack), u = 8 kappa e_w sqrt(8a), e_w per um;
- arithmetic: the kernel table's op counts x per-op energies (per-bit ops x bits, mul/fma/exp
  x (bits/32)^2, exact "op.dtype" rows unscaled), total = levels + arithmetic, and by_buffer the
  level energy of the requests charged to each buffer.
Hierarchies are chosen so that wire and cold-read energy are not zero: cpu-like (DRAM), h100-like
(HBM) and hand-made ones (derived on-chip levels, a given level, HBM or DRAM), under every preset,
on hand-built traces (hypothesis and seeded), one trace checked by hand, and real programs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cache import simulate_hierarchy
from simulator.hierarchy import Hierarchy, Level, load_hierarchy
from simulator.simulate import simulate
from simulator.trace import TraceBuilder

ROOT = Path(__file__).resolve().parent.parent
BITS = {"f64": 64, "f32": 32, "f16": 16, "bf16": 16, "i64": 64, "i32": 32, "i16": 16, "i8": 8,
        "u8": 8, "bool": 8}
FLOATS = {"f64", "f32", "f16", "bf16"}


# ----------------------------------------------------------------------------- published numbers

@dataclass(frozen=True)
class Published:
    e_w: float            # fJ per bit per mm
    a: float              # um^2 per bit
    kappa: float
    e0: float             # fJ per bit
    memory: dict          # kind -> (device fJ/bit, route mm)
    arith: dict           # key -> (fJ, "bit" | "op32" | "exact")


def derived_ops(add: float, mul: float) -> dict:
    """docs/energy.md, Arithmetic: sub and the compares cost an add, fma = a 32-bit multiply + a
    32-bit add, exp = 4 fmas; add-like ops per bit, multiplier-like ones per op at 32 bits."""
    fma = mul + 32 * add
    return {"add": (add, "bit"), "sub": (add, "bit"), "cmp": (add, "bit"), "max": (add, "bit"),
            "min": (add, "bit"), "mul": (mul, "op32"), "fma": (fma, "op32"),
            "exp": (4 * fma, "op32")}


def horowitz_ops() -> dict:
    """Horowitz ISSCC 2014 (reference section 1): int add 0.1 pJ and mult 3.1 pJ at 32 bits,
    FP add 0.9 / mult 3.7 pJ at 32 bits; exact rows 8-bit int add 0.03 / mult 0.2 pJ, 16-bit FP
    add 0.4 / mult 1.1 pJ. Compares cost an integer add, floats included."""
    floats = {f"{op}.float": v for op, v in derived_ops(900 / 32, 3700.0).items()
              if op not in ("cmp", "max", "min")}
    exact = {"add.i8": (30.0, "exact"), "mul.i8": (200.0, "exact"),
             "add.f16": (400.0, "exact"), "mul.f16": (1100.0, "exact")}
    return {**derived_ops(100 / 32, 3100.0), **floats, **exact}


# e_w 121 (Keckler 2011, 40 nm), a 0.36 (CACTI 45 nm), E0 0; kappa fitted so that the sqrt law
# gives E64(1 KB) = 3.5 pJ (reference section 2, horowitz-45nm: E64(C) = 3.5 pJ sqrt(C / 1 KB))
HOROWITZ_KAPPA = (3500 / 64) / (121 * math.sqrt(0.36 * 8 * 1024) / 1000)

PUBLISHED = {
    # reference section 2, dally-2022 table (the e_w = 100 column is the preset dally-2020):
    # e_w 100 (CACM 2020), a 0.047 (256 MB ~ 100 mm^2), kappa 3, E0 33.4, HBM 3.9 pJ/bit + 24 mm
    # route (O'Connor 2017; AHA 2023 s.31), DDR 20 pJ/bit (CACM 2022); add 1 fJ/bit (AHA 2023),
    # DP multiply 5 pJ (CACM 2020), i.e. 1250 fJ at 32 bits
    "dally-2020": Published(100.0, 0.047, 3.0, 33.4, {"dram": (20_000.0, 0.0),
                                                      "hbm": (3_900.0, 24.0)},
                            derived_ops(1.0, 5000 / 4)),
    # the e_w = 30 variant: E0 45; CACM 2022 add 20 fJ per 32 bits; multiply carried over
    "dally-2022": Published(30.0, 0.047, 3.0, 45.0, {"dram": (20_000.0, 0.0),
                                                     "hbm": (3_900.0, 24.0)},
                            derived_ops(20 / 32, 5000 / 4)),
    # DRAM 1.3-2.6 nJ per 64 b: the low end, 20 pJ/bit; no HBM
    "horowitz-45nm": Published(121.0, 0.36, HOROWITZ_KAPPA, 0.0, {"dram": (20_000.0, 0.0)},
                               horowitz_ops()),
    # reference section 2, modern-5nm-hbm3: e_w 50 (NOCS 2022), a 0.030 (N3E), kappa 3, E0 15.3,
    # HBM3 3.5 pJ/bit + 24 mm; DDR the CACM 2022 figure; add 20 fJ per 32 bits; DP multiply
    # 5 pJ / 2.25 (14 -> 5 nm), i.e. 5000 / 2.25 / 4 at 32 bits
    "modern-5nm-hbm3": Published(50.0, 0.030, 3.0, 15.3, {"dram": (20_000.0, 0.0),
                                                          "hbm": (3_500.0, 24.0)},
                                 derived_ops(20 / 32, 5000 / 2.25 / 4)),
}


# ----------------------------------------------------------------------------- the oracle

def level_fj_per_bit(level: Level, preset: str) -> tuple[float, float]:
    """(per-bit energy, its wire part) of one level, by docs/energy.md's three rules."""
    p = PUBLISHED[preset]
    if level.energy_fj_per_bit is not None:
        return float(level.energy_fj_per_bit), 0.0
    if level.offchip is not None:
        device, route_mm = p.memory[level.offchip]
        return device + route_mm * p.e_w, route_mm * p.e_w
    side_mm = math.sqrt(p.a * 8 * level.capacity_bytes) / 1000
    wire = p.kappa * p.e_w * side_mm
    return p.e0 + wire, wire


def op_fj(key: str, preset: str) -> float:
    """fJ of one op "op.dtype": exact row, then the dtype's family, then the op, else an add."""
    op, dtype = key.split(".")
    table, bits = PUBLISHED[preset].arith, BITS[dtype]
    family = "float" if dtype in FLOATS else "int"
    for k in (f"{op}.{dtype}", f"{op}.{family}", op):
        if k in table:
            value, unit = table[k]
            return {"exact": value, "bit": value * bits, "op32": value * (bits / 32) ** 2}[unit]
    return op_fj(f"add.{dtype}", preset)


def distance_unit(preset: str) -> float:
    p = PUBLISHED[preset]
    return 8 * p.kappa * (p.e_w / 1000) * math.sqrt(8 * p.a)


def ceil_sqrt_units(depth: int, nbytes: int) -> int:
    """sum of ceil(sqrt(j)) for j = depth+1 .. depth+nbytes (ceil(sqrt(j)) = isqrt(j-1) + 1)."""
    return sum(math.isqrt(j - 1) + 1 for j in range(depth + 1, depth + nbytes + 1))


@dataclass(frozen=True)
class Reads:
    """What the distance model needs from a trace: ByteDMD units of the finite reads, bytes of
    the cold reads, and the CPU's bytes (what the first level receives)."""

    units: int
    cold_bytes: int
    cpu_bytes: int


def reads_of(trace) -> Reads:
    """An explicit LRU stack of element addresses (each weighing the bytes of its latest
    access): a read's byte depth is the weight above its element; a first touch is cold."""
    stack, size, units, cold, cpu = [], [], 0, 0, 0
    for chunk in trace:
        for a, n, w in zip(chunk.addr.tolist(), chunk.nbytes.tolist(), chunk.is_write.tolist()):
            cpu += n
            try:
                k = stack.index(a)
            except ValueError:
                cold += 0 if w else n
            else:
                units += 0 if w else ceil_sqrt_units(sum(size[k + 1:]), n)
                del stack[k], size[k]
            stack.append(a)
            size.append(n)
    return Reads(units, cold, cpu)


def check_report(trace, hierarchy: Hierarchy, preset: str, reads: Reads | None = None):
    """Every figure of the energy report against the oracle; returns the report."""
    r = simulate(trace, hierarchy, preset)
    e, levels = r.energy, hierarchy.levels
    reads = reads or reads_of(trace)
    fj = {lv.name: level_fj_per_bit(lv, preset) for lv in levels}
    received = {s.name: s.read_bytes + s.write_bytes for s in r.levels}
    assert received[levels[0].name] == reads.cpu_bytes      # level 1 sees the CPU's accesses
    exact = functools.partial(pytest.approx, rel=1e-12, abs=1e-9)
    assert e.preset == preset and r.hierarchy == hierarchy.name
    assert e.fj_per_bit == exact({n: v[0] for n, v in fj.items()})
    assert e.wire_fj_per_bit == exact({n: v[1] for n, v in fj.items()})
    assert e.by_level == exact({n: received[n] * 8 * fj[n][0] for n in fj})
    assert e.wire == exact(sum(received[n] * 8 * fj[n][1] for n in fj))
    by_kernel = {k.name: sum(c * op_fj(key, preset) for key, c in k.arith.items())
                 for k in trace.kernels}
    assert e.by_kernel == exact(by_kernel)
    assert e.arithmetic == exact(sum(by_kernel.values()))
    assert e.total == exact(sum(received[n] * 8 * fj[n][0] for n in fj) + sum(by_kernel.values()))
    assert e.distance_cold == exact(reads.cold_bytes * 8 * fj[levels[-1].name][0])
    assert e.distance == exact(distance_unit(preset) * reads.units)
    check_by_buffer(e, trace, hierarchy, fj)
    return r


def check_by_buffer(e, trace, hierarchy: Hierarchy, fj: dict) -> None:
    """Each buffer pays, at every level, the bytes of the requests charged to it (counted by the
    cache model) at that level's energy; together they are the level total."""
    _, charged = simulate_hierarchy(hierarchy, trace)
    names = [b.name for b in trace.buffers] + ["(unmapped)"]
    per_bit = np.array([fj[lv.name][0] for lv in hierarchy.levels])
    want = {n: float(x) for n, x in zip(names, (charged * 8 * per_bit[:, None]).sum(axis=0)) if x}
    assert e.by_buffer == pytest.approx(want, rel=1e-12)
    assert sum(e.by_buffer.values()) == pytest.approx(sum(e.by_level.values()), rel=1e-12)


# ----------------------------------------------------------------------------- hierarchies

def hand_hbm() -> Hierarchy:
    """Three small derived on-chip levels (set-associative, FIFO, fully associative
    write-through) over HBM: every level sees misses and writebacks."""
    return Hierarchy("hand-hbm", (
        Level("L1", 512, 16, ways=2),
        Level("L2", 4096, 32, ways=4, policy="fifo"),
        Level("L3", 16384, 64, write_back=False),
        Level("HBM", None, 64, offchip="hbm")))


def hand_dram() -> Hierarchy:
    """A level with a given energy (no wire) above a derived one, not write-allocate, and DRAM
    whose given energy wins over its off-chip kind."""
    return Hierarchy("hand-dram", (
        Level("regs", 256, 8, energy_fj_per_bit=150.0),
        Level("L1", 2048, 32, ways=4, write_allocate=False),
        Level("DRAM", None, 64, offchip="dram", energy_fj_per_bit=25_000.0)))


HIERARCHIES = {"cpu-like": lambda: load_hierarchy("cpu-like"),
               "h100-like": lambda: load_hierarchy("h100-like"),
               "hand-hbm": hand_hbm, "hand-dram": hand_dram}
HBM = {"h100-like", "hand-hbm"}
PAIRS = [(h, p) for h in HIERARCHIES for p in PUBLISHED
         if not (h in HBM and p == "horowitz-45nm")]          # horowitz-45nm prices no HBM


# ----------------------------------------------------------------------------- hand-built traces

DTYPES = ["f32", "f16", "i8", "f64", "bf16", "i32"]
ARITH = [{"fma.f32": 1000, "max.f32": 10, "exp.f64": 3, "add.i8": 7},
         {"mul.f16": 5, "add.f16": 8, "sub.f16": 9, "mul.i8": 6, "div.f32": 11},
         {"cmp.i32": 4, "min.bf16": 2, "fma.f16": 12, "neg.i8": 5, "mul.i32": 3, "exp.f32": 1}]


def build_trace(buffers, ops, chunk_accesses=997):
    """buffers: [(elements, dtype)]; ops: [(buffer, first element, count, is_write, kernel)]."""
    b = TraceBuilder(chunk_accesses=chunk_accesses)
    ids = [b.buffer(f"B{i}", n, dtype=d, role="activation") for i, (n, d) in enumerate(buffers)]
    kernels = [b.kernel(f"k{i}", arith=a) for i, a in enumerate(ARITH)]
    for step, (buf, first, count, is_write, kernel) in enumerate(ops):
        b.step(step // 8)
        n = buffers[buf][0]
        b.access(ids[buf], (first + np.arange(count)) % n, is_write, kernel=kernels[kernel])
    return b.build()


@functools.lru_cache(maxsize=None)
def seeded_trace(seed: int):
    """About 12,000 accesses over six buffers of mixed dtypes (several KB each, so every level
    misses), with runs, strides back and forth, and never-written reads (cold)."""
    rng = np.random.default_rng(seed)
    buffers = [(int(rng.integers(200, 1500)), d) for d in DTYPES]
    ops = [(int(rng.integers(0, 6)), int(rng.integers(0, 1500)), int(rng.integers(1, 120)),
            bool(rng.random() < 0.35), int(rng.integers(0, 3))) for _ in range(200)]
    trace = build_trace(buffers, ops)
    return trace, reads_of(trace)


@pytest.mark.parametrize("hierarchy, preset", PAIRS)
def test_report_of_a_hand_built_trace_is_the_oracle(hierarchy, preset):
    trace, reads = seeded_trace(1)
    assert reads.cold_bytes > 0 and reads.units > 0      # both distance terms can fail
    r = check_report(trace, HIERARCHIES[hierarchy](), preset, reads)
    assert r.energy.wire > 0 and r.energy.distance_cold > 0 and r.energy.arithmetic > 0
    assert all(s.read_bytes + s.write_bytes > 0 for s in r.levels)


op_strategy = st.tuples(st.integers(0, 3), st.integers(0, 400), st.integers(1, 60), st.booleans(),
                        st.integers(0, 2))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.sampled_from(DTYPES)), min_size=4, max_size=4),
       st.lists(op_strategy, min_size=1, max_size=40), st.sampled_from(PAIRS))
def test_report_of_random_traces_is_the_oracle(buffers, ops, pair):
    hierarchy, preset = pair
    check_report(build_trace(buffers, ops), HIERARCHIES[hierarchy](), preset)


def test_by_buffer_by_hand():
    """One 64-byte line of L1 over DRAM, two one-line buffers. Read A, read B (evicts A), write
    A[0] (a write-allocate miss: A's line filled again, B evicted clean), read B[0] (evicts A
    dirty: a writeback charged to A, the buffer that dirtied the line)."""
    b = TraceBuilder()
    a, bb = b.buffer("A", 16), b.buffer("B", 16)
    b.read(a)
    b.read(bb)
    b.write(a, [0])
    b.read(bb, [0])
    h = Hierarchy("one-line", (Level("L1", 64, 64), Level("DRAM", None, 64, offchip="dram")))
    for preset in PUBLISHED:
        e = simulate(b.build(), h, preset).energy
        l1, dram = level_fj_per_bit(h.levels[0], preset)[0], 20_000.0
        assert e.by_buffer == pytest.approx({"A": (64 + 4) * 8 * l1 + 3 * 64 * 8 * dram,
                                             "B": (64 + 4) * 8 * l1 + 2 * 64 * 8 * dram})
        assert e.distance_cold == pytest.approx(2 * 64 * 8 * dram)    # A and B read cold


# ----------------------------------------------------------------------------- published figures

@pytest.mark.parametrize("preset, l1_pj, memory, memory_pj", [
    ("dally-2020", "4.3", "hbm", "403"), ("dally-2022", "3.5", "hbm", "296"),
    ("modern-5nm-hbm3", "1.8", "hbm", "301"), ("horowitz-45nm", "20", "dram", "1280")])
def test_oracle_constants_give_the_reference_sanity_numbers(preset, l1_pj, memory, memory_pj):
    """The constants hard-coded above reproduce reference section 5 (one 64-bit read of a 32 KB
    L1 and of memory), to the digits it prints, so a typo in them cannot pass for a product bug.
    Horowitz's DRAM row is a range there (1.3-2.6 nJ per 64 b); the preset takes its low end,
    20 pJ/bit, which is 1,280 pJ."""
    def pj(level):
        return level_fj_per_bit(level, preset)[0] * 64 / 1000

    assert abs(pj(Level("L1", 32 * 1024, 64)) - float(l1_pj)) <= 0.5 * 10 ** -len(
        l1_pj.partition(".")[2])
    assert abs(pj(Level("M", None, 64, offchip=memory)) - float(memory_pj)) <= 0.5


# ----------------------------------------------------------------------------- real programs

def step_trace(program: str, overrides: dict, passes: str, steps: list[int]):
    """The trace tracegen makes for these steps of a program (addresses depend on the schedule
    only, so it is the trace `run` simulated)."""
    from sutro_ir.compile import compile_file
    from sutro_ir.schedule import schedule
    from sutro_ir.tracegen import StepTrace

    prog = compile_file(str(ROOT / program), overrides, passes)
    st_ = StepTrace(schedule(prog.train.graph), prog.train.x, prog.train.y,
                    [p.name for p in prog.params])
    return st_.trace(steps, {})


def toml_of(h: Hierarchy) -> str:
    out = [f'name = "{h.name}"']
    for lv in h.levels[:-1]:
        out += ["[[level]]", f'name = "{lv.name}"', f"capacity = {lv.capacity_bytes}",
                f"line = {lv.line_bytes}", f'policy = "{lv.policy}"',
                f"write_back = {str(lv.write_back).lower()}"]
        out += [f"ways = {lv.ways}"] if lv.ways else []
    mem = h.levels[-1]
    out += ["[memory]", f'name = "{mem.name}"', f'offchip = "{mem.offchip}"']
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("hierarchy, preset, passes", [
    ("cpu-like", "dally-2020", ""), ("h100-like", "modern-5nm-hbm3", "fuse"),
    ("hand-hbm", "dally-2022", "fuse,liveness-layout"), ("cpu-like", "horowitz-45nm", "fuse")])
def test_run_reports_the_oracle_energy(tmp_path, hierarchy, preset, passes):
    """`run --hierarchy --energy`: a hierarchy by name or by TOML path, each preset."""
    from sutro_sim.run import run

    h = HIERARCHIES[hierarchy]()
    spec = hierarchy
    if hierarchy.startswith("hand"):
        spec = str(tmp_path / f"{hierarchy}.toml")
        Path(spec).write_text(toml_of(h))
    r = run(str(ROOT / "programs/xor.sir"), hierarchy=spec, energy_preset=preset, passes=passes,
            trace_steps="2")
    trace = step_trace("programs/xor.sir", {}, passes, list(r.traced))
    want = check_report(trace, h, preset)
    assert r.sim.energy == want.energy and r.sim.levels == want.levels
    assert r.sim.energy.wire > 0 and r.energy_per_step_fj == pytest.approx(want.energy.total / 2)


@pytest.mark.parametrize("hierarchy, preset", [("cpu-like", "modern-5nm-hbm3"),
                                               ("hand-hbm", "dally-2020"),
                                               ("hand-dram", "horowitz-45nm")])
def test_steps_after_the_first_read_parameters_cold(hierarchy, preset):
    """Steps 1 and 2 of a small MLP without step 0's initialization: the parameters are read
    cold, so the cold-read energy is priced on a real trace."""
    trace = step_trace("programs/mlp_backprop_always.sir", {"n_bits": "3", "hidden": "16"}, "fuse",
                       [1, 2])
    r = check_report(trace, HIERARCHIES[hierarchy](), preset)
    assert r.energy.distance_cold > 0 and r.energy.distance > 0 and r.energy.wire > 0


def test_the_distance_sum_refuses_a_depth_past_2_53_bytes():
    """ceil(sqrt) sums are exact up to 2^53 (costmodels.ceil_sqrt_sum); past it the sum is
    refused, not rounded."""
    from simulator.errors import SimError
    from simulator.reuse import ReuseAccumulator
    from simulator.trace import make_chunk

    def units(depth: int) -> int:
        acc = ReuseAccumulator(["b"], 1)
        acc.add(make_chunk(0, [0], 8, False), np.zeros(1, np.int32), np.array([1]),
                np.array([depth]), np.zeros(1, np.int8))
        return acc.distance_units

    assert units(1000) == ceil_sqrt_units(1000, 8)
    assert units((1 << 53) - 8) == ceil_sqrt_units((1 << 53) - 8, 8)
    with pytest.raises(SimError, match="2\\^53"):
        units((1 << 53) - 7)
