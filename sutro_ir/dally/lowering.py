"""Lowering a `.sir` program's step to the address IR: one instruction per scalar operation.

What is lowered is the `solve` (or `train`) block's step graph, as a function:
- its inputs are what the step reads from outside, flattened row-major: the example (X, then
  Y, when read), then every parameter whose value at the start of the step is read, in
  declaration order;
- its outputs are the parameters the step writes, their final values, in declaration order.

Each value is a numpy array of scalars; a scalar is a virtual cell (an int, one per value
made, in SSA form) or a constant (`_Const`), folded where both operands are constants. Indexing,
slices, reshape, transpose, concat, stack, casts and copies only rearrange scalars: they emit
nothing. Arithmetic emits one instruction per element; matmul, outer and sum emit a product and
a running sum per term, in row-major order of the result. The cells are then placed by the
allocation pass (allocate.py).

Targets: `dally-v0` (add, sub, mul, copy; values unbounded, the matmul scorer's world; the only
constant it can make is 0, as x - x) and `dally-v3` (8-bit cells: every value must be of an
8-bit or bool type in the program, so that the IR's wrap is the program's). A program with an
`if` on data, a run-time index, a random draw or a float is refused at its line.
"""

from __future__ import annotations

import numpy as np

from ..errors import SirError
from ..ops import numpy_key, selected
from ..program import Program as SirProgram
from .isa import OPS, PREDICATES
from .text import Program

TARGETS = {"dally-v0": "v0", "dally-v3": "v3"}
MAX_INSTRUCTIONS = 2_000_000
"""mask32's line limit, the largest any scorer has. Lowering took 1.6 GB for 4.2 million
instructions (a 128x128 matmul, 2026-11-29), so the cap also keeps it under 1 GB."""
_WIDTH = ("bool", "u8", "i8", "i32")      # .sir's order of widening
_ELEMENTWISE = {"add": "add", "sub": "sub", "mul": "mul", "and": "and", "or": "or",
                "xor": "xor"}
_COMPARE = {"eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge"}
_FOLD = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
         "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b}
_NARROW = ("u8", "i8", "bool")


class _Const:
    __slots__ = ("k",)

    def __init__(self, k: int):
        self.k = int(k)


class _Emitter:
    """Instructions in SSA form: every result a new virtual cell, numbered after the inputs."""

    def __init__(self, isa: str, n_inputs: int, path: str):
        self.isa, self.path = isa, path
        self.rows: list = []          # (op code, dst, (srcs), imm, loc)
        self.next = n_inputs + 1
        self.consts: dict[int, int] = {}
        self.loc = None
        self.dtype = "i32"            # the node being lowered: folded constants wrap to it

    def emit(self, name: str, srcs, imm: int = 0) -> int:
        if len(self.rows) >= MAX_INSTRUCTIONS:
            raise SirError(f"the lowered program passes {MAX_INSTRUCTIONS:,} instructions "
                           "(the largest any scorer takes) here", self.loc)
        if OPS[name].since > int(self.isa[1]):
            raise SirError(f"this needs `{name}`, which dally-{self.isa} does not have "
                           f"(lower to dally-v{OPS[name].since} or later)", self.loc)
        dst = self.next
        self.next += 1
        self.rows.append((OPS[name].code, dst, tuple(self.cell(s) for s in srcs), imm, self.loc))
        return dst

    def cell(self, s) -> int:
        if not isinstance(s, _Const):
            return s
        if s.k not in self.consts:
            if self.isa == "v0":
                if s.k != 0:
                    raise SirError(f"the constant {s.k} cannot be made in dally-v0 (it has no "
                                   "`set`; only 0, as x - x); lower to dally-v3", self.loc)
                self.consts[0] = self.emit("sub", (1, 1))
            else:
                if not -128 <= s.k <= 255:
                    raise SirError(f"the constant {s.k} does not fit an 8-bit cell", self.loc)
                self.consts[s.k] = self.emit("set", (), s.k)
        return self.consts[s.k]


