"""`layer-local-update`: apply each parameter update as early as the graph allows.

The seed's fused layer-wise update, found from the graph instead of written by hand. For every
parameter update, its private chain (the update and the nodes only it reads, such as
`%24 = mul(0.05, %23)` or a gradient used nowhere else) moves up to just after the last of
- the nodes that make what the chain reads (the gradient is complete), and
- the other reads of the parameter's old version (the last read of the old value is done).
The chain moves as one block, in its own order, so a gradient is computed straight into its
update; a chain node that was earlier moves down with it, unless a node it would pass reads its
value or overwrites a version it reads, and then only the chain's later nodes move up. Every
node reads the same versions as before, so the result is bit-identical.

With approximate=true the second condition is dropped: reads of the old version that come after
the gradient is complete (the backward pass's `dh = dout * W2`) read the new version instead,
which is the per-layer schedule the group tried by hand. It changes the arithmetic.
"""

from __future__ import annotations

import dataclasses

from ..errors import SirError
from ..graph import SOURCE_OPS, Graph, Node, previous_version, readers, reordered
from . import Declined, register


@register("layer-local-update", exact=lambda approximate=False: not approximate)
def layer_local_update(graph: Graph, approximate: bool = False) -> Graph:
    """Each layer's parameter update right after its gradient is complete and the old value's
    last read, layer by layer from the top. approximate=true also moves it above later reads of
    the old value, which then read the new one.
    Preserves: every value and trained weight, bit for bit (approximate=true: not; it says so).
    Changes: the order of the updates, and so the reuse distances of gradients and parameters."""
    if graph.kernels:
        raise SirError("layer-local-update reorders nodes: run it before fuse")
    if not isinstance(approximate, bool):
        raise SirError("layer-local-update: approximate must be true or false, "
                       f"got {approximate!r}")
    if graph.has_regions:
        raise Declined("the step has an if; moving updates across blocks is not done yet, so "
                       "the step is left as it was")
    nodes = {n.name: n for n in graph.nodes}
    order = [n.name for n in graph.body]
    for update in [n.name for n in graph.body if n.version > 0]:
        g = reordered(Graph(tuple(nodes.values()), graph.outputs), order)
        chain = private_chain(g, update)
        pos = {m: i for i, m in enumerate(order)}
        needs = [pos[a] for m in chain for a in g[m].operands
                 if a not in chain and g[a].op not in SOURCE_OPS]
        after = max(needs, default=-1)
        old = previous_version(g[update])
        late = [r for r in readers(g)[old] if r not in chain and pos[r] > after]
        if approximate:
            for r in late:
                nodes[r] = _read_new(nodes[r], old, update)
        elif late:
            after = max(pos[r] for r in late)
        if after <= _latest(g, chain, order, pos):
            # the whole chain, in its order, right after that point: its gradient is computed
            # straight into its update
            rest = [m for m in order if m not in chain]
            cut = sum(1 for m in order[:after + 1] if m not in chain)
            order = rest[:cut] + [m for m in order if m in chain] + rest[cut:]
        else:
            # a chain node may not move that far down: only the nodes after the point move up
            moving = [m for m in order[after + 1:] if m in chain]
            rest = [m for m in order[after + 1:] if m not in chain]
            order = order[:after + 1] + moving + rest
    return reordered(Graph(tuple(nodes.values()), graph.outputs), order)


def _latest(g: Graph, chain: set[str], order: list[str], pos: dict) -> int:
    """The last position after which the chain may sit: no node outside it that reads a chain
    value, or overwrites a version a chain node reads, may end up before that chain node."""
    limit = len(order) - 1
    for c in chain:
        reads = set(g[c].operands)
        for m in order[pos[c] + 1:]:
            if m in chain:
                continue
            n = g[m]
            if c in n.operands or (n.version and previous_version(n) in reads):
                limit = min(limit, pos[m] - 1)
                break
    return limit


def private_chain(graph: Graph, update: str) -> set[str]:
    """The update and every node whose value only the chain reads (not a parameter version,
    not predicted), found walking back from the update."""
    read_by = readers(graph)
    chain = {update}
    body = [n.name for n in graph.body]
    for m in reversed(body[:body.index(update)]):
        n = graph[m]
        if n.version == 0 and m not in graph.outputs and read_by[m] \
                and all(r in chain for r in read_by[m]):
            chain.add(m)
    return chain


def _read_new(node: Node, old: str, new: str) -> Node:
    return dataclasses.replace(node, args=tuple(new if a == old else a for a in node.args))
