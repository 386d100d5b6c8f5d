"""The fast path of simulator.cache: LRU/FIFO hierarchies, both cores, cache-friendly order.

Used when every cache level is LRU or FIFO with at most SCAN_MAX_WAYS lines per set (cpu-like,
most configs). Same semantics and counters as the general level-by-level path in cache.py;
tests/test_cache.py checks that the two agree on random hierarchies and traces, and
tests/test_vs_pycachesim.py runs through this path. What it changes is the order of work, which
no count can see, because each set still sees its requests in trace order:

- **Set classes.** Two requests that meet in one set of a level agree on that level's set-index
  bits. With power-of-two set counts, the address bits [max line bits, min(line bits + set bits))
  are set-index bits of *every* level below level 1, so they split those levels' sets into
  classes that never exchange a line. Any reorder of level-2 requests that keeps each class in
  trace order keeps every set's requests in trace order.
- **Two shards.** When the lowest class bit is also a set-index bit of level 1, it splits the
  whole hierarchy in two halves; one thread simulates each half over the same chunk. A chunk with
  an access that spans two level-1 lines runs on one thread (its lines may fall in both halves).
- **Level-major batches.** Each thread takes a piece of its accesses through level 1 in trace
  order, collecting what level 1 sends down (fills, then the victim's writeback, then
  write-through stores: pycachesim's order). When enough requests reach level 2, it sorts them by
  class, stably (counting sort), so that the part of the big levels' state in use stays in the
  host's cache. Each batch then goes down one level at a time: a level takes the whole batch in
  order, then the next level takes what it sent down.

Recency is a stamp per slot, (access index << 24) | touches so far in this piece: within a set,
stamps grow in processing order, whichever thread or piece made them. The victim is the smallest
stamp (free slots hold -1), found in the pass that looks for the line. Below level 1 the set a
request AHEAD rows later will scan is prefetched.
"""

from __future__ import annotations

import numba
import numpy as np

from .cache_counters import (BIN, BOUT, EV, FIFO, LRU, N_COUNTERS, RB, RH, RM, SCAN_MAX_WAYS, WB,
                             WBK, WH, WM)
from .cache_counters import log2 as _log2
from .intrinsics import prefetch

STAMP_BITS = 24
AHEAD = 12          # requests ahead whose lower-level sets are prefetched
PIECE = 1 << 16     # accesses per piece: bounds the level-2 request buffer
BATCH = 1 << 12     # level-2 requests taken down together: bounds the buffers below
MIN_PER_CLASS = 16  # group a piece's level-2 requests only if the classes get this many each
CLASS_BITS = 10     # at most 1,024 set classes
# columns of the per-level configuration table
LINE_BITS, N_SETS, SET_MASK, WAYS, OFFSET, POLICY, WRITE_BACK, WRITE_ALLOC = range(8)


def eligible(levels) -> bool:
    """All cache levels LRU/FIFO with few enough ways to scan, and the buffers that carry a
    batch of requests down the levels (their size the product of the line ratios) small."""
    return all(lv.policy in ("lru", "fifo") and lv.assoc <= SCAN_MAX_WAYS for lv in levels) \
        and _below_bytes(levels) <= SCRATCH_MAX_BYTES


SCRATCH_MAX_BYTES = 256 << 20


def _below_bytes(levels) -> int:
    """The two request buffers _shard allocates for the levels below level 1."""
    deeper = BATCH
    for f in _fanout(levels, 1)[1:]:
        deeper *= int(f)
    return 2 * deeper * 4 * 8


def set_classes(levels) -> tuple[int, int, bool]:
    """(shift, mask, shardable): class = (address >> shift) & mask. mask = -1: no grouping
    (fewer than two levels, or a set count that is not a power of two below level 1).
    shardable: the lowest class bit also splits level 1's sets."""
    if len(levels) < 2 or any(lv.n_sets & (lv.n_sets - 1) for lv in levels):
        return 0, -1, False
    lo = max(_log2(lv.line_bytes) for lv in levels)
    hi = min(_log2(lv.line_bytes) + _log2(lv.n_sets) for lv in levels[1:])
    first = _log2(levels[0].line_bytes) + _log2(levels[0].n_sets)
    bits = min(hi - lo, CLASS_BITS)
    if bits < 1:
        return 0, -1, False
    return lo, (1 << bits) - 1, first > lo and bits >= 1


