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
        return cells


class DenseCells:
    """Cell k is the k-th buffer element in address order (elements shared by several buffers
    once); an address must be the first byte of an element."""

    label = "dense"

    def __init__(self, trace: Trace):
        parts = [b.base + np.arange(b.nbytes // b.elem_bytes, dtype=np.int64) * b.elem_bytes
                 for b in trace.buffers]
        self.starts = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        self.where = trace.where

    def __call__(self, addr: np.ndarray, seen: int = 0, rows=None) -> np.ndarray:
        pos = np.searchsorted(self.starts, addr)
        ok = pos < len(self.starts)
        ok[ok] = self.starts[pos[ok]] == addr[ok]
        if not ok.all():
            i = int(np.argmin(ok))
            at = seen + (int(np.flatnonzero(rows)[i]) if rows is not None else i)
            raise SimError(f"access {at} at address {addr[i]} is not the start of a buffer "
                           "element, so it has no dense cell (number cells by address instead)",
                           self.where)
        return pos.astype(np.int64) + 1
