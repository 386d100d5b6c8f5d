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

DTYPES = {"f32": np.float32, "f16": np.float16, "i32": np.int32, "i8": np.int8, "u8": np.uint8,
          "bool": np.bool_}
RANK = {"bool": 0, "u8": 1, "i8": 2, "i32": 3, "f16": 4, "f32": 5}
FLOATS = ("f16", "f32")
INTS = ("u8", "i8", "i32")


class OpError(Exception):
    """A shape or dtype rule failed; the message is for the user."""


class RunError(Exception):
    """A value that the semantics refuse, found while running (an index out of range, a float
    that does not fit the integer type it is cast to); the executor adds the step and the
    source location."""


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
    arity: int | None          # None: any number of array operands (the shape rule checks)
    kind: str                  # see KINDS
    dtype_rule: str            # promote | float | bool | cast | first | where | index | attr
    run: Callable              # run(out, *args, **attrs): writes the result into `out`
    arith: tuple = ()          # ((op, per element), ...) priced by the energy preset
    attrs: tuple = ()          # allowed attributes (keyword arguments)
    doc: str = ""
    dtypes: tuple = ()         # the operand dtypes it takes, when not every dtype


KINDS = ("elementwise", "matmul", "outer", "transpose", "reduce", "index", "setindex",
         "construct", "gather", "einsum", "region")
"""What fixes an op's loop nest, and so its trace (docs/machine-model.md). `gather` ops (reshape,
concat, stack) read one source element per output element; `construct` ops only write."""

ANCHORS = frozenset(KINDS) - {"setindex", "region"}
"""Kinds whose loop nest is their output's index space, so a fused kernel may start with them
(a `setindex` loops over the part it writes, not over the whole array it defines)."""


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
    a = np.asarray(a)
    if out.dtype.kind in "iu" and a.dtype.kind == "f":
        check_fits(a, out.dtype)
    np.copyto(out, a, casting="unsafe")


def check_fits(a: np.ndarray, dtype: np.dtype) -> None:
    """A float converted to an integer type drops its fraction; one that does not fit (or nan)
    is refused."""
    info = np.iinfo(dtype)
    bad = ~((a > info.min - 1) & (a < info.max + 1))
    if bad.any():
        v = a[bad].flat[0] if a.ndim else a
        raise RunError(f"{float(v)!r} does not fit in {_NAME[np.dtype(dtype)]} "
                       f"({info.min}..{info.max})")


def _not(out, a):
    np.invert(a, out=out)       # bool: logical not; integers: every bit flipped


def _matmul(out, a, b, ta=0):
    out[...] = np.matmul(a.T if ta else a, b)


def _outer(out, a, b):
    np.multiply(a[:, None], b[None, :], out=out)


def _transpose(out, a):
    np.copyto(out, a.T)


def _reduce(fn):
    def run(out, a, axis=None, keepdims=False):
        # a sum of i8 values is made in a wider integer: wrap it into the output's dtype, as
        # the sum along an axis does (`out[...] =` refuses a scalar out of the i8 range)
        np.copyto(out, fn(a, axis=axis, keepdims=bool(keepdims)), casting="unsafe")
    return run


def _index(out, a, *dyn, at=()):
    out[...] = a[numpy_key(at, dyn, a.shape)]


def _setindex(out, a, v, *dyn, at=(), acc="set"):
    # `out` is `a`'s own buffer (a new version of it): only the indexed part is written
    key = numpy_key(at, dyn, a.shape)
    if acc == "set" and any(np.ndim(d) for d in dyn):
        _set_in_order(out, key, v)
    elif acc == "set":
        out[key] = v
    elif any(np.ndim(d) for d in dyn):
        # an index array may repeat an element: each occurrence combines in turn (a
        # scatter-add), which `out[key] += v` would not do
        ACCUMULATE[acc].at(out, key, np.asarray(v, out.dtype))
    else:
        out[key] = ACCUMULATE[acc](out[key], v).astype(out.dtype, copy=False)


