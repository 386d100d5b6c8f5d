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

import math

import functools
from collections import ChainMap
from dataclasses import dataclass, field

from .errors import NOWHERE, Loc, SirError
from .ops import ANCHORS, OPS, RANK, Operand, OpError, infer, show

SOURCE_OPS = ("param", "input")
REGION_OPS = ("if", "merge")


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

    @property
    def branches(self) -> tuple[tuple, tuple]:
        """(then, else) node tuples of an `if` node."""
        attrs = dict(self.attrs)
        return attrs["then"], attrs["else"]


def dynamic_operands(n: Node) -> tuple[str, ...]:
    """The operands of an index or a setindex that are read as indices at run time."""
    if n.op == "index":
        return tuple(n.args[1:])
    if n.op == "setindex":
        return tuple(n.args[2:])
    return ()


def index_values(node: Node, graph) -> int:
    """The run-time index values a node reads: one for a scalar index, every element of an
    index array."""
    return sum(math.prod(graph[a].shape) for a in dynamic_operands(node))


def region_name(then: tuple, orelse: tuple) -> str:
    """An if node's name: from its first inner node, so a program printed and parsed again
    names it the same."""
    return "if:" + (then + orelse)[0].name.replace("@", "~")     # "@" would make a version


def walk(nodes):
    """Every node of a block and, after each if, the nodes of its branches, in order."""
    for n in nodes:
        yield n
        if n.op == "if":
            then, orelse = n.branches
            yield from walk(then)
            yield from walk(orelse)


def captures(then: tuple, orelse: tuple) -> tuple[str, ...]:
    """The values from outside that an if's branches read, in order of first read."""
    inner = {n.name for n in walk(then + orelse)}
    return tuple(dict.fromkeys(a for n in walk(then + orelse) for a in n.operands
                               if a not in inner))


@dataclass(frozen=True)
class Graph:
    """One loop body: a training step, or the evaluation of one example."""

    nodes: tuple[Node, ...]
    outputs: tuple[str, ...] = ()
    kernels: tuple[tuple[str, ...], ...] = ()   # fused groups of two or more nodes
    layout: str = "bump"
    notes: tuple[str, ...] = field(default=(), compare=False)   # what passes declined, and why

    @functools.cached_property
    def by_name(self) -> dict[str, Node]:
        """Every node, those inside if branches too."""
        return {n.name: n for n in walk(self.nodes)}

    @functools.cached_property
    def all_nodes(self) -> tuple[Node, ...]:
        return tuple(walk(self.nodes))

    @functools.cached_property
    def written_buffers(self) -> frozenset[str]:
        """The buffers some node writes in place (a parameter's or a local's new version)."""
        return frozenset(n.buffer for n in walk(self.nodes) if n.version > 0)

    @functools.cached_property
    def has_regions(self) -> bool:
        return any(n.op == "if" for n in self.nodes)

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
            if reader != update.name and graph[reader].op != "merge":   # a merge names, not reads
                g.add_edge(reader, update.name, kind="anti")
    return g


def previous_version(n: Node) -> str | None:
    """The name of the version a step-level update replaces (W1 for W1@1, W1@1 for W1@2; for a
    merge, the version before its if), else None. (Inside a branch the previous version is
    whatever was current there: see verify.)"""
    if n.version == 0:
        return None
    if n.op == "merge":
        return n.args[1]
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


def renamed_reads(n: Node, same: dict[str, str]) -> Node:
    """n reading same.get(a, a) for each operand a, in its blocks too (an if's captures)."""
    args = tuple(same.get(a, a) if isinstance(a, str) else a for a in n.args)
    if n.op != "if":
        return Node(n.name, n.op, args, n.attrs, n.dtype, n.shape, n.loc)
    then, orelse = (tuple(renamed_reads(m, same) for m in block) for block in n.branches)
    return Node(n.name, n.op, (args[0], *captures(then, orelse)),
                (("else", orelse), ("then", then)), n.dtype, n.shape, n.loc)


