"""Graph hygiene: dead-code elimination (`dce`) and common-subexpression elimination (`cse`).
Both only remove nodes whose values nothing needs or another node already computes, so both
are exact."""

from __future__ import annotations

import dataclasses

from ..graph import SOURCE_OPS, Graph
from . import register

COMMUTATIVE = {"add", "mul", "maximum", "minimum", "eq", "ne"}


@register("dce", exact=True)
def dce(graph: Graph) -> Graph:
    """Removes every node that neither a parameter update nor a prediction needs.
    Preserves: every trained weight and prediction, bit for bit.
    Changes: the nodes (fewer kernels, reads and writes)."""
    live = {n.name for n in graph.nodes if n.version > 0 or n.op in SOURCE_OPS}
    live |= set(graph.outputs)
    for n in reversed(graph.nodes):
        if n.name in live:
            live |= set(n.operands)
    return _keep(graph, [n for n in graph.nodes if n.name in live], {})


@register("cse", exact=True)
def cse(graph: Graph) -> Graph:
    """Computes each (op, operands, attributes) once: a later copy reads the first one's value.
    Commutative ops (add, mul, maximum, minimum, eq, ne) match with their operands swapped: in
    IEEE arithmetic they commute exactly.
    Preserves: every value, bit for bit.
    Changes: the nodes (fewer kernels); the first copy's value lives longer."""
    first: dict[tuple, str] = {}
    same: dict[str, str] = {}
    kept = []
    for n in graph.nodes:
        n = dataclasses.replace(n, args=tuple(same.get(a, a) if isinstance(a, str) else a
                                              for a in n.args))
        if n.op in SOURCE_OPS or n.version > 0:
            kept.append(n)
            continue
        args = n.args
        if n.op in COMMUTATIVE:
            args = tuple(sorted(args, key=lambda a: (not isinstance(a, str), repr(a))))
        key = (n.op, args, n.attrs, n.dtype, n.shape)
        if key in first:
            same[n.name] = first[key]
        else:
            first[key] = n.name
            kept.append(n)
    return _keep(graph, kept, same)


def _keep(graph: Graph, nodes: list, renamed: dict) -> Graph:
    names = {n.name for n in nodes}
    groups = tuple(g for g in (tuple(m for m in k if m in names) for k in graph.kernels)
                   if len(g) > 1)
    return Graph(tuple(nodes), tuple(renamed.get(o, o) for o in graph.outputs), groups,
                 graph.layout)