def _set_in_order(out, key: tuple, v) -> None:
    """out[ids, ...] = v as if written one id after another: of a repeated id the last write
    counts (numpy leaves the order of a repeated index's assignments open)."""
    ids = key[0]
    flat = ids.ravel()
    part = out[key].shape
    rows = np.broadcast_to(np.asarray(v, out.dtype), part).reshape((flat.size,) +
                                                                    part[ids.ndim:])
    last = flat.size - 1 - np.unique(flat[::-1], return_index=True)[1]
    out[(flat[last],) + key[1:]] = rows[last]


ACCUMULATE = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
              "floordiv": np.floor_divide, "mod": np.remainder, "xor": np.bitwise_xor,
              "and": np.bitwise_and, "or": np.bitwise_or, "shl": np.left_shift,
              "shr": np.right_shift}


def _fill(out, shape=(), dtype="f32", value=0):
    out.fill(value)


def _eye(out, shape=(), dtype="f32"):
    out.fill(0)
    np.fill_diagonal(out, 1)


def _arange(out, start=0, stop=0, step=1, dtype="i32"):
    out[...] = np.arange(start, stop, step)


def _reshape(out, a, shape=()):
    np.copyto(out, np.reshape(a, shape))


def _concat(out, *arrays, axis=0):
    np.concatenate(arrays, axis=axis, out=out, casting="unsafe")


def _stack(out, *arrays, axis=0):
    np.stack(arrays, axis=axis, out=out, casting="unsafe")


def _einsum(out, *arrays, spec=""):
    out[...] = np.einsum(spec, *arrays)


def _arg(fn):
    def run(out, a, axis=None, keepdims=False):
        out[...] = fn(a, axis=axis, keepdims=bool(keepdims))
    return run


def _copy(out, a):
    np.copyto(out, a)


