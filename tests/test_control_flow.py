"""Control flow, integers, indexing and functions in .sir (docs/language.md): what runs, what is
traced, and what is refused. Counts are made by hand from docs/machine-model.md, never from
tracegen; values are checked against plain Python loops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sutro_ir import datasets
from sutro_ir.compile import compile_program
from sutro_ir.errors import SirError
from sutro_ir.execute import Executor
from sutro_ir.printer import print_program
from sutro_ir.schedule import schedule
from sutro_ir.tracegen import StepTrace
from sutro_sim.run import run

ROOT = Path(__file__).resolve().parent.parent


def trained(text: str, overrides=None, passes: str = "", seed: int = 0):
    program = compile_program(text, "t.sir", overrides, passes)
    ex = Executor(program, schedule(program.train.graph), schedule(program.eval.graph).kernels,
                  seed)
    return program, ex, ex.train()


def run_text(tmp_path, text: str, **kw):
    """Every training step traced; the evaluations left out (tests/test_whole_run.py has them)."""
    path = tmp_path / "t.sir"
    path.write_text(text)
    return run(str(path), trace_steps="all", **{"evaluate": False, **kw})


def error_of(text: str, overrides=None) -> str:
    with pytest.raises(SirError) as info:
        trained(text, overrides)
    return str(info.value)


XOR = """config seed = 0
data train, test = xor(train=4, test=4)
param w: f32[2] = zeros()
"""
EVAL = "\neval (x, y) in test {\n  predict sign(w @ x)\n}\n"


# ----------------------------------------------------------------------------- if: only the taken block

def test_a_branch_not_taken_costs_nothing(tmp_path):
    """Taken on steps 0, 3, 6, 9 of 12. Per step (docs/machine-model.md): load writes x (2), y
    (1) and the step counter (1); `step % 3` reads 1, writes 1; `== 0` reads 1, writes 1; the if
    reads its condition (1): 9. The taken block's `w += x` reads w[i] and x[i] and writes w[i]
    for i < 2: 6. Step 0 first writes w (init, 2). 12 * 9 + 4 * 6 + 2 = 134."""
    text = XOR + """train (x, y) in train for 3 epochs {
  t = step % 3 == 0
  if t {
    w += x
  }
}""" + EVAL
    r = run_text(tmp_path, text)
    assert r.train.steps == 12
    assert r.sim.reuse.reads + r.sim.reuse.writes == 134
    assert "134 accesses over 12 steps" in (ROOT / "docs/testing.md").read_text()
    # a step runs mod, eq and the if, and the add when it takes the block: 3 or 4 kernels;
    # arithmetic: mod (1), eq (1), and the add of 2 elements when taken
    assert r.kernels == pytest.approx((4 * 4 + 8 * 3) / 12)
    assert r.arith_ops == pytest.approx((4 * 4 + 8 * 2) / 12)
    assert [r.train.path_of(s) for s in range(12)].count(r.train.path_of(0)) == 4
    taken = r.train.paths[r.train.path_of(0)]
    assert taken == (1,)


def test_if_else_runs_one_block_and_nests():
    """w counts, per example: +1 in w[0] when x0 > 0 and x1 > 0; +1 in w[1] when x0 > 0 and
    not x1 > 0; -1 in both when x0 <= 0 (xor's pm1 inputs)."""
    text = XOR + """train (x, y) in train for 2 epochs {
  if x[0] > 0 {
    if x[1] > 0 {
      w[0] += 1
    } else {
      w[1] += 1
    }
  } else {
    w -= 1
  }
}""" + EVAL
    program, ex, result = trained(text)
    xs = datasets.generate(program.data)[0]
    want = np.zeros(2, np.float32)
    for _ in range(2):
        for x in xs:
            if x[0] > 0:
                want[0 if x[1] > 0 else 1] += 1
            else:
                want -= 1
    assert np.array_equal(ex.arrays["w"], want)
    assert len(result.paths) == len({(x[0] > 0, x[0] > 0 and x[1] > 0) for x in xs})


def test_a_condition_known_at_compile_time_keeps_one_block():
    text = XOR + """train (x, y) in train for 1 epochs {
  for i in range(2) {
    if i == 1 {
      w[i] += 1
    } else {
      w[i] -= 1
    }
  }
}""" + EVAL
    program, ex, _ = trained(text)
    assert not program.train.graph.has_regions
    assert list(ex.arrays["w"]) == [-4, 4]


# ----------------------------------------------------------------------------- loops and functions

def trace_of(text: str) -> dict:
    program = compile_program(text, "t.sir")
    sched = schedule(program.train.graph)
    return StepTrace(sched, "x", "y", [p.name for p in program.params]).columns(0, True)


def test_a_loop_traces_as_its_statements_written_out():
    looped = XOR + """param A: f32[3, 2] = ones()
train (x, y) in train for 1 epochs {
  for i in range(3) {
    h = A[i] * x
    A[i, :] := h + 1
  }
}""" + EVAL
    written = XOR + """param A: f32[3, 2] = ones()
train (x, y) in train for 1 epochs {
  h0 = A[0] * x
  A[0, :] := h0 + 1
  h1 = A[1] * x
  A[1, :] := h1 + 1
  h2 = A[2] * x
  A[2, :] := h2 + 1
}""" + EVAL
    a, b = trace_of(looped), trace_of(written)
    for col in ("addr", "nbytes", "is_write", "kernel", "buffer"):
        assert np.array_equal(a[col], b[col]), col


def test_a_function_is_inlined_with_its_own_names():
    with_def = """def layer(W, v) {
  z = W @ v
  return relu(z)
}
""" + XOR + """param A: f32[2, 2] = normal(std=1)
train (x, y) in train for 1 epochs {
  h = layer(A, x)
  g = layer(A, h)
  w += g
}""" + EVAL
    inline = XOR + """param A: f32[2, 2] = normal(std=1)
train (x, y) in train for 1 epochs {
  z = A @ x
  h = relu(z)
  z1 = A @ h
  g = relu(z1)
  w += g
}""" + EVAL
    a, b = trace_of(with_def), trace_of(inline)
    assert np.array_equal(a["addr"], b["addr"]) and np.array_equal(a["kernel"], b["kernel"])
    _, ex1, _ = trained(with_def)
    _, ex2, _ = trained(inline)
    assert np.array_equal(ex1.arrays["w"], ex2.arrays["w"])


def test_step_and_epoch_count_from_zero():
    text = XOR + """param c: i32[2] = zeros()
train (x, y) in train for 3 epochs {
  c[0] += step
  c[1] += epoch
}""" + EVAL
    _, ex, result = trained(text)
    assert result.steps == 12
    assert list(ex.arrays["c"]) == [sum(range(12)), 4 * (0 + 1 + 2)]


@pytest.mark.parametrize("until, epochs", [("epoch >= 2", 2), ("step >= 9", 3),
                                           ("not epoch < 4 or train_accuracy > 2", 4),
                                           ("test_accuracy >= 0 and epoch == 3", 3)])
def test_until_takes_a_condition(until, epochs):
    text = XOR + f"train (x, y) in train for 9 epochs until {until} {{\n  w += x\n}}" + EVAL
    _, _, result = trained(text)
    assert result.epochs == epochs


# ----------------------------------------------------------------------------- randomness

RANDOM = XOR + """train (x, y) in train for 2 epochs {
  n = normal_like(w, std=0.5)
  keep = bernoulli(0.5, [2])
  w += n * f32(keep)
  w += n * 0
}""" + EVAL


def test_random_draws_are_seeded_fresh_each_step_and_unchanged_by_passes():
    _, a, _ = trained(RANDOM)
    _, b, _ = trained(RANDOM)
    _, c, _ = trained(RANDOM, seed=1)
    assert np.array_equal(a.arrays["w"], b.arrays["w"])
    assert not np.array_equal(a.arrays["w"], c.arrays["w"])
    assert len(set(a.arrays["n"].tolist())) == 2       # the last draw: two different values
    for passes in ("cse", "dce", "fuse", "cse,dce,fuse,liveness-layout", "recompute{policy=all}"):
        _, d, _ = trained(RANDOM, passes=passes)
        assert np.array_equal(a.arrays["w"], d.arrays["w"]), passes


# ----------------------------------------------------------------------------- datasets

def test_01_encoding_gives_bits_and_parity_labels_and_noise_flips_train_labels():
    text = """data train, test = sparse_parity(n=10, k=3, train=2000, test=500, encoding="01",
  seed=3, noise=0.1)
param w: u8[10] = zeros()
train (x, y) in train for 1 epochs {
  w := w
}
eval (x, y) in test {
  predict sum(x & w) % 2
}
""".replace("\n  seed", " seed")
    program = compile_program(text, "t.sir")
    xs, ys, xt, yt = datasets.generate(program.data)
    assert xs.dtype == np.uint8 and ys.dtype == np.uint8 and set(np.unique(xs)) == {0, 1}
    idx = datasets.relevant_bits(program.data)
    assert np.array_equal(yt, xt[:, idx].sum(axis=1) % 2)        # test labels: the rule
    flipped = (ys != xs[:, idx].sum(axis=1) % 2).mean()
    assert 0.07 < flipped < 0.13                                  # about 10% of train labels


def test_from_file_reads_the_users_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = np.sign(x[:, 0]).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    text = """data train, test = from_file("d.npz")
param w: f32[3] = zeros()
train (x, y) in train for 3 epochs {
  if y * (w @ x) < 1 {
    w += 0.1 * y * x
  }
}
eval (x, y) in test {
  predict sign(w @ x)
}
"""
    (tmp_path / "p.sir").write_text(text)
    r = run(str(tmp_path / "p.sir"), trace_steps="1")
    assert r.train.steps == 90 and r.train.test_accuracy >= 0.9


@pytest.mark.parametrize("arrays, message", [
    (None, "no such data file"),
    ({"x_train": np.zeros((3, 2)), "y_train": np.zeros(3)}, "has no x_test, y_test"),
    ({"x_train": np.zeros((3, 2)), "y_train": np.zeros(4), "x_test": np.zeros((2, 2)),
      "y_test": np.zeros(2)}, "x_train has 3 examples but y_train has 4"),
    ({"x_train": np.zeros((3, 2)), "y_train": np.zeros(3), "x_test": np.zeros((2, 5)),
      "y_test": np.zeros(2)}, "train and test shapes differ"),
    ({"x_train": np.zeros((3, 2), np.complex64), "y_train": np.zeros(3),
      "x_test": np.zeros((2, 2)), "y_test": np.zeros(2)}, "x_train is complex64"),
])
def test_from_file_errors_say_what_is_wrong(tmp_path, arrays, message):
    if arrays is not None:
        np.savez(tmp_path / "d.npz", **arrays)
    text = f'data train, test = from_file("{tmp_path / "d.npz"}")\nparam w: f32[2] = zeros()\n' \
        "train (x, y) in train for 1 epochs {\n  w := w\n}\neval (x, y) in test {\n" \
        "  predict w @ x\n}\n"
    msg = error_of(text)
    assert msg.startswith("t.sir:1:1: error: from_file(") and message in msg, msg


# ----------------------------------------------------------------------------- errors

TRAIN = XOR + "train (x, y) in train for 1 epochs {\n  BODY\n}" + EVAL


@pytest.mark.parametrize("body, message", [
    ("for i in range(x[0]) {\n    w += 1\n  }",
     "t.sir:5:18: error: a loop bound must be a constant (numbers, config constants, loop "
     "indices): expected a constant expression"),
    ("x += 1", "t.sir:5:3: error: cannot write 'x': it is the example (data), which a step only "
     "reads"),
    ("return w", "t.sir:5:3: error: `return` belongs at the end of a function"),
    ("w += 0.5 * f32(step)", None),
    ("w += 0.5 * step", "t.sir:5:12: error: the constant 0.5 is not an integer, and this op "
     "computes in i32 (cast the array to f32 first)"),
    ("c = zeros([2], dtype=\"i8\")\n  c += 300",
     "t.sir:6:3: error: the constant 300 does not fit in i8 (-128..127)"),
    ("c = zeros([2], dtype=\"u8\")\n  d = c + 0.5",
     "t.sir:6:9: error: the constant 0.5 is not an integer, and this op computes in u8"),
    ("if w {\n    w += 1\n  }", "t.sir:5:6: error: the condition of an if is a bool scalar, "
     "got f32[2]"),
    ("v = not w[0]", "t.sir:5:7: error: `not` takes a bool value, got f32[]"),
    ("v = w[2]", "t.sir:5:7: error: index 2 is out of range for a dimension of 2"),
    ("v = w[0:0]", "t.sir:5:7: error: the slice 0:0 of a dimension of 2 is empty"),
    ("v = w[0, 1]", "t.sir:5:7: error: 2 indices for an array of 1 dimension"),
    ("v = w[w[0]]", "t.sir:5:9: error: an index is an integer scalar or array, got f32[]"),
    ("v = w << 1", "t.sir:5:9: error: shl takes u8, i8, i32 values, got f32"),
    ("v = reshape(w, [3])", "t.sir:5:7: error: cannot reshape f32[2] (2 elements) to [3]"),
    ("v = einsum(\"ij->i\", w)", "t.sir:5:7: error: einsum 'ij->i': subscripts 'ij' do not "
     "fit an operand of shape [2]"),
    ("v = f(w)", "t.sir:5:7: error: unknown function 'f'"),
    ("for i in range(0, 5, 0) {\n  }", "t.sir:5:24: error: range(): the step cannot be 0"),
    ("v = einsum(\"\u00e9\u00e9->\", eye(2))", "t.sir:5:7: error: einsum '\u00e9\u00e9->': subscripts"),
    ("v = arange(2 ** 40)", "t.sir:5:7: error: arange: start, stop and step are integers up to "
     "2**31"),
    ("v = w + 1e39", "t.sir:5:9: error: the constant 1e+39 does not fit in f32"),
    ("v = f16(w) * 70000", "t.sir:5:14: error: the constant 70000 does not fit in f16"),
    ("v = w * (10 ** 1000) ** 5", "t.sir:5:11: error: this constant is too large (more than "
     "4,096 bits)"),
    ("for i in range(300000) {\n  }", "t.sir:5:7: error: loops unroll to more than 200,000 "
     "iterations here (the limit of a step)"),
    ("for i in range(100000) {\n    w += x * x + 1\n  }", "t.sir:5:7: error: this loop unrolls to "
     "about 300,000 operations (100,000 iterations; the limit of a step is 200,000)"),
])
def test_misuse_is_an_error_at_its_place(body, message):
    text = TRAIN.replace("BODY", body)
    if message is None:
        trained(text)
        return
    assert message in error_of(text), error_of(text)
    assert "\n    " in error_of(text)                                  # with the caret


def test_a_list_constant_is_not_an_operand():
    """A config constant that is a list (a shape) used as a value: an error at the operator."""
    text = "config wd = [[1, 2]]\n" + TRAIN.replace("BODY", "w += wd * w")
    assert "t.sir:6:11: error: mul: an operand is an array or a number, got the constant " \
        "[[1, 2]]" in error_of(text)


def test_recursion_and_a_write_to_an_argument_are_refused():
    text = "def f(a) {\n  return f(a)\n}\n" + TRAIN.replace("BODY", "v = f(w)")
    assert "f() calls itself" in error_of(text)
    text = "def g(a) {\n  a += 1\n  return a\n}\n" + TRAIN.replace("BODY", "v = g(w)")
    assert "t.sir:2:3: error: cannot write 'a': it is an argument of g()" in error_of(text)


def test_step_belongs_to_training():
    text = XOR + "train (x, y) in train for 1 epochs {\n  w += x\n}\n" \
        "eval (x, y) in test {\n  predict sign(w @ x) + step\n}\n"
    assert "t.sir:8:25: error: 'step' counts training steps" in error_of(text)


def test_an_index_out_of_range_at_run_time_names_the_step_and_the_place():
    text = XOR + """param c: i32[] = zeros()
train (x, y) in train for 2 epochs {
  c += 1
  w[c] += 1
}""" + EVAL
    msg = error_of(text)
    assert msg.startswith("t.sir:7:3: error: step 1: index 2 is out of range for a dimension "
                          "of 2"), msg
    assert msg.endswith("  w[c] += 1\n      ^")


def test_a_float_cast_to_an_integer_must_fit():
    text = XOR + """param c: i8[] = zeros()
train (x, y) in train for 1 epochs {
  c := i8(x[0] * 1000)
}""" + EVAL
    assert "t.sir:6:8: error: step 0: " in error_of(text)
    assert "does not fit in i8 (-128..127)" in error_of(text)


# ----------------------------------------------------------------------------- the programs

EVERYTHING = """config n = 4, seed = 2
data train, test = sparse_parity(n=n, k=2, train=16, test=8, encoding="01")
param w: i32[n] = zeros()
param S: u8[2] = zeros()

def bits(v, m) {
  return v & m
}

train (x, y) in train batch 2 for 2 epochs until epoch >= 1 and not train_accuracy > 1 {
  A = zeros([2, n], dtype="u8")
  for r in range(2) {
    A[r, :] := bits(x[r], u8(1))
  }
  j = i32(argmax(A[0]))
  if A[0, j] == 1 {
    w[j] += i32(y[0])
    if y[1] == 1 {
      w[0] ^= 3
    }
  } else {
    w -= 1
  }
  B = reshape(concat([A, stack([A[1], A[0]])], axis=0), [n, n])
  C = einsum("ij,jk->ik", f32(B), eye(n))
  w <<= i32(sum(C) > 100.0)
  S[0] := u8(arange(2, 6, 2)[1])
  t = ~(x[0] // 2 % 3) | (x[1] >> 1)
  w[1:3] %= 7 - i32(t[0])
}

eval (x, y) in test {
  predict sum(x & u8(w > 0)) % 2
}
"""


def test_every_construct_prints_and_parses_back():
    program = compile_program(EVERYTHING, "e.sir")
    text = print_program(program)
    again = compile_program(text, "printed.sir")
    assert again == program and print_program(again) == text
    trained(EVERYTHING)


@pytest.mark.parametrize("name", ["sparse_parity_gf2.sir", "sparse_parity_fourier.sir",
                                  "sparse_parity_local.sir"])
def test_the_new_solvers_learn_20_bit_sparse_parity(name):
    program = compile_program((ROOT / "programs" / name).read_text(), name)
    assert program.config_dict["n_bits"] == 20 and program.config_dict["k"] == 3
    ex = Executor(program, schedule(program.train.graph), schedule(program.eval.graph).kernels,
                  program.config_dict["seed"])
    result = ex.train()
    assert result.test_accuracy == 1.0 and result.train_accuracy == 1.0


def test_two_draws_in_a_step_differ_and_each_keeps_its_values_when_another_goes():
    text = XOR + """train (x, y) in train for 1 epochs {
  unused = normal_like(w, std=1)
  a = normal_like(w, std=1)
  b = normal_like(w, std=1)
  w += a - b
}""" + EVAL
    _, ex, _ = trained(text)
    _, ex_dce, _ = trained(text, passes="dce")          # `unused` removed
    assert not np.array_equal(ex.arrays["a"], ex.arrays["b"])
    assert np.array_equal(ex.arrays["w"], ex_dce.arrays["w"])


def test_verify_refuses_an_if_that_does_not_list_what_its_blocks_read():
    import dataclasses

    from sutro_ir.graph import Graph, verify
    text = XOR + "train (x, y) in train for 1 epochs {\n  if x[0] > 0 {\n    w += x\n  }\n}" + EVAL
    graph = compile_program(text, "t.sir").train.graph
    bad = tuple(dataclasses.replace(n, args=n.args[:1]) if n.op == "if" else n
                for n in graph.nodes)
    with pytest.raises(SirError, match="lists \\[\\] as read from outside; its branches read"):
        verify(Graph(bad, graph.outputs))


def test_passes_say_what_they_left_alone(tmp_path, capsys):
    from sutro_sim.cli import main
    text = XOR + "train (x, y) in train for 1 epochs {\n  if x[0] > 0 {\n    w += x\n  }\n}" + EVAL
    r = run_text(tmp_path, text, passes="layer-local-update,recompute{policy=all},fuse")
    assert r.pass_notes == (
        "layer-local-update: the step has an if; moving updates across blocks is not done yet, "
        "so the step is left as it was",
        "recompute: the step has an if; recompute does not yet look across blocks, so the step "
        "is left as it was",
        "fuse: worked around 1 if and left its blocks as they were (passes do not work inside "
        "blocks yet)")
    assert r.to_dict()["pass_notes"] == list(r.pass_notes)
    straight = run_text(tmp_path, XOR + "train (x, y) in train for 1 epochs {\n  w += x\n}" + EVAL,
                        passes="layer-local-update,fuse")
    assert straight.pass_notes == ()
    code = main(["compare", str(tmp_path / "t.sir"), "-p", "fuse", "--trace-steps", "1"])
    assert code == 0 and "note" not in capsys.readouterr().out
    (tmp_path / "t.sir").write_text(text)
    code = main(["compare", str(tmp_path / "t.sir"), "-p", "fuse", "--trace-steps", "1"])
    assert code == 0 and "note       fuse: worked around 1 if" in capsys.readouterr().out


def test_a_prediction_must_have_the_labels_shape():
    text = XOR + "train (x, y) in train for 1 epochs {\n  w += x\n}\n" \
        "eval (x, y) in test {\n  predict w * x\n}\n"
    assert "t.sir:8:13: error: the prediction is f32[2]; the label it is compared with is f32[]" \
        in error_of(text)


def test_a_shift_by_a_wider_type_keeps_the_left_operands_type():
    text = XOR + """param u: u8[2] = constant(value=200)
param s: i32[] = constant(value=1)
train (x, y) in train for 1 epochs {
  u := u << s
}""" + EVAL
    _, ex, _ = trained(text)
    assert ex.arrays["u"].dtype == np.uint8
    assert list(ex.arrays["u"]) == [(200 << 4) % 256] * 2      # 4 steps, each << 1, wrapped


def test_recompute_auto_runs_on_a_step_with_run_time_indices():
    text = XOR + """param A: f32[4, 2] = normal(std=1)
train (x, y) in train for 1 epochs {
  i = i32(argmax(x))
  h = A[i] * x
  out = sum(h)
  if y * out < 1 {
    w += x
  }
  g = relu(A[i])
  A[i, :] -= 0.1 * g * h
}""".replace("  if y * out < 1 {\n    w += x\n  }\n", "  w += x * out\n") + EVAL
    _, base, _ = trained(text)
    _, auto, _ = trained(text, passes="recompute{policy=auto}")
    assert np.array_equal(base.arrays["A"], auto.arrays["A"])


def header_bomb(f) -> None:
    """An .npz whose member's header claims 10**12 floats (and holds none)."""
    import io
    import zipfile
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False,
                                                "shape": (10 ** 12,)})
    with zipfile.ZipFile(f, "w") as z:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            z.writestr(f"{key}.npy", b"\x93NUMPY\x01\x00" + head.getvalue()[8:])


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(p, np.zeros(3)), "cannot read it as an .npz archive (not a zip archive"),
    (header_bomb, "its arrays would take 14,901.2 GiB, more than 80% of this machine"),
    (lambda p: np.savez(p, x_train=np.zeros((3, 0)), y_train=np.zeros(3), x_test=np.zeros((2, 0)),
                        y_test=np.zeros(2)), "x_train has shape [3, 0]"),
])
def test_from_file_refuses_what_is_not_an_npz_of_examples(tmp_path, make, message):
    path = tmp_path / "d.npz"
    with open(path, "wb") as f:
        make(f)
    text = f'data train, test = from_file("{path}")\nparam w: f32[2] = zeros()\n' \
        "train (x, y) in train for 1 epochs {\n  w := w\n}\neval (x, y) in test {\n" \
        "  predict w[0] * 1\n}\n"
    assert message in error_of(text)


