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

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import energy as energy_mod
from .cache import CacheSim, LevelStats
from .costmodels import ceil_sqrt_sum
from .errors import SimError
from .hierarchy import Hierarchy
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

    def to_dict(self) -> dict:
        return {"preset": self.preset, "total": self.total, "by_level": dict(self.by_level),
                "arithmetic": self.arithmetic, "wire": self.wire,
                "by_kernel": dict(self.by_kernel), "by_buffer": dict(self.by_buffer),
                "distance_model": {"finite_reads": self.distance, "cold_reads": self.distance_cold},
                "fj_per_bit": dict(self.fj_per_bit),
                "wire_fj_per_bit": dict(self.wire_fj_per_bit)}


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
            "buffers": [dict(b.to_dict(), energy_fj=self.energy.by_buffer.get(b.name, 0.0))
                        for b in r.buffers],
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
             progress: Progress | None = None) -> Result:
    """Run the whole trace through stack distance, the hierarchy and the energy model."""
    t0 = time.perf_counter()
    preset = energy_mod.get_preset(energy)
    level_energy = [energy_mod.level_energy(level, preset) for level in hierarchy.levels]
    names = [b.name for b in trace.buffers]
    shift = _unit_shift(trace)
    sd = StackDistance(weighted=True)
    cache = CacheSim(hierarchy, len(trace.buffers), trace=trace)
    acc = ReuseAccumulator(names, len(hierarchy.levels))
    u = energy_mod.distance_unit_fj(preset)
    steps: list[int] = []
    distance_units = 0
    for i in range(trace.n_chunks):
        chunk = trace.chunk(i)
        _check_aligned(chunk, shift, trace.where)
        bids = trace.buffer_ids(chunk)
        dist, dist_b = sd.feed(chunk.addr >> shift, chunk.nbytes)
        served = cache.feed(chunk, bids)
        acc.add(chunk, bids, dist, dist_b, served)
        finite = ~chunk.is_write & (dist >= 0)
        distance_units += int(ceil_sqrt_sum(dist_b[finite] + 1,
                                            dist_b[finite] + chunk.nbytes[finite]).sum())
        if not steps or steps[-1] != chunk.step:
            steps.append(chunk.step)
        if progress:
            progress(i + 1, trace.n_chunks)
    levels = tuple(cache.finish())
    check_balance(hierarchy, levels)
    reuse = acc.result([lv.name for lv in hierarchy.levels],
                       {b.name: b.nbytes for b in trace.buffers})
    report = _energy(trace, hierarchy, preset, level_energy, levels, cache, reuse,
                     u * distance_units)
    return Result(trace.where, hierarchy.name, tuple(sorted(set(steps))), reuse, levels, report,
                  time.perf_counter() - t0, dict(trace.meta))


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


def _energy(trace, hierarchy, preset, level_energy, levels, cache, reuse, distance) -> EnergyReport:
    fj_bit = np.array([e.fj_per_bit for e in level_energy])
    wire_bit = np.array([e.wire_fj_per_bit for e in level_energy])
    level_bytes = np.array([s.read_bytes + s.write_bytes for s in levels], dtype=np.float64)
    by_level = level_bytes * 8 * fj_bit
    by_kernel = {k.name: sum(energy_mod.arith_fj(op, n, preset) for op, n in k.arith.items())
                 for k in trace.kernels}
    per_buffer = (cache.bytes_by_level_buffer * 8 * fj_bit[:, None]).sum(axis=0)
    names = [b.name for b in trace.buffers] + ["(unmapped)"]
    by_buffer = {n: float(e) for n, e in zip(names, per_buffer) if e}
    arithmetic = float(sum(by_kernel.values()))
    lv_names = [lv.name for lv in hierarchy.levels]
    return EnergyReport(
        preset=preset.name, total=float(by_level.sum()) + arithmetic,
        by_level={n: float(e) for n, e in zip(lv_names, by_level)},
        wire=float((level_bytes * 8 * wire_bit).sum()), arithmetic=arithmetic,
        by_kernel=by_kernel, by_buffer=by_buffer, distance=float(distance),
        distance_cold=float(reuse.cold_read_bytes * 8 * fj_bit[-1]),
        fj_per_bit={n: float(e) for n, e in zip(lv_names, fj_bit)},
        wire_fj_per_bit={n: float(e) for n, e in zip(lv_names, wire_bit)})

