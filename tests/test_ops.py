"""Every op of the IR, as the executor runs it, against a reference written here.

One node `r = op(args)` is built as a graph, typed with the dtype and shape the *test* expects
(docs/language.md: the widest operand type, bool < i8 < f16 < f32; comparisons give bool;
division and transcendental functions give a float, f32 for integer inputs), verified (so the
op table's type rule must agree) and run by `sutro_ir.execute.Step`. The reference is plain
Python per element: exact integers and floats, rounded once to the result dtype. The oracle
does not call ops.py.

Exactness: +, -, *, /, sqrt are exactly rounded in IEEE arithmetic, and rounding a float64 result
to f32 or f16 gives the same bits as computing in that type (53 >= 2p + 2), so those compare
bit for bit; so do comparisons, max, casts, integer arithmetic (i8 wraps modulo 256, as numpy's
does) and sums of small integers. exp, log, pow, sigmoid and logistic_loss are not exactly
rounded: they are allowed a few ulps of the result dtype, never a percentage.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from sutro_ir.execute import NodeError, Step
from sutro_ir.graph import Graph, Node, verify
from sutro_ir.ops import OPS
from sutro_ir.schedule import schedule

NP = {"f32": np.float32, "f16": np.float16, "i8": np.int8, "bool": np.bool_}
NAME = {np.dtype(v): k for k, v in NP.items()}
ORDER = ["bool", "i8", "f16", "f32"]          # docs/language.md: the widest operand type wins
FLOAT_OF = {"bool": "f32", "i8": "f32", "f16": "f16", "f32": "f32"}
ULPS = 4                                       # numpy's SIMD exp/log are within 4 ulps


# ----------------------------------------------------------------------------- running one op

def sources(args: list, prefix: str) -> tuple[list, dict, list]:
    """(input nodes, their arrays, the operand list) for args that are arrays or constants."""
    nodes, arrays, names = [], {}, []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            nodes.append(Node(f"{prefix}{i}", "input", dtype=NAME[a.dtype], shape=a.shape))
            arrays[f"{prefix}{i}"] = a.copy()
            names.append(f"{prefix}{i}")
        else:
            names.append(a)
    return nodes, arrays, names


def run_op(op: str, args: list, out_dtype: str, out_shape: tuple, **attrs) -> np.ndarray:
    """Execute `r = op(*args, **attrs)` typed dtype[shape]; args are numpy arrays or constants."""
    nodes, arrays, names = sources(args, "a")
    nodes.append(Node("r", op, tuple(names), tuple(sorted(attrs.items())), out_dtype,
                      tuple(out_shape)))
    graph = verify(Graph(tuple(nodes), ("r",)))   # the op table's type rule must agree with ours
    with np.errstate(all="ignore"):
        Step(graph, arrays, schedule(graph).kernels)()
    out = arrays["r"]
    assert out.dtype == NP[out_dtype] and out.shape == tuple(out_shape)
    return out


def wider(*dtypes: str) -> str:
    return max(dtypes, key=ORDER.index)


def rounded(x, dtype: str):
    """A Python number rounded (floats) or wrapped modulo 2^8 (i8) into dtype."""
    if dtype == "bool":
        return bool(x)
    if dtype == "i8":
        return (int(x) + 128) % 256 - 128
    with np.errstate(over="ignore"):            # past the largest finite value: inf, as IEEE says
        return NP[dtype](x)


def py(v):
    """A numpy element as a Python number (bool, int or float), exactly."""
    return v.item()


def broadcast_shape(*shapes: tuple) -> tuple:
    """The right-aligned broadcast of shapes (written here: the oracle does not ask numpy)."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        sizes = {d for d in dims if d != 1}
        assert len(sizes) <= 1, shapes
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def element(a, idx: tuple):
    """a at output index idx under broadcasting; a constant is itself."""
    if not isinstance(a, np.ndarray):
        return a
    idx = idx[len(idx) - a.ndim:]
    return py(a[tuple(0 if d == 1 else i for d, i in zip(a.shape, idx))])


def reference(fn, args: list, dtype: str) -> np.ndarray:
    """fn on Python numbers at every output index, each result rounded into dtype."""
    shape = broadcast_shape(*[a.shape for a in args if isinstance(a, np.ndarray)])
    out = np.zeros(shape, NP[dtype])
    for idx in np.ndindex(shape):
        out[idx] = rounded(fn(*[element(a, idx) for a in args]), dtype)
    return out


def same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Bit for bit (so -0.0 is not 0.0), except that a NaN's sign and payload are not values."""
    assert got.dtype == want.dtype and got.shape == want.shape
    nan = np.isnan(want) if want.dtype.kind == "f" else np.zeros(want.shape, bool)
    if want.dtype.kind == "f":
        assert np.array_equal(np.isnan(got), nan), f"\ngot  {got}\nwant {want}"
    assert got[~nan].tobytes() == want[~nan].tobytes(), f"\ngot  {got}\nwant {want}"


