"""Cache simulation of a `Hierarchy` over a trace: numba kernels per level and a streaming driver.

This module owns hits, misses, evictions, writebacks and the bytes moved between levels. It is
fed chunk by chunk (`CacheSim.feed`) and keeps each level's state between chunks. Hierarchies
whose levels are all LRU/FIFO with few ways take the fast path in `cache_fused` (same counts,
checked against this module's general path in tests/test_cache.py). The general path, here,
takes every policy and size and processes the levels one after the other per chunk: level 1
turns the chunk's accesses into hits and misses and emits the request stream for level 2 (per
missing line: a fill load of the line, THEN, if the victim is dirty, a writeback store of the
victim; a write-through or non-allocating store passes down itself), level 2 processes that
stream, and so on down to memory, which serves everything.
This order is exactly pycachesim's depth-first recursion (`Cache__load` loads from below before
`Cache__inject` writes the victim back), so counts agree with it (tests/test_vs_pycachesim.py).

Kernels:
- *scan* (ways <= 32): a set's tags are kept in recency order (LRU: most recent first; FIFO:
  newest first; invalid last), scanned linearly and shifted on a move to the front, as
  pycachesim does. O(ways), which the lookup pays anyway, and fewer memory lines touched than a
  linked list or timestamps; the victim is the last valid line (or an invalid slot).
- *hash* (ways > 32, e.g. a 65,536-line fully associative level): an open-addressing hash table
  (linear probing, backward-shift deletion) maps line -> slot; LRU/FIFO order is a per-set
  doubly linked list: O(1) per access whatever the size. Keys sit next to their values and
  each slot's prev next to its next, so a probe or a link touches one host cache line.
- *random*: victim drawn by a seeded in-kernel xorshift64 (invalid slots first).
- *opt* (Belady): needs the next use of each line in the level's own input stream, which depends
  on the levels above. A hierarchy with an OPT level is therefore simulated up front, on the whole
  trace held in memory (streams materialized level by level; `CacheSim(..., trace=...)`); `feed`
  then hands back each chunk's part. Victim = the line used farthest in the future (scan for
  small sets, a lazy max-heap for large fully associative levels).
- Fast path: an access to the same line as the level's previous access is a hit that changes no
  order (exact for LRU, FIFO and random), so no lookup is made.

Semantics (write-back, write-allocate by default). A hit by a write refreshes LRU recency: that is
real LRU, and it is what the LRU stack distance of DESIGN.md (Mattson: reads and writes are both
touches) predicts, so a fully associative LRU level agrees with the stack-distance histogram.
pycachesim 0.3.1 differs (backend.c `Cache__store`): a store that hits only sets the dirty bit; it
neither counts a hit nor refreshes LRU, and a write-back, non-write-allocate store miss installs
the line dirty without fetching it. That is a simplification of its store path, not a hardware
behaviour; `Hierarchy.pycachesim_compat=True` reproduces it, for validation only, together with
one more pycachesim quirk: the part of a line-spanning write-through store passed down is capped
at a line's length from its start rather than at the line's end, so it may overrun the line.
Without compat, a non-write-allocate store miss passes the store down and allocates nothing.

Attribution: each request a level receives is charged to a buffer (`bytes_by_level_buffer`): an
access's own requests (its fills, its stores) to the access's buffer; a writeback to the buffer of
the access that last made that line dirty (tracked per line, at every level).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numba
import numpy as np

from . import cache_fused
from .cache_counters import (BIN, BOUT, EV, LAST_LINE, LAST_SLOT, LRU, N_COUNTERS, POLICY_IDS,
                             RANDOM, RB, RH, RM, SCAN_MAX_WAYS, WB, WBK, WH, WM)
from .cache_counters import log2 as _log2
from .errors import SimError
from .hierarchy import Hierarchy, Level

PIECE = 1 << 16                    # output buffer entries per level (bounded memory)
NEVER = np.int64(1) << 62          # next use of a line never used again (OPT)
_HASH_MUL = np.int64(-7046029254386353131)   # 0x9E3779B97F4A7C15 as int64


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class LevelStats:
    """One level's counts. At levels below the first, "read" = fill requests from above and
    "write" = writebacks / stores from above. Memory serves every request (all hits)."""

    name: str
    capacity_bytes: int | None
    line_bytes: int
    ways: int | None
    policy: str
    read_hits: int
    read_misses: int
    write_hits: int
    write_misses: int
    read_bytes: int
    write_bytes: int
    evictions: int
    writebacks: int
    bytes_in: int
    bytes_out: int

    @property
    def hits(self) -> int:
        return self.read_hits + self.write_hits

    @property
    def misses(self) -> int:
        return self.read_misses + self.write_misses

    @property
    def accesses(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        return self.hits / self.accesses if self.accesses else 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "capacity_bytes": self.capacity_bytes,
                "line_bytes": self.line_bytes, "ways": self.ways, "policy": self.policy,
                "accesses": self.accesses, "hits": self.hits, "misses": self.misses,
                "hit_rate": self.hit_rate, "read_hits": self.read_hits,
                "read_misses": self.read_misses, "write_hits": self.write_hits,
                "write_misses": self.write_misses, "read_bytes": self.read_bytes,
                "write_bytes": self.write_bytes, "evictions": self.evictions,
                "writebacks": self.writebacks, "in_bytes": self.bytes_in,
                "out_bytes": self.bytes_out}


# ----------------------------------------------------------------------------- kernel helpers

@numba.njit(cache=True, inline="always")
def _set_of(line, n_sets, set_mask):
    return line & set_mask if set_mask >= 0 else line % n_sets


@numba.njit(cache=True, inline="always")
def _emit(out_a, out_nb, out_w, out_src, out_buf, k, a, nb, w, src, buf):
    out_a[k] = a
    out_nb[k] = nb
    out_w[k] = w
    out_src[k] = src
    out_buf[k] = buf
    return k + 1


@numba.njit(cache=True, inline="always")
def _xorshift(rng):
    x = rng[0]
    x ^= x << np.uint64(13)
    x ^= x >> np.uint64(7)
    x ^= x << np.uint64(17)
    rng[0] = x
    return x


@numba.njit(cache=True, inline="always")
def _request(in_a, in_nb, in_w, in_src, in_buf, i, has_src, line_bits):
    """Request i of a level's input: (address, bytes, write, buffer, first and last line,
    the access it serves)."""
    a, nb = np.int64(in_a[i]), np.int64(in_nb[i])
    return (a, nb, in_w[i], in_buf[i], a >> line_bits, (a + nb - 1) >> line_bits,
            in_src[i] if has_src else i)


@numba.njit(cache=True, inline="always")
def _charge(by_buf, served, src, buf, nb, lvl):
    """Bytes of a request to its buffer's column; the access it serves reached level `lvl`."""
    col = buf if buf >= 0 else by_buf.shape[0] - 1
    by_buf[col] += nb
    if src >= 0 and served[src] < lvl:
        served[src] = lvl


