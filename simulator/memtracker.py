"""The seed's buffer-level distance measure ("memtracker", cost-models.md section 2).

This module owns the buffer-level event form of a run (`Event`: read or write of a whole buffer;
`EventTable`: the same as columns), its text form (`parse_events`), its derivation from an
element trace (`event_table`, `events_from_trace`: runs of accesses; `op_event_table`: one event
per buffer an op execution touches, the seed's own view) and the measure itself (`memtracker`),
which reproduces the seed's published ARD tables. On traces everything is columnar: a kernel that
interleaves two buffers makes one event per access, so no Python loop runs per event.

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


@dataclass(frozen=True, eq=False)
class EventTable:
    """Buffer-level events as columns: event i writes (or reads) size[i] elements of buffer
    names[buffer[i]]."""

    names: tuple[str, ...]
    is_write: np.ndarray
    buffer: np.ndarray
    size: np.ndarray

    def __len__(self) -> int:
        return len(self.size)

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> "EventTable":
        events = list(events)
        for i, (kind, buf, size) in enumerate(events):
            _check_event(i, kind, buf, size)
        names = tuple(dict.fromkeys(buf for _, buf, _ in events))
        index = {n: i for i, n in enumerate(names)}
        return cls(names, np.array([k == "W" for k, _, _ in events], dtype=np.bool_),
                   np.array([index[b] for _, b, _ in events], dtype=np.int64),
                   np.array([s for _, _, s in events], dtype=np.int64))

    def as_list(self) -> list[Event]:
        cols = zip(self.is_write.tolist(), self.buffer.tolist(), self.size.tolist())
        return [("W" if w else "R", self.names[b], n) for w, b, n in cols]


def memtracker(events: Iterable[Event] | EventTable) -> MemtrackerResult:
    """Run the seed's clock over buffer-level events. Reading a never-written buffer is an error.
    With no reads, both ARDs are 0.0."""
    t = events if isinstance(events, EventTable) else EventTable.from_events(events)
    n = len(t)
    clock = np.cumsum(t.size) - t.size                  # the clock when each event starts
    writer = _last_write(t.is_write, t.buffer)          # latest write event of its buffer
    reads = np.flatnonzero(~t.is_write)
    orphan = reads[writer[reads] < 0]
    if len(orphan):
        i = int(orphan[0])
        raise SimError(f"event {i} (R {t.names[t.buffer[i]]} {t.size[i]}) reads buffer "
                       f"'{t.names[t.buffer[i]]}', which no earlier event writes", "memtracker")
    dist = clock[reads] - clock[writer[reads]]
    size = t.size[reads]
    order = np.argsort(t.buffer[reads], kind="stable")  # reads grouped by buffer, in order
    groups = np.split(dist[order], np.flatnonzero(np.diff(t.buffer[reads][order])) + 1)
    first_use = np.unique(t.buffer[reads][order], return_index=True)[0]
    per_buffer = {t.names[b]: BufferDistances(tuple(g.tolist())) for b, g in zip(first_use, groups)
                  if len(g)}
    return MemtrackerResult(
        per_read_ard=float(dist.sum()) / len(reads) if len(reads) else 0.0,
        per_element_ard=float((size * dist).sum()) / size.sum() if len(reads) else 0.0,
        elements_read=int(size.sum()), elements_touched=int(t.size.sum()), reads=len(reads),
        writes=n - len(reads),
        buffers={name: per_buffer[name] for name in _in_order_of_first_read(t, reads)})


def _last_write(is_write: np.ndarray, buffer: np.ndarray) -> np.ndarray:
    """For each event, the index of the latest write to its buffer at or before it (-1: none).
    Events sorted by (buffer, index); a running maximum of write indices, offset per buffer so
    that no buffer sees another's writes."""
    n = len(buffer)
    order = np.lexsort((np.arange(n), buffer))
    key = buffer[order] * (n + 1) + np.where(is_write[order], order + 1, 0)
    latest = np.maximum.accumulate(key) - buffer[order] * (n + 1) - 1
    out = np.empty(n, dtype=np.int64)
    out[order] = latest
    return out


def _in_order_of_first_read(t: EventTable, reads: np.ndarray) -> list[str]:
    _, first = np.unique(t.buffer[reads], return_index=True)
    return [t.names[t.buffer[reads][i]] for i in np.sort(first)]


def _check_event(i: int, kind, buf, size) -> None:
    if kind not in ("R", "W"):
        raise SimError(f"event {i}: kind must be 'R' or 'W', got {kind!r}", "memtracker")
    if not isinstance(size, (int, np.integer)) or size <= 0:
        raise SimError(f"event {i} ({kind} {buf}): size must be a positive integer, got {size!r}",
                       "memtracker")


def event_table(trace: Trace) -> EventTable:
    """Buffer-level events of an element trace: each maximal run of consecutive accesses with the
    same (kernel, buffer, is_write) is one event of that many elements. Runs continue across chunk
    boundaries. An access in no buffer is a SimError."""
    parts, seen = [], 0
    for chunk in trace:
        bid = trace.buffer_ids(chunk)
        _check_in_buffers(chunk.addr, bid, seen, trace.where)
        parts.append(_runs(chunk.kernel, bid, chunk.is_write))
        seen += len(chunk)
    cols = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, np.int64)
            for i in range(4)]
    kernel, buffer, is_write, count = _merge_runs(*cols)
    return EventTable(tuple(b.name for b in trace.buffers), is_write.astype(np.bool_),
                      buffer.astype(np.int64), count)


