"""The scheduling passes: exact passes are bit-identical (on seeded random graphs and on every
program), fused kernels follow the rule of graph.check_kernel, and what each pass does to the
seed's MLP (golden IR, stored buffers, access counts)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import traceoracle
from conftest import check_golden
from randgraphs import random_graph, random_sources

from sutro_ir.compile import compile_file, compile_program
from sutro_ir.errors import SirError
from sutro_ir.execute import Executor, Step
from sutro_ir.graph import Graph, Node, verify
from sutro_ir.ops import OPS
from sutro_ir.passes import REGISTRY, is_exact, run_pipeline
from sutro_ir.printer import print_program
from sutro_ir.schedule import schedule
from sutro_ir.tracegen import dynamic_count, kernel_accesses, n_accesses

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
PROGRAMS = sorted((ROOT / "programs").glob("*.sir"))
SMALL = {"mlp_backprop_always.sir": {"n_bits": "3", "hidden": "40", "epochs": "3"},
         "mlp_backprop.sir": {"n_bits": "3", "hidden": "40", "epochs": "3"},
         "sparse_parity_local.sir": {"n_train": "64", "hidden": "40", "epochs": "2"},
         "mlp_autodiff.sir": {"n_bits": "3", "hidden": "40", "epochs": "3"},
         "sparse_parity.sir": {"epochs": "2"}, "mlp4_backprop.sir": {"epochs": "2"}}
EXACT = ["dce", "cse", "fuse", "layer-local-update", "liveness-layout",
         "layer-local-update,fuse", "fuse{hoist=false}", "fuse{updates=false,anchors=false}",
         "fuse{max_ops=2}", "dce,cse,layer-local-update,fuse,liveness-layout",
         "recompute{policy=all},fuse", "recompute{policy=sqrt}",
         "layer-local-update,recompute{policy=all},fuse"]


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


# ----------------------------------------------------------------------------- random graphs

def execute(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    """Run the scheduled graph once on seeded inputs; every buffer's final contents."""
    arrays = random_sources(graph, seed)
    with np.errstate(all="ignore"):
        Step(graph, arrays, schedule(graph).kernels)()
    return arrays


@pytest.mark.parametrize("seed", range(60))
def test_exact_passes_are_bit_identical_on_random_graphs(seed):
    graph = random_graph(seed)
    want = execute(graph, seed)
    for pipeline in EXACT:
        out = run_pipeline(graph, pipeline)
        got = execute(out, seed)
        for name, value in got.items():     # every value both graphs compute (not clones)
            if name in want:
                assert bits(value) == bits(want[name]), (pipeline, name)
        for p in (n.name for n in graph.nodes if n.op == "param"):
            assert bits(got[p]) == bits(want[p]), (pipeline, p)
        # a value cse removed is predicted as the one that replaces it: the same bits
        for before, after in zip(graph.outputs, out.outputs, strict=True):
            assert bits(got[after]) == bits(want[before]), (pipeline, before, after)


@pytest.mark.parametrize("seed", range(60))
def test_fused_kernels_obey_the_rule_and_count_their_accesses(seed):
    graph = run_pipeline(random_graph(seed), "fuse")
    sched = schedule(graph)
    computing = [n for n in graph.all_nodes if n.op not in ("param", "input", "merge")]
    assert sum(len(k.nodes) for k in sched.flat) == len(computing)
    for k in sched.flat:
        if k.is_branch:
            continue
        assert all(OPS[m.op].kind == "elementwise" and m.shape == k.anchor.shape
                   for m in k.nodes[1:]), k.name
        dyn = (0,) * dynamic_count(k, sched.graph)                   # index 0 is in range of any dimension
        want = traceoracle.kernel_loop(k, sched, dyn)   # the loop nest, one access at a time
        addr, nbytes, is_write, _ = kernel_accesses(k, sched, dyn)
        assert len(addr) == n_accesses(k, graph) == len(want), k.name
        assert int(is_write.sum()) == sum(w for _, _, w in want)
        if k.anchor.op != "setindex":                   # (which writes only part of its array)
            assert int(is_write.sum()) == len(k.stores) * int(np.prod(k.anchor.shape, dtype=int))


# ----------------------------------------------------------------------------- programs