@numba.njit(cache=True, inline="always")
def _clip(a, nb, line, line_bits, compat):
    """The part of request [a, a+nb) inside `line`: (bytes, start). pycachesim's
    `Cache__get_range_from_cl_id_and_range` caps the part at one line's length from its start
    rather than at the line's end (so the part can overrun the line); compat reproduces that."""
    lo = max(a, line << line_bits)
    end = lo + (np.int64(1) << line_bits) if compat else (line + 1) << line_bits
    return min(a + nb, end) - lo, lo


@numba.njit(cache=True)
def count_line_touches(addr, nbytes, line_bits):
    """Lines touched by a stream of requests (an upper bound for the next level's stream / 2)."""
    total = 0
    for i in range(addr.shape[0]):
        total += ((addr[i] + nbytes[i] - 1) >> line_bits) - (addr[i] >> line_bits) + 1
    return total


@numba.njit(cache=True, inline="always")
def _shift_in(tags, meta, base, n, line, m):
    """Shift positions [0, n) of a set one to the right and put (line, m) at position 0."""
    for j in range(n, 0, -1):
        tags[base + j] = tags[base + j - 1]
        meta[base + j] = meta[base + j - 1]
    tags[base] = line
    meta[base] = m


# ----------------------------------------------------------------------------- scan kernel

@numba.njit(cache=True)
def _scan_level(tags, meta, rng, st, cfg, in_a, in_nb, in_w, in_src, in_buf,
                out_a, out_nb, out_w, out_src, out_buf, served, lvl, by_buf, start):
    """One set-associative level (ways <= 32) over requests [start, ...) of a stream, until the
    output is full; returns (requests emitted, next request to process).

    A set's tags are kept in order, most recent (LRU) or newest (FIFO) first, invalid (-1) last;
    `meta` = owner buffer * 2 + dirty bit, moved along with its tag."""
    line_bits, n_sets, set_mask, ways = cfg[0], cfg[1], cfg[2], cfg[3]
    policy, write_back, write_alloc, compat = cfg[4], cfg[5] != 0, cfg[6] != 0, cfg[7] != 0
    line_bytes = np.int64(1) << line_bits
    rh, rm, wh, wm, rb, wb = st[RH], st[RM], st[WH], st[WM], st[RB], st[WB]
    ev, wbk, bin_, bout = st[EV], st[WBK], st[BIN], st[BOUT]
    last_line, last_slot = st[LAST_LINE], st[LAST_SLOT]
    has_src = in_src.shape[0] > 0
    k, i, n, cap = 0, start, in_a.shape[0], out_a.shape[0]
    while i < n:
        a, nb, w, buf, first, last, src = _request(in_a, in_nb, in_w, in_src, in_buf, i,
                                                   has_src, line_bits)
        if k + 2 * (last - first + 1) > cap:
            break           # output full: the driver passes it down and calls again from i
        wb += nb * w
        rb += nb * (not w)
        _charge(by_buf, served, src, buf, nb, lvl)
        for line in range(first, last + 1):
            base, p = 0, 0
            if line == last_line:
                slot = last_slot
            else:
                base = _set_of(line, n_sets, set_mask) * ways
                p = 0
                while p < ways and tags[base + p] != line and tags[base + p] >= 0:
                    p += 1
                if p < ways and tags[base + p] == line:
                    slot = base + p
                    if policy == LRU and p > 0 and not (compat and w):
                        _shift_in(tags, meta, base, p, line, meta[slot])
                        slot = base
                else:
                    slot = -1
            if slot >= 0:
                if w:
                    wh += 1
                else:
                    rh += 1
                if not (compat and w):
                    last_line, last_slot = line, slot
                elif line != last_line:
                    last_line = -1
            else:
                if w:
                    wm += 1
                else:
                    rm += 1
                fill = (not w) or write_alloc
                if fill or (compat and write_back):
                    if fill:
                        k = _emit(out_a, out_nb, out_w, out_src, out_buf, k,
                                  line << line_bits, line_bytes, False, src, buf)
                        bin_ += line_bytes
                    # p = number of valid lines in the set (the scan stopped at the first invalid)
                    if policy == RANDOM and p == ways:
                        p = np.int64(_xorshift(rng) % np.uint64(ways))
                    v = min(p, ways - 1)
                    if tags[base + v] >= 0:
                        ev += 1
                        if meta[base + v] & 1:
                            k = _emit(out_a, out_nb, out_w, out_src, out_buf, k,
                                      tags[base + v] << line_bits, line_bytes, True, -1,
                                      meta[base + v] >> 1)
                            wbk += 1
                            bout += line_bytes
                    if policy == RANDOM:
                        slot = base + v
                        tags[slot] = line
                        meta[slot] = buf << 1
                    else:
                        _shift_in(tags, meta, base, v, line, buf << 1)
                        slot = base
                    last_line, last_slot = line, slot
                else:
                    last_line = -1
            if w:
                if slot >= 0 and write_back:
                    meta[slot] = (buf << 1) | 1
                else:
                    nbl, lo = _clip(a, nb, line, line_bits, compat)
                    k = _emit(out_a, out_nb, out_w, out_src, out_buf, k, lo, nbl, True, src, buf)
                    wbk += 1
                    bout += nbl
        i += 1
    st[RH], st[RM], st[WH], st[WM], st[RB], st[WB] = rh, rm, wh, wm, rb, wb
    st[EV], st[WBK], st[BIN], st[BOUT] = ev, wbk, bin_, bout
    st[LAST_LINE], st[LAST_SLOT] = last_line, last_slot
    return k, i


