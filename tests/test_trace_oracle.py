"""tracegen against an independent oracle, access by access: every kernel's accesses
(`kernel_accesses`), its count (`n_accesses`), a step's columns (`StepTrace.step`, `.init`) and the
chunks of a trace equal what the loop nests of docs/machine-model.md make, written as plain
Python loops in tests/traceoracle.py: address, size, read or write, buffer row and kernel id.

Checked on a program that uses every form of every op, on every program in programs/ under every
exact pipeline, and on random step graphs over every op, dtype and shape class
(tests/randgraphs.py), seeded and drawn by hypothesis, unfused and fused.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import traceoracle as oracle
from hypothesis import given, settings
from hypothesis import strategies as st
from randgraphs import graphs, random_graph
from test_passes import EXACT

from sutro_ir.compile import compile_file, compile_program
from sutro_ir.graph import Graph, Node, verify
from sutro_ir.ops import OPS
from sutro_ir.passes import run_pipeline
from sutro_ir.schedule import schedule
from sutro_ir.tracegen import StepTrace, kernel_accesses, n_accesses

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted((ROOT / "programs").glob("*.sir"))
# small enough for Python loops, large enough that no dimension is 1 or equal to another by luck
TINY = {"mlp_backprop.sir": {"n_bits": "3", "hidden": "6"},
        "mlp_autodiff.sir": {"n_bits": "3", "hidden": "6"},
        "mlp4_backprop.sir": {"n_bits": "4", "hidden": "5"},
        "sparse_parity.sir": {"n_bits": "4", "hidden": "5", "batch_size": "3"},
        "parity3.sir": {"hidden": "5"}, "xor.sir": {"hidden": "5"}}
PROGRAM_PIPELINES = ["", *EXACT, "layer-local-update{approximate=true}"]
GRAPH_PIPELINES = ["", "fuse", "layer-local-update,fuse", "fuse{hoist=false}",
                   "recompute{policy=all},fuse", "liveness-layout"]
COLUMNS = ("addr", "nbytes", "is_write", "buffer")
SEEDS = range(40)               # enough that every kernel form below occurs (counted)

# every form of every op: vector and matrix products (ta too, and the 2-D right operand of a
# batched `x @ B.T`), reductions along each axis (of a rank-3 array too), index, casts, where,
# the [3,1]-with-[1,4] broadcast, a scalar broadcast, and chains that fuse with broadcast
# outside reads
FORMS = """
config lr = 0.5
data train, test = xor(train=8, test=8)
param A: f32[3, 4] = normal(std=1)
param S: f32[4, 4] = normal(std=1)
param B: f32[4, 2] = normal(std=1)
param v: f32[4] = normal(std=1)
param u: f32[3] = normal(std=1)
param c: f32[3, 1] = normal(std=1)
param r: f16[1, 4] = ones()
param q: i8[4] = ones()
param T: f32[2, 3, 4] = normal(std=1)
train (x, y) in train batch 3 for 1 epochs {
  vv = v @ v
  mv = A @ v
  vm = u @ A
  mm = A @ S
  tv = A.T @ u
  tm = A.T @ A
  xb = x @ B.T
  bx = xb.T @ x
  o = outer(mv, v)
  t = transpose(A)
  s = sum(A)
  s0 = sum(A, axis=0)
  s1 = mean(A, axis=1)
  m1 = max(A, axis=-1)
  m0 = max(S, axis=-2)
  mu = mean(v)
  i1 = A[1]
  i2 = index(A, i=-1)
  i3 = v[2]
  cr = c + r
  e = mv * 2 + u
  ys = xb * y[0]
  sc = A * vv
  w = where(A > 0, A, c)
  k1 = f16(A)
  k2 = i8(v)
  k3 = bool(mv)
  cp = copy(u)
  h = relu(mm + v) * s0 - c
  t1 = sum(T, axis=1)
  t0 = mean(T, axis=-3)
  t2 = max(T, axis=2)
  tc = T[1] * T - c
  q -= i8(v > 0)
  A -= lr * (o + h)
}
eval (x, y) in test { predict sign(A @ B @ x)[0] }
"""


# ----------------------------------------------------------------------------- comparison

def assert_same(got: dict, want: dict, keys, what: str) -> None:
    """Equal columns, or the first access that differs, shown both ways."""
    n = len(want[keys[0]])
    lengths = {k: len(got[k]) for k in keys}
    assert set(lengths.values()) == {n}, f"{what}: {lengths} accesses, the oracle makes {n}"
    same = np.ones(n, bool)
    for k in keys:
        same &= np.asarray(got[k]).astype(np.int64) == want[k].astype(np.int64)
    if not same.all():
        i = int(np.argmin(same))
        show = lambda cols: {k: int(cols[k][i]) for k in keys}       # noqa: E731
        raise AssertionError(f"{what}: access {i} of {n} is {show(got)}, the oracle says "
                             f"{show(want)}")


def check_kernels(sched) -> None:
    """Every kernel's accesses and count against the oracle's loop nest."""
    for k in sched.kernels:
        want = oracle.columns(oracle.kernel_loop(k, sched), sched)
        addr, nbytes, is_write, buffer = kernel_accesses(k, sched)
        got = {"addr": addr, "nbytes": nbytes, "is_write": is_write, "buffer": buffer}
        assert_same(got, want, COLUMNS, k.name)
        assert n_accesses(k, sched.graph) == len(want["addr"]), k.name


def check_step(sched, x: str, y: str, params: list[str]) -> StepTrace:
    """A step's columns (load, then every kernel, with kernel ids) and step 0's init."""
    step_trace = StepTrace(sched, x, y, params)
    want = oracle.columns(oracle.step_loop(sched, x, y), sched)
    assert_same(step_trace.step, want, COLUMNS + ("kernel",), "step")
    assert step_trace.accesses_per_step == len(want["addr"])
    init = oracle.columns(oracle.init_loop(sched, params), sched)
    assert_same(step_trace.init, init, COLUMNS + ("kernel",), "init")
    return step_trace


def check_schedule(graph: Graph) -> None:
    sched = schedule(graph)
    check_kernels(sched)
    inputs = [n.name for n in graph.nodes if n.op == "input"]
    check_step(sched, *inputs, [n.name for n in graph.nodes if n.op == "param"])


# ----------------------------------------------------------------------------- the oracle itself

def test_the_oracle_walks_the_loop_nests_the_docs_write_out():
    """The docs' example, `h_pre = W1 @ x + b1; h = relu(h_pre)` fused: for i, for k: read
    W1[i,k], read x[k]; then read b1[i]; write h[i]; and `A.T @ x` reads A[k,i]."""
    nodes = (Node("W1", "param", dtype="f32", shape=(2, 3)),
             Node("b1", "param", dtype="f32", shape=(2,)),
             Node("x", "input", dtype="f32", shape=(3,)), Node("y", "input", shape=()),
             Node("m", "matmul", ("W1", "x"), shape=(2,)),
             Node("h_pre", "add", ("m", "b1"), shape=(2,)),
             Node("h", "relu", ("h_pre",), shape=(2,)),
             Node("t", "matmul", ("W1", "h"), (("ta", 1),), shape=(3,)))
    sched = schedule(verify(Graph(nodes, ("t",), (("m", "h_pre", "h"),))))
    fused, product = (oracle.kernel_loop(k, sched) for k in sched.kernels)
    r = lambda b, e: (b, e, False)                                   # noqa: E731
    want = []
    for i in range(2):
        want += [a for k in range(3) for a in (r("W1", 3 * i + k), r("x", k))]
        want += [r("b1", i), ("h", i, True)]
    assert fused == want
    assert product[:4] == [r("W1", 0), r("h", 0), r("W1", 3), r("h", 1)]
    assert product[4] == ("t", 0, True) and len(product) == 3 * (2 * 2 + 1)


def test_the_oracle_broadcasts_and_keeps_repeated_reads_in_registers():
    """[3,1] + [1,2] reads c[i] and r[j]; a later node's read of an element the elementwise
    anchor read is not made again, a broadcast scalar is read on every iteration."""
    nodes = (Node("c", "param", dtype="f32", shape=(3, 1)),
             Node("r", "param", dtype="f32", shape=(1, 2)),
             Node("s", "param", dtype="f32", shape=()),
             Node("x", "input", dtype="f32", shape=(2,)), Node("y", "input", shape=()),
             Node("a", "add", ("c", "r"), shape=(3, 2)),
             Node("b", "mul", ("a", "r"), shape=(3, 2)),
             Node("d", "mul", ("b", "s"), shape=(3, 2)))
    sched = schedule(verify(Graph(nodes, ("d",), (("a", "b", "d"),))))
    got = oracle.kernel_loop(sched.kernels[0], sched)
    want = [a for i in range(3) for j in range(2)
            for a in (("c", i, False), ("r", j, False), ("s", 0, False), ("d", 2 * i + j, True))]
    assert got == want


# ----------------------------------------------------------------------------- programs

@pytest.mark.parametrize("pipeline", ["", "fuse", "layer-local-update,fuse", "liveness-layout"])
def test_every_form_of_every_op(pipeline):
    program = compile_program(FORMS, "forms.sir", passes=pipeline)
    graph = program.train.graph
    assert {n.op for n in graph.body} >= {"matmul", "outer", "transpose", "sum", "mean", "max",
                                          "index", "where", "cast", "copy"}
    check_schedule(graph)


@pytest.mark.parametrize("pipeline", PROGRAM_PIPELINES)
@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_every_program_under_every_pipeline(path, pipeline):
    program = compile_file(str(path), TINY[path.name], pipeline)
    sched = schedule(program.train.graph)
    check_kernels(sched)
    check_step(sched, program.train.x, program.train.y, [p.name for p in program.params])


def test_the_seeds_mlp_at_full_size():
    """The main job's MLP at its full size, fused as docs/passes.md shows it: loops of 20,000
    iterations, addresses past 64 KiB."""
    program = compile_file(str(ROOT / "programs/mlp_backprop.sir"), {}, "layer-local-update,fuse")
    sched = schedule(program.train.graph)
    params = [p.name for p in program.params]
    step_trace = check_step(sched, program.train.x, program.train.y, params)
    assert step_trace.step["addr"].max() > 1 << 16


def test_trace_chunks_replay_the_step_and_init_once():
    program = compile_program(FORMS, "forms.sir", passes="layer-local-update,fuse")
    sched = schedule(program.train.graph)
    params = [p.name for p in program.params]
    step_trace = StepTrace(sched, program.train.x, program.train.y, params)
    step = oracle.step_loop(sched, program.train.x, program.train.y)
    per_step = {0: oracle.init_loop(sched, params) + step, 2: step, 5: step}
    chunk = 37                      # divides nothing: chunks end inside kernels
    trace = step_trace.trace([0, 2, 5], {"program": "forms.sir"}, chunk=chunk)
    chunks = list(trace)
    assert [c.step for c in chunks] == sorted(c.step for c in chunks)
    for s, accesses in per_step.items():
        mine = [c for c in chunks if c.step == s]
        assert [len(c) for c in mine] == [min(chunk, len(accesses) - lo)
                                          for lo in range(0, len(accesses), chunk)]
        got = {k: np.concatenate([getattr(c, k) for c in mine])
               for k in ("addr", "nbytes", "is_write", "buffer", "kernel")}
        assert_same(got, oracle.columns(accesses, sched), COLUMNS + ("kernel",), f"step {s}")
    assert [k.name for k in trace.kernels] == ["init", "load"] + [k.name for k in sched.kernels]
    assert [(b.name, b.base, b.nbytes, b.dtype) for b in trace.buffers] == \
        [(b.name, b.base, int(np.prod(b.shape, dtype=int)) * oracle.ELEM_BYTES[b.dtype], b.dtype)
         for b in sched.buffers]


# ----------------------------------------------------------------------------- random graphs

@pytest.mark.parametrize("seed", SEEDS)
def test_random_graphs_unfused_and_fused(seed):
    graph = random_graph(seed)
    for pipeline in GRAPH_PIPELINES:
        check_schedule(run_pipeline(graph, pipeline))


@settings(max_examples=100)
@given(graphs(), st.sampled_from(GRAPH_PIPELINES))
def test_random_graphs_drawn_by_hypothesis(graph, pipeline):
    check_schedule(run_pipeline(graph, pipeline))


def features(graph: Graph) -> collections.Counter:
    """What a graph (after fuse) gives the trace to get wrong."""
    out = collections.Counter(f"op {n.op}" for n in graph.body)
    out.update(f"dtype {n.dtype}" for n in graph.body)
    for n in graph.body:
        shapes = [graph[a].shape for a in n.operands]
        if n.op == "matmul":
            out[f"matmul {len(shapes[0])}-D @ {len(shapes[1])}-D" + " ta" * bool(n.attrs)] += 1
        if n.op in oracle.REDUCTIONS and n.attrs:
            out["reduction along an axis"] += 1
            out["reduction of a rank-3 array"] += len(shapes[0]) == 3
        if n.op in oracle.ELEMENTWISE and sum(s != n.shape for s in shapes) >= 2:
            out["two operands broadcast"] += 1
    for k in schedule(graph).kernels:
        members = {m.name for m in k.nodes}
        outside = [a for m in k.nodes[1:] for a in m.operands if a not in members]
        out["fused kernel"] += len(k.nodes) > 1
        out["broadcast outside read"] += any(graph[a].shape != k.anchor.shape for a in outside)
        out["outside read broadcast along rows"] += any(
            _along_rows(graph[a].shape, k.anchor.shape) for a in outside)
        out["update inside a fused kernel"] += len(k.nodes) > 1 and any(m.version for m in k.nodes)
        if k.anchor.op not in oracle.ELEMENTWISE and outside:
            out[f"fused {k.anchor.op} anchor"] += 1
            shared = {graph[a].buffer for a in outside} & {graph[a].buffer
                                                           for a in k.anchor.operands}
            out["re-read of an operand of a non-elementwise anchor"] += bool(shared)
    return out


def _along_rows(shape: tuple, anchor: tuple) -> bool:
    """Does broadcasting repeat elements other than as a flat cycle (a [3,1] column)?"""
    n = int(np.prod(shape, dtype=int))
    return any(oracle.flat(oracle.broadcast(i, shape), shape) != oracle.flat(i, anchor) % n
               for i in oracle.indices(anchor))


def test_random_graphs_reach_every_op_dtype_and_kernel_form():
    """The generator must not degrade silently: over the seeds the tests use, every op and
    dtype occurs, and so do the kernels the trace can get wrong."""
    total = sum((features(run_pipeline(random_graph(s), "fuse")) for s in SEEDS),
                collections.Counter())
    for op in OPS:
        assert total[f"op {op}"] >= 3, op
    for dtype in ("f32", "f16", "i8", "bool"):
        assert total[f"dtype {dtype}"] >= 20, dtype
    for form in ("matmul 1-D @ 1-D", "matmul 2-D @ 1-D", "matmul 1-D @ 2-D", "matmul 2-D @ 2-D",
                 "matmul 2-D @ 1-D ta", "matmul 2-D @ 2-D ta", "reduction along an axis",
                 "two operands broadcast", "reduction of a rank-3 array",
                 "fused matmul anchor", "fused outer anchor",
                 "fused transpose anchor", "fused index anchor", "fused sum anchor"):
        assert total[form] >= 2, (form, total)
    for form in ("fused kernel", "broadcast outside read", "outside read broadcast along rows",
                 "update inside a fused kernel",
                 "re-read of an operand of a non-elementwise anchor"):
        assert total[form] >= 5, (form, total)
