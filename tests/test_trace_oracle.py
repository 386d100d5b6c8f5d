"""tracegen against an independent oracle, access by access: every kernel's accesses
(`kernel_accesses`, with its run-time index values), its count (`n_accesses`), a step's columns on
every control path (`StepTrace.columns`, `.accesses`, `.init`) and the chunks of a trace equal
what the loop nests of docs/machine-model.md make, written as plain Python loops in
tests/traceoracle.py: address, size, read or write, buffer row and kernel id.

Checked on a program that uses every form of every op (ints and bit ops, slices and run-time
indices, writes into part of an array, ifs nested and never taken, a loop, a function), on every
program in programs/ under every exact pipeline, and on random step graphs over every op, dtype
and shape class with if regions (tests/randgraphs.py), seeded and drawn by hypothesis, unfused
and fused. A step's control path comes from running the step (sutro_ir.execute.Step, on seeded
sources) and from the oracle's enumeration of both choices of every if.
"""

from __future__ import annotations

import collections
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import traceoracle as oracle
from hypothesis import given, settings
from hypothesis import strategies as st
from randgraphs import graphs, random_graph, random_sources
from test_passes import EXACT

from sutro_ir.compile import compile_file, compile_program
from sutro_ir.execute import Executor, Step
from sutro_ir.graph import Graph, Node, verify
from sutro_ir.ops import DTYPES, OPS
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
        "parity3.sir": {"hidden": "5"}, "xor.sir": {"hidden": "5"},
        "mlp_backprop_always.sir": {"n_bits": "3", "hidden": "6"},
        "sparse_parity_gf2.sir": {"n_bits": "4", "n_samples": "6"}}
SMALL_CONFIG = {"n_bits": "4", "hidden": "5", "batch_size": "3", "n_samples": "6"}


def tiny(path: Path) -> dict:
    """The program's TINY overrides; for a program not listed, SMALL_CONFIG's sizes of the
    config constants it has."""
    if path.name in TINY:
        return TINY[path.name]
    names = dict(compile_file(str(path)).config)
    return {k: v for k, v in SMALL_CONFIG.items() if k in names}
PROGRAM_PIPELINES = ["", *EXACT, "layer-local-update{approximate=true}"]
GRAPH_PIPELINES = ["", "fuse", "layer-local-update,fuse", "fuse{hoist=false}",
                   "recompute{policy=all},fuse", "liveness-layout"]
COLUMNS = ("addr", "nbytes", "is_write", "buffer")
SEEDS = range(40)               # enough that every kernel form below occurs (counted)
MAX_DYN = 12                    # run-time index values tried per kernel

