"""A plain-Python reference cache hierarchy: the oracle for simulator.cache and cache_fused.

Written from the documented rules (the module docstring of simulator/cache.py, the CacheSim and
LevelStats docstrings, docs/simulator.md), not from the kernels, and built the way pycachesim is:
one object per level, whose `request` recurses into the level below, depth first. It keeps one
Python object per cached line and is slow on purpose; it is meant for a few thousand accesses.

The rules it implements:
- Write-back + write-allocate by default; a level may be write-through and/or non-allocating.
- A request touches every line of its level that [addr, addr + nbytes) overlaps, in order.
- A hit counts a hit; under LRU it makes the line the most recent (a store hit too, except in
  pycachesim_compat mode, where a store hit leaves the order alone). FIFO and random hits change
  nothing.
- A miss counts a miss. A load, or a store at a write-allocating level, sends a fill load of the
  whole line down, THEN picks a victim (the free way with the lowest number first) and, if the victim is
  dirty, sends a writeback store of the victim's line down. In compat mode a write-back,
  non-allocating store miss also takes a way, without a fill (pycachesim installs it dirty).
- A store to a present line of a write-back level makes it dirty, owned by the storing access's
  buffer. Any other store (write-through level, or line not present) is passed down: the bytes of
  the store inside that line; in compat mode the first part runs a full line's length from the
  store's start (pycachesim's `Cache__get_range_from_cl_id_and_range`), so it may overrun.
- Victims: LRU the least recent, FIFO the oldest fill, random way number `xorshift64 % ways`
  (drawn only when the set is full; same generator and seed as the simulator), OPT
  the line whose next use in this level's own input stream (per line) is farthest; lines never
  used again tie, and the tie goes to the lowest way number.
- Memory serves every request: it counts the memory lines each request touches as hits, and bytes.
- `writebacks` counts every store a level sends down (dirty victims and passed-down stores);
  `bytes_in` the fills' bytes, `bytes_out` the stores' bytes.
- `served[i]`: the deepest level that received a request made on behalf of access i (its own
  fills and passed-down stores, not writebacks of victims). `bytes_by_level_buffer[l][b]`: bytes
  of the requests level l received charged to buffer b (an access's own requests to its buffer,
  a writeback to the buffer of the last store into that line, -1 to the last column).

OPT needs the future of its level's input stream, which only the levels above shape: `simulate`
first runs the levels above each OPT level with a recorder in its place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NEVER = math.inf
MASK64 = (1 << 64) - 1
COUNTERS = ("read_hits", "read_misses", "write_hits", "write_misses", "read_bytes", "write_bytes",
            "evictions", "writebacks", "bytes_in", "bytes_out")


def lines_of(addr: int, nbytes: int, line_bytes: int) -> range:
    """The lines [addr, addr + nbytes) overlaps."""
    return range(addr // line_bytes, (addr + nbytes - 1) // line_bytes + 1)


class Xorshift64:
    """The random policy's generator: xorshift64 with shifts 13, 7, 17, one per level, seeded
    from the level's `seed` as simulator.cache does (`_LevelState.rng`)."""

    def __init__(self, seed: int):
        self.x = 0x9E3779B97F4A7C15 ^ ((seed * 0x2545F4914F6CDD1D + 1) & MASK64)

    def draw(self) -> int:
        x = self.x
        x ^= (x << 13) & MASK64
        x ^= x >> 7
        x ^= (x << 17) & MASK64
        self.x = x
        return x


@dataclass
class Line:
    tag: int
    dirty: bool = False
    owner: int = -1
    next_use: float = NEVER


@dataclass
class Book:
    """What every level writes to: served level per access, bytes per (level, buffer)."""

    served: list
    by_buffer: list

    def receive(self, level: int, nbytes: int, src, buf: int) -> None:
        self.by_buffer[level][buf] += nbytes      # buf -1 is the last column
        if src is not None:
            self.served[src] = max(self.served[src], level)


class Memory:
    """Main memory: every request hits."""

    def __init__(self, level, index: int, book: Book):
        self.line_bytes, self.index, self.book = level.line_bytes, index, book
        self.count = dict.fromkeys(COUNTERS, 0)

    def request(self, addr: int, nbytes: int, is_write: bool, src, buf: int) -> None:
        self.book.receive(self.index, nbytes, src, buf)
        kind = "write" if is_write else "read"
        self.count[kind + "_hits"] += len(lines_of(addr, nbytes, self.line_bytes))
        self.count[kind + "_bytes"] += nbytes


class Recorder:
    """Stands in for an OPT level to record the lines its input stream touches, in order."""

    def __init__(self, line_bytes: int):
        self.line_bytes, self.lines = line_bytes, []

    def request(self, addr: int, nbytes: int, is_write: bool, src, buf: int) -> None:
        self.lines.extend(lines_of(addr, nbytes, self.line_bytes))


def next_uses(lines: list) -> list:
    """For each position, the next position touching the same line (NEVER if none)."""
    out, seen = [NEVER] * len(lines), {}
    for pos in range(len(lines) - 1, -1, -1):
        out[pos] = seen.get(lines[pos], NEVER)
        seen[lines[pos]] = pos
    return out


