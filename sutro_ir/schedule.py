"""Graph -> Schedule: the ordered kernels of one step and the byte layout of their buffers.

A kernel is one op for now (the fusion pass of a later issue groups several). Every value that
leaves a kernel is *materialized*: it has a buffer. Buffers are bump-allocated in one flat byte
address space, in the order they are first defined (parameters, then the example, then the
step's values), each aligned to ALIGN bytes. A parameter's versions share its buffer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from simulator.trace import DTYPE_BYTES

from .graph import SOURCE_OPS, Graph, Node
from .ops import n_elements

ALIGN = 64


@dataclass(frozen=True)
class BufferSlot:
    name: str
    base: int
    dtype: str
    shape: tuple
    role: str                   # param | data | grad | activation | temp

    @property
    def elem_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def nbytes(self) -> int:
        return n_elements(self.shape) * self.elem_bytes


@dataclass(frozen=True)
class Kernel:
    name: str
    nodes: tuple[Node, ...]

    @property
    def node(self) -> Node:
        return self.nodes[-1]


@dataclass(frozen=True)
class Schedule:
    graph: Graph
    kernels: tuple[Kernel, ...]
    buffers: tuple[BufferSlot, ...]

    def slot(self, buffer: str) -> BufferSlot:
        return self._slots[buffer]

    @functools.cached_property
    def _slots(self) -> dict:
        return {b.name: b for b in self.buffers}


def schedule(graph: Graph, start: int = 0) -> Schedule:
    kernels = tuple(Kernel(n.name, (n,)) for n in graph.nodes if n.op not in SOURCE_OPS)
    return Schedule(graph, kernels, layout(graph, start))


def layout(graph: Graph, start: int = 0) -> tuple[BufferSlot, ...]:
    """Bump allocation in definition order; one slot per buffer."""
    names = {n.name for n in graph.nodes}
    slots, seen, nxt = [], set(), start
    for n in graph.nodes:
        if n.buffer in seen:
            continue
        seen.add(n.buffer)
        base = -(-nxt // ALIGN) * ALIGN
        slot = BufferSlot(n.buffer, base, n.dtype, n.shape, role(n, names))
        slots.append(slot)
        nxt = base + slot.nbytes
    return tuple(slots)


def role(n: Node, names: set[str]) -> str:
    """param, data (the example), temp (an unnamed intermediate), grad (named dX for a value
    or parameter X: the convention of hand-written backward passes), else activation."""
    if n.op == "param" or n.version > 0:
        return "param"
    if n.op == "input":
        return "data"
    if n.name.startswith("%"):
        return "temp"
    if n.name.startswith("d") and n.name[1:] in names:
        return "grad"
    return "activation"