def within_ulps(got: np.ndarray, want: np.ndarray, ulps: int = ULPS) -> None:
    """got within `ulps` units in the last place of want (ulp of want's value in its dtype)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    g, w = got.astype(np.float64), want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    with np.errstate(invalid="ignore"):         # inf - inf and spacing(inf): covered by `same`
        err = np.abs(g - w) / np.spacing(np.abs(want)).astype(np.float64)
    assert np.all(same | (err <= ulps)), f"\ngot  {got}\nwant {want}\nulps {err}"


def exact(fn, op: str, args: list, dtype: str, **attrs) -> None:
    want = reference(fn, args, dtype)
    same_bits(run_op(op, args, dtype, want.shape, **attrs), want)


def values(dtype: str, shape: tuple, seed: int) -> np.ndarray:
    """Seeded operands: floats of every magnitude near 1, i8 over its whole range, bools."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "i8":
        return rng.integers(-128, 128, shape).astype(np.int8)
    v = rng.normal(0, 3, shape) * np.exp2(rng.integers(-6, 6, shape))
    return v.astype(NP[dtype])


# ----------------------------------------------------------------------------- arithmetic

ARITH = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
         "maximum": max, "minimum": min}
SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (4,)), ((), (2, 3)), ((5,), ())]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum"])
@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("shapes", SHAPES)
def test_float_arithmetic_is_exactly_rounded_and_broadcasts(op, dtype, shapes):
    a, b = values(dtype, shapes[0], 1), values(dtype, shapes[1], 2)
    fn = ARITH.get(op, lambda x, y: x / y)
    exact(fn, op, [a, b], dtype)


PAIRS = [("bool", "bool"), ("bool", "i8"), ("i8", "i8"), ("i8", "f16"), ("i8", "f32"),
         ("bool", "f32"), ("f16", "f32"), ("f32", "f16")]


@pytest.mark.parametrize("op, pair", [(op, pair) for op in ARITH for pair in PAIRS
                                      if (op, pair) != ("sub", ("bool", "bool"))])  # type error
def test_mixed_dtypes_promote_to_the_widest_and_i8_wraps(op, pair):
    a, b = values(pair[0], (4, 5), 3), values(pair[1], (5,), 4)
    # bool + bool is `or` and bool * bool is `and` (numpy's rule; the result stays bool)
    exact(ARITH[op], op, [a, b], wider(*pair))


def test_i8_wraps_modulo_256():
    a = np.array([100, -100, 127, -128, 64], np.int8)
    b = np.array([100, -100, 1, -1, 2], np.int8)
    same_bits(run_op("add", [a, b], "i8", (5,)), np.array([-56, 56, -128, 127, 66], np.int8))
    same_bits(run_op("mul", [a, b], "i8", (5,)), np.array([16, 16, 127, -128, -128], np.int8))


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_a_constant_takes_the_dtype_the_op_computes_in(dtype):
    """`a + 0.1` adds 0.1 rounded to a's dtype (an immediate of that type), then rounds once."""
    a = values(dtype, (6,), 5)
    c = py(NP[dtype](0.1))
    exact(lambda x, _: x + c, "add", [a, 0.1], dtype)
    exact(lambda _, x: c * x, "mul", [0.1, a], dtype)
    exact(lambda _, x: c - x, "sub", [0.1, a], dtype)


def div_ref(x, y):
    if y == 0:
        return math.nan if x == 0 or math.isnan(x) else math.copysign(math.inf, x) * \
            math.copysign(1, y)
    return x / y


@pytest.mark.parametrize("pair", [("f32", "f32"), ("f16", "f16"), ("i8", "i8"), ("bool", "i8"),
                                  ("i8", "f16")])
def test_div_gives_a_float_and_dividing_by_zero_gives_inf(pair):
    a = np.array([1, -3, 0, 5, 7, -2], NP[pair[0]]) if pair[0] != "bool" else \
        np.array([1, 0, 0, 1, 1, 0], bool)
    b = np.array([3, 0, 0, -7, 0, 5], NP[pair[1]])
    dtype = FLOAT_OF[wider(*pair)]
    want = reference(div_ref, [a, b], dtype)
    assert np.isinf(want).any() and np.isnan(want[2])     # x / 0 = +-inf, 0 / 0 = nan
    same_bits(run_op("div", [a, b], dtype, (6,)), want)


def test_pow():
    a = np.abs(values("f32", (8,), 6)) + np.float32(0.25)
    b = values("f32", (8,), 7) / np.float32(4)
    within_ulps(run_op("pow", [a, b], "f32", (8,)), reference(math.pow, [a, b], "f32"))
    exact(lambda x, _: x * x, "pow", [a, 2], "f32")           # x ** 2 is one rounding of x * x
    # integer powers give f32, like division (docs/language.md): 2 ** -1 is 0.5, 2 ** 7 is 128
    # (no i8 wrap-around), and a negative exponent of an integer does not crash numpy
    i = np.array([2, 3, -2, 5, 0, 2], np.int8)
    e = np.array([7, 4, 3, 0, 3, -1], np.int8)
    same_bits(run_op("pow", [i, e], "f32", (6,)),
              np.array([128, 81, -8, 1, 0, 0.5], np.float32))
    same_bits(run_op("pow", [i, -2], "f32", (6,)),
              np.array([0.25, 1 / 9, 0.25, 1 / 25, np.inf, 0.25], np.float32))


# ----------------------------------------------------------------------------- comparisons