class CacheLevel:
    """One cache level. `ways[s]` are set s's ways by number (None = free; a set fills from way 0 up); `order[s]` lists
    the occupied way numbers, most recent (LRU) or newest (FIFO) first."""

    def __init__(self, level, index: int, below, book: Book, compat: bool, future=None):
        self.lv, self.index, self.below, self.book, self.compat = level, index, below, book, compat
        self.L = level.line_bytes
        # the geometry from the config's own numbers (not Level.n_sets: that is under test too)
        n_lines = level.capacity_bytes // level.line_bytes
        self.assoc = n_lines if level.ways is None else level.ways
        self.n_sets = n_lines // self.assoc
        self.ways = [[None] * self.assoc for _ in range(self.n_sets)]
        self.order = [[] for _ in range(self.n_sets)]
        self.rng = Xorshift64(level.seed)
        self.future, self.pos = future, 0
        self.count = dict.fromkeys(COUNTERS, 0)

    def request(self, addr: int, nbytes: int, is_write: bool, src, buf: int) -> None:
        self.book.receive(self.index, nbytes, src, buf)
        self.count[("write" if is_write else "read") + "_bytes"] += nbytes
        for tag in lines_of(addr, nbytes, self.L):
            self.touch(tag, addr, nbytes, is_write, src, buf)

    def touch(self, tag, addr, nbytes, is_write, src, buf) -> None:
        s = tag % self.n_sets
        way = self.find(s, tag)
        next_use = self.consume_future(tag)
        kind = "write" if is_write else "read"
        if way is not None:
            self.count[kind + "_hits"] += 1
            if self.lv.policy == "lru" and not (self.compat and is_write):
                self.order[s].remove(way)
                self.order[s].insert(0, way)
        else:
            self.count[kind + "_misses"] += 1
            way = self.allocate(s, tag, is_write, src, buf)
        if way is not None:
            self.ways[s][way].next_use = next_use
        if is_write:
            self.store(s, way, tag, addr, nbytes, src, buf)

    def find(self, s: int, tag: int):
        for way, line in enumerate(self.ways[s]):
            if line is not None and line.tag == tag:
                return way
        return None

    def consume_future(self, tag: int) -> float:
        """OPT: the next use of this position of the level's input stream."""
        if self.future is None:
            return NEVER
        lines, nexts = self.future
        assert lines[self.pos] == tag, "the recorded stream differs from the replayed one"
        self.pos += 1
        return nexts[self.pos - 1]

    def allocate(self, s, tag, is_write, src, buf):
        """The way the missing line goes to, or None when it is not allocated."""
        fetch = not is_write or self.lv.write_allocate
        if not fetch and not (self.compat and self.lv.write_back):
            return None
        if fetch:
            self.count["bytes_in"] += self.L
            self.below.request(tag * self.L, self.L, False, src, buf)
        way = self.victim(s)
        old = self.ways[s][way]
        if old is not None:
            self.count["evictions"] += 1
            self.order[s].remove(way)
            if old.dirty:
                self.send_store(old.tag * self.L, self.L, None, old.owner)
        self.ways[s][way] = Line(tag)
        self.order[s].insert(0, way)
        return way

    def victim(self, s: int) -> int:
        ways = self.ways[s]
        if None in ways:
            return ways.index(None)
        policy = self.lv.policy
        if policy in ("lru", "fifo"):
            return self.order[s][-1]
        if policy == "random":
            return self.rng.draw() % self.assoc
        return max(range(self.assoc), key=lambda w: (ways[w].next_use, -w))

    def store(self, s, way, tag, addr, nbytes, src, buf) -> None:
        if way is not None and self.lv.write_back:
            self.ways[s][way].dirty = True
            self.ways[s][way].owner = buf
            return
        lo = max(addr, tag * self.L)
        end = lo + self.L if self.compat else (tag + 1) * self.L
        self.send_store(lo, min(addr + nbytes, end) - lo, src, buf)

    def send_store(self, addr, nbytes, src, buf) -> None:
        self.count["writebacks"] += 1
        self.count["bytes_out"] += nbytes
        self.below.request(addr, nbytes, True, src, buf)


@dataclass
class Result:
    stats: list                     # one dict of COUNTERS per level, memory last
    served: list
    bytes_by_level_buffer: list


def _build(hierarchy, book, futures, cut=None, sink=None):
    """Levels [0, cut) over `sink` (default: all cache levels over memory); nearest first."""
    levels = hierarchy.levels
    cut = len(levels) - 1 if cut is None else cut
    below = sink or Memory(levels[-1], len(levels) - 1, book)
    chain = [below]
    for i in range(cut - 1, -1, -1):
        below = CacheLevel(levels[i], i, below, book, hierarchy.pycachesim_compat, futures.get(i))
        chain.insert(0, below)
    return chain


def _replay(hierarchy, accesses, n_buffers, futures, cut=None, sink=None):
    book = Book([0] * len(accesses), [[0] * (n_buffers + 1) for _ in hierarchy.levels])
    chain = _build(hierarchy, book, futures, cut, sink)
    for i, (addr, nbytes, is_write, buf) in enumerate(accesses):
        chain[0].request(addr, nbytes, is_write, i, buf)
    return chain, book


def simulate(hierarchy, addr, nbytes, is_write, buffer_ids, n_buffers: int) -> Result:
    """Run the accesses (sequences of equal length) through the hierarchy (a Hierarchy never
    combines pycachesim_compat with an OPT level: pycachesim has no OPT)."""
    accesses = [(int(a), int(n), bool(w), int(b))
                for a, n, w, b in zip(addr, nbytes, is_write, buffer_ids)]
    futures = {}
    for k, lv in enumerate(hierarchy.levels[:-1]):
        if lv.policy == "opt":
            recorder = Recorder(lv.line_bytes)
            _replay(hierarchy, accesses, n_buffers, futures, cut=k, sink=recorder)
            futures[k] = (recorder.lines, next_uses(recorder.lines))
    chain, book = _replay(hierarchy, accesses, n_buffers, futures)
    return Result([level.count for level in chain], book.served, book.by_buffer)
