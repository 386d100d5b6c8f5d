"""`liveness-layout`: a memory layout that reuses the addresses of dead buffers.

Parameters and the example live for the whole run and keep their own addresses (bump
allocation, first). A step value lives from the kernel that stores it to the last kernel that
reads it; after that kernel its bytes are free, and a value stored by a later kernel may take
them (first fit, lowest address, ALIGN-byte granularity). A value is never placed over one that
the same kernel reads: a kernel's reads and writes never share an address.

Only addresses change, so results are bit-identical; cache behaviour and the address cost change
with them. Trace chunks carry each access's buffer id, because two buffers may now share bytes.
"""

from __future__ import annotations

import dataclasses

from simulator.trace import DTYPE_BYTES

from ..graph import SOURCE_OPS, Graph
from ..ops import n_elements
from ..schedule import ALIGN, BufferSlot, last_reads, role
from . import register


@register("liveness-layout", exact=True)
def liveness_layout_pass(graph: Graph) -> Graph:
    """Lays out step values so that a value may reuse the bytes of one whose last read is over.
    Preserves: every value, bit for bit.
    Changes: addresses, so cache hits, the address cost and the footprint."""
    return dataclasses.replace(graph, layout="liveness")


def liveness_layout(graph: Graph, kernels, stored: set[str], start: int = 0):
    names = {n.name for n in graph.nodes}
    last_read = last_reads(graph, kernels)
    slots: dict[str, BufferSlot] = {}
    nxt = start
    for n in graph.nodes:                       # parameters and the example: bump, first
        if n.op in SOURCE_OPS and n.buffer not in slots:
            base = _align(nxt, ALIGN)
            slots[n.buffer] = BufferSlot(n.buffer, base, n.dtype, n.shape, role(n, names))
            nxt = base + slots[n.buffer].nbytes
    heap = _align(nxt, ALIGN)
    free: list[tuple[int, int]] = []            # (base, size) of free space above heap
    top = heap
    live: list[tuple[int, str]] = []           # (last kernel that reads it, buffer)
    for i, k in enumerate(kernels):
        for end, buf in [x for x in live if x[0] < i]:
            live.remove((end, buf))
            s = slots[buf]
            free = _release(free, s.base, _align(s.nbytes, ALIGN))
        for name in k.stores:
            n = graph[name]
            if n.buffer in slots:
                continue
            size = _align(_nbytes(n), ALIGN)
            base, free, top = _take(free, top, size)
            slots[n.buffer] = BufferSlot(n.buffer, base, n.dtype, n.shape, role(n, names))
            live.append((last_read.get(n.buffer, i), n.buffer))
    return tuple(slots[b] for b in dict.fromkeys(n.buffer for n in graph.nodes) if b in slots)


def _nbytes(n) -> int:
    return n_elements(n.shape) * DTYPE_BYTES[n.dtype]


def _align(x: int, a: int) -> int:
    return -(-x // a) * a


def _take(free, top, size):
    for j, (base, length) in enumerate(free):
        if length >= size:
            rest = free[:j] + ([(base + size, length - size)] if length > size else []) \
                + free[j + 1:]
            return base, rest, top
    return top, free, top + size


def _release(free, base, size):
    """Add [base, base + size) to the free list, merging neighbours."""
    spans = sorted(free + [(base, size)])
    out: list[tuple[int, int]] = []
    for b, n in spans:
        if out and out[-1][0] + out[-1][1] == b:
            out[-1] = (out[-1][0], out[-1][1] + n)
        else:
            out.append((b, n))
    return out
