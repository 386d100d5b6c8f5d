"""The .sir language: parse -> lower -> print round trips, golden IR, exact error messages,
verify's anti-dependency check, and a fuzz test of the whole front end."""

import dataclasses
import os
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import check_golden

from sutro_ir.compile import compile_program
from sutro_ir.errors import SirError
from sutro_ir.execute import Step
from sutro_ir.graph import Graph, verify
from sutro_ir.printer import print_program
from sutro_ir.schedule import schedule

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted((ROOT / "programs").glob("*.sir"))
GOLDEN = Path(__file__).parent / "golden"


def compile_text(text, file="t.sir", overrides=None):
    return compile_program(text, file, overrides)


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_print_parse_round_trip(path):
    program = compile_text(path.read_text(), str(path))
    text = print_program(program)
    again = compile_text(text, "printed.sir")
    assert again == program
    assert print_program(again) == text


def test_canonical_form_names_types_and_updates():
    """docs/language.md: every nested expression named and typed, updates as `W := op(...)`
    (`W = op(...)` would parse to the same update, so only the text can tell)."""
    program = compile_text("config lr = 0.5\ndata train, test = xor(train=4, test=4)\n"
                           "param w: f32[2] = zeros()\ntrain (x, y) in train for 1 epochs {\n"
                           "  w -= lr * (w - x)\n}\neval (x, y) in test { predict sign(w @ x) }\n")
    body = print_program(program).split("train (x, y)")[1].splitlines()[1:4]
    assert body == ["  %0: f32[2] = sub(w, x)", "  %1: f32[2] = mul(0.5, %0)",
                    "  w := sub(w, %1)"]


UPDATES = """config lr = 0.5
data train, test = xor(train=4, test=4)
param a: f32[2] = ones()
param b: f32[2] = ones()
param c: f32[2] = ones()
param d: f32[2] = ones()
param e: f32[2] = ones()
train (x, y) in train for 1 epochs {
  a += x
  b -= x * -2
  c *= x
  d /= x - 3
  e := a * 3
  after = a + e
}
eval (x, y) in test { predict sign(a @ x) }
"""


