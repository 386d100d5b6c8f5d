"""The Sutro group's distance cost models, computed from one trace: ByteDMD and the address cost.

This module owns (reference: cost-models.md, sections 3 and 4):

- `ceil_sqrt_sum(lo, hi)`: the exact sum of ceil(sqrt(j)) over j = lo..hi, vectorized. Both
  models price a byte at depth or address j by ceil(sqrt(j)), the wire length to the j-th cell
  of a half-diamond grid around the processor.
- `bytedmd(trace, ...)`: ByteDMD, the LRU stack of *live* values priced per read.
- `address_cost(trace, ...)`: the simplified Dally cost, priced by each read's fixed address.

Costs are unitless wire lengths (Manhattan distance in cells), exact int64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numba as nb
import numpy as np

from .cells import AddressCells
from .errors import SimError
from .trace import Trace

MAX_SQRT_ARG = 1 << 53
MIN_STACK_CAPACITY = 1024


# ----------------------------------------------------------------------------- ceil(sqrt) sums

def _isqrt(n: np.ndarray) -> np.ndarray:
    """floor(sqrt(n)) exactly for int64 0 <= n <= 2^53: float sqrt, then integer corrections."""
    r = np.sqrt(n.astype(np.float64)).astype(np.int64)
    for _ in range(2):
        r -= (r * r > n)
        r += ((r + 1) * (r + 1) <= n)
    return r


def _ceil_sqrt(n: np.ndarray) -> np.ndarray:
    r = _isqrt(n)
    return r + (r * r < n)


def _sum_odd_squares(j: np.ndarray) -> np.ndarray:
    """sum_{m=1..j} m(2m-1) = j(j+1)(4j-1)/6, dividing the factors first so the product may wrap
    around int64 and still give the right difference of two such sums."""
    a, b, c = j.copy(), j + 1, 4 * j - 1
    a_even = a % 2 == 0
    a = np.where(a_even, a // 2, a)
    b = np.where(a_even, b, b // 2)
    a3 = a % 3 == 0
    b3 = ~a3 & (b % 3 == 0)
    c3 = ~a3 & ~b3
    a = np.where(a3, a // 3, a)
    b = np.where(b3, b // 3, b)
    c = np.where(c3, c // 3, c)
    return a * b * c


def _ceil_sqrt_prefix(n: np.ndarray) -> np.ndarray:
    """S(n) = sum_{j=1..n} ceil(sqrt(j)) = sum_{m<k} m(2m-1) + k(n-(k-1)^2), k = ceil(sqrt(n))."""
    k = _ceil_sqrt(n)
    return _sum_odd_squares(k - 1) + k * (n - (k - 1) * (k - 1))


def ceil_sqrt_sum(lo, hi) -> np.ndarray:
    """Sum of ceil(sqrt(j)) for j = lo..hi inclusive, element-wise over int64 arrays.

    Needs 0 <= lo, lo - 1 <= hi <= 2^53 (hi = lo - 1 is the empty sum, 0). Exact whenever the
    result fits in int64: intermediate prefix sums may wrap, their difference does not.
    """
    lo64 = np.atleast_1d(np.asarray(lo, dtype=np.int64))
    hi64 = np.atleast_1d(np.asarray(hi, dtype=np.int64))
    lo64, hi64 = np.broadcast_arrays(lo64, hi64)
    _check_range(lo64, hi64)
    with np.errstate(over="ignore"):
        out = _ceil_sqrt_prefix(np.maximum(hi64, 0)) - _ceil_sqrt_prefix(np.maximum(lo64 - 1, 0))
    return out.reshape(np.broadcast(np.asarray(lo), np.asarray(hi)).shape)


def _check_range(lo: np.ndarray, hi: np.ndarray) -> None:
    if lo.size == 0:
        return
    if lo.min() < 0:
        raise SimError(f"ceil_sqrt_sum needs lo >= 0, got {lo.min()}", "ceil_sqrt_sum")
    if (hi < lo - 1).any():
        i = int(np.flatnonzero(hi < lo - 1)[0])
        raise SimError(f"ceil_sqrt_sum needs hi >= lo - 1, got lo {lo.flat[i]}, hi {hi.flat[i]}",
                       "ceil_sqrt_sum")
    if hi.max() > MAX_SQRT_ARG:
        raise SimError(f"ceil_sqrt_sum needs hi <= 2^53, got {hi.max()}", "ceil_sqrt_sum")


# ----------------------------------------------------------------------------- gathering a trace

def _gather(trace: Trace) -> dict[str, np.ndarray]:
    """The whole trace as columns (ByteDMD's liveness needs the future, so it cannot stream)."""
    parts: dict[str, list] = {"addr": [], "nbytes": [], "is_write": [], "buffer": [], "instr": []}
    for i, chunk in enumerate(trace):
        if not len(chunk):
            continue
        if chunk.instr is None:
            raise SimError(f"ByteDMD needs the 'instr' column (which accesses form one "
                           f"instruction); chunk {i} has none", trace.where)
        parts["addr"].append(chunk.addr)
        parts["nbytes"].append(chunk.nbytes.astype(np.int64))
        parts["is_write"].append(chunk.is_write)
        parts["buffer"].append(trace.buffer_ids(chunk))
        parts["instr"].append(chunk.instr)
    return {k: np.concatenate(v) for k, v in parts.items() if v}


def _buffer_index(trace: Trace, names: Sequence[str], what: str) -> np.ndarray:
    """Buffer-table rows of `names`; an unknown name is a SimError."""
    table = {b.name: i for i, b in enumerate(trace.buffers)}
    missing = [n for n in names if n not in table]
    if missing:
        raise SimError(f"{what}: no buffer named '{missing[0]}' (buffers: "
                       f"{', '.join(table) or 'none'})", trace.where)
    return np.array([table[n] for n in names], dtype=np.int64)


# ----------------------------------------------------------------------------- ByteDMD

@dataclass(frozen=True)
class ByteDMDResult:
    """ByteDMD of one trace. `read_depths[i]` is the depth (in values, 1 = top) of the i-th read
    in trace order; `cost_by_buffer` attributes each read's cost to the buffer it reads."""

    cost: int
    reads: int
    instructions: int
    read_depths: np.ndarray = field(compare=False, repr=False)
    cost_by_buffer: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON contract; the per-read depths are summarized (a trace has millions of them)."""
        d = self.read_depths
        return {"cost": self.cost, "reads": self.reads, "instructions": self.instructions,
                "mean_read_depth_values": float(d.mean()) if len(d) else 0.0,
                "max_read_depth_values": int(d.max()) if len(d) else 0,
                "cost_by_buffer": dict(self.cost_by_buffer)}


def bytedmd(trace: Trace, args: Sequence[str] | None = None,
            outputs: Sequence[str] | None = None) -> ByteDMDResult:
    """ByteDMD (cost-models.md section 3): each read costs the ceil(sqrt) wire length of its value's
    bytes at its depth in an LRU stack of live values.

    - A value is one element (address of its first byte) between writes; a write creates a new
      value, whose size is that write's nbytes (an argument's: its first read's).
    - An instruction is all accesses with one `instr` id; they must be consecutive in the trace.
      Its reads are priced at their depths before it (a repeated operand twice, at the same depth),
      then move to the top in read order, then dead values are removed, then the values it writes
      are pushed in write order. Within an instruction every read happens before every write.
    - A value dies at its last read. A written value that is never read and is not an output is
      dead at birth: it is never pushed, so it never deepens the stack (ByteDMD's "unused results
      are free" reading of the rule that dead values are removed).
    - Arguments are the elements whose first access is a read; they are on the stack before the
      first instruction, pushed buffer by buffer in reverse `args` order, each buffer's elements in
      address order, so the first argument's last element is on top. `args` defaults to the
      buffer-table order of the buffers holding such elements.
    - `outputs`: buffers whose final values stay live to the end.
    - With b bytes per value and D bytes of values above it, a read costs
      ceil_sqrt_sum(D + 1, D + b); with equal sizes that is bytes (d-1)b+1 .. db at depth d.
    """
    cols = _gather(trace)
    if not cols:
        return ByteDMDResult(0, 0, 0, np.zeros(0, np.int64), {})
    starts = _instruction_starts(cols["instr"], trace.where)
    cols = _reads_before_writes(cols, starts)
    addrs, first, elem = np.unique(cols["addr"], return_index=True, return_inverse=True)
    elem = elem.astype(np.int64)
    init = _initial_stack(trace, cols, first, args)
    keep = _output_elements(trace, cols, elem, len(addrs), outputs or ())
    last_read, born_live = _liveness(elem, cols["is_write"], keep)
    depth, above, size = _stack_depths(elem, cols["nbytes"], cols["is_write"], starts, last_read,
                                       born_live, init, len(addrs), MIN_STACK_CAPACITY)
    reads = ~cols["is_write"]
    if (depth[reads] < 1).any():
        raise RuntimeError("bytedmd: a read found no live value (bug in liveness)")
    costs = ceil_sqrt_sum(above[reads] + 1, above[reads] + size[reads])
    return ByteDMDResult(int(costs.sum()), int(reads.sum()), len(starts) - 1, depth[reads],
                         _cost_by_buffer(trace, cols["buffer"][reads], costs))


def _instruction_starts(instr: np.ndarray, where: str) -> np.ndarray:
    """Start index of each instruction (a run of equal ids), plus the end; ids must be >= 0 and
    an id may not come back after another instruction."""
    if instr.min() < 0:
        i = int(np.flatnonzero(instr < 0)[0])
        raise SimError(f"access {i} has no instruction id (instr {instr[i]}); ByteDMD needs one "
                       f"on every access", where)
    starts = np.flatnonzero(np.concatenate(([True], instr[1:] != instr[:-1])))
    ids, first = np.unique(instr[starts], return_index=True)
    if len(ids) < len(starts):
        dup = np.setdiff1d(np.arange(len(starts)), first)[0]
        raise SimError(f"instruction {instr[starts[dup]]} resumes at access {starts[dup]} after "
                       f"other instructions; an instruction's accesses must be consecutive", where)
    return np.append(starts, len(instr)).astype(np.int64)


def _reads_before_writes(cols: dict, starts: np.ndarray) -> dict:
    """Reorder each instruction's accesses, reads first, each kind keeping its order."""
    w = cols["is_write"]
    write_then_read = w[:-1] & ~w[1:]
    write_then_read[starts[1:-1] - 1] = False
    if not write_then_read.any():
        return cols
    instr_no = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    order = np.argsort(instr_no * 2 + w, kind="stable")
    return {k: v[order] for k, v in cols.items()}


def _initial_stack(trace: Trace, cols: dict, first: np.ndarray,
                   args: Sequence[str] | None) -> np.ndarray:
    """Access index of the first read of each argument element, bottom of the stack first.
    `first[e]`: index of element e's first access."""
    first = first[~cols["is_write"][first]]
    buf = cols["buffer"][first]
    if (buf < 0).any():
        a = cols["addr"][first[buf < 0][0]]
        raise SimError(f"address {a} is read before it is written but lies in no buffer, so it "
                       f"cannot be an argument", trace.where)
    arg_rows = np.unique(buf) if args is None else _buffer_index(trace, args, "bytedmd args")
    rank = np.full(len(trace.buffers), -1, dtype=np.int64)
    rank[arg_rows] = np.arange(len(arg_rows))
    if (rank[buf] < 0).any():
        name = trace.buffers[buf[rank[buf] < 0][0]].name
        raise SimError(f"buffer '{name}' is read before it is written, so it must be one of the "
                       f"args ({', '.join(args)})", trace.where)
    order = np.lexsort((cols["addr"][first], -rank[buf]))
    return np.ascontiguousarray(first[order])


def _output_elements(trace: Trace, cols: dict, elem: np.ndarray, n_elems: int,
                     outputs: Sequence[str]) -> np.ndarray:
    """Per element: does it belong to an output buffer (its final value stays live)?"""
    rows = _buffer_index(trace, outputs, "bytedmd outputs")
    keep = np.zeros(n_elems, dtype=np.bool_)
    keep[elem[np.isin(cols["buffer"], rows)]] = True
    return keep


@nb.njit(cache=True)
def _liveness(elem, is_write, keep):
    """Backward pass: is each read the last read of its value; is each written value ever read
    (or kept as an output)? `pending[e]`: the value of e at this point has a later read."""
    n = len(elem)
    pending = keep.copy()
    last_read = np.zeros(n, dtype=np.bool_)
    born_live = np.zeros(n, dtype=np.bool_)
    for i in range(n - 1, -1, -1):
        e = elem[i]
        if is_write[i]:
            born_live[i] = pending[e]
            pending[e] = False
        else:
            last_read[i] = not pending[e]
            pending[e] = True
    return last_read, born_live


# ----------------------------------------------------------------------------- the live stack

@nb.njit(cache=True)
def _fw_add(tree, i, v):
    i += 1
    while i < len(tree):
        tree[i] += v
        i += i & -i


@nb.njit(cache=True)
def _fw_prefix(tree, i):
    """Sum over slots 0..i."""
    i += 1
    s = 0
    while i > 0:
        s += tree[i]
        i -= i & -i
    return s


@nb.njit(cache=True)
def _fw_build(values):
    tree = np.zeros(len(values) + 1, dtype=np.int64)
    tree[1:] = values
    for i in range(1, len(tree)):
        j = i + (i & -i)
        if j < len(tree):
            tree[j] += tree[i]
    return tree


@nb.njit(cache=True)
def _compact(elem_at, top, pos_of, size_of, live, min_cap):
    """Renumber the live values 0..live-1 (same order) into fresh arrays with room to grow."""
    cap = max(min_cap, 2 * live + 2)
    new_at = np.full(cap, -1, dtype=np.int64)
    counts = np.zeros(cap, dtype=np.int64)
    nbytes = np.zeros(cap, dtype=np.int64)
    k = 0
    for p in range(top):
        e = elem_at[p]
        if e >= 0:
            new_at[k] = e
            pos_of[e] = k
            counts[k] = 1
            nbytes[k] = size_of[e]
            k += 1
    return new_at, _fw_build(counts), _fw_build(nbytes), k


@nb.njit(cache=True)
def _push(e, elem_at, cnt, byt, top, pos_of, size_of, live, min_cap):
    """Put e on top (above every position used so far), compacting when positions run out."""
    if top == len(elem_at):
        elem_at, cnt, byt, top = _compact(elem_at, top, pos_of, size_of, live, min_cap)
    elem_at[top] = e
    pos_of[e] = top
    _fw_add(cnt, top, 1)
    _fw_add(byt, top, size_of[e])
    return elem_at, cnt, byt, top + 1


@nb.njit(cache=True)
def _remove(e, elem_at, cnt, byt, pos_of, size_of):
    p = pos_of[e]
    elem_at[p] = -1
    pos_of[e] = -1
    _fw_add(cnt, p, -1)
    _fw_add(byt, p, -size_of[e])


@nb.njit(cache=True)
def _stack_depths(elem, nbytes, is_write, starts, last_read, born_live, init, n_elems, min_cap):
    """Per access (reads only): depth in values, bytes of the values above, and the value's size.
    Positions only grow (top = newest); a Fenwick tree over positions counts values and bytes
    below a position, so a depth is O(log live). Depth 0 marks a read with no live value (a bug)."""
    n = len(elem)
    depth = np.zeros(n, dtype=np.int64)
    above = np.zeros(n, dtype=np.int64)
    vsize = np.zeros(n, dtype=np.int64)
    pos_of = np.full(n_elems, -1, dtype=np.int64)
    size_of = np.zeros(n_elems, dtype=np.int64)
    elem_at = np.full(max(min_cap, 2 * len(init) + 2), -1, dtype=np.int64)
    cnt = np.zeros(len(elem_at) + 1, dtype=np.int64)
    byt = np.zeros(len(elem_at) + 1, dtype=np.int64)
    top, live, live_bytes = 0, 0, 0
    for i in init:
        size_of[elem[i]] = nbytes[i]
        elem_at, cnt, byt, top = _push(elem[i], elem_at, cnt, byt, top, pos_of, size_of, live,
                                       min_cap)
        live += 1
        live_bytes += nbytes[i]
    for s in range(len(starts) - 1):
        a, b = starts[s], starts[s + 1]
        r = a
        while r < b and not is_write[r]:
            p = pos_of[elem[r]]
            if p < 0:
                return depth, above, vsize
            depth[r] = live - _fw_prefix(cnt, p) + 1
            above[r] = live_bytes - _fw_prefix(byt, p)
            vsize[r] = size_of[elem[r]]
            r += 1
        for i in range(a, r):
            _remove(elem[i], elem_at, cnt, byt, pos_of, size_of)
            elem_at, cnt, byt, top = _push(elem[i], elem_at, cnt, byt, top, pos_of, size_of,
                                           live - 1, min_cap)
        for i in range(a, r):
            if last_read[i]:
                live -= 1
                live_bytes -= size_of[elem[i]]
                _remove(elem[i], elem_at, cnt, byt, pos_of, size_of)
        for i in range(r, b):
            if not born_live[i]:
                continue
            e = elem[i]
            if pos_of[e] >= 0:
                live -= 1
                live_bytes -= size_of[e]
                _remove(e, elem_at, cnt, byt, pos_of, size_of)
            size_of[e] = nbytes[i]
            elem_at, cnt, byt, top = _push(e, elem_at, cnt, byt, top, pos_of, size_of, live,
                                           min_cap)
            live += 1
            live_bytes += nbytes[i]
    return depth, above, vsize


def _cost_by_buffer(trace: Trace, buffer: np.ndarray, costs: np.ndarray) -> dict[str, int]:
    """Sum of costs per buffer name, in buffer-table order; accesses in no buffer under '?'."""
    totals = np.zeros(len(trace.buffers) + 1, dtype=np.int64)
    np.add.at(totals, np.where(buffer < 0, len(trace.buffers), buffer), costs)
    names = [b.name for b in trace.buffers] + ["?"]
    return {name: int(t) for name, t, used in zip(names, totals, _used(buffer, len(names)))
            if used}


def _used(buffer: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(np.where(buffer < 0, n - 1, buffer), minlength=n) > 0


# ----------------------------------------------------------------------------- address cost

@dataclass(frozen=True)
class AddressCostResult:
    """Simplified Dally address cost: `cost` = `read_cost` (trace reads) + `output_cost` (each
    output element read once at the end). `by_distance`: (distances, how many reads at each),
    ascending, only the distances d = ceil(sqrt(cell)) that occur, exit reads included.
    `cells`: how cells were numbered."""

    cost: int
    read_cost: int
    output_cost: int
    reads: int
    cost_by_buffer: Mapping[str, int] = field(default_factory=dict)
    output_reads: int = 0
    by_distance: tuple = field(default_factory=lambda: (np.zeros(0, np.int64),) * 2,
                               compare=False, repr=False)
    cells: str = "address"
    cost_by_kernel: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"cost": self.cost, "read_cost": self.read_cost, "output_cost": self.output_cost,
                "reads": self.reads, "output_reads": self.output_reads, "cells": self.cells,
                "reads_by_distance": {int(d): int(n) for d, n in zip(*self.by_distance)},
                "cost_by_buffer": dict(self.cost_by_buffer),
                "read_cost_by_kernel": dict(self.cost_by_kernel)}


def address_cost(trace: Trace, cell_bytes: int = 1, outputs: Sequence[str] | None = None,
                 origin: int = 0, cells=None) -> AddressCostResult:
    """Simplified Dally address cost (cost-models.md section 4), streamed chunk by chunk.

    Cells by address (the default): an access at byte address `addr` uses cell a = (addr -
    origin) // cell_bytes (its first byte's cell) and, if a read, costs ceil(sqrt(a)); writes are
    free. `origin` is the address of cell 0, the processor itself: a cell <= 0 is a SimError.
    With the defaults, a trace built with TraceBuilder(align=1) over 1-byte elements has element
    index = reference address; for a trace whose data starts at byte 0, pass origin=-cell_bytes
    so byte 0 is cell 1.

    `cells`, when given, is another numbering (simulator/cells.py: `cell_map(trace, "dense")`
    makes every buffer element one cell, so the padding between buffers takes none); then
    cell_bytes and origin are not used.

    Every element of each `outputs` buffer is read once at the end (a name given twice, twice).
    The trace reads' cost is also summed per buffer and per kernel (exit reads: no kernel).
    """
    if cell_bytes <= 0:
        raise SimError(f"cell_bytes must be positive, got {cell_bytes}", "address_cost")
    cell_of = cells or AddressCells(cell_bytes, origin, trace.where)
    totals = np.zeros(len(trace.buffers) + 1, dtype=np.int64)
    used = np.zeros(len(trace.buffers) + 1, dtype=np.bool_)
    hist = (np.zeros(0, np.int64),) * 2
    by_kernel = np.zeros(len(trace.kernels) + 1, dtype=np.int64)     # the last: no kernel
    reads, seen = 0, 0
    for chunk in trace:
        rd = ~chunk.is_write
        dist = _ceil_sqrt(cell_of(chunk.addr[rd], seen, rd))
        buf = trace.buffer_ids(chunk)[rd]
        buf = np.where(buf < 0, len(trace.buffers), buf)
        np.add.at(totals, buf, dist)
        np.add.at(by_kernel, chunk.kernel[rd], dist)
        used[buf] = True
        hist = _add_counts(hist, dist)
        reads += int(rd.sum())
        seen += len(chunk)
    read_cost = int(totals.sum())
    out_dist = _output_distances(trace, outputs or (), cell_of, totals, used)
    hist = _add_counts(hist, out_dist)
    names = [b.name for b in trace.buffers] + ["?"]
    by_buffer = {n: int(t) for n, t, u in zip(names, totals, used) if u}
    output_cost = int(out_dist.sum())
    kernels = {k.name: 0 for k in trace.kernels}
    for k, v in zip(list(trace.kernels) + [None], by_kernel.tolist()):
        name = "?" if k is None else k.name
        if v:
            kernels[name] = kernels.get(name, 0) + v
    return AddressCostResult(read_cost + output_cost, read_cost, output_cost, reads, by_buffer,
                             len(out_dist), hist, cell_of.label,
                             {n: v for n, v in kernels.items() if v})


def _add_counts(hist: tuple, dist: np.ndarray) -> tuple:
    """(distances, counts) with `dist`'s reads added: sparse, since a distance may be 2^31."""
    d, n = np.unique(np.concatenate([hist[0], dist]), return_inverse=True)
    counts = np.bincount(n, np.concatenate([hist[1], np.ones(len(dist), np.int64)]),
                         minlength=len(d))
    return d, counts.astype(np.int64)


def _output_distances(trace: Trace, outputs: Sequence[str], cell_of, totals: np.ndarray,
                      used: np.ndarray) -> np.ndarray:
    """The distance of each exit read: every element of each output buffer once, in order (a
    buffer named k times, k times); their costs are added into totals/used per buffer."""
    rows = _buffer_index(trace, outputs, "address_cost outputs")
    distinct, first, times = np.unique(rows, return_index=True, return_counts=True)
    per_row = {}
    for row, k in zip(distinct.tolist(), times.tolist()):
        b = trace.buffers[row]
        addr = b.base + np.arange(b.nbytes // b.elem_bytes, dtype=np.int64) * b.elem_bytes
        d = _ceil_sqrt(cell_of(addr))
        totals[row] += int(d.sum()) * k
        used[row] = True
        per_row[row] = d
    parts = [per_row[r] for r in rows.tolist()]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
