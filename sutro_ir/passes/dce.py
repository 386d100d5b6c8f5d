"""`dce`: dead-code elimination (exact). Removes the nodes whose values nothing needs: neither
a parameter update nor a prediction reads them, directly or through other nodes."""

from __future__ import annotations

from ..graph import SOURCE_OPS, Graph, keeping
from . import register


@register("dce", exact=True)
def dce(graph: Graph) -> Graph:
    """Removes every node that neither a parameter update, a prediction nor the reported
    `loss` needs.
    Preserves: every trained weight, prediction and reported loss, bit for bit.
    Changes: the nodes (fewer kernels, reads and writes)."""
    live = {n.name for n in graph.nodes if n.version > 0 or n.op in SOURCE_OPS
            or n.name == "loss"}
    live |= set(graph.outputs)
    for n in reversed(graph.nodes):
        if n.name in live:
            live |= set(n.operands)
    return keeping(graph, [n for n in graph.nodes if n.name in live])
