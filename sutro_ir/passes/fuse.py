"""`fuse`: operator fusion (exact).

Groups nodes into kernels, each one loop nest over the output index space of its first node
(graph.check_kernel states the rule), so that values made and used inside a kernel stay in
registers and never touch memory: elementwise chains, a matmul with its bias and activation,
siblings that read the same input, and a gradient computed straight into its parameter update.

One pass over the schedule, in order. An elementwise node joins the latest kernel that
- has its shape and room for it (max_ops),
- is connected to it (makes one of its operands, or reads a buffer it reads),
- lies at or after the kernel that makes its latest operand (so it reads nothing computed later),
- and may legally run there: if the node updates a parameter, no kernel it moves above reads
  the old version, and inside the kernel the old version is only read element by element.
Moving the node up to that kernel changes no value: it reads the same versions as before.
A node that reads only parameters, the example and constants (`mul(0.01, W2)`) waits for its
first reader and joins that reader's kernel, or goes just before it.

Every node still runs, whole, in an order that respects every dependency and anti-dependency,
so results are bit-identical; what changes is which values are stored (schedule.materialized).
An if (with the merges right after it) is one node here: it is never fused, nodes move around
it only where they read the same versions, and its blocks are left as they are.
"""

from __future__ import annotations

from ..errors import SirError
from ..graph import SOURCE_OPS, Graph, previous_version, readers, reordered
from ..ops import ANCHORS, OPS
from . import register


class _Kernel:
    def __init__(self, first):
        self.nodes = [first]
        self.shape = first.shape
        self.open = True            # can take more nodes
        self.reads = set(first.operands)

    def add(self, node) -> None:
        self.nodes.append(node)
        self.reads |= set(node.operands)


@register("fuse", exact=True)
def fuse(graph: Graph, max_ops: int = 64, updates: bool = True, anchors: bool = True,
         hoist: bool = True) -> Graph:
    """Operator fusion: elementwise chains, matmul + bias + activation, siblings over the same
    input, gradient into update, each group one loop nest with its intermediates in registers.
    Options: max_ops (nodes per kernel), updates=false (no parameter update joins a kernel),
    anchors=false (only elementwise kernels take more nodes), hoist=false (a node only joins
    the kernel right before it).
    Preserves: every value and trained weight, bit for bit (same ops, same operands).
    Changes: which values are stored: a value read only inside its kernel stays in registers."""
    if not isinstance(max_ops, int) or max_ops < 1:
        raise SirError(f"fuse: max_ops must be a positive integer, got {max_ops!r}")
    read_by = readers(graph)
    sources = {n.name for n in graph.nodes if n.op in SOURCE_OPS}
    kernels: list[_Kernel] = []
    kernel_of: dict[str, _Kernel] = {}
    pending: list = []              # source-only nodes waiting for their first reader

    def place_alone(node, before: _Kernel | None = None) -> None:
        k = _Kernel(node)
        k.open = OPS[node.op].kind in ANCHORS and (anchors or OPS[node.op].kind == "elementwise")
        kernels.insert(kernels.index(before) if before else len(kernels), k)
        kernel_of[node.name] = k

    def legal_from(node, start: int) -> int:
        """The earliest kernel index >= start the node may move up to (len: none)."""
        old = previous_version(node)
        if old is None:
            return start
        for i in range(len(kernels) - 1, start - 1, -1):
            if any(old in m.operands for m in kernels[i].nodes):
                return i if _reads_in_place(kernels[i], old, node.shape) else i + 1
        return start

    def choose(node, extra: int) -> _Kernel | None:
        if OPS[node.op].kind != "elementwise" or (node.version and not updates):
            return None
        made = [kernel_of[a] for a in node.operands if a in kernel_of]
        start = max((kernels.index(k) for k in made), default=0)
        if not hoist:
            start = len(kernels) - 1
        lo = legal_from(node, max(start, 0))
        for i in range(len(kernels) - 1, lo - 1, -1):
            k = kernels[i]
            connected = k in made or bool(k.reads & set(node.operands))
            if k.open and k.shape == node.shape and len(k.nodes) + extra < max_ops and connected:
                return k
        return None

    for node in graph.body:
        if node.op == "if":
            # the if overwrites the buffers its blocks write (its merges follow it at once):
            # whatever waits runs before it
            for p in pending:
                place_alone(p)
            pending.clear()
        if node.version:
            # a pending reader of the old version must run before the update overwrites it
            old = previous_version(node)
            for p in [p for p in pending if old in p.operands]:
                pending.remove(p)
                place_alone(p)
        if (OPS[node.op].kind == "elementwise" and not node.version and node.operands
                and all(a in sources for a in node.operands) and read_by[node.name]
                and node.name not in graph.outputs):
            pending.append(node)
            continue
        waiting = [p for p in pending if p.name in node.operands]
        for p in waiting:
            pending.remove(p)
        target = choose(node, sum(p.shape == node.shape for p in waiting))
        if target is None:             # a new kernel; the waiting nodes of its shape open it
            joins = OPS[node.op].kind == "elementwise" and (updates or not node.version)
            same = [p for p in waiting if joins and p.shape == node.shape][:max_ops - 1]
            first, *rest = [*same, node]
            place_alone(first)
            target = kernel_of[first.name]
            for p in rest:
                target.add(p)
                kernel_of[p.name] = target
            for p in waiting:
                if p not in same:
                    place_alone(p, before=target)
            continue
        for p in waiting:
            if p.shape == target.shape:
                target.add(p)
                kernel_of[p.name] = target
            else:
                place_alone(p, before=target)
        target.add(node)
        kernel_of[node.name] = target
    for p in pending:
        place_alone(p)
    body = [n.name for k in kernels for n in k.nodes]
    return reordered(graph, body, [tuple(n.name for n in k.nodes) for k in kernels
                                   if len(k.nodes) > 1])


def _reads_in_place(kernel: _Kernel, old: str, shape: tuple) -> bool:
    """May an update of `old` join this kernel: does it read `old` only element by element?"""
    return all(OPS[m.op].kind == "elementwise" and m.shape == shape
               for m in kernel.nodes if old in m.operands)
