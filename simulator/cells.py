"""Numbering a trace's addresses as cells of the Dally grid, for the address cost (Model 1) and
the grid model (Model 2).

- By address (`AddressCells`): cell = (addr - origin) // cell_bytes. The address IR's traces
  declare this (cell a at byte a - 1: cell_bytes 1, origin -1), so a cell is its address.
- Dense (`DenseCells`): every buffer element is one cell, numbered 1, 2, ... in address order,
  whatever its size; the alignment padding between buffers takes no cell. The default for
  traces that declare nothing (a `.sir` program's trace lays buffers out 64-byte aligned).

`cell_map(trace, mode)` picks one: "auto" (the trace's declaration, else dense), "dense" or
"address" (the declaration, else cells of the smallest element size with the lowest buffer's
first element as cell 1).
"""

from __future__ import annotations

import numpy as np

from .errors import SimError
from .trace import Trace

MODES = ("auto", "dense", "address")


def cell_map(trace: Trace, mode: str = "auto"):
    """The cell numbering `mode` asks for (see the module docstring)."""
    if mode not in MODES:
        raise SimError(f"unknown cell numbering '{mode}' (known: {', '.join(MODES)})", "--cells")
    declared = trace.meta.get("address_cells")
    if mode == "dense" or (mode == "auto" and declared is None):
        return DenseCells(trace)
    if declared is not None:
        return AddressCells(declared["cell_bytes"], declared["origin"], trace.where)
    cell = min((b.elem_bytes for b in trace.buffers), default=1)
    origin = min((b.base for b in trace.buffers), default=0) - cell
    return AddressCells(cell, origin, trace.where)


class AddressCells:
    """cell = (addr - origin) // cell_bytes, which must be >= 1."""

    label = "address"

    def __init__(self, cell_bytes: int, origin: int, where: str):
        self.cell_bytes, self.origin, self.where = cell_bytes, origin, where

    def __call__(self, addr: np.ndarray, seen: int = 0, rows=None) -> np.ndarray:
        cells = (addr - self.origin) // self.cell_bytes
        if len(cells) and cells.min() <= 0:
            i = int(np.argmin(cells))
            at = seen + (int(np.flatnonzero(rows)[i]) if rows is not None else i)
            raise SimError(f"access {at} at address {addr[i]} is in cell {cells[i]}; cells "
                           f"start at 1 (cell = (addr - origin) // cell_bytes with origin "
                           f"{self.origin}, cell_bytes {self.cell_bytes})", self.where)
        return check_cells(cells, self.where)


class DenseCells:
    """Cell k is the k-th buffer element in address order. Buffers that overlap are merged into
    one segment of elements of their smallest size; an address must be the first byte of an
    element. Computed from the buffer table's segments, never one entry per element."""

    label = "dense"

    def __init__(self, trace: Trace):
        spans = sorted((b.base, b.base + b.nbytes, b.elem_bytes) for b in trace.buffers
                       if b.nbytes)
        segs: list[list[int]] = []
        for lo, hi, eb in spans:
            if segs and lo < segs[-1][1]:
                segs[-1][1] = max(segs[-1][1], hi)
                segs[-1][2] = min(segs[-1][2], eb)
            else:
                segs.append([lo, hi, eb])
        self.lo = np.array([s[0] for s in segs], np.int64)
        self.hi = np.array([s[1] for s in segs], np.int64)
        self.eb = np.array([s[2] for s in segs], np.int64)
        counts = (self.hi - self.lo) // self.eb
        self.first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.where = trace.where

    def __call__(self, addr: np.ndarray, seen: int = 0, rows=None) -> np.ndarray:
        seg = np.searchsorted(self.lo, addr, side="right") - 1
        s = np.maximum(seg, 0)
        ok = (seg >= 0) & (addr < self.hi[s]) if len(self.lo) else np.zeros(len(addr), bool)
        off = np.where(ok, addr - self.lo[s], 0) if len(self.lo) else addr * 0
        ok &= off % (self.eb[s] if len(self.lo) else 1) == 0
        if not ok.all():
            i = int(np.argmin(ok))
            at = seen + (int(np.flatnonzero(rows)[i]) if rows is not None else i)
            raise SimError(f"access {at} at address {addr[i]} is not the start of a buffer "
                           "element, so it has no dense cell (number cells by address instead)",
                           self.where)
        return check_cells(self.first[s] + off // self.eb[s] + 1, self.where)


MAX_CELL = 1 << 62
"""ceil(sqrt(cell)) is computed in int64; past 2^62 its squares would overflow."""


def check_cells(cells: np.ndarray, where: str) -> np.ndarray:
    if len(cells) and cells.max() > MAX_CELL:
        raise SimError(f"cell {int(cells.max()):,} is past the last cell the address models "
                       "price (2^62)", where)
    return cells