_E = "elementwise"
_BITS = ("bool",) + INTS
OPS: dict[str, OpDef] = {op.name: op for op in [
    OpDef("add", 2, _E, "promote", _ew(np.add), (("add", 1),), doc="a + b"),
    OpDef("sub", 2, _E, "promote", _ew(np.subtract), (("sub", 1),), doc="a - b"),
    OpDef("mul", 2, _E, "promote", _ew(np.multiply), (("mul", 1),), doc="a * b"),
    OpDef("div", 2, _E, "float", _ew(np.divide), (("div", 1),), doc="a / b"),
    OpDef("floordiv", 2, _E, "promote", _ew(np.floor_divide), (("div", 1),),
          doc="a // b, rounded down (an integer divided by 0 gives 0)", dtypes=INTS + FLOATS),
    OpDef("mod", 2, _E, "promote", _ew(np.remainder), (("div", 1),),
          doc="a % b, with the sign of b (an integer modulo 0 gives 0)", dtypes=INTS + FLOATS),
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
    OpDef("and", 2, _E, "promote", _ew(np.bitwise_and), (("logic", 1),),
          doc="a & b: bitwise (logical for bool)", dtypes=_BITS),
    OpDef("or", 2, _E, "promote", _ew(np.bitwise_or), (("logic", 1),),
          doc="a | b: bitwise (logical for bool)", dtypes=_BITS),
    OpDef("xor", 2, _E, "promote", _ew(np.bitwise_xor), (("logic", 1),),
          doc="a ^ b: bitwise (logical for bool)", dtypes=_BITS),
    OpDef("not", 1, _E, "first", _not, (("logic", 1),),
          doc="~a: every bit flipped (logical not for bool)", dtypes=_BITS),
    OpDef("shl", 2, _E, "first", _ew(np.left_shift), (("shift", 1),),
          doc="a << b, wrapping (a shift by the width or more gives 0)", dtypes=INTS),
    OpDef("shr", 2, _E, "first", _ew(np.right_shift), (("shift", 1),),
          doc="a >> b, arithmetic for signed types", dtypes=INTS),
    OpDef("neg", 1, _E, "first", _ew(np.negative), (("sub", 1),), doc="-a"),
    OpDef("relu", 1, _E, "first", _relu, (("max", 1),)),
    OpDef("sign", 1, _E, "first", _ew(np.sign), (("cmp", 1),)),
    OpDef("abs", 1, _E, "first", _ew(np.abs), (("max", 1),)),
    OpDef("exp", 1, _E, "float", _ew(np.exp), (("exp", 1),)),
    OpDef("log", 1, _E, "float", _ew(np.log), (("exp", 1),)),
    OpDef("sqrt", 1, _E, "float", _ew(np.sqrt), (("exp", 1),)),
    OpDef("sigmoid", 1, _E, "float", _sigmoid, (("exp", 1), ("add", 1), ("div", 1))),
    OpDef("tanh", 1, _E, "float", _ew(np.tanh), (("exp", 1), ("add", 1), ("div", 1))),
    OpDef("stop_grad", 1, _E, "first", _copy, (),
          doc="a itself, which grad does not differentiate through (gone once the sweep is "
              "made: it costs nothing)"),
    OpDef("hinge", 2, _E, "float", _hinge, (("mul", 1), ("sub", 1), ("max", 1)),
          doc="max(0, 1 - a*b): the hinge loss of score a for label b"),
    OpDef("logistic_loss", 2, _E, "float", _logistic_loss,
          (("mul", 1), ("exp", 2), ("add", 1)),
          doc="log(1 + exp(-a*b)): binary cross-entropy of score a for label b in {-1, 1}"),
    OpDef("where", 3, _E, "where", _where, (("cmp", 1),), doc="c ? a : b"),
    OpDef("cast", 1, _E, "cast", _cast, (), ("to",),
          doc="convert to dtype `to` (a float to an integer drops the fraction; one that does "
              "not fit is an error)"),
    OpDef("copy", 1, _E, "first", _copy, (), doc="materialize a copy"),
    OpDef("matmul", 2, "matmul", "promote", _matmul, (("fma", 1),), ("ta",),
          doc="a @ b (ta=1: a transposed); for i, for j, for k: read a, read b; write out"),
    OpDef("outer", 2, "outer", "promote", _outer, (("mul", 1),)),
    OpDef("transpose", 1, "transpose", "first", _transpose, ()),
    OpDef("sum", 1, "reduce", "first", _reduce(np.sum), (("add", 1),), ("axis", "keepdims")),
    OpDef("mean", 1, "reduce", "float", _reduce(np.mean), (("add", 1),), ("axis", "keepdims")),
    OpDef("max", 1, "reduce", "first", _reduce(np.max), (("max", 1),), ("axis", "keepdims")),
    OpDef("min", 1, "reduce", "first", _reduce(np.min), (("min", 1),), ("axis", "keepdims")),
    OpDef("argmax", 1, "reduce", "index", _arg(np.argmax), (("cmp", 1),), ("axis", "keepdims"),
          doc="the position of the largest element (the first, on ties), i32; without axis, "
              "counted row-major over the whole array"),
    OpDef("argmin", 1, "reduce", "index", _arg(np.argmin), (("cmp", 1),), ("axis", "keepdims"),
          doc="the position of the smallest element (the first, on ties), i32"),
    OpDef("index", None, "index", "first", _index, (), ("at",),
          doc="a[i, j:k, ...]: `at` has one entry per leading dimension: an integer, a slice "
              "(start, stop, step), or None for an index read from the next operand at run time"),
    OpDef("setindex", None, "setindex", "first", _setindex, (), ("at", "acc"),
          doc="a new version of a with a[at] set to v (acc=add, xor, ...: combined with it)"),
    OpDef("fill", 0, "construct", "attr", _fill, (), ("shape", "dtype", "value"),
          doc="an array of one value: zeros(), ones(), full()"),
    OpDef("eye", 0, "construct", "attr", _eye, (), ("shape", "dtype"), doc="the identity"),
    OpDef("arange", 0, "construct", "attr", _arange, (), ("start", "stop", "step", "dtype"),
          doc="start, start + step, ... below stop"),
    OpDef("normal", 0, "construct", "attr", None, (("exp", 2),), ("shape", "dtype", "std", "mean"),
          doc="random normal values (normal_like(x, std=...)): a fresh draw each step"),
    OpDef("bernoulli", 0, "construct", "attr", None, (("cmp", 1),), ("shape", "p", "dtype"),
          doc="random true/false values, true with probability p: a fresh draw each step"),
    OpDef("reshape", 1, "gather", "first", _reshape, (), ("shape",),
          doc="the same elements in row-major order, in a new shape (a copy)"),
    OpDef("concat", None, "gather", "promote", _concat, (), ("axis",),
          doc="arrays joined along an existing axis"),
    OpDef("stack", None, "gather", "promote", _stack, (), ("axis",),
          doc="arrays of one shape joined along a new axis"),
    OpDef("if", None, "region", "first", None,
          doc="if c { then } else { else }: only the taken block runs (graph.py)"),
    OpDef("merge", 2, "region", "first", None,
          doc="the version of a buffer after an if that wrote it (no access: both blocks "
              "wrote the same buffer)"),
    OpDef("einsum", None, "einsum", "promote", _einsum, (("fma", 1),), ("spec",),
          doc="einsum(\"si,sj,s->ij\", a, b, c): a sum of products over the indices the output "
              "leaves out; for each output element, for each summed index: read each operand"),
]}

