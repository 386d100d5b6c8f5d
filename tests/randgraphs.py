"""Random valid step graphs over every op, dtype and shape class, for the property tests of the
passes (tests/test_passes.py) and of the trace (tests/test_trace_oracle.py).

A graph is built from a list of *steps*, each a tuple of small integers that make its choices
(which op, which operands, which constant or attribute). `random_graph(seed)` draws the steps
from a seeded generator; `graphs()` is a hypothesis strategy over the same builder, so a failing
graph shrinks to fewer steps and to the first choices (f32, the first shapes, the first ops).

Like a training step: parameters P0..P3 and the example x, y; nodes over earlier values, with a
bias towards the latest ones so that chains form and `fuse` has something to do; repeats of
earlier nodes (as they were, operands swapped, another attribute) for `cse`; parameter
updates at random points (`P@1 = sub(P, mul(c, g))`, and later nodes read the new version), and
every parameter updated at least once by the end. The outputs (predicted values) are the repeats
and the last value. Types come from `ops.infer`: a combination it
rejects is skipped. Shapes are small, so a plain-Python oracle can walk every loop nest.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from sutro_ir.graph import Graph, Node, verify
from sutro_ir.ops import DTYPES as NUMPY_DTYPES
from sutro_ir.ops import OPS, RANK, Operand, OpError, infer

DTYPES = ("f32", "f16", "i8", "bool")
# scalar, vectors, matrices, the columns and rows that broadcast ([3,1] with [1,4] is [3,4]),
# and a rank-3 array (elementwise ops, reductions and index take any rank)
SHAPES = ((3, 4), (4,), (), (4, 4), (3,), (4, 3), (3, 1), (1, 4), (1,), (4, 1), (2, 3, 4))
PARAM_DTYPES = ("f32", "f32", "f16", "i8", "bool")
X_SHAPES = ((4,), (2, 4), (3,))         # one example, or a batch of 2 (y is then a vector)
X_DTYPES = ("f32", "f16", "i8")
Y_DTYPES = ("f32", "bool", "i8")
# every op; arithmetic, products, reductions, index, outer and transpose more often: float
# chains and fused kernels with every kind of anchor
OP_NAMES = tuple(OPS) + ("add", "sub", "mul", "div", "maximum", "minimum", "matmul", "matmul",
                        "sum", "mean", "max", "index", "outer", "transpose")
CONSTANTS = (0.5, 2.0, -1.5, 3, 0)
RECENT = 4                      # most operands come from the last few values: chains fuse
N_PARAMS = 4
STEP_WIDTH = 6                  # integers per step
HEADER_WIDTH = 2 * N_PARAMS + 3


class _Choices:
    """A step's integers, read one decision at a time; 0 once they run out (the simplest)."""

    def __init__(self, ints):
        self.ints = list(ints)

    def int(self) -> int:
        return self.ints.pop(0) if self.ints else 0

    def pick(self, seq):
        return seq[self.int() % len(seq)]


