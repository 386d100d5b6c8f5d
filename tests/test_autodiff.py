"""grad(loss, wrt=...): reverse mode on the graph. The derived backward pass of the seed's MLP
is the hand-written one (same ops, same bits); gradients of other ops match finite
differences; errors say where and what."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sutro_ir.ops
from sutro_ir.compile import compile_file, compile_program
from sutro_ir.errors import SirError
from sutro_ir.execute import Executor, Step
from sutro_ir.passes import run_pipeline
from sutro_ir.schedule import schedule
from sutro_ir.tracegen import n_accesses

ROOT = Path(__file__).resolve().parent.parent


def trained(name: str, overrides=None):
    p = compile_file(str(ROOT / "programs" / name), overrides or {})
    ex = Executor(p, schedule(p.train.graph), schedule(p.eval.graph).kernels, seed=42)
    return ex.train(), {q.name: ex.arrays[q.name].copy() for q in p.params}


def test_mlp_autodiff_trains_like_the_hand_written_backward_pass():
    hand, hand_w = trained("mlp_backprop_always.sir")
    auto, auto_w = trained("mlp_autodiff.sir")
    assert (auto.steps, auto.train_accuracy, auto.test_accuracy) == \
        (hand.steps, hand.train_accuracy, hand.test_accuracy) == (7000, 0.97, 0.96)
    for name in hand_w:                 # the same ops in the same order: the same bits
        assert auto_w[name].tobytes() == hand_w[name].tobytes(), name


def test_the_minibatch_autodiff_program_trains_like_the_hand_written_one():
    """sparse_parity_autodiff.sir differentiates mean(hinge(out, y)) over a minibatch of 16:
    the mean's 1/16 (a power of two) and the hinge's mask give the hand-written
    -y * (out * y < 1) / 16 to the bit, and every weight ends the same."""
    hand, hand_w = trained("sparse_parity.sir")
    auto, auto_w = trained("sparse_parity_autodiff.sir")
    assert (auto.steps, auto.train_accuracy, auto.test_accuracy) == \
        (hand.steps, hand.train_accuracy, hand.test_accuracy)
    assert auto.test_accuracy > 0.95
    for name in hand_w:
        assert auto_w[name].tobytes() == hand_w[name].tobytes(), name


def ops(graph):
    return [(n.op, n.shape) for n in graph.body]


def test_the_derived_sweep_is_the_hand_written_backward_pass():
    hand = compile_file(str(ROOT / "programs/mlp_backprop_always.sir")).train.graph
    auto = compile_file(str(ROOT / "programs/mlp_autodiff.sir")).train.graph
    assert auto["dW1"].op == "outer" and auto["dW2"].args == ("db2", "h")
    pruned = run_pipeline(auto, "dce")                      # dce keeps the reported `loss`
    assert [(n.op, n.shape) for n in pruned.body if n.name != "loss"] == ops(hand)
    assert pruned["loss"].op == "hinge"


OUTER = """config seed = 1
data train, test = xor(train=4, test=4)
param u: f32[3] = normal(std=1)
param v: f32[2] = normal(std=1)
param c: f32[3] = normal(std=1)
train (x, y) in train for 1 epochs {
  O = outer(u, v)
  loss = c @ (O @ x)
  BACKWARD
  v -= 0.1 * dv
  u -= 0.1 * du
}
eval (x, y) in test { predict sign(c @ (outer(u, v) @ x)) }
"""


def test_the_gradients_of_outer_are_the_hand_written_ones():
    """out[i,j] = a[i] b[j]: da = G @ b and db = G.T @ a, the matrix first in both, as one
    writes them by hand (the reads of a sweep are traced, so their order is part of the cost)."""
    auto = compile_program(OUTER.replace("BACKWARD", "du = grad(loss, wrt=u)\n  "
                                         "dv = grad(loss, wrt=v)"), "auto.sir").train.graph
    hand = compile_program(OUTER.replace("BACKWARD", "dO = outer(c, x)\n  du = dO @ v\n  "
                                         "dv = dO.T @ u"), "hand.sir").train.graph
    assert [(n.op, n.attrs, n.shape) for n in run_pipeline(auto, "dce").body] == \
        [(n.op, n.attrs, n.shape) for n in run_pipeline(hand, "dce").body]
    assert auto["dv"].op == "matmul" and auto["dv"].args[1] == "u" and \
        dict(auto["dv"].attrs) == {"ta": 1}


def test_passes_apply_to_the_autodiff_program_the_same_way():
    for pipeline in ("layer-local-update,fuse", "fuse"):
        hand = schedule(compile_file(str(ROOT / "programs/mlp_backprop_always.sir"), {}, pipeline)
                        .train.graph)
        auto = schedule(compile_file(str(ROOT / "programs/mlp_autodiff.sir"), {},
                                     "dce," + pipeline).train.graph)
        assert [n_accesses(k, auto.graph) for k in auto.kernels] == \
            [n_accesses(k, hand.graph) for k in hand.kernels]


SMALL = """config seed = 3
data train, test = xor(train=8, test=8, seed=1, encoding="pm1")
param A: f32[3, 2] = normal(std=0.7)
param c: f32[3] = normal(std=0.5)
param B: f32[3, 3] = normal(std=0.6)
param v: f32[3] = normal(std=0.5)
train (x, y) in train for 1 epochs {
  z = sigmoid(A @ x + c)
  u = B.T @ z - maximum(z, 0.3) / (1.5 + z * z)
  w = transpose(outer(u, z)) @ v
  loss = LOSS
  gA = grad(loss, wrt=A)
  gc = grad(loss, wrt=c)
  gB = grad(loss, wrt=B)
  gv = grad(loss, wrt=v)
  A -= 0.0 * gA
}
eval (x, y) in test {
  predict sign(v @ relu(A @ x + c))
}
"""


@pytest.mark.parametrize("loss", ["logistic_loss(w @ u, y)", "hinge(w @ v, y) + w @ w",
                                  "-(u @ z) * 0.5 + w @ v",
                                  # a local written in place: differentiated through the write
                                  "LOCAL"])
def test_gradients_match_finite_differences(loss, monkeypatch):
    """Executed in float64 (the numpy type behind `f32` replaced), so central differences are
    good to about 1e-10 and the tolerance is relative 1e-6 (tests/test_gradients.py checks each
    rule alone the same way)."""
    monkeypatch.setitem(sutro_ir.ops.DTYPES, "f32", np.float64)
    local = "q = u * 2\n  q += z * z\n  loss = q @ u + w @ v"
    program = compile_program(SMALL.replace("loss = LOSS", local) if loss == "LOCAL" else
                              SMALL.replace("LOSS", loss), "small.sir")
    graph = program.train.graph
    rng = np.random.default_rng(0)
    start = {n.name: rng.normal(size=n.shape) for n in graph.nodes if n.op in ("param", "input")}
    start["y"] = np.float64(1.0).reshape(())

    def run(values):
        arrays = {k: np.array(v, np.float64) for k, v in values.items()}
        Step(graph, arrays, schedule(graph).kernels)()
        assert arrays["loss"].dtype == np.float64
        return arrays

    got = run(start)
    h = 1e-6
    for p, g in (("A", "gA"), ("c", "gc"), ("B", "gB"), ("v", "gv")):
        for idx in np.ndindex(start[p].shape):
            hi, lo = dict(start), dict(start)
            hi[p], lo[p] = start[p].copy(), start[p].copy()
            hi[p][idx] += h
            lo[p][idx] -= h
            numeric = (float(run(hi)["loss"]) - float(run(lo)["loss"])) / (2 * h)
            assert float(got[g][idx]) == pytest.approx(numeric, rel=1e-6, abs=1e-8), (p, idx)


@pytest.mark.parametrize("body, message", [
    ("loss = sum(x)\n  g = grad(loss, wrt=A)", "the loss 'loss' does not depend on any parameter"),
    ("loss = A @ x\n  g = grad(loss, wrt=A)", "the loss must be a float scalar"),
    ("loss = c @ c\n  g = grad(loss, wrt=c)\n  h = grad(loss, wrt=A)",
     "bad.sir:10:7: error: grad: the loss does not depend on 'A'"),
    ("loss = sum(sign(A @ x))\n  g = grad(loss, wrt=A)", "bad.sir:9:7: error: grad: no "
     "derivative rule for 'sign' \\(the value computed at bad.sir:8:14\\): it is piecewise "
     "constant"),
    ("loss = v @ (A @ x) + sum(f32(argmax(A, axis=1)) * c)\n  g = grad(loss, wrt=A)",
     "through an i32 value \\('argmax' at bad.sir:8:32\\)"),
    ("loss = sum(f32(argmax(A, axis=0) * 2)) + c @ c\n  g = grad(loss, wrt=A)",
     "bad.sir:9:7: error: grad: the loss depends on a parameter through an i32 value \\('mul' "
     "at bad.sir:8:36\\); integer and bool values carry no derivative"),
    ("loss = sum(A * (A > 0.0))\n  g = grad(loss, wrt=A)",
     "through a bool value \\('gt' at bad.sir:8:21\\)"),
    ("loss = sum(where(A > 0.0, A, A * A))\n  g = grad(loss, wrt=A)\n  h = g * 2.0\n"
     "  loss2 = sum(A // 2.0)\n  k = grad(loss2, wrt=A)", "no derivative rule for 'floordiv'"),
    ("loss = c @ c\n  g = grad(loss)", "grad takes a loss and wrt=NAME"),
    ("z = c * 1.0\n  z[i32(c > 0.0)] := v * 2.0\n  loss = z @ z\n  g = grad(loss, wrt=v)",
     "bad.sir:11:7: error: grad: no derivative rule for := by an index array \\(the value "
     "computed at bad.sir:9:3\\)"),
    ("loss = sum((-2.0) ** c)\n  g = grad(loss, wrt=c)", "-2.0 \\*\\* b has no derivative "
     "with respect to b"),
    ("loss = sum(c / 0.0)\n  g = grad(loss, wrt=c)", "a division by the constant 0 has no "
     "finite derivative"),
    ("loss = sum(B[argmax(A @ x)])\n  g = grad(loss, wrt=A)", "the loss depends on 'A' only "
     "through a value that selects"),
    ("h = c * 1.0\n  h := h * h\n  loss = sum(h)\n  g = grad(loss, wrt=c)", "bad.sir:11:7: "
     "error: grad: the derivative reads 'h' as it was before line 9 wrote over it"),
    ("loss = v @ c\n  v -= 0.01\n  g = grad(loss, wrt=c)", "reads 'v' as it was before line 9"),
    ("loss = c @ c\n  c -= 0.1\n  g = grad(loss, wrt=c)", "the loss depends on 'c' as it was "
     "before line 9 wrote it: take the grad before the update"),
    ("loss = c @ c\n  g = grad(loss, wrt=2)", "grad takes a loss and wrt=NAME"),
    ("z = A @ x\n  loss = z @ c\n  dz = grad(loss, wrt=z)\n  dA = grad(loss, wrt=A)\n"
     "  dz *= 0.5", "cannot write 'dz': it is a gradient from grad\\(\\), which other values "
     "may share"),
])
def test_grad_errors_say_where_and_what(body, message):
    text = SMALL.split("train (x, y)")[0] + "train (x, y) in train for 1 epochs {\n  " + body + \
        "\n}\neval (x, y) in test {\n  predict sign(v @ relu(A @ x + c))\n}\n"
    with pytest.raises(SirError, match=message) as info:
        compile_program(text, "bad.sir")
    assert "bad.sir:" in str(info.value)



def wv_program(loss: str) -> str:
    """A step h = W @ x, the given loss, and an update of v by grad(loss, wrt=v)."""
    body = f"h = W @ x\n  {loss}\n  dv = grad(loss, wrt=v)\n  v -= 0.1 * dv"
    return SMALL.split("param")[0] + "param W: f32[3, 2] = normal(std=1)\n" \
        "param v: f32[3] = normal(std=1)\ntrain (x, y) in train for 1 epochs {\n  " + body + \
        "\n}\neval (x, y) in test {\n  predict sign(v @ (W @ x))\n}\n"


def test_a_grad_whose_path_avoids_an_op_without_a_rule_works():
    """The sweep fails only the grads whose wrt reaches the loss through such an op: here W's
    path crosses an argmax, v's does not, so grad(loss, wrt=v) is the plain derivative and
    grad(loss, wrt=W) is the error, at its own line."""
    text = wv_program("loss = v @ h + f32(argmax(h)) * 0.5")
    graph = compile_program(text, "ok.sir").train.graph
    update = graph["v@1"]
    assert sorted(op for op, _ in ops(graph)) == ["add", "argmax", "cast", "matmul", "matmul",
                                                  "mul", "mul", "sub"]   # nothing derived
    assert graph[update.args[1]].args[1] == "h"     # v -= 0.1 * h: dv is h itself
    bad = text.replace("  v -= 0.1 * dv", "  dW = grad(loss, wrt=W)")
    with pytest.raises(SirError, match="bad.sir:9:8: error: grad: the loss depends on a "
                       "parameter through an i32 value \\('argmax' at bad.sir:7:22\\)"):
        compile_program(bad, "bad.sir")


def test_an_integer_operand_fails_only_its_own_path():
    """In a * f(argmax(h)) the derivative cannot go into argmax, but it still goes into a."""
    text = wv_program("loss = sum(v * argmax(h))")
    graph = compile_program(text, "ok.sir").train.graph
    assert "argmax" in [op for op, _ in ops(graph)]
    with pytest.raises(SirError, match="through an i32 value \\('argmax'"):
        compile_program(text.replace("  v -= 0.1 * dv", "  dW = grad(loss, wrt=W)"), "b.sir")


def test_stop_grad_stops_the_sweep_and_costs_nothing():
    """d/da of a * stop_grad(a) is stop_grad(a) alone (the value, not 2a), and the stop_grad
    node is gone from the graph: it is not a copy."""
    body = "loss = v @ (v * stop_grad(v))\n  dv = grad(loss, wrt=v)\n  v -= dv"
    text = SMALL.split("param")[0] + "param v: f32[3] = normal(std=1)\n" \
        "train (x, y) in train for 1 epochs {\n  " + body + \
        "\n}\neval (x, y) in test {\n  predict sign(sum(stop_grad(v)))\n}\n"
    program = compile_program(text, "sg.sir")
    for graph in (program.train.graph, program.eval.graph):
        assert not {"stop_grad", "copy"} & {n.op for n in graph.all_nodes}
    v = np.array([0.5, -1.0, 2.0])
    # loss = sum(v_i * v_i * s_i) with s = v held: d/dv_i = 2 v_i s_i... of the first two
    # factors only through the v @ (v * s) product rule: v*s + v*s = 2 v s, not 3 v^2
    got = _run_grad(program, v)
    np.testing.assert_allclose(got, 2 * v * v, rtol=1e-6)


def _run_grad(program, v):
    graph = program.train.graph
    arrays = {}
    step = Step(graph, arrays, schedule(graph).kernels)
    for n in graph.nodes:
        if n.op in ("param", "input"):
            arrays[n.buffer][...] = v if n.name == "v" else 0
    step()
    return v - arrays["v"]


@pytest.mark.parametrize("body", [
    "z = stop_grad(c * 2.0)\n  z[0] := 1.0\n  loss = z @ c",
    "z = stop_grad(c)\n  z += 1.0\n  loss = z @ c",
    "z = c * 1.0\n  w = stop_grad(z)\n  z += 1.0\n  loss = w @ c",
    "w = stop_grad(c)\n  loss = w @ c\n  dc = grad(loss, wrt=c)\n  c -= 0.1 * dc\n  q = w @ w",
])
def test_stop_grad_of_an_array_written_later_is_a_copy(body):
    """Where stop_grad's value or its operand's array gets a later version, dropping the node
    would make a reader see another version: it stays, as a copy, and the step runs."""
    if "grad(" not in body:
        body += "\n  dc = grad(loss, wrt=c)\n  c -= 0.1 * dc"
    text = SMALL.split("train (x, y)")[0] + "train (x, y) in train for 1 epochs {\n  " + body + \
        "\n}\neval (x, y) in test {\n  predict sign(v @ relu(A @ x + c))\n}\n"
    program = compile_program(text, "sg.sir")
    assert "copy" in {op for op, _ in ops(program.train.graph)}
    Executor(program, schedule(program.train.graph), schedule(program.eval.graph).kernels,
             seed=0).train()