_NAME = {np.dtype(v): k for k, v in DTYPES.items()}

# the surface syntax for binary operators
BINOPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "//": "floordiv", "%": "mod",
          "**": "pow", "@": "matmul", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq",
          "!=": "ne", "&": "and", "|": "or", "^": "xor", "<<": "shl", ">>": "shr",
          "and": "and", "or": "or"}

# functions of constants, evaluated at compile time
CONST_FUNCS = {"sqrt": math.sqrt, "exp": math.exp, "log": math.log, "tanh": math.tanh,
               "abs": abs, "min": min,
               "max": max, "floor": math.floor, "ceil": math.ceil, "int": int, "float": float}

CONST_BINOPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
                "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
                "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b,
                "pow": lambda a, b: a ** b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
                "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b,
                "ne": lambda a, b: a != b, "and": lambda a, b: a & b, "or": lambda a, b: a | b,
                "xor": lambda a, b: a ^ b, "shl": lambda a, b: a << b,
                "shr": lambda a, b: a >> b}


# ----------------------------------------------------------------------------- type rules

def infer(op: OpDef, args: list[Operand], attrs: dict) -> tuple[str, tuple]:
    """(dtype, shape) of op applied to args, or OpError."""
    arrays = [a for a in args if a.dtype is not None]
    if not arrays and op.kind != "construct":
        raise OpError(f"{op.name} needs at least one array operand, got only constants")
    for key in attrs:
        if key not in op.attrs:
            allowed = ", ".join(op.attrs) or "none"
            raise OpError(f"{op.name} takes no option '{key}' (options: {allowed})")
    shape = SHAPE_RULES[op.kind](op, args, attrs)
    dtype = _dtype(op, args, arrays, attrs)
    _check_constants(op, args, arrays, dtype)
    return dtype, shape


def _dtype(op: OpDef, args, arrays, attrs) -> str:
    rule = op.dtype_rule
    if rule == "bool":
        best = max((a.dtype for a in arrays), key=RANK.__getitem__)
        _check_takes(op, best, arrays)
        return "bool"
    if rule == "index":
        return "i32"
    if rule in ("cast", "attr"):
        to = attrs.get("to" if rule == "cast" else "dtype")
        if to not in DTYPES:
            raise OpError(f"{op.name} needs {'to' if rule == 'cast' else 'dtype'}= one of "
                          f"{', '.join(DTYPES)}, got {to!r}")
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
    _check_takes(op, best, arrays)
    if rule == "float" and best not in FLOATS:
        return "f32"
    return best


def _check_takes(op: OpDef, dtype: str, arrays=()) -> None:
    """The op's allowed dtypes, for the type it computes in and for every array operand."""
    for d in [dtype, *(a.dtype for a in arrays)]:
        if op.dtypes and d not in op.dtypes:
            raise OpError(f"{op.name} takes {', '.join(op.dtypes)} values, got {d} (cast "
                          "first)")