def test_updates_lower_to_their_ops_and_later_reads_see_the_new_version():
    """docs/language.md: `W op= e` is W = W op e, `W := e` sets W; a read after an update reads
    the new value (its version); `-c` of a constant is the constant -c. Executed on one
    example against numpy."""
    graph = compile_text(UPDATES).train.graph
    ops = {n.name: (n.op, n.args) for n in graph.body}
    assert [ops[f"{p}@1"][0] for p in "abcd"] == ["add", "sub", "mul", "div"]
    assert ops["e@1"] == ("mul", ("a@1", 3.0)) and ops["after"] == ("add", ("a@1", "e@1"))
    assert any(op == "mul" and -2.0 in args for op, args in ops.values())
    assert ops["d@1"][1][0] == "d" and ops["b@1"][1][0] == "b"
    x = np.array([2.0, -1.0], np.float32)
    arrays = {p: np.ones(2, np.float32) for p in "abcde"} | {"x": x.copy(),
                                                             "y": np.float32(1).reshape(())}
    Step(graph, arrays, schedule(graph).kernels)()
    a = 1 + x
    want = {"a": a, "b": 1 - x * -2, "c": 1 * x, "d": 1 / (x - 3), "e": a * 3, "after": a + a * 3}
    for name, value in want.items():
        assert arrays[name].tobytes() == value.astype(np.float32).tobytes(), name


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_first_line_says_what_the_program_shows(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and len(first) > 30


@pytest.mark.snapshot
def test_golden_ir_of_mlp_backprop():
    program = compile_text((ROOT / "programs/mlp_backprop.sir").read_text())
    check_golden(GOLDEN / "mlp_backprop.ir", print_program(program))


BASE = (ROOT / "programs/mlp_backprop_always.sir").read_text()


def error_of(text, overrides=None) -> str:
    with pytest.raises(SirError) as info:
        compile_text(text, "p.sir", overrides)
    return str(info.value)


ERRORS = [
    ("h = relu(h_pre)", "h = relu(h_pre",
     "p.sir:15:17: error: unexpected end of line; expected )\n"
     "      h = relu(h_pre\n                    ^"),
    ("h = relu(h_pre)", "h = relu(hpre)",
     "p.sir:15:12: error: unknown name 'hpre'\n      h = relu(hpre)\n               ^"),
    ("h_pre = W1 @ x + b1", "h_pre = x @ W1 + b1",
     "p.sir:14:13: error: matmul expects inner dims to match, got f32[20] and f32[1000,20]\n"
     "      h_pre = x @ W1 + b1\n                ^"),
    ("W2 -= lr * (dW2 + wd * W2)", "x -= lr * dW2",
     "p.sir:26:3: error: cannot write 'x': it is the example (data), which a step only "
     "reads\n      x -= lr * dW2\n      ^"),
    ("  h = relu(h_pre)", "  h = relu(h_pre)\n  q = zz + 1\n  zz = h",
     "p.sir:16:7: error: 'zz' is read before it is defined (at line 17)\n"
     "      q = zz + 1\n          ^"),
    ("dW2 = dout * h", "dW2 = dout * dW1",
     "p.sir:19:16: error: 'dW1' is read before it is defined (at line 22)\n"
     "      dW2 = dout * dW1\n                   ^"),
    ("dW2 = dout * h", "dW2 = h * x",
     "p.sir:19:11: error: mul expects operands of the same shape (or broadcastable), got "
     "f32[1000] and f32[20]\n      dW2 = dout * h\n".replace("dout * h", "h * x") +
     "              ^"),
    ("b2 -= lr * (dout + wd * b2)", "b2 -= lr * dh",
     "p.sir:27:3: error: the update of 'b2' gives f32[1000]; 'b2' is f32[]\n"
     "      b2 -= lr * dh\n      ^"),
    ("predict sign", "W1 -= 1\n  predict sign",
     "p.sir:31:3: error: the eval block cannot update parameter 'W1'\n      W1 -= 1\n      ^"),
    ("param b2: f32[] = zeros()", "param b2: f64[] = zeros()",
     "p.sir:10:11: error: unknown dtype 'f64' (known: f32, f16, i32, i8, u8, bool)\n"
     "    param b2: f64[] = zeros()\n              ^"),
    ("h = relu(h_pre)", "h = h_pre $ 2",
     "p.sir:15:13: error: unexpected character '$'\n      h = h_pre $ 2\n                ^"),
    ("h = relu(h_pre)", "h = -(h_pre > 0)",
     "p.sir:15:7: error: neg of bool values is not defined: cast them first, e.g. "
     "cast(a, to=\"f32\")\n      h = -(h_pre > 0)\n          ^"),
    ("h = relu(h_pre)", "h = (h_pre > 0) ** 2",    # ** gives a float, but not of bools
     "p.sir:15:7: error: pow of bool values is not defined: cast them first, e.g. "
     "cast(a, to=\"f32\")\n      h = (h_pre > 0) ** 2\n          ^"),
]


@pytest.mark.parametrize("old,new,message", ERRORS, ids=[e[1][:20] for e in ERRORS])
def test_error_messages_are_exact(old, new, message):
    assert old in BASE
    assert error_of(BASE.replace(old, new, 1)) == message


def test_set_errors():
    assert error_of(BASE, {"nbits": "3"}) == (
        "p.sir:2:8: error: --set nbits: the program has no config constant 'nbits' (it has: "
        "n_bits, k, hidden, lr, wd, epochs, seed, n_train, n_test)\n"
        "    config n_bits = 20, k = 3, hidden = 1000, lr = 0.05, wd = 0.01, epochs = 14, seed = 42\n"
        "           ^")
    msg = error_of(BASE, {"n_bits": "abc"})
    assert msg.startswith("p.sir:2:8: error: --set n_bits=abc: 'n_bits' is an integer "
                          "(default 20), got a string\n")
    assert error_of(BASE, {"lr": "true"}).startswith(
        "p.sir:2:43: error: --set lr=true: 'lr' is a number (default 0.05), got true or false")


def test_set_recomputes_dependent_constants():
    program = compile_text(BASE, overrides={"n_bits": "3", "lr": "1"})
    config = program.config_dict
    assert (config["n_bits"], config["n_train"], config["lr"]) == (3, 8, 1.0)
    assert program.param("W1").shape == (1000, 3)


def test_more_memory_than_the_machine_has_is_refused_up_front():
    # one array past the memory: refused where it is declared, with its size
    msg = error_of(BASE, {"hidden": "1000000000"})
    assert msg.startswith("p.sir:7:11: error: this array, f32[1,000,000,000, 20], takes 74.5 GiB, "
                          "more than 80% of this machine")
    # each array fits (W1 takes 11.2 GiB) but not all of them together: placed at the data line
    msg = error_of(BASE, {"hidden": "150000000"})
    assert msg.startswith("p.sir:5:1: error: this program needs 90.1 GiB of buffers, data and "
                          "recorded index values, more than 80% of this machine")


def test_verify_rejects_a_read_of_an_old_version_after_its_update():
    graph = compile_text(BASE).train.graph
    nodes = list(graph.nodes)
    # hoist the update of W2 (with the temporaries it needs) above the backward read dh = dout * W2,
    # the reordering that once broke training by hand
    update = [n for n in nodes if n.name in ("%22", "%23", "%24", "W2@1")]
    rest = [n for n in nodes if n not in update]
    read = next(i for i, n in enumerate(rest) if n.name == "dh")
    moved = rest[:read] + update + rest[read:]
    with pytest.raises(SirError, match="'dh' reads 'W2' after the update 'W2@1' overwrote it"):
        verify(Graph(tuple(moved)), where="test")


def test_networkx_view_has_the_anti_dependency_edges():
    g = compile_text(BASE).train.graph.nx_graph()
    anti = {(a, b) for a, b, d in g.edges(data=True) if d["kind"] == "anti"}
    assert ("dh", "W2@1") in anti and ("%0", "W1@1") in anti
    assert ("%22", "W2@1") in anti          # wd * W2 reads the old W2 too


def test_verify_checks_types():
    graph = compile_text(BASE).train.graph
    bad = [dataclasses.replace(n, shape=(7,)) if n.name == "h" else n for n in graph.nodes]
    with pytest.raises(SirError, match="'h' is typed f32\\[7\\] but relu gives f32\\[1000\\]"):
        verify(Graph(tuple(bad)), where="test")


# ----------------------------------------------------------------------------- fuzz

PIECES = ["(", ")", "[", "]", "{", "}", ",", "=", "-=", "@", "*", "+", "-", "/", "**", "<", ".T",
          "0", "1", "2.5", "x", "y", "W1", "h", "relu(", "sum(", "outer(", "f16(", "\n", " ",
          "predict", "train", "eval", "param", "config", "epochs", '"pm1"', "%3", "#", "batch",
          # the control flow, integers and indexing of issue 10
          "if ", " else ", "} else {", "for i in range(3) ", "range(", "def ", "return ", "solve",
          ":", "::", ":=", "^=", "+=", "//", "%", "&", "|", "^", "~", "<<", ">>", " and ", " or ",
          "not ", "i32(", "u8(", "i8(", "argmax(", "argmin(", "zeros([2, 3])", "arange(4)",
          "eye(3)", "reshape(", "concat([", "stack([", 'einsum("i,i->", ', "normal_like(",
          "bernoulli(0.5, [2])", "step", "epoch", "10 ** 9", "-1", '"01"', "until epoch >= 1 "]
EXTRA_SOURCE = """config n = 4, seed = 3
data train, test = sparse_parity(n=n, k=2, train=8, test=8, encoding="01")
param w: i32[n] = zeros()
def f(v) {
  return v & u8(1)
}
train (x, y) in train for 2 epochs until epoch >= 1 {
  A = zeros([2, n], dtype="u8")
  for r in range(2) {
    A[r, :] := f(x)
  }
  j = i32(argmax(A[0]))
  if A[0, j] == 1 {
    w[j] += i32(y)
  } else {
    w -= 1
  }
  w[1:3] ^= 3
}
eval (x, y) in test {
  predict sum(x & u8(w > 0)) % 2
}
"""


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(text))
        choice = rng.random()
        if choice < 0.3:
            text = text[:i] + text[i + rng.randint(1, 8):]
        elif choice < 0.7:
            text = text[:i] + rng.choice(PIECES) + text[i:]
        else:
            j = rng.randrange(len(text))
            text = text[:i] + text[j:j + rng.randint(1, 10)] + text[i:]
    return text