def _updates(graph: Graph):
    """(the node that overwrites, name of the version it replaces) for every step-level update;
    the buffers an if writes are overwritten by the if node."""
    for n in graph.nodes:
        if n.version > 0:
            yield (graph[n.args[0]] if n.op == "merge" else n), previous_version(n)


def _readers(graph: Graph, name: str) -> list[str]:
    return [n.name for n in graph.nodes if name in n.operands]


# ----------------------------------------------------------------------------- verify

def verify(graph: Graph, where: str = "graph") -> Graph:
    """Unique names, defs before uses, types that follow the op rules, every write to a buffer
    after every read of the version it overwrites, if regions well formed (a bool condition,
    the values read from outside listed, a merge for every buffer a branch writes, right after
    the if), and fused kernels that are loop nests. Returns the graph."""
    state = _Scope(ChainMap(), ChainMap(), set(), where)
    state.block(graph.nodes, top=True)
    for out in graph.outputs:
        if out not in state.seen:
            raise SirError(f"{where}: output '{out}' is not defined", None)
    position = {n.name: i for i, n in enumerate(graph.nodes)}
    grouped: set[str] = set()
    for group in graph.kernels:
        if grouped & set(group):
            raise SirError(f"{where}: '{sorted(grouped & set(group))[0]}' is in two kernels", None)
        grouped |= set(group)
        check_kernel(graph, group, position, where)
    return graph