def op_event_table(trace: Trace) -> EventTable:
    """The seed's op-level view of an element trace: each execution of a kernel (a maximal run of
    accesses with one kernel id, across chunk boundaries) reads each buffer it reads, then
    writes each buffer it writes, once, as many elements as it touches distinct elements of it;
    reads in the order of their first access, then writes likewise. This is how the seed's
    instrumented ops report (`R x 3, R W1 3000, R b1 1000, W h_pre 1000` for W1 @ x + b1), so a
    scheduled program's events compare with its published table. Holds the distinct
    (execution, buffer, address) rows of the whole trace in memory: for small runs."""
    rows, seen, last_kernel, occ0 = [], 0, None, 0
    for chunk in trace:
        bid = trace.buffer_ids(chunk)
        _check_in_buffers(chunk.addr, bid, seen, trace.where)
        k = chunk.kernel
        change = np.ones(len(k), dtype=np.int64)
        change[1:] = k[1:] != k[:-1]
        if len(k) and last_kernel is not None and k[0] == last_kernel:
            change[0] = 0               # the execution goes on from the previous chunk
        occ = occ0 + np.cumsum(change) - 1
        rows.append(np.stack([occ, chunk.is_write.astype(np.int64), bid.astype(np.int64),
                              chunk.addr, seen + np.arange(len(k))], axis=1))
        if len(k):
            occ0, last_kernel = int(occ[-1]) + 1, int(k[-1])
        seen += len(chunk)
    names = tuple(b.name for b in trace.buffers)
    if not rows or not sum(len(r) for r in rows):
        return EventTable(names, np.zeros(0, np.bool_), np.zeros(0, np.int64),
                          np.zeros(0, np.int64))
    a = np.concatenate(rows)
    # distinct (execution, direction, buffer, address), keeping each one's first access
    order = np.lexsort((a[:, 4], a[:, 3], a[:, 2], a[:, 1], a[:, 0]))
    a = a[order]
    new = np.ones(len(a), dtype=np.bool_)
    new[1:] = np.any(a[1:, :4] != a[:-1, :4], axis=1)
    a = a[new]
    # per (execution, direction, buffer): the count of distinct addresses and the first access
    key_new = np.ones(len(a), dtype=np.bool_)
    key_new[1:] = np.any(a[1:, :3] != a[:-1, :3], axis=1)
    starts = np.flatnonzero(key_new)
    size = np.diff(np.append(starts, len(a)))
    first = np.minimum.reduceat(a[:, 4], starts)
    occ, is_write, buffer = a[starts, 0], a[starts, 1], a[starts, 2]
    ev = np.lexsort((first, is_write, occ))   # per execution: reads, then writes, by first access
    return EventTable(names, is_write[ev].astype(np.bool_), buffer[ev], size[ev])


def events_from_trace(trace: Trace) -> list[Event]:
    """`event_table(trace)` as a list of (kind, buffer, size) tuples."""
    return event_table(trace).as_list()


def _runs(kernel: np.ndarray, buffer: np.ndarray, is_write: np.ndarray):
    """Maximal runs of equal (kernel, buffer, is_write): their keys and lengths, as columns."""
    n = len(kernel)
    change = np.ones(n, dtype=np.bool_)
    change[1:] = ((kernel[1:] != kernel[:-1]) | (buffer[1:] != buffer[:-1])
                  | (is_write[1:] != is_write[:-1]))
    starts = np.flatnonzero(change)
    counts = np.diff(np.append(starts, n))
    return (kernel[starts].astype(np.int64), buffer[starts].astype(np.int64),
            is_write[starts].astype(np.int64), counts.astype(np.int64))


def _merge_runs(kernel, buffer, is_write, count):
    """Join consecutive runs with equal keys (a run cut by a chunk boundary)."""
    if len(count) == 0:
        return kernel, buffer, is_write, count
    keep = np.ones(len(count), dtype=np.bool_)
    keep[1:] = (kernel[1:] != kernel[:-1]) | (buffer[1:] != buffer[:-1]) | \
        (is_write[1:] != is_write[:-1])
    starts = np.flatnonzero(keep)
    return kernel[starts], buffer[starts], is_write[starts], np.add.reduceat(count, starts)


def _check_in_buffers(addr: np.ndarray, bid: np.ndarray, seen: int, where: str) -> None:
    if len(bid) and bid.min() < 0:
        i = int(np.argmin(bid))
        raise SimError(f"access {seen + i} at address {addr[i]} is in no buffer; buffer-level "
                       f"events need every access to name its buffer", where)


def with_inputs_written(events: Iterable[Event] | EventTable, trace: Trace) -> EventTable:
    """The seed writes its inputs (W1, b1, ..., x, y) before the first step; do the same for every
    buffer a trace reads before writing it: one whole-buffer write each, in buffer-table order."""
    t = events if isinstance(events, EventTable) else EventTable.from_events(events)
    _, first = np.unique(t.buffer, return_index=True)
    read_first = {t.names[t.buffer[i]] for i in first if not t.is_write[i]}
    inputs = [b for b in trace.buffers if b.name in read_first]
    names = t.names + tuple(b.name for b in inputs if b.name not in t.names)
    index = {n: i for i, n in enumerate(names)}
    return EventTable(
        names, np.concatenate([np.ones(len(inputs), np.bool_), t.is_write]),
        np.concatenate([np.array([index[b.name] for b in inputs], np.int64), t.buffer]),
        np.concatenate([np.array([b.nbytes // b.elem_bytes for b in inputs], np.int64), t.size]))
