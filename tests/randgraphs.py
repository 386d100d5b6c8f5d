"""Random valid step graphs over every op, dtype and shape class, for the property tests of the
passes (tests/test_passes.py), of the layouts (tests/test_layout.py) and of the trace
(tests/test_trace_oracle.py).

A graph is built from a list of *steps*, each a tuple of small integers that make its choices
(which op, which operands, which constant or attribute). `random_graph(seed)` draws the steps
from a seeded generator; `graphs()` is a hypothesis strategy over the same builder, so a failing
graph shrinks to fewer steps and to the first choices (f32, the first shapes, the first ops).

Like a training step: parameters P0..P4 and the example x, y; nodes over earlier values, with a
bias towards the latest ones so that chains form and `fuse` has something to do; repeats of
earlier nodes (as they were, operands swapped, another attribute) for `cse`; whole-array
updates of parameters and of locals at random points (`P@1 = sub(P, mul(c, g))`, and later
nodes read the new version); writes into part of a parameter or a local (`setindex`, with
constant, sliced and run-time indices and every accumulation); `index` with ints, slices and
run-time indices; the construct ops (fill, eye, arange, and the random draws normal and
bernoulli), the gather ops (reshape, concat, stack) and einsum over one to three operands; and
`if` regions: a step opens one, the next steps fill its then block and then its else block (an
if inside a block nests), the blocks read outer values and write parameters and locals, and a
`merge` follows the if for every buffer a block wrote. Every parameter is updated at least once
by the end. The outputs (predicted values) are the repeats and the last value, each the latest
version of its buffer.

Types come from `ops.infer`: a combination it rejects is skipped, and so is one numpy cannot
run (tried on zeros first, with the executor's own closure; NUMPY_REFUSED collects those).
Executing a graph never raises: a run-time index is `mod(s, dim)` of an integer scalar (numpy's
remainder by a positive number is in [0, dim)), and a float cast to an integer type is first
clamped into that type (NaN becomes 0). Constants are ones the op's dtype represents. Shapes
are small, so a plain-Python oracle can walk every loop nest.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from sutro_ir.execute import _closure
from sutro_ir.graph import REGION_OPS, Graph, Node, captures, region_name, verify
from sutro_ir.ops import DTYPES as NUMPY_DTYPES
from sutro_ir.ops import (FLOATS, INTS, OPS, RANK, Operand, OpError, check_spec, infer,
                          normalize_spec)

DTYPES = tuple(NUMPY_DTYPES)            # f32 f16 i32 i8 u8 bool
# scalar, vectors, matrices, the columns and rows that broadcast ([3,1] with [1,4] is [3,4]),
# and a rank-3 array (elementwise ops, reductions and index take any rank); columns twice: a
# column read broadcast along the rows of a fused kernel is what a flat cycle does not give
SHAPES = ((3, 4), (4,), (), (4, 4), (3,), (4, 3), (3, 1), (1, 4), (1,), (4, 1), (2, 3, 4),
          (3, 1), (4, 1))
PARAM_DTYPES = ("f32", "f32", "f16", "i32", "i8", "u8", "bool")
X_SHAPES = ((4,), (2, 4), (3,))         # one example, or a batch of 2 (y is then a vector)
X_DTYPES = ("f32", "f16", "i8", "i32", "u8")
Y_DTYPES = ("f32", "bool", "i8", "u8", "i32")
REGION = REGION_OPS
# the ops a step names (index, setindex, if and merge have steps of their own); arithmetic,
# products, reductions, outer and transpose more often: float chains and fused kernels with
# every kind of anchor; the bit ops more often too (they take only some dtypes)
OP_NAMES = tuple(op for op in OPS if op not in REGION + ("index", "setindex", "stop_grad")) + (
    "add", "sub", "mul", "div", "maximum", "minimum", "add", "mul", "sub", "maximum", "add",
    "mul", "relu", "neg", "sign", "sigmoid", "matmul", "matmul", "matmul", "matmul", "matmul",
    "matmul", "outer", "outer", "outer", "transpose", "transpose", "transpose", "sum", "sum",
    "mean", "mean", "max", "max", "argmax", "einsum", "einsum", "and", "or", "xor", "not",
    "shl", "shr", "floordiv", "mod", "eye", "reshape", "concat")
CONSTANTS = (0.5, 2.0, -1.5, 3, 0, 1, -1, 7)
ACCS = ("set", "set", "add", "sub", "mul", "div", "floordiv", "mod", "xor", "and", "or", "shl",
        "shr")
CLAMP = {"u8": (0, 200), "i8": (-100, 100), "i32": (-1000, 1000)}   # a float cast into an int
RECENT = 4                      # most operands come from the last few values: chains fuse
N_PARAMS = 5
MAX_DEPTH = 3                   # ifs nest this deep at most
MAX_EINSUM = 256                # letters' sizes multiplied: the oracle walks every combination
STEP_WIDTH = 10                 # integers per step
HEADER_WIDTH = 2 * N_PARAMS + 3

NUMPY_REFUSED: set = set()      # (op, operand dtypes) that infer accepts and numpy cannot run


class _Choices:
    """A step's integers, read one decision at a time; 0 once they run out (the simplest)."""

    def __init__(self, ints):
        self.ints = list(ints)

    def int(self) -> int:
        return self.ints.pop(0) if self.ints else 0

    def pick(self, seq):
        return seq[self.int() % len(seq)]