# every form of every op: vector and matrix products (ta too, and the 2-D right operand of a
# batched `x @ B.T`), reductions along each axis (of a rank-3 array too), index with ints,
# slices (a negative step too) and run-time indices, casts, where, the [3,1]-with-[1,4]
# broadcast, a scalar broadcast, chains that fuse with broadcast outside reads; i32, u8 and
# the bit ops; einsum over one to three operands; the construct ops (random draws too) and
# the gather ops; writes into
# part of a local and of parameters (every accumulation form, run-time indices too, in a
# loop); a function; an if taken on steps 0 and 2 with an if nested in it taken on step 2
# (blocks that write parameters and locals), and an if never taken
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
param M: i32[4, 3] = ones()
param U: u8[4] = ones()
param cnt: i32[3] = zeros()
param ticks: i32[] = zeros()
def scale(a, b) {
  t = a * b
  return t + a
}
train (x, y) in train batch 3 for 2 epochs {
  ticks += 1
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
  mn = min(A, axis=0)
  mu = mean(v)
  i1 = A[1]
  i2 = A[-1]
  i3 = v[2]
  i4 = T[1, 2]
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
  ew = maximum(v, 0.5) - minimum(-v, 1) / abs(v) + exp(sign(v)) + log(sqrt(abs(v) + 1))
  ew2 = sigmoid(u) ** 2 + hinge(mv, u) + logistic_loss(mv, u)
  cmp = ((v >= 0) == (v <= 1)) != (v < 0.5)
  t1 = sum(T, axis=1)
  t0 = mean(T, axis=-3)
  t2 = max(T, axis=2)
  tc = T[1] * T - c
  iv = i32(v > 0) + 3
  bw = (iv & 5) | (iv ^ 2)
  sh = (iv << 2) >> 1
  fd = iv // 2 + iv % 3
  nt = ~U
  ff = v // 0.5 + v % 2
  lg = (v > 0) and not (mv[0] > 0) or (v < -1)
  sl = v[1:3]
  sl2 = A[:, 1:4:2]
  sl3 = A[2:0:-1]
  sl4 = T[1, 0:3:2, 1:]
  cl = A[:, 2]
  j = argmax(x[2])
  am = argmin(A, axis=1)
  k = i32(x[2, 1] > 0)
  rj = v[j]
  rc = A[:, j]
  rk = A[k, j]
  rt = T[k]
  th = tanh(u) + stop_grad(u)
  ks = sum(A, axis=1, keepdims=true)
  km = max(T, axis=0, keepdims=true)
  ai = arange(3) // 2 + 1
  g1 = S[ai]
  bi = arange(4) % 2
  g2 = T[bi, 1:3]
  gz = zeros([4, 4])
  gz[ai] += A
  gz[ai, 1] := u
  e1 = einsum("i,i->", v, v)
  e2 = einsum("ij,j->i", A, v)
  e3 = einsum("si,sj,s->ij", x, x, y)
  e4 = einsum("ij->ji", A)
  e5 = einsum("ki,kj->", A, A)
  z = zeros([3, 4])
  o1 = ones(4)
  fu = full([2], 0.5, dtype="f16")
  ey = eye(4)
  ar = arange(5)
  ar2 = arange(1, 9, 3)
  nz = normal_like(A, std=0.1)
  bn = bernoulli(0.5, [4])
  rs = reshape(A, [4, 3])
  cc = concat([A, A], axis=0)
  cc1 = concat([c, A], axis=1)
  stk = stack([v, v, v])
  stk1 = stack([u, u], axis=1)
  z[1, :] := v
  z[k, j] += 2
  z[0:2, 1:3] *= 3
  z[:, j] -= u
  M[j] ^= 1
  M[1:3, k] <<= 1
  U[1] |= 4
  cnt[k] += 1
  for i in range(3) {
    cnt[i] += i
    ey[i, i + 1] := 2
  }
  fs = scale(v, o1)
  fz = scale(z, A)
  c1 = x[2, 1] > 0
  if c1 {
    tt = v * 2
    z[0, 0] := 5
    if ticks > 2 {
      deep = tt + u[0]
      cnt[2] -= 1
    } else {
      shallow = tt - 1
    }
    A[0] -= lr * tt
  } else {
    t2b = u + 1
    cnt[0] -= 1
    S -= lr * S
  }
  never = sum(x * x) < 0
  if never {
    n1 = v * 3
    A[0, 0] := 1
  } else {
    n2 = v * 4
  }
  zz = z + ey[0:3] + fz
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


def dyn_values(kernel, graph) -> list[tuple]:
    """Run-time index values to try a kernel with: every combination in range, or MAX_DYN of
    them spread over the combinations (the first and the last among them)."""
    dims = [d for m in kernel.nodes for d in oracle.dynamic_dims(m, graph)]
    total = math.prod(dims)             # an index array has a value per element: many digits
    if total <= MAX_DYN:
        return list(itertools.product(*(range(d) for d in dims)))
    picks = dict.fromkeys(i * (total - 1) // (MAX_DYN - 1) for i in range(MAX_DYN))
    return [combination(p, dims) for p in picks]


def combination(number: int, dims: list) -> tuple:
    """The combination at position `number` of itertools.product(range(d) for d in dims)."""
    digits = []
    for d in reversed(dims):
        number, digit = divmod(number, d)
        digits.append(digit)
    return tuple(reversed(digits))


def check_kernels(sched) -> None:
    """Every kernel's accesses and count against the oracle's loop nest, for each run-time
    index value tried; an if kernel makes one access, the read of its condition; and the
    kernels run every node."""
    graph = sched.graph
    kernels = oracle.program_order(sched.kernels)
    # every node that computes is in one kernel (a merge in none): nothing escapes the trace
    run = collections.Counter(m.name for k in kernels for m in k.nodes)
    computing = [n.name for n in graph.all_nodes if n.op not in ("param", "input", "merge")]
    assert run == collections.Counter(computing), \
        f"nodes no kernel runs: {[m for m in computing if m not in run]}; run twice or not " \
        f"computing: {sorted(m for m, c in run.items() if c > 1 or m not in computing)}"
    for k in kernels:
        if k.nodes[0].op == "if":
            assert n_accesses(k, graph) == 1 == len(oracle.kernel_loop(k, sched)), k.name
            continue
        for dyn in dyn_values(k, graph):
            want = oracle.columns(oracle.kernel_loop(k, sched, dyn), sched)
            addr, nbytes, is_write, buffer = kernel_accesses(k, sched, dyn)
            got = {"addr": addr, "nbytes": nbytes, "is_write": is_write, "buffer": buffer}
            assert_same(got, want, COLUMNS, f"{k.name} {dyn}")
            assert n_accesses(k, graph) == len(want["addr"]), k.name


def check_step(sched, x: str, y: str, params: list[str], paths=((),)) -> StepTrace:
    """A step's columns on every path (load, then the kernels the path runs, with kernel ids),
    step 0's (init first), the counts, and init's columns."""
    paths = tuple(paths)
    step_trace = StepTrace(sched, x, y, params, paths)
    init = oracle.init_loop(sched, params)
    assert_same(step_trace.init, oracle.columns(init, sched), COLUMNS + ("kernel",), "init")
    counts = []
    for p, path in enumerate(paths):
        step = oracle.step_loop(sched, x, y, path)
        assert_same(step_trace.columns(p), oracle.columns(step, sched), COLUMNS + ("kernel",),
                    f"step on path {path}")
        assert_same(step_trace.columns(p, True), oracle.columns(init + step, sched),
                    COLUMNS + ("kernel",), f"step 0 on path {path}")
        assert step_trace.accesses(p) == len(step), path
        counts.append(len(step))
    assert step_trace.accesses_per_step == max(counts)
    return step_trace


def run_paths(graph: Graph, sched, seeds) -> list[tuple]:
    """The control path of one step run for real on each seed's sources."""
    out = []
    for seed in seeds:
        step = Step(graph, random_sources(graph, seed), sched.kernels)
        with np.errstate(all="ignore"):
            step()
        out.append(tuple(step.path))
    return out


def all_paths(sched, real=()) -> tuple:
    """The real paths, and made-up ones (the oracle's): every if taken, none taken, and seeded
    coin flips; run-time indices at the ends of their ranges and in between."""
    return tuple(dict.fromkeys(list(real) + oracle.made_up_paths(sched)))


def check_schedule(graph: Graph) -> None:
    sched = schedule(graph)
    check_kernels(sched)
    inputs = [n.name for n in graph.nodes if n.op == "input"]
    paths = all_paths(sched, run_paths(graph, sched, range(3)))
    check_step(sched, *inputs, [n.name for n in graph.nodes if n.op == "param"], paths)


def train_paths(program):
    """The TrainResult of training the program for real (its paths and each step's)."""
    ex = Executor(program, schedule(program.train.graph), schedule(program.eval.graph).kernels,
                  seed=0)
    return ex.train()


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


def test_the_oracle_writes_into_a_part_and_sums_einsum_letters_in_order():
    """`A[k, 1:] += v` with k read at run time: read k, then per element of the part: read A,
    read v, write A; `einsum("ij,i->j")` reads A[i,j], v[i] for each i; `einsum("ji,jk->k")`
    sums j before i (their order of first appearance)."""
    nodes = (Node("A", "param", dtype="f32", shape=(3, 4)),
             Node("v", "param", dtype="f16", shape=(3,)),
             Node("k", "param", dtype="i32", shape=()),
             Node("x", "input", dtype="f32", shape=(2,)), Node("y", "input", shape=()),
             Node("e", "einsum", ("A", "v"), (("spec", "ij,i->j"),), "f32", (4,)),
             Node("f", "einsum", ("A", "A"), (("spec", "ji,jk->k"),), "f32", (4,)),
             Node("A@1", "setindex", ("A", "v", "k"),
                  (("acc", "add"), ("at", (None, (1, 4, 1)))), "f32", (3, 4)))
    sched = schedule(verify(Graph(nodes, ("e", "f"))))
    e, f, upd = sched.kernels
    r = lambda b, i: (b, i, False)                                   # noqa: E731
    assert oracle.kernel_loop(e, sched) == [
        a for j in range(4) for acc in [[x for i in range(3) for x in (r("A", 4 * i + j),
                                                                         r("v", i))]]
        for a in acc + [("e", j, True)]]
    # j = 0, i = 0, 1, 2: A[j,i] then A[j,k]; summing i first would read A[0,0], A[0,0], A[1,0]
    assert oracle.kernel_loop(f, sched)[:6] == [r("A", e) for e in (0, 0, 1, 0, 2, 0)]
    assert oracle.kernel_loop(upd, sched, (2,)) == [r("k", 0)] + [
        a for j in range(1, 4) for a in (r("A", 8 + j), r("v", j - 1), ("A", 8 + j, True))]


def test_the_oracle_follows_the_path_through_ifs():
    """An if reads its condition, then runs the block the path says; a run-time index takes
    the path's next value; kernel ids count every kernel, both blocks', in program order."""
    program = compile_program(BRANCHY, "branchy.sir")
    sched = schedule(program.train.graph)
    ids = oracle.kernel_ids(sched)
    names = {ids[id(k)]: k.name for k in oracle.program_order(sched.kernels)}
    taken = oracle.step_loop(sched, "x", "y", (1,))
    skipped = oracle.step_loop(sched, "x", "y", (0,))
    ran = lambda accesses: [names[i] for i in dict.fromkeys(a[3] for a in accesses[3:])]
    assert ran(taken) == ["n@1", "%1", "c", "if:t", "t", "w@1"]
    assert ran(skipped) == ["n@1", "%1", "c", "if:t", "s"]
    assert sorted(names) == list(range(2, 2 + 7))
    assert taken[9] == ("c", 0, False, ids[id(sched.kernels[3])])   # the if reads c


# ----------------------------------------------------------------------------- programs

@pytest.mark.parametrize("pipeline", ["", "fuse", "layer-local-update,fuse", "liveness-layout"])
def test_every_form_of_every_op(pipeline):
    program = compile_program(FORMS, "forms.sir", passes=pipeline)
    graph = program.train.graph
    # stop_grad is gone once the sweeps are made (it only marks where grad stops)
    assert {n.op for n in graph.all_nodes} == set(OPS) - {"stop_grad"} | {"param", "input"}
    assert {n.dtype for n in graph.all_nodes} == set(DTYPES)
    sched = schedule(graph)
    check_kernels(sched)
    result = train_paths(program)
    # steps 1 and 3 skip the first if; step 0 takes it and skips the nested one, step 2 both
    assert result.step_paths.tolist() == [0, 1, 2, 1]
    check_step(sched, program.train.x, program.train.y, [p.name for p in program.params],
               all_paths(sched, result.paths))


@pytest.mark.parametrize("pipeline", PROGRAM_PIPELINES)
@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_every_program_under_every_pipeline(path, pipeline):
    program = compile_file(str(path), tiny(path), pipeline)
    sched = schedule(program.train.graph)
    check_kernels(sched)
    check_step(sched, program.train.x, program.train.y, [p.name for p in program.params],
               all_paths(sched))


def test_the_seeds_mlp_at_full_size():
    """The main job's MLP at its full size, fused as docs/passes.md shows it: loops of 20,000
    iterations, addresses past 64 KiB."""
    program = compile_file(str(ROOT / "programs/mlp_backprop.sir"), {}, "layer-local-update,fuse")
    sched = schedule(program.train.graph)
    params = [p.name for p in program.params]
    step_trace = check_step(sched, program.train.x, program.train.y, params, all_paths(sched))
    assert step_trace.step["addr"].max() > 1 << 16


def test_trace_chunks_replay_each_steps_path_and_init_once():
    """The chunks of a trace are each traced step's columns on its own path, in step order."""
    program = compile_program(FORMS, "forms.sir", passes="liveness-layout")
    sched = schedule(program.train.graph)
    params = [p.name for p in program.params]
    result = train_paths(program)
    step_trace = StepTrace(sched, program.train.x, program.train.y, params, result.paths)
    steps = [0, 1, 2, 3]
    assert len({result.path_of(s) for s in steps}) >= 2      # paths differ between the steps
    loops = {s: oracle.step_loop(sched, program.train.x, program.train.y,
                                 result.paths[result.path_of(s)]) for s in steps}
    loops[0] = oracle.init_loop(sched, params) + loops[0]
    chunk = 37                      # divides nothing: chunks end inside kernels
    trace = step_trace.trace(steps, {"program": "forms.sir"}, chunk=chunk,
                             path_of=result.path_of)
    chunks = list(trace)
    assert [c.step for c in chunks] == sorted(c.step for c in chunks)
    for s, accesses in loops.items():
        mine = [c for c in chunks if c.step == s]
        assert [len(c) for c in mine] == [min(chunk, len(accesses) - lo)
                                          for lo in range(0, len(accesses), chunk)]
        got = {k: np.concatenate([getattr(c, k) for c in mine])
               for k in ("addr", "nbytes", "is_write", "buffer", "kernel")}
        assert_same(got, oracle.columns(accesses, sched), COLUMNS + ("kernel",), f"step {s}")
    assert [k.name for k in trace.kernels] == ["init", "load"] + [
        k.name for k in oracle.program_order(sched.kernels)]
    assert [(b.name, b.base, b.nbytes, b.dtype) for b in trace.buffers] == \
        [(b.name, b.base, int(np.prod(b.shape, dtype=int)) * oracle.ELEM_BYTES[b.dtype], b.dtype)
         for b in sched.buffers]


# an if taken on the steps where the counter n, after its increment, is a multiple of 3
BRANCHY = """
data train, test = xor(train=8, test=8)
param n: i32[] = zeros()
param w: f32[4] = ones()
train (x, y) in train for 2 epochs {
  n += 1
  c = n % 3 == 0
  if c {
    t = w * 2
    w -= t
  } else {
    s = sum(w)
  }
}
eval (x, y) in test { predict sign(x[0]) }
"""


def test_a_branch_not_taken_costs_nothing():
    """Counted by hand: load writes x (2) and y (1); n += 1 reads and writes n (2); n % 3 and
    == 0 read and write a scalar each (4); the if reads c (1): 10 on every step. Then block:
    t = w * 2 reads 4 and writes 4, w -= t reads 8 and writes 4 (20); else block: sum(w) reads
    4 and writes 1 (5). 16 steps, the then block on steps 2, 5, 8, 11 and 14, and init writes
    n and w (5)."""
    program = compile_program(BRANCHY, "branchy.sir")
    sched = schedule(program.train.graph)
    result = train_paths(program)
    assert result.steps == 16
    taken = [s for s in range(16) if result.paths[result.path_of(s)] == (1,)]
    assert taken == [2, 5, 8, 11, 14]
    assert {result.paths[result.path_of(s)] for s in range(16)} == {(0,), (1,)}
    step_trace = StepTrace(sched, "x", "y", ["n", "w"], result.paths)
    trace = step_trace.trace(list(range(16)), {}, path_of=result.path_of)
    per_step = collections.Counter()
    kernels = collections.defaultdict(set)
    for c in trace:
        per_step[c.step] += len(c)
        kernels[c.step] |= {trace.kernels[k].name for k in np.unique(c.kernel)}
    assert per_step == {s: 10 + (20 if s in taken else 5) + 5 * (s == 0) for s in range(16)}
    assert sum(per_step.values()) == 5 * 30 + 11 * 15 + 5 == 320
    for s in range(16):
        assert ({"t", "w@1"} <= kernels[s]) == (s in taken) != ("s" in kernels[s]), s
    check_step(sched, "x", "y", ["n", "w"], result.paths)


# ----------------------------------------------------------------------------- random graphs

@pytest.mark.parametrize("pipeline", GRAPH_PIPELINES)
@pytest.mark.parametrize("seed", SEEDS)
def test_random_graphs_unfused_and_fused(seed, pipeline):
    check_schedule(run_pipeline(random_graph(seed), pipeline))


@settings(max_examples=100, deadline=None)
@given(graphs(), st.sampled_from(GRAPH_PIPELINES))
def test_random_graphs_drawn_by_hypothesis(graph, pipeline):
    check_schedule(run_pipeline(graph, pipeline))


def features(graph: Graph) -> collections.Counter:
    """What a graph (after fuse) gives the trace to get wrong."""
    out = collections.Counter(f"op {n.op}" for n in graph.all_nodes)
    out.update(f"dtype {n.dtype}" for n in graph.all_nodes)
    top = {n.name for n in graph.nodes}
    for n in graph.all_nodes:
        shapes = [graph[a].shape for a in n.operands]
        if n.op == "matmul":
            out[f"matmul {len(shapes[0])}-D @ {len(shapes[1])}-D" + " ta" * bool(n.attrs)] += 1
        if n.op in oracle.REDUCTIONS and n.attrs:
            out["reduction along an axis"] += 1
            out["reduction of a rank-3 array"] += len(shapes[0]) == 3
        if n.op in oracle.ELEMENTWISE and sum(s != n.shape for s in shapes) >= 2:
            out["two operands broadcast"] += 1
        if n.op == "einsum":
            out[f"einsum of {len(n.operands)}"] += 1
        if n.op in ("index", "setindex"):
            at = dict(n.attrs).get("at", ())
            out[f"{n.op} with a run-time index"] += None in at
            out[f"{n.op} with an index array"] += any(graph[a].shape
                                                      for a in oracle.dynamic_operands(n))
            out[f"{n.op} with a slice"] += any(isinstance(e, tuple) for e in at)
            out[f"{n.op} with a negative step"] += any(isinstance(e, tuple) and e[2] < 0
                                                        for e in at)
            out[f"{n.op} with an int"] += any(isinstance(e, int) for e in at)
        if n.op == "setindex":
            out["setindex of a parameter" if n.buffer.startswith("P") else
                "setindex of a local"] += 1
            out["setindex of a constant"] += not isinstance(n.args[1], str)
            out[f"setindex acc={dict(n.attrs)['acc']}"] += 1
        if n.version and n.name not in top:
            out["a write inside a block"] += 1
        if n.op == "if":
            then, orelse = n.branches
            out["if"] += 1
            out["if in a block"] += n.name not in top
            out["if with an empty else"] += not orelse
            out["merge of a local"] += 0
        if n.op == "merge":
            out["merge of a parameter" if n.buffer.startswith("P") else "merge of a local"] += 1
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
    dtype occurs, and so do the kernels, the indexing forms and the regions the trace can get
    wrong."""
    total = sum((features(run_pipeline(random_graph(s), "fuse")) for s in SEEDS),
                collections.Counter())
    for op in set(OPS) - {"stop_grad"}:        # (lowering removes it: not in a graph)
        assert total[f"op {op}"] >= 3, (op, total)
    for dtype in DTYPES:
        assert total[f"dtype {dtype}"] >= 20, (dtype, total)
    for form in ("matmul 1-D @ 1-D", "matmul 2-D @ 1-D", "matmul 1-D @ 2-D", "matmul 2-D @ 2-D",
                 "matmul 2-D @ 1-D ta", "matmul 2-D @ 2-D ta", "reduction along an axis",
                 "two operands broadcast", "reduction of a rank-3 array",
                 "fused matmul anchor", "fused outer anchor",
                 "fused transpose anchor", "fused index anchor", "fused sum anchor",
                 "fused argmax anchor", "fused einsum anchor", "fused reshape anchor",
                 "fused concat anchor", "fused eye anchor",
                 "einsum of 1", "einsum of 2", "einsum of 3",
                 "index with a run-time index", "index with a slice", "index with an int",
                 "index with a negative step", "setindex with a negative step",
                 "setindex with a run-time index", "setindex with a slice",
                 "index with an index array", "setindex with an index array",
                 "setindex with an int", "setindex of a parameter", "setindex of a local",
                 "setindex of a constant", "if in a block", "if with an empty else",
                 "merge of a parameter", "merge of a local"):
        assert total[form] >= 2, (form, total)
    for acc in ("set", "add", "sub", "mul", "div", "floordiv", "mod", "xor", "and", "or",
                "shl", "shr"):
        assert total[f"setindex acc={acc}"] >= 1, (acc, total)
    for form in ("fused kernel", "broadcast outside read", "outside read broadcast along rows",
                 "update inside a fused kernel", "a write inside a block", "if",
                 "re-read of an operand of a non-elementwise anchor"):
        assert total[form] >= 5, (form, total)