class _Scope:
    """The walk of verify: the values visible, each buffer's current version."""

    def __init__(self, seen: dict, current: dict, names: set, where: str):
        self.seen, self.current, self.names, self.where = seen, current, names, where

    def block(self, nodes, top: bool = False) -> None:
        i = 0
        while i < len(nodes):
            n = nodes[i]
            if n.op in SOURCE_OPS and not top:
                raise SirError(f"{self.where}: {n.op} '{n.name}' inside an if", n.loc)
            if n.op == "merge":
                raise SirError(f"{self.where}: merge '{n.name}' does not follow its if", n.loc)
            self.node(n)
            i += 1
            if n.op == "if":
                i = self.region(n, nodes, i)

    def node(self, n: Node) -> None:
        where = self.where
        if n.name in self.names:
            raise SirError(f"{where}: '{n.name}' is defined twice", n.loc)
        self.names.add(n.name)
        missing = [a for a in n.operands if a not in self.seen]
        if missing:
            raise SirError(f"{where}: '{n.name}' reads '{missing[0]}' before it is defined",
                           n.loc)
        for a in n.operands:
            latest = self.current.get(self.seen[a].buffer, a)
            if latest != a:
                raise SirError(f"{where}: '{n.name}' reads '{a}' after the update '{latest}' "
                               "overwrote it", n.loc)
        if n.op not in SOURCE_OPS:
            self.typecheck(n)
        if n.version > 0:
            base = self.current.get(n.buffer)
            if base is None:
                raise SirError(f"{where}: update '{n.name}' has no previous version", n.loc)
            prev = self.seen[base]
            if (prev.dtype, prev.shape) != (n.dtype, n.shape):
                raise SirError(f"{where}: update '{n.name}' is {n.type}, the buffer is "
                               f"{prev.type}", n.loc)
        self.seen[n.name] = n
        if n.version > 0 or n.buffer not in self.current:
            self.current[n.buffer] = n.name

    def typecheck(self, n: Node) -> None:
        where = self.where
        if n.op not in OPS:
            raise SirError(f"{where}: '{n.name}' has unknown op '{n.op}'", n.loc)
        if n.op == "if":
            return
        if n.op == "merge":
            old = self.seen.get(n.args[1]) if len(n.args) == 2 else None
            if old is None or old.buffer != n.buffer or (old.dtype, old.shape) != (n.dtype,
                                                                                 n.shape):
                raise SirError(f"{where}: merge '{n.name}' must name the version of its buffer "
                               "before the if", n.loc)
            return
        args = [operand(self.seen[a]) if isinstance(a, str) else Operand(None, (), a)
                for a in n.args]
        arity = OPS[n.op].arity
        if arity is not None and len(args) != arity:
            raise SirError(f"{where}: {n.op} takes {arity} operands, '{n.name}' has "
                           f"{len(args)}", n.loc)
        try:
            dtype, shape = infer(OPS[n.op], args, dict(n.attrs))
        except OpError as e:
            raise SirError(f"{where}: '{n.name}': {e}", n.loc) from None
        if (dtype, tuple(shape)) != (n.dtype, n.shape):
            raise SirError(f"{where}: '{n.name}' is typed {n.type} but {n.op} gives "
                           f"{show(dtype, shape)}", n.loc)
        if n.op == "setindex" and (n.version == 0 or self.seen[n.args[0]].buffer != n.buffer):
            raise SirError(f"{where}: setindex '{n.name}' must be a new version of "
                           f"'{n.args[0]}' (it writes into that buffer)", n.loc)

    def region(self, n: Node, nodes, i: int) -> int:
        """Check the if node n's branches and the merges that follow it (from nodes[i])."""
        where = self.where
        keys = {k for k, _ in n.attrs}
        if keys != {"then", "else"}:
            raise SirError(f"{where}: if '{n.name}' needs then and else blocks", n.loc)
        then, orelse = n.branches
        if not then and not orelse or n.name != region_name(then, orelse):
            raise SirError(f"{where}: if '{n.name}' is empty or misnamed", n.loc)
        cond = self.seen[n.args[0]] if n.args and isinstance(n.args[0], str) else None
        if cond is None or cond.shape != () or cond.dtype != "bool":
            raise SirError(f"{where}: if '{n.name}': the condition is a bool scalar", n.loc)
        if tuple(n.args[1:]) != captures(then, orelse):
            raise SirError(f"{where}: if '{n.name}' lists {list(n.args[1:])} as read from "
                           f"outside; its branches read {list(captures(then, orelse))}", n.loc)
        after = []
        for block in (then, orelse):      # a block sees the outer scope; its names stay inside
            inner = _Scope(self.seen.new_child(), self.current.new_child(), self.names, where)
            inner.block(block)
            after.append(inner.current)
        changed = {b for c in after for b in c.maps[0] if b in self.current
                   and c[b] != self.current[b]}
        merged = set()
        while i < len(nodes) and nodes[i].op == "merge" and nodes[i].args[:1] == (n.name,):
            m = nodes[i]
            old = m.args[1] if len(m.args) == 2 else None
            if m.buffer not in changed or old != self.current.get(m.buffer) or m.buffer in merged:
                raise SirError(f"{where}: merge '{m.name}' does not match a buffer its if "
                               "writes", m.loc)
            merged.add(m.buffer)
            self.current[m.buffer] = old      # the merge replaces the version before the if
            self.node(m)
            i += 1
        if merged != changed:
            raise SirError(f"{where}: if '{n.name}' writes {sorted(changed - merged)} without "
                           "a merge after it", n.loc)
        return i


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
    if anchor.op in SOURCE_OPS or OPS[anchor.op].kind not in ANCHORS:
        raise SirError(f"{where}: fused kernel starts with {anchor.op} '{anchor.name}', which "
                       "cannot anchor a loop nest", None)
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
        old = previous_version(n)
        for r in _readers(graph, old):
            reader = graph[r]
            if r in members and r != m and (
                    OPS[reader.op].kind != "elementwise" or reader.shape != n.shape):
                raise SirError(f"{where}: '{r}' reads '{old}' in the loop nest that overwrites "
                               "it, not element by element", reader.loc)


def compute_dtype(n: Node, graph: Graph) -> str:
    """The dtype an op computes in: its result's, except a comparison computes in its operands'."""
    if OPS[n.op].dtype_rule != "bool" or not n.operands:
        return n.dtype
    return max((graph[a].dtype for a in n.operands), key=RANK.__getitem__)


def operand(n: Node) -> Operand:
    return Operand(n.dtype, n.shape)