def train(path: Path, pipeline: str):
    program = compile_file(str(path), SMALL.get(path.name, {}), pipeline)
    ex = Executor(program, schedule(program.train.graph), schedule(program.eval.graph).kernels,
                  seed=int(program.config_dict.get("seed", 0)))
    result = ex.train()
    return result, {p.name: ex.arrays[p.name].copy() for p in program.params}


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_exact_passes_train_every_program_to_the_same_bits(path):
    base, weights = train(path, "")
    for pipeline in ("fuse", "layer-local-update", "dce,cse,layer-local-update,fuse,"
                     "liveness-layout", "layer-local-update,recompute{policy=all},fuse"):
        result, got = train(path, pipeline)
        assert (result.steps, result.train_accuracy, result.test_accuracy) == \
            (base.steps, base.train_accuracy, base.test_accuracy), pipeline
        for name in weights:
            assert bits(got[name]) == bits(weights[name]), (pipeline, name)


def test_every_registered_pass_is_exercised():
    tested = {step.split("{")[0] for p in EXACT for step in p.split(",")}
    assert set(REGISTRY) - {"identity"} <= tested | {"layer-local-update"}
    assert all(is_exact(p) for p in EXACT)
    assert not is_exact("layer-local-update{approximate=true}")


def test_approximate_layer_local_update_reads_the_new_weights_and_says_so():
    graph = compile_file(str(ROOT / "programs/mlp_backprop_always.sir")).train.graph
    out = run_pipeline(graph, "layer-local-update{approximate=true}")
    assert "W2@1" in out["dh"].operands          # dh = dout * W2 now reads the updated W2
    base, weights = train(ROOT / "programs/mlp_backprop_always.sir", "")
    _, got = train(ROOT / "programs/mlp_backprop_always.sir", "layer-local-update{approximate=true}")
    assert bits(got["W1"]) != bits(weights["W1"])


# ----------------------------------------------------------------------------- the seed's MLP

def mlp(pipeline: str):
    return compile_file(str(ROOT / "programs/mlp_backprop_always.sir"), {}, pipeline)


@pytest.mark.snapshot
@pytest.mark.parametrize("pipeline,golden", [("layer-local-update", "mlp_backprop_always.llu.ir"),
                                             ("layer-local-update,fuse", "mlp_backprop_always.fused.ir"),
                                             ("recompute{values=h}", "mlp_backprop_always.recompute.ir")])
def test_golden_scheduled_ir(pipeline, golden):
    check_golden(GOLDEN / golden, print_program(mlp(pipeline)))


@pytest.mark.parametrize("pipeline", EXACT)
def test_scheduled_ir_prints_and_parses_back(pipeline):
    """The fused kernels print as comments, which parse away: the same nodes in the same order."""
    text = print_program(mlp(pipeline))
    assert compile_program(text, "printed.sir").train.graph.nodes == mlp(pipeline).train.graph.nodes


def test_layer_local_update_order_on_the_mlp():
    body = [n.name for n in mlp("layer-local-update").train.graph.body]
    # each update right after its gradient is complete and the old value's last read
    assert body.index("b2@1") < body.index("dW2") < body.index("W2@1") < body.index("dh_pre")
    assert body.index("dh") < body.index("W2@1")
    assert body.index("b1@1") < body.index("dW1") < body.index("W1@1") == len(body) - 1


def test_fuse_keeps_gradients_and_intermediates_in_registers():
    sched = schedule(mlp("layer-local-update,fuse").train.graph)
    stored = {b.name for b in sched.buffers}
    assert stored == {"W1", "b1", "W2", "b2", "x", "y", "h", "%11", "dout", "dh_pre"}
    assert [k.name for k in sched.kernels] == ["fused:h+%11", "fused:dout+b2",
                                               "fused:W2+dh_pre+b1", "fused:W1"]
    # accesses per step: 339,024 unfused; these are the loop nests of the four kernels
    counts = [n_accesses(k, sched.graph) for k in sched.kernels]
    assert counts == [43_000, 2_004, 8_000, 80_000]
    unfused = schedule(mlp("").train.graph)
    assert sum(n_accesses(k, unfused.graph) for k in unfused.kernels) == 339_024


def test_fuse_options_limit_what_fuses():
    assert mlp("fuse{max_ops=1}").train.graph.kernels == ()
    assert max(map(len, mlp("fuse{max_ops=3}").train.graph.kernels)) == 3
    no_updates = mlp("fuse{updates=false}").train.graph
    assert not any(n.version for k in no_updates.kernels for n in map(no_updates.__getitem__, k))
    no_anchor = mlp("fuse{anchors=false}").train.graph
    assert all(OPS[no_anchor[k[0]].op].kind == "elementwise" for k in no_anchor.kernels)


