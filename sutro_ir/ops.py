"""Every op of the IR in one table: arity, kind (which fixes the loop nest and so the trace),
shape rule, dtype rule, numpy implementation and arithmetic count.

Shapes are tuples of ints, () for a scalar. An operand is an array or a constant (a Python
number: an immediate, never a memory access). Shape and dtype rules raise OpError with a message
that says what was expected and what was found; the caller adds the source location.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DTYPES = {"f32": np.float32, "f16": np.float16, "i8": np.int8, "bool": np.bool_}
RANK = {"bool": 0, "i8": 1, "f16": 2, "f32": 3}
FLOATS = ("f16", "f32")


class OpError(Exception):
    """A shape or dtype rule failed; the message is for the user."""


def show(dtype: str, shape: tuple) -> str:
    """f32[1000,20], f32[] for a scalar: how types appear in messages and in printed IR."""
    return f"{dtype}[{','.join(str(d) for d in shape)}]"


@dataclass(frozen=True)
class Operand:
    """What the rules see of an argument: its type, or for a constant its value."""

    dtype: str | None          # None: a constant
    shape: tuple
    value: float | int | bool | None = None


@dataclass(frozen=True)
class OpDef:
    name: str
    arity: int
    kind: str                  # elementwise | matmul | outer | transpose | reduce | index
    dtype_rule: str            # promote | float | bool | cast | first
    run: Callable              # run(out, *args, **attrs): writes the result into `out`
    arith: tuple = ()          # ((op, per element), ...) priced by the energy preset
    attrs: tuple = ()          # allowed attributes (keyword arguments)
    doc: str = ""


def _ew(fn):
    def run(out, *args):
        fn(*args, out=out)
    run.ufunc = fn              # the executor calls the ufunc directly
    return run


def _relu(out, a):
    np.maximum(a, out.dtype.type(0), out=out)


def _hinge(out, a, b):           # max(0, 1 - a*b)
    np.multiply(a, b, out=out, dtype=out.dtype)     # i8 scores: no wrap-around
    np.subtract(out.dtype.type(1), out, out=out)
    np.maximum(out, out.dtype.type(0), out=out)


def _logistic_loss(out, a, b):   # log(1 + exp(-a*b))
    np.multiply(a, b, out=out, dtype=out.dtype)     # i8 scores: no wrap-around
    np.negative(out, out=out)
    np.logaddexp(out.dtype.type(0), out, out=out)


def _sigmoid(out, a):
    np.copyto(out, a)               # a may be bool, which numpy will not negate
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.add(out.dtype.type(1), out, out=out)
    np.reciprocal(out, out=out)


def _where(out, c, a, b):
    np.copyto(out, np.where(c, a, b))


def _cast(out, a, to=None):
    np.copyto(out, a, casting="unsafe")


def _matmul(out, a, b, ta=0):
    out[...] = np.matmul(a.T if ta else a, b)


def _outer(out, a, b):
    np.multiply(a[:, None], b[None, :], out=out)


def _transpose(out, a):
    np.copyto(out, a.T)


def _reduce(fn):
    def run(out, a, axis=None):
        # a sum of i8 values is made in a wider integer: wrap it into the output's dtype, as
        # the sum along an axis does (`out[...] =` refuses a scalar out of the i8 range)
        np.copyto(out, fn(a, axis=axis), casting="unsafe")
    return run


def _index(out, a, i=0):
    out[...] = a[i]


def _copy(out, a):
    np.copyto(out, a)


_E = "elementwise"
OPS: dict[str, OpDef] = {op.name: op for op in [
    OpDef("add", 2, _E, "promote", _ew(np.add), (("add", 1),), doc="a + b"),
    OpDef("sub", 2, _E, "promote", _ew(np.subtract), (("sub", 1),), doc="a - b"),
    OpDef("mul", 2, _E, "promote", _ew(np.multiply), (("mul", 1),), doc="a * b"),
    OpDef("div", 2, _E, "float", _ew(np.divide), (("div", 1),), doc="a / b"),
    OpDef("pow", 2, _E, "float", _ew(np.power), (("mul", 1),),
          doc="a ** b, a float (as in Python, 2 ** -1 is 0.5, so integers give f32)"),
    OpDef("maximum", 2, _E, "promote", _ew(np.maximum), (("max", 1),)),
    OpDef("minimum", 2, _E, "promote", _ew(np.minimum), (("min", 1),)),
    OpDef("lt", 2, _E, "bool", _ew(np.less), (("cmp", 1),), doc="a < b"),
    OpDef("le", 2, _E, "bool", _ew(np.less_equal), (("cmp", 1),), doc="a <= b"),
    OpDef("gt", 2, _E, "bool", _ew(np.greater), (("cmp", 1),), doc="a > b"),
    OpDef("ge", 2, _E, "bool", _ew(np.greater_equal), (("cmp", 1),), doc="a >= b"),
    OpDef("eq", 2, _E, "bool", _ew(np.equal), (("cmp", 1),), doc="a == b"),
    OpDef("ne", 2, _E, "bool", _ew(np.not_equal), (("cmp", 1),), doc="a != b"),
    OpDef("neg", 1, _E, "first", _ew(np.negative), (("sub", 1),), doc="-a"),
    OpDef("relu", 1, _E, "first", _relu, (("max", 1),)),
    OpDef("sign", 1, _E, "first", _ew(np.sign), (("cmp", 1),)),
    OpDef("abs", 1, _E, "first", _ew(np.abs), (("max", 1),)),
    OpDef("exp", 1, _E, "float", _ew(np.exp), (("exp", 1),)),
    OpDef("log", 1, _E, "float", _ew(np.log), (("exp", 1),)),
    OpDef("sqrt", 1, _E, "float", _ew(np.sqrt), (("exp", 1),)),
    OpDef("sigmoid", 1, _E, "float", _sigmoid, (("exp", 1), ("add", 1), ("div", 1))),
    OpDef("hinge", 2, _E, "float", _hinge, (("mul", 1), ("sub", 1), ("max", 1)),
          doc="max(0, 1 - a*b): the hinge loss of score a for label b"),
    OpDef("logistic_loss", 2, _E, "float", _logistic_loss,
          (("mul", 1), ("exp", 2), ("add", 1)),
          doc="log(1 + exp(-a*b)): binary cross-entropy of score a for label b in {-1, 1}"),
    OpDef("where", 3, _E, "where", _where, (("cmp", 1),), doc="c ? a : b"),
    OpDef("cast", 1, _E, "cast", _cast, (), ("to",), doc="convert to dtype `to`"),
    OpDef("copy", 1, _E, "first", _copy, (), doc="materialize a copy"),
    OpDef("matmul", 2, "matmul", "promote", _matmul, (("fma", 1),), ("ta",),
          doc="a @ b (ta=1: a transposed); for i, for j, for k: read a, read b; write out"),
    OpDef("outer", 2, "outer", "promote", _outer, (("mul", 1),)),
    OpDef("transpose", 1, "transpose", "first", _transpose, ()),
    OpDef("sum", 1, "reduce", "first", _reduce(np.sum), (("add", 1),), ("axis",)),
    OpDef("mean", 1, "reduce", "float", _reduce(np.mean), (("add", 1),), ("axis",)),
    OpDef("max", 1, "reduce", "first", _reduce(np.max), (("max", 1),), ("axis",)),
    OpDef("index", 1, "index", "first", _index, (), ("i",), doc="a[i], i a constant"),
]}

# the surface syntax for binary operators
BINOPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow", "@": "matmul",
          "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}

# functions of constants, evaluated at compile time
CONST_FUNCS = {"sqrt": math.sqrt, "exp": math.exp, "log": math.log, "abs": abs, "min": min,
               "max": max, "floor": math.floor, "ceil": math.ceil, "int": int, "float": float}

CONST_BINOPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
                "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
                "pow": lambda a, b: a ** b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
                "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b,
                "ne": lambda a, b: a != b}


# ----------------------------------------------------------------------------- type rules

def infer(op: OpDef, args: list[Operand], attrs: dict) -> tuple[str, tuple]:
    """(dtype, shape) of op applied to args, or OpError."""
    arrays = [a for a in args if a.dtype is not None]
    if not arrays:
        raise OpError(f"{op.name} needs at least one array operand, got only constants")
    for key in attrs:
        if key not in op.attrs:
            allowed = ", ".join(op.attrs) or "none"
            raise OpError(f"{op.name} takes no option '{key}' (options: {allowed})")
    shape = SHAPE_RULES[op.kind](op, args, attrs)
    return _dtype(op, args, arrays, attrs), shape


def _dtype(op: OpDef, args, arrays, attrs) -> str:
    rule = op.dtype_rule
    if rule == "bool":
        return "bool"
    if rule == "cast":
        to = attrs.get("to")
        if to not in DTYPES:
            raise OpError(f"cast needs to= one of {', '.join(DTYPES)}, got {to!r}")
        return to
    if rule == "where":
        arrays = [a for a in args[1:] if a.dtype is not None] or arrays
    if rule == "first":
        best = arrays[0].dtype
    else:
        best = max((a.dtype for a in arrays), key=RANK.__getitem__)
    if best == "bool" and op.name in NO_BOOL:
        raise OpError(f"{op.name} of bool values is not defined: cast them first, "
                      "e.g. cast(a, to=\"f32\")")
    if rule == "float" and best not in FLOATS:
        return "f32"
    return best


NO_BOOL = ("sub", "pow", "neg", "sign")   # numpy refuses these on bools


def _broadcast(op, args, attrs) -> tuple:
    shapes = [a.shape for a in args if a.dtype is not None]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        types = " and ".join(show(a.dtype, a.shape) for a in args if a.dtype is not None)
        raise OpError(f"{op.name} expects operands of the same shape (or broadcastable), "
                      f"got {types}") from None


def _matmul_shape(op, args, attrs) -> tuple:
    a, b = args
    if a.dtype is None or b.dtype is None:
        raise OpError("matmul (@) needs two arrays; multiply by a constant with *")
    sa = a.shape[::-1] if attrs.get("ta") else a.shape
    if not (1 <= len(sa) <= 2 and 1 <= len(b.shape) <= 2):
        raise OpError(f"matmul expects vectors or matrices, got {show(a.dtype, sa)} and "
                      f"{show(b.dtype, b.shape)}")
    if sa[-1] != b.shape[0]:
        raise OpError(f"matmul expects inner dims to match, got {show(a.dtype, sa)} and "
                      f"{show(b.dtype, b.shape)}")
    return sa[:-1] + b.shape[1:]


def _outer_shape(op, args, attrs) -> tuple:
    a, b = args
    if a.dtype is None or b.dtype is None or len(a.shape) != 1 or len(b.shape) != 1:
        raise OpError(f"outer expects two vectors, got {_describe(a)} and {_describe(b)}")
    return a.shape + b.shape


def _transpose_shape(op, args, attrs) -> tuple:
    (a,) = args
    if len(a.shape) != 2:
        raise OpError(f"transpose expects a matrix, got {_describe(a)}")
    return a.shape[::-1]


def _reduce_shape(op, args, attrs) -> tuple:
    (a,) = args
    axis = attrs.get("axis")
    if axis is None:
        return ()
    if not isinstance(axis, int) or not -len(a.shape) <= axis < len(a.shape):
        raise OpError(f"{op.name}: axis {axis} is out of range for {_describe(a)}")
    axis %= len(a.shape)
    return a.shape[:axis] + a.shape[axis + 1:]


def _index_shape(op, args, attrs) -> tuple:
    (a,) = args
    i = attrs.get("i")
    if not a.shape:
        raise OpError(f"cannot index a scalar ({_describe(a)})")
    if not isinstance(i, int) or not -a.shape[0] <= i < a.shape[0]:
        raise OpError(f"index {i} is out of range for {_describe(a)}")
    return a.shape[1:]


def _describe(a: Operand) -> str:
    return "a constant" if a.dtype is None else show(a.dtype, a.shape)


SHAPE_RULES = {"elementwise": _broadcast, "matmul": _matmul_shape, "outer": _outer_shape,
               "transpose": _transpose_shape, "reduce": _reduce_shape, "index": _index_shape}


def n_elements(shape: tuple) -> int:
    return math.prod(shape)


def arith_counts(op: OpDef, dtype: str, shape: tuple, arg_shapes: list[tuple],
                 attrs: dict) -> dict[str, int]:
    """Arithmetic ops one execution performs, keyed 'op.dtype' (the energy model's keys)."""
    n = n_elements(shape)
    if op.kind == "matmul":
        inner = arg_shapes[1][0]
        n *= inner
    elif op.kind == "reduce":
        n = n_elements(arg_shapes[0])
    price = dtype if dtype != "bool" else "i8"
    return {f"{name}.{price}": n * k for name, k in op.arith}
