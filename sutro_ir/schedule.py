"""Graph -> Schedule: the ordered kernels of one step and the byte layout of their buffers.

A kernel is one node, or a group the fuse pass made (graph.kernels). A value is *materialized*
(it has a buffer) when it leaves its kernel: read by another kernel, predicted, a parameter or
its new version, or the example. A value made and used inside one kernel lives in registers.
Buffers are bump-allocated in one flat byte address space, in the order they are first defined
(parameters, then the example, then the step's values), each aligned to ALIGN bytes; a
parameter's versions share its buffer. The liveness layout (graph.layout == "liveness") lets a
step value take the place of one whose last read is over (`liveness_layout` below).
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
    stores: tuple[str, ...]     # the nodes whose values it writes to memory, in node order
    branches: tuple = ()        # an if: (then kernels, else kernels)

    @property
    def anchor(self) -> Node:
        """The node whose output index space is the kernel's loop nest."""
        return self.nodes[0]

    @property
    def is_branch(self) -> bool:
        return bool(self.branches)


def flat_kernels(kernels):
    """Every kernel in program order: an if's kernel, then its then kernels, then its else
    kernels (the order of layout, liveness and the trace's kernel table)."""
    for k in kernels:
        yield k
        if k.branches:
            yield from flat_kernels(k.branches[0])
            yield from flat_kernels(k.branches[1])


@dataclass(frozen=True)
class Schedule:
    graph: Graph
    kernels: tuple[Kernel, ...]
    buffers: tuple[BufferSlot, ...]

    def slot(self, buffer: str) -> BufferSlot:
        return self.buffers[self._index[buffer]]

    def index(self, buffer: str) -> int:
        """The buffer's row in `buffers` (and in the trace's buffer table)."""
        return self._index[buffer]

    @functools.cached_property
    def _index(self) -> dict:
        return {b.name: i for i, b in enumerate(self.buffers)}

    @functools.cached_property
    def flat(self) -> tuple[Kernel, ...]:
        return tuple(flat_kernels(self.kernels))


def schedule(graph: Graph, start: int = 0) -> Schedule:
    groups = kernel_groups(graph)
    stored = materialized(graph, groups)
    kernels = _kernels(graph, groups, stored)
    if graph.layout == "liveness":
        return Schedule(graph, kernels, liveness_layout(graph, kernels, stored, start))
    return Schedule(graph, kernels, layout(graph, stored, start))


def _kernels(graph: Graph, groups, stored: set[str]) -> tuple[Kernel, ...]:
    out = []
    for g in groups:
        node = graph[g[0]]
        if node.op == "if":             # each node of a branch is a kernel of its own
            branches = tuple(_kernels(graph, [(n.name,) for n in block if n.op != "merge"],
                                      stored) for block in node.branches)
            out.append(Kernel(node.name, (node,), (), branches))
        else:
            out.append(Kernel(_kernel_name(g, stored), tuple(graph[m] for m in g),
                              tuple(m for m in g if m in stored)))
    return tuple(out)


def kernel_groups(graph: Graph) -> list[tuple[str, ...]]:
    """The step's kernels in order: the fused groups, and every other computing node alone (a
    merge is not a kernel: it names what its if wrote)."""
    group_of = {m: g for g in graph.kernels for m in g}
    out = []
    for n in graph.body:
        if n.op == "merge":
            continue
        g = group_of.get(n.name, (n.name,))
        if g[0] == n.name:
            out.append(g)
    return out


def materialized(graph: Graph, groups: list[tuple[str, ...]]) -> set[str]:
    """The values stored in memory: those read outside the kernel that makes them, predicted,
    parameters and their versions, the example, the output of every one-node kernel, and every
    value made inside an if's branches."""
    kernel_of = {m: i for i, g in enumerate(groups) for m in g}
    out = {n.name for n in graph.nodes if n.op in SOURCE_OPS or n.version > 0}
    out |= set(graph.outputs)
    out |= {g[0] for g in groups if len(g) == 1}
    for n in graph.body:
        for a in n.operands:
            if kernel_of.get(a) != kernel_of.get(n.name):
                out.add(a)
    top = {n.name for n in graph.nodes}
    out |= {n.name for n in graph.all_nodes if n.name not in top}
    return {m for m in out if graph[m].op != "if"}


