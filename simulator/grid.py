"""Model 2 of the simplified Dally model: a single core with a tape (cybertronai/
simplified-dally-model, models/single-core-with-tape; reference/dally-ir.md).

The processor is at (0, 0); scratch cells sit at integer points (x, y) with |x| <= 16,000 and
1 <= y <= 16,000, h = |x| + y hops away. Every access is priced on its own, floors first:

    read   max(50, 2h) fJ   max(50, 0.8h) ps
    write  max(50, 2h) fJ   max(50, 0.4h) ps

and energy and time are plain sums (accesses are serial). Tape transfers (`recv`, `send`, and
their scratch access) cost nothing, and there is no exit read. Time is kept exact in tenths of
a picosecond.

Placement: by default the specification's spiral, where cell a sits on shell k = ceil(sqrt(a))
(so h = k, the Model 1 distance); `spiral_xy` gives the points. A run may declare its own
placement (cell -> (x, y)), which must be one-to-one and inside the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .cells import cell_map
from .costmodels import _ceil_sqrt, _isqrt
from .errors import SimError
from .trace import Trace

X_MAX, Y_MAX = 16_000, 16_000
FLOOR_FJ, FLOOR_PS = 50, 50
FJ_PER_HOP = 2                       # read and write
READ_TENTHS_PER_HOP, WRITE_TENTHS_PER_HOP = 8, 4      # 0.8 and 0.4 ps a hop


def spiral_xy(cells) -> tuple[np.ndarray, np.ndarray]:
    """The specification's placement: shell k = ceil(sqrt(a)) holds cells (k-1)^2+1 .. k^2,
    walked left to right on odd shells and right to left on even ones, at y = k - |x|."""
    a = np.asarray(cells, dtype=np.int64)
    k = _isqrt(a - 1) + 1
    idx = a - (k - 1) ** 2 - 1
    x = np.where(k % 2 == 1, idx - (k - 1), (k - 1) - idx)
    return x, k - np.abs(x)


@dataclass(frozen=True)
class GridResult:
    """Model 2 totals. `time_tenths_ps`: exact time in 0.1 ps units."""

    energy_fj: int
    time_tenths_ps: int
    reads: int
    writes: int
    tape_accesses: int
    placement: str
    energy_by_buffer: Mapping[str, int] = field(default_factory=dict)

    @property
    def time_ps(self) -> float:
        return self.time_tenths_ps / 10

    def to_dict(self) -> dict:
        return {"energy_fj": self.energy_fj, "time_ps": self.time_ps, "reads": self.reads,
                "writes": self.writes, "tape_accesses_free": self.tape_accesses,
                "placement": self.placement, "energy_fj_by_buffer": dict(self.energy_by_buffer)}


def grid_cost(trace: Trace, cells=None, placement: Mapping[int, tuple[int, int]] | None = None,
              tape_kernels: Sequence[str] | None = None) -> GridResult:
    """Model 2 energy and time of a trace. `cells`: a numbering from simulator/cells.py (default:
    the trace's own, cell_map(trace)). `placement`: cell -> (x, y), else the spiral.
    `tape_kernels`: kernel names whose accesses are tape transfers (default: the trace's
    `tape_kernels` meta field)."""
    cell_of = cells or cell_map(trace)
    hops = _Hops(placement, trace.where)
    names = trace.meta.get("tape_kernels", ()) if tape_kernels is None else tape_kernels
    tape = np.array([k.name in set(names) for k in trace.kernels] + [False])
    energy = np.zeros(len(trace.buffers) + 1, np.int64)
    time = reads = writes = free = seen = 0
    for chunk in trace:
        on_tape = tape[chunk.kernel]             # kernel -1 (unknown) reads the False at the end
        w = chunk.is_write[~on_tape]
        h = hops(cell_of(chunk.addr[~on_tape], seen, ~on_tape))
        e = np.maximum(FLOOR_FJ, FJ_PER_HOP * h)
        t = np.maximum(FLOOR_PS * 10, np.where(w, WRITE_TENTHS_PER_HOP, READ_TENTHS_PER_HOP) * h)
        buf = trace.buffer_ids(chunk)[~on_tape]
        np.add.at(energy, np.where(buf < 0, len(trace.buffers), buf), e)
        time += int(t.sum())
        writes += int(w.sum())
        reads += int((~w).sum())
        free += int(on_tape.sum())
        seen += len(chunk)
    names_ = [b.name for b in trace.buffers] + ["?"]
    by_buffer = {n: int(v) for n, v in zip(names_, energy) if v}
    return GridResult(int(energy.sum()), time, reads, writes, free, hops.label, by_buffer)


class _Hops:
    """cell -> h: the spiral's shell, or |x| + y of a declared placement."""

    def __init__(self, placement: Mapping[int, tuple[int, int]] | None, where: str):
        self.where = where
        self.label = "spiral" if placement is None else "declared"
        if placement is None:
            return
        self.cells = np.array(sorted(placement), np.int64)
        xy = np.array([placement[c] for c in self.cells.tolist()], np.int64).reshape(-1, 2)
        _check_points(xy, self.cells, where)
        self.h = np.abs(xy[:, 0]) + xy[:, 1]

    def __call__(self, cells: np.ndarray) -> np.ndarray:
        if self.label == "spiral":
            if len(cells) and cells.max() > Y_MAX * Y_MAX:
                raise SimError(f"cell {int(cells.max()):,} lies past the grid's last shell "
                               f"({Y_MAX:,}; cells up to {Y_MAX * Y_MAX:,})", self.where)
            return _ceil_sqrt(cells)
        pos = np.minimum(np.searchsorted(self.cells, cells), len(self.cells) - 1)
        missing = self.cells[pos] != cells
        if missing.any():
            raise SimError(f"cell {int(cells[np.argmax(missing)])} has no place in the declared "
                           "placement", self.where)
        return self.h[pos]


def _check_points(xy: np.ndarray, cells: np.ndarray, where: str) -> None:
    bad = (np.abs(xy[:, 0]) > X_MAX) | (xy[:, 1] < 1) | (xy[:, 1] > Y_MAX)
    if bad.any():
        i = int(np.argmax(bad))
        raise SimError(f"cell {int(cells[i])} is placed at ({xy[i, 0]}, {xy[i, 1]}), outside the "
                       f"grid (|x| <= {X_MAX:,}, 1 <= y <= {Y_MAX:,})", where)
    _, first, counts = np.unique(xy, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        i = int(first[np.argmax(counts > 1)])
        raise SimError(f"two cells are placed at ({xy[i, 0]}, {xy[i, 1]}); a placement is "
                       "one-to-one", where)
