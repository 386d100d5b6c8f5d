"""Reuse-distance metrics: ARD in elements and bytes, log2 histogram, CDF, per-buffer table.

Fed per chunk with the element and byte stack distances of its accesses (simulator.stackdist) and
the level that served each access (simulator.cache); accumulates counters only, so memory does not
grow with the trace. ARD is the mean distance over reads with a finite distance; cold reads are
counted apart, never averaged in (DESIGN.md, Metrics).

Histogram bins: bin 0 holds distance 0; bin k >= 1 holds distances in [2^(k-1), 2^k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .errors import SimError

N_BINS = 64
# per-buffer counter columns
(READS, WRITES, READ_BYTES, WRITE_BYTES, COLD_READS, COLD_READ_BYTES, FINITE, SUM_D, SUM_DB,
 MIN_D, MAX_D) = range(11)
N_COLS = 11


@numba.njit(cache=True, inline="always")
def _bin(d):
    b = 0
    while d > 0:
        d >>= 1
        b += 1
    return b


MAX_DEPTH_BYTES = 1 << 53     # the sqrt-distance sum is exact up to here (costmodels.py)


@numba.njit(cache=True, inline="always")
def _ceil_sqrt(n):
    """ceil(sqrt(n)) exactly for 0 <= n <= 2^53: float sqrt, then integer corrections."""
    r = np.int64(np.sqrt(np.float64(n)))
    for _ in range(2):
        r -= np.int64(r * r > n)
        r += np.int64((r + 1) * (r + 1) <= n)
    return r + np.int64(r * r < n)


@numba.njit(cache=True, inline="always")
def _ceil_sqrt_prefix(n):
    """sum_{j=1..n} ceil(sqrt(j)), as costmodels.ceil_sqrt_sum computes it (same wrap-around
    arithmetic, so a difference of two prefixes is exact whenever it fits in int64)."""
    if n <= 0:
        return np.int64(0)
    k = _ceil_sqrt(n)
    a, b, c = k - 1, k, 4 * (k - 1) - 1             # sum_{m<k} m(2m-1) = a b c / 6
    if a % 2 == 0:
        a //= 2
    else:
        b //= 2
    if a % 3 == 0:
        a //= 3
    elif b % 3 == 0:
        b //= 3
    else:
        c //= 3
    return a * b * c + k * (n - (k - 1) * (k - 1))


@numba.njit(cache=True)
def _accumulate(is_write, nbytes, buf, dist, dist_b, served, table, hist, served_reads, units):
    """Counters of one chunk; `units[0]` gains the sqrt-distance units of its finite reads
    (bytes D+1..D+nbytes at byte depth D), `units[1]` is set if a depth passed 2^53."""
    for i in range(len(is_write)):
        row = buf[i] + 1  # row 0: accesses outside every buffer
        if is_write[i]:
            table[row, WRITES] += 1
            table[row, WRITE_BYTES] += nbytes[i]
            continue
        table[row, READS] += 1
        table[row, READ_BYTES] += nbytes[i]
        served_reads[row, served[i]] += 1
        d = dist[i]
        if d < 0:
            table[row, COLD_READS] += 1
            table[row, COLD_READ_BYTES] += nbytes[i]
            continue
        table[row, FINITE] += 1
        table[row, SUM_D] += d
        table[row, SUM_DB] += dist_b[i]
        table[row, MIN_D] = min(table[row, MIN_D], d)
        table[row, MAX_D] = max(table[row, MAX_D], d)
        hist[row, _bin(d)] += 1
        top = dist_b[i] + nbytes[i]
        if top > MAX_DEPTH_BYTES:
            units[1] = 1
        c = _ceil_sqrt(dist_b[i] + 1)
        if top <= c * c:        # every byte of the read at the same ceil(sqrt): the common case
            units[0] += nbytes[i] * c
        else:
            units[0] += _ceil_sqrt_prefix(top) - _ceil_sqrt_prefix(dist_b[i])


class ReuseAccumulator:
    """Counters over a stream of chunks; `result()` turns them into a ReuseStats."""

    def __init__(self, buffer_names: list[str], n_levels: int):
        self.names = ["(unmapped)"] + list(buffer_names)
        n = len(self.names)
        self.table = np.zeros((n, N_COLS), dtype=np.int64)
        self.table[:, MIN_D] = np.iinfo(np.int64).max
        self.hist = np.zeros((n, N_BINS), dtype=np.int64)
        self.served_reads = np.zeros((n, max(n_levels, 1)), dtype=np.int64)
        self.units = np.zeros(2, dtype=np.int64)   # sqrt-distance units, overflow flag

    @property
    def distance_units(self) -> int:
        """sum over finite reads of ceil(sqrt(j)) for the bytes j = D+1..D+nbytes at depth D."""
        if self.units[1]:
            raise SimError("a read sits deeper than 2^53 bytes: the sqrt-distance sum would not "
                           "be exact", "simulate")
        return int(self.units[0])

    def add(self, chunk, buffer_ids, dist, dist_bytes, served) -> None:
        _accumulate(chunk.is_write, chunk.nbytes, buffer_ids, dist, dist_bytes, served,
                    self.table, self.hist, self.served_reads, self.units)

    def add_counts(self, other: "ReuseAccumulator", times: int = 1) -> None:
        """Add `times` copies of another accumulator's counts (one step's, accounted `times`
        times); the smallest and largest distances are not multiplied."""
        sums = [c for c in range(N_COLS) if c not in (MIN_D, MAX_D)]
        self.table[:, sums] += times * other.table[:, sums]
        self.table[:, MIN_D] = np.minimum(self.table[:, MIN_D], other.table[:, MIN_D])
        self.table[:, MAX_D] = np.maximum(self.table[:, MAX_D], other.table[:, MAX_D])
        self.hist += times * other.hist
        self.served_reads += times * other.served_reads
        self.units[0] += times * other.units[0]
        self.units[1] |= other.units[1]

    def result(self, level_names: list[str], buffer_bytes: dict[str, int]) -> "ReuseStats":
        rows = [r for r in range(len(self.names)) if r > 0 or self.table[0, :2].any()]
        buffers = tuple(_buffer_row(self, r, level_names, buffer_bytes) for r in rows)
        total = self.table.sum(axis=0)
        return ReuseStats(
            reads=int(total[READS]), writes=int(total[WRITES]),
            read_bytes=int(total[READ_BYTES]), write_bytes=int(total[WRITE_BYTES]),
            cold_reads=int(total[COLD_READS]), cold_read_bytes=int(total[COLD_READ_BYTES]),
            finite_reads=int(total[FINITE]),
            ard=_mean(total[SUM_D], total[FINITE]), ard_bytes=_mean(total[SUM_DB], total[FINITE]),
            histogram=tuple(int(x) for x in _trim(self.hist.sum(axis=0))),
            buffers=buffers)


def _mean(s, n) -> float:
    return float(s) / float(n) if n else 0.0


def _trim(hist: np.ndarray) -> np.ndarray:
    nz = np.nonzero(hist)[0]
    return hist[: nz[-1] + 1] if len(nz) else hist[:0]


def _buffer_row(acc: ReuseAccumulator, r: int, level_names, buffer_bytes) -> "BufferReuse":
    t = acc.table[r]
    served = acc.served_reads[r]
    finite = int(t[FINITE])
    return BufferReuse(
        name=acc.names[r], nbytes=int(buffer_bytes.get(acc.names[r], 0)),
        reads=int(t[READS]), writes=int(t[WRITES]), cold_reads=int(t[COLD_READS]),
        ard=_mean(t[SUM_D], finite), ard_bytes=_mean(t[SUM_DB], finite),
        min=int(t[MIN_D]) if finite else None, max=int(t[MAX_D]) if finite else None,
        served_by=level_names[int(np.argmax(served))] if served.any() and level_names else None,
        reads_by_level={level_names[i]: int(c) for i, c in enumerate(served) if c}
        if level_names else {})


@dataclass(frozen=True)
class BufferReuse:
    name: str
    nbytes: int
    reads: int
    writes: int
    cold_reads: int
    ard: float
    ard_bytes: float
    min: int | None
    max: int | None
    served_by: str | None  # the level that serves most of its reads
    reads_by_level: dict

    def to_dict(self) -> dict:
        return {"name": self.name, "bytes": self.nbytes, "reads": self.reads,
                "writes": self.writes, "cold_reads": self.cold_reads, "ard": self.ard,
                "ard_bytes": self.ard_bytes, "min_distance": self.min,
                "max_distance": self.max, "served_by": self.served_by,
                "reads_by_level": dict(self.reads_by_level)}


@dataclass(frozen=True)
class ReuseStats:
    reads: int
    writes: int
    read_bytes: int
    write_bytes: int
    cold_reads: int
    cold_read_bytes: int
    finite_reads: int
    ard: float        # mean element distance over finite reads
    ard_bytes: float  # mean byte distance over finite reads
    histogram: tuple[int, ...]  # log2 bins of element distance, finite reads
    buffers: tuple[BufferReuse, ...]

    def cdf(self) -> list[tuple[int, float]]:
        """(upper bound of bin, fraction of finite reads with distance below it)."""
        counts = np.cumsum(self.histogram)
        n = counts[-1] if len(counts) else 0
        return [(1 << k, float(c) / n) for k, c in enumerate(counts)] if n else []

    def to_dict(self) -> dict:
        return {"ard": self.ard, "ard_bytes": self.ard_bytes, "cold_reads": self.cold_reads,
                "finite_reads": self.finite_reads,
                "histogram": {"bins": "bin 0: distance 0; bin k: [2^(k-1), 2^k)",
                              "counts": list(self.histogram)},
                "cdf": [{"distance_below": b, "fraction": f} for b, f in self.cdf()]}