class _Builder:
    """The graph so far: its nodes, the values a new node may read (the latest version of each
    parameter), and each parameter's latest version."""

    def __init__(self, header):
        c = _Choices(header)
        self.nodes, self.values, self.current = [], [], {}
        self.by_name: dict[str, Node] = {}
        for p in range(N_PARAMS):
            self._source(f"P{p}", "param", c.pick(PARAM_DTYPES), c.pick(SHAPES))
        x_shape = c.pick(X_SHAPES)
        self._source("x", "input", c.pick(X_DTYPES), x_shape)
        self._source("y", "input", c.pick(Y_DTYPES), x_shape[:-1])
        self.updated: set[str] = set()
        self.repeats: list[str] = []
        self.count = 0

    def _source(self, name, op, dtype, shape):
        self._add(Node(name, op, dtype=dtype, shape=shape))
        self.current[name] = name

    def _add(self, node: Node) -> None:
        self.nodes.append(node)
        self.by_name[node.name] = node
        self.values.append(node.name)

    def _name(self) -> str:
        self.count += 1
        # temporaries, activations and gradients, as the buffer table tells them apart
        return ("%", "h", "dP")[self.count % 3] + str(self.count)

    # ------------------------------------------------------------------------- one step

    def step(self, ints) -> None:
        c = _Choices(ints)
        kind = c.int() % 7
        if kind == 0:
            self.update(f"P{c.int() % N_PARAMS}", c)
        elif kind == 1:
            self.repeat(c)
        else:
            self.op(c.pick(OP_NAMES), c)

    def op(self, name: str, c: _Choices) -> None:
        opdef = OPS[name]
        pool = [v for v in self.values if _fits_first(opdef.kind, self._t(v))]
        if opdef.kind == "matmul" and c.int() % 3:
            # mostly a matrix on the left: vector @ vector is what random operands give
            pool = [v for v in pool if len(self._t(v).shape) == 2] or pool
        first = self._operand(c, pool)
        if first is None:
            return
        attrs = self._attrs(opdef, self._t(first), c)
        args = [first]
        for _ in range(opdef.arity - 1):
            arg = self._next_arg(opdef, args, attrs, c)
            if arg is None:
                return
            args.append(arg)
        if opdef.kind == "elementwise" and opdef.arity > 1 and c.int() % 3 == 0:
            args = args[1:] + args[:1]          # the constant (or the first value) moves along
        self._try(name, args, attrs)

    def repeat(self, c: _Choices) -> None:
        """An earlier node again, on the same values: as it was (cse merges it), with its first
        two operands swapped (cse merges it only if the op commutes) or with another attribute
        (cse must keep it)."""
        live, how = set(self.values), c.int() % 3
        earlier = [n.name for n in self.nodes if n.op not in ("param", "input")
                   and n.version == 0 and all(a in live for a in n.operands)
                   and (how != 1 or len(n.args) >= 2)]
        name = self._operand(c, earlier)
        if name is None:
            return
        n = self._t(name)
        args, attrs = list(n.args), n.attrs
        if how == 1 and len(args) >= 2:
            args[:2] = args[1::-1]
        if how == 2 and n.operands:
            attrs = self._attrs(OPS[n.op], self._t(n.operands[0]), c)
        made = self._try(n.op, args, attrs)
        if made:
            self.repeats.append(made)       # an output: a wrong merge cannot go unseen

    def update(self, p: str, c: _Choices) -> None:
        """A new version of P: sub(P, mul(c, g)) (ne(P, ne(g, 0)) for a bool P), g a value of
        P's shape (P itself if there is none); later nodes read the new version."""
        old, by_name = self.current[p], self.by_name
        like = [v for v in self.values if by_name[v].shape == by_name[p].shape
                and by_name[v].buffer != p]
        g = self._operand(c, like) or old
        if by_name[p].dtype == "bool":
            grad = self._try("ne", [g, 0])
        elif RANK[by_name[g].dtype] > RANK[by_name[p].dtype]:
            grad = self._try("cast", [g], (("to", by_name[p].dtype),))
        else:
            grad = self._try("mul", [c.pick(CONSTANTS[:3]), g])
        version = 1 if old == p else int(old.split("@")[1]) + 1
        new = f"{p}@{version}"
        op = "ne" if by_name[p].dtype == "bool" else "sub"
        self._add(typed_node(new, op, [old, grad], self.by_name))
        self.values = [v for v in self.values if v.split("@")[0] != p] + [new]
        self.current[p] = new
        self.updated.add(p)

    # ------------------------------------------------------------------------- choices

    def _t(self, name: str) -> Node:
        return self.by_name[name]

    def _operand(self, c: _Choices, pool: list[str]) -> str | None:
        if not pool:
            return None
        i = c.int()
        if i % 4:                           # mostly one of the latest: chains
            return pool[-1 - (i // 4) % min(len(pool), RECENT)]
        return pool[(i // 4) % len(pool)]

    def _attrs(self, opdef, first: Node, c: _Choices) -> tuple:
        i = c.int()
        if opdef.name == "cast":
            return (("to", DTYPES[i % len(DTYPES)]),)
        if opdef.kind == "matmul":
            return (("ta", 1),) if i % 3 == 0 and len(first.shape) == 2 else ()
        if opdef.kind == "reduce":
            axes = [None, *range(-len(first.shape), len(first.shape))]
            axis = axes[i % len(axes)]
            return () if axis is None else (("axis", axis),)
        if opdef.kind == "index":
            return (("i", i % (2 * first.shape[0]) - first.shape[0]),)
        return ()

    def _next_arg(self, opdef, args, attrs, c: _Choices):
        """An operand that fits the ones chosen so far (a constant, for elementwise ops)."""
        i = c.int()
        if opdef.kind == "elementwise" and i % 5 == 4:
            return CONSTANTS[(i // 5) % len(CONSTANTS)]
        so_far = [self._t(a).shape for a in args if isinstance(a, str)]
        pool = [v for v in self.values if _fits_next(opdef.kind, so_far, self._t(v).shape,
                                                     dict(attrs))]
        if opdef.kind == "matmul" and i % 2:
            pool = [v for v in pool if len(self._t(v).shape) == 2] or pool  # @ a matrix
        return self._operand(_Choices([i // 5]), pool)

    def _try(self, op: str, args: list, attrs: tuple = ()) -> str | None:
        """Add op(args) if infer accepts it (and numpy can run it); its name, else None."""
        try:
            node = typed_node(self._name(), op, args, self.by_name, attrs)
        except OpError:
            return None
        self._add(node)
        return node.name

    def finish(self) -> Graph:
        for p in [f"P{i}" for i in range(N_PARAMS) if f"P{i}" not in self.updated]:
            self.update(p, _Choices([]))
        last = self.nodes[-1]
        outputs = self.repeats + ([last.name] if last.version == 0 else [])
        return verify(Graph(tuple(self.nodes), tuple(dict.fromkeys(outputs))))


def _fits_first(kind: str, n: Node) -> bool:
    rank = len(n.shape)
    return {"matmul": 1 <= rank <= 2, "outer": rank == 1, "transpose": rank == 2,
            "index": rank >= 1}.get(kind, True)


def _fits_next(kind: str, so_far: list[tuple], shape: tuple, attrs: dict) -> bool:
    if kind == "matmul":
        a = so_far[0][::-1] if attrs.get("ta") else so_far[0]
        return 1 <= len(shape) <= 2 and shape[0] == a[-1]
    if kind == "outer":
        return len(shape) == 1
    try:
        np.broadcast_shapes(*so_far, shape)
    except ValueError:
        return False
    return True


def typed_node(name: str, op: str, args: list, by_name: dict, attrs: tuple = ()) -> Node:
    """Node `name = op(args)` with the type ops.infer gives (OpError if it gives none)."""
    ops = [Operand(by_name[a].dtype, by_name[a].shape) if isinstance(a, str)
           else Operand(None, (), a) for a in args]
    dtype, shape = infer(OPS[op], ops, dict(attrs))
    return Node(name, op, tuple(args), tuple(sorted(attrs)), dtype, tuple(shape))


# ----------------------------------------------------------------------------- entry points

def build(header, steps) -> Graph:
    """The graph of these choices (any integers; missing ones count as 0)."""
    b = _Builder(header)
    for ints in steps:
        b.step(ints)
    return b.finish()


def random_graph(seed: int, n_steps: int = 24) -> Graph:
    rng = np.random.default_rng(seed)
    header = rng.integers(0, 1 << 16, HEADER_WIDTH).tolist()
    return build(header, rng.integers(0, 1 << 16, (n_steps, STEP_WIDTH)).tolist())


def graphs(max_steps: int = 30):
    """Hypothesis strategy: random step graphs that shrink to fewer and simpler nodes."""
    ints = st.integers(0, 1 << 16)
    return st.builds(build, st.lists(ints, min_size=HEADER_WIDTH, max_size=HEADER_WIDTH),
                     st.lists(st.lists(ints, min_size=STEP_WIDTH, max_size=STEP_WIDTH),
                              min_size=1, max_size=max_steps))


def random_sources(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    """Seeded values for the parameters and the example, in each one's dtype."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in graph.nodes:
        if n.op not in ("param", "input"):
            continue
        if n.dtype == "bool":
            v = rng.random(n.shape) < 0.5
        elif n.dtype == "i8":
            v = rng.integers(-5, 6, n.shape)
        else:
            v = rng.normal(size=n.shape)
        out[n.name] = np.array(v, NUMPY_DTYPES[n.dtype])      # an array even for a scalar
    return out