def _check_constants(op: OpDef, args, arrays, dtype: str) -> None:
    """A constant is an immediate of the dtype the op computes in: it must be representable."""
    if op.kind != "elementwise" or not arrays:
        return
    kind = dtype if op.dtype_rule != "bool" else \
        max((a.dtype for a in arrays), key=RANK.__getitem__)
    for a in args:
        if a.dtype is None:
            check_immediate(a.value, kind)


def check_immediate(value, dtype: str) -> None:
    if isinstance(value, bool):
        return
    if dtype in FLOATS:
        big = float(np.finfo(DTYPES[dtype]).max)
        try:
            fits = abs(float(value)) <= big or not math.isfinite(float(value))
        except OverflowError:
            fits = False
        if not fits:
            raise OpError(f"the constant {value!r} does not fit in {dtype} (at most {big:g})")
        return
    if isinstance(value, float) and not value.is_integer():
        raise OpError(f"the constant {value!r} is not an integer, and this op computes in "
                      f"{dtype} (cast the array to f32 first)")
    if dtype == "bool":
        if value not in (0, 1):
            raise OpError(f"the constant {value!r} is not 0 or 1, and this op computes in bool")
        return
    info = np.iinfo(DTYPES[dtype])
    if not info.min <= value <= info.max:
        raise OpError(f"the constant {value!r} does not fit in {dtype} "
                      f"({info.min}..{info.max})")


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
    if op.dtype_rule == "index" and not a.shape:
        raise OpError(f"{op.name} of a scalar ({_describe(a)}) is not defined")
    keep = attrs.get("keepdims", False)
    if not isinstance(keep, bool):
        raise OpError(f"{op.name}: keepdims is true or false, got {keep!r}")
    if axis is None:
        return (1,) * len(a.shape) if keep else ()
    if not isinstance(axis, int) or isinstance(axis, bool) or \
            not -len(a.shape) <= axis < len(a.shape):
        raise OpError(f"{op.name}: axis {axis} is out of range for {_describe(a)}")
    axis %= len(a.shape)
    return a.shape[:axis] + ((1,) if keep else ()) + a.shape[axis + 1:]


# ----------------------------------------------------------------------------- indexing

def check_spec(at, shape: tuple, dynamic) -> tuple:
    """The shape a[at] selects; `at` is canonical (see normalize_spec). `dynamic`: the shapes
    of the run-time index operands, in order (() for a scalar; an int n: n scalars). An index
    array (a gather) must be the first subscript: its dimensions replace the first one, as in
    numpy, `E[ids]` of an E[V, d] and ids[T] being [T, d]."""
    dynamic = ((),) * dynamic if isinstance(dynamic, int) else tuple(dynamic)
    if not isinstance(at, tuple) or len(at) > len(shape):
        raise OpError(f"too many indices ({len(at) if isinstance(at, tuple) else at!r}) for "
                      f"an array of {len(shape)} dimension{'s' * (len(shape) != 1)}")
    out, k = [], 0
    for position, (entry, d) in enumerate(zip(at, shape)):
        if entry is None:
            if k < len(dynamic) and dynamic[k]:
                if position:
                    raise OpError("an index array must be the first subscript (E[ids], "
                                  "E[ids, :])")
                out.extend(dynamic[k])
            k += 1
        elif isinstance(entry, int) and not isinstance(entry, bool):
            if not 0 <= entry < d:
                raise OpError(f"index {entry} is out of range for a dimension of {d}")
        elif isinstance(entry, tuple) and len(entry) == 3 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in entry):
            if entry[2] == 0 or entry != canonical_slice(range(*entry), entry[2]) or \
                    not range(*entry) or not 0 <= min(range(*entry)) <= max(range(*entry)) < d:
                raise OpError(f"the slice {slice_text(entry)} of a dimension of {d} is empty or "
                              "not canonical")
            out.append(len(range(*entry)))
        else:
            raise OpError(f"bad index {entry!r}")
    if k != len(dynamic):
        raise OpError(f"{k} run-time indices but {len(dynamic)} index operands")
    return tuple(out) + tuple(shape[len(at):])


