"""One streaming pass over a trace: stack distances, cache hierarchy, energy. Returns a Result.

Per chunk: element and byte LRU stack distances (stackdist), the hierarchy (cache), the
counters (reuse) and the continuous distance energy. Nothing per access outlives its chunk, so
memory stays bounded for 10^8-access traces.

Energy accounting (docs/energy.md):
- every request a level receives costs its bytes x 8 x that level's per-bit energy: the CPU's
  own accesses at level 1, line fills and writebacks below, memory last. A miss therefore pays
  at every level it passes, as a real probe does;
- arithmetic: the kernel table's op counts x the preset's per-op energy;
- total = levels + arithmetic; `wire` is the part of the level energy that is wire (the sqrt-
  capacity term and off-chip routes), shown apart, not added again;
- the continuous distance model prices each finite read at LRU depth D bytes as
  u * sum(ceil(sqrt(j)), j = D+1 .. D+nbytes) (ByteDMD's rule at byte granularity, u from the
  preset); cold reads are priced apart at the memory level's per-bit energy.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from . import energy as energy_mod
from .cache import CacheSim, LevelStats, level_stats
from .cache_counters import N_COUNTERS
from .errors import SimError
from .hierarchy import Hierarchy
from .limits import memory
from .reuse import ReuseAccumulator, ReuseStats
from .stackdist import StackDistance
from .trace import Trace

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EnergyReport:
    preset: str
    total: float
    by_level: dict
    wire: float
    arithmetic: float
    by_kernel: dict          # arithmetic energy per kernel
    by_buffer: dict          # level energy attributed to buffers (sums to the level total)
    distance: float          # continuous sqrt-depth model, finite reads
    distance_cold: float     # cold reads at the memory level's per-bit energy
    fj_per_bit: dict         # level -> per-bit energy used
    wire_fj_per_bit: dict    # level -> its wire part
    given: tuple = ()        # levels whose energy the hierarchy gives (no preset, no wire split)

    def to_dict(self) -> dict:
        return {"preset": self.preset, "total": self.total, "by_level": dict(self.by_level),
                "arithmetic": self.arithmetic, "wire": self.wire,
                "by_kernel": dict(self.by_kernel), "by_buffer": dict(self.by_buffer),
                "distance_model": {"finite_reads": self.distance, "cold_reads": self.distance_cold},
                "fj_per_bit": dict(self.fj_per_bit),
                "wire_fj_per_bit": dict(self.wire_fj_per_bit), "given_levels": list(self.given)}


@dataclass(frozen=True)
class Result:
    trace: str
    hierarchy: str
    steps: tuple[int, ...]
    reuse: ReuseStats
    levels: tuple[LevelStats, ...]
    energy: EnergyReport
    wall_s: float
    meta: dict
    account: StepAccount | None = None   # per step, for a trace with a step plan

    def source(self, buffer: str) -> dict | None:
        """Where a buffer's value comes from in the program ({line, text}), when the trace
        says (a run's trace does: sutro_ir.tracegen.StepTrace.sources)."""
        src = self.meta.get("sources", {}).get(buffer)
        return {"line": src[0], "text": src[1]} if src else None

    def to_dict(self) -> dict:
        r = self.reuse
        return {
            "trace": self.trace, "hierarchy": self.hierarchy,
            "steps": len(self.steps), "traced_steps": step_ranges(self.steps),
            "wall_s": self.wall_s, "meta": self.meta,
            "accesses": {"reads": r.reads, "writes": r.writes, "read_bytes": r.read_bytes,
                         "write_bytes": r.write_bytes},
            "reuse": r.to_dict(),
            "levels": [_level_dict(s) for s in self.levels],
            "traffic": traffic(self.levels),
            "energy_fj": self.energy.to_dict(),
            "buffers": [dict(b.to_dict(), energy_fj=self.energy.by_buffer.get(b.name, 0.0),
                             source=self.source(b.name)) for b in r.buffers],
            **({"accounting": self.account.to_dict()} if self.account else {}),
        }


def _level_dict(s: LevelStats) -> dict:
    d = s.to_dict()
    d["capacity"] = s.capacity_bytes  # the JSON contract's key (DESIGN.md)
    return d


def step_ranges(steps: tuple[int, ...]) -> str:
    """'0-9,20' for the steps (0,1,...,9,20)."""
    if not steps:
        return ""
    out, lo, prev = [], steps[0], steps[0]
    for s in steps[1:] + (None,):
        if s is not None and s == prev + 1:
            prev = s
            continue
        out.append(f"{lo}" if lo == prev else f"{lo}-{prev}")
        if s is not None:
            lo = prev = s
    return ",".join(out)


def simulate(trace: Trace, hierarchy: Hierarchy, energy: str = "dally-2020",
             progress: Progress | None = None, brute_force: bool = False) -> Result:
    """Run the whole trace through stack distance, the hierarchy and the energy model.

    A trace with a step plan is accounted step by step (module docstring, "Whole runs"): a step
    of a kind already simulated from the same state is counted, not replayed, unless
    `brute_force`. The totals are the same either way."""
    t0 = time.perf_counter()
    preset = energy_mod.get_preset(energy)
    level_energy = [energy_mod.level_energy(level, preset) for level in hierarchy.levels]
    plan = trace.plan
    if plan is None:    # one segment, simulated in order
        sizes, kinds = [trace.n_chunks], [-1]
    else:
        sizes, kinds = plan.chunks.tolist(), plan.kinds.tolist()
    proof = _Proof(_Machine(trace, hierarchy), plan is not None and not brute_force)
    acc = ReuseAccumulator([b.name for b in trace.buffers], len(hierarchy.levels))
    totals = _Totals(len(hierarchy.levels), len(trace.buffers))
    outcomes: list[_Outcome] = []
    outcome_of = np.empty(len(sizes), np.int32)
    steps: list[int] = []
    lo = 0
    for i, (n, kind) in enumerate(zip(sizes, kinds)):
        o = proof.lookup(kind)
        if o is None:
            out = proof.live().run(lo, lo + n, kind, steps)
            o = len(outcomes)
            outcomes.append(out)
            if i + 1 < len(sizes):     # after the last step, no state is needed
                proof.record(kind, o)
        else:
            proof.follow(o)
        outcomes[o].count += 1
        outcome_of[i] = o
        if not proof.enabled:   # never looked up again: count it now and drop its tables
            outcomes[o].merge_into(acc, totals)
        lo += n
        if progress:
            progress(i + 1, len(sizes))
    for out in outcomes:
        out.merge_into(acc, totals)
    levels = tuple(level_stats(lv, row) for lv, row in zip(hierarchy.levels, totals.counters))
    check_balance(hierarchy, levels)
    reuse = acc.result([lv.name for lv in hierarchy.levels],
                       {b.name: b.nbytes for b in trace.buffers})
    u = energy_mod.distance_unit_fj(preset)
    report = _energy(trace, hierarchy, preset, level_energy, levels, totals.bytes, reuse,
                     u * acc.distance_units)
    account = None
    if plan is not None:
        account = _account(plan, outcomes, outcome_of, hierarchy, level_energy, preset, proof)
        steps = plan.steps.tolist()
    return Result(trace.where, hierarchy.name, tuple(sorted(set(steps))), reuse, levels, report,
                  time.perf_counter() - t0, dict(trace.meta), account)


# ----------------------------------------------------------------------------- whole runs

@dataclass
class _Outcome:
    """What simulating one step did: its counters (the cache's, and the reuse accumulator's with
    the sqrt-distance units of its reads), and how many steps it stands for."""
    acc: ReuseAccumulator | None
    counters: np.ndarray     # [level, counter]
    bytes: np.ndarray        # [level, buffer]
    accesses: int
    kind: int
    count: int = 0

    def merge_into(self, acc: ReuseAccumulator, totals: "_Totals") -> None:
        if self.acc is None:
            return
        acc.add_counts(self.acc, self.count)
        totals.counters += self.count * self.counters
        totals.bytes += self.count * self.bytes
        self.acc = None


class _Totals:
    def __init__(self, n_levels: int, n_buffers: int):
        self.counters = np.zeros((n_levels, N_COUNTERS), np.int64)
        self.bytes = np.zeros((n_levels, n_buffers + 1), np.int64)


class _Machine:
    """Stack distance and cache state over one trace; runs chunks into an _Outcome."""

    def __init__(self, trace: Trace, hierarchy: Hierarchy):
        self.trace, self.hierarchy = trace, hierarchy
        self.shift = _unit_shift(trace)
        self.sd = StackDistance(weighted=True)
        self.cache = CacheSim(hierarchy, len(trace.buffers), trace=trace)

    def run(self, lo: int, hi: int, kind: int, steps: list[int]) -> _Outcome:
        trace = self.trace
        acc = ReuseAccumulator([b.name for b in trace.buffers], len(self.hierarchy.levels))
        c0, b0 = self.cache.counters(), self.cache.bytes_by_level_buffer.copy()
        accesses = 0
        for i in range(lo, hi):
            chunk = trace.chunk(i)
            _check_aligned(chunk, self.shift, trace.where)
            bids = trace.buffer_ids(chunk)
            dist, dist_b = self.sd.feed(chunk.addr >> self.shift, chunk.nbytes)
            served = self.cache.feed(chunk, bids)
            acc.add(chunk, bids, dist, dist_b, served)
            accesses += len(chunk)
            if not steps or steps[-1] != chunk.step:
                steps.append(chunk.step)
        return _Outcome(acc, self.cache.counters() - c0, self.cache.bytes_by_level_buffer - b0,
                        accesses, kind)

    def snapshot(self) -> "_Machine":
        return copy.deepcopy(self, {id(self.trace): self.trace, id(self.hierarchy): self.hierarchy})

    def canonical(self) -> list[np.ndarray]:
        return self.sd.canonical() + self.cache.canonical()

    def nbytes(self) -> int:
        """Bytes of numpy state a snapshot copies."""
        objs = [self.sd, self.cache, self.cache._fused, *getattr(self.cache, "_levels", ())]
        return sum(v.nbytes for o in objs if o is not None for v in vars(o).values()
                   if isinstance(v, np.ndarray))


MAX_STATES = 256                # distinct states kept for proofs before giving up on proving
SNAPSHOT_MEMORY_FRACTION = 0.25  # of physical memory, for the kept states


class _Proof:
    """Proof by state equality. The simulator is deterministic: the same state and the same
    accesses give the same counts and the same next state. States are compared exactly, through
    their canonical arrays (a digest finds the candidates, the arrays decide). A (state, kind)
    pair met again is counted from its first outcome; the state after it is known, so a run of
    counted steps needs no simulation. Meeting a new pair from a counted state restores that
    state's snapshot. Stops proving (and simulates every later step in order, still exactly)
    when the states kept exceed MAX_STATES or the memory budget."""

    def __init__(self, machine: _Machine, enabled: bool):
        self.reason = ("brute force" if not enabled else
                       "proof" if machine.cache.replayable else "replay")
        self.enabled = enabled and machine.cache.replayable
        self._live = machine
        self.state = self.live_state = 0
        self.memo: dict[tuple[int, int], int] = {}
        self.next: dict[int, int] = {}
        self.digests: dict[tuple, list[tuple[list, int]]] = {}
        self.snapshots: list[_Machine] = []
        self.kept_bytes = self.states_seen = 0
        self.budget = SNAPSHOT_MEMORY_FRACTION * memory()[0]
        if self.enabled and 2 * machine.nbytes() > self.budget:   # a copy and its canonical form
            self.enabled, self.reason = False, "in order"
        if self.enabled:
            self._new_state(machine)
            self.kept_bytes = machine.nbytes()

    def lookup(self, kind: int) -> int | None:
        return self.memo.get((self.state, kind)) if self.enabled else None

    def follow(self, outcome: int) -> None:
        self.state = self.next[outcome]

    def live(self) -> _Machine:
        """The machine in the current state (restored from its snapshot if counted steps left
        the live machine behind)."""
        if self.enabled and self.live_state != self.state:
            self._live = self.snapshots[self.state].snapshot()
            self.live_state = self.state
        return self._live

    def record(self, kind: int, outcome: int) -> None:
        if not self.enabled:
            return
        sid = self._state_id(self._live)
        if sid is None:        # over budget: the live machine goes on in order from here
            self.enabled = False
            self.reason = "proof, then in order"
            self.states_seen = len(self.snapshots)
            self.snapshots, self.digests = [], {}
            return
        self.memo[(self.state, kind)] = outcome
        self.next[outcome] = sid
        self.state = self.live_state = sid

    def _state_id(self, machine: _Machine) -> int | None:
        canon = machine.canonical()
        digest = _digest(canon)
        for other, sid in self.digests.get(digest, ()):
            if all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(canon, other)):
                return sid
        if len(self.snapshots) >= MAX_STATES:
            return None
        size = machine.nbytes() + sum(a.nbytes for a in canon)
        if self.kept_bytes + size > self.budget:
            return None
        self.kept_bytes += size
        return self._new_state(machine, canon, digest)

    def _new_state(self, machine, canon=None, digest=None) -> int:
        if canon is None:
            canon = machine.canonical()
            digest = _digest(canon)
        sid = len(self.snapshots)
        self.snapshots.append(machine.snapshot())
        self.digests.setdefault(digest, []).append((canon, sid))
        return sid


