"""`cse`: common-subexpression elimination (exact). A node that repeats an earlier node's op on
the same operands and attributes is removed; its readers read the earlier value."""

from __future__ import annotations

from ..graph import SOURCE_OPS, Graph, keeping, renamed_reads
from ..ops import RANDOM_OPS
from . import register

# ops whose operands may be swapped without changing a bit of the result. Not add, mul,
# maximum or minimum: with two NaNs numpy returns the first operand's (sign and payload), and
# maximum(-0.0, 0.0) is 0.0 while maximum(0.0, -0.0) is -0.0 (a tie returns the second operand)
COMMUTATIVE = {"eq", "ne"}


@register("cse", exact=True)
def cse(graph: Graph) -> Graph:
    """Computes each (op, operands, attributes) once: a later copy reads the first one's value
    (not for an array that is later written in place, nor for a random draw).
    eq and ne also match with their operands swapped (their results are bit for bit the same);
    add, mul, maximum and minimum do not (NaN payloads and signed zeros follow the order).
    Preserves: every value, bit for bit.
    Changes: the nodes (fewer kernels); the first copy's value lives longer."""
    first: dict[tuple, str] = {}
    same: dict[str, str] = {}
    kept = []
    written = graph.written_buffers                 # arrays written in place
    for n in graph.nodes:
        n = renamed_reads(n, same)
        if n.op in SOURCE_OPS or n.version > 0 or n.op in ("if", *RANDOM_OPS) or \
                n.buffer in written:
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
    return keeping(graph, kept, same)