def normalize_spec(entries: list, shape: tuple) -> tuple:
    """Source subscripts -> canonical `at`: an int in range, (start, stop, step) with the bounds
    Python's slice.indices gives, or None (a run-time index); raises OpError."""
    if len(entries) > len(shape):
        raise OpError(f"{len(entries)} indices for an array of {len(shape)} "
                      f"dimension{'s' * (len(shape) != 1)} ({show('?', shape)[1:]})")
    out = []
    for e, d in zip(entries, shape):
        if e is None:
            out.append(None)
        elif isinstance(e, int):
            if not -d <= e < d:
                raise OpError(f"index {e} is out of range for a dimension of {d}")
            out.append(e % d)
        else:
            start, stop, step = e
            if step == 0:
                raise OpError("a slice step cannot be 0")
            picked = range(*slice(start, stop, step).indices(d))
            if len(picked) == 0:
                raise OpError(f"the slice {slice_text((start, stop, step))} of a dimension of "
                              f"{d} is empty")
            out.append(canonical_slice(picked, picked.step))
    while out and out[-1] == (0, shape[len(out) - 1], 1):
        out.pop()                       # a trailing `:` is the same as leaving it out
    return tuple(out)


def canonical_slice(picked: range, step: int) -> tuple:
    """The elements a slice picks as (first, last + step, step): a Python range, whose stop is
    -1 when a negative step runs down to element 0."""
    return (picked[0], picked[-1] + step, step)


def slice_text(entry) -> str:
    """A slice as source text that picks the same elements (a canonical stop of -1 with a
    negative step is written as an empty stop: `2::-1`)."""
    start, stop, step = entry
    if step is not None and step < 0 and stop == -1:
        stop = None
    text = f"{'' if start is None else start}:{'' if stop is None else stop}"
    return text if step in (1, None) else f"{text}:{step}"


def numpy_key(at: tuple, dyn: tuple, shape: tuple) -> tuple:
    """The numpy subscript of a[at] with the run-time indices `dyn`; an index out of range is a
    RunError."""
    key, k = [], 0
    for entry, d in zip(at, shape):
        if entry is None:
            i = dyn[k]
            k += 1
            if np.ndim(i):                      # an index array: every element in range
                i = np.asarray(i)
                bad = (i < 0) | (i >= d)
                if bad.any():
                    raise RunError(f"index {int(i[bad].flat[0])} is out of range for a "
                                   f"dimension of {d}")
            else:
                i = int(i)
                if not 0 <= i < d:
                    raise RunError(f"index {i} is out of range for a dimension of {d}")
            key.append(i)
        elif isinstance(entry, tuple):
            start, stop, step = entry
            key.append(slice(start, None if stop < 0 else stop, step))
        else:
            key.append(entry)
    return tuple(key)


def selected(at: tuple, dyn: tuple, shape: tuple) -> np.ndarray:
    """The row-major element numbers of a[at] in a's buffer, in the order of the result."""
    return np.arange(n_elements(shape)).reshape(shape)[numpy_key(at, dyn, shape)].ravel()


def _index_shape(op, args, attrs) -> tuple:
    a, *dyn = args
    if a.dtype is None or not a.shape:
        raise OpError(f"cannot index {_describe(a)}")
    _check_dynamic(dyn)
    return check_spec(attrs.get("at", ()), a.shape, [d.shape for d in dyn])