def _digest(arrays: list[np.ndarray]) -> tuple:
    """A fingerprint that finds the candidates for equality (the arrays then decide): shapes
    and an order-sensitive fold of the bytes of each array."""
    out = []
    for a in arrays:
        v = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        out += [a.shape, int(_fold(v.view(np.uint64) if len(v) % 8 == 0 else v))]
    return tuple(out)


@numba.njit(cache=True)
def _fold(v):
    h = np.uint64(1469598103934665603)
    for x in v:
        h = (h ^ np.uint64(x)) * np.uint64(1099511628211)
    return h


@dataclass(frozen=True)
class StepOutcome:
    """One simulated step and the steps accounted from it: `count` steps of kind `kind`."""
    kind: int
    count: int
    accesses: int
    levels: tuple          # LevelStats of one step
    energy_fj: float       # one step: levels + its arithmetic

    def to_dict(self) -> dict:
        return {"kind": self.kind, "steps": self.count, "accesses": self.accesses,
                "energy_fj": self.energy_fj,
                "hit_rates": {s.name: s.hit_rate for s in self.levels[:-1]}}


@dataclass(frozen=True)
class StepAccount:
    """How each step of a planned trace was accounted, and its energy."""
    steps: np.ndarray        # step numbers, in trace order
    kinds: np.ndarray
    outcome: np.ndarray      # per step: its row of `outcomes`
    energy_fj: np.ndarray    # per step: level energy + arithmetic
    outcomes: tuple          # StepOutcome per simulated step
    simulated: int           # steps replayed access by access
    proven: int              # steps counted from an equal state and kind
    states: int              # distinct states compared (0 without proof)
    method: str              # "proof", "proof, then in order" (past the state limit or the
    #                          memory budget), "in order" (one state past the budget), "brute
    #                          force" or "replay" (a random or OPT level)
    phase: np.ndarray        # per step: the plan's phase (zeros when it gives none)

    @property
    def steady(self) -> StepOutcome:
        """The outcome most steps share."""
        return max(self.outcomes, key=lambda o: o.count)

    def to_dict(self) -> dict:
        return {"method": self.method, "steps": len(self.steps), "simulated": self.simulated,
                "proven": self.proven, "states": self.states,
                "first_step": self.outcomes[self.outcome[0]].to_dict() if len(self.steps) else None,
                "steady_step": self.steady.to_dict() if self.outcomes else None}