@pytest.mark.parametrize("old, new, message", [
    ("= zeros()", "= normal(std=-1)", "t.sir:3:19: error: normal(): std must be >= 0, got -1"),
    ("= zeros()", "= uniform(low=1, high=0)",
     "t.sir:3:19: error: uniform(): low must be <= high, got low=1, high=0"),
    ("f32[2] = zeros()", "i8[2] = constant(value=300)",
     "t.sir:3:18: error: constant(): the constant 300 does not fit in i8 (-128..127)"),
    ("f32[2] = zeros()", "i32[2] = constant(value=10 ** 400)",
     "t.sir:3:19: error: constant(): 'value' must be a finite number of at most 1e300"),
    ("data train, test", "data train, train",
     "t.sir:2:1: error: the training and test sets need two names, got 'train' twice"),
    ("config seed = 0", "config seed = 1e400",
     "t.sir:1:15: error: the number 1e400 is too large for a float"),
])
def test_declarations_numpy_would_refuse_are_errors_at_their_line(old, new, message):
    text = (XOR + "train (x, y) in train for 1 epochs {\n  w := w\n}" + EVAL).replace(old, new, 1)
    assert message in error_of(text), error_of(text)

def test_functions_nest_up_to_a_limit_and_predict_stays_in_eval():
    defs = "".join(f"def f{i}(a) {{\n  return f{i + 1}(a)\n}}\n" for i in range(70))
    defs += "def f70(a) {\n  return a\n}\n"
    text = defs + XOR + "train (x, y) in train for 1 epochs {\n  w := f0(w)\n}" + EVAL
    assert "functions call each other more than 64 deep here" in error_of(text)
    text = "def g(v) {\n  predict v\n  return v\n}\n" + XOR + \
        "train (x, y) in train for 1 epochs {\n  w := w\n}\neval (x, y) in test {\n" \
        "  predict sign(g(w @ x))\n}\n"
    assert "t.sir:2:3: error: `predict` belongs at the top level of the eval block" in error_of(text)


def test_huge_loops_and_the_counters_are_refused_clearly():
    text = XOR + "train (x, y) in train for 1 epochs {\n  for i in range(2 ** 70) {\n  }\n}" + EVAL
    assert "loops unroll to more than 200,000 iterations here" in error_of(text)
    text = XOR + "train (x, y) in train for 1 epochs {\n  step += 1\n}" + EVAL
    assert "cannot write 'step': it is the step counter, which a step only reads" in \
        error_of(text)
