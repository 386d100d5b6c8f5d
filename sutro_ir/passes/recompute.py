"""`recompute`: rematerialization (exact).

A training step's forward values that the backward pass reads again (activations such as `h`,
pre-activations such as `h_pre`) are normally stored from the forward pass until that read,
far away. Recomputing such a value instead means running its forward ops again, right before
the first backward read, from values that are stored anyway: the parameters, the example and the
checkpoints (the forward values that are not recomputed). Same ops on the same operands: the
clone's bits equal the original's, so the pass is exact. It trades arithmetic and re-reads of
the inputs (often a weight matrix) for a shorter life of the value, which the energy report
weighs.

Forward and backward are told apart by the graph: the backward pass starts at the first node
that reads the label input (y, the example's second value); a candidate is a forward value that
a backward node reads. Policies:
- `values=a+b`: recompute the named values;
- `policy=store-all`: recompute nothing (the baseline);
- `policy=all`: recompute every candidate, from the parameters and the example only;
- `policy=sqrt`: keep every k-th candidate (k = ceil(sqrt(n)), in forward order) as a
  checkpoint and recompute the others: the classic sqrt(n) checkpointing schedule;
- `policy=auto`: greedy, by the simulator: starting from store-all, each candidate in turn is
  recomputed if that lowers the energy of one traced step (the graph as `fuse` would make it,
  on the hierarchy and energy preset given as options).
A clone that would read a parameter version its update has already overwritten is not made: that
value stays stored (named explicitly, it is an error).
"""

from __future__ import annotations

import dataclasses
import math

from ..errors import SirError
from ..graph import SOURCE_OPS, Graph, Node, previous_version, readers
from ..ops import RANDOM_OPS
from . import Declined, register

POLICIES = ("store-all", "all", "sqrt", "auto")


@register("recompute", exact=True)
def recompute(graph: Graph, values: str = "", policy: str = "", hierarchy: str = "sutro-tiers",
              energy: str = "dally-2020") -> Graph:
    """Recomputes forward values right before the backward pass reads them, instead of storing
    them. Options: values=a+b (which), or policy=store-all|all|sqrt|auto; auto also takes
    hierarchy= and energy= (defaults sutro-tiers, dally-2020).
    Preserves: every value and trained weight, bit for bit (the clones run the same ops).
    Changes: more arithmetic and re-reads of the inputs, shorter lives of the recomputed values."""
    if graph.kernels:
        raise SirError("recompute adds nodes: run it before fuse")
    if graph.has_regions:
        raise Declined("the step has an if; recompute does not yet look across blocks, so the "
                       "step is left as it was")
    cands = candidates(graph)
    if bool(values) == bool(policy):
        raise SirError("recompute takes one of values=a+b or policy="
                       + "|".join(POLICIES))
    if values:
        names = [v.strip() for v in str(values).split("+") if v.strip()]
        for v in names:
            if v not in cands:
                raise SirError(f"recompute: '{v}' is not a forward value that the "
                               f"backward pass reads (candidates: {', '.join(cands) or 'none'})")
        return _apply(graph, names, cands, strict=True)
    if policy not in POLICIES:
        raise SirError(f"recompute: unknown policy '{policy}' "
                       f"(one of {', '.join(POLICIES)})")
    if policy == "store-all":
        return graph
    if policy == "all":
        return _apply(graph, cands, cands, strict=False)
    if policy == "sqrt":
        k = max(1, math.ceil(math.sqrt(len(cands))))
        keep = set(cands[k - 1::k])
        return _apply(graph, [c for c in cands if c not in keep], cands, strict=False)
    return _auto(graph, cands, hierarchy, energy)


def candidates(graph: Graph) -> list[str]:
    """Forward values (computed, not a parameter version, not an array later written in place,
    not a random draw) that a backward node reads, in forward order."""
    backward = _backward(graph)
    read_by = readers(graph)
    written = graph.written_buffers                 # arrays written in place
    return [n.name for n in graph.body if n.name not in backward and n.version == 0
            and n.op not in RANDOM_OPS and n.buffer not in written
            and any(r in backward for r in read_by[n.name])]


def recomputed_values(before: Graph, after: Graph) -> list[str]:
    """The candidates of `before` that the backward pass of `after` no longer reads (it reads
    their clones)."""
    backward = _backward(after)
    return [v for v in candidates(before)
            if not any(v in n.operands for n in after.body if n.name in backward)]