# ----------------------------------------------------------------------------- hash kernel

@numba.njit(cache=True, inline="always")
def _hpos(key, hmask):
    return ((key * _HASH_MUL) >> 32) & hmask


@numba.njit(cache=True, inline="always")
def _hfind(htab, hmask, key):
    """Slot holding line `key`, or -1. `htab` interleaves (key, slot) pairs, so a probe touches
    one host cache line, not two arrays."""
    i = _hpos(key, hmask)
    while htab[2 * i] != -1:
        if htab[2 * i] == key:
            return htab[2 * i + 1]
        i = (i + 1) & hmask
    return -1


@numba.njit(cache=True, inline="always")
def _hput(htab, hmask, key, val):
    i = _hpos(key, hmask)
    while htab[2 * i] != -1:
        i = (i + 1) & hmask
    htab[2 * i] = key
    htab[2 * i + 1] = val


@numba.njit(cache=True, inline="always")
def _hdel(htab, hmask, key):
    """Remove `key` (present) by backward shift, so probes never meet tombstones."""
    i = _hpos(key, hmask)
    while htab[2 * i] != key:
        i = (i + 1) & hmask
    j = i
    while True:
        j = (j + 1) & hmask
        if htab[2 * j] == -1:
            break
        home = _hpos(htab[2 * j], hmask)
        stays = (i < home <= j) if i <= j else (home > i or home <= j)
        if stays:
            continue
        htab[2 * i] = htab[2 * j]
        htab[2 * i + 1] = htab[2 * j + 1]
        i = j
    htab[2 * i] = -1


@numba.njit(cache=True, inline="always")
def _unlink(link, head, tail, s, slot):
    """`link` interleaves (prev, next) per slot."""
    p, n = link[2 * slot], link[2 * slot + 1]
    if p >= 0:
        link[2 * p + 1] = n
    else:
        head[s] = n
    if n >= 0:
        link[2 * n] = p
    else:
        tail[s] = p


@numba.njit(cache=True, inline="always")
def _push_front(link, head, tail, s, slot):
    link[2 * slot] = -1
    link[2 * slot + 1] = head[s]
    if head[s] >= 0:
        link[2 * head[s]] = slot
    else:
        tail[s] = slot
    head[s] = slot


@numba.njit(cache=True)
def _list_order(link, head, out):
    """The slots of every set's list, set after set, head (most recent) first; returns how many."""
    k = 0
    for s in range(head.shape[0]):
        slot = head[s]
        while slot >= 0:
            out[k] = slot
            k += 1
            slot = link[2 * slot + 1]
    return k


@numba.njit(cache=True, inline="always")
def _hash_victim(tags, link, head, tail, fill, s, ways, policy, rng, htab, hmask):
    """Free or evicted slot of set `s`, unlinked from its list and from the hash table."""
    if fill[s] < ways:
        fill[s] += 1
        return s * ways + fill[s] - 1
    if policy == RANDOM:
        slot = s * ways + np.int64(_xorshift(rng) % np.uint64(ways))
    else:
        slot = tail[s]
    _unlink(link, head, tail, s, slot)
    _hdel(htab, hmask, tags[slot])
    return slot


@numba.njit(cache=True)
def _hash_level(tags, dirty, owner, link, head, tail, fill, htab, rng, st, cfg,
                in_a, in_nb, in_w, in_src, in_buf,
                out_a, out_nb, out_w, out_src, out_buf, served, lvl, by_buf, start):
    """One highly associative level (ways > 32): hash lookup, per-set linked-list order.
    Same contract as `_scan_level`."""
    line_bits, n_sets, set_mask, ways = cfg[0], cfg[1], cfg[2], cfg[3]
    policy, write_back, write_alloc, compat = cfg[4], cfg[5] != 0, cfg[6] != 0, cfg[7] != 0
    hmask = htab.shape[0] // 2 - 1
    line_bytes = np.int64(1) << line_bits
    rh, rm, wh, wm, rb, wb = st[RH], st[RM], st[WH], st[WM], st[RB], st[WB]
    ev, wbk, bin_, bout = st[EV], st[WBK], st[BIN], st[BOUT]
    last_line, last_slot = st[LAST_LINE], st[LAST_SLOT]
    has_src = in_src.shape[0] > 0
    k, i, n, cap = 0, start, in_a.shape[0], out_a.shape[0]
    while i < n:
        a, nb, w, buf, first, last, src = _request(in_a, in_nb, in_w, in_src, in_buf, i,
                                                   has_src, line_bits)
        if k + 2 * (last - first + 1) > cap:
            break           # output full: the driver passes it down and calls again from i
        wb += nb * w
        rb += nb * (not w)
        _charge(by_buf, served, src, buf, nb, lvl)
        for line in range(first, last + 1):
            s = _set_of(line, n_sets, set_mask)
            slot = last_slot if line == last_line else _hfind(htab, hmask, line)
            if slot >= 0 and line != last_line and policy == LRU and not (compat and w):
                _unlink(link, head, tail, s, slot)
                _push_front(link, head, tail, s, slot)
            if slot >= 0:
                if w:
                    wh += 1
                else:
                    rh += 1
                if not (compat and w):
                    last_line, last_slot = line, slot
                elif line != last_line:
                    last_line = -1
            else:
                if w:
                    wm += 1
                else:
                    rm += 1
                fill_line = (not w) or write_alloc
                if fill_line or (compat and write_back):
                    if fill_line:
                        k = _emit(out_a, out_nb, out_w, out_src, out_buf, k,
                                  line << line_bits, line_bytes, False, src, buf)
                        bin_ += line_bytes
                    slot = _hash_victim(tags, link, head, tail, fill, s, ways, policy, rng,
                                        htab, hmask)
                    if tags[slot] >= 0:
                        ev += 1
                        if dirty[slot]:
                            k = _emit(out_a, out_nb, out_w, out_src, out_buf, k,
                                      tags[slot] << line_bits, line_bytes, True, -1, owner[slot])
                            wbk += 1
                            bout += line_bytes
                    tags[slot] = line
                    dirty[slot] = 0
                    owner[slot] = buf
                    _hput(htab, hmask, line, slot)
                    _push_front(link, head, tail, s, slot)
                    last_line, last_slot = line, slot
                else:
                    last_line = -1
            if w:
                if slot >= 0 and write_back:
                    dirty[slot] = 1
                    owner[slot] = buf
                else:
                    nbl, lo = _clip(a, nb, line, line_bits, compat)
                    k = _emit(out_a, out_nb, out_w, out_src, out_buf, k, lo, nbl, True, src, buf)
                    wbk += 1
                    bout += nbl
        i += 1
    st[RH], st[RM], st[WH], st[WM], st[RB], st[WB] = rh, rm, wh, wm, rb, wb
    st[EV], st[WBK], st[BIN], st[BOUT] = ev, wbk, bin_, bout
    st[LAST_LINE], st[LAST_SLOT] = last_line, last_slot
    return k, i


