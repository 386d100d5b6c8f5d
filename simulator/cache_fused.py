"""The fast path of simulator.cache: LRU/FIFO hierarchies, both cores, cache-friendly order.

Used when every cache level is LRU or FIFO with at most SCAN_MAX_WAYS lines per set (cpu-like,
most configs). Same semantics and counters as the general level-by-level path in cache.py;
tests/test_cache.py checks that the two agree on random hierarchies and traces, and
tests/test_vs_pycachesim.py runs through this path. What it does differently is the order of
work, which no count can see:

- **Set classes.** Two requests that meet in one set of a level agree on that level's set-index
  bits. With power-of-two set counts, the address bits [max line bits, min(line bits + set bits))
  are set-index bits of *every* level, so they split all sets into classes that never exchange a
  line. Any reorder that keeps each class's requests in trace order keeps every set's requests in
  trace order, so every level sees, set by set, exactly what it would have seen.
- **Two shards.** The lowest class bit splits the hierarchy in two halves; one thread simulates
  each half over the same chunk, in trace order. A chunk with an access that spans two level-1
  lines runs on one thread (its lines may fall in both halves).
- **Grouping below level 1.** Each thread takes a piece of the chunk through level 1 in trace
  order, collecting the requests for level 2 (fills, writebacks, write-through stores: each inside
  one level-1 line, so inside one class); sorts them by class, stably (counting sort); and takes
  them down the remaining levels class by class, so the sets in use at any moment are a small,
  host-cache-resident part of the big levels' state.
- **Fused.** Each request goes down all its levels before the next starts, through small
  per-level queues in pycachesim's order (fill, then the victim's writeback, then a write-through
  store), so no stream is written out but the one between levels 1 and 2.

Recency is a stamp per slot, (access index << 24) | touches so far in this piece: within a set,
stamps grow in processing order, whichever thread or piece made them. The victim is the smallest
stamp (free slots hold -1), found in the pass that looks for the line. Sets that a request some
way ahead will touch below level 1 are prefetched.
"""

from __future__ import annotations

import numba
import numpy as np

from .cache import (BIN, BOUT, EV, FIFO, LRU, N_COUNTERS, RB, RH, RM, SCAN_MAX_WAYS, WB, WBK,
                    WH, WM, _log2)
from .intrinsics import prefetch

STAMP_BITS = 24
AHEAD = 12          # requests ahead whose lower-level sets are prefetched
PIECE = 1 << 16     # accesses per piece: bounds the level-2 request buffer
CLASS_BITS = 10     # at most 1,024 set classes
# columns of the per-level configuration table
LINE_BITS, N_SETS, SET_MASK, WAYS, OFFSET, POLICY, WRITE_BACK, WRITE_ALLOC = range(8)


def eligible(levels) -> bool:
    """All cache levels LRU/FIFO with few enough ways to scan."""
    return all(lv.policy in ("lru", "fifo") and lv.assoc <= SCAN_MAX_WAYS for lv in levels)


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


@numba.njit(cache=True)
def _prefetch_sets(a, cfg, tags, stamp):
    """Ask for the tags and stamps of the sets below level 1 that address a will touch."""
    for l in range(1, cfg.shape[0]):
        if cfg[l, SET_MASK] < 0:
            continue
        base = cfg[l, OFFSET] + ((a >> cfg[l, LINE_BITS]) & cfg[l, SET_MASK]) * cfg[l, WAYS]
        end = base + cfg[l, WAYS] - 1
        prefetch(tags, base)
        prefetch(stamp, base)
        prefetch(tags, end)
        prefetch(stamp, end)