def last_reads(graph: Graph, kernels) -> dict[str, int]:
    """For every buffer, the index (in program order, flat_kernels) of the last kernel that
    reads it or writes a new version of it; an if reads its condition."""
    out: dict[str, int] = {}
    for i, k in enumerate(flat_kernels(kernels)):
        for n in k.nodes:
            for a in (n.operands[:1] if n.op == "if" else n.operands):
                out[graph[a].buffer] = i
            if n.version > 0:           # a write into a buffer keeps it allocated too
                out[n.buffer] = i
    return out


def peak_live_bytes(sched: Schedule) -> int:
    """The most bytes of step values (activations, gradients, temporaries: not parameters or the
    example) stored at once: a value is live from the kernel that stores it to the last kernel
    that reads it."""
    graph, kernels = sched.graph, sched.kernels
    last = last_reads(graph, kernels)
    born: dict[str, int] = {}
    for i, k in enumerate(sched.flat):
        for name in k.stores:
            born.setdefault(graph[name].buffer, i)
    step = [b for b in sched.buffers if b.role not in ("param", "data") and b.name in born]
    live = [0] * (len(sched.flat) + 1)
    for b in step:
        for i in range(born[b.name], max(last.get(b.name, 0), born[b.name]) + 1):
            live[i] += b.nbytes
    return max(live, default=0)


def _kernel_name(group: tuple[str, ...], stored: set[str]) -> str:
    if len(group) == 1:
        return group[0]
    shown = [m.split("@")[0] for m in group if m in stored] or [group[-1]]
    return "fused:" + "+".join(shown)


def layout(graph: Graph, stored: set[str], start: int = 0) -> tuple[BufferSlot, ...]:
    """Bump allocation in definition order; one slot per materialized buffer."""
    names = {n.name for n in graph.all_nodes}
    slots, seen, nxt = [], set(), start
    for n in graph.all_nodes:
        if n.buffer in seen or n.name not in stored:
            continue
        seen.add(n.buffer)
        base = _align(nxt, ALIGN)
        slot = BufferSlot(n.buffer, base, n.dtype, n.shape, role(n, names))
        slots.append(slot)
        nxt = base + slot.nbytes
    return tuple(slots)


def role(n: Node, names: set[str]) -> str:
    """param, data (the example), temp (an unnamed intermediate), grad (named dX for a value
    or parameter X: the convention of hand-written backward passes), else activation."""
    if n.op == "param":
        return "param"
    if n.op == "input":
        return "data"
    if n.name.startswith("%"):
        return "temp"
    if n.name.startswith("d") and n.name[1:] in names:
        return "grad"
    return "activation"


def liveness_layout(graph: Graph, kernels, stored: set[str], start: int = 0):
    """Parameters and the example bump-allocated first; then, kernel by kernel, the values whose
    last read is over free their bytes, and the values the kernel stores take the lowest free
    span that fits (first fit, ALIGN-byte granularity). A value never lands on one the same
    kernel reads."""
    names = {n.name for n in graph.all_nodes}
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
    for i, k in enumerate(flat_kernels(kernels)):
        for end, buf in [x for x in live if x[0] < i]:
            live.remove((end, buf))
            s = slots[buf]
            free = _release(free, s.base, _align(s.nbytes, ALIGN))
        for name in k.stores:
            n = graph[name]
            if n.buffer in slots:
                continue
            size = _align(n_elements(n.shape) * DTYPE_BYTES[n.dtype], ALIGN)
            base, free, top = _take(free, top, size)
            slots[n.buffer] = BufferSlot(n.buffer, base, n.dtype, n.shape, role(n, names))
            live.append((last_read.get(n.buffer, i), n.buffer))
    return tuple(slots[b] for b in dict.fromkeys(n.buffer for n in graph.all_nodes)
                 if b in slots)


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
