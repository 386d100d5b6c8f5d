"""Exact LRU stack (reuse) distance, streamed chunk by chunk in O(N log U).

The distance of an access is the number of distinct *other* units touched since the previous
access to the same unit (Mattson et al. 1970): 0 for an immediate repeat, -1 (COLD) for a first
touch. Reads and writes both touch. A unit is whatever the caller feeds: an element address, a
cache-line number. With weights (>= 1), a second distance is kept: the total weight of those
distinct units (with weight = element bytes, the distance in bytes that the sqrt-distance energy
prices). It is the count times the first weight seen, plus the excess (weight - first weight)
of the marks whose weight differs: only those are kept in the weight trees, so a trace of
mostly 4-byte values with a few 1-byte flags pays for the flags alone.

Algorithm (reference/cost-models.md section 1): every unit has one mark, at the position of its
latest access; the distance of an access whose unit was last seen at position p is the number
(or weight) of marks after p. Marks are bits of a bitmap; a Fenwick tree over its 64-bit words
counts whole words and a popcount the last one, so the hot structure is 64x smaller than the
positions and stays in cache. Positions are renumbered densely when
they run out ("compaction"), so memory is bounded by the number of distinct units, not by the
trace length. Unit -> last position lives in a page table (pages of 4096 consecutive unit ids,
found through a small hash of page numbers), which keeps sequential traces cache friendly;
when units turn out sparse (random addresses over a wide range), every unit gets a page of its
own, so memory follows the distinct units.
"""

from __future__ import annotations

import numba
import numpy as np

COLD = -1
PAGE_BITS = 12
PAGE = 1 << PAGE_BITS
BLOCK_BITS = 3  # the Fenwick trees count blocks of 2^3 words = 512 positions
EMPTY = -1

SPARSE_ROWS = 256      # a page table with this many rows or more ...
SPARSE_FILL = 64       # ... that holds fewer than 1/SPARSE_FILL of its slots goes to 1-unit pages

# indices into the scalar state vector
# _TOTAL_W: the marks' total excess weight; _FIRST_W: the first weight (0 before any);
# _N_EXCESS: marks whose weight is not the first
(_NEXT, _N_ROWS, _LAST_PAGE, _LAST_ROW, _TOTAL_C, _TOTAL_W, _FIRST_W, _PAGE_BITS,
 _N_EXCESS) = range(9)
# stop codes of the kernel
_DONE, _GROW_ROWS, _GROW_PAGES, _GROW_POSITIONS = range(4)


@numba.njit(cache=True, inline="always")
def _hash(key, bits):
    return np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits))


@numba.njit(cache=True)
def _page_row(page, page_keys, page_rows, st, n_row_capacity):
    """Row of the page table holding `page`, creating it; -1 = no free row, -2 = hash too full."""
    if page == st[_LAST_PAGE]:
        return st[_LAST_ROW]
    mask = len(page_keys) - 1
    bits = np.int64(np.log2(len(page_keys)))
    h = _hash(page, bits)
    while page_keys[h] != EMPTY and page_keys[h] != page:
        h = (h + 1) & mask
    if page_keys[h] == EMPTY:
        if 4 * (st[_N_ROWS] + 1) > 3 * len(page_keys):
            return -2
        if st[_N_ROWS] >= n_row_capacity:
            return -1
        page_keys[h] = page
        page_rows[h] = st[_N_ROWS]
        st[_N_ROWS] += 1
    st[_LAST_PAGE] = page
    st[_LAST_ROW] = page_rows[h]
    return page_rows[h]