# ----------------------------------------------------------------------------- dense kernel

DENSE_MAX_LINES = 1 << 22      # a fully associative level indexes lines directly below this
QUEUE_PER_LINE = 4             # recency queue entries per line of capacity


@numba.njit(cache=True)
def _dense_level(stamp, meta, queue, qstamp, qst, st, cfg,
                 in_a, in_nb, in_w, in_src, in_buf,
                 out_a, out_nb, out_w, out_src, out_buf, served, lvl, by_buf, start):
    """One fully associative LRU or FIFO level over a dense range of lines. Same contract and
    the same counts as `_hash_level`, with other structures: `stamp[line]` is the time the line
    was last touched (LRU) or filled (FIFO), -1 when it is not held; `meta[line]` its owner and
    dirty bit (owner << 1 | dirty); `queue` lists (line, stamp) in time order, so the least
    recent line held is the first entry whose stamp is still its line's. Entries made stale by
    a later touch are skipped there and dropped when the queue is compacted. One array read and
    one append per touch, where the hash kernel probes a table and relinks a list."""
    line_bits, ways = cfg[0], cfg[3]
    policy, write_back, write_alloc = cfg[4], cfg[5] != 0, cfg[6] != 0
    line_bytes = np.int64(1) << line_bits
    rh, rm, wh, wm, rb, wb = st[RH], st[RM], st[WH], st[WM], st[RB], st[WB]
    ev, wbk, bin_, bout = st[EV], st[WBK], st[BIN], st[BOUT]
    last_line = st[LAST_LINE]
    head, tail, held, clock = qst[0], qst[1], qst[2], qst[3]
    qcap = queue.shape[0]
    has_src = in_src.shape[0] > 0
    k, i, n, cap = 0, start, in_a.shape[0], out_a.shape[0]
    while i < n:
        a, nb, w, buf, first, last, src = _request(in_a, in_nb, in_w, in_src, in_buf, i,
                                                   has_src, line_bits)
        if k + 2 * (last - first + 1) > cap:
            break           # output full: the driver passes it down and calls again from i
        wb += nb * w
        rb += nb * (not w)
        _charge(by_buf, served, src, buf, nb, lvl)
        for line in range(first, last + 1):
            hit = line == last_line or stamp[line] >= 0
            if hit:
                if w:
                    wh += 1
                else:
                    rh += 1
                if line != last_line and policy == LRU:
                    if tail == qcap:
                        head, tail = _compact_queue(stamp, queue, qstamp, head, tail)
                    clock += 1
                    stamp[line] = clock
                    queue[tail] = line
                    qstamp[tail] = clock
                    tail += 1
                last_line = line
            else:
                if w:
                    wm += 1
                else:
                    rm += 1
                if (not w) or write_alloc:
                    k = _emit(out_a, out_nb, out_w, out_src, out_buf, k,
                              line << line_bits, line_bytes, False, src, buf)
                    bin_ += line_bytes
                    if held == ways:                       # evict the least recent line
                        while qstamp[head] != stamp[queue[head]]:
                            head += 1
                        victim = queue[head]
                        head += 1
                        ev += 1
                        if meta[victim] & 1:
                            k = _emit(out_a, out_nb, out_w, out_src, out_buf, k,
                                      victim << line_bits, line_bytes, True, -1,
                                      meta[victim] >> 1)
                            wbk += 1
                            bout += line_bytes
                        stamp[victim] = -1
                    else:
                        held += 1
                    if tail == qcap:
                        head, tail = _compact_queue(stamp, queue, qstamp, head, tail)
                    clock += 1
                    stamp[line] = clock
                    meta[line] = np.int64(buf) << 1
                    queue[tail] = line
                    qstamp[tail] = clock
                    tail += 1
                    last_line = line
                    hit = True                              # the line is held now
                else:
                    last_line = -1
            if w:
                if hit and write_back:
                    meta[line] = (np.int64(buf) << 1) | 1
                else:
                    nbl, lo = _clip(a, nb, line, line_bits, False)
                    k = _emit(out_a, out_nb, out_w, out_src, out_buf, k, lo, nbl, True, src, buf)
                    wbk += 1
                    bout += nbl
        i += 1
    st[RH], st[RM], st[WH], st[WM], st[RB], st[WB] = rh, rm, wh, wm, rb, wb
    st[EV], st[WBK], st[BIN], st[BOUT] = ev, wbk, bin_, bout
    st[LAST_LINE] = last_line
    qst[0], qst[1], qst[2], qst[3] = head, tail, held, clock
    return k, i