def lower_program(prog: SirProgram, target: str, path: str) -> Program:
    if target not in TARGETS:
        from simulator.errors import SimError
        raise SimError(f"unknown target '{target}' (known: {', '.join(TARGETS)})", "--target")
    isa = TARGETS[target]
    graph = prog.train.graph
    nodes = list(graph.nodes)
    read = {a for n in nodes for a in n.operands}
    inputs = [n for n in nodes if n.op == "input" and n.name in read]
    inputs.sort(key=lambda n: (n.name != prog.train.x, n.name != prog.train.y))
    inputs += [n for n in nodes if n.op == "param" and n.name in read]
    em = _Emitter(isa, 0, path)
    values: dict[str, np.ndarray] = {}
    first = 1
    body = [n for n in nodes if n.op not in ("input", "param")]
    block = (body or nodes)[0].loc if nodes else None       # the block's first statement
    if not inputs:
        raise SirError("the step reads nothing from outside (neither the example nor a "
                       "parameter's value), so its lowered program would have no input", block)
    for n in inputs:
        _check_type(n, isa)
        size = int(np.prod(n.shape, dtype=np.int64))
        values[n.name] = np.arange(first, first + size, dtype=object).reshape(n.shape)
        first += size
    em.next = first
    for n in nodes:
        if n.name in values or n.op in ("input", "param"):
            continue
        em.loc, em.dtype = n.loc, n.dtype
        _check_node(n, isa)
        values[n.name] = _lower_node(n, [values[a] if isinstance(a, str) else _Const(a)
                                         for a in n.args], em,
                                     [graph[a].dtype if isinstance(a, str) else n.dtype
                                      for a in n.args])
    finals = _final_params(prog, graph)
    outputs = [em.cell(s) for name in finals for s in np.asarray(values[name]).ravel()]
    if not outputs:
        raise SirError("the step writes no parameter, so the lowered function has no output",
                       prog.train.graph.nodes[0].loc if nodes else None)
    return _program(em, first - 1, outputs, isa, path)


def _final_params(prog, graph) -> list[str]:
    """The last version of each parameter the step writes, in declaration order."""
    last: dict[str, str] = {}
    for n in graph.nodes:
        if n.op != "param" and n.buffer in {p.name for p in prog.params}:
            last[n.buffer] = n.name
    return [last[p.name] for p in prog.params if p.name in last]


_ARITHMETIC = ("add", "sub", "mul", "neg", "sum", "matmul", "outer")


def _arithmetic(n) -> bool:
    """Does the node add, subtract or multiply (a write into part of an array that combines
    with +=, -= or *= does)?"""
    return n.op in _ARITHMETIC or (n.op == "setindex" and
                                   dict(n.attrs).get("acc") in ("add", "sub", "mul"))


def _check_node(n, isa: str) -> None:
    if n.op in ("if", "merge"):
        raise SirError("an `if` on a value computed by the step cannot be lowered to the "
                       "address IR (its program is one straight line)", n.loc)
    if (n.op == "index" and len(n.operands) > 1) or (n.op == "setindex" and
                                                      len(n.operands) > 2):
        raise SirError("a run-time index cannot be lowered to the address IR (its addresses "
                       "are fixed)", n.loc)
    _check_type(n, isa)
    if _arithmetic(n) and n.dtype == "bool":
        raise SirError("arithmetic on bool values (a logical or, in .sir) is not lowered: "
                       "compute in u8 (`u8(x)`)", n.loc)
    if isa == "v0" and (_arithmetic(n) or n.op == "cast") and n.dtype != "i32":
        raise SirError(f"dally-v0's values are unbounded integers, and {_an(n.dtype)} wraps: "
                       "compute in i32 (cast first, `i32(x)`)", n.loc)