def test_liveness_layout_reuses_dead_bytes():
    bump = schedule(mlp("").train.graph)
    live = schedule(mlp("liveness-layout").train.graph)
    top = lambda s: max(b.base + b.nbytes for b in s.buffers)     # noqa: E731
    assert top(live) < top(bump)
    params = {b.name: b.base for b in bump.buffers if b.role in ("param", "data")}
    assert params == {b.name: b.base for b in live.buffers if b.role in ("param", "data")}


def test_verify_rejects_illegal_kernels():
    graph = mlp("").train.graph
    with pytest.raises(SirError, match="cannot join the loop nest"):
        verify(Graph(graph.nodes, graph.outputs, (("h", "%3"),)))
    with pytest.raises(SirError, match="not a run of consecutive nodes"):
        verify(Graph(graph.nodes, graph.outputs, (("h_pre", "dW2"),)))
    # the matmul reads all of P for every output element: P's update cannot share its loop
    g = Graph((Node("P", "param", dtype="f32", shape=(4,)),
               Node("M", "param", dtype="f32", shape=(4, 4)),
               Node("v", "matmul", ("M", "P"), dtype="f32", shape=(4,)),
               Node("P@1", "sub", ("P", "v"), dtype="f32", shape=(4,))), (), (("v", "P@1"),))
    with pytest.raises(SirError, match="'v' reads 'P' in the loop nest that overwrites it"):
        verify(g)
    verify(Graph(g.nodes))                      # the same nodes unfused are fine
    # an elementwise member must have the anchor's shape: a [4] node cannot join a scalar's loop
    g = Graph((Node("P", "param", dtype="f32", shape=(4,)),
               Node("s", "sum", ("P",), dtype="f32", shape=()),
               Node("n", "neg", ("P",), dtype="f32", shape=(4,))), ("s", "n"), (("s", "n"),))
    with pytest.raises(SirError, match="'n' \\(neg, f32\\[4\\]\\) cannot join the loop nest "
                                       "of 's' \\(sum, f32\\[\\]\\)"):
        verify(g)


def test_reordering_after_fuse_is_refused():
    with pytest.raises(SirError, match="run it before fuse"):
        mlp("fuse,layer-local-update")


# ----------------------------------------------------------------------------- recompute

def test_recompute_clones_a_value_before_its_backward_reader():
    from sutro_ir.passes.recompute import candidates
    graph = mlp("").train.graph
    assert candidates(graph) == ["h_pre", "h", "out"]
    body = mlp("recompute{values=h}").train.graph.body
    clone = next(n for n in body if n.op == "relu" and n.name != "h")
    assert clone.args == ("h_pre",)             # h_pre is a checkpoint: stored, read again
    reader = next(n for n in body if n.name == "dW2")
    assert reader.args == ("dout", clone.name)
    assert [n.name for n in body].index(clone.name) == [n.name for n in body].index("dW2") - 1
    # h_pre recomputed from the parameters and the example: the matmul runs again
    body = mlp("recompute{values=h_pre}").train.graph.body
    assert [n.op for n in body].count("matmul") == 3


def test_recompute_policies_and_errors():
    base = len(mlp("").train.graph.body)
    assert mlp("recompute{policy=store-all}").train.graph == mlp("").train.graph
    assert len(mlp("recompute{policy=all}").train.graph.body) > base
    with pytest.raises(SirError, match="'dW2' is not a forward value that the backward pass reads"):
        mlp("recompute{values=dW2}")
    with pytest.raises(SirError, match="takes one of values=a\\+b or policy="):
        mlp("recompute")
    with pytest.raises(SirError, match="unknown policy 'half'"):
        mlp("recompute{policy=half}")
    with pytest.raises(SirError, match="run it before fuse"):
        mlp("fuse,recompute{policy=all}")