def _account(plan, outcomes, outcome_of, hierarchy, level_energy, preset,
             proof: _Proof) -> StepAccount:
    fj_bit = np.array([e.fj_per_bit for e in level_energy])
    arith = np.array([sum(energy_mod.arith_fj(op, n, preset) for op, n in a.items())
                      for a in plan.arith] or [0.0])
    rows = []
    for o in outcomes:
        levels = tuple(level_stats(lv, r) for lv, r in zip(hierarchy.levels, o.counters))
        level_fj = float((_level_bits(levels) * fj_bit).sum())
        rows.append(StepOutcome(o.kind, o.count, o.accesses, levels,
                                level_fj + float(arith[o.kind] if plan.arith else 0.0)))
    simulated = len(outcomes)
    energy = np.array([r.energy_fj for r in rows])[outcome_of] if rows else np.zeros(0)
    phase = plan.phase if plan.phase is not None else np.zeros(len(plan.steps), np.int64)
    return StepAccount(plan.steps, plan.kinds, outcome_of, energy, tuple(rows), simulated,
                       len(plan.steps) - simulated, max(len(proof.snapshots), proof.states_seen),
                       proof.reason, phase)


def traffic(levels: tuple[LevelStats, ...]) -> list[dict]:
    """Bytes across each boundary: filled up into the upper level, written down into the lower."""
    return [{"upper": u.name, "lower": d.name, "up_bytes": u.bytes_in, "down_bytes": u.bytes_out}
            for u, d in zip(levels, levels[1:])]


