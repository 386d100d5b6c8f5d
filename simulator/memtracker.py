"""The seed's buffer-level distance measure ("memtracker", cost-models.md section 2).

This module owns the buffer-level event form of a run (`Event`: read or write of a whole buffer),
its text form (`parse_events`), its derivation from an element trace (`events_from_trace`) and
the measure itself (`memtracker`), which reproduces the seed's published ARD tables.

The measure: a clock counts elements touched (reads and writes, repeats included); a write
remembers the clock for its buffer; a read's distance is the clock minus its buffer's last
*write*. It is not an LRU stack distance: the seed's published numbers use it, so we keep it.
Distances are in elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from .errors import SimError
from .trace import Trace

Event = tuple[str, str, int]
"""(kind "R" or "W", buffer name, size in elements)."""


def parse_events(text: str) -> list[Event]:
    """Parse the reference's form, e.g. "W W1 3000, W b1 1000, R x 3"."""
    items = text.split(",")
    if items and not items[-1].strip():
        items = items[:-1]
    return [_parse_event(i, item) for i, item in enumerate(items)]


def _parse_event(i: int, item: str) -> Event:
    parts = item.split()
    if len(parts) != 3 or parts[0] not in ("R", "W") or not parts[2].isdigit():
        raise SimError(f"event {i}: expected 'R|W buffer size', got '{item.strip()}'", "events")
    if int(parts[2]) <= 0:
        raise SimError(f"event {i}: size must be positive, got {parts[2]}", "events")
    return parts[0], parts[1], int(parts[2])


@dataclass(frozen=True)
class BufferDistances:
    """The distances (in elements) of every read of one buffer, in order."""

    read_distances: tuple[int, ...]

    @property
    def mean(self) -> float:
        return sum(self.read_distances) / len(self.read_distances)

    def to_dict(self) -> dict:
        return {"read_distances_elements": list(self.read_distances),
                "mean_distance_elements": self.mean}


@dataclass(frozen=True)
class MemtrackerResult:
    """The seed's table row: ARDs (in elements), counts, and per read buffer its distances."""

    per_read_ard: float
    per_element_ard: float
    elements_read: int
    elements_touched: int
    reads: int
    writes: int
    buffers: Mapping[str, BufferDistances] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"per_read_ard_elements": self.per_read_ard,
                "per_element_ard_elements": self.per_element_ard,
                "elements_read": self.elements_read, "elements_touched": self.elements_touched,
                "reads": self.reads, "writes": self.writes,
                "buffers": {name: b.to_dict() for name, b in self.buffers.items()}}


def memtracker(events: Iterable[Event]) -> MemtrackerResult:
    """Run the seed's clock over buffer-level events. Reading a never-written buffer is an error.
    With no reads, both ARDs are 0.0."""
    clock, writes = 0, 0
    last_write: dict[str, int] = {}
    distances: dict[str, list[int]] = {}
    weighted, elements_read, n_reads = 0, 0, 0
    for i, (kind, buf, size) in enumerate(events):
        _check_event(i, kind, buf, size)
        if kind == "W":
            last_write[buf] = clock
            writes += 1
        else:
            if buf not in last_write:
                raise SimError(f"event {i} (R {buf} {size}) reads buffer '{buf}', which no "
                               f"earlier event writes", "memtracker")
            d = clock - last_write[buf]
            distances.setdefault(buf, []).append(d)
            weighted, elements_read, n_reads = weighted + size * d, elements_read + size, n_reads + 1
        clock += size
    total = sum(sum(v) for v in distances.values())
    return MemtrackerResult(
        per_read_ard=total / n_reads if n_reads else 0.0,
        per_element_ard=weighted / elements_read if elements_read else 0.0,
        elements_read=elements_read, elements_touched=clock, reads=n_reads, writes=writes,
        buffers={b: BufferDistances(tuple(d)) for b, d in distances.items()})


def _check_event(i: int, kind, buf, size) -> None:
    if kind not in ("R", "W"):
        raise SimError(f"event {i}: kind must be 'R' or 'W', got {kind!r}", "memtracker")
    if not isinstance(size, (int, np.integer)) or size <= 0:
        raise SimError(f"event {i} ({kind} {buf}): size must be a positive integer, got {size!r}",
                       "memtracker")


def events_from_trace(trace: Trace) -> list[Event]:
    """Buffer-level events of an element trace: each maximal run of consecutive accesses with the
    same (kernel, buffer, is_write) is one event of that many elements. Runs continue across chunk
    boundaries. An access in no buffer is a SimError."""
    runs: list[list] = []  # [kernel, buffer, is_write, count]
    seen = 0
    for chunk in trace:
        bid = trace.buffer_ids(chunk)
        _check_in_buffers(chunk.addr, bid, seen, trace.where)
        for run in _runs(chunk.kernel, bid, chunk.is_write):
            if runs and runs[-1][:3] == run[:3]:
                runs[-1][3] += run[3]
            else:
                runs.append(run)
        seen += len(chunk)
    return [("W" if w else "R", trace.buffers[b].name, n) for _, b, w, n in runs]


def _runs(kernel: np.ndarray, buffer: np.ndarray, is_write: np.ndarray) -> list[list]:
    """Maximal runs of equal (kernel, buffer, is_write), found with vectorized comparisons."""
    n = len(kernel)
    if n == 0:
        return []
    change = np.ones(n, dtype=np.bool_)
    change[1:] = ((kernel[1:] != kernel[:-1]) | (buffer[1:] != buffer[:-1])
                  | (is_write[1:] != is_write[:-1]))
    starts = np.flatnonzero(change)
    counts = np.diff(np.append(starts, n))
    return [[int(k), int(b), bool(w), int(c)] for k, b, w, c
            in zip(kernel[starts], buffer[starts], is_write[starts], counts)]


def _check_in_buffers(addr: np.ndarray, bid: np.ndarray, seen: int, where: str) -> None:
    if len(bid) and bid.min() < 0:
        i = int(np.argmin(bid))
        raise SimError(f"access {seen + i} at address {addr[i]} is in no buffer; buffer-level "
                       f"events need every access to name its buffer", where)


def with_inputs_written(events: list[Event], trace: Trace) -> list[Event]:
    """The seed writes its inputs (W1, b1, ..., x, y) before the first step; do the same for every
    buffer a trace reads before writing it: one whole-buffer write each, in buffer-table order."""
    written: set[str] = set()
    inputs: set[str] = set()
    for kind, buf, _ in events:
        if kind == "R" and buf not in written:
            inputs.add(buf)
        written.add(buf)
    prologue = [("W", b.name, b.nbytes // b.elem_bytes) for b in trace.buffers if b.name in inputs]
    return prologue + list(events)