def _setindex_shape(op, args, attrs) -> tuple:
    if len(args) < 2:
        raise OpError("setindex takes the array, the value and the run-time indices")
    a, v, *dyn = args
    if a.dtype is None or not a.shape:
        raise OpError(f"cannot write into {_describe(a)} by index")
    _check_dynamic(dyn)
    part = check_spec(attrs.get("at", ()), a.shape, [d.shape for d in dyn])
    acc = attrs.get("acc", "set")
    if acc != "set" and acc not in ACCUMULATE:
        raise OpError(f"setindex: unknown acc {acc!r}")
    if v.dtype is None:
        check_immediate(v.value, a.dtype)
    else:
        try:
            if tuple(np.broadcast_shapes(v.shape, part)) != part:
                raise ValueError
        except ValueError:
            raise OpError(f"cannot write {_describe(v)} into a part of shape "
                          f"{list(part)}") from None
        if RANK[v.dtype] > RANK[a.dtype]:
            raise OpError(f"cannot write {v.dtype} values into a {a.dtype} array without a "
                          f"cast (e.g. {a.dtype}(v))")
    if acc in ("xor", "and", "or") and a.dtype not in _BITS or \
            acc in ("shl", "shr") and a.dtype not in INTS or \
            acc in ("sub", "floordiv", "mod") and a.dtype == "bool":
        raise OpError(f"{acc} of {a.dtype} values is not defined")
    if acc == "div" and a.dtype not in FLOATS:
        raise OpError(f"/= of {a.dtype} values is not defined (use //)")
    return a.shape


def _check_dynamic(dyn) -> None:
    for d in dyn:
        if d.dtype not in INTS:
            raise OpError(f"a run-time index is an integer scalar or array (i32, i8, u8), "
                          f"got {_describe(d)}")