def _check_type(n, isa: str) -> None:
    if n.dtype not in _WIDTH or (isa == "v3" and n.dtype not in _NARROW):
        raise SirError(f"{_an(n.dtype)} value cannot be lowered to dally-{isa} ("
                       + ("8-bit cells: use u8, i8 or bool values" if isa == "v3" and
                          n.dtype == "i32" else "integers and bools only") + ")", n.loc)


def _an(dtype: str) -> str:
    return ("an " if dtype.startswith("i") else "a ") + dtype      # "an i8", "a u8"


def _lower_node(n, args: list, em: _Emitter, dtypes: dict) -> np.ndarray:
    """The scalars of node n. `dtypes`: each operand's .sir dtype (the IR's cells are signed
    bytes, so an unsigned compare, a cast to bool and a logical not need care)."""
    attrs = dict(n.attrs)
    op = n.op
    if op == "cast" and n.dtype == "bool" and dtypes[0] != "bool":
        return _elementwise("ne", [args[0], _Const(0)], n.shape, em)
    if op in ("cast", "copy"):
        return np.asarray(args[0], dtype=object)
    if op == "not" and n.dtype == "bool":
        return _elementwise("xor", [args[0], _Const(1)], n.shape, em)
    if op == "abs" and dtypes[0] in ("u8", "bool"):
        return np.asarray(args[0], dtype=object)          # already its own absolute value
    if op in ("lt", "le", "gt", "ge") and max(dtypes, key=_WIDTH.index) == "u8":
        flipped = [_elementwise("xor", [a, _Const(128)], n.shape, em) for a in args]
        return _elementwise(op, flipped, n.shape, em)
    if op == "index":
        a = np.asarray(args[0], dtype=object)
        return a.ravel()[selected(attrs.get("at", ()), (), a.shape)].reshape(n.shape)
    if op == "reshape":
        return np.asarray(args[0], dtype=object).reshape(n.shape)
    if op == "transpose":
        return np.asarray(args[0], dtype=object).T
    if op in ("concat", "stack"):
        parts = [np.asarray(a, dtype=object) for a in args]
        join = np.concatenate if op == "concat" else np.stack
        return join(parts, axis=attrs.get("axis", 0))
    if op == "fill":
        return np.full(n.shape, _Const(attrs["value"]), dtype=object)
    if op in _ELEMENTWISE or op in _COMPARE or op in ("neg", "not", "where", "abs"):
        return _elementwise(op, args, n.shape, em)
    if op in ("matmul", "outer", "sum"):
        return _contract(op, args, attrs, n.shape, em)
    if op == "setindex":
        return _setindex(args, attrs, em, n)
    raise SirError(f"'{op}' cannot be lowered to the address IR yet", n.loc)


def _setindex(args: list, attrs: dict, em: _Emitter, n):
    """`a[at] := v` replaces the chosen scalars; `a[at] op= v` combines them, one instruction
    each."""
    a = np.array(args[0], dtype=object)           # a copy: the old version stays as it was
    part = np.arange(a.size).reshape(a.shape)[numpy_key(attrs.get("at", ()), (), a.shape)]
    where = np.asarray(part).ravel()
    v = args[1]
    vals = [v] * len(where) if isinstance(v, _Const) else \
        list(np.broadcast_to(np.asarray(v, dtype=object), np.shape(part)).ravel())
    acc = attrs.get("acc", "set")
    if acc != "set" and acc not in _ELEMENTWISE:
        raise SirError(f"'{acc}=' cannot be lowered to the address IR yet", n.loc)
    for e, x in zip(where.tolist(), vals):
        a.flat[e] = x if acc == "set" else _scalar(acc, [a.flat[e], x], em)
    return a


_IDENTITY = {"add": 0, "sub": None, "mul": 1, "or": 0, "xor": 0}
"""The constant that leaves the other operand as it is (x + 0, 1 * x, ...): no instruction."""