@numba.njit(cache=True)
def _descend(from_chunk, lo, hi, shard, n_shards, shard_shift, addr, nbytes, is_write, buf,
             rows, out, out_n, stop, first_index, cfg, compat, mem_bits, qcap, tags, meta, stamp,
             cnt, by_buf, served):
    """Take requests down the hierarchy, each all the way before the next.

    from_chunk: the requests are the chunk's accesses lo..hi-1 (this shard's), entering at level
    1; else the buffered level-2 requests rows[lo..hi-1], entering at level 2. Requests that reach
    level `stop` are appended to `out` (from row out_n on) instead of being simulated; returns the
    new length of `out`. A buffered request is a row (address, bytes | write << 40 | data << 41,
    access index, buffer). One flat loop nest: numba passes arrays to a call as
    reference-counted structs, which would cost more than the work here."""
    n_levels = cfg.shape[0]
    unmapped = by_buf.shape[1] - 1
    # per-level queues of one request's consequences: address, bytes, write, time, data?, buffer
    qa = np.empty((n_levels + 1, qcap), np.int64)
    qb = np.empty((n_levels + 1, qcap), np.int64)
    qw = np.empty((n_levels + 1, qcap), np.bool_)
    qt = np.empty((n_levels + 1, qcap), np.int64)
    qd = np.empty((n_levels + 1, qcap), np.bool_)
    qf = np.empty((n_levels + 1, qcap), np.int64)
    qn = np.zeros(n_levels + 1, np.int64)
    last = np.full((n_levels, 2), -1, np.int64)  # per level: the line touched last, its slot
    lb0, wb0 = cfg[0, LINE_BITS], cfg[0, WRITE_BACK] != 0
    first = 0 if from_chunk else 1
    tick = 0
    for k in range(lo, hi):
        if from_chunk:
            a0 = addr[k]
            if n_shards > 1 and ((a0 >> shard_shift) & 1) != shard:
                continue
            nb0, w0, t0, d0, f0 = np.int64(nbytes[k]), is_write[k], first_index + k, True, \
                np.int64(buf[k])
            line0 = a0 >> lb0
            if line0 == last[0, 0] and (a0 + nb0 - 1) >> lb0 == line0 and (
                    not w0 or (wb0 and not compat)):
                # the line level 1 touched last: a hit that changes no order (the general
                # loop below would do exactly this, slower)
                cnt[0, WB if w0 else RB] += nb0
                cnt[0, WH if w0 else RH] += 1
                by_buf[0, f0 if f0 >= 0 else unmapped] += nb0
                if w0:
                    meta[last[0, 1]] = (f0 << 1) | 1
                continue
            if stop > n_levels and k + AHEAD < hi:
                _prefetch_sets(addr[k + AHEAD], cfg, tags, stamp)
        else:
            a0, packed, t0, f0 = rows[k, 0], rows[k, 1], rows[k, 2], rows[k, 3]
            nb0, w0, d0 = packed & ((1 << 40) - 1), (packed >> 40) & 1 == 1, packed >> 41 == 1
            if k + AHEAD < hi:
                _prefetch_sets(rows[k + AHEAD, 0], cfg, tags, stamp)
        qa[first, 0], qb[first, 0], qw[first, 0] = a0, nb0, w0
        qt[first, 0], qd[first, 0], qf[first, 0] = t0, d0, f0
        qn[first] = 1
        for l in range(first, n_levels + 1):
            if l == stop:  # buffer for the grouped pass
                for r in range(qn[l]):
                    out[out_n, 0], out[out_n, 2], out[out_n, 3] = qa[l, r], qt[l, r], qf[l, r]
                    out[out_n, 1] = qb[l, r] | (np.int64(qw[l, r]) << 40) | (np.int64(qd[l, r]) << 41)
                    out_n += 1
                break
            if l == n_levels:  # memory serves everything
                for r in range(qn[l]):
                    a, nb, w, owner = qa[l, r], qb[l, r], qw[l, r], qf[l, r]
                    if qd[l, r]:
                        served[qt[l, r] - first_index] = n_levels
                    cnt[l, WH if w else RH] += ((a + nb - 1) >> mem_bits) - (a >> mem_bits) + 1
                    cnt[l, WB if w else RB] += nb
                    by_buf[l, owner if owner >= 0 else unmapped] += nb
                break
            if qn[l] == 0:
                break
            lb, n_sets, mask = cfg[l, LINE_BITS], cfg[l, N_SETS], cfg[l, SET_MASK]
            ways, off, lru = cfg[l, WAYS], cfg[l, OFFSET], cfg[l, POLICY] == LRU
            write_back, write_alloc = cfg[l, WRITE_BACK] != 0, cfg[l, WRITE_ALLOC] != 0
            line_bytes = np.int64(1) << lb
            k1 = 0  # requests queued for level l + 1
            for r in range(qn[l]):
                a, nb, w, t, data, owner = qa[l, r], qb[l, r], qw[l, r], qt[l, r], qd[l, r], \
                    qf[l, r]
                if data and l > 0:
                    served[t - first_index] = max(served[t - first_index], l)
                cnt[l, WB if w else RB] += nb
                by_buf[l, owner if owner >= 0 else unmapped] += nb
                for line in range(a >> lb, ((a + nb - 1) >> lb) + 1):
                    tick += 1
                    now = (t << STAMP_BITS) | tick
                    v, oldest = -1, np.int64(1) << 62  # victim: a free slot or the LRU line
                    if line == last[l, 0]:
                        slot = last[l, 1]
                    else:
                        base = off + (line & mask if mask >= 0 else line % n_sets) * ways
                        slot = -1
                        for j in range(ways):
                            if tags[base + j] == line:
                                slot = base + j
                                break
                            if stamp[base + j] < oldest:
                                v, oldest = base + j, stamp[base + j]
                    if slot >= 0:  # hit
                        cnt[l, WH if w else RH] += 1
                        if compat and w:
                            if line != last[l, 0]:
                                last[l, 0] = -1
                        else:
                            if lru and line != last[l, 0]:
                                stamp[slot] = now
                            last[l, 0], last[l, 1] = line, slot
                    else:  # miss
                        cnt[l, WM if w else RM] += 1
                        fill = (not w) or write_alloc
                        if fill or (compat and write_back):
                            if fill:
                                qa[l + 1, k1], qb[l + 1, k1], qw[l + 1, k1] = \
                                    line << lb, line_bytes, False
                                qt[l + 1, k1], qd[l + 1, k1], qf[l + 1, k1] = t, data, owner
                                k1 += 1
                                cnt[l, BIN] += line_bytes
                            if tags[v] >= 0:
                                cnt[l, EV] += 1
                                if meta[v] & 1:
                                    qa[l + 1, k1], qb[l + 1, k1], qw[l + 1, k1] = \
                                        tags[v] << lb, line_bytes, True
                                    qt[l + 1, k1], qd[l + 1, k1], qf[l + 1, k1] = \
                                        t, False, meta[v] >> 1
                                    k1 += 1
                                    cnt[l, WBK] += 1
                                    cnt[l, BOUT] += line_bytes
                            tags[v], meta[v], stamp[v] = line, owner << 1, now
                            last[l, 0], last[l, 1] = line, v
                            slot = v
                        else:
                            last[l, 0] = -1
                    if not w:
                        continue
                    if slot >= 0 and write_back:
                        meta[slot] = (owner << 1) | 1
                        continue
                    lo_b = max(a, line << lb)  # write-through or not allocated: pass it down
                    end = lo_b + line_bytes if compat else (line + 1) << lb
                    part = min(a + nb, end) - lo_b
                    qa[l + 1, k1], qb[l + 1, k1], qw[l + 1, k1] = lo_b, part, True
                    qt[l + 1, k1], qd[l + 1, k1], qf[l + 1, k1] = t, data, owner
                    k1 += 1
                    cnt[l, WBK] += 1
                    cnt[l, BOUT] += part
            qn[l + 1] = k1
    return out_n


