"""The fast path of simulator.cache: every level at once, per access, on both cores.

Used when every cache level is an LRU or FIFO level with at most SCAN_MAX_WAYS lines per set
(the common case: cpu-like, most configs). Same semantics, same counters as the general
level-by-level path in cache.py (tests/test_cache.py checks that they agree on random
hierarchies and traces); two differences in *how*:

- Fused: each access goes down the whole hierarchy before the next one starts, through small
  per-level queues (fill first, then the victim's writeback, as pycachesim's recursion), so no
  level's output stream is ever written to memory.
- Sharded: two addresses whose lines fall in one set of any level agree on the address bits
  [max line bits, min(line bits + set bits)). With power-of-two set counts, the sets of every
  level split by the lowest of those bits into independent halves that never exchange a line, so
  two threads each simulate one half over the same chunk, in trace order, exactly. A chunk with an
  access that spans lines runs on one thread.

Recency is a stamp per slot: (global access index << 24) + touches so far in that access; the
victim is the slot with the smallest stamp (free slots have -1), found in the same pass that
looks for the line. Stamps do not depend on which thread made them, so chunks may alternate
between one and two threads. The sets that an access AHEAD positions later will touch below
level 1 are prefetched (level 1 is small enough to stay in the host's cache).
"""

from __future__ import annotations

import numba
import numpy as np

from .intrinsics import prefetch
from .cache import (BIN, BOUT, EV, FIFO, LRU, N_COUNTERS, RB, RH, RM, SCAN_MAX_WAYS, WB, WBK,
                    WH, WM, _log2)

STAMP_BITS = 24
AHEAD = 12  # accesses ahead whose lower-level sets are prefetched
# columns of the per-level configuration table
LINE_BITS, N_SETS, SET_MASK, WAYS, OFFSET, POLICY, WRITE_BACK, WRITE_ALLOC = range(8)


def eligible(levels) -> bool:
    """All cache levels LRU/FIFO with few enough ways to scan."""
    return all(lv.policy in ("lru", "fifo") and lv.assoc <= SCAN_MAX_WAYS for lv in levels)