@numba.njit(cache=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@numba.njit(cache=True, inline="always")
def _prefix(tree, block):
    """Sum of the per-block values of blocks 0..block-1."""
    s = 0
    i = block
    while i > 0:
        s += tree[i]
        i -= i & -i
    return s


@numba.njit(cache=True, inline="always")
def _add(tree, block, value):
    i = block + 1
    n = len(tree)
    while i < n:
        tree[i] += value
        i += i & -i


@numba.njit(cache=True, inline="always")
def _count_upto(bits, tree_c, pos):
    """Marks at positions 0..pos: whole blocks from the tree, whole words of the last block and
    the last word by popcount."""
    w = pos >> 6
    s = _prefix(tree_c, w >> BLOCK_BITS)
    for k in range((w >> BLOCK_BITS) << BLOCK_BITS, w):
        s += _popcount(bits[k])
    mask = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(63 - (pos & 63))
    return s + _popcount(bits[w] & mask)


@numba.njit(cache=True, inline="always")
def _excess_upto(pos_w, bits_x, word_w, tree_w, pos):
    """Sum of the weight excesses (weight - the first weight) of the marks at positions
    0..pos: whole blocks from the tree, whole words from their sums, and in the last word only
    the marks whose weight differs (`bits_x`), one by one."""
    w = pos >> 6
    s = _prefix(tree_w, w >> BLOCK_BITS)
    for k in range((w >> BLOCK_BITS) << BLOCK_BITS, w):
        s += word_w[k]
    m = bits_x[w] & (np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(63 - (pos & 63)))
    base = w << 6
    while m:
        low = m & (~m + np.uint64(1))                   # the lowest set bit
        s += pos_w[base + _popcount(low - np.uint64(1))]
        m ^= low
    return s


@numba.njit(cache=True)
def _build(tree, word_values):
    """Fenwick tree over per-block sums of per-word values, in O(n)."""
    tree[:] = 0
    for k in range(len(word_values)):
        tree[(k >> BLOCK_BITS) + 1] += word_values[k]
    for i in range(1, len(tree)):
        j = i + (i & -i)
        if j < len(tree):
            tree[j] += tree[i]


@numba.njit(cache=True)
def _compact(last, pos_ref, pos_w, bits, bits_x, word_w, tree_c, tree_w, st, weighted):
    """Renumber the marked positions 0..U-1 in order; rebuild the bitmap and the trees."""
    j = 0
    for p in range(st[_NEXT]):
        ref = pos_ref[p]
        if ref < 0:
            continue
        last[ref] = j
        pos_ref[j] = ref
        if weighted:
            pos_w[j] = pos_w[p]
        j += 1
    pos_ref[j:] = -1
    if weighted:
        pos_w[j:] = 0
    st[_NEXT] = j
    bits[:] = 0
    counts = np.zeros(len(bits), dtype=np.int64)
    for p in range(j):
        bits[p >> 6] |= np.uint64(1) << np.uint64(p & 63)
        counts[p >> 6] += 1
    _build(tree_c, counts)
    if weighted:
        word_w[:] = 0
        bits_x[:] = 0
        for p in range(j):
            if pos_w[p] != 0:
                word_w[p >> 6] += pos_w[p]
                bits_x[p >> 6] |= np.uint64(1) << np.uint64(p & 63)
        _build(tree_w, word_w)


@numba.njit(cache=True)
def _feed(units, weights, start, out_c, out_w, last, page_keys, page_rows, pos_ref, pos_w,
          bits, bits_x, word_w, tree_c, tree_w, st, weighted):
    """Distances of units[start:]; stops early (with a code) when a table must grow."""
    page_bits = st[_PAGE_BITS]
    offset_mask = (np.int64(1) << page_bits) - 1
    n_row_capacity = len(last) >> page_bits
    cap = len(pos_ref)
    # weights as a first weight w0 and per mark its excess (weight - w0), kept in the trees
    # only where it is not 0: a distance in bytes is w0 x the marks after p + their excesses
    q, total_c, total_x = st[_NEXT], st[_TOTAL_C], st[_TOTAL_W]
    w0, n_x = st[_FIRST_W], st[_N_EXCESS]
    code = _DONE
    i = start
    while i < len(units):
        u = units[i]
        row = _page_row(u >> page_bits, page_keys, page_rows, st, n_row_capacity)
        if row < 0:
            code = _GROW_ROWS if row == -1 else _GROW_PAGES
            break
        if q == cap:
            if 2 * total_c > cap:
                code = _GROW_POSITIONS
                break
            st[_NEXT] = q
            _compact(last, pos_ref, pos_w, bits, bits_x, word_w, tree_c, tree_w, st, weighted)
            q = st[_NEXT]
        ref = (np.int64(row) << page_bits) | (u & offset_mask)
        if weighted and w0 == 0:
            w0 = weights[i]
        p = last[ref]
        if p == EMPTY:
            out_c[i] = COLD
            if weighted:
                out_w[i] = COLD
        else:
            out_c[i] = total_c - _count_upto(bits, tree_c, p)
            bits[p >> 6] &= ~(np.uint64(1) << np.uint64(p & 63))
            _add(tree_c, p >> (6 + BLOCK_BITS), -1)
            total_c -= 1
            pos_ref[p] = -1
            if weighted:
                out_w[i] = out_c[i] * w0
                if n_x > 0:
                    out_w[i] += total_x - _excess_upto(pos_w, bits_x, word_w, tree_w, p)
                x = np.int64(pos_w[p])
                if x != 0:
                    _add(tree_w, p >> (6 + BLOCK_BITS), -x)
                    word_w[p >> 6] -= x
                    bits_x[p >> 6] &= ~(np.uint64(1) << np.uint64(p & 63))
                    total_x -= x
                    n_x -= 1
                    pos_w[p] = 0
        last[ref] = q
        pos_ref[q] = ref
        bits[q >> 6] |= np.uint64(1) << np.uint64(q & 63)
        _add(tree_c, q >> (6 + BLOCK_BITS), 1)
        total_c += 1
        if weighted:
            x = weights[i] - w0
            if x != 0:
                pos_w[q] = x
                _add(tree_w, q >> (6 + BLOCK_BITS), x)
                word_w[q >> 6] += x
                bits_x[q >> 6] |= np.uint64(1) << np.uint64(q & 63)
                total_x += x
                n_x += 1
        q += 1
        i += 1
    st[_NEXT], st[_TOTAL_C], st[_TOTAL_W] = q, total_c, total_x
    st[_FIRST_W], st[_N_EXCESS] = w0, n_x
    return i, code


@numba.njit(cache=True)
def _rehash_pages(page_keys, page_rows, new_keys, new_rows):
    bits = np.int64(np.log2(len(new_keys)))
    mask = len(new_keys) - 1
    for h in range(len(page_keys)):
        k = page_keys[h]
        if k == EMPTY:
            continue
        g = _hash(k, bits)
        while new_keys[g] != EMPTY:
            g = (g + 1) & mask
        new_keys[g] = k
        new_rows[g] = page_rows[h]


@numba.njit(cache=True)
def _insert_pages(page_keys, page_rows, pages):
    """Pages (all distinct, none present) into an empty table, page i at row i."""
    bits = np.int64(np.log2(len(page_keys)))
    mask = len(page_keys) - 1
    for i in range(len(pages)):
        h = _hash(pages[i], bits)
        while page_keys[h] != EMPTY:
            h = (h + 1) & mask
        page_keys[h] = pages[i]
        page_rows[h] = i


class StackDistance:
    """Streaming exact LRU stack distance. Feed unit ids chunk by chunk; state carries over.

        sd = StackDistance(weighted=True)
        d_count, d_weight = sd.feed(units, weights)   # int64 arrays, COLD (-1) for first touches
    """

    def __init__(self, weighted: bool = False, positions: int = 1 << 16):
        self.weighted = weighted
        self._st = np.array([0, 0, -1, -1, 0, 0, 0, PAGE_BITS, 0], dtype=np.int64)
        self._last = np.full(16 * PAGE, EMPTY, dtype=np.int64)
        self._page_keys = np.full(64, EMPTY, dtype=np.int64)
        self._page_rows = np.zeros(64, dtype=np.int32)
        self._alloc_positions(positions)

    @property
    def distinct_units(self) -> int:
        return int(self._st[_TOTAL_C])

    @property
    def page_bits(self) -> int:
        """log2 of the units per page: 12, or 0 once sparse units made every unit a page."""
        return int(self._st[_PAGE_BITS])

    def canonical(self) -> list[np.ndarray]:
        """The state as arrays equal exactly when two states give every future access the same
        distances: the units from least to most recently touched, with their weights."""
        q = int(self._st[_NEXT])
        refs = self._pos_ref[:q]
        marked = refs >= 0
        refs = refs[marked]
        units = self._units_of(refs)
        if not self.weighted:
            return [units]
        return [units, self._st[_FIRST_W] + self._pos_w[:q][marked]]

    def _units_of(self, refs: np.ndarray) -> np.ndarray:
        bits = int(self._st[_PAGE_BITS])
        used = self._page_keys != EMPTY
        page_of_row = np.zeros(int(self._st[_N_ROWS]), np.int64)
        page_of_row[self._page_rows[used]] = self._page_keys[used]
        return (page_of_row[refs >> bits] << bits) | (refs & ((1 << bits) - 1))

    def _alloc_positions(self, cap: int) -> None:
        cap = max(1 << (6 + BLOCK_BITS), cap)
        self._pos_ref = np.full(cap, -1, dtype=np.int64)
        self._pos_w = np.zeros(cap if self.weighted else 1, dtype=np.int32)   # weight excess
        self._bits_x = np.zeros(cap >> 6 if self.weighted else 1, dtype=np.uint64)
        self._bits = np.zeros(cap >> 6, dtype=np.uint64)
        self._word_w = np.zeros(cap >> 6 if self.weighted else 1, dtype=np.int64)
        blocks = cap >> (6 + BLOCK_BITS)
        self._tree_c = np.zeros(blocks + 1, dtype=np.int64)
        self._tree_w = np.zeros(blocks + 1 if self.weighted else 1, dtype=np.int64)

    def feed(self, units: np.ndarray, weights: np.ndarray | None = None):
        """Distances of these accesses: (count distances, weight distances or None)."""
        units = np.ascontiguousarray(units, dtype=np.int64)
        if self.weighted:
            w = np.ascontiguousarray(weights, dtype=np.int64)
            if len(w) != len(units) or (len(w) and (w.min() < 1 or w.max() >= 1 << 31)):
                raise ValueError("weights must be one integer in [1, 2^31) per unit")
        else:
            w = np.zeros(0, dtype=np.int64)
        out_c = np.empty(len(units), dtype=np.int64)
        out_w = np.empty(len(units) if self.weighted else 0, dtype=np.int64)
        i = 0
        while True:
            i, code = _feed(units, w, i, out_c, out_w, self._last, self._page_keys,
                            self._page_rows, self._pos_ref, self._pos_w, self._bits,
                            self._bits_x, self._word_w, self._tree_c, self._tree_w, self._st,
                            self.weighted)
            if code == _DONE:
                return out_c, (out_w if self.weighted else None)
            self._grow(code)

    def _grow(self, code: int) -> None:
        st = self._st
        if (code != _GROW_POSITIONS and st[_PAGE_BITS] > 0 and st[_N_ROWS] >= SPARSE_ROWS
                and SPARSE_FILL * st[_TOTAL_C] < st[_N_ROWS] << st[_PAGE_BITS]):
            self._to_unit_pages()
            return
        if code == _GROW_ROWS:
            self._last = np.concatenate([self._last, np.full_like(self._last, EMPTY)])
        elif code == _GROW_PAGES:
            keys = np.full(2 * len(self._page_keys), EMPTY, dtype=np.int64)
            rows = np.zeros(len(keys), dtype=np.int32)
            _rehash_pages(self._page_keys, self._page_rows, keys, rows)
            self._page_keys, self._page_rows = keys, rows
            self._st[_LAST_PAGE] = -1
        else:
            self._grow_positions()

    def _to_unit_pages(self) -> None:
        """Sparse units (random addresses over a wide range): pages of 4,096 units would each
        hold a few, so every unit becomes a page of its own. Each unit has exactly one mark, at
        its last access: re-key the marked positions, in order, into a fresh table."""
        q = int(self._st[_NEXT])
        marked = np.nonzero(self._pos_ref[:q] >= 0)[0]
        units = self._units_of(self._pos_ref[marked])
        n = len(units)
        size = 1 << max(6, (4 * n // 3 + 2).bit_length())
        self._page_keys = np.full(size, EMPTY, dtype=np.int64)
        self._page_rows = np.zeros(size, dtype=np.int32)
        _insert_pages(self._page_keys, self._page_rows, units)
        self._last = np.full(max(2 * n, 1 << 10), EMPTY, dtype=np.int64)
        self._last[:n] = marked
        self._pos_ref[marked] = np.arange(n)
        self._st[_N_ROWS], self._st[_PAGE_BITS] = n, 0
        self._st[_LAST_PAGE] = self._st[_LAST_ROW] = -1

    def _grow_positions(self) -> None:
        old = (self._pos_ref, self._pos_w)
        self._alloc_positions(2 * len(self._pos_ref))
        n = len(old[0])
        self._pos_ref[:n] = old[0]
        self._pos_w[:len(old[1])] = old[1]
        _compact(self._last, self._pos_ref, self._pos_w, self._bits, self._bits_x, self._word_w,
                 self._tree_c, self._tree_w, self._st, self.weighted)


def line_units(addr: np.ndarray, nbytes: np.ndarray, line_bytes: int):
    """Expand accesses to the cache lines they touch: (line ids, index of the access of each)."""
    shift = int(line_bytes).bit_length() - 1
    first = addr >> shift
    span = ((addr + nbytes - 1) >> shift) - first + 1
    if np.all(span == 1):
        return first, np.arange(len(addr))
    owner = np.repeat(np.arange(len(addr)), span)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(span) - span, span)
    return first[owner] + offset, owner


def stack_distances(units, weights=None):
    """One-shot convenience: distances of a whole unit sequence."""
    sd = StackDistance(weighted=weights is not None)
    return sd.feed(np.asarray(units), None if weights is None else np.asarray(weights))


def trace_distances(trace, granularity: str = "element", line_bytes: int = 64):
    """Stack distances of a whole trace, chunk by chunk: yields (chunk, distances, owner) where
    owner[i] is the access a distance belongs to (identity except for "line", where an access
    spanning lines has one distance per line).

    granularity: "element" (distinct elements), "byte" (bytes of distinct elements, each access
    atomic) or "line" (distinct cache lines of line_bytes)."""
    if granularity not in ("element", "byte", "line"):
        raise ValueError(f"granularity must be element, byte or line, got {granularity!r}")
    sd = StackDistance(weighted=granularity == "byte")
    for chunk in trace:
        if granularity == "line":
            units, owner = line_units(chunk.addr, chunk.nbytes, line_bytes)
            yield chunk, sd.feed(units)[0], owner
        elif granularity == "byte":
            yield chunk, sd.feed(chunk.addr, chunk.nbytes)[1], np.arange(len(chunk))
        else:
            yield chunk, sd.feed(chunk.addr)[0], np.arange(len(chunk))