def _backward(graph: Graph) -> set[str]:
    """The nodes from the first one that reads the label (or a value made from it) on."""
    inputs = [n.name for n in graph.nodes if n.op == "input"]
    label, body = set(inputs[1:2]), [n.name for n in graph.body]
    for i, n in enumerate(graph.body):
        if any(a in label for a in n.operands):
            return set(body[i:])
    return set()


def _apply(graph: Graph, names: list[str], cands: list[str], strict: bool) -> Graph:
    """Clone each named value right before its first backward reader, with the forward values it
    needs that are not stored (every forward value but the checkpoints: the candidates not
    recomputed); the backward readers read the clone."""
    keep = set(cands) - set(names)
    backward = _backward(graph)
    nodes = list(graph.nodes)
    fresh = _names({n.name for n in nodes})
    for v in [c for c in cands if c in set(names)]:
        by_name = {n.name: n for n in nodes}
        late = [i for i, n in enumerate(nodes) if n.name in backward and v in n.operands]
        at = min(late)
        clones: dict[str, str] = {}
        made: list[Node] = []
        _clone(v, by_name, keep, backward, clones, made, fresh)
        overwritten = _overwritten_before(nodes[:at], made)
        if overwritten:
            if strict:
                raise SirError(f"recompute: '{v}' cannot be recomputed where the "
                               f"backward pass reads it: '{overwritten}' is already updated")
            continue
        nodes = nodes[:at] + made + [
            dataclasses.replace(n, args=tuple(clones[v] if a == v else a for a in n.args))
            if n.name in backward else n for n in nodes[at:]]
    return Graph(tuple(nodes), graph.outputs, (), graph.layout)


def _clone(v: str, by_name, keep: set, backward: set, clones: dict, made: list, fresh) -> None:
    """Clones of v and of the forward values it reads that are not stored, operands first."""
    if v in clones:
        return
    n = by_name[v]
    for a in n.operands:
        m = by_name[a]
        if m.op not in SOURCE_OPS and m.op not in RANDOM_OPS and m.version == 0 \
                and a not in backward and a not in keep:      # a draw is read, never redrawn
            _clone(a, by_name, keep, backward, clones, made, fresh)
    clones[v] = next(fresh)
    made.append(dataclasses.replace(n, name=clones[v], args=tuple(
        clones.get(a, a) if isinstance(a, str) else a for a in n.args)))


def _overwritten_before(prefix: list[Node], made: list[Node]) -> str:
    """A parameter version the clones read that an update in `prefix` has replaced."""
    replaced = {previous_version(n) for n in prefix if n.version}
    for m in made:
        for a in m.operands:
            if a in replaced:
                return a
    return ""


def _names(taken: set):
    """Fresh temporaries, numbered after the highest one in use."""
    i = 1 + max((int(t[1:]) for t in taken if t[:1] == "%" and t[1:].isdigit()), default=-1)
    while True:
        yield f"%{i}"
        i += 1


def _auto(graph: Graph, cands: list[str], hierarchy: str, energy: str) -> Graph:
    from .fuse import fuse

    chosen: list[str] = []
    best = _step_energy(fuse(graph), hierarchy, energy)
    for c in cands:
        trial = _apply(graph, chosen + [c], cands, strict=False)
        e = _step_energy(fuse(trial), hierarchy, energy)
        if e < best:
            best, chosen = e, chosen + [c]
    return _apply(graph, chosen, cands, strict=False)


def _step_energy(graph: Graph, hierarchy: str, energy: str) -> float:
    """Energy (fJ) of one training step after the first, simulated (run-time indices taken
    as 0: the step's addresses, not its values, decide the choice)."""
    from simulator.hierarchy import load_hierarchy
    from simulator.simulate import simulate

    from ..schedule import schedule
    from ..tracegen import StepTrace, representative_path

    sched = schedule(graph)
    inputs = [n.name for n in graph.nodes if n.op == "input"]
    params = [n.name for n in graph.nodes if n.op == "param"]
    paths = (representative_path(sched),)        # run-time indices 0: in range, and fixed
    trace = StepTrace(sched, inputs[0], inputs[1], params, paths).trace([1], {})
    return simulate(trace, load_hierarchy(hierarchy), energy).energy.total