@numba.njit(cache=True)
def _any_spans(addr, nbytes, line_bits):
    """Does any access touch two level-1 lines?"""
    for i in range(addr.shape[0]):
        if (addr[i] >> line_bits) != ((addr[i] + nbytes[i] - 1) >> line_bits):
            return True
    return False


MASK40 = (1 << 40) - 1


@numba.njit(cache=True)
def _level(l, chunk, shard, n_shards, shard_shift, addr, nbytes, is_write, buf, rows, lo, hi, out,
           cfg, compat, first_index, tick, tags, meta, stamp, cnt, by_buf, served, last):
    """Requests lo..hi-1 at cache level l, in order: this shard's accesses of the chunk (chunk =
    True, level 1) or request rows (address, bytes | write << 40 | data << 41, access index,
    buffer). What they send to level l + 1 (fills, then the victim's writeback, then
    write-through stores) is written to `out` from row 0. Returns (rows written, tick). One flat
    loop with the level's configuration in locals: numba passes arrays to a call as
    reference-counted structs, which would cost more than the work of one request."""
    lb, n_sets, mask = cfg[l, LINE_BITS], cfg[l, N_SETS], cfg[l, SET_MASK]
    ways, off, lru = cfg[l, WAYS], cfg[l, OFFSET], cfg[l, POLICY] == LRU
    write_back, write_alloc = cfg[l, WRITE_BACK] != 0, cfg[l, WRITE_ALLOC] != 0
    line_bytes = np.int64(1) << lb
    unmapped = by_buf.shape[1] - 1
    last_line, last_slot = last[l, 0], last[l, 1]
    rh = rm = wh = wm = rb = wb = ev = wbk = bin_ = bout = 0
    run_owner, run_bytes = np.int64(-1), np.int64(0)
    n = 0
    for k in range(lo, hi):
        if chunk:
            a = addr[k]
            if n_shards > 1 and ((a >> shard_shift) & 1) != shard:
                continue
            nb, w, t, owner, data = np.int64(nbytes[k]), is_write[k], first_index + k, \
                np.int64(buf[k]), np.int64(1)
            if (a >> lb) == last_line and ((a + nb - 1) >> lb) == last_line and owner == run_owner \
                    and (not w or (write_back and not compat)):
                # the line this level touched last, again: a hit that changes no order (the
                # loop below would do exactly this, slower)
                run_bytes += nb
                if w:
                    wh += 1
                    wb += nb
                    meta[last_slot] = (owner << 1) | 1
                else:
                    rh += 1
                    rb += nb
                continue
        else:
            a, packed, t, owner = rows[k, 0], rows[k, 1], rows[k, 2], rows[k, 3]
            nb, w, data = packed & MASK40, (packed >> 40) & 1 == 1, packed >> 41
            if mask >= 0 and k + AHEAD < hi:  # the set a later request will scan
                ahead = off + ((rows[k + AHEAD, 0] >> lb) & mask) * ways
                prefetch(tags, ahead)
                prefetch(stamp, ahead)
                prefetch(tags, ahead + ways - 1)
                prefetch(stamp, ahead + ways - 1)
        if w:
            wb += nb
        else:
            rb += nb
        if owner != run_owner:  # bytes per buffer, added up over runs of one buffer
            by_buf[l, run_owner if run_owner >= 0 else unmapped] += run_bytes
            run_owner, run_bytes = owner, np.int64(0)
        run_bytes += nb
        line, end_line = (a >> lb) - 1, (a + nb - 1) >> lb
        while line < end_line:  # each line the request touches
            line += 1
            tick += 1
            now = (t << STAMP_BITS) | tick
            v, oldest = -1, np.int64(1) << 62  # victim: a free slot (-1) or the LRU line
            if line == last_line:
                slot = last_slot
            else:
                base = off + (line & mask if mask >= 0 else line % n_sets) * ways
                slot = -1
                for j in range(ways):
                    if tags[base + j] == line:
                        slot = base + j
                        break
                    if stamp[base + j] < oldest:
                        v, oldest = base + j, stamp[base + j]
            hit = slot >= 0
            if hit:
                if w:
                    wh += 1
                else:
                    rh += 1
                if compat and w:
                    if line != last_line:
                        last_line = -1
                else:
                    if lru and line != last_line:
                        stamp[slot] = now
                    last_line, last_slot = line, slot
            else:  # miss
                if w:
                    wm += 1
                else:
                    rm += 1
                fill = (not w) or write_alloc
                if fill or (compat and write_back):
                    if fill:
                        out[n, 0], out[n, 1], out[n, 2], out[n, 3] = \
                            line << lb, line_bytes | (data << 41), t, owner
                        n += 1
                        bin_ += line_bytes
                    if tags[v] >= 0:
                        ev += 1
                        if meta[v] & 1:
                            out[n, 0], out[n, 1], out[n, 2], out[n, 3] = \
                                tags[v] << lb, line_bytes | (np.int64(1) << 40), t, meta[v] >> 1
                            n += 1
                            wbk += 1
                            bout += line_bytes
                    tags[v], meta[v], stamp[v] = line, owner << 1, now
                    last_line, last_slot = line, v
                    slot = v
                else:
                    last_line = -1
            if not w:
                if hit and data and l > 0 and served[t - first_index] < l:  # its data ends here
                    served[t - first_index] = l
                continue
            if slot >= 0 and write_back:
                meta[slot] = (owner << 1) | 1
                if data and l > 0 and served[t - first_index] < l:
                    served[t - first_index] = l
                continue
            lo_b = max(a, line << lb)  # write-through or not allocated: pass the store down
            end = lo_b + line_bytes if compat else (line + 1) << lb
            part = min(a + nb, end) - lo_b
            out[n, 0], out[n, 1], out[n, 2], out[n, 3] = \
                lo_b, part | (np.int64(1) << 40) | (data << 41), t, owner
            n += 1
            wbk += 1
            bout += part
    by_buf[l, run_owner if run_owner >= 0 else unmapped] += run_bytes
    cnt[l, RH] += rh
    cnt[l, RM] += rm
    cnt[l, WH] += wh
    cnt[l, WM] += wm
    cnt[l, RB] += rb
    cnt[l, WB] += wb
    cnt[l, EV] += ev
    cnt[l, WBK] += wbk
    cnt[l, BIN] += bin_
    cnt[l, BOUT] += bout
    last[l, 0], last[l, 1] = last_line, last_slot
    return n, tick