@numba.njit(cache=True)
def _group(rows, n, shift, mask, shard_step, n_classes, out):
    """Rows 0..n-1 moved into `out` ordered by set class, stably (counting sort)."""
    start = np.zeros(n_classes + 1, np.int64)
    for j in range(n):
        start[(((rows[j, 0] >> shift) & mask) >> shard_step) + 1] += 1
    for c in range(n_classes):
        start[c + 1] += start[c]
    for j in range(n):
        c = ((rows[j, 0] >> shift) & mask) >> shard_step
        k = start[c]
        start[c] = k + 1
        out[k, 0], out[k, 1], out[k, 2], out[k, 3] = rows[j, 0], rows[j, 1], rows[j, 2], rows[j, 3]


@numba.njit(cache=True)
def _shard(shard, n_shards, addr, nbytes, is_write, buf, first_index, cfg, compat, mem_bits,
           qcap, cap1, piece, cls_shift, cls_mask, tags, meta, stamp, cnt, by_buf, served):
    """This shard's part of a chunk, piece by piece: level 1 in trace order, then (grouped) the
    levels below class by class."""
    n_levels = cfg.shape[0]
    grouped = cls_mask >= 0
    stop = 1 if grouped else n_levels + 1
    size = piece * cap1 if grouped else 1
    buffered, ordered = np.empty((size, 4), np.int64), np.empty((size, 4), np.int64)
    shard_step = 1 if n_shards > 1 else 0
    n_classes = (cls_mask + 1) >> shard_step if grouped else 1
    for lo in range(0, addr.shape[0], piece):
        hi = min(lo + piece, addr.shape[0])
        n = _descend(True, lo, hi, shard, n_shards, cls_shift, addr, nbytes, is_write, buf,
                     buffered, buffered, 0, stop, first_index, cfg, compat, mem_bits, qcap, tags,
                     meta, stamp, cnt, by_buf, served)
        if not grouped or n == 0:
            continue
        _group(buffered, n, cls_shift, cls_mask, shard_step, n_classes, ordered)
        _descend(False, 0, n, shard, n_shards, cls_shift, addr, nbytes, is_write, buf, ordered,
                 buffered, 0, n_levels + 1, first_index, cfg, compat, mem_bits, qcap, tags, meta,
                 stamp, cnt, by_buf, served)