def check_balance(hierarchy: Hierarchy, levels: tuple[LevelStats, ...]) -> None:
    """Bytes moved between levels must balance: what a level fills (its filling misses x its line)
    is what the level below serves, and what it writes down is what the level below takes in."""
    for lv, up, down in zip(hierarchy.levels, levels, levels[1:]):
        filling_misses = up.read_misses + (up.write_misses if lv.write_allocate else 0)
        ok = (up.bytes_in == filling_misses * up.line_bytes == down.read_bytes
              and up.bytes_out == down.write_bytes)
        if not ok:
            raise RuntimeError(f"internal error: bytes between {up.name} and {down.name} do not "
                               f"balance: {up} vs {down}")


def _unit_shift(trace: Trace) -> int:
    """Element addresses are divided by the smallest element size (keeps the page table dense)."""
    if not trace.buffers:
        return 0
    smallest = min(b.elem_bytes for b in trace.buffers)
    return (smallest & -smallest).bit_length() - 1


def _check_aligned(chunk, shift: int, where: str) -> None:
    if shift == 0 or len(chunk) == 0:
        return
    bad = np.nonzero(chunk.addr & ((1 << shift) - 1))[0]
    if len(bad):
        raise SimError(f"access at address {chunk.addr[bad[0]]} (step {chunk.step}) is not aligned "
                       f"to the smallest element size in the buffer table ({1 << shift} bytes)",
                       where)