@numba.njit(cache=True)
def _memory(m, rows, lo, hi, mem_bits, first_index, cnt, by_buf, served):
    """Memory serves every request; counts the memory lines and bytes."""
    unmapped = by_buf.shape[1] - 1
    for k in range(lo, hi):
        a, packed, t, owner = rows[k, 0], rows[k, 1], rows[k, 2], rows[k, 3]
        nb, w = packed & MASK40, (packed >> 40) & 1 == 1
        if packed >> 41:
            served[t - first_index] = m
        cnt[m, WH if w else RH] += ((a + nb - 1) >> mem_bits) - (a >> mem_bits) + 1
        cnt[m, WB if w else RB] += nb
        by_buf[m, owner if owner >= 0 else unmapped] += nb


@numba.njit(cache=True)
def _below(rows, lo, hi, bufs, no_col, no_flags, cfg, compat, mem_bits, first_index, tick, tags,
           meta, stamp, cnt, by_buf, served, last):
    """Level-2 requests rows[lo..hi-1] down every level below, BATCH rows at a time, one level at
    a time: a level takes the whole batch, in order, before the next takes what it sent down."""
    n_levels = cfg.shape[0]
    for start in range(lo, hi, BATCH):
        src, a, b = rows, start, min(start + BATCH, hi)
        for l in range(1, n_levels):
            out = bufs[l & 1]
            n, tick = _level(l, False, 0, 1, 0, no_col, no_col, no_flags, no_col, src, a, b, out,
                             cfg, compat, first_index, tick, tags, meta, stamp, cnt, by_buf,
                             served, last)
            src, a, b = out, 0, n
        _memory(n_levels, src, a, b, mem_bits, first_index, cnt, by_buf, served)
    return tick