@numba.njit(cache=True)
def _compact_queue(stamp, queue, qstamp, head, tail):
    """Drop the stale entries, keeping the order; returns the new (head, tail)."""
    j = 0
    for t in range(head, tail):
        if qstamp[t] == stamp[queue[t]]:
            queue[j] = queue[t]
            qstamp[j] = qstamp[t]
            j += 1
    return 0, j


@numba.njit(cache=True)
def _held_order(stamp, queue, qstamp, head, tail, out):
    """The lines held, most recent (LRU) or newest (FIFO) first; returns how many."""
    k = 0
    for t in range(tail - 1, head - 1, -1):
        if qstamp[t] == stamp[queue[t]]:
            out[k] = queue[t]
            k += 1
    return k


# ----------------------------------------------------------------------------- OPT kernel

@numba.njit(cache=True, inline="always")
def _first(k1, s1, k2, s2):
    """Does entry (k1, s1) leave the OPT heap before (k2, s2)? The later next use first; among
    lines never used again (equal keys), the lowest slot, as the scan victim does, so that every
    kernel evicts the same dead line and writes back the same dirty one."""
    return k1 > k2 or (k1 == k2 and s1 < s2)


@numba.njit(cache=True)
def _heap_push(hk, hs, n, key, slot):
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if not _first(key, slot, hk[p], hs[p]):
            break
        hk[i], hs[i] = hk[p], hs[p]
        i = p
    hk[i], hs[i] = key, slot
    return n + 1