def _level_bits(levels) -> np.ndarray:
    """Bits each level served (read and written): what its per-bit energy prices."""
    return np.array([8 * (s.read_bytes + s.write_bytes) for s in levels], dtype=np.float64)


def _energy(trace, hierarchy, preset, level_energy, levels, bytes_by_level_buffer, reuse,
            distance) -> EnergyReport:
    fj_bit = np.array([e.fj_per_bit for e in level_energy])
    wire_bit = np.array([e.wire_fj_per_bit for e in level_energy])
    bits = _level_bits(levels)
    by_level = bits * fj_bit
    by_kernel = {k.name: sum(energy_mod.arith_fj(op, n, preset) for op, n in k.arith.items())
                 for k in trace.kernels}
    per_buffer = (bytes_by_level_buffer * 8 * fj_bit[:, None]).sum(axis=0)
    names = [b.name for b in trace.buffers] + ["(unmapped)"]
    by_buffer = {n: float(e) for n, e in zip(names, per_buffer) if e}
    arithmetic = float(sum(by_kernel.values()))
    lv_names = [lv.name for lv in hierarchy.levels]
    return EnergyReport(
        preset=preset.name, total=float(by_level.sum()) + arithmetic,
        by_level={n: float(e) for n, e in zip(lv_names, by_level)},
        wire=float((bits * wire_bit).sum()), arithmetic=arithmetic,
        by_kernel=by_kernel, by_buffer=by_buffer, distance=float(distance),
        distance_cold=float(reuse.cold_read_bytes * 8 * fj_bit[-1]),
        fj_per_bit={n: float(e) for n, e in zip(lv_names, fj_bit)},
        wire_fj_per_bit={n: float(e) for n, e in zip(lv_names, wire_bit)},
        given=tuple(n for n, e in zip(lv_names, level_energy) if e.source == energy_mod.GIVEN))