COMPARE = {"lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b,
           "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b}


@pytest.mark.parametrize("op", list(COMPARE))
def test_comparisons_give_bool(op):
    a = np.array([1.5, 2.0, -0.0, np.nan, 3.0, np.inf], np.float32)
    b = np.array([2.0, 2.0, 0.0, 1.0, np.nan, np.inf], np.float32)
    exact(COMPARE[op], op, [a, b], "bool")                  # NaN: only `ne` is true
    i = np.array([[-128], [3], [127]], np.int8)
    f = np.array([-127.5, 3.0, 126.9, 3.25], np.float32)
    exact(COMPARE[op], op, [i, f], "bool")                  # i8 vs f32 compares in f32
    exact(COMPARE[op], op, [f, 2.0], "bool")


# ----------------------------------------------------------------------------- unary

def sign(x):
    return x if x != x else (x > 0) - (x < 0)


UNARY = {"neg": lambda x: -x, "relu": lambda x: max(x, 0), "sign": sign, "abs": abs}


@pytest.mark.parametrize("op, dtype", [(op, t) for op in UNARY for t in ("f32", "f16", "i8", "bool")
                                       if not (t == "bool" and op in ("neg", "sign"))])
def test_unary_ops_keep_the_dtype(op, dtype):
    a = values(dtype, (3, 5), 8)
    if dtype == "i8":
        a[0, :2] = [-128, 0]            # -(-128) and |-128| wrap to -128
    if dtype in ("f32", "f16"):
        a[0, :3] = [0.0, np.nan, -np.inf]
    exact(UNARY[op], op, [a], dtype)


def exp_ref(x):
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def log_ref(x):
    return -math.inf if x == 0 else math.nan if x < 0 else math.log(x)


@pytest.mark.parametrize("op, fn", [("exp", exp_ref), ("log", log_ref)])
@pytest.mark.parametrize("dtype", ["f32", "f16", "i8", "bool"])
def test_exp_and_log_within_a_few_ulps(op, fn, dtype):
    a = values(dtype, (24,), 9)
    if op == "log" and dtype in ("f32", "f16"):
        a = np.abs(a)
    if dtype in ("f32", "f16"):
        a[:3] = [0.0, -1.0, 100.0]      # log 0 = -inf, log -1 = nan, exp 100 overflows f32/f16
    want = reference(fn, [a], FLOAT_OF[dtype])
    within_ulps(run_op(op, [a], FLOAT_OF[dtype], a.shape), want)


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8", "bool"])
def test_sqrt_is_exactly_rounded(dtype):
    a = values(dtype, (24,), 10)
    if dtype in ("f32", "f16"):
        a = np.abs(a)
        a[:3] = [0.0, -4.0, np.inf]
    exact(lambda x: math.nan if x < 0 else math.sqrt(x), "sqrt", [a], FLOAT_OF[dtype])


def sigmoid_ref(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8", "bool"])
def test_sigmoid(dtype):
    # inside the range where exp(-x) is finite in the computing dtype (f16: |x| < 11); beyond
    # it the result flushes to 0, see the next test
    a = values(dtype, (40,), 11)
    if dtype != "bool":
        limit = 11 if dtype == "f16" else 80
        a = np.clip(a, -limit, limit)
    want = reference(sigmoid_ref, [a], FLOAT_OF[dtype])
    within_ulps(run_op("sigmoid", [a], FLOAT_OF[dtype], a.shape), want)


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
def test_tanh(dtype):
    a = values(dtype, (40,), 12)
    within_ulps(run_op("tanh", [a], FLOAT_OF[dtype], a.shape),
                reference(math.tanh, [a], FLOAT_OF[dtype]))


def test_stop_grad_is_its_operand():
    a = values("f32", (5,), 13)
    same_bits(run_op("stop_grad", [a], "f32", (5,)), a)


def test_a_gather_and_a_scatter_by_an_index_array():
    """E[ids] picks rows one by one; E[ids] += v adds every occurrence of a repeated id (a
    scatter-add), element by element in Python."""
    E = values("f32", (4, 3), 14)
    ids = np.array([[2, 0], [2, 3]], np.int32)
    want = np.array([[[E[i, j] for j in range(3)] for i in row] for row in ids], np.float32)
    same_bits(run_op("index", [E, ids], "f32", (2, 2, 3), at=(None,)), want)
    picked = np.array([[E[i, 1] for i in row] for row in ids], np.float32)
    same_bits(run_op("index", [E, ids], "f32", (2, 2), at=(None, 1)), picked)
    v = values("f32", (2, 2, 3), 15)
    total = [[float(E[i, j]) for j in range(3)] for i in range(4)]
    for r in range(2):
        for c in range(2):
            for j in range(3):
                total[ids[r, c]][j] = float(np.float32(total[ids[r, c]][j] + float(v[r, c, j])))
    same_bits(run_write(E, v, [ids], (None,), "add"), np.array(total, np.float32))
    with pytest.raises(NodeError, match="index 4 is out of range for a dimension of 4"):
        run_op("index", [E, ids + 2], "f32", (2, 2, 3), at=(None,))
    written = [[float(E[i, j]) for j in range(3)] for i in range(4)]
    for r in range(2):                  # := writes in order: of a repeated id, the last
        for c in range(2):
            written[ids[r, c]] = [float(v[r, c, j]) for j in range(3)]
    same_bits(run_write(E, v, [ids], (None,), "set"), np.array(written, np.float32))
    column = [float(E[i, 2]) for i in range(4)]
    for r in range(2):
        for c in range(2):
            column[ids[r, c]] = float(v[r, c, 0])
    want = E.copy()
    want[:, 2] = column
    same_bits(run_write(E, v[:, :, 0], [ids], (None, 2), "set"), want)


def test_reductions_keep_the_reduced_axis_as_one():
    m = values("f32", (3, 4), 16)
    for op, fn in (("sum", np.sum), ("max", np.max), ("min", np.min), ("mean", np.mean)):
        want = np.array([[fn(m[i])] for i in range(3)], np.float32)
        got = run_op(op, [m], "f32", (3, 1), axis=1, keepdims=True)
        assert got.shape == (3, 1)
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_sigmoid_saturates_without_nan():
    """A known limitation: 1 / (1 + exp(-x)) flushes to 0 once exp(-x) overflows, although
    sigmoid(-100) = 3.7e-44 is an f32 subnormal and sigmoid(-12) = 6.1e-6 an f16 one."""
    a = np.array([100.0, -100.0, 1e30, -1e30], np.float32)
    same_bits(run_op("sigmoid", [a], "f32", (4,)), np.array([1, 0, 1, 0], np.float32))
    h = np.array([12.0, -12.0], np.float16)
    same_bits(run_op("sigmoid", [h], "f16", (2,)), np.array([1, 0], np.float16))


# ----------------------------------------------------------------------------- losses

def hinge_ref(dtype):
    def fn(a, b):
        p = py(rounded(a * b, dtype))               # a*b rounded in the loss's dtype,
        return max(0.0, py(rounded(1 - p, dtype)))  # then 1 - p rounded, then the max
    return fn


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_hinge_is_max_0_1_minus_ab_rounded_per_operation(dtype):
    a, b = values(dtype, (4, 6), 12), values(dtype, (6,), 28)
    b[:3] = [1.0, 1.0, -1.0]
    a[0, :3] = [1.0, -1.0, 0.5]                     # margin exactly 1, and inside
    exact(hinge_ref(dtype), "hinge", [a, b], dtype)


def logistic_ref(dtype):
    def fn(a, b):
        z = py(rounded(a * b, dtype))               # a*b rounded, then log(1 + exp(-z)) exactly
        return math.log1p(math.exp(-z)) if z >= 0 else -z + math.log1p(math.exp(z))
    return fn


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_logistic_loss_within_a_few_ulps(dtype):
    a, b = values(dtype, (4, 6), 13), np.array([1, -1, 1, 1, -1, -1], NP[dtype])
    a[0, :2] = [60.0, -60.0]                        # exp(60) overflows f16: no inf, no nan
    want = reference(logistic_ref(dtype), [a, b], dtype)
    within_ulps(run_op("logistic_loss", [a, b], dtype, a.shape), want)


def test_losses_of_integer_scores_are_computed_in_float():
    """hinge and logistic_loss give f32 for i8 operands: a*b must not wrap around in i8."""
    a = np.array([50, -50, 3, 12], np.int8)
    b = np.array([-50, -50, -1, 1], np.int8)
    same_bits(run_op("hinge", [a, b], "f32", (4,)), np.array([2501, 0, 4, 0], np.float32))
    want = reference(logistic_ref("f32"), [a, b], "f32")
    within_ulps(run_op("logistic_loss", [a, b], "f32", (4,)), want)


# ----------------------------------------------------------------------------- where, casts

@pytest.mark.parametrize("pair", [("f32", "f32"), ("i8", "f32"), ("f16", "i8"), ("bool", "bool")])
def test_where_picks_by_condition_and_promotes_its_branches(pair):
    c = np.array([[True], [False], [True]])
    a, b = values(pair[0], (4,), 14), values(pair[1], (3, 4), 15)
    exact(lambda k, x, y: x if k else y, "where", [c, a, b], wider(*pair))
    if pair[0] != "bool":               # a constant is an immediate of the op's dtype
        const = 0.5 if pair[0] in FLOAT_OF and pair[0] != "i8" else 5
        exact(lambda k, x, y: x if k else y, "where", [c, a, const], pair[0])


def f16_round(x: float) -> float:
    """IEEE binary16 round-to-nearest-even (Python's struct packs half floats that way);
    values at or beyond 65520 (halfway past the largest finite, 65504) overflow to inf."""
    if math.isnan(x) or abs(x) >= 65520:
        return x if math.isnan(x) else math.copysign(math.inf, x)
    return struct.unpack("<e", struct.pack("<e", x))[0]


def test_cast_f32_to_f16_rounds_to_nearest_even():
    a = np.concatenate([values("f32", (64,), 16), np.array(
        [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2049.0, 2051.0, 65504.0, 65519.0, 65520.0, -1e6, 1e-8,
         2 ** -25, 3 * 2 ** -26, 6e-5, -0.0, np.inf, np.nan], np.float32)])
    got = run_op("cast", [a], "f16", a.shape, to="f16")
    want = np.array([f16_round(float(x)) for x in a], np.float64)
    assert np.array_equal(got.astype(np.float64), want, equal_nan=True)
    assert np.signbit(got[-3])                               # -0.0 stays -0.0


def test_cast_f32_to_i8_truncates_toward_zero():
    """C's and numpy's float -> integer conversion drops the fraction (rounds toward zero).
    Out of range (|x| >= 128, inf, nan) C leaves the value undefined; sutro-sim refuses it
    (test_float_to_integer_cast_out_of_range_is_refused)."""
    a = np.array([0.99, -0.99, 2.5, -2.5, 127.9, -128.9, 3.0, -0.0], np.float32)
    same_bits(run_op("cast", [a], "i8", (8,), to="i8"),
              np.array([0, 0, 2, -2, 127, -128, 3, 0], np.int8))


@pytest.mark.parametrize("src, to, fn", [
    ("bool", "f32", float), ("bool", "i8", int), ("f32", "bool", bool), ("i8", "bool", bool),
    ("i8", "f16", float), ("i8", "f32", float), ("f16", "f32", float), ("f32", "f32", float)])
def test_exact_casts(src, to, fn):
    a = values(src, (30,), 17)
    if src == "f32":
        a[:3] = [-0.0, np.nan, 1e-45]           # -0 is false, nan and a subnormal are true
    exact(fn, "cast", [a], to, to=to)


def test_copy_is_bit_exact():
    a = values("f32", (3, 4), 18)
    a[0, :2] = [np.nan, -0.0]
    same_bits(run_op("copy", [a], "f32", (3, 4)), a)


# ----------------------------------------------------------------------------- reductions

def small_ints(dtype: str, shape: tuple, seed: int) -> np.ndarray:
    """Integer values: their sums are exact in every float dtype, so reductions compare exactly."""
    return np.random.default_rng(seed).integers(-40, 41, shape).astype(NP[dtype])


def reduce_ref(fn, a: np.ndarray, axis, dtype: str) -> np.ndarray:
    """fn over the reduced axis, written with explicit index loops."""
    if axis is None:
        return np.array(rounded(fn([py(v) for v in a.flat]), dtype), NP[dtype])
    axis %= a.ndim
    keep = [d for i, d in enumerate(a.shape) if i != axis]
    out = np.zeros(keep, NP[dtype])
    for idx in np.ndindex(*keep):
        line = [py(a[idx[:axis] + (k,) + idx[axis:]]) for k in range(a.shape[axis])]
        out[idx] = rounded(fn(line), dtype)
    return out


REDUCE = {"sum": sum, "max": max, "mean": lambda v: sum(v) / len(v)}  # int sum / n: one rounding


@pytest.mark.parametrize("op", list(REDUCE))
@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_reductions_with_and_without_axis(op, dtype, axis):
    a = small_ints(dtype, (3, 5), 19)
    result = FLOAT_OF[dtype] if op == "mean" else dtype
    want = reduce_ref(REDUCE[op], a, axis, result)
    attrs = {} if axis is None else {"axis": axis}
    same_bits(run_op(op, [a], result, want.shape, **attrs), want)


def test_reductions_of_a_vector_and_i8_sums_wrap():
    v = small_ints("f32", (7,), 20)
    for op, fn in REDUCE.items():
        same_bits(run_op(op, [v], "f32", (), axis=0), reduce_ref(fn, v, 0, "f32"))
    big = np.full((3, 2), 100, np.int8)              # 300 and 600 wrap to 44 and 88
    same_bits(run_op("sum", [big], "i8", ()), np.array(88, np.int8))
    same_bits(run_op("sum", [big], "i8", (2,), axis=0), np.array([44, 44], np.int8))


# ----------------------------------------------------------------------------- matmul and co.

def matmul_ref(a: np.ndarray, b: np.ndarray, ta: int, dtype: str) -> np.ndarray:
    """out[i, j] = sum_k A[i, k] B[k, j] with explicit loops; a vector is one row or column."""
    A = a.T if ta else a
    A2 = A[None, :] if A.ndim == 1 else A
    B2 = b[:, None] if b.ndim == 1 else b
    m, n, inner = A2.shape[0], B2.shape[1], B2.shape[0]
    out = [[rounded(sum(py(A2[i, k]) * py(B2[k, j]) for k in range(inner)), dtype)
            for j in range(n)] for i in range(m)]
    shape = (A.shape[:-1] if A.ndim == 2 else ()) + (b.shape[1:] if b.ndim == 2 else ())
    return np.array(out, NP[dtype]).reshape(shape)


@pytest.mark.parametrize("sa, sb, ta", [((4,), (4,), 0), ((3, 4), (4,), 0), ((4, 3), (4,), 1),
                                        ((4,), (4, 5), 0), ((3, 4), (4, 5), 0),
                                        ((4, 3), (4, 5), 1), ((4, 4), (4, 4), 1)])
@pytest.mark.parametrize("dtype", ["f32", "i8"])
def test_matmul_every_rank_combination(sa, sb, ta, dtype):
    a, b = small_ints(dtype, sa, 21), small_ints(dtype, sb, 22)
    want = matmul_ref(a, b, ta, dtype)                      # i8 wraps; f32 sums are exact
    attrs = {"ta": 1} if ta else {}
    same_bits(run_op("matmul", [a, b], dtype, want.shape, **attrs), want)


def test_matmul_of_general_floats_within_the_rounding_bound():
    a, b = values("f32", (3, 6), 23), values("f32", (6, 2), 24)
    want = matmul_ref(a.astype(np.float64), b.astype(np.float64), 0, "f32")
    got = run_op("matmul", [a, b], "f32", (3, 2))
    bound = 8 * 2 ** -24 * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    assert np.all(np.abs(got.astype(np.float64) - want.astype(np.float64)) <= bound + 1e-30)


def test_outer_transpose_and_index():
    a, b = values("f32", (3,), 25), values("f16", (4,), 26)
    exact_outer = np.array([[rounded(py(x) * py(y), "f32") for y in b] for x in a], np.float32)
    same_bits(run_op("outer", [a, b], "f32", (3, 4)), exact_outer)
    m = values("i8", (3, 4), 27)
    same_bits(run_op("transpose", [m], "i8", (4, 3)),
              np.array([[m[i, j] for i in range(3)] for j in range(4)], np.int8))
    same_bits(run_op("index", [m], "i8", (4,), at=(1,)), np.array(list(m[1]), np.int8))
    same_bits(run_op("index", [a], "f32", (), at=(2,)), np.array(a[2], np.float32))


OWN_TESTS = {"div", "pow", "exp", "log", "sqrt", "sigmoid", "tanh", "stop_grad", "hinge", "logistic_loss", "where",
             "cast", "copy", "matmul", "outer", "transpose", "index",
             "floordiv", "mod", "and", "or", "xor", "not", "shl", "shr", "min", "argmax",
             "argmin", "setindex", "fill", "eye", "arange", "reshape", "concat", "stack",
             "einsum", "normal", "bernoulli",
             "if", "merge"}      # regions: tests/test_control_flow.py


def test_every_op_has_a_reference_here():
    """An op added to the table without a reference in this file fails here."""
    covered = set(ARITH) | set(COMPARE) | set(UNARY) | set(REDUCE) | OWN_TESTS
    assert set(OPS) == covered, sorted(set(OPS) ^ covered)


# ----------------------------------------------------------------------------- integers and bits

INT_NP = {"i32": np.int32, "u8": np.uint8}
NP.update(INT_NP)
NAME.update({np.dtype(v): k for k, v in INT_NP.items()})
BITS = {"i8": 8, "u8": 8, "i32": 32}


def wrap(x: int, dtype: str) -> int:
    """x modulo 2^bits, as a signed (i8, i32) or unsigned (u8) value."""
    bits = BITS[dtype]
    x %= 1 << bits
    return x - (1 << bits) if dtype != "u8" and x >= 1 << (bits - 1) else x


def ints(dtype: str, shape: tuple, seed: int, low=None, high=None) -> np.ndarray:
    bits = BITS[dtype]
    lo = 0 if dtype == "u8" else -(1 << (bits - 1))
    hi = (1 << bits) - 1 if dtype == "u8" else (1 << (bits - 1)) - 1
    rng = np.random.default_rng(seed)
    return rng.integers(lo if low is None else low, (hi if high is None else high) + 1,
                        shape).astype(NP[dtype])


def int_ref(fn, args: list, dtype: str) -> np.ndarray:
    shape = broadcast_shape(*[a.shape for a in args if isinstance(a, np.ndarray)])
    out = np.zeros(shape, NP[dtype])
    for idx in np.ndindex(shape):
        v = fn(*[element(a, idx) for a in args])
        out[idx] = v if dtype == "bool" else wrap(int(v), dtype)
    return out


INT_ARITH = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
             "floordiv": lambda a, b: a // b if b else 0, "mod": lambda a, b: a % b if b else 0,
             "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b}


@pytest.mark.parametrize("op", list(INT_ARITH))
@pytest.mark.parametrize("dtype", ["i32", "u8", "i8"])
def test_integer_ops_wrap_and_floor_like_python(op, dtype):
    """+ - * wrap modulo 2^bits; // and % round down (the remainder has the divisor's sign, as
    in Python); an integer divided by 0 gives 0 (docs/language.md); & | ^ on two's complement."""
    a, b = ints(dtype, (4, 6), 31), ints(dtype, (6,), 32)
    b[0] = 0
    got = run_op(op, [a, b], dtype, (4, 6))
    same_bits(got, int_ref(INT_ARITH[op], [a, b], dtype))


@pytest.mark.parametrize("pair, want", [(("u8", "i8"), "i8"), (("i8", "i32"), "i32"),
                                        (("u8", "i32"), "i32"), (("bool", "u8"), "u8")])
def test_integer_promotion_takes_the_wider_and_wraps(pair, want):
    """bool < u8 < i8 < i32 < f16 < f32: u8 + i8 is an i8 (200 + 100 wraps to 44)."""
    a, b = ints(pair[0], (5,), 33) if pair[0] != "bool" else values("bool", (5,), 33), \
        ints(pair[1], (5,), 34)
    same_bits(run_op("add", [a, b], want, (5,)), int_ref(lambda x, y: x + y, [a, b], want))


@pytest.mark.parametrize("op, fn", [("and", lambda a, b: a and b), ("or", lambda a, b: a or b),
                                    ("xor", lambda a, b: a != b)])
def test_bit_ops_of_bools_are_logical(op, fn):
    a, b = values("bool", (3, 4), 35), values("bool", (4,), 36)
    same_bits(run_op(op, [a, b], "bool", (3, 4)), int_ref(fn, [a, b], "bool"))


@pytest.mark.parametrize("dtype", ["bool", "i8", "u8", "i32"])
def test_not_flips_every_bit(dtype):
    a = values("bool", (7,), 37) if dtype == "bool" else ints(dtype, (7,), 37)
    fn = (lambda v: not v) if dtype == "bool" else (lambda v: ~v)
    same_bits(run_op("not", [a], dtype, (7,)), int_ref(fn, [a], dtype))


@pytest.mark.parametrize("dtype", ["i8", "u8", "i32"])
def test_shifts_wrap_and_saturate_past_the_width(dtype):
    """a << s drops the bits shifted out (wraps); >> is arithmetic for signed types; a shift
    by the width or more gives 0 (or -1 for >> of a negative signed value)."""
    a = ints(dtype, (12,), 38)
    s = np.array(list(range(BITS[dtype] - 3, BITS[dtype] + 3)) + [0, 1, 2, 3, 4, 5],
                 NP[dtype])
    width = BITS[dtype]
    same_bits(run_op("shl", [a, s], dtype, (12,)),
              int_ref(lambda x, k: x << k if k < width else 0, [a, s], dtype))
    same_bits(run_op("shr", [a, s], dtype, (12,)),
              int_ref(lambda x, k: x >> min(k, width), [a, s], dtype))


def test_a_constant_must_fit_the_integer_dtype():
    from sutro_ir.ops import OpError, Operand, infer
    i8 = Operand("i8", (3,))
    with pytest.raises(OpError, match="does not fit in i8"):
        infer(OPS["add"], [i8, Operand(None, (), 300)], {})
    with pytest.raises(OpError, match="not an integer"):
        infer(OPS["mul"], [i8, Operand(None, (), 0.5)], {})
    assert infer(OPS["div"], [i8, Operand(None, (), 0.5)], {}) == ("f32", (3,))


def test_float_to_integer_cast_out_of_range_is_refused():
    from sutro_ir.execute import NodeError
    for bad in (300.7, -1e10, np.inf, np.nan):
        with pytest.raises(NodeError, match="does not fit in i8"):
            run_op("cast", [np.array([1.5, bad], np.float32)], "i8", (2,), to="i8")
    same_bits(run_op("cast", [np.array([255.9, 0.0, -0.9], np.float32)], "u8", (3,), to="u8"),
              np.array([255, 0, 0], np.uint8))
    with pytest.raises(NodeError, match="does not fit in u8"):
        run_op("cast", [np.array([256.0], np.float32)], "u8", (1,), to="u8")


# ----------------------------------------------------------------------------- min, argmax, argmin

@pytest.mark.parametrize("op", ["min", "argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_min_and_arg_reductions(op, axis):
    """argmax/argmin give the first position of the extreme (i32); without axis, the
    row-major position in the whole array."""
    a = small_ints("f32", (4, 5), 39)
    a[1, :] = a[0, :]                                   # ties: the first wins
    def first(line, pick):
        best = pick(line)
        return line.index(best)
    fn = {"min": min, "argmax": lambda v: first(v, max), "argmin": lambda v: first(v, min)}[op]
    dtype = "f32" if op == "min" else "i32"
    if axis is None:
        want = np.array(fn([py(v) for v in a.flat]), NP[dtype])
    else:
        want = reduce_ref(fn, a, axis, "f32").astype(NP[dtype])
    attrs = {} if axis is None else {"axis": axis}
    same_bits(run_op(op, [a], dtype, want.shape, **attrs), want)


# ----------------------------------------------------------------------------- index and setindex

def test_index_with_constants_slices_and_run_time_indices():
    m = values("f32", (4, 5), 40)
    same_bits(run_op("index", [m], "f32", (5,), at=(2,)), np.array(list(m[2]), np.float32))
    same_bits(run_op("index", [m], "f32", (4,), at=((0, 4, 1), 3)),
              np.array([m[i, 3] for i in range(4)], np.float32))
    same_bits(run_op("index", [m], "f32", (2, 2), at=((1, 5, 2), (0, 6, 3))),
              np.array([[m[1, 0], m[1, 3]], [m[3, 0], m[3, 3]]], np.float32))
    same_bits(run_op("index", [m], "f32", (4,), at=((3, -1, -1), 2)),   # m[::-1, 2]
              np.array([m[i, 2] for i in (3, 2, 1, 0)], np.float32))
    i = np.array(3, np.int32)
    same_bits(run_op("index", [m, i], "f32", (5,), at=(None,)), np.array(list(m[3]), np.float32))
    same_bits(run_op("index", [m, np.array(1, np.int8), np.array(4, np.uint8)], "f32", (),
                     at=(None, None)), np.array(m[1, 4], np.float32))


def run_write(a: np.ndarray, v, dyn: list, at: tuple, acc: str) -> np.ndarray:
    """a (a parameter) after `a[at] op= v`, through the executor."""
    nodes, arrays, args = sources([v] + dyn, "v")
    nodes.insert(0, Node("a", "param", dtype=NAME[a.dtype], shape=a.shape))
    arrays["a"] = a.copy()
    nodes.append(Node("a@1", "setindex", ("a", *args), (("acc", acc), ("at", at)),
                      NAME[a.dtype], a.shape))
    graph = verify(Graph(tuple(nodes), ("a@1",)))
    Step(graph, arrays, schedule(graph).kernels)()
    return arrays["a"]


@pytest.mark.parametrize("acc, fn", [("set", lambda old, v: v), ("add", lambda o, v: o + v),
                                     ("sub", lambda o, v: o - v), ("xor", lambda o, v: o ^ v),
                                     ("mul", lambda o, v: o * v)])
def test_setindex_writes_only_its_part(acc, fn):
    a = ints("i32", (3, 4), 41, -50, 50)
    v = ints("i32", (4,), 42, -50, 50)
    want = a.copy()
    for j in range(4):
        want[1, j] = wrap(fn(int(a[1, j]), int(v[j])), "i32")
    same_bits(run_write(a, v, [np.array(1, np.int32)], (None,), acc), want)
    want = a.copy()
    for i in range(3):
        want[i, 2] = wrap(fn(int(a[i, 2]), 7), "i32")
    same_bits(run_write(a, 7, [], ((0, 3, 1), 2), acc), want)


def test_a_run_time_index_out_of_range_is_refused():
    from sutro_ir.execute import NodeError
    m = values("f32", (4, 5), 43)
    with pytest.raises(NodeError, match="index 4 is out of range for a dimension of 4"):
        run_op("index", [m, np.array(4, np.int32)], "f32", (5,), at=(None,))
    with pytest.raises(NodeError, match="index -1 is out of range"):
        run_write(m, 1.0, [np.array(-1, np.int32)], (None,), "set")


# ----------------------------------------------------------------------------- construction

def test_fill_eye_arange():
    same_bits(run_op("fill", [], "f16", (2, 3), shape=(2, 3), dtype="f16", value=0.5),
              np.array([[0.5] * 3] * 2, np.float16))
    same_bits(run_op("eye", [], "i8", (3, 4), shape=(3, 4), dtype="i8"),
              np.array([[int(i == j) for j in range(4)] for i in range(3)], np.int8))
    same_bits(run_op("arange", [], "i32", (4,), start=10, stop=2, step=-2, dtype="i32"),
              np.array([10, 8, 6, 4], np.int32))


def test_reshape_concat_stack():
    a, b = values("f32", (2, 3), 44), values("f32", (1, 3), 45)
    same_bits(run_op("reshape", [a], "f32", (3, 2), shape=(3, 2)),
              np.array([[py(x) for x in a.flat][i:i + 2] for i in (0, 2, 4)], np.float32))
    same_bits(run_op("concat", [a, b], "f32", (3, 3), axis=0),
              np.array([list(a[0]), list(a[1]), list(b[0])], np.float32))
    c = values("f32", (2, 3), 46)
    same_bits(run_op("stack", [a, c], "f32", (2, 3, 2), axis=2),
              np.array([[[a[i, j], c[i, j]] for j in range(3)] for i in range(2)], np.float32))


def test_einsum_is_a_sum_of_products_over_the_left_out_letters():
    x = small_ints("f32", (6, 4), 47)
    y = small_ints("f32", (6,), 48)
    want = np.array([[[sum(py(x[s, i]) * py(x[s, j]) * py(x[s, k]) * py(y[s]) for s in range(6))
                       for k in range(4)] for j in range(4)] for i in range(4)], np.float32)
    same_bits(run_op("einsum", [x, x, x, y], "f32", (4, 4, 4), spec="si,sj,sk,s->ijk"), want)
    same_bits(run_op("einsum", [x], "f32", (4, 6), spec="si->is"),
              np.array([[x[s, i] for s in range(6)] for i in range(4)], np.float32))


def test_random_draws_follow_their_distribution():
    """normal: mean and standard deviation within 5 standard errors; bernoulli: the fraction
    of true within 5 standard errors of p (fixed seed: the draw is deterministic)."""
    from sutro_ir.execute import Step as _Step
    nodes = [Node("n", "normal", (), (("dtype", "f32"), ("mean", 2.0), ("shape", (200, 100)),
                                      ("std", 0.5)), "f32", (200, 100)),
             Node("b", "bernoulli", (), (("dtype", "bool"), ("p", 0.3), ("shape", (20000,))),
                  "bool", (20000,))]
    graph = verify(Graph(tuple(nodes), ("n", "b")))
    arrays: dict = {}
    step = _Step(graph, arrays, schedule(graph).kernels)
    step()
    n, b = arrays["n"].astype(np.float64), arrays["b"]
    assert abs(n.mean() - 2.0) < 5 * 0.5 / math.sqrt(n.size)
    assert abs(n.std() - 0.5) < 5 * 0.5 / math.sqrt(2 * n.size)
    assert abs(b.mean() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / b.size)
    first = arrays["n"].copy()
    step.tick[1] = 1                     # the next step: a fresh draw
    step()
    assert not np.array_equal(first, arrays["n"])