def _wrapped(k: int, dtype: str) -> int:
    """A folded constant as the program's type holds it (v0's i32: exact, unbounded)."""
    if dtype == "u8":
        return k & 0xFF
    if dtype == "i8":
        return ((k & 0xFF) ^ 0x80) - 0x80
    return k


def _scalar(op: str, xs: list, em: _Emitter):
    if all(isinstance(x, _Const) for x in xs) and op in _FOLD:
        return _Const(_wrapped(_FOLD[op](xs[0].k, xs[1].k), em.dtype))
    unit = _IDENTITY.get(op)
    if unit is not None and len(xs) == 2:
        for i in (0, 1):
            if isinstance(xs[i], _Const) and xs[i].k == unit:
                return xs[1 - i]
    if op == "sub" and isinstance(xs[1], _Const) and xs[1].k == 0:
        return xs[0]
    if op in _ELEMENTWISE:
        return em.emit(_ELEMENTWISE[op], xs)
    if op in _COMPARE:
        return em.emit("cmp", xs, PREDICATES.index(_COMPARE[op]))
    if op == "neg":
        return em.emit("sub", [_Const(0), xs[0]])
    if op in ("not", "abs"):
        return em.emit(op, xs)
    return em.emit("select", xs)          # where


def _elementwise(op: str, args: list, shape: tuple, em: _Emitter) -> np.ndarray:
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=object) if not isinstance(a, _Const)
                                   else np.array(a, dtype=object) for a in args])
    out = np.empty(shape, dtype=object)
    flat = [a.reshape(-1) if a.shape == shape else np.broadcast_to(a, shape).reshape(-1)
            for a in arrays]
    for i in range(out.size):
        out.flat[i] = _scalar(op, [f[i] for f in flat], em)
    return out


def _contract(op: str, args: list, attrs: dict, shape: tuple, em: _Emitter) -> np.ndarray:
    """Each result element: its products in order, summed as they come."""
    a = np.asarray(args[0], dtype=object)
    if op == "sum":
        axis = attrs.get("axis")
        moved = a.reshape(1, -1) if axis is None else np.moveaxis(a, axis, -1).reshape(
            -1, a.shape[axis])
        terms = [[(x,) for x in row] for row in moved]
    else:
        b = np.asarray(args[1], dtype=object)
        if op == "outer":
            terms = [[(x, y)] for x in a.ravel() for y in b.ravel()]
        else:
            if attrs.get("ta"):
                a = a.T
            a2 = a.reshape(1, -1) if a.ndim == 1 else a
            b2 = b.reshape(-1, 1) if b.ndim == 1 else b
            terms = [[(a2[i, k], b2[k, j]) for k in range(a2.shape[1])]
                     for i in range(a2.shape[0]) for j in range(b2.shape[1])]
    out = [_sum(row, em) for row in terms]
    return np.array(out, dtype=object).reshape(shape)


def _sum(row: list, em: _Emitter):
    acc = None
    for term in row:
        v = term[0] if len(term) == 1 else _scalar("mul", list(term), em)
        acc = v if acc is None else _scalar("add", [acc, v], em)
    return acc if acc is not None else _Const(0)


def _program(em: _Emitter, n_inputs: int, outputs: list, isa: str, path: str) -> Program:
    from ..compile import read_source
    rows = em.rows
    n = len(rows)
    src = np.zeros((n, 3), np.int64)
    for i, r in enumerate(rows):
        src[i, :len(r[2])] = r[2]
    locs = [r[4] for r in rows]
    text = read_source(path).split("\n") if path and not path.startswith("<") else []
    return Program(np.arange(1, n_inputs + 1, dtype=np.int64), np.array(outputs, np.int64),
                   np.array([r[0] for r in rows], np.uint8),
                   np.array([r[1] for r in rows], np.int64), src,
                   np.array([r[3] for r in rows], np.int64),
                   np.array([lc.line if lc else 0 for lc in locs], np.int32),
                   np.array([lc.col if lc else 0 for lc in locs], np.int32), isa, path,
                   tuple(text), 1, 1)

