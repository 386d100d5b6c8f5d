"""Every derivative rule of sutro_ir/autodiff.py against central finite differences in float64.

Each case is a small .sir program whose scalar loss goes through one rule (every op of RULES:
matmul in every rank combination with and without ta, operands broadcast and summed back,
reductions spread back along their axis, indexing, gathers by an index array and writes into
part of an array, einsum, and the composites softmax, log_softmax, cross_entropy, gelu and
layernorm); `grad` of it with respect
to every parameter is copied into a named value and compared, element by element, with
(loss(p + h) - loss(p - h)) / 2h computed by the same executor.

The executor runs in float64: the tests replace the numpy type behind `f32` (ops.DTYPES), so
parameters, values and constants are float64 arrays (checked below). Then the finite difference
is accurate to about 1e-10 and the tolerance is relative 1e-6, not percent. Inputs are seeded
and kept away from kinks (relu at 0, maximum ties, hinge at margin 1); ties of maximum and
minimum are tested where the function is smooth: maximum(a, a) = a.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import sutro_ir.ops
from sutro_ir.autodiff import NO_DERIVATIVE, RULES
from sutro_ir.compile import compile_program
from sutro_ir.errors import NOWHERE, SirError
from sutro_ir.execute import Step
from sutro_ir.graph import Graph, Node
from sutro_ir.ops import OPS
from sutro_ir.schedule import schedule

H = 1e-6            # central difference step: truncation ~H^2, rounding ~1e-16 / H
RTOL, ATOL = 1e-6, 1e-8

PROGRAM = """config seed = 0
data train, test = parity(n=4, train=6, test=4, seed=1, encoding="signed-random")
{params}
train (x, y) in train {batch}for 1 epochs {{
{pre}  loss = {loss}
{grads}
}}
eval (x, y) in test {{
  predict sign(y)
}}
"""


@pytest.fixture(autouse=True)
def float64(monkeypatch):
    """`f32` values become float64 arrays for the executor, so differences are exact enough."""
    monkeypatch.setitem(sutro_ir.ops.DTYPES, "f32", np.float64)


@dataclass(frozen=True)
class Case:
    name: str
    params: dict                      # name -> shape
    loss: str
    batch: int | None = None
    guard: object = None              # values -> the distances to kinks, all must be > 1e-3
    seeds: tuple = (0, 1)
    pre: str = ""                     # statements before the loss


def shape(p: dict, name: str) -> str:
    return ", ".join(str(d) for d in p[name])


def source(case: Case) -> str:
    params = "\n".join(f"param {p}: f32[{shape(case.params, p)}] = zeros()" for p in case.params)
    grads = "\n".join(f"  k_{p} = copy(grad(loss, wrt={p}))" for p in case.params)
    batch = f"batch {case.batch} " if case.batch else ""
    pre = "".join(f"  {line.strip()}\n" for line in case.pre.split(";") if line.strip())
    return PROGRAM.format(params=params, batch=batch, loss=case.loss, grads=grads, pre=pre)


class Loss:
    """The compiled step; `at(values)` runs it from the given parameters and example."""

    def __init__(self, case: Case):
        self.graph: Graph = compile_program(source(case), f"{case.name}.sir").train.graph
        self.arrays: dict[str, np.ndarray] = {}
        self.step = Step(self.graph, self.arrays, schedule(self.graph).kernels)

    def at(self, values: dict) -> dict:
        for name, v in values.items():
            np.copyto(self.arrays[name], v)     # the closures hold these very arrays
        self.step()
        return self.arrays


def start(case: Case, loss: Loss, seed: int) -> dict:
    """Parameters of magnitude 0.3..1.3 and either sign (relu's kink is at 0); a random example,
    labels +-1."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in loss.graph.nodes:
        if n.op == "param":
            v = rng.choice([-1, 1], n.shape) * rng.uniform(0.3, 1.3, n.shape)
        elif n.op == "input":
            v = rng.choice([-1, 1], n.shape) if n.name == "y" else rng.normal(0, 1, n.shape)
        else:
            continue
        out[n.name] = np.array(v, np.float64)          # a 0-d array for a scalar
    return out


def numeric(loss: Loss, values: dict, p: str) -> np.ndarray:
    out = np.zeros(np.shape(values[p]))
    for idx in np.ndindex(out.shape):
        hi, lo = dict(values), dict(values)
        hi[p], lo[p] = values[p].copy(), values[p].copy()
        hi[p][idx] += H
        lo[p][idx] -= H
        out[idx] = (float(loss.at(hi)["loss"]) - float(loss.at(lo)["loss"])) / (2 * H)
    return out


def check(case: Case, seed: int) -> None:
    loss = Loss(case)
    values = start(case, loss, seed)
    if case.guard is not None:
        assert np.min(np.abs(case.guard(values))) > 1e-3, "inputs too close to a kink"
    got = {p: loss.at(values)[f"k_{p}"].copy() for p in case.params}
    for p in case.params:
        np.testing.assert_allclose(got[p], numeric(loss, values, p), rtol=RTOL, atol=ATOL,
                                   err_msg=f"d loss / d {p} in {case.loss}")


def margin(v):
    """Distance of hinge's a*b from the kink at 1, for hinge(a, b)."""
    return 1 - v["a"] * v["b"]


V3, V4, M34 = (3,), (4,), (3, 4)
CASES = [
    Case("add", {"u": V4, "a": V4, "b": V4}, "u @ (a + b) + u @ (a + a)"),
    Case("sub", {"u": V4, "a": V4, "b": V4}, "u @ (a - b) + u @ (2.0 - a) + u @ (b - 0.5)"),
    Case("mul", {"u": V4, "a": V4, "b": V4}, "u @ (a * b * 3.0) + u @ (a * a)"),
    Case("div", {"u": V4, "a": V4, "b": V4}, "u @ (a / (b * b + 1.0)) + u @ (1.5 / (b + 2.0))"),
    Case("div-at-the-loss", {"a": V4, "b": V4}, "(a @ b) / (a @ a + 1.0)"),
    Case("neg", {"u": V4, "a": V4}, "u @ -a + -(a @ a)"),
    Case("relu", {"u": V4, "a": V4}, "u @ relu(a)"),
    Case("maximum", {"u": V4, "a": V4, "b": V4}, "u @ maximum(a, b) + u @ maximum(a, 0.25)",
         guard=lambda v: np.concatenate([v["a"] - v["b"], v["a"] - 0.25])),
    Case("minimum", {"u": V4, "a": V4, "b": V4}, "u @ minimum(a, b) + u @ minimum(0.25, b)",
         guard=lambda v: np.concatenate([v["a"] - v["b"], v["b"] - 0.25])),
    Case("ties", {"u": V4, "a": V4}, "u @ maximum(a, a) + (u * 2.0) @ minimum(a, a)"),
    Case("hinge", {"u": V4, "a": V4, "b": V4}, "u @ hinge(a, b)", guard=margin),
    Case("hinge-of-the-label", {"w": V4}, "hinge(w @ x, y) * 3.0",
         guard=lambda v: 1 - (v["w"] @ v["x"]) * v["y"]),
    Case("logistic_loss", {"u": V4, "a": V4, "b": V4},
         "u @ logistic_loss(a, b) + logistic_loss(u @ x, y)"),
    Case("sigmoid", {"u": V4, "a": V4}, "u @ sigmoid(a * 2.0) + sigmoid(u @ a)"),
    Case("transpose", {"u": V4, "M": M34, "v": V3}, "u @ (transpose(M) @ v)"),
    Case("copy-and-cast", {"u": V4, "a": V4, "b": V4}, "u @ copy(a) + u @ f32(b * b)"),
    Case("outer", {"u": V3, "a": V3, "b": V4, "v": V4}, "u @ (outer(a, b) @ v)"),
    Case("dot", {"a": V4, "b": V4}, "a @ b + (a @ a) * (b @ b)"),
    Case("matvec", {"u": V3, "M": M34, "a": V4}, "u @ (M @ a)"),
    Case("matvec-ta", {"u": V3, "M": (4, 3), "a": V4}, "u @ (M.T @ a)"),
    Case("vecmat", {"a": V3, "M": M34, "v": V4}, "(a @ M) @ v"),
    Case("matmat", {"u": V3, "M": M34, "N": (4, 2), "v": (2,)}, "u @ ((M @ N) @ v)"),
    Case("matmat-ta", {"u": V3, "M": (4, 3), "N": (4, 2), "v": (2,)}, "u @ ((M.T @ N) @ v)"),
    Case("matmat-square", {"u": V3, "M": (3, 3), "N": (3, 3), "v": V3}, "u @ ((M @ N) @ v)"),
    Case("matmat-square-ta", {"u": V3, "M": (3, 3), "N": (3, 3), "v": V3},
         "u @ ((M.T @ N) @ v)"),
    Case("matrix-times-its-transpose", {"u": V3, "M": M34}, "u @ ((M @ M.T) @ u)"),
    Case("scalar-broadcast", {"u": V4, "a": V4, "s": ()}, "u @ (a * s + s) + s * s"),
    Case("row-broadcast", {"u": V3, "M": M34, "c": V4, "v": V4}, "u @ ((M * c + c) @ v)"),
    Case("batch", {"W": (5, 4), "b": (5,), "v": (5,), "u": V3},
         "u @ (relu(x @ W.T + b) @ v)", batch=3),
    Case("exp", {"u": V4, "a": V4}, "u @ exp(a * 0.5) + exp((u @ a) * 0.1)"),
    Case("log", {"u": V4, "a": V4}, "u @ log(a * a + 1.0) + log(u @ u)"),
    Case("sqrt", {"u": V4, "a": V4}, "u @ sqrt(a * a + 0.5) + sqrt(u @ u)"),
    Case("abs", {"u": V4, "a": V4}, "u @ abs(a) + abs(u @ a)",
         guard=lambda v: np.append(v["a"], v["u"] @ v["a"])),
    Case("sum", {"u": V3, "M": M34}, "sum(M * M) + u @ sum(M, axis=1) + "
         "sum(sum(M, axis=0) * 2.0)"),
    Case("mean", {"u": V3, "M": M34}, "mean(M * M) + u @ mean(M, axis=1) + "
         "mean(M, axis=0) @ x"),
    Case("where", {"u": V4, "a": V4, "b": V4}, "u @ where(x > 0.0, a, b * b)"),
    Case("tanh", {"u": V4, "a": V4}, "u @ tanh(a) + tanh(u @ a)"),
    Case("mod", {"u": V4, "a": V4, "b": V4}, "u @ (a % 2.5) + u @ (1.5 % (b * b + 1.0))",
         guard=lambda v: v["b"] * v["b"] - 0.5),
    Case("constant-adjoint-through-reshape", {"M": (1, 4), "a": V4, "c": (2, 2)},
         "reshape(M @ a, []) + reshape(stack([a]), [4]) @ x + reshape(c, [4]) @ x"),
    Case("pow", {"u": V4, "a": V4, "b": V4}, "u @ (a * a + 1.0) ** b + u @ a ** 3.0 + "
         "u @ 2.0 ** b"),
    Case("max-and-min-reductions", {"u": V3, "M": M34},
         "u @ max(M, axis=1) + max(M) * 2.0 + min(M, axis=0) @ x + "
         "sum(min(M * M, axis=1, keepdims=true)) + sum(max(M, axis=0, keepdims=true))",
         guard=lambda v: np.diff(np.sort(v["M"].ravel()))),
    Case("max-ties-share", {"u": V4, "a": V4},
         "u @ max(stack([a, a, a * 0.5 - 2.0]), axis=0) + max(concat([a, a]))"),
    Case("index", {"u": V3, "M": M34, "N": (4, 3)},
         "M[1] @ x + M[0, 2] * 3.0 + sum(M[1:3, ::2]) + N[argmax(x)] @ u + "
         "sum(M[::-1, 3] * u)"),
    Case("gather", {"u": V3, "N": (4, 3)},
         "(N[i32(x > 0.0) + i32(x > 0.5)] @ u) @ x + sum(N[i32(x > 0.0), 1:])"),
    Case("setindex", {"u": V4, "a": V4, "b": V4},
         "u @ (z * z) + sum(z * a)",
         pre="z = a * b; z[1:3] := a[0:2] * 2.0; z[0] += b[3]; z[2] -= a[1] * b[0]; "
             "z[i32(x > 0.0)] += b * 0.5; z[3] := 1.5"),
    Case("reshape", {"u": V3, "M": M34}, "x @ (reshape(M, [4, 3]) @ u) + "
         "sum(reshape(M * M, [12]))"),
    Case("concat", {"a": V4, "b": V4, "M": M34},
         "concat([a, b * 2.0]) @ concat([x, x * x]) + sum(concat([M, M * M], axis=1)) + "
         "sum(concat([M], axis=0) * M)"),
    Case("stack", {"a": V4, "b": V4, "v": (2,)},
         "sum(stack([a, b]) * stack([x, x * 2.0])) + "
         "sum(stack([a, a * b], axis=1), axis=0) @ v"),
    Case("einsum", {"u": V3, "M": M34, "a": V4},
         'einsum("ij,j->i", M, a) @ u + einsum("ij,ij->", M, M) + einsum("ij->", M) + '
         'sum(einsum("i,j->ij", u, a)) + einsum("ij,j->j", M, a) @ x + '
         'einsum("ij,i,j->", M, u, a)'),
    Case("softmax", {"u": V3, "M": M34, "a": V4},
         "u @ (softmax(M, axis=0) @ x) + softmax(a) @ x + sum(softmax(M) * M)"),
    Case("log_softmax", {"u": V3, "M": M34}, "u @ (log_softmax(M) @ x) + "
         "sum(log_softmax(M, axis=0))"),
    Case("cross_entropy", {"M": M34, "a": V4},
         "cross_entropy(M, i32(x[0:3] > 0.0) * 3) + cross_entropy(a, argmax(x))"),
    Case("cross_entropy-batched", {"W": (4, 4), "b": V4},
         "cross_entropy(x @ W + b, i32(argmax(x, axis=1)))", batch=3),
    Case("gelu", {"u": V4, "a": V4}, "u @ gelu(a) + gelu(u @ a)"),
    Case("layernorm", {"u": V3, "M": M34, "a": V4},
         "u @ (layernorm(M) @ x) + layernorm(a * 3.0, eps=0.01) @ x + "
         "sum(layernorm(M, axis=0) * M)"),
    Case("constant-factors", {"a": V4, "b": V4},
         "2.0 * (3.0 * (a @ x)) + (a @ b) * 2.0 * 3.0 - 0.5 * (0.5 * (b @ b)) + "
         "(2.0 * (a @ x) + 3.0 * (a @ x))"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradient_matches_central_differences_in_float64(case):
    for seed in case.seeds:
        check(case, seed)


def test_every_op_has_a_rule_or_a_reason_it_has_none():
    """Every op of the language is differentiated by a rule, or is in NO_DERIVATIVE (integer
    and bool results, constructs, random draws, regions): none is forgotten."""
    assert set(RULES) | set(NO_DERIVATIVE) == set(OPS)
    assert not set(RULES) & set(NO_DERIVATIVE)
    assert {"max", "index", "einsum", "tanh", "pow", "concat"} <= set(RULES)


def test_the_cases_cover_every_rule_and_every_matmul_form():
    """Every op autodiff has a rule for, and matmul as dot, matvec (ta 0 and 1), vecmat,
    matmat (ta 0 and 1), appear in the forward parts of the cases (stop_grad, which lowering
    removes, has its own test)."""
    rules = set(RULES) - {"stop_grad"}
    ops, forms = set(), set()
    for case in CASES:
        graph = Loss(case).graph
        forward = graph.nodes[:[n.name for n in graph.nodes].index("loss") + 1]
        for n in forward:
            ops.add(n.op)
            if n.op == "matmul":
                ranks = tuple(len(graph[a].shape) for a in n.args)
                forms.add(ranks + (dict(n.attrs).get("ta", 0),))
    assert rules <= ops, rules - ops
    assert forms == {(1, 1, 0), (2, 1, 0), (2, 1, 1), (1, 2, 0), (2, 2, 0), (2, 2, 1)}


def test_the_executor_really_computes_in_float64():
    loss = Loss(CASES[0])
    values = start(CASES[0], loss, 0)
    arrays = loss.at(values)
    assert all(arrays[n.buffer].dtype == np.float64 for n in loss.graph.nodes)
    u, a, b = (values[k] for k in "uab")
    want = sum(float(u[i]) * (float(a[i]) + float(b[i])) + float(u[i]) * 2 * float(a[i])
               for i in range(4))
    assert abs(float(arrays["loss"]) - want) <= 1e-14 * sum(abs(u)) * 4
    # in float32 the same loss would be off by about 1e-7 relative: the check can tell
    assert abs(float(np.float32(want)) - want) > 1e-14 * sum(abs(u)) * 4


def test_the_testing_page_quotes_the_tolerance():
    page = " ".join((Path(__file__).resolve().parent.parent / "docs/testing.md").read_text()
                    .split())
    quoted = page.split("relative tolerance ")[1].split(",")[0]
    assert float(quoted) == RTOL and "for every derivative rule and all six matmul forms" in page


# ----------------------------------------------------------------------------- random graphs

RANDOM_PARAMS = {"a": (4,), "b": (3,), "M": (3, 4), "N": (4, 3), "s": ()}


class RandomLoss:
    """A random loss over RANDOM_PARAMS and the example x (f32[4]), built top-down from the
    shape each subexpression must have, through the differentiable ops: elementwise functions
    (smooth ones, with arguments kept where they are finite), arithmetic with broadcasting,
    reductions with and without axis and keepdims (max and min too), matmul in its forms,
    transpose, einsum, indexing, slices, gathers by an index array, reshape, concat, stack,
    softmax, log_softmax, layernorm, gelu, pow, where (its condition from the example) and
    stop_grad. Seeded: the same seed, the same expression."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def expr(self, shape: tuple, depth: int) -> str:
        leaves = [n for n, s in RANDOM_PARAMS.items() if s == shape]
        if shape == (4,):
            leaves.append("x * a")
        if depth <= 0 or (leaves and self.rng.random() < 0.2):
            return self.pick(leaves) if leaves else self._fill(shape)
        make = self.pick([m for m in self.MAKERS if m[1](shape)])[0]
        return make(self, shape, depth - 1)

    def _fill(self, shape: tuple) -> str:
        """A leaf of any shape: a parameter broadcast or reduced to it."""
        if shape == ():
            return "s"
        if shape == (1,) or shape == (2,):
            return f"b[0:{shape[0]}]"
        if len(shape) == 1 and shape[0] <= 12:
            return f"reshape(M, [12])[0:{shape[0]}]"
        return f"(s + zeros({list(shape)}))"

    # each maker: (function(self, shape, depth) -> text, predicate on the wanted shape)
    def _unary(self, shape, d):
        f = self.pick(["tanh({})", "sigmoid({})", "exp(0.3 * {})", "log({0} * {0} + 1.0)",
                       "sqrt({0} * {0} + 0.5)", "-{}", "gelu({})", "({0} * {0} + 1.0) ** 1.5",
                       "{0} + stop_grad({0}) - stop_grad({0})", "copy({})"])
        return "(" + f.format(self.expr(shape, d)) + ")"

    def _binary(self, shape, d):
        op = self.pick(["+", "-", "*", "/"])
        other = self.pick([shape, shape[1:], ()]) if shape else ()
        a, b = self.expr(shape, d), self.expr(other, d)
        if op == "/":
            return f"({a} / ({b} * {b} + 1.0))"
        return f"({a} {op} {b})" if self.rng.random() < 0.5 else f"({b} {op} {a})"

    def _reduce(self, shape, d):
        op = self.pick(["sum", "mean", "max", "min"])
        if shape == ():
            return f"{op}({self.expr(self.pick([(3,), (3, 4)]), d)})"
        if len(shape) == 1:
            return f"{op}({self.expr(shape + (2,), d)}, axis=1)"
        if shape[-1] == 1:
            return f"{op}({self.expr(shape[:-1] + (3,), d)}, axis=-1, keepdims=true)"
        return f"{op}({self.expr((2,) + shape, d)}, axis=0)"

    def _matmul(self, shape, d):
        k = int(self.rng.integers(2, 5))
        if shape == ():
            return f"({self.expr((k,), d)} @ {self.expr((k,), d)})"
        if len(shape) == 1:
            if self.rng.random() < 0.5:
                return f"({self.expr(shape + (k,), d)} @ {self.expr((k,), d)})"
            return f"({self.expr((k,), d)} @ {self.expr((k,) + shape, d)})"
        if self.rng.random() < 0.3:
            return f"({self.expr((k, shape[0]), d)}.T @ {self.expr((k, shape[1]), d)})"
        return f"({self.expr((shape[0], k), d)} @ {self.expr((k, shape[1]), d)})"

    def _einsum(self, shape, d):
        if len(shape) == 1:
            return f'einsum("ij,j->i", {self.expr(shape + (3,), d)}, {self.expr((3,), d)})'
        if shape == ():
            return f'einsum("ij,ij->", {self.expr((2, 3), d)}, {self.expr((2, 3), d)})'
        return f'einsum("ik,jk->ij", {self.expr((shape[0], 2), d)}, {self.expr((shape[1], 2), d)})'

    def _index(self, shape, d):
        if len(shape) == 1 and self.rng.random() < 0.5:
            n = shape[0] + int(self.rng.integers(0, 3))
            start = n - shape[0]
            return f"{self.expr((n,), d)}[{start}:]"
        if len(shape) == 2 and self.rng.random() < 0.5:    # a gather: rows by an index array
            rows = f"i32(x[0:{shape[0]}] > 0.0)"
            return f"{self.expr((2, shape[1]), d)}[{rows}]"
        return f"{self.expr((2,) + shape, d)}[1]"

    def _shape_ops(self, shape, d):
        if len(shape) == 2 and self.rng.random() < 0.5:
            return f"transpose({self.expr(shape[::-1], d)})"
        if len(shape) == 2 and shape[0] == 2:
            return f"stack([{self.expr(shape[1:], d)}, {self.expr(shape[1:], d)}])"
        if len(shape) == 1 and shape[0] >= 2:
            p = int(self.rng.integers(1, shape[0]))
            return f"concat([{self.expr((p,), d)}, {self.expr((shape[0] - p,), d)}])"
        n = int(np.prod(shape))
        return f"reshape({self.expr((n,), d)}, {list(shape)})"

    def _normalize(self, shape, d):
        f = self.pick(["softmax({}, axis=-1)", "log_softmax({}, axis=0)", "layernorm({})",
                       "softmax({}, axis=0)"])
        return f.format(self.expr(shape, d))

    def _where(self, shape, d):
        return f"where(x[0] > 0.0, {self.expr(shape, d)}, {self.expr(shape, d)})"

    MAKERS = [(_unary, lambda s: True), (_binary, lambda s: True), (_reduce, lambda s: True),
              (_matmul, lambda s: len(s) <= 2), (_einsum, lambda s: len(s) <= 2),
              (_index, lambda s: len(s) <= 2), (_shape_ops, lambda s: 1 <= len(s) <= 2),
              (_normalize, lambda s: len(s) >= 1 and s[-1] >= 2 and s[0] >= 2),
              (_where, lambda s: True)]

    def loss(self) -> str:
        shape = self.pick([(), (3,), (3, 4), (2, 2)])
        return f"sum({self.expr(shape, 4)} * {self.expr(shape, 2)})"


RANDOM_SEEDS = range(60)
RANDOM_RTOL = 1e-5          # compositions: differences of deeper chains, rounded more


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_graphs_match_central_differences(seed):
    """Random compositions of every rule (RandomLoss) against finite differences: what the
    one-rule cases cannot show, such as contributions summed from several paths, adjoints
    broadcast and summed back through kept axes, and rules feeding rules."""
    text = RandomLoss(seed).loss()
    used = {p: s for p, s in RANDOM_PARAMS.items() if re.search(rf"\b{p}\b", text)}
    case = Case(f"random-{seed}", used, text, seeds=(seed,))
    loss = Loss(case)
    values = start(case, loss, seed)
    got = {p: loss.at(values)[f"k_{p}"].copy() for p in used}
    scale = max(1.0, abs(float(loss.at(values)["loss"])))
    for p in used:
        np.testing.assert_allclose(got[p], numeric(loss, values, p), rtol=RANDOM_RTOL,
                                   atol=1e-7 * scale, err_msg=f"d loss / d {p} in {text}")


def test_the_random_graphs_reach_every_rule():
    """Over the seeds, the random losses use every op that has a rule (stop_grad before
    lowering removes it: in the text)."""
    ops, texts = set(), []
    for seed in RANDOM_SEEDS:
        text = RandomLoss(seed).loss()
        texts.append(text)
        used = {p: s for p, s in RANDOM_PARAMS.items() if re.search(rf"\b{p}\b", text)}
        graph = Loss(Case("r", used, text)).graph
        ops |= {n.op for n in graph.nodes[:[n.name for n in graph.nodes].index("loss") + 1]}
    assert set(RULES) - {"stop_grad", "hinge", "logistic_loss", "relu", "maximum", "minimum",
                         "abs", "outer", "cast", "setindex", "mod"} <= ops, \
        set(RULES) - ops
    assert any("stop_grad(" in t for t in texts)


COMPOSITES = """config seed = 0
data train, test = parity(n=4, train=6, test=4, seed=1, encoding="signed-random")
param M: f32[3, 4] = normal(std=1)
train (x, y) in train for 1 epochs {
  t = i32(x[0:3] > 0.0) * 3
  sm = softmax(M)
  sm0 = softmax(M, axis=0)
  ls = log_softmax(M)
  ce = cross_entropy(M, t)
  ge = gelu(M)
  ln = layernorm(M, eps=0.01)
  loss = sum(M)
}
eval (x, y) in test {
  predict sign(y)
}
"""


def test_the_composites_compute_what_they_are_named():
    """softmax, log_softmax, cross_entropy (the mean over positions), gelu (tanh form) and
    layernorm against numpy formulas, in float64 (the fixture)."""
    graph = compile_program(COMPOSITES, "c.sir").train.graph
    arrays: dict = {}
    step = Step(graph, arrays, schedule(graph).kernels)
    rng = np.random.default_rng(4)
    M, x = rng.normal(0, 2, (3, 4)), rng.normal(0, 1, 4)
    arrays["M"][...], arrays["x"][...] = M, x
    step()
    t = (x[:3] > 0).astype(int) * 3
    e = np.exp(M - M.max(axis=1, keepdims=True))
    softmax = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(arrays["sm"], softmax, rtol=1e-12)
    e0 = np.exp(M - M.max(axis=0))
    np.testing.assert_allclose(arrays["sm0"], e0 / e0.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(arrays["ls"], np.log(softmax), rtol=1e-12, atol=1e-14)
    assert float(arrays["ce"]) == pytest.approx(-np.mean(np.log(softmax[range(3), t])),
                                                rel=1e-12)
    gelu = 0.5 * M * (1 + np.tanh(np.sqrt(2 / np.pi) * (M + 0.044715 * M ** 3)))
    np.testing.assert_allclose(arrays["ge"], gelu, rtol=1e-12)
    centered = M - M.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(arrays["ln"], centered / np.sqrt(
        (centered ** 2).mean(axis=1, keepdims=True) + 0.01), rtol=1e-12)


def test_the_testing_page_quotes_the_random_graphs():
    page = " ".join((Path(__file__).resolve().parent.parent / "docs/testing.md").read_text()
                    .split())
    assert f"random compositions of the rules ({len(RANDOM_SEEDS)} seeded losses" in page
    assert f"at relative tolerance {RANDOM_RTOL:.0e}".replace("e-0", "e-") in page   # 1e-5
