"""The executor trains for real: the same numbers as a plain numpy implementation, bit for bit,
and the shipped programs reach their accuracy."""

from pathlib import Path

import numpy as np
import pytest

from sutro_ir import datasets
from sutro_ir.compile import compile_file
from sutro_ir.execute import Executor, init_params
from sutro_ir.schedule import schedule

ROOT = Path(__file__).resolve().parent.parent


def trained(path, overrides=None, seed=42):
    program = compile_file(str(ROOT / path), overrides)
    ex = Executor(program, schedule(program.train.graph), schedule(program.eval.graph).kernels,
                  seed)
    return program, ex, ex.train()


def numpy_mlp(program, seed, early_exit=True):
    """The seed's MLP step written directly in numpy: the reference the executor must equal.
    The seed's step returns before the backward pass when the margin y*out is at least 1
    (early_exit=False: mlp_backprop_always.sir, which never returns early)."""
    c = program.config_dict
    p = init_params(program, seed)
    W1, b1, W2, b2 = p["W1"], p["b1"], p["W2"], p["b2"]
    xs, ys, _, _ = datasets.generate(program.data)
    lr, wd = np.float32(c["lr"]), np.float32(c["wd"])
    for _ in range(c["epochs"]):
        for x, y in zip(xs, ys):
            h_pre = W1 @ x + b1
            h = np.maximum(h_pre, np.float32(0))
            out = W2 @ h + b2
            if early_exit and not y * out < 1:
                continue
            dout = -y * (out * y < 1)
            dW2 = dout * h
            dh = dout * W2
            dh_pre = dh * (h_pre > 0)
            dW1 = np.outer(dh_pre, x)
            W1 = W1 - lr * (dW1 + wd * W1)
            b1 = b1 - lr * (dh_pre + wd * b1)
            W2 = W2 - lr * (dW2 + wd * W2)
            b2 = b2 - lr * (dout + wd * b2)
    return {"W1": W1, "b1": b1, "W2": W2, "b2": b2}


@pytest.mark.parametrize("name, early", [("mlp_backprop.sir", True),
                                         ("mlp_backprop_always.sir", False)])
def test_mlp_backprop_equals_plain_numpy_bit_for_bit(name, early):
    overrides = {"n_bits": "8", "hidden": "64", "epochs": "3", "n_train": "40"}
    program, ex, result = trained(f"programs/{name}", overrides)
    assert result.steps == 120          # until 100% train accuracy is not reached here
    want = numpy_mlp(program, 42, early)
    for name, value in want.items():
        assert ex.arrays[name].dtype == np.float32
        assert np.array_equal(ex.arrays[name], value), name
    skipped = result.step_paths is not None and (np.array(result.paths)[result.step_paths, 0]
                                                 == 0).sum()
    assert bool(skipped) == early       # the early exit is taken on some steps


def test_mlp_backprop_defaults_solve_20_bit_sparse_parity():
    program, _, result = trained("programs/mlp_backprop.sir")
    assert program.config_dict["n_bits"] == 20 and program.config_dict["k"] == 3
    assert result.test_accuracy >= 0.9
    assert result.steps == 7000


@pytest.mark.parametrize("name", ["xor.sir", "parity3.sir", "sparse_parity.sir"])
def test_programs_learn(name):
    _, _, result = trained(f"programs/{name}")
    assert result.train_accuracy == 1.0 and result.test_accuracy >= 0.95


def test_until_stops_at_the_first_epoch_that_reaches_the_target():
    _, ex, result = trained("programs/xor.sir")
    assert result.history[-1] >= 1.0 and all(a < 1.0 for a in result.history[:-1])
    assert result.steps == result.epochs * ex.steps_per_epoch


def test_datasets_follow_the_parity_rule():
    program = compile_file(str(ROOT / "programs/mlp_backprop.sir"))
    xs, ys, xt, yt = datasets.generate(program.data)
    idx = datasets.relevant_bits(program.data)
    assert len(idx) == 3 and xs.shape == (500, 20) and xt.shape == (200, 20)
    ones = (xs[:, idx] > 0).sum(axis=1)
    assert np.array_equal(ys, np.where(ones % 2 == 1, 1.0, -1.0))
    magnitude = np.abs(xs)
    assert magnitude.min() >= 0.5 and magnitude.max() < 1.5     # signed-random encoding