def _construct_shape(op, args, attrs) -> tuple:
    if op.name == "arange":
        start, stop, step = (attrs.get(k, d) for k, d in (("start", 0), ("stop", 0),
                                                          ("step", 1)))
        dtype = attrs.get("dtype", "i32")
        for v in (start, stop, step):
            if not isinstance(v, int) or isinstance(v, bool) or abs(v) > 2 ** 31:
                raise OpError(f"arange: start, stop and step are integers up to 2**31, got "
                              f"{v!r}")
        n = len(range(start, stop, step or 1))
        if step == 0 or n == 0:
            raise OpError("arange: the range is empty")
        if dtype in DTYPES:
            check_immediate(start, dtype)
            check_immediate(start + (n - 1) * step, dtype)
        return (n,)
    shape = attrs.get("shape", ())
    if not isinstance(shape, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise OpError(f"{op.name}: a shape is a list of positive integers, got {shape!r}")
    if op.name == "eye" and len(shape) != 2:
        raise OpError(f"eye makes a matrix, got shape {list(shape)}")
    if op.name == "fill":
        check_immediate(attrs.get("value", 0), attrs.get("dtype", "f32")
                        if attrs.get("dtype") in DTYPES else "f32")
    if op.name == "normal":
        std, mean = attrs.get("std"), attrs.get("mean", 0.0)
        if not _real(std) or std < 0 or not _real(mean) or abs(mean) > 1e30 or std > 1e30:
            raise OpError(f"normal_like: std is a number >= 0 and mean a number, got "
                          f"std={std!r}, mean={mean!r}")
        if attrs.get("dtype") not in FLOATS:
            raise OpError("normal_like gives floats: its array is f32 or f16")
    if op.name == "bernoulli":
        p = attrs.get("p")
        if not _real(p) or not 0 <= p <= 1:
            raise OpError(f"bernoulli: p is a probability in [0, 1], got {p!r}")
    return shape


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


RANDOM_OPS = ("normal", "bernoulli")
"""Ops whose value is a fresh random draw (keyed by the run's seed, the step and the node's
name): two of them are never the same value, so cse keeps both and recompute clones neither."""


def _gather_shape(op, args, attrs) -> tuple:
    if any(a.dtype is None for a in args):
        raise OpError(f"{op.name} takes arrays, not constants")
    if op.name == "reshape":
        (a,) = args
        shape = attrs.get("shape", ())
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            raise OpError(f"reshape: a shape is a list of positive integers, got {list(shape)}")
        if n_elements(shape) != n_elements(a.shape):
            raise OpError(f"cannot reshape {_describe(a)} ({n_elements(a.shape)} elements) to "
                          f"{list(shape)} ({n_elements(shape)} elements)")
        return tuple(shape)
    if len(args) < 1:
        raise OpError(f"{op.name} needs at least one array")
    first = args[0].shape
    rank = len(first) + (op.name == "stack")
    axis = attrs.get("axis", 0)
    if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
        raise OpError(f"{op.name}: axis {axis!r} is out of range for rank {rank}")
    axis %= rank
    if op.name == "stack":
        if any(a.shape != first for a in args):
            raise OpError("stack needs arrays of one shape, got "
                          + ", ".join(_describe(a) for a in args))
        return first[:axis] + (len(args),) + first[axis:]
    if not first or any(len(a.shape) != len(first) or a.shape[:axis] != first[:axis]
                        or a.shape[axis + 1:] != first[axis + 1:] for a in args):
        raise OpError(f"concat needs arrays that differ only along axis {axis}, got "
                      + ", ".join(_describe(a) for a in args))
    return first[:axis] + (sum(a.shape[axis] for a in args),) + first[axis + 1:]


def parse_einsum(spec: str, shapes: list[tuple]) -> tuple[list[str], str, dict]:
    """'si,sj->ij' -> (input subscripts, output subscripts, size of every letter)."""
    if not isinstance(spec, str) or spec.count("->") != 1:
        raise OpError("einsum needs an explicit output, e.g. einsum(\"si,sj->ij\", a, b)")
    lhs, out = spec.replace(" ", "").split("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise OpError(f"einsum {spec!r} names {len(ins)} operands, got {len(shapes)}")
    sizes: dict[str, int] = {}
    for sub, shape in zip(ins, shapes):
        if sub and not (sub.isascii() and sub.isalpha()) or len(sub) != len(shape) or \
                len(set(sub)) != len(sub):
            raise OpError(f"einsum {spec!r}: subscripts {sub!r} do not fit an operand of shape "
                          f"{list(shape)} (one distinct letter per dimension)")
        for c, d in zip(sub, shape):
            if sizes.setdefault(c, d) != d:
                raise OpError(f"einsum {spec!r}: '{c}' is {sizes[c]} in one operand and {d} in "
                              "another")
    if not out.isascii() or len(set(out)) != len(out) or any(c not in sizes for c in out):
        raise OpError(f"einsum {spec!r}: the output letters must be distinct input letters")
    return ins, out, sizes


def _einsum_shape(op, args, attrs) -> tuple:
    if any(a.dtype is None for a in args):
        raise OpError("einsum takes arrays, not constants")
    _, out, sizes = parse_einsum(attrs.get("spec"), [a.shape for a in args])
    return tuple(sizes[c] for c in out)


def _describe(a: Operand) -> str:
    return "a constant" if a.dtype is None else show(a.dtype, a.shape)


SHAPE_RULES = {"elementwise": _broadcast, "matmul": _matmul_shape, "outer": _outer_shape,
               "transpose": _transpose_shape, "reduce": _reduce_shape, "index": _index_shape,
               "setindex": _setindex_shape, "construct": _construct_shape,
               "gather": _gather_shape, "einsum": _einsum_shape}


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
    elif op.kind == "einsum":
        ins, out, sizes = parse_einsum(attrs["spec"], arg_shapes)
        summed = {c for sub in ins for c in sub} - set(out)
        n *= math.prod(sizes[c] for c in summed) * max(len(arg_shapes) - 1, 1)
    elif op.kind == "setindex":
        acc = attrs.get("acc", "set")
        if acc == "set":
            return {}
        at = attrs.get("at", ())
        dynamic = arg_shapes[len(arg_shapes) - at.count(None):]     # the last operands
        n = n_elements(check_spec(at, arg_shapes[0], dynamic))
        price = dtype if dtype != "bool" else "i8"
        return {f"{ACC_ARITH.get(acc, acc)}.{price}": n}
    price = dtype if dtype != "bool" else "i8"
    return {f"{name}.{price}": n * k for name, k in op.arith}


ACC_ARITH = {"xor": "logic", "and": "logic", "or": "logic", "floordiv": "div", "mod": "div",
             "shl": "shift", "shr": "shift"}
