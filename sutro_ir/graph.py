"""The graph IR: frozen SSA nodes in an ordered tuple. The order is the schedule.

- A node defines one value: `name = op(args, attrs) : dtype[shape]`. An argument is the name of an
  earlier node or a constant (a Python number, an immediate).
- `param` nodes are the parameters at the start of a step, `input` nodes the example (x, y).
- A parameter update defines a new *version* of the parameter, `W1@1`, `W1@2`, ..., stored in the
  parameter's own buffer. Every read of the old version must come before the update: that
  anti-dependency is an edge of the networkx view, and `verify` checks it.
- Source locations never take part in equality.
- `kernels` lists the fused groups a pass made (runs of consecutive nodes executed as one loop
  nest, see `check_kernel`); every other node is a kernel of its own. `layout` names the memory
  layout the schedule uses ("bump", or "liveness" after the layout pass).

networkx is a derived view (`nx_graph`), built on demand for analysis; the tuple is the truth.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from .errors import NOWHERE, Loc, SirError
from .ops import OPS, RANK, Operand, OpError, infer, show

SOURCE_OPS = ("param", "input")


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    args: tuple = ()             # names of earlier nodes (str) or constants (int/float/bool)
    attrs: tuple = ()            # ((key, value), ...) sorted by key
    dtype: str = "f32"
    shape: tuple = ()
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)

    @property
    def buffer(self) -> str:
        """The buffer that stores this value: a parameter's versions share the parameter's."""
        return self.name.split("@")[0]

    @property
    def version(self) -> int:
        return int(self.name.split("@")[1]) if "@" in self.name else 0

    @property
    def operands(self) -> tuple[str, ...]:
        return tuple(a for a in self.args if isinstance(a, str))

    @property
    def type(self) -> str:
        return show(self.dtype, self.shape)


@dataclass(frozen=True)
class Graph:
    """One loop body: a training step, or the evaluation of one example."""

    nodes: tuple[Node, ...]
    outputs: tuple[str, ...] = ()
    kernels: tuple[tuple[str, ...], ...] = ()   # fused groups of two or more nodes
    layout: str = "bump"

    @functools.cached_property
    def by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def __getitem__(self, name: str) -> Node:
        return self.by_name[name]

    @property
    def body(self) -> tuple[Node, ...]:
        """The nodes that compute (everything but params and inputs), in schedule order."""
        return tuple(n for n in self.nodes if n.op not in SOURCE_OPS)

    def nx_graph(self):
        return nx_view(self)


def nx_view(graph: Graph):
    """networkx DiGraph: node per value (attribute `node`), edges 'data' (def -> use) and 'anti'
    (read of an old parameter version -> the update that overwrites it)."""
    import networkx as nx

    g = nx.DiGraph()
    for n in graph.nodes:
        g.add_node(n.name, node=n)
    for n in graph.nodes:
        for a in n.operands:
            g.add_edge(a, n.name, kind="data")
    for update, old in _updates(graph):
        for reader in _readers(graph, old):
            if reader != update.name:
                g.add_edge(reader, update.name, kind="anti")
    return g


def previous_version(n: Node) -> str | None:
    """The name of the version an update replaces (W1 for W1@1, W1@1 for W1@2), else None."""
    if n.version == 0:
        return None
    return n.buffer if n.version == 1 else f"{n.buffer}@{n.version - 1}"


def readers(graph: Graph) -> dict[str, list[str]]:
    """For every value, the nodes that read it, in schedule order."""
    out: dict[str, list[str]] = {n.name: [] for n in graph.nodes}
    for n in graph.nodes:
        for a in dict.fromkeys(n.operands):
            out[a].append(n.name)
    return out


def reordered(graph: Graph, body: list[str], kernels=()) -> Graph:
    """The graph with its computing nodes in a new order (sources stay first), and new fused
    groups."""
    sources = tuple(n for n in graph.nodes if n.op in SOURCE_OPS)
    return Graph(sources + tuple(graph[m] for m in body), graph.outputs,
                 tuple(tuple(k) for k in kernels), graph.layout)


def keeping(graph: Graph, nodes: list, renamed: dict | None = None) -> Graph:
    """The graph with only `nodes` (in their order); outputs follow `renamed` (a removed value ->
    the value that replaces it); fused groups lose the removed nodes."""
    renamed = renamed or {}
    names = {n.name for n in nodes}
    groups = tuple(g for g in (tuple(m for m in k if m in names) for k in graph.kernels)
                   if len(g) > 1)
    return Graph(tuple(nodes), tuple(renamed.get(o, o) for o in graph.outputs), groups,
                 graph.layout)


def _updates(graph: Graph):
    """(update node, name of the version it replaces) for every parameter update."""
    for n in graph.nodes:
        if n.version > 0:
            yield n, n.buffer if n.version == 1 else f"{n.buffer}@{n.version - 1}"


def _readers(graph: Graph, name: str) -> list[str]:
    return [n.name for n in graph.nodes if name in n.operands]


# ----------------------------------------------------------------------------- verify

def verify(graph: Graph, where: str = "graph") -> Graph:
    """Unique names, defs before uses, types that follow the op rules, parameter versions in
    sequence, and an order that respects every anti-dependency. Returns the graph."""
    seen: dict[str, Node] = {}
    for n in graph.nodes:
        _check_node(n, seen, where)
        seen[n.name] = n
    for update, old in _updates(graph):
        _check_update(graph, update, old, where)
    for out in graph.outputs:
        if out not in seen:
            raise SirError(f"{where}: output '{out}' is not defined", None)
    position = {n.name: i for i, n in enumerate(graph.nodes)}
    grouped: set[str] = set()
    for group in graph.kernels:
        if grouped & set(group):
            raise SirError(f"{where}: '{sorted(grouped & set(group))[0]}' is in two kernels", None)
        grouped |= set(group)
        check_kernel(graph, group, position, where)
    return graph


def check_kernel(graph: Graph, group: tuple[str, ...], position: dict, where: str) -> None:
    """A fused kernel is one loop nest over the output index space of its first node (the
    anchor: any op). The others are elementwise ops of that shape, evaluated per iteration in
    registers, so they must be consecutive nodes of the schedule, and an update in the kernel may
    only overwrite what the kernel reads of the old version at the same index: every reader of
    the old version inside the kernel is elementwise and reads it unbroadcast."""
    if len(group) < 2:
        raise SirError(f"{where}: a fused kernel needs two nodes or more, got {list(group)}", None)
    missing = [m for m in group if m not in position]
    if missing:
        raise SirError(f"{where}: fused kernel names '{missing[0]}', which is not a node", None)
    first = position[group[0]]
    if [position[m] for m in group] != list(range(first, first + len(group))):
        raise SirError(f"{where}: fused kernel {'+'.join(group)} is not a run of consecutive "
                       "nodes", graph[group[0]].loc)
    anchor = graph[group[0]]
    if anchor.op in SOURCE_OPS:
        raise SirError(f"{where}: fused kernel starts with {anchor.op} '{anchor.name}'", None)
    for m in group[1:]:
        n = graph[m]
        if OPS[n.op].kind != "elementwise" or n.shape != anchor.shape:
            raise SirError(f"{where}: '{m}' ({n.op}, {n.type}) cannot join the loop nest of "
                           f"'{anchor.name}' ({anchor.op}, {anchor.type})", n.loc)
    members = set(group)
    for m in group:
        n = graph[m]
        if n.version == 0:
            continue
        old = n.buffer if n.version == 1 else f"{n.buffer}@{n.version - 1}"
        for r in _readers(graph, old):
            reader = graph[r]
            if r in members and r != m and (
                    OPS[reader.op].kind != "elementwise" or reader.shape != n.shape):
                raise SirError(f"{where}: '{r}' reads '{old}' in the loop nest that overwrites "
                               "it, not element by element", reader.loc)


def _check_node(n: Node, seen: dict, where: str) -> None:
    if n.name in seen:
        raise SirError(f"{where}: '{n.name}' is defined twice", n.loc)
    missing = [a for a in n.operands if a not in seen]
    if missing:
        raise SirError(f"{where}: '{n.name}' reads '{missing[0]}' before it is defined", n.loc)
    if n.op in SOURCE_OPS:
        return
    if n.op not in OPS:
        raise SirError(f"{where}: '{n.name}' has unknown op '{n.op}'", n.loc)
    args = [operand(seen[a]) if isinstance(a, str) else Operand(None, (), a) for a in n.args]
    if len(args) != OPS[n.op].arity:
        raise SirError(f"{where}: {n.op} takes {OPS[n.op].arity} operands, '{n.name}' has "
                       f"{len(args)}", n.loc)
    try:
        dtype, shape = infer(OPS[n.op], args, dict(n.attrs))
    except OpError as e:
        raise SirError(f"{where}: '{n.name}': {e}", n.loc) from None
    if (dtype, tuple(shape)) != (n.dtype, n.shape):
        raise SirError(f"{where}: '{n.name}' is typed {n.type} but {n.op} gives "
                       f"{show(dtype, shape)}", n.loc)


def _check_update(graph: Graph, update: Node, old: str, where: str) -> None:
    prev = graph.by_name.get(old)
    if prev is None:
        raise SirError(f"{where}: update '{update.name}' has no previous version '{old}'",
                       update.loc)
    if (prev.dtype, prev.shape) != (update.dtype, update.shape):
        raise SirError(f"{where}: update '{update.name}' is {update.type}, the parameter is "
                       f"{prev.type}", update.loc)
    position = {n.name: i for i, n in enumerate(graph.nodes)}
    late = [r for r in _readers(graph, old)
            if r != update.name and position[r] > position[update.name]]
    if late:
        raise SirError(f"{where}: '{late[0]}' reads '{old}' after the update '{update.name}' "
                       "overwrote it", graph[late[0]].loc)


def compute_dtype(n: Node, graph: Graph) -> str:
    """The dtype an op computes in: its result's, except a comparison computes in its operands'."""
    if OPS[n.op].dtype_rule != "bool" or not n.operands:
        return n.dtype
    return max((graph[a].dtype for a in n.operands), key=RANK.__getitem__)


def operand(n: Node) -> Operand:
    return Operand(n.dtype, n.shape)