@numba.njit(cache=True)
def _heap_pop(hk, hs, n):
    """Remove the root of the heap of n entries (ordered by `_first`); returns the new size."""
    n -= 1
    key, slot = hk[n], hs[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _first(hk[c + 1], hs[c + 1], hk[c], hs[c]):
            c += 1
        if not _first(hk[c], hs[c], key, slot):
            break
        hk[i], hs[i] = hk[c], hs[c]
        i = c
    if n > 0:
        hk[i], hs[i] = key, slot
    return n


@numba.njit(cache=True)
def _opt_victim(tags, nu, base, ways, use_heap, hk, hs, hn):
    """Slot of set `base` whose line is used farthest in the future (invalid slots first)."""
    if not use_heap:
        best = base
        for j in range(ways):
            if tags[base + j] < 0:
                return base + j, hn
            if nu[base + j] > nu[best]:
                best = base + j
        return best, hn
    while hn > 0 and hk[0] != nu[hs[0]]:
        hn = _heap_pop(hk, hs, hn)        # stale: that slot has been touched since
    slot = hs[0]
    return slot, _heap_pop(hk, hs, hn)


@numba.njit(cache=True)
def _opt_level(tags, nu, dirty, owner, htab, st, cfg, in_a, in_nb, in_w, in_src, in_buf,
               next_use, out_a, out_nb, out_w, out_src, out_buf, served, lvl, by_buf):
    """Belady's OPT over single-line requests with known next-use positions."""
    line_bits, n_sets, set_mask, ways = cfg[0], cfg[1], cfg[2], cfg[3]
    write_back, write_alloc = cfg[5] != 0, cfg[6] != 0
    line_bytes = np.int64(1) << line_bits
    use_hash = ways > SCAN_MAX_WAYS
    use_heap = use_hash and n_sets == 1
    hmask = htab.shape[0] // 2 - 1
    hk = np.empty(in_a.shape[0] + tags.shape[0] + 1, np.int64)
    hs = np.empty(in_a.shape[0] + tags.shape[0] + 1, np.int64)
    hn = 0
    free = 0
    k = 0
    for i in range(in_a.shape[0]):
        a, nb, w, buf, src = np.int64(in_a[i]), np.int64(in_nb[i]), in_w[i], in_buf[i], in_src[i]
        st[WB if w else RB] += nb
        _charge(by_buf, served, src, buf, nb, lvl)
        line = a >> line_bits
        base = _set_of(line, n_sets, set_mask) * ways
        slot = -1
        if use_hash:
            slot = _hfind(htab, hmask, line)
        else:
            for j in range(ways):
                if tags[base + j] == line:
                    slot = base + j
                    break
        if slot >= 0:
            st[WH if w else RH] += 1
        else:
            st[WM if w else RM] += 1
            if (not w) or write_alloc:
                k = _emit(out_a, out_nb, out_w, out_src, out_buf, k,
                          line << line_bits, line_bytes, False, src, buf)
                st[BIN] += line_bytes
                if use_heap and free < ways:
                    slot = free
                    free += 1
                else:
                    slot, hn = _opt_victim(tags, nu, base, ways, use_heap, hk, hs, hn)
                if tags[slot] >= 0:
                    st[EV] += 1
                    if dirty[slot]:
                        k = _emit(out_a, out_nb, out_w, out_src, out_buf, k,
                                  tags[slot] << line_bits, line_bytes, True, -1, owner[slot])
                        st[WBK] += 1
                        st[BOUT] += line_bytes
                    if use_hash:
                        _hdel(htab, hmask, tags[slot])
                tags[slot] = line
                dirty[slot] = 0
                owner[slot] = buf
                if use_hash:
                    _hput(htab, hmask, line, slot)
        if slot >= 0:
            nu[slot] = next_use[i]
            if use_heap:
                hn = _heap_push(hk, hs, hn, next_use[i], slot)
        if w:
            if slot >= 0 and write_back:
                dirty[slot] = 1
                owner[slot] = buf
            else:
                k = _emit(out_a, out_nb, out_w, out_src, out_buf, k, a, nb, True, src, buf)
                st[WBK] += 1
                st[BOUT] += nb
    return k


@numba.njit(cache=True)
def _split_lines(in_a, in_nb, in_w, in_src, in_buf, line_bits, n_out):
    """Split requests into single-line requests (for OPT, whose next-use is per line)."""
    a = np.empty(n_out, np.int64)
    nb = np.empty(n_out, np.int32)
    w = np.empty(n_out, np.bool_)
    src = np.empty(n_out, np.int32)
    buf = np.empty(n_out, np.int32)
    has_src = in_src.shape[0] > 0
    k = 0
    for i in range(in_a.shape[0]):
        ai, ni = np.int64(in_a[i]), np.int64(in_nb[i])
        for line in range(ai >> line_bits, ((ai + ni - 1) >> line_bits) + 1):
            nbl, lo = _clip(ai, ni, line, line_bits, False)
            k = _emit(a, nb, w, src, buf, k, lo, nbl, in_w[i], in_src[i] if has_src else i,
                      in_buf[i])
    return a, nb, w, src, buf


def next_use_positions(lines: np.ndarray) -> np.ndarray:
    """For each position, the next position touching the same line (NEVER if none)."""
    order = np.argsort(lines, kind="stable")
    nxt = np.full(len(lines), NEVER, dtype=np.int64)
    same = lines[order[1:]] == lines[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


# ----------------------------------------------------------------------------- memory

@numba.njit(cache=True)
def _memory_level(st, line_bits, in_a, in_nb, in_w, in_src, in_buf, served, lvl, by_buf):
    """Main memory: every request hits; counts memory lines touched and bytes."""
    has_src = in_src.shape[0] > 0
    for i in range(in_a.shape[0]):
        a, nb, w = np.int64(in_a[i]), np.int64(in_nb[i]), in_w[i]
        n_lines = ((a + nb - 1) >> line_bits) - (a >> line_bits) + 1
        st[WH if w else RH] += n_lines
        st[WB if w else RB] += nb
        _charge(by_buf, served, in_src[i] if has_src else i, in_buf[i], nb, lvl)


# ----------------------------------------------------------------------------- driver

class _LevelState:
    """The arrays of one cache level, kept between chunks, and its output buffers."""

    def __init__(self, level: Level, compat: bool, lines: int = 0):
        """`lines`: how many lines the trace's buffers span (0: unknown)."""
        self.level = level
        n_lines, n_sets, ways = level.n_lines, level.n_sets, level.assoc
        set_mask = n_sets - 1 if n_sets & (n_sets - 1) == 0 else -1
        self.cfg = np.array([_log2(level.line_bytes), n_sets, set_mask, ways,
                             POLICY_IDS[level.policy], level.write_back, level.write_allocate,
                             compat], dtype=np.int64)
        self.hashed = ways > SCAN_MAX_WAYS
        self.dense = (self.hashed and n_sets == 1 and level.policy in ("lru", "fifo")
                      and not compat and 0 < lines <= DENSE_MAX_LINES)
        self.rng = np.array([0x9E3779B97F4A7C15 ^ (level.seed * 0x2545F4914F6CDD1D + 1)
                             & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
        self.st = np.zeros(N_COUNTERS, np.int64)
        self.st[LAST_LINE] = -1
        self._out = None
        if self.dense:        # the slot arrays and the hash table come if it leaves its range
            self.stamp = np.full(lines, -1, np.int64)
            self.dmeta = np.zeros(lines, np.int64)
            self.queue = np.zeros(QUEUE_PER_LINE * ways, np.int64)
            self.qstamp = np.zeros(QUEUE_PER_LINE * ways, np.int64)
            self.qst = np.zeros(4, np.int64)      # head, tail, lines held, clock
            return
        self._init_slots(n_lines)
        if self.hashed or level.policy == "opt":
            self._init_hash(n_lines, n_sets)
        if not self.hashed:
            self.meta = np.full(n_lines, -2, np.int32)

    def __deepcopy__(self, memo):
        """A copy of the state, without the scratch output buffers (simulate.py's snapshots)."""
        new = object.__new__(_LevelState)
        for key, value in vars(self).items():
            setattr(new, key, None if key == "_out" else copy.deepcopy(value, memo))
        return new

    def _init_slots(self, n_lines: int) -> None:
        self.tags = np.full(n_lines, -1, np.int64)
        self.dirty = np.zeros(n_lines, np.uint8)
        self.owner = np.full(n_lines, -1, np.int32)

    def _init_hash(self, n_lines: int, n_sets: int) -> None:
        size = 1 << max(4, (2 * n_lines - 1).bit_length())
        self.htab = np.full(2 * size, -1, np.int64)      # (line, slot) pairs
        self.link = np.full(2 * n_lines, -1, np.int64)   # (prev, next) slot pairs
        self.head = np.full(n_sets, -1, np.int64)
        self.tail = np.full(n_sets, -1, np.int64)
        self.fill = np.zeros(n_sets, np.int64)
        self.nu = np.full(n_lines, -1, np.int64)

    def outputs(self, max_request_bytes: int):
        """The reused output buffers, with room for at least one request's fills and writebacks."""
        need = max(PIECE, 2 * (max_request_bytes // self.level.line_bytes + 2))
        if self._out is None or len(self._out[0]) < need:
            self._out = (np.empty(need, np.int64), np.empty(need, np.int32),
                         np.empty(need, np.bool_), np.empty(need, np.int32),
                         np.empty(need, np.int32))
        return self._out

    def step(self, stream, start: int, served, lvl: int, by_buf):
        """Process requests from `start` until the output buffer is full or the stream ends;
        returns (the output piece, as views, and where to resume)."""
        out = self.outputs(int(stream[1].max()) if start == 0 else 0)
        if self.dense and start == 0 and len(stream[0]):
            self._cover(int((stream[0] + stream[1] - 1).max()) >> int(self.cfg[0]))
        if self.dense:
            k, stop = _dense_level(self.stamp, self.dmeta, self.queue, self.qstamp, self.qst,
                                   self.st, self.cfg, *stream, *out, served, lvl, by_buf, start)
        elif self.hashed:
            k, stop = _hash_level(self.tags, self.dirty, self.owner, self.link,
                                  self.head, self.tail, self.fill, self.htab,
                                  self.rng, self.st, self.cfg, *stream, *out, served, lvl,
                                  by_buf, start)
        else:
            k, stop = _scan_level(self.tags, self.meta, self.rng, self.st, self.cfg, *stream,
                                  *out, served, lvl, by_buf, start)
        return tuple(col[:k] for col in out), stop

    def _cover(self, line: int) -> None:
        """Make the dense tables reach `line`: grown, or, past DENSE_MAX_LINES, the level moves
        to the hash kernel with the same lines in the same order."""
        if line < len(self.stamp):
            return
        if line < DENSE_MAX_LINES:
            size = min(DENSE_MAX_LINES, max(2 * len(self.stamp), line + 1))
            self.stamp = np.concatenate([self.stamp, np.full(size - len(self.stamp), -1,
                                                             np.int64)])
            self.dmeta = np.concatenate([self.dmeta, np.zeros(size - len(self.dmeta), np.int64)])
            return
        held = self.held()
        n = len(held)
        self._init_slots(self.level.n_lines)
        self._init_hash(self.level.n_lines, 1)
        for slot, line in enumerate(held[::-1]):       # oldest first: the newest ends in front
            self.tags[slot] = line
            self.dirty[slot] = self.dmeta[line] & 1
            self.owner[slot] = self.dmeta[line] >> 1
            _hput(self.htab, self.htab.shape[0] // 2 - 1, line, slot)
            _push_front(self.link, self.head, self.tail, 0, slot)
        self.fill[0] = n
        self.st[LAST_LINE] = -1
        self.dense = False
        del self.stamp, self.dmeta, self.queue, self.qstamp, self.qst

    def held(self) -> np.ndarray:
        """A dense level's lines, most recent (LRU) or newest (FIFO) first."""
        out = np.empty(int(self.qst[2]), np.int64)
        k = _held_order(self.stamp, self.queue, self.qstamp, self.qst[0], self.qst[1], out)
        return out[:k]

    def run_opt(self, stream, served, lvl: int, by_buf):
        """OPT over a whole materialized stream (split per line, next uses computed)."""
        line_bits = self.cfg[0]
        n = count_line_touches(stream[0], stream[1], line_bits)
        split = _split_lines(*stream, line_bits, n)
        next_use = next_use_positions(split[0] >> line_bits)
        out = tuple(np.empty(2 * max(n, 1), dt) for dt in
                    (np.int64, np.int32, np.bool_, np.int32, np.int32))
        k = _opt_level(self.tags, self.nu, self.dirty, self.owner, self.htab,
                       self.st, self.cfg, *split, next_use, *out, served, lvl, by_buf)
        return tuple(col[:k] for col in out)


def level_stats(level: Level, st: np.ndarray) -> LevelStats:
    """A level's counter row as LevelStats; memory serves every request (all hits)."""
    if level.is_memory:
        return LevelStats(level.name, None, level.line_bytes, None, level.policy, int(st[RH]), 0,
                          int(st[WH]), 0, int(st[RB]), int(st[WB]), 0, 0, 0, 0)
    return LevelStats(level.name, level.capacity_bytes, level.line_bytes, level.ways,
                      level.policy,
                      *(int(st[i]) for i in (RH, RM, WH, WM, RB, WB, EV, WBK, BIN, BOUT)))


_EMPTY_SRC = np.empty(0, np.int32)


class CacheSim:
    """Streams chunks of a trace through a hierarchy.

        sim = CacheSim(load_hierarchy("cpu-like"), n_buffers=len(trace.buffers))
        for chunk in trace:
            served = sim.feed(chunk, trace.buffer_ids(chunk))
        stats = sim.finish()

    `served[i]` is the index of the deepest level that access i's data requests reached.
    `bytes_by_level_buffer[l, b]` is the bytes of requests level l received charged to buffer b
    (last column: addresses outside every buffer). A hierarchy with an OPT level needs `trace`:
    it is simulated whole at construction (see the module docstring).
    """

    def __init__(self, hierarchy: Hierarchy, n_buffers: int, trace=None, fused: bool = True,
                 dense: bool = True):
        if not isinstance(n_buffers, (int, np.integer)) or n_buffers < 0:
            raise SimError(f"n_buffers must be an integer >= 0, got {n_buffers!r}", "cache")
        self.hierarchy = hierarchy
        self.n_buffers = int(n_buffers)
        compat = hierarchy.pycachesim_compat
        self._memory = hierarchy.levels[-1]
        self._opt_served = None
        self._fused = None
        if fused and cache_fused.eligible(hierarchy.levels[:-1]):
            self._fused = cache_fused.FusedHierarchy(hierarchy.levels[:-1], self._memory,
                                                     self.n_buffers, compat)
            return
        # the dense kernel needs the range of lines in use, which the buffer table gives
        extent = max((b.base + b.nbytes for b in trace.buffers), default=0) \
            if trace is not None and dense else 0
        self._levels = [_LevelState(lv, compat, -(-extent // lv.line_bytes))
                        for lv in hierarchy.levels[:-1]]
        self._memory_st = np.zeros(N_COUNTERS, np.int64)
        self._bytes = np.zeros((len(hierarchy.levels), self.n_buffers + 1), np.int64)
        if any(lv.policy == "opt" for lv in hierarchy.levels[:-1]):
            self._simulate_whole(trace)

    @property
    def bytes_by_level_buffer(self) -> np.ndarray:
        """[level, buffer]: bytes of the requests each level received, charged to buffers."""
        if self._fused is not None:
            return self._fused.bytes_by_level_buffer()
        return self._bytes

    def feed(self, chunk, buffer_ids: np.ndarray) -> np.ndarray:
        """Simulate one chunk; returns `served` (int8 per access)."""
        buffer_ids = self._check_ids(chunk, buffer_ids)
        if self._fused is not None:
            return self._fused.feed(chunk, buffer_ids)
        if self._opt_served is not None:
            return self._next_opt_part(len(chunk))
        served = np.zeros(len(chunk), np.int8)
        self._run(self._first_stream(chunk, buffer_ids), served)
        return served

    def finish(self) -> list[LevelStats]:
        """One LevelStats per level, memory last."""
        return [level_stats(lv, row) for lv, row in zip(self.hierarchy.levels, self.counters())]

    def counters(self) -> np.ndarray:
        """[level, counter] so far, memory last (a copy)."""
        if self._fused is not None:
            return self._fused.counters()
        return np.array([lv.st for lv in self._levels] + [self._memory_st])

    @property
    def replayable(self) -> bool:
        """Is what a chunk does a function of the cache state and the chunk alone? Not with a
        random level (its draws) or an OPT level (it looks ahead over the whole trace)."""
        return all(lv.policy in ("lru", "fifo") for lv in self.hierarchy.levels[:-1])

    def canonical(self) -> list[np.ndarray]:
        """The state as arrays that are equal exactly when two states answer every future
        request alike: per set, its lines from most to least recent (LRU) or newest to oldest
        (FIFO), each with its dirty bit and the buffer a writeback is charged to. Slot numbers,
        stamps and the last-line shortcut are left out: no count depends on them. Copies, never
        a kernel's live arrays: a kept state must not change as the machine runs on."""
        if self._fused is not None:
            return self._fused.canonical()
        out = []
        for st in self._levels:
            if st.dense:          # as the hash kernel gives it, so that the two compare
                held = st.held()
                meta = st.dmeta[held]
                out += [np.array([len(held)], np.int64), held, (meta & 1).astype(np.uint8),
                        (meta >> 1).astype(np.int32)]
            elif st.hashed:
                order = np.empty(len(st.tags), np.int64)
                k = _list_order(st.link, st.head, order)
                order = order[:k]
                out += [st.fill.copy(), st.tags[order], st.dirty[order], st.owner[order]]
            else:  # the scan kernel keeps each set in recency order
                out += [st.tags.copy(), st.meta.copy()]
        return out

    # -- internals

    def _check_ids(self, chunk, buffer_ids) -> np.ndarray:
        ids = np.asarray(buffer_ids)
        if ids.shape != (len(chunk),):
            raise SimError(f"buffer_ids has shape {ids.shape}, the chunk has {len(chunk)} "
                           f"accesses", "cache")
        if ids.dtype != np.int32:
            ids = ids.astype(np.int32)
        if len(ids) and (ids.min() < -1 or ids.max() >= self.n_buffers):
            raise SimError(f"buffer id {ids.max() if ids.max() >= self.n_buffers else ids.min()} "
                           f"is not in the buffer table ({self.n_buffers} rows)", "cache")
        return ids

    @staticmethod
    def _first_stream(chunk, ids):
        return (chunk.addr, chunk.nbytes, chunk.is_write, _EMPTY_SRC, ids)

    def _run(self, stream, served, lvl: int = 0) -> None:
        """Level `lvl` processes the stream piece by piece (bounded buffers), each piece going
        all the way down before the next is made: the same order as processing it whole."""
        by_buf = self._bytes[lvl]
        if lvl == len(self._levels):
            _memory_level(self._memory_st, _log2(self._memory.line_bytes), *stream, served,
                          lvl, by_buf)
            return
        state = self._levels[lvl]
        if state.level.policy == "opt":
            self._run(state.run_opt(stream, served, lvl, by_buf), served, lvl + 1)
            return
        start, n = 0, len(stream[0])
        while start < n:
            piece, start = state.step(stream, start, served, lvl, by_buf)
            self._run(piece, served, lvl + 1)

    def _simulate_whole(self, trace) -> None:
        if trace is None:
            raise SimError("a hierarchy with an 'opt' level needs the whole trace up front "
                           "(CacheSim(..., trace=trace))", self.hierarchy.source or "cache")
        parts = [(c, trace.buffer_ids(c)) for c in trace]
        cols = [np.concatenate([getattr(c, n) for c, _ in parts]) if parts else
                np.empty(0, dt) for n, dt in (("addr", np.int64), ("nbytes", np.int32),
                                              ("is_write", np.bool_))]
        ids = np.concatenate([i for _, i in parts]).astype(np.int32) if parts else \
            np.empty(0, np.int32)
        self._opt_served = np.zeros(len(ids), np.int8)
        self._opt_pos = 0
        stream = (cols[0], cols[1], cols[2], np.arange(len(ids), dtype=np.int32), ids)
        self._run(stream, self._opt_served)

    def _next_opt_part(self, n: int) -> np.ndarray:
        lo = self._opt_pos
        if lo + n > len(self._opt_served):
            raise SimError("with an 'opt' level, feed() must be given the chunks of the trace "
                           "passed to CacheSim, in order", "cache")
        self._opt_pos = lo + n
        return self._opt_served[lo:lo + n]



def simulate_hierarchy(hierarchy: Hierarchy, trace) -> tuple[list[LevelStats], np.ndarray]:
    """Run a whole trace; returns the level stats and bytes_by_level_buffer."""
    sim = CacheSim(hierarchy, len(trace.buffers), trace)
    for chunk in trace:
        sim.feed(chunk, trace.buffer_ids(chunk))
    return sim.finish(), sim.bytes_by_level_buffer