@numba.njit(cache=True)
def _group(rows, n, shift, mask, shard_step, n_classes, out):
    """Rows 0..n-1 moved into `out` ordered by set class, stably (counting sort); returns the
    start row of every class (and the end, last)."""
    start = np.zeros(n_classes + 1, np.int64)
    for j in range(n):
        start[(((rows[j, 0] >> shift) & mask) >> shard_step) + 1] += 1
    for c in range(n_classes):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    for j in range(n):
        c = ((rows[j, 0] >> shift) & mask) >> shard_step
        k = fill[c]
        fill[c] = k + 1
        out[k, 0], out[k, 1], out[k, 2], out[k, 3] = rows[j, 0], rows[j, 1], rows[j, 2], rows[j, 3]
    return start


@numba.njit(cache=True)
def _shard(shard, n_shards, addr, nbytes, is_write, buf, first_index, cfg, compat, mem_bits,
           fanout, piece, cls_shift, cls_mask, min_per_class, tags, meta, stamp, cnt, by_buf,
           served):
    """This shard's part of a chunk, piece by piece: level 1 in trace order, then the levels
    below, class by class when the hierarchy has set classes."""
    n_levels = cfg.shape[0]
    shard_step = 1 if n_shards > 1 else 0
    n_classes = (cls_mask + 1) >> shard_step if cls_mask >= 0 else 1
    size = piece * fanout[0]
    level2 = np.empty((size, 4), np.int64)
    ordered = np.empty((size if cls_mask >= 0 else 1, 4), np.int64)
    deeper = BATCH
    for f in fanout[1:]:
        deeper *= f
    bufs = (np.empty((deeper, 4), np.int64), np.empty((deeper, 4), np.int64))
    last = np.full((n_levels, 2), -1, np.int64)  # per level: the line touched last, its slot
    no_col, no_flags = np.empty(0, np.int64), np.empty(0, np.bool_)  # no chunk below level 1
    for lo in range(0, addr.shape[0], piece):
        hi = min(lo + piece, addr.shape[0])
        n1, tick = _level(0, True, shard, n_shards, cls_shift, addr, nbytes, is_write, buf,
                          level2, lo, hi, level2, cfg, compat, first_index, 0, tags, meta, stamp,
                          cnt, by_buf, served, last)
        if n_levels == 1:
            _memory(1, level2, 0, n1, mem_bits, first_index, cnt, by_buf, served)
        elif cls_mask < 0 or n1 < min_per_class * n_classes:
            # few requests reached level 2 (the piece mostly hit): grouping would not pay
            _below(level2, 0, n1, bufs, no_col, no_flags, cfg, compat, mem_bits, first_index,
                   tick, tags, meta, stamp, cnt, by_buf, served, last)
        else:
            start = _group(level2, n1, cls_shift, cls_mask, shard_step, n_classes, ordered)
            for c in range(n_classes):
                if start[c + 1] > start[c]:
                    tick = _below(ordered, start[c], start[c + 1], bufs, no_col, no_flags, cfg,
                                  compat, mem_bits, first_index, tick, tags, meta, stamp, cnt,
                                  by_buf, served, last)


@numba.njit(cache=True, parallel=True)
def _run(n_shards, addr, nbytes, is_write, buf, first_index, cfg, compat, mem_bits, fanout,
         piece, cls_shift, cls_mask, min_per_class, tags, meta, stamp, cnt, by_buf, served):
    """Shards in parallel; each writes its own counters and its own `served` row (no two
    threads write one cache line)."""
    for s in numba.prange(n_shards):
        _shard(s, n_shards, addr, nbytes, is_write, buf, first_index, cfg, compat, mem_bits,
               fanout, piece, cls_shift, cls_mask, min_per_class, tags, meta, stamp, cnt[s],
               by_buf[s], served[s])