class _Region:
    """An if being built: its condition, what was visible and current before it, its blocks."""

    def __init__(self, cond, values, current, n_then, n_else, outer_nodes):
        self.cond = cond
        self.values, self.current = list(values), dict(current)
        self.blocks: list[list[Node]] = [[]]
        self.currents: list[dict] = []
        self.left = [n_then, n_else]            # steps still to come in each block
        self.outer_nodes = outer_nodes          # the block the if goes into

    @property
    def phase(self) -> int:
        return len(self.blocks) - 1


class _Builder:
    """The graph so far: the nodes of the block being filled, the values a new node may read (the
    latest version of each buffer, the values of enclosing blocks too), and each buffer's
    latest version."""

    def __init__(self, header, regions: bool = True):
        c = _Choices(header)
        self.allow_regions = regions
        self.nodes: list[Node] = []
        self.top = self.nodes
        self.values: list[str] = []
        self.current: dict[str, str] = {}
        self.by_name: dict[str, Node] = {}
        self.versions: dict[str, int] = {}
        self.bounds: dict[str, tuple] = {}      # values known to lie in [lo, hi] (no NaN)
        self.regions: list[_Region] = []
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

    def _add(self, node: Node) -> None:
        self.nodes.append(node)
        self.by_name[node.name] = node
        self.values.append(node.name)
        self.current[node.buffer] = node.name

    def _name(self) -> str:
        self.count += 1
        # temporaries, activations and gradients, as the buffer table tells them apart
        return ("%", "h", "dP")[self.count % 3] + str(self.count)

    def _version(self, buffer: str) -> str:
        self.versions[buffer] = self.versions.get(buffer, 0) + 1
        return f"{buffer}@{self.versions[buffer]}"

    def _set_version(self, node: Node) -> None:
        """Add a new version of a buffer: later nodes read it, not the old one."""
        self.nodes.append(node)
        self.by_name[node.name] = node
        self.values = [v for v in self.values if self.by_name[v].buffer != node.buffer]
        self.values.append(node.name)
        self.current[node.buffer] = node.name
        if node.buffer.startswith("P") and node.buffer[1:].isdigit():
            self.updated.add(node.buffer)

    # ------------------------------------------------------------------------- one step

    def step(self, ints) -> None:
        c = _Choices(ints)
        region = self.regions[-1] if self.regions else None
        kind = c.int() % 14
        if kind == 0:
            self.update(self._writable(c, params_first=True), c)
        elif kind == 1:
            self.repeat(c)
        elif kind in (2, 3):
            self.setindex(c)
        elif kind == 4:
            self.index(c)
        elif kind == 5 and len(self.regions) < MAX_DEPTH and self.allow_regions:
            self.open_if(c)
        else:
            self.op(c.pick(OP_NAMES), c)
        if region is not None:
            region.left[region.phase] -= 1
            self._advance()

    def op(self, name: str, c: _Choices) -> None:
        opdef = OPS[name]
        if opdef.kind == "construct":
            return self.construct(name, c)
        if name == "einsum":
            return self.einsum(c)
        if name in ("concat", "stack"):
            return self.join(name, c)
        pool = [v for v in self.values if _fits_first(opdef, self._t(v))]
        if opdef.dtypes and c.int() % 4:    # mostly operands the op takes (ints for shl)
            pool = [v for v in pool if self._t(v).dtype in opdef.dtypes] or pool
        if opdef.kind == "matmul" and c.int() % 3:
            # mostly a matrix on the left: vector @ vector is what random operands give
            pool = [v for v in pool if len(self._t(v).shape) == 2] or pool
        first = self._operand(c, pool)
        if first is None:
            return
        attrs = self._attrs(opdef, self._t(first), c)
        if name == "cast":
            self._cast(first, dict(attrs)["to"])
            return
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
        earlier = [n.name for n in self.by_name.values()
                   if n.op not in ("param", "input") + REGION and n.version == 0
                   and all(a in live for a in n.operands) and (how != 1 or len(n.args) >= 2)]
        name = self._operand(c, earlier)
        if name is None:
            return
        n = self._t(name)
        args, attrs = list(n.args), n.attrs
        if how == 1 and len(args) >= 2:
            args[:2] = args[1::-1]
        if how == 2 and n.operands and n.op not in ("index", "einsum"):
            attrs = self._attrs(OPS[n.op], self._t(n.operands[0]), c)
        if n.op == "cast":
            made = self._cast(args[0], dict(attrs)["to"])
        else:
            made = self._try(n.op, args, attrs)
        if made and not self.regions:
            self.repeats.append(made)       # an output: a wrong merge cannot go unseen

    def _writable(self, c: _Choices, params_first: bool = False) -> str:
        """A buffer to write: mostly a parameter, else a local (a value made by a node, not the
        example, not an if)."""
        params = [f"P{p}" for p in range(N_PARAMS)]
        locals_ = [self.by_name[v].buffer for v in self.values
                   if self.by_name[v].op not in ("param", "input", "if")]
        i = c.int()
        if locals_ and (i % 3 == 0 or not params_first and i % 3 == 1):
            return self._operand(_Choices([i // 3]), locals_)
        return params[(i // 3) % N_PARAMS]

    def update(self, buffer: str, c: _Choices) -> None:
        """A new version of a buffer, the whole array: sub(B, mul(c, g)) (ne(B, ne(g, 0)) for a
        bool B), g a value of B's shape (B itself if there is none); later nodes read the new
        version."""
        old, by_name = self.current[buffer], self.by_name
        b = by_name[old]
        like = [v for v in self.values if by_name[v].shape == b.shape
                and by_name[v].buffer != buffer]
        g = self._operand(c, like) or old
        k = c.int()
        if b.dtype == "bool":
            grad = self._try("ne", [g, 0])
        elif RANK[by_name[g].dtype] > RANK[b.dtype]:
            grad = self._cast(g, b.dtype)
        else:
            grad = self._try("mul", [_constant(k, by_name[g].dtype, nonzero=True), g])
        if grad is None:
            return
        op = "ne" if b.dtype == "bool" else "sub"
        try:
            node = typed_node(f"{buffer}@{self.versions.get(buffer, 0) + 1}", op, [old, grad],
                              by_name)
        except OpError:
            return
        if (node.dtype, node.shape) != (b.dtype, b.shape):
            return
        self._version(buffer)
        self._set_version(node)

    def setindex(self, c: _Choices) -> None:
        """B[at] op= v into a parameter or a local: ints, slices and run-time indices; v a
        value that broadcasts to the part, or a constant."""
        buffer = self._writable(c)
        old = self.current[buffer]
        b = self.by_name[old]
        if not b.shape:
            return
        spec = self._spec(b.shape, c)
        if spec is None:
            return
        at, dims = spec
        dyn = self._indices(at, dims, c)
        if None in dyn:
            return
        part = check_spec(at, b.shape, [self._t(v).shape for v in dyn])
        acc = c.pick(ACCS)
        i = c.int()
        if i % 4 == 0:
            value = _constant(i // 4, b.dtype)
        else:
            pool = [v for v in self.values if RANK[self._t(v).dtype] <= RANK[b.dtype]
                    and _broadcasts_to(self._t(v).shape, part)]
            value = self._operand(_Choices([i // 4]), pool)
            if value is None:
                return
        name = f"{buffer}@{self.versions.get(buffer, 0) + 1}"
        attrs = (("acc", acc), ("at", at))
        try:
            node = typed_node(name, "setindex", [old, value, *dyn], self.by_name, attrs)
        except OpError:
            return
        if not self._runs(node):
            return
        self._version(buffer)
        self._set_version(node)

    def index(self, c: _Choices) -> None:
        pool = [v for v in self.values if self._t(v).shape]
        a = self._operand(c, pool)
        if a is None:
            return
        spec = self._spec(self._t(a).shape, c)
        if spec is None:
            return
        at, dims = spec
        dyn = self._indices(at, dims, c) if at else []
        if None not in dyn and at:
            self._try("index", [a, *dyn], (("at", at),))

    def _spec(self, shape: tuple, c: _Choices):
        """A canonical `at` for an array of this shape, from source-like subscripts (negative
        ints, open and negative-step slices, run-time indices), and the sizes of the dimensions
        its run-time indices pick in; None if the subscripts select nothing."""
        n = 1 + c.int() % len(shape)
        entries = []
        for d in shape[:n]:
            i = c.int()
            kind = i % 4
            i //= 4
            if kind == 0:
                entries.append(i % (2 * d) - d)                     # -d .. d-1
            elif kind == 1:
                entries.append(None)
            else:
                bounds = (None, 0, 1, -1, -2, 2, d)
                start, stop = bounds[i % 7], bounds[(i // 7) % 7]
                step = (None, 1, 2, -1, -2)[(i // 49) % 5]
                entries.append((start, stop, step))
        dims = [d for e, d in zip(entries, shape) if e is None]
        try:
            at = normalize_spec(entries, shape)
            # check_spec refuses some canonical slices normalize_spec makes (a negative step
            # down to element 0 gives stop -1): skipped, as infer would
            check_spec(at, shape, len(dims))
        except OpError:
            return None
        return at, dims

    def _indices(self, at: tuple, dims: list, c: _Choices) -> list:
        """The run-time index operands of `at`: the first may be an index array (a gather)
        when it is the first subscript."""
        return [self._runtime_index(d, c, gather=k == 0 and at[0] is None)
                for k, d in enumerate(dims)]

    def _runtime_index(self, d: int, c: _Choices, gather: bool = False) -> str | None:
        """An integer scalar in [0, d) at run time: mod(s, d) of an integer scalar s, one that
        exists or the argmax of an array; with `gather`, sometimes an integer array mod d."""
        if gather and c.int() % 4 == 0:
            arrays = [v for v in self.values if self._t(v).dtype in INTS and self._t(v).shape]
            a = self._operand(c, arrays)
            if a is not None:
                return self._try("mod", [a, d])
        ints = [v for v in self.values if self._t(v).dtype in INTS and not self._t(v).shape]
        s = self._operand(c, ints)
        if s is None or c.int() % 3 == 0:
            arrays = [v for v in self.values if self._t(v).shape]
            a = self._operand(c, arrays)
            s = a and self._try(c.pick(("argmax", "argmin")), [a])
            if s is None:
                return None
        return self._try("mod", [s, d])

    def _cast(self, a: str, to: str) -> str | None:
        """cast(a, to); a float cast to an integer type is first clamped into it (where(a == a,
        a, 0), maximum, minimum): the executor refuses a float that does not fit."""
        src = self._t(a)
        if src.dtype in FLOATS and to in INTS:
            lo, hi = CLAMP[to]
            if not (a in self.bounds and lo <= self.bounds[a][0] and self.bounds[a][1] <= hi):
                same = self._try("eq", [a, a])                      # false for NaN
                a = same and self._try("where", [same, a, 0])
                a = a and self._try("maximum", [a, lo])
                a = a and self._try("minimum", [a, hi])
                if a is None:
                    return None
                self.bounds[a] = (lo, hi)
        return self._try("cast", [a], (("to", to),))

    def construct(self, name: str, c: _Choices) -> None:
        dtype = c.pick(DTYPES)
        i = c.int()
        if name == "arange":
            start, step = i % 5 - 2, (1, 2, 3, -1)[(i // 5) % 4]
            stop = start + step * (1 + (i // 20) % 4)
            attrs = (("dtype", dtype), ("start", start), ("step", step), ("stop", stop))
        elif name == "eye":
            shape = [s for s in SHAPES if len(s) == 2][i % 6]
            attrs = (("dtype", dtype), ("shape", shape))
        elif name == "normal":                  # normal_like: a fresh draw each step
            attrs = (("dtype", FLOATS[i % 2]), ("mean", (0.0, 1.5)[(i // 2) % 2]),
                     ("shape", SHAPES[(i // 4) % len(SHAPES)]), ("std", 0.5))
        elif name == "bernoulli":
            attrs = (("dtype", "bool"), ("p", (0.5, 0.25, 1.0)[i % 3]),
                     ("shape", SHAPES[(i // 3) % len(SHAPES)]))
        else:
            attrs = (("dtype", dtype), ("shape", SHAPES[i % len(SHAPES)]),
                     ("value", _constant(i // len(SHAPES), dtype)))
        self._try(name, [], attrs)

    def join(self, name: str, c: _Choices) -> None:
        """concat or stack of one to three arrays (repeats allowed) that fit together."""
        pool = [v for v in self.values if self._t(v).shape or name == "stack"]
        first = self._operand(c, pool)
        if first is None:
            return
        shape = self._t(first).shape
        rank = len(shape) + (name == "stack")
        axis = c.int() % (2 * rank) - rank
        args = [first]
        for _ in range(c.int() % 3):
            if name == "stack":
                fits = [v for v in self.values if self._t(v).shape == shape]
            else:
                ax = axis % rank
                fits = [v for v in self.values if len(self._t(v).shape) == rank and
                        self._t(v).shape[:ax] + self._t(v).shape[ax + 1:]
                        == shape[:ax] + shape[ax + 1:]]
            arg = self._operand(c, fits)
            if arg is not None:
                args.append(arg)
        self._try(name, args, (("axis", axis),))

    def einsum(self, c: _Choices) -> None:
        """einsum over one to three operands: each dimension a new letter or one an earlier
        dimension of its size has; the output some of the letters, in some order."""
        n = 1 + c.int() % 3
        args, subs, size = [], [], {}
        for _ in range(n):
            a = self._operand(c, [v for v in self.values if len(self._t(v).shape) <= 3])
            if a is None:
                return
            sub = ""
            for d in self._t(a).shape:
                same = [k for k, s in size.items() if s == d and k not in sub]
                i = c.int()
                if same and i % 3:
                    sub += same[(i // 3) % len(same)]
                else:
                    letter = "ijklmnopqrs"[len(size)]
                    size[letter] = d
                    sub += letter
            args.append(a)
            subs.append(sub)
        if math.prod(size.values()) > MAX_EINSUM:
            return
        letters = list(size)
        out = ""
        i = c.int()
        for _ in range(i % (len(letters) + 1)):
            i //= 3
            rest = [k for k in letters if k not in out]
            out += rest[i % len(rest)]
        self._try("einsum", args, (("spec", ",".join(subs) + "->" + out),))

    # ------------------------------------------------------------------------- if regions

    def open_if(self, c: _Choices) -> None:
        """An if on a bool scalar; the next steps fill its then block, then its else block."""
        cond = self._condition(c)
        if cond is None:
            return
        n_then, n_else = 1 + c.int() % 4, c.int() % 4
        region = _Region(cond, self.values, self.current, n_then, n_else, self.nodes)
        self.regions.append(region)
        self.nodes = region.blocks[0]

    def _condition(self, c: _Choices) -> str | None:
        bools = [v for v in self.values if self._t(v).dtype == "bool" and not self._t(v).shape]
        if bools and c.int() % 2:
            return self._operand(c, bools)
        a = self._operand(c, self.values)
        if a is None:
            return None
        if self._t(a).shape:
            a = self._try("index", [a], (("at", (0,) * len(self._t(a).shape)),))
            if a is None:
                return None
        return self._try(c.pick(("gt", "le", "ne")), [a, 0])

    def _advance(self) -> None:
        """Move on to the else block, or close the if, once a block has had its steps."""
        while self.regions and self.regions[-1].left[self.regions[-1].phase] <= 0:
            region = self.regions[-1]
            if region.phase == 0:
                region.currents.append(self.current)
                region.blocks.append([])
                self.nodes = region.blocks[1]
                self.values, self.current = list(region.values), dict(region.current)
            else:
                self._close()

    def _close(self) -> None:
        region = self.regions.pop()
        region.currents.append(self.current)
        self.nodes = region.outer_nodes
        self.values, self.current = list(region.values), dict(region.current)
        then, orelse = (tuple(b) for b in region.blocks)
        if not then and not orelse:
            return
        name = region_name(then, orelse)
        node = Node(name, "if", (region.cond, *captures(then, orelse)),
                    (("else", orelse), ("then", then)), "bool", ())
        self.nodes.append(node)
        self.by_name[name] = node
        for buffer, old in region.current.items():
            if all(cur.get(buffer) == old for cur in region.currents):
                continue
            b = self.by_name[old]
            merge = Node(self._version(buffer), "merge", (name, old), (), b.dtype, b.shape)
            self._set_version(merge)

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
        if opdef.name == "reshape":
            n = math.prod(first.shape)
            fits = [s for s in SHAPES + ((n,), (n, 1), (1, n)) if math.prod(s) == n]
            return (("shape", fits[i % len(fits)]),)
        if opdef.name in ("concat", "stack"):
            rank = len(first.shape) + (opdef.name == "stack")
            return (("axis", i % (2 * rank) - rank),) if rank else ()
        return ()

    def _next_arg(self, opdef, args, attrs, c: _Choices):
        """An operand that fits the ones chosen so far (a constant, for elementwise ops)."""
        i = c.int()
        if opdef.kind == "elementwise" and i % 5 == 4:
            return CONSTANTS[(i // 5) % len(CONSTANTS)]
        so_far = [self._t(a).shape for a in args if isinstance(a, str)]
        pool = [v for v in self.values if _fits_next(opdef.kind, so_far, self._t(v).shape,
                                                     dict(attrs))]
        if opdef.dtypes and i % 7:
            pool = [v for v in pool if self._t(v).dtype in opdef.dtypes] or pool
        if opdef.kind == "matmul" and i % 2:
            pool = [v for v in pool if len(self._t(v).shape) == 2] or pool  # @ a matrix
        return self._operand(_Choices([i // 5]), pool)

    def _try(self, op: str, args: list, attrs: tuple = ()) -> str | None:
        """Add op(args) if infer accepts it and numpy can run it; its name, else None."""
        try:
            node = typed_node(self._name(), op, args, self.by_name, attrs)
        except OpError:
            return None
        if not self._runs(node):
            return None
        self._add(node)
        return node.name

    def _runs(self, node: Node) -> bool:
        """Does the executor's closure for the node run on zeros? (infer accepts a few that
        numpy refuses: see NUMPY_REFUSED.)"""
        if OPS[node.op].run is None:        # a random draw: the executor makes it itself
            return True
        by_name = {**self.by_name, node.name: node}
        arrays = {by_name[a].buffer: np.zeros(by_name[a].shape, NUMPY_DTYPES[by_name[a].dtype])
                  for a in node.operands}
        arrays.setdefault(node.buffer, np.zeros(node.shape, NUMPY_DTYPES[node.dtype]))
        try:
            with np.errstate(all="ignore"):
                _closure(node, by_name, arrays)()
        except (TypeError, ValueError) as e:
            NUMPY_REFUSED.add((node.op, tuple(by_name[a].dtype for a in node.operands),
                               type(e).__name__))
            return False
        return True

    def finish(self) -> Graph:
        while self.regions:
            self.regions[-1].left = [0, 0]
            self._advance()
        for p in [f"P{i}" for i in range(N_PARAMS) if f"P{i}" not in self.updated]:
            self.update(p, _Choices([]))
        last = [n for n in self.nodes if n.version == 0 and n.op not in REGION
                and n.op not in ("param", "input")][-1:]
        outputs = [o for o in self.repeats + [n.name for n in last]
                   if self.current[self.by_name[o].buffer] == o]
        return verify(Graph(tuple(self.nodes), tuple(dict.fromkeys(outputs))))


def _constant(i: int, dtype: str, nonzero: bool = False):
    """One of CONSTANTS that an op computing in `dtype` takes as an immediate."""
    ok = [k for k in CONSTANTS if (dtype in FLOATS or float(k).is_integer())
          and (dtype != "bool" or k in (0, 1)) and (dtype != "u8" or k >= 0)
          and (not nonzero or k != 0)]
    return ok[i % len(ok)]


def _broadcasts_to(shape: tuple, part: tuple) -> bool:
    try:
        return tuple(np.broadcast_shapes(shape, part)) == part
    except ValueError:
        return False


def _fits_first(opdef, n: Node) -> bool:
    rank = len(n.shape)
    return {"matmul": 1 <= rank <= 2, "outer": rank == 1, "transpose": rank == 2,
            "index": rank >= 1}.get(opdef.kind, True) and \
        (opdef.dtype_rule != "index" or rank >= 1)


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

def build(header, steps, regions: bool = True) -> Graph:
    """The graph of these choices (any integers; missing ones count as 0); regions=False: no
    ifs (for the passes that decline a step with one)."""
    b = _Builder(header, regions)
    for ints in steps:
        b.step(ints)
    return b.finish()


def random_graph(seed: int, n_steps: int = 64, regions: bool = True) -> Graph:
    rng = np.random.default_rng(seed)
    header = rng.integers(0, 1 << 16, HEADER_WIDTH).tolist()
    return build(header, rng.integers(0, 1 << 16, (n_steps, STEP_WIDTH)).tolist(), regions)


def graphs(max_steps: int = 30):
    """Hypothesis strategy: random step graphs that shrink to fewer and simpler nodes."""
    ints = st.integers(0, 1 << 16)
    return st.builds(build, st.lists(ints, min_size=HEADER_WIDTH, max_size=HEADER_WIDTH),
                     st.lists(st.lists(ints, min_size=STEP_WIDTH, max_size=STEP_WIDTH),
                              min_size=1, max_size=max_steps))


def random_sources(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    """Seeded values for the parameters and the example, in each one's dtype (a run-time index
    is made in range by the graph itself: see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in graph.nodes:
        if n.op not in ("param", "input"):
            continue
        if n.dtype == "bool":
            v = rng.random(n.shape) < 0.5
        elif n.dtype in ("i8", "i32"):
            v = rng.integers(-5, 6, n.shape)
        elif n.dtype == "u8":
            v = rng.integers(0, 11, n.shape)
        else:
            v = rng.normal(size=n.shape)
        out[n.name] = np.array(v, NUMPY_DTYPES[n.dtype])      # an array even for a scalar
    return out
