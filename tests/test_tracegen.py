"""Lowering to the trace: each kernel's accesses equal the loop nest of the machine model
(the plain-Python oracle of tests/traceoracle.py; tests/test_trace_oracle.py applies it to every
program and to random graphs), and the trace of a run is what the schedule says."""

from pathlib import Path

import numpy as np
import pytest
import traceoracle

from sutro_ir.compile import compile_file, compile_program
from sutro_ir.execute import Executor
from sutro_ir.schedule import schedule
from sutro_ir.tracegen import StepTrace, kernel_accesses, n_accesses
from sutro_sim.run import select_steps

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"mlp_backprop.sir": {"epochs": "1", "n_train": "40"},
         "mlp_backprop_always.sir": {"epochs": "1", "n_train": "40"},
         "mlp_autodiff.sir": {"epochs": "1", "n_train": "40"},
         "sparse_parity_local.sir": {"epochs": "1", "n_train": "40"},
         "sparse_parity.sir": {"epochs": "1"}, "mlp4_backprop.sir": {"epochs": "1"}}

PROGRAM = """
config lr = 0.5
data train, test = xor(train=8, test=8)
param A: f32[3, 2] = normal(std=1)
param B: f16[4] = zeros()
train (x, y) in train for 1 epochs {
  mv = A @ x
  tm = A.T @ mv
  o = outer(mv, x)
  t = transpose(A)
  s0 = sum(A, axis=0)
  s = sum(A)
  i = A[1]
  e = mv * 2 + y
  c = f16(mv)
  A -= lr * o
}
eval (x, y) in test { predict sign(A @ x)[0] }
"""


def test_each_kernel_follows_its_loop_nest():
    program = compile_program(PROGRAM, "t.sir")
    sched = schedule(program.train.graph)
    for k in sched.kernels:
        addr, nbytes, is_write, buffer = kernel_accesses(k, sched)
        want = traceoracle.columns(traceoracle.kernel_loop(k, sched), sched)
        assert list(addr) == list(want["addr"]), k.name
        assert list(is_write) == list(want["is_write"]), k.name
        assert list(nbytes) == list(want["nbytes"]), k.name
        assert list(buffer) == list(want["buffer"]), k.name
        assert n_accesses(k, sched.graph) == len(want["addr"]), k.name


@pytest.mark.parametrize("path", sorted((ROOT / "programs").glob("*.sir")), ids=lambda p: p.name)
def test_counted_accesses_equal_built_ones(path):
    """On every control path (each if taken or not) the count made without building the
    columns equals the columns built; without ifs, it is the sum over the kernels."""
    program = compile_file(str(path), SMALL.get(path.name, {}))
    sched = schedule(program.train.graph)
    # the paths of real steps (each if's choice and each run-time index)
    ex = Executor(program, sched, schedule(program.eval.graph).kernels, 0)
    paths = ex.train().paths
    st = StepTrace(sched, program.train.x, program.train.y, [p.name for p in program.params],
                   paths)
    n_ifs = sum(1 for k in sched.flat if k.is_branch)
    for p in range(len(paths)):
        assert st.accesses(p) == len(st.columns(p)["addr"])
    if not n_ifs:
        x, y = sched.slot(program.train.x), sched.slot(program.train.y)
        load = x.nbytes // x.elem_bytes + y.nbytes // y.elem_bytes
        assert st.accesses_per_step == load + sum(n_accesses(k, sched.graph)
                                                   for k in sched.kernels)


def test_trace_replays_the_step_and_initializes_parameters_once():
    program = compile_program(PROGRAM, "t.sir")
    sched = schedule(program.train.graph)
    st = StepTrace(sched, "x", "y", ["A", "B"])
    trace = st.trace([0, 1, 5], {}, chunk=50)
    chunks = list(trace)
    assert sorted({c.step for c in chunks}) == [0, 1, 5]
    per_step = {s: sum(len(c) for c in chunks if c.step == s) for s in (0, 1, 5)}
    assert per_step == {0: st.accesses_per_step + 6 + 4, 1: st.accesses_per_step,
                        5: st.accesses_per_step}
    first = chunks[0]
    assert trace.kernels[first.kernel[0]].name == "init" and first.is_write[:10].all()
    arith = {k.name: k.arith for k in trace.kernels}
    assert arith["mv"] == {"fma.f32": 3 * 2 * 3}          # 3 steps x 6 fma
    assert arith["c"] == {}


def test_select_steps():
    assert select_steps("all", 5) == [0, 1, 2, 3, 4]
    assert select_steps("auto", 5) == [0, 1, 2, 3, 4]      # the old default: now every step
    assert select_steps("3", 5) == [0, 1, 2]
    assert select_steps("9", 5) == [0, 1, 2, 3, 4]
    assert select_steps("every:2", 5) == [0, 2, 4]


def test_bytes_moved_follow_the_dtype():
    text = PROGRAM.replace("param A: f32[3, 2]", "param A: f16[3, 2]")
    program = compile_program(text.replace("A -= lr * o", "A -= f16(lr * o)"), "t.sir")
    sched = schedule(program.train.graph)
    st = StepTrace(sched, "x", "y", ["A", "B"])
    a = sched.slot("A")
    touches_a = (st.step["addr"] >= a.base) & (st.step["addr"] < a.base + a.nbytes)
    assert a.elem_bytes == 2 and touches_a.any()
    assert set(st.step["nbytes"][touches_a]) == {2}
    assert set(st.step["nbytes"][~touches_a]) <= {1, 2, 4}    # bool, f16 and f32 values


def test_an_instruction_is_one_iteration_of_the_loop_nest():
    """ByteDMD's instructions in a run trace: one per output element of each kernel (the
    iteration that reads its values and writes it), one for an if's condition; init and load,
    which only write, one each."""
    from math import prod

    from sutro_ir.tracegen import instruction_ids

    program = compile_program(PROGRAM, "t.sir")
    sched = schedule(program.train.graph)
    for k in sched.kernels:
        addr, nbytes, is_write, buffer = kernel_accesses(k, sched)
        ids = instruction_ids(np.zeros(len(addr), np.int32), is_write)
        want = 1 if k.is_branch else prod(k.anchor.shape)
        assert ids[-1] + 1 == want, k.name
    st = StepTrace(sched, "x", "y", ["A", "B"])
    trace = st.trace([0, 1], {}, chunk=7, instructions=True)
    instr = np.concatenate([c.instr for c in trace])
    kernel = np.concatenate([c.kernel for c in trace])
    starts = np.flatnonzero(np.diff(instr)) + 1
    assert (np.diff(instr) >= 0).all()                     # rising: never resumes
    assert len(np.unique(instr)) == len(starts) + 1
    per_kernel = {trace.kernels[kk].name: len(np.unique(instr[kernel == kk]))
                  for kk in np.unique(kernel)}
    assert per_kernel["init"] == 1 and per_kernel["load"] == 2     # steps 0 and 1
    assert per_kernel["mv"] == 2 * 3 and per_kernel["o"] == 2 * 3 * 2