class FusedHierarchy:
    """State of all cache levels for the fused kernel; counters kept per shard, summed on read."""

    def __init__(self, levels, memory, n_buffers: int, compat: bool):
        self.levels = levels
        offsets = np.cumsum([0] + [lv.n_lines for lv in levels])
        self.cfg = np.array([[_log2(lv.line_bytes), lv.n_sets,
                              lv.n_sets - 1 if lv.n_sets & (lv.n_sets - 1) == 0 else -1,
                              lv.assoc, off, LRU if lv.policy == "lru" else FIFO,
                              lv.write_back, lv.write_allocate]
                             for lv, off in zip(levels, offsets)], dtype=np.int64)
        self.tags = np.full(offsets[-1], -1, np.int64)
        self.meta = np.zeros(offsets[-1], np.int64)
        self.stamp = np.full(offsets[-1], -1, np.int64)
        self.compat = compat
        self.mem_bits = _log2(memory.line_bytes)
        self.cls_shift, self.cls_mask, self.shardable = set_classes(levels)
        if compat and not all(lv.write_back and lv.write_allocate for lv in levels):
            # pycachesim's store part may run past its line (cache.py, _clip), and so out of
            # its set class: keep trace order below level 1
            self.cls_mask = -1
        n = len(levels)
        # a spare row per shard keeps the two shards' counters on different cache lines
        self.cnt = np.zeros((2, n + 2, N_COUNTERS), np.int64)
        self.by_buf = np.zeros((2, n + 2, n_buffers + 1), np.int64)
        self.accesses = 0
        self.min_per_class = MIN_PER_CLASS  # tests set 0 to group every piece

    def feed(self, chunk, buffer_ids: np.ndarray) -> np.ndarray:
        n_shards = 1
        if self.shardable and not _any_spans(chunk.addr, chunk.nbytes, self.cfg[0, LINE_BITS]):
            n_shards = 2
        served = np.zeros((n_shards, len(chunk)), np.int8)
        fanout = _fanout(self.levels, int(chunk.nbytes.max(initial=1)))
        # stamps count the line touches of a piece in STAMP_BITS - 1 bits
        touches = int(np.cumprod(fanout).sum())
        piece = max(1, min(PIECE, (1 << (STAMP_BITS - 1)) // touches))
        if n_shards == 1:   # no parallel region: its idle thread would spin, burning CPU
            _shard(0, 1, chunk.addr, chunk.nbytes, chunk.is_write, buffer_ids, self.accesses,
                   self.cfg, self.compat, self.mem_bits, fanout, piece, self.cls_shift,
                   self.cls_mask, self.min_per_class, self.tags, self.meta, self.stamp,
                   self.cnt[0], self.by_buf[0], served[0])
        else:
            _run(n_shards, chunk.addr, chunk.nbytes, chunk.is_write, buffer_ids, self.accesses,
                 self.cfg, self.compat, self.mem_bits, fanout, piece, self.cls_shift,
                 self.cls_mask, self.min_per_class, self.tags, self.meta, self.stamp, self.cnt,
                 self.by_buf, served)
        self.accesses += len(chunk)
        return served.max(axis=0)

    def counters(self) -> np.ndarray:
        """[level, counter] summed over shards (memory last)."""
        return self.cnt[:, :-1].sum(axis=0)

    def bytes_by_level_buffer(self) -> np.ndarray:
        return self.by_buf[:, :-1].sum(axis=0)

    def canonical(self) -> list[np.ndarray]:
        """Per level and set, the lines by stamp, newest first, with their meta (dirty bit and
        charged buffer): what CacheSim.canonical promises, without the stamps themselves."""
        out = []
        for lv, row in zip(self.levels, self.cfg):
            off, ways = row[OFFSET], row[WAYS]
            part = slice(off, off + lv.n_lines)
            order = np.argsort(-self.stamp[part].reshape(-1, ways), axis=1, kind="stable")
            for a in (self.tags, self.meta):
                out.append(np.take_along_axis(a[part].reshape(-1, ways), order, axis=1))
        return out


def _fanout(levels, max_access_bytes: int) -> np.ndarray:
    """Per level, the most requests one request can send to the level below: a fill, a
    writeback and a write-through store for every line it touches. A request below level 1 is at
    most one line of the level above long (pycachesim's store part may start mid-line)."""
    out = [3 * (max_access_bytes // levels[0].line_bytes + 2)]
    for above, lv in zip(levels, levels[1:]):
        out.append(3 * (max(1, above.line_bytes // lv.line_bytes) + 1))
    return np.array(out, dtype=np.int64)