def test_fuzz_front_end_gives_clean_errors_or_programs():
    from sutro_sim.run import run

    rng = random.Random(1234)
    sources = [p.read_text() for p in PROGRAMS if p.name in ("xor.sir", "parity3.sir",
                                                              "sparse_parity_gf2.sir")]
    sources.append(EXTRA_SOURCE)
    ok = errors = ran = 0
    for i in range(int(os.environ.get("SUTRO_FUZZ_CASES", "3000"))):   # more: a longer campaign
        text = mutate(rng.choice(sources), rng)
        try:
            compile_text(text, "fuzz.sir")
        except SirError as e:
            assert str(e).startswith("fuzz.sir"), str(e)
            errors += 1
            continue
        ok += 1
        if ran < 40:        # and the successes run end to end
            path = Path(os.environ.get("TMPDIR", "/tmp")) / f"fuzz_{os.getpid()}.sir"
            path.write_text(text)
            try:
                run(str(path), {"epochs": "1"} if "epochs =" in text else None,
                    trace_steps="1")
            except SirError as e:
                assert str(e).startswith(str(path)), str(e)
            finally:
                path.unlink()
            ran += 1
    assert errors > 1000 and ok > 50


def test_language_reference_shows_the_real_grammar():
    doc = (ROOT / "docs/language.md").read_text()
    grammar = (ROOT / "sutro_ir/grammar.lark").read_text()
    assert doc.split("```lark\n")[1].split("```")[0] == grammar