def shard_bits(levels) -> tuple[int, int] | None:
    """(shift, mask) of the address bit that splits every level's sets in two, or None."""
    if any(lv.n_sets & (lv.n_sets - 1) for lv in levels):
        return None
    lo = max(_log2(lv.line_bytes) for lv in levels)
    hi = min(_log2(lv.line_bytes) + _log2(lv.n_sets) for lv in levels)
    return (lo, 1) if hi > lo else None


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
def _shard(shard, n_shards, shift, addr, nbytes, is_write, buf, first_index, cfg, compat,
           mem_bits, qcap, tags, meta, stamp, cnt, by_buf, served):
    """Every access of this shard, in trace order, all the way down. One flat loop nest: numba
    passes arrays to calls as reference-counted structs, which costs more than the work here."""
    n_levels = cfg.shape[0]
    unmapped = by_buf.shape[1] - 1
    qa = np.empty((n_levels + 1, qcap), np.int64)    # request: address, bytes, write, access, buffer
    qb = np.empty((n_levels + 1, qcap), np.int64)
    qw = np.empty((n_levels + 1, qcap), np.bool_)
    qs = np.empty((n_levels + 1, qcap), np.int64)
    qf = np.empty((n_levels + 1, qcap), np.int64)
    qn = np.zeros(n_levels + 1, np.int64)
    last = np.full((n_levels, 2), -1, np.int64)  # per level: the line touched last and its slot
    lb0, wb0 = cfg[0, LINE_BITS], cfg[0, WRITE_BACK] != 0
    for i in range(addr.shape[0]):
        a0, nb0, w0, f0 = addr[i], nbytes[i], is_write[i], buf[i]
        if n_shards > 1 and ((a0 >> shift) & 1) != shard:
            continue
        line0 = a0 >> lb0
        if line0 == last[0, 0] and (a0 + nb0 - 1) >> lb0 == line0 and (
                not w0 or (wb0 and not compat)):
            # the line level 1 touched last: a hit that changes no order (the loop below would
            # do exactly this, slower)
            cnt[0, WB if w0 else RB] += nb0
            cnt[0, WH if w0 else RH] += 1
            by_buf[0, f0 if f0 >= 0 else unmapped] += nb0
            if w0:
                meta[last[0, 1]] = (f0 << 1) | 1
            served[i] = 0
            continue
        if i + AHEAD < addr.shape[0]:
            _prefetch_sets(addr[i + AHEAD], cfg, tags, stamp)
        qa[0, 0], qb[0, 0], qw[0, 0], qs[0, 0], qf[0, 0] = a0, nb0, w0, i, f0
        qn[0] = 1
        reach = 0
        for l in range(n_levels):
            if qn[l] == 0:
                qn[n_levels] = 0
                break
            lb, n_sets, mask, ways = cfg[l, LINE_BITS], cfg[l, N_SETS], cfg[l, SET_MASK], cfg[l, WAYS]
            off, lru = cfg[l, OFFSET], cfg[l, POLICY] == LRU
            write_back, write_alloc = cfg[l, WRITE_BACK] != 0, cfg[l, WRITE_ALLOC] != 0
            line_bytes = np.int64(1) << lb
            now = (first_index + i) << STAMP_BITS
            k = 0  # requests pushed to level l + 1
            for r in range(qn[l]):
                a, nb, w, src, owner = qa[l, r], qb[l, r], qw[l, r], qs[l, r], qf[l, r]
                if src >= 0:
                    reach = l
                cnt[l, WB if w else RB] += nb
                by_buf[l, owner if owner >= 0 else unmapped] += nb
                for line in range(a >> lb, ((a + nb - 1) >> lb) + 1):
                    now += 1
                    v, oldest = -1, np.int64(1) << 62  # victim: a free slot (-1) or the LRU line
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
                                qa[l + 1, k], qb[l + 1, k], qw[l + 1, k] = line << lb, line_bytes, False
                                qs[l + 1, k], qf[l + 1, k] = src, owner
                                k += 1
                                cnt[l, BIN] += line_bytes
                            if tags[v] >= 0:
                                cnt[l, EV] += 1
                                if meta[v] & 1:
                                    qa[l + 1, k], qb[l + 1, k] = tags[v] << lb, line_bytes
                                    qw[l + 1, k], qs[l + 1, k], qf[l + 1, k] = True, -1, meta[v] >> 1
                                    k += 1
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
                    lo = max(a, line << lb)  # write-through (or not allocated): pass it down
                    end = lo + line_bytes if compat else (line + 1) << lb
                    part = min(a + nb, end) - lo
                    qa[l + 1, k], qb[l + 1, k], qw[l + 1, k] = lo, part, True
                    qs[l + 1, k], qf[l + 1, k] = src, owner
                    k += 1
                    cnt[l, WBK] += 1
                    cnt[l, BOUT] += part
            qn[l + 1] = k
        m = n_levels
        for r in range(qn[m]):
            a, nb, w, owner = qa[m, r], qb[m, r], qw[m, r], qf[m, r]
            if qs[m, r] >= 0:
                reach = m
            cnt[m, WH if w else RH] += ((a + nb - 1) >> mem_bits) - (a >> mem_bits) + 1
            cnt[m, WB if w else RB] += nb
            by_buf[m, owner if owner >= 0 else unmapped] += nb
        served[i] = reach


@numba.njit(cache=True, parallel=True)
def _run(n_shards, shift, addr, nbytes, is_write, buf, first_index, cfg, compat, mem_bits, qcap,
         tags, meta, stamp, cnt, by_buf, served):
    """Shards in parallel; each writes its own counters and its own `served` row (no two
    threads write one cache line)."""
    for s in numba.prange(n_shards):
        _shard(s, n_shards, shift, addr, nbytes, is_write, buf, first_index, cfg, compat,
               mem_bits, qcap, tags, meta, stamp, cnt[s], by_buf[s], served[s])


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
        self.split = shard_bits(levels)
        n = len(levels)
        # a spare row per shard keeps the two shards' counters on different cache lines
        self.cnt = np.zeros((2, n + 2, N_COUNTERS), np.int64)
        self.by_buf = np.zeros((2, n + 2, n_buffers + 1), np.int64)
        self.accesses = 0

    def feed(self, chunk, buffer_ids: np.ndarray) -> np.ndarray:
        lb0 = self.cfg[0, LINE_BITS]
        spans = len(chunk) and bool(np.any((chunk.addr >> lb0) !=
                                           ((chunk.addr + chunk.nbytes - 1) >> lb0)))
        n_shards = 2 if self.split is not None and not spans else 1
        shift = self.split[0] if self.split is not None else 0
        served = np.zeros((n_shards, len(chunk)), np.int8)
        _run(n_shards, shift, chunk.addr, chunk.nbytes.astype(np.int64),
             chunk.is_write, buffer_ids.astype(np.int64), self.accesses, self.cfg, self.compat,
             self.mem_bits, _queue_capacity(self.levels, int(chunk.nbytes.max(initial=1))), self.tags, self.meta, self.stamp, self.cnt,
             self.by_buf, served)
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