def test_cse_merges_swapped_operands_only_where_every_bit_agrees():
    """maximum(-0.0, 0.0) is 0.0 but maximum(0.0, -0.0) is -0.0, and of two NaNs numpy's add
    returns the first (its sign and payload): only eq and ne may merge with swapped operands."""
    v = lambda name, op, args, dtype="f32": Node(name, op, args, dtype=dtype, shape=(3,))  # noqa
    nodes = (Node("a", "input", dtype="f32", shape=(3,)), Node("b", "input", dtype="f32",
                                                                shape=(3,)),
             v("m1", "maximum", ("a", "b")), v("m2", "maximum", ("b", "a")),
             v("n1", "minimum", ("a", "b")), v("n2", "minimum", ("b", "a")),
             v("s1", "add", ("a", "b")), v("s2", "add", ("b", "a")),
             v("p1", "mul", ("a", "b")), v("p2", "mul", ("b", "a")),
             v("e1", "eq", ("a", "b"), "bool"), v("e2", "eq", ("b", "a"), "bool"),
             v("q1", "ne", ("a", "b"), "bool"), v("q2", "ne", ("b", "a"), "bool"))
    graph = verify(Graph(nodes, tuple(n.name for n in nodes[2:])))
    merged = run_pipeline(graph, "cse")
    assert [n.name for n in merged.body] == ["m1", "m2", "n1", "n2", "s1", "s2", "p1", "p2",
                                             "e1", "q1"]
    nan = np.float32("nan")
    inputs = {"a": np.array([-0.0, nan, 1.0], np.float32),
              "b": np.array([0.0, -nan, 2.0], np.float32)}
    results = []
    for g in (graph, merged):
        arrays = {k: x.copy() for k, x in inputs.items()}
        with np.errstate(all="ignore"):
            Step(g, arrays, schedule(g).kernels)()
        results.append([bits(arrays[o]) for o in g.outputs])
    assert results[0] == results[1]
    # the cases are real: swapping changes bits (of -0.0 and 0.0 maximum returns the second, of
    # two NaNs the first)
    assert all(results[0][i] != results[0][i + 1] for i in (0, 2, 4, 6))
    signs = [np.signbit(np.frombuffer(r, np.float32)[:2]).tolist() for r in results[0][:2]]
    assert signs == [[False, False], [True, True]]     # maximum(a, b) and maximum(b, a)


def test_random_graphs_exercise_every_pass():
    """The property tests above are only worth something if the passes change these graphs."""
    graphs = [random_graph(seed) for seed in range(60)]
    straight = [random_graph(seed, regions=False) for seed in range(60)]
    changed = {p: sum(run_pipeline(g, p).nodes != g.nodes for g in graphs)
               for p in ("dce", "cse")}
    # layer-local-update and recompute decline a step with an if: the graphs without one
    changed |= {p: sum(run_pipeline(g, p).nodes != g.nodes for g in straight)
                for p in ("layer-local-update", "recompute{policy=all}")}
    fused = sum(bool(run_pipeline(g, "fuse").kernels) for g in graphs)
    assert sum(g.has_regions for g in graphs) >= 30 and not any(g.has_regions for g in straight)
    assert min(changed.values()) >= 5 and fused >= 30, (changed, fused)


@pytest.mark.snapshot
def test_docs_excerpts_come_from_the_golden_files():
    text = (ROOT / "docs/passes.md").read_text()
    blocks = re.findall(r"<!-- golden: (\S+) -->\n```\n(.*?)```", text, re.S)
    assert len(blocks) == 5
    for name, block in blocks:
        assert block in (GOLDEN / name).read_text(), name
    n_graphs = len(range(60))          # the seeds of the random-graph tests above
    assert f"on {n_graphs} seeded random step graphs" in re.sub(r"\s+", " ", text)


def test_cse_merges_only_what_computes_the_same_value():
    """x - w and w - x, x >= w and w >= x, sums along either axis, A @ x and A.T @ x are
    different values (cse keeps both: a wrong merge changes the trained weights); x == w and
    w == x are the same (cse keeps one)."""
    text = """config seed = 1
data train, test = xor(train=8, test=8)
param w: f32[2] = normal(std=1)
param A: f32[2, 2] = normal(std=1)
train (x, y) in train for 2 epochs {
  s1 = x - w
  s2 = w - x
  g1 = f32(x >= w)
  g2 = f32(w >= x)
  r1 = sum(A, axis=0)
  r2 = sum(A, axis=1)
  m1 = A @ x
  m2 = A.T @ x
  e1 = f32(x == w)
  e2 = f32(w == x)
  w -= 0.01 * (s1 * 2 + s2 + g1 * 3 + g2 + r1 * 5 + r2 + m1 * 7 + m2 + e1 + e2)
}
eval (x, y) in test {
  predict sign(w @ x)
}
"""
    plain = compile_program(text, "t.sir")
    merged = compile_program(text, "t.sir", None, "cse")
    removed = [n for n in plain.train.graph.body if n.name not in merged.train.graph.by_name]
    assert [n.op for n in removed] == ["eq", "cast"]       # only w == x (and its cast) go
    weights = []
    for program in (plain, merged):
        ex = Executor(program, schedule(program.train.graph),
                      schedule(program.eval.graph).kernels, 1)
        ex.train()
        weights.append(bits(ex.arrays["w"]))
    assert weights[0] == weights[1]