@numba.njit(cache=True, parallel=True)
def _run(n_shards, addr, nbytes, is_write, buf, first_index, cfg, compat, mem_bits, qcap, cap1,
         piece, cls_shift, cls_mask, tags, meta, stamp, cnt, by_buf, served):
    """Shards in parallel; each writes its own counters and its own `served` row (no two
    threads write one cache line)."""
    for s in numba.prange(n_shards):
        _shard(s, n_shards, addr, nbytes, is_write, buf, first_index, cfg, compat, mem_bits,
               qcap, cap1, piece, cls_shift, cls_mask, tags, meta, stamp, cnt[s], by_buf[s],
               served[s])


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

    def feed(self, chunk, buffer_ids: np.ndarray) -> np.ndarray:
        n_shards = 1
        if self.shardable and not _any_spans(chunk.addr, chunk.nbytes, self.cfg[0, LINE_BITS]):
            n_shards = 2
        served = np.zeros((n_shards, len(chunk)), np.int8)
        max_bytes = int(chunk.nbytes.max(initial=1))
        qcap = _queue_capacity(self.levels, max_bytes)
        # stamps count line touches per piece in STAMP_BITS - 1 bits at most
        piece = max(1, min(PIECE, (1 << (STAMP_BITS - 1)) // (qcap * len(self.levels))))
        _run(n_shards, chunk.addr, chunk.nbytes, chunk.is_write, buffer_ids, self.accesses,
             self.cfg, self.compat, self.mem_bits, qcap,
             3 * (max_bytes // self.levels[0].line_bytes + 2), piece, self.cls_shift,
             self.cls_mask, self.tags, self.meta, self.stamp, self.cnt, self.by_buf, served)
        self.accesses += len(chunk)
        return served.max(axis=0)

    def counters(self) -> np.ndarray:
        """[level, counter] summed over shards (memory last)."""
        return self.cnt[:, :-1].sum(axis=0)

    def bytes_by_level_buffer(self) -> np.ndarray:
        return self.by_buf[:, :-1].sum(axis=0)


def _queue_capacity(levels, max_access_bytes: int) -> int:
    """Requests one access can cause at any level: at most a fill, a writeback and a
    write-through store per line a request touches."""
    cap = most = 1
    req_bytes = max_access_bytes
    for lv in levels:
        cap *= 3 * (req_bytes // lv.line_bytes + 2)
        most = max(most, cap)
        req_bytes = lv.line_bytes
    return most