def test_pass_pipelines_parse_and_fail_clearly():
    from sutro_ir.passes import parse_pipeline, run_pipeline

    assert parse_pipeline("") == []
    assert parse_pipeline("identity, identity{}") == [("identity", {}), ("identity", {})]
    graph = compile_text(BASE).train.graph
    assert run_pipeline(graph, "identity,identity") == graph
    with pytest.raises(SirError, match="--passes: error: unknown pass 'fusion' \\(registered: cse, dce, "
                       "fuse, identity, layer-local-update, liveness-layout, recompute\\)"):
        parse_pipeline("identity,fusion")
    with pytest.raises(SirError, match="option 'max_ops' of 'identity' needs key=value"):
        parse_pipeline("identity{max_ops}")
    with pytest.raises(SirError, match="--passes: error: identity: unknown option .max_ops. \\(options: none\\)"):
        run_pipeline(graph, "identity{max_ops=8}")


def test_the_testing_page_gives_the_fuzz_tests_size():
    page = " ".join((ROOT / "docs/testing.md").read_text().split())
    assert "3,000 times" in page and os.environ.get("SUTRO_FUZZ_CASES", "3000") in ("3000",
                                                                                    "12000")
    assert 'range(int(os.environ.get("SUTRO_FUZZ_CASES", "3000")))' in \
        Path(__file__).read_text()
